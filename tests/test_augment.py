"""Tests for jfr.data.augment: flips, colour jitter, blurs and warped synthetic occlusion.

The occlusion tests use a hand-made, mirror-symmetric 68-point frontal template (built
here, independent of jfr.data.face_renderer) and faces made from it by random affine maps
and a nonlinear yaw-like (cylindrical) warp. References are direct NumPy renderings.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from matplotlib.path import Path
from scipy import spatial

from jfr.data import augment

SIZE = 96
CX = (SIZE - 1) / 2.0  # the mirror axis of x -> W - 1 - x


def _template() -> np.ndarray:
  """A symmetric face-like 68-point layout at 96 px (iBUG order), float32 [68, 2]."""
  pts = []
  for i in range(17):  # jaw: image-left -> chin -> right
    phi = math.pi - i * math.pi / 16
    pts.append((CX + 34 * math.cos(phi), 44 + 40 * math.sin(phi)))
  brow = [(-27, 34), (-22, 30), (-16, 29), (-10, 30), (-5, 32)]
  pts += [(CX + dx, y) for dx, y in brow]  # 17-21
  pts += [(CX - dx, y) for dx, y in reversed(brow)]  # 22-26
  pts += [(CX, y) for y in (40, 46, 52, 58)]  # 27-30
  pts += [(CX + dx, y) for dx, y in ((-8, 62), (-4, 63), (0, 64), (4, 63), (8, 62))]
  pts += [
    (CX + dx, y) for dx, y in ((-22, 44), (-18, 41), (-12, 41), (-8, 44), (-12, 46), (-18, 46))
  ]  # 36-41
  pts += [
    (CX + dx, y) for dx, y in ((8, 44), (12, 41), (18, 41), (22, 44), (18, 46), (12, 46))
  ]  # 42-47
  pts += [
    (CX + dx, y)
    for dx, y in (
      (-14, 72),
      (-9, 69),
      (-4, 68),
      (0, 69),
      (4, 68),
      (9, 69),
      (14, 72),
      (9, 76),
      (4, 78),
      (0, 78.5),
      (-4, 78),
      (-9, 76),
    )
  ]  # 48-59
  pts += [
    (CX + dx, y)
    for dx, y in ((-11, 72), (-4, 71), (0, 71.5), (4, 71), (11, 72), (4, 74), (0, 74.5), (-4, 74))
  ]  # 60-67
  out = np.asarray(pts, np.float32)
  assert out.shape == (68, 2)
  return out


TEMPLATE = _template()


def _affine(points, matrix, offset):
  return points @ np.asarray(matrix).T + np.asarray(offset)


def _random_affines(rng, count):
  mats, offs = [], []
  for _ in range(count):
    angle = rng.uniform(-0.4, 0.4)
    scale = rng.uniform(0.7, 1.1, size=2)
    shear = rng.uniform(-0.2, 0.2)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    mats.append(rot @ np.array([[scale[0], shear], [0.0, scale[1]]]))
    offs.append(rng.uniform(-8, 8, size=2) + CX - mats[-1] @ np.array([CX, CX]))
  return np.array(mats), np.array(offs)


def _yaw_warp(points, yaw_deg, radius=50.0):
  """Cylindrical head rotation: x on a cylinder of given radius turned by yaw."""
  theta = np.arcsin((points[:, 0] - CX) / radius)
  x = CX + radius * np.sin(theta + math.radians(yaw_deg))
  y = points[:, 1] + 3.0 * np.sin(theta)  # a little nonlinear vertical bend too
  return np.stack([x, y], axis=1).astype(np.float32)


def _bary_np(p, a, b, c):
  """Barycentric coordinates of p w.r.t. triangle (a, b, c) by solving the 2x2 system."""
  m = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]], np.float64)
  u, v = np.linalg.solve(m, np.asarray(p, np.float64) - a)
  return np.array([1 - u - v, u, v])


def _seed(i):
  return tf.constant([i, 1234], tf.int64)


# ------------------------------------------------------------------------------- flip


def test_flip_permutation_is_an_involution_and_mirrors_the_symmetric_template():
  perm = augment.IBUG68_FLIP_PERMUTATION
  np.testing.assert_array_equal(perm[perm], np.arange(68))
  assert perm[36] == 45 and perm[39] == 42 and perm[48] == 54 and perm[0] == 16
  assert perm[30] == 30 and perm[8] == 8
  image = np.zeros((SIZE, SIZE, 3), np.uint8)
  _, flipped, _ = augment.flip_left_right(image, TEMPLATE)
  np.testing.assert_allclose(flipped.numpy(), TEMPLATE, atol=1e-5)


def test_flip_twice_is_identity_and_keeps_left_right_semantics():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
  seg = rng.integers(0, 5, (20, 30), dtype=np.uint8)
  landmarks = rng.uniform(0, 29, (68, 2)).astype(np.float32)
  once = augment.flip_left_right(image, landmarks, seg)
  np.testing.assert_array_equal(once[0].numpy(), image[:, ::-1])
  np.testing.assert_array_equal(once[2].numpy(), seg[:, ::-1])
  # New point 36 (right eye outer corner) is the mirror of old point 45.
  np.testing.assert_allclose(once[1].numpy()[36], [29 - landmarks[45, 0], landmarks[45, 1]])
  np.testing.assert_allclose(once[1].numpy()[8], [29 - landmarks[8, 0], landmarks[8, 1]])
  twice = augment.flip_left_right(*once)
  np.testing.assert_array_equal(twice[0].numpy(), image)
  np.testing.assert_allclose(twice[1].numpy(), landmarks, atol=1e-5)
  np.testing.assert_array_equal(twice[2].numpy(), seg)


def test_flip_landmarks_follow_the_pixels():
  # A bright pixel at landmark 45's location must end up at the flipped landmark 36.
  image = np.zeros((16, 24, 1), np.uint8)
  landmarks = np.zeros((68, 2), np.float32)
  landmarks[45] = (19, 5)
  image[5, 19] = 255
  out_image, out_lm, _ = augment.flip_left_right(image, landmarks)
  x, y = out_lm.numpy()[36].astype(int)
  assert out_image.numpy()[y, x, 0] == 255


def test_flip_segmentation_permutation():
  seg = np.array([[1, 2, 0]], np.uint8)
  _, _, out = augment.flip_left_right(
    np.zeros((1, 3, 3)), segmentation=seg, segmentation_permutation=[0, 2, 1]
  )
  np.testing.assert_array_equal(out.numpy(), [[0, 1, 2]])


def test_random_flip_is_deterministic_and_consistent_across_maps():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
  mask = rng.uniform(size=(8, 8, 1)) > 0.5
  outcomes = set()
  for i in range(16):
    a = augment.random_flip(image, _seed(i)).numpy()
    b = augment.random_flip(image, _seed(i)).numpy()
    np.testing.assert_array_equal(a, b)
    flipped = bool(np.array_equal(a, image[:, ::-1]))
    assert flipped or np.array_equal(a, image)
    outcomes.add(flipped)
    m = augment.random_flip(mask, _seed(i)).numpy()
    np.testing.assert_array_equal(m, mask[:, ::-1] if flipped else mask)
  assert outcomes == {True, False}


def test_random_flip_features():
  rng = np.random.default_rng(2)
  ex = {
    "image": rng.integers(0, 256, (8, 10, 3), dtype=np.uint8),
    "landmarks": rng.uniform(0, 9, (68, 2)).astype(np.float32),
    "segmentation": rng.integers(0, 4, (8, 10), dtype=np.uint8),
    "occluder_mask": rng.uniform(size=(8, 10)) > 0.5,
    "label": np.int64(3),
  }
  for i in range(8):
    out = augment.random_flip_features(ex, _seed(i))
    flipped = bool(np.array_equal(out["image"].numpy(), ex["image"][:, ::-1]))
    ref = augment.flip_left_right(ex["image"], ex["landmarks"], ex["segmentation"])
    if flipped:
      np.testing.assert_allclose(out["landmarks"].numpy(), ref[1].numpy())
      np.testing.assert_array_equal(out["segmentation"].numpy(), ex["segmentation"][:, ::-1])
      np.testing.assert_array_equal(out["occluder_mask"].numpy(), ex["occluder_mask"][:, ::-1])
    else:
      np.testing.assert_array_equal(out["occluder_mask"].numpy(), ex["occluder_mask"])
    assert out["label"] == 3


def test_random_flip_rejects_bad_seed():
  with pytest.raises(ValueError, match="seed"):
    augment.random_flip(np.zeros((4, 4, 3)), np.array([1.0, 2.0]))
  with pytest.raises(ValueError, match="seed"):
    augment.random_flip(np.zeros((4, 4, 3)), np.array([1, 2, 3]))


# ---------------------------------------------------------------------- colour jitter


def test_color_jitter_zero_strength_is_identity_and_deterministic():
  rng = np.random.default_rng(3)
  image = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
  np.testing.assert_array_equal(augment.color_jitter(image, _seed(0), 0.0, 0.0, 0.0).numpy(), image)
  a = augment.color_jitter(image, _seed(5), 0.3, 0.4, 0.5).numpy()
  b = augment.color_jitter(image, _seed(5), 0.3, 0.4, 0.5).numpy()
  c = augment.color_jitter(image, _seed(6), 0.3, 0.4, 0.5).numpy()
  np.testing.assert_array_equal(a, b)
  assert a.dtype == np.uint8 and not np.array_equal(a, c)


def test_color_jitter_brightness_is_a_bounded_shift_in_model_range():
  image = np.linspace(-0.5, 0.5, 48, dtype=np.float32).reshape(4, 4, 3)
  deltas = []
  for i in range(10):
    out = augment.color_jitter(image, _seed(i), 0.2, 0.0, 0.0).numpy()
    delta = out - image
    np.testing.assert_allclose(delta, delta.flat[0], atol=1e-5)  # one shift everywhere
    assert abs(delta.flat[0]) <= 2 * 0.2 + 1e-6  # 0.2 of [0,1] = 0.4 of [-1,1]
    deltas.append(delta.flat[0])
  assert np.std(deltas) > 0.01


def test_color_jitter_contrast_keeps_channel_means_and_saturation_keeps_grey():
  rng = np.random.default_rng(4)
  image = rng.uniform(-0.3, 0.3, (6, 6, 3)).astype(np.float32)
  out = augment.color_jitter(image, _seed(1), 0.0, 0.5, 0.0).numpy()
  np.testing.assert_allclose(out.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=1e-5)
  factor = (out - out.mean((0, 1))) / (image - image.mean((0, 1)))
  assert 0.5 - 1e-4 <= factor.mean() <= 1.5 + 1e-4
  np.testing.assert_allclose(factor, factor.mean(), atol=1e-3)
  grey = np.repeat(rng.uniform(-0.8, 0.8, (6, 6, 1)), 3, axis=-1).astype(np.float32)
  np.testing.assert_allclose(
    augment.color_jitter(grey, _seed(2), 0.0, 0.0, 0.9).numpy(), grey, atol=1e-5
  )


def test_color_jitter_validates_strengths():
  with pytest.raises(ValueError, match="contrast"):
    augment.color_jitter(np.zeros((4, 4, 3), np.uint8), _seed(0), 0.1, 1.5, 0.1)


# ------------------------------------------------------------------------ motion blur


def _reference_line_kernel(size, angle):
  """Brute-force NumPy: weight = max(0, 1 - distance(cell centre, segment)), normalised."""
  half = (size - 1) / 2.0
  d = np.array([math.cos(math.radians(angle)), -math.sin(math.radians(angle))])
  a, b = -half * d, half * d
  k = np.zeros((size, size))
  for r in range(size):
    for c in range(size):
      p = np.array([c - half, r - half])
      t = np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0, 1)
      k[r, c] = max(0.0, 1.0 - np.linalg.norm(p - (a + t * (b - a))))
  return k / k.sum()


@pytest.mark.parametrize("size", [1, 3, 7, 9, 17])
@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 90.0, 137.0])
def test_motion_blur_kernel_matches_reference_and_sums_to_one(size, angle):
  k = augment.motion_blur_kernel(size, angle).numpy()
  assert k.shape == (size, size)
  np.testing.assert_allclose(k.sum(), 1.0, atol=1e-5)
  np.testing.assert_allclose(k, _reference_line_kernel(size, angle), atol=1e-5)


@pytest.mark.parametrize("size", [7, 9, 11, 13, 15, 17])
def test_motion_blur_kernel_size_and_angle(size):
  horizontal = augment.motion_blur_kernel(size, 0.0).numpy()
  expected = np.zeros((size, size))
  expected[size // 2] = 1.0 / size
  np.testing.assert_allclose(horizontal, expected, atol=1e-6)
  np.testing.assert_allclose(augment.motion_blur_kernel(size, 90.0).numpy(), expected.T, atol=1e-6)
  for angle in (20.0, 45.0, 70.0, 120.0, 160.0):
    k = augment.motion_blur_kernel(size, angle).numpy()
    half = size // 2
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1]
    # Principal axis of the weights, with y pointing up (counter-clockwise angles).
    cov = np.cov(np.stack([xs.ravel(), -ys.ravel()]), aweights=k.ravel())
    evals, evecs = np.linalg.eigh(cov)
    axis = evecs[:, -1]
    measured = math.degrees(math.atan2(axis[1], axis[0])) % 180.0
    assert min(abs(measured - angle), 180 - abs(measured - angle)) < 2.0
    # Extent along the axis: the support reaches +-(size - 1)/2 but not beyond +1.
    proj = np.abs(xs * math.cos(math.radians(angle)) - ys * math.sin(math.radians(angle)))
    assert proj[k > 1e-6].max() <= (size - 1) / 2 + 1.0
    assert proj[k > 1e-6].max() >= (size - 1) / 2 - 0.5


def test_motion_blur_kernel_rejects_even_size():
  with pytest.raises(ValueError, match="size"):
    augment.motion_blur_kernel(8, 0.0)


def test_apply_motion_blur_impulse_response_and_brightness():
  image = np.zeros((21, 21, 1), np.float32)
  image[10, 10] = 1.0
  out = augment.apply_motion_blur(image, 9, 45.0).numpy()[..., 0]
  k = augment.motion_blur_kernel(9, 45.0).numpy()
  np.testing.assert_allclose(out[6:15, 6:15], k, atol=1e-6)
  np.testing.assert_allclose(out.sum(), 1.0, atol=1e-5)
  constant = np.full((2, 12, 12, 3), 77, np.uint8)
  np.testing.assert_array_equal(augment.apply_motion_blur(constant, 17, 33.0).numpy(), constant)
  rng = np.random.default_rng(5)
  image = rng.uniform(-1, 1, (40, 40, 3)).astype(np.float32)
  blurred = augment.apply_motion_blur(image, 7, 60.0).numpy()
  assert abs(blurred.mean() - image.mean()) < 0.01
  assert blurred.std() < image.std()


def test_random_motion_blur():
  impulse = np.zeros((31, 31, 1), np.float32)
  impulse[15, 15] = 1.0
  np.testing.assert_array_equal(augment.motion_blur(impulse, _seed(0), 9, 0.0).numpy(), impulse)
  responses = []
  for i in range(12):
    out = augment.motion_blur(impulse, _seed(i), max_size=9, prob=1.0).numpy()[..., 0]
    np.testing.assert_array_equal(
      out, augment.motion_blur(impulse, _seed(i), max_size=9, prob=1.0).numpy()[..., 0]
    )
    np.testing.assert_allclose(out.sum(), 1.0, atol=1e-5)
    rows, cols = np.nonzero(out > 1e-6)
    assert rows.min() >= 11 and rows.max() <= 19 and cols.min() >= 11 and cols.max() <= 19
    assert out.max() < 0.5  # blurred: at least 3 px long
    responses.append(out)
  assert len({r.tobytes() for r in responses}) > 6
  applied = [
    not np.array_equal(augment.motion_blur(impulse, _seed(i)).numpy(), impulse) for i in range(40)
  ]
  assert 8 <= sum(applied) <= 32  # prob 0.5


# ------------------------------------------------------------------------ gaussian blur


def test_gaussian_blur_impulse_response():
  sigma = 1.3
  image = np.zeros((25, 25, 1), np.float32)
  image[12, 12] = 1.0
  out = augment.gaussian_blur(image, sigma).numpy()[..., 0]
  r = math.ceil(3 * sigma)
  ref = np.zeros((2 * r + 1, 2 * r + 1))
  for i in range(-r, r + 1):
    for j in range(-r, r + 1):
      ref[i + r, j + r] = math.exp(-(i * i + j * j) / (2 * sigma * sigma))
  ref /= ref.sum()
  np.testing.assert_allclose(out[12 - r : 13 + r, 12 - r : 13 + r], ref, atol=1e-6)
  np.testing.assert_allclose(out.sum(), 1.0, atol=1e-5)
  const = np.full((9, 9, 3), 200, np.uint8)
  np.testing.assert_array_equal(augment.gaussian_blur(const, 2.0).numpy(), const)
  np.testing.assert_array_equal(augment.gaussian_blur(const, 0.0).numpy(), const)
  with pytest.raises(ValueError, match="sigma"):
    augment.gaussian_blur(const, -1.0)


# ------------------------------------------------------------------ synthetic occlusion


def test_static_rectangle_size_and_placement_inside_the_face():
  hull = spatial.Delaunay(TEMPLATE)
  centres = set()
  for i in range(10):
    rect = augment.sample_occlusion_rectangle(_seed(i), SIZE, "static", TEMPLATE).numpy()
    assert rect.shape == (4, 2)
    np.testing.assert_allclose(rect[1] - rect[0], [32, 0], atol=1e-4)
    np.testing.assert_allclose(rect[3] - rect[0], [0, 12], atol=1e-4)
    np.testing.assert_allclose(rect[2], rect[1] + rect[3] - rect[0], atol=1e-4)
    assert np.all(hull.find_simplex(rect, tol=1e-3) >= 0), rect
    centres.add(tuple(rect.mean(0).round(2)))
    np.testing.assert_array_equal(
      rect, augment.sample_occlusion_rectangle(_seed(i), SIZE, "static", TEMPLATE).numpy()
    )
  assert len(centres) >= 8


def test_dynamic_rectangle_sides_and_image_scale():
  sides = []
  scale = 64 / 96
  template = TEMPLATE * scale
  for i in range(30):
    rect = augment.sample_occlusion_rectangle(_seed(i), 64, "dynamic", template).numpy()
    w, h = (rect[2] - rect[0]) / scale
    for side in (w, h):
      assert 12 - 1e-3 <= side <= 32 + 1e-3 and abs(side - round(side)) < 1e-3
    sides.append((round(w), round(h)))
    assert np.all(spatial.Delaunay(template).find_simplex(rect, tol=1e-3) >= 0)
  assert len(set(sides)) > 10
  rect = augment.sample_occlusion_rectangle(_seed(0), 64, "static", template).numpy()
  np.testing.assert_allclose(rect[2] - rect[0], [32 * scale, 12 * scale], atol=1e-4)


def test_rectangle_errors():
  with pytest.raises(ValueError, match="mode"):
    augment.sample_occlusion_rectangle(_seed(0), SIZE, "moving", TEMPLATE)
  with pytest.raises(ValueError, match="too small"):
    augment.sample_occlusion_rectangle(_seed(0), SIZE, "static", TEMPLATE * 0.2)
  with pytest.raises(ValueError, match="template_landmarks"):
    augment.sample_occlusion_rectangle(_seed(0), SIZE, "static", TEMPLATE[:, :1])


def test_mesh_triangles_cover_the_hull():
  tris = augment.mesh_triangles(TEMPLATE)
  assert tris.ndim == 2 and tris.shape[1] == 3 and len(tris) > 90
  a, b, c = (TEMPLATE[tris[:, k]].astype(np.float64) for k in range(3))
  area = 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
  assert np.all(area > 0)
  np.testing.assert_allclose(area.sum(), spatial.ConvexHull(TEMPLATE).volume, rtol=1e-6)


def test_warp_of_affine_faces_is_the_affine_image_of_the_rectangle():
  rng = np.random.default_rng(6)
  mats, offs = _random_affines(rng, 5)
  faces = np.stack([_affine(TEMPLATE, m, o) for m, o in zip(mats, offs)]).astype(np.float32)
  rect = augment.sample_occlusion_rectangle(_seed(3), SIZE, "dynamic", TEMPLATE).numpy()
  quads = augment.warp_rectangle_to_faces(rect, TEMPLATE, faces).numpy()
  assert quads.shape == (5, 4, 2)
  for b in range(5):
    np.testing.assert_allclose(quads[b], _affine(rect, mats[b], offs[b]), atol=2e-3)
  # Points outside the mesh (extrapolated from the nearest triangle) too.
  outside = np.array([[2.0, 3.0], [90.0, 93.0]], np.float32)
  warped = augment.warp_rectangle_to_faces(outside, TEMPLATE, faces).numpy()
  for b in range(5):
    np.testing.assert_allclose(warped[b], _affine(outside, mats[b], offs[b]), atol=2e-3)


def _point_triangle_distance(p, tri):
  if np.all(_bary_np(p, *tri) >= -1e-9):
    return 0.0
  best = np.inf
  for k in range(3):
    a, b = tri[k], tri[(k + 1) % 3]
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0, 1)
    best = min(best, np.linalg.norm(p - a - t * (b - a)))
  return best


def test_barycentric_coordinates_inside_and_nearest_outside():
  tris = augment.mesh_triangles(TEMPLATE)
  pts = np.array([[CX, 60.0], [30.0, 50.0], [2.0, 3.0], [50.0, 95.0], [95.0, 40.0]], np.float32)
  index, coords = augment.barycentric_coordinates(pts, TEMPLATE)
  index, coords = index.numpy(), coords.numpy()
  t64 = TEMPLATE.astype(np.float64)
  for v, p in enumerate(pts.astype(np.float64)):
    tri = t64[tris[index[v]]]
    np.testing.assert_allclose(coords[v], _bary_np(p, *tri), atol=1e-4)
    np.testing.assert_allclose(coords[v] @ tri, p, atol=1e-3)
    dists = [_point_triangle_distance(p, t64[t]) for t in tris]
    np.testing.assert_allclose(dists[index[v]], min(dists), atol=1e-4)
  assert np.all(coords[:2] >= -1e-5) and np.any(coords[2:] < 0)


@pytest.mark.parametrize("yaw", [-30.0, 15.0, 35.0])
def test_same_rectangle_lands_on_same_landmarks_across_poses(yaw):
  rng = np.random.default_rng(int(yaw) + 100)
  mats, offs = _random_affines(rng, 3)
  faces = np.stack(
    [_affine(_yaw_warp(TEMPLATE, yaw), m, o) for m, o in zip(mats, offs)] + [TEMPLATE]
  ).astype(np.float32)
  tri = spatial.Delaunay(TEMPLATE.astype(np.float64))
  for mode in ("static", "dynamic"):
    rect = augment.sample_occlusion_rectangle(_seed(7), SIZE, mode, TEMPLATE).numpy()
    quads = augment.warp_rectangle_to_faces(rect, TEMPLATE, faces).numpy()
    np.testing.assert_allclose(quads[-1], rect, atol=1e-3)  # the template face itself
    for v in range(4):
      simplex = tri.simplices[tri.find_simplex(rect[v], tol=1e-3)]
      ref = _bary_np(rect[v], *TEMPLATE[simplex].astype(np.float64))
      for b in range(len(faces)):
        got = _bary_np(quads[b, v], *faces[b][simplex].astype(np.float64))
        np.testing.assert_allclose(got, ref, atol=1e-3)


def test_occlusion_mask_of_the_template_is_the_rectangle():
  rect = augment.sample_occlusion_rectangle(_seed(11), SIZE, "static", TEMPLATE).numpy()
  quads = augment.warp_rectangle_to_faces(rect, TEMPLATE, TEMPLATE[None]).numpy()
  mask = augment.occlusion_masks(quads, SIZE).numpy()[0]
  ys, xs = np.mgrid[0:SIZE, 0:SIZE]
  x0, y0 = rect.min(0)
  x1, y1 = rect.max(0)
  inside = (xs > x0 + 1e-3) & (xs < x1 - 1e-3) & (ys > y0 + 1e-3) & (ys < y1 - 1e-3)
  certain = (xs < x0 - 1e-3) | (xs > x1 + 1e-3) | (ys < y0 - 1e-3) | (ys > y1 + 1e-3)
  assert np.all(mask[inside]) and not np.any(mask[certain])
  assert 32 * 12 - 50 <= mask.sum() <= 33 * 13


def test_occlusion_masks_match_matplotlib_point_in_polygon():
  rng = np.random.default_rng(8)
  quads = rng.uniform(-10, 50, (6, 4, 2)).astype(np.float32)
  quads[0] = [[5.3, 4.1], [30.7, 8.2], [20.2, 35.9], [22.1, 12.4]]  # non-convex
  masks = augment.occlusion_masks(quads, (40, 48)).numpy()
  assert masks.shape == (6, 40, 48) and masks.dtype == bool
  ys, xs = np.mgrid[0:40, 0:48]
  centres = np.stack([xs.ravel(), ys.ravel()], 1)
  for b in range(6):
    ref = Path(quads[b].astype(np.float64)).contains_points(centres).reshape(40, 48)
    assert np.sum(ref != masks[b]) == 0


def test_apply_occlusion_fills():
  rng = np.random.default_rng(9)
  images = rng.integers(10, 246, (2, 16, 16, 3), dtype=np.uint8)
  masks = np.zeros((2, 16, 16), bool)
  masks[:, 4:10, 3:12] = True
  black = augment.apply_occlusion(images, masks, "black").numpy()
  assert np.all(black[masks] == 0)
  np.testing.assert_array_equal(black[~masks], images[~masks])
  floats = images.astype(np.float32) / 127.5 - 1.0
  assert np.all(augment.apply_occlusion(floats, masks, "black").numpy()[masks] == -1.0)
  noise = augment.apply_occlusion(images, masks, "noise", _seed(1)).numpy()
  np.testing.assert_array_equal(
    noise, augment.apply_occlusion(images, masks, "noise", _seed(1)).numpy()
  )
  np.testing.assert_array_equal(noise[~masks], images[~masks])
  values = noise[masks].astype(np.float64) / 255.0
  assert abs(values.mean() - augment.NOISE_FILL_MEAN) < 0.05
  assert 0.15 < values.std() < 0.3
  with pytest.raises(ValueError, match="seed"):
    augment.apply_occlusion(images, masks, "noise")
  with pytest.raises(ValueError, match="fill"):
    augment.apply_occlusion(images, masks, "grey")


def _posed_batch(rng, count=4):
  mats, offs = _random_affines(rng, count)
  yaws = rng.uniform(-30, 30, count)
  faces = np.stack(
    [_affine(_yaw_warp(TEMPLATE, y), m, o) for y, m, o in zip(yaws, mats, offs)]
  ).astype(np.float32)
  images = rng.integers(30, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)
  return images, faces


def test_occlude_batch_eager_and_in_tf_data_map():
  rng = np.random.default_rng(10)
  images, faces = _posed_batch(rng)
  out, masks = augment.occlude_batch(images, faces, _seed(4), "dynamic", "black", TEMPLATE)
  out, masks = out.numpy(), masks.numpy()
  assert masks.shape == (4, SIZE, SIZE) and np.all(masks.sum(axis=(1, 2)) > 50)
  assert np.all(out[masks] == 0)
  np.testing.assert_array_equal(out[~masks], images[~masks])
  rect = augment.sample_occlusion_rectangle(
    tf.random.experimental.stateless_split(_seed(4), 2)[0], SIZE, "dynamic", TEMPLATE
  ).numpy()
  quads = augment.warp_rectangle_to_faces(rect, TEMPLATE, faces).numpy()
  np.testing.assert_array_equal(masks, augment.occlusion_masks(quads, SIZE).numpy())

  ds = tf.data.Dataset.from_tensor_slices((images, faces)).batch(4)
  ds = ds.map(lambda im, lm: augment.occlude_batch(im, lm, _seed(4), "dynamic", "black", TEMPLATE))
  graph_out, graph_masks = next(iter(ds))
  np.testing.assert_array_equal(graph_masks.numpy(), masks)
  np.testing.assert_array_equal(graph_out.numpy(), out)
  other = augment.occlude_batch(images, faces, _seed(5), "dynamic", "black", TEMPLATE)[1]
  assert not np.array_equal(other.numpy(), masks)


def test_occlude_batch_noise_float_images_and_missing_landmarks():
  rng = np.random.default_rng(12)
  images, faces = _posed_batch(rng, 2)
  floats = images.astype(np.float32) / 127.5 - 1.0
  out, masks = augment.occlude_batch(floats, faces, _seed(2), "static", "noise", TEMPLATE)
  out, masks = out.numpy(), masks.numpy()
  assert out.dtype == np.float32 and out.min() >= -1.0 and out.max() <= 1.0
  assert not np.allclose(out[masks], floats[masks])
  np.testing.assert_array_equal(out[~masks], floats[~masks])
  faces[1, 3] = np.nan
  with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
    augment.occlude_batch(images, faces, _seed(2), "static", "black", TEMPLATE)
  with pytest.raises(ValueError, match="images"):
    augment.occlude_batch(images[0], faces[0], _seed(2), "static", "black", TEMPLATE)


def test_occlude_batch_on_rendered_faces_with_the_default_template():
  from jfr.data import face_renderer  # the renderer's frontal template is the default

  latents = face_renderer.identity_latents(0, np.arange(4))
  nuisances = face_renderer.sample_nuisances(np.random.default_rng(0), 4)
  nuisances["yaw"] = np.array([-35.0, -10.0, 0.0, 30.0])
  faces = face_renderer.render(latents, nuisances, 64, seed_or_rng=0)
  for i in range(3):
    out, masks = augment.occlude_batch(
      faces["image"], faces["landmarks"], _seed(i), "dynamic", "noise"
    )
    masks = masks.numpy()
    assert out.shape == faces["image"].shape and out.dtype == tf.uint8
    for b in range(4):
      assert masks[b].sum() > 10
      assert np.mean(faces["segmentation"][b][masks[b]] == 0) < 0.15  # on the face


def test_package_exports_the_public_names():
  """``from jfr.data import augment; augment.<name>`` works for every public op."""
  from jfr.data.augment import blur, color, flip, occlusion

  for name, module in (
    ("flip_left_right", flip),
    ("random_flip", flip),
    ("random_flip_features", flip),
    ("IBUG68_FLIP_PERMUTATION", flip),
    ("color_jitter", color),
    ("motion_blur_kernel", blur),
    ("apply_motion_blur", blur),
    ("motion_blur", blur),
    ("gaussian_blur", blur),
    ("default_template_landmarks", occlusion),
    ("sample_occlusion_rectangle", occlusion),
    ("warp_rectangle_to_faces", occlusion),
    ("occlusion_masks", occlusion),
    ("apply_occlusion", occlusion),
    ("occlude_batch", occlusion),
    ("NOISE_FILL_MEAN", occlusion),
    ("STATIC_OCCLUSION_SIZE", occlusion),
  ):
    assert name in augment.__all__
    assert getattr(augment, name) is getattr(module, name)
