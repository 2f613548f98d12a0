"""Tests for jfr.data.face_mesh: one mesh construction, TF and NumPy warps that agree."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import spatial

from jfr.data import augment, face_mesh, face_renderer
from jfr.eval import interpretability

SIZE = 64


@pytest.fixture(scope="module")
def template():
  return face_renderer.frontal_landmarks(SIZE).astype(np.float64)


def _orientations(vertices, triangles):
  c = vertices[..., triangles, :]
  e1, e2 = c[..., 1, :] - c[..., 0, :], c[..., 2, :] - c[..., 0, :]
  return np.sign(e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0])


def _affine_faces(template, count, jitter, seed):
  """Random similarity-plus-shear images of the template, then a smooth non-affine
  deformation of amplitude ``jitter`` pixels (x += a sin(y / 9), y += a cos(x / 11))."""
  rng = np.random.default_rng(seed)
  centre = template.mean(axis=0)
  faces = []
  for _ in range(count):
    a = np.deg2rad(rng.uniform(-20, 20))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    shear = np.array([[1.0, rng.uniform(-0.15, 0.15)], [0.0, 1.0]])
    m = rng.uniform(0.8, 1.2) * rot @ shear
    shift = rng.uniform(-4, 4, 2)
    faces.append((template - centre) @ m.T + centre + shift)
  faces = np.stack(faces)
  amplitude = rng.uniform(-jitter, jitter, (count, 1))
  bent_x = faces[..., 0] + amplitude * np.sin(faces[..., 1] / 9.0)
  bent_y = faces[..., 1] + amplitude * np.cos(faces[..., 0] / 11.0)
  return np.stack([bent_x, bent_y], axis=-1)


def _points_inside(template, count, seed):
  rng = np.random.default_rng(seed)
  hull = spatial.Delaunay(template)
  pts = rng.uniform(template.min(0), template.max(0), (4 * count, 2))
  return pts[hull.find_simplex(pts) >= 0][:count]


def test_delaunay_triangles_tile_the_hull(template):
  triangles = face_mesh.delaunay_triangles(template, np.ptp(template, axis=0).prod())
  assert triangles.dtype == np.int32 and triangles.shape[1] == 3
  np.testing.assert_array_equal(triangles, face_mesh.mesh_triangles(template))
  corners = template[triangles]
  e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
  areas = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) / 2.0
  assert np.all(areas > 0)
  np.testing.assert_allclose(areas.sum(), spatial.ConvexHull(template).volume, rtol=1e-9)
  # every landmark position is a mesh vertex (coinciding inner-lip points appear once)
  used = template[np.unique(triangles)]
  assert np.all(np.min(np.linalg.norm(template[:, None] - used[None], axis=-1), axis=1) == 0)


def test_delaunay_triangles_drop_flat_triangles():
  vertices = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0], [2.0, 2.0]])
  triangles = face_mesh.delaunay_triangles(vertices, 16.0)
  assert len(triangles) == 4
  # a threshold above every triangle (|det| = 8) drops all of them
  assert len(face_mesh.delaunay_triangles(vertices, 9.0 / face_mesh.DEGENERATE_AREA)) == 0


def test_template_mesh_rejects_collinear_points():
  with pytest.raises(ValueError, match="span"):
    face_mesh.template_mesh(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))


def test_tf_and_numpy_warps_agree(template):
  """The same template points carried to the same faces by the two implementations."""
  triangles = face_mesh.mesh_triangles(template)
  faces = _affine_faces(template, 6, jitter=1.5, seed=0)
  flips = _orientations(faces, triangles) * _orientations(template, triangles)
  assert np.all(flips > 0)  # the inputs do not fold: one triangle choice everywhere
  points = np.concatenate([_points_inside(template, 60, seed=1), template[[0, 8, 30, 36, 57]]])
  tf_out = face_mesh.warp_points_tf(points.astype(np.float32), template, faces).numpy()
  np_out = face_mesh.warp_points(
    np.broadcast_to(points, (len(faces),) + points.shape), template, faces, triangles
  )
  np.testing.assert_allclose(tf_out, np_out, atol=2e-3)
  np.testing.assert_allclose(np_out[:, -5:], faces[:, [0, 8, 30, 36, 57]], atol=1e-9)


def test_tf_and_numpy_warps_agree_on_rendered_faces(template):
  """Rendered faces (moderate pose); faces whose mesh folds are left out."""
  latents = face_renderer.identity_latents(0, np.arange(8))
  nuisances = face_renderer.sample_nuisances(np.random.default_rng(0), 8, max_yaw=15.0)
  faces = face_renderer.render(latents, nuisances, SIZE, seed_or_rng=0)["landmarks"]
  faces = faces.astype(np.float64)
  triangles = face_mesh.mesh_triangles(template)
  ok = np.all(_orientations(faces, triangles) == _orientations(template, triangles), axis=1)
  assert ok.sum() >= 2
  faces = faces[ok]
  points = _points_inside(template, 40, seed=2)
  tf_out = face_mesh.warp_points_tf(points.astype(np.float32), template, faces).numpy()
  np_out = face_mesh.warp_points(
    np.broadcast_to(points, (len(faces), 40, 2)), template, faces, triangles
  )
  np.testing.assert_allclose(tf_out, np_out, atol=2e-3)


def test_round_trip_tf_forward_numpy_back(template):
  faces = _affine_faces(template, 4, jitter=1.5, seed=3)
  triangles = face_mesh.mesh_triangles(template)
  points = _points_inside(template, 30, seed=4)
  on_faces = face_mesh.warp_points_tf(points.astype(np.float32), template, faces).numpy()
  back = face_mesh.warp_points(on_faces, faces, template, triangles)
  np.testing.assert_allclose(back, np.broadcast_to(points, back.shape), atol=2e-3)


def test_warp_points_shared_target_equals_per_face_target(template):
  vertices, triangles = face_mesh.canonical_mesh(template, SIZE)
  faces = _affine_faces(vertices, 3, jitter=0.5, seed=5)
  points = np.random.default_rng(6).uniform(-2, SIZE + 2, (3, 25, 2))
  shared = face_mesh.warp_points(points, faces, vertices, triangles)
  per_face = face_mesh.warp_points(points, faces, np.broadcast_to(vertices, faces.shape), triangles)
  np.testing.assert_array_equal(shared, per_face)
  chunked = face_mesh.warp_points(points, faces, vertices, triangles, chunk=1)
  np.testing.assert_array_equal(shared, chunked)


def test_warp_points_tf_inside_tf_function_matches_eager(template):
  faces = _affine_faces(template, 3, jitter=0.3, seed=7).astype(np.float32)
  points = np.array([[20.0, 30.0], [40.0, 45.0], [0.0, 0.0], [63.0, 10.0]], np.float32)
  eager = face_mesh.warp_points_tf(points, template, faces).numpy()
  graph = tf.function(lambda lm: face_mesh.warp_points_tf(points, template, lm))
  spec = tf.TensorSpec([None, 68, 2], tf.float32)
  np.testing.assert_allclose(graph.get_concrete_function(spec)(faces).numpy(), eager, atol=1e-4)


def test_warp_points_rejects_bad_shapes(template):
  triangles = face_mesh.mesh_triangles(template)
  with pytest.raises(ValueError, match="points"):
    face_mesh.warp_points(np.zeros((2, 3)), template, template, triangles)
  with pytest.raises(ValueError, match="target_vertices"):
    face_mesh.warp_points(np.zeros((2, 3, 2)), template, np.zeros((3, 68, 2)), triangles)
  with pytest.raises(ValueError, match="target_vertices"):
    face_mesh.warp_points(np.zeros((2, 3, 2)), template, template[:60], triangles)
  with pytest.raises(ValueError, match="triangles"):
    face_mesh.warp_points(np.zeros((2, 3, 2)), template, template, triangles + 68)
  with pytest.raises(ValueError, match="landmarks"):
    face_mesh.warp_points_tf(np.zeros((4, 2), np.float32), template, np.zeros((2, 60, 2)))
  with pytest.raises(ValueError, match="concrete"):
    tf.function(lambda t: face_mesh.template_mesh(t)).get_concrete_function(
      tf.TensorSpec([68, 2], tf.float32)
    )


def test_callers_share_the_mesh_module():
  """The occlusion (augment) and the peak warp (interpretability) use these functions."""
  assert augment.mesh_triangles is face_mesh.mesh_triangles
  assert augment.barycentric_coordinates is face_mesh.locate_points_tf
  for name in (
    "boundary_control_points",
    "canonical_mesh",
    "barycentric_coordinates",
    "warp_points_to_template",
  ):
    assert getattr(interpretability, name) is getattr(face_mesh, name)
