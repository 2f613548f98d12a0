"""Tests of jfr.eval.interpretability against NumPy loops and hand cases."""

import chex
import jax
import numpy as np
import pytest

from jfr.data import face_renderer
from jfr.eval import interpretability as interp

SIZE = 64


@pytest.fixture(scope="module")
def template():
  return face_renderer.frontal_landmarks(SIZE).astype(np.float64)


# ------------------------------------------------------------------ peaks


def test_map_to_image_coordinates_hand_case():
  xy = np.asarray(
    interp.map_to_image_coordinates(np.array([0, 15, 3]), np.array([0, 15, 7]), (16, 16), (64, 64))
  )
  np.testing.assert_allclose(xy, [[1.5, 1.5], [61.5, 61.5], [29.5, 13.5]])


def _peaks_reference(maps, image_size):
  n, h, w, k = maps.shape
  out = {key: np.zeros((n, k, 2)) for key in ("pos_xy", "neg_xy")}
  out.update({key: np.zeros((n, k)) for key in ("pos_weight", "neg_weight")})
  for i in range(n):
    for c in range(k):
      m = maps[i, :, :, c]
      for name, best in (("pos", m.max()), ("neg", m.min())):
        rows, cols = np.nonzero(m == best)
        r, col = rows[0], cols[0]  # row-major first
        out[f"{name}_xy"][i, c] = (
          (col + 0.5) * image_size[1] / w - 0.5,
          (r + 0.5) * image_size[0] / h - 0.5,
        )
        out[f"{name}_weight"][i, c] = max(best if name == "pos" else -best, 0.0)
  return out


class ResponsePeaksTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_numpy_loops(self):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
    maps[0, :, :, 1] = -np.abs(maps[0, :, :, 1]) - 0.1  # no positive value
    maps[1, :, :, 2] = np.abs(maps[1, :, :, 2]) + 0.1  # no negative value
    maps[2, :, :, 3] = 0.0  # ties everywhere: first cell
    peaks = self.variant(lambda m: interp.response_peaks(m, (20, 16)))(maps)
    expected = _peaks_reference(maps, (20, 16))
    for key, value in expected.items():
      np.testing.assert_allclose(np.asarray(peaks[key]), value, rtol=1e-6, atol=1e-6, err_msg=key)
    self.assertEqual(float(peaks["pos_weight"][0, 1]), 0.0)
    self.assertEqual(float(peaks["neg_weight"][1, 2]), 0.0)


def test_response_peaks_rejects_bad_rank():
  with pytest.raises(ValueError, match="maps"):
    interp.response_peaks(np.zeros((4, 4, 3)), (16, 16))


# ------------------------------------------------------------------- mesh


def test_boundary_control_points():
  pts = interp.boundary_control_points(64, per_side=3)
  assert pts.shape == (8, 2)
  expected = {
    (-0.5, -0.5),
    (31.5, -0.5),
    (63.5, -0.5),
    (63.5, 31.5),
    (63.5, 63.5),
    (31.5, 63.5),
    (-0.5, 63.5),
    (-0.5, 31.5),
  }
  assert {tuple(p) for p in pts} == expected
  with pytest.raises(ValueError, match="per_side"):
    interp.boundary_control_points(64, per_side=1)


def test_canonical_mesh_tiles_the_image(template):
  vertices, triangles = interp.canonical_mesh(template, SIZE)
  np.testing.assert_array_equal(vertices[:68], template)
  corners = vertices[triangles]
  e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
  areas = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) / 2.0
  # The boundary points span the image square [-0.5, 63.5]^2: the triangles tile it.
  np.testing.assert_allclose(areas.sum(), SIZE**2, rtol=1e-9)
  assert np.all(areas > 0)


def test_barycentric_coordinates_match_linear_solve():
  rng = np.random.default_rng(1)
  corners = rng.uniform(0, 10, (5, 3, 2))
  points = rng.uniform(0, 10, (7, 2))
  coords, valid = interp.barycentric_coordinates(points, corners)
  assert valid.all()
  for p in range(7):
    for t in range(5):
      a = np.vstack([corners[t].T, np.ones(3)])
      expected = np.linalg.solve(a, np.array([*points[p], 1.0]))
      np.testing.assert_allclose(coords[p, t], expected, rtol=1e-9, atol=1e-9)


def test_barycentric_coordinates_flag_flat_triangles():
  corners = np.array([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
  coords, valid = interp.barycentric_coordinates(np.array([[0.5, 0.2]]), corners)
  assert not valid[0] and np.isnan(coords).all()


def _warp_reference(points, landmarks, template, size):
  """Loops: triangle choice of the module docstring, 3x3 solves for the coordinates."""
  vertices, triangles = interp.canonical_mesh(template, size)
  boundary = vertices[len(template) :]
  out = np.zeros_like(points)
  for n in range(points.shape[0]):
    face = np.concatenate([landmarks[n], boundary])
    for p in range(points.shape[1]):
      best, best_key = None, None
      for t, tri in enumerate(triangles):
        a = np.vstack([face[tri].T, np.ones(3)])
        if abs(np.linalg.det(a)) < 1e-9:
          continue
        lam = np.linalg.solve(a, np.array([*points[n, p], 1.0]))
        same = np.sign(np.linalg.det(a)) == np.sign(
          np.linalg.det(np.vstack([vertices[tri].T, np.ones(3)]))
        )
        contains = lam.min() >= -1e-6
        key = (contains, contains and same, lam.min())
        if best_key is None or key > best_key:
          best, best_key = vertices[tri].T @ lam, key
      out[n, p] = best
  return out


def _posed(template, angle_deg, scale, shift, jitter, seed):
  rng = np.random.default_rng(seed)
  a = np.deg2rad(angle_deg)
  rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
  centre = np.array([SIZE / 2 - 0.5] * 2)
  return (template - centre) @ rot.T + centre + shift + rng.uniform(-jitter, jitter, template.shape)


def test_warp_identity_for_the_template_face(template):
  rng = np.random.default_rng(2)
  points = rng.uniform(-0.5, SIZE - 0.5, (3, 40, 2))
  warped = interp.warp_points_to_template(
    points, np.broadcast_to(template, (3, 68, 2)), template, SIZE
  )
  np.testing.assert_allclose(warped, points, atol=1e-9)


def test_warp_matches_loop_reference(template):
  rng = np.random.default_rng(3)
  landmarks = np.stack(
    [
      _posed(template, 12.0, 0.9, (2.0, -1.0), 0.8, 4),
      _posed(template, -8.0, 1.1, (-3.0, 2.0), 1.5, 5),
    ]
  )
  points = rng.uniform(-0.5, SIZE - 0.5, (2, 30, 2))
  points[0, :4] = [[-0.5, -0.5], [63.5, 10.0], [31.5, 31.5], [70.0, -4.0]]  # edges, outside
  warped = interp.warp_points_to_template(points, landmarks, template, SIZE, chunk=1)
  np.testing.assert_allclose(warped, _warp_reference(points, landmarks, template, SIZE), atol=1e-8)


def test_warp_of_a_peak_on_a_landmark_lands_on_the_template_landmark(template):
  """Hand case: a peak at the nose tip / an eye corner of a posed face warps onto the
  canonical face's nose tip / eye corner; a peak halfway along a mesh edge between two
  landmarks warps halfway between their template positions."""
  landmarks = _posed(template, 15.0, 0.85, (3.0, 2.0), 0.0, 0)[None]
  _, triangles = interp.canonical_mesh(template, SIZE)
  i, j = next(t[:2] for t in triangles if max(t) < 68)
  peaks = np.stack([landmarks[0, 30], landmarks[0, 36], (landmarks[0, i] + landmarks[0, j]) / 2.0])[
    None
  ]
  warped = interp.warp_points_to_template(peaks, landmarks, template, SIZE)
  np.testing.assert_allclose(
    warped[0], [template[30], template[36], (template[i] + template[j]) / 2.0], atol=1e-9
  )


def test_warp_rejects_bad_shapes(template):
  with pytest.raises(ValueError, match="landmarks"):
    interp.warp_points_to_template(np.zeros((2, 3, 2)), np.zeros((1, 68, 2)), template, SIZE)
  with pytest.raises(ValueError, match="points"):
    interp.warp_points_to_template(np.zeros((2, 3)), np.zeros((2, 68, 2)), template, SIZE)


# ------------------------------------------------------- averages, spreadness


def test_average_peak_locations_matches_weighted_loops():
  rng = np.random.default_rng(6)
  locations = rng.uniform(0, 64, (9, 4, 2))
  weights = rng.uniform(0, 2, (9, 4))
  weights[:, 3] = 0.0  # a filter that never peaks
  centres, std = interp.average_peak_locations(locations, weights)
  for k in range(3):
    w = weights[:, k]
    c = sum(w[n] * locations[n, k] for n in range(9)) / w.sum()
    var = sum(w[n] * np.sum((locations[n, k] - c) ** 2) for n in range(9)) / w.sum()
    np.testing.assert_allclose(centres[k], c, rtol=1e-12)
    np.testing.assert_allclose(std[k], np.sqrt(var / 2.0), rtol=1e-12)
  assert np.isnan(centres[3]).all() and np.isnan(std[3])


def test_average_peak_locations_hand_case():
  locations = np.array([[[0.0, 0.0]], [[4.0, 0.0]]])
  centres, std = interp.average_peak_locations(locations, np.array([[1.0], [3.0]]))
  np.testing.assert_allclose(centres, [[3.0, 0.0]])
  # weighted variance along x: (1·9 + 3·1)/4 = 3, along y 0 -> per-axis RMS sqrt(1.5)
  np.testing.assert_allclose(std, [np.sqrt(1.5)])
  with pytest.raises(ValueError, match="weights"):
    interp.average_peak_locations(locations, -np.ones((2, 1)))


def test_spreadness_hand_cases():
  square = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]) + 5.0
  assert interp.spreadness(square) == pytest.approx(np.sqrt(2.0))
  with_nan = np.vstack([square, [[np.nan, np.nan]]])
  assert interp.spreadness(with_nan) == pytest.approx(np.sqrt(2.0))
  assert interp.spreadness(np.array([[3.0, 4.0]] * 5)) == 0.0
  # d̄ = 1/K Σ |c_i − mean c|: three collinear points 0, 1, 5 (mean 2) -> (2 + 1 + 3)/3
  line = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
  assert interp.spreadness(line) == pytest.approx(2.0)


def test_fraction_inside_face(template):
  centres = np.array(
    [template[30], template[36] + [1.0, 0.0], [1.0, 1.0], [62.0, 40.0], [np.nan, np.nan]]
  )
  assert interp.fraction_inside_face(centres, template) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="centres"):
    interp.fraction_inside_face(np.full((2, 2), np.nan), template)


def test_mean_feature_difference():
  clean = np.array([[1.0, 2.0], [3.0, -1.0]])
  occluded = np.array([[0.0, 2.5], [3.0, 1.0]])
  np.testing.assert_allclose(interp.mean_feature_difference(clean, occluded), [0.5, 1.25])
  with pytest.raises(ValueError, match="f_clean"):
    interp.mean_feature_difference(clean, occluded[:1])


# ---------------------------------------------------------------- retrieval


def test_part_boxes(template):
  boxes = interp.part_boxes(template)
  eyes = template[36:48]
  np.testing.assert_allclose(boxes["eyes"], [*eyes.min(0), *eyes.max(0)])
  assert set(boxes) == {"eyes", "nose", "mouth"}
  # eyes above the nose tip above the mouth
  assert boxes["eyes"][1] < template[33, 1] < boxes["mouth"][1]


def test_distance_to_box():
  box = np.array([0.0, 0.0, 2.0, 1.0])
  np.testing.assert_allclose(
    interp.distance_to_box(np.array([[1.0, 0.5], [5.0, 1.0], [-3.0, 5.0]]), box), [0.0, 3.0, 5.0]
  )


def test_select_part_filters_hand_case():
  box = np.array([10.0, 10.0, 20.0, 14.0])  # centre (15, 12)
  centres = np.array(
    [
      [15.0, 30.0],  # 16 below
      [11.0, 11.0],  # inside, 4.1 from the centre
      [np.nan, np.nan],
      [15.0, 12.0],  # inside, at the centre
      [25.0, 12.0],
    ]
  )  # 5 right
  np.testing.assert_array_equal(interp.select_part_filters(centres, box, 3), [3, 1, 4])
  with pytest.raises(ValueError, match="count"):
    interp.select_part_filters(centres, box, 5)


def test_retrieval_rank1_hand_case():
  features = np.array(
    [
      [1.0, 0.0],
      [1.0, 0.2],  # subject 0
      [0.9, 1.0],
      [0.0, 1.0],
    ]
  )  # subject 1
  labels = np.array([0, 0, 1, 1])
  # cosines: item 2 is nearer item 1 (0.80) than its mate item 3 (0.74): 3 of 4 correct
  assert interp.retrieval_rank1(features, labels) == pytest.approx(0.75)
  # element 1 only: item 0 is zero (cosine 0 with all; first other = item 1, correct), the
  # others are equal (ties go to the lowest index): items 1, 2, 3 retrieve 2, 1, 1
  assert interp.retrieval_rank1(features, labels, np.array([1])) == pytest.approx(0.25)
  with pytest.raises(ValueError, match="two items"):
    interp.retrieval_rank1(features[:3], labels[:3])


def test_retrieval_rank1_matches_loops():
  rng = np.random.default_rng(7)
  features = rng.normal(size=(12, 5))
  labels = np.repeat(np.arange(6), 2)
  filters = np.array([0, 3, 4])
  correct = 0
  for q in range(12):
    f = features[:, filters]
    sims = [
      np.dot(f[q], f[i]) / np.linalg.norm(f[q]) / np.linalg.norm(f[i]) if i != q else -np.inf
      for i in range(12)
    ]
    correct += labels[int(np.argmax(sims))] == labels[q]
  assert interp.retrieval_rank1(features, labels, filters) == pytest.approx(correct / 12)


def test_average_peak_locations_accepts_jax_arrays():
  """The trainer hands over device results."""
  centres, _ = interp.average_peak_locations(jax.numpy.ones((2, 3, 2)), jax.numpy.ones((2, 3)))
  np.testing.assert_allclose(centres, np.ones((3, 2)))
