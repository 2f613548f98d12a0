"""Tests for jfr.data.align: Umeyama against an independent least-squares solve, known
transforms, templates, box crops and the warp's pixel convention."""

import numpy as np
import pytest

from jfr.data import align


def _similarity(scale, angle, tx, ty):
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def _lstsq_similarity(src, dst):
  """Independent solution: dst = [a -b; b a] src + t is linear in (a, b, tx, ty)."""
  rows, rhs = [], []
  for (x, y), (u, v) in zip(src, dst):
    rows.append([x, -y, 1, 0])
    rhs.append(u)
    rows.append([y, x, 0, 1])
    rhs.append(v)
  (a, b, tx, ty), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
  return np.array([[a, -b, tx], [b, a, ty]])


def test_umeyama_recovers_known_transforms():
  rng = np.random.default_rng(0)
  src = rng.uniform(0, 200, (7, 5, 2))
  truth = np.stack(
    [
      _similarity(rng.uniform(0.2, 3), rng.uniform(-np.pi, np.pi), *rng.uniform(-50, 50, 2))
      for _ in range(7)
    ]
  )
  dst = align.transform_points(src, truth)
  np.testing.assert_allclose(align.umeyama(src, dst), truth, atol=1e-9)


def test_umeyama_matches_linear_least_squares_with_noise():
  rng = np.random.default_rng(1)
  src = rng.uniform(0, 100, (20, 5, 2))
  dst = align.ARCFACE_TEMPLATE_112 + rng.normal(0, 4, (20, 5, 2))
  got = align.umeyama(src, dst)
  for i in range(20):
    np.testing.assert_allclose(got[i], _lstsq_similarity(src[i], dst[i]), atol=1e-8)


def test_umeyama_never_reflects_and_rigid_mode():
  src = np.array([[0.0, 0], [1, 0], [0, 1], [1, 1.5]])
  mirrored = src * np.array([-1.0, 1])
  m = align.umeyama(src, mirrored)
  assert np.linalg.det(m[:, :2]) > 0
  truth = _similarity(1.0, 0.3, 2, -1)
  rigid = align.umeyama(src, align.transform_points(src, truth) * 1.0, estimate_scale=False)
  np.testing.assert_allclose(rigid, truth, atol=1e-9)


def test_umeyama_errors():
  with pytest.raises(ValueError, match="src"):
    align.umeyama(np.zeros((5, 3)), np.zeros((5, 3)))
  with pytest.raises(ValueError, match="coincide"):
    align.umeyama(np.ones((5, 2)), align.ARCFACE_TEMPLATE_112)
  with pytest.raises(ValueError, match="NaN"):
    align.umeyama(np.full((5, 2), np.nan), align.ARCFACE_TEMPLATE_112)


def test_arcface_template_sizes():
  t112 = align.arcface_template(112)
  assert t112[0, 0] == pytest.approx(38.2946) and t112[4, 1] == pytest.approx(92.2041)
  np.testing.assert_allclose(align.arcface_template(224), t112 * 2)
  np.testing.assert_allclose(align.arcface_template(64), t112 * 64 / 112)
  t128 = align.arcface_template(128)  # insightface: same face, 8 px more on each side
  np.testing.assert_allclose(t128, t112 + np.array([8.0, 0.0]))
  with pytest.raises(ValueError, match="image_size"):
    align.arcface_template(0)


def test_five_point_transforms_map_landmarks_onto_template():
  truth = _similarity(2.5, 0.4, 30, 60)
  faces = align.transform_points(align.ARCFACE_TEMPLATE_112, _invert(truth))
  m = align.five_point_transforms(faces[None], 112)
  assert m.shape == (1, 2, 3)
  np.testing.assert_allclose(
    align.transform_points(faces, m[0]), align.ARCFACE_TEMPLATE_112, atol=1e-9
  )
  with pytest.raises(ValueError, match="landmarks"):
    align.five_point_transforms(np.zeros((2, 4, 2)), 112)


def _invert(m):
  a = np.linalg.inv(m[:, :2])
  return np.concatenate([a, -a @ m[:, 2:]], 1)


def test_box_transforms_square_crop_with_margin():
  m = align.box_transforms(np.array([[10.0, 20, 40, 80]]), 64, margin=0.0)[0]
  # Box corners in edge coordinates: centre (30, 60); side 80 -> scale 0.8.
  np.testing.assert_allclose(m[:, :2], 0.8 * np.eye(2))
  centre = align.transform_points(np.array([[29.5, 59.5]]), m)[0]
  np.testing.assert_allclose(centre, [31.5, 31.5])
  top = align.transform_points(np.array([[29.5, 19.5]]), m)[0]  # top edge -> top edge
  np.testing.assert_allclose(top[1], -0.5)
  wide = align.box_transforms(np.array([10.0, 20, 40, 80]), 64, margin=0.25)
  np.testing.assert_allclose(wide[0, 0], 64 / 100)
  with pytest.raises(ValueError, match="boxes"):
    align.box_transforms(np.array([[0, 0, -1, 4.0]]), 64)


def test_warp_pixel_convention_and_fill():
  image = np.zeros((20, 30, 3), np.uint8)
  image[5, 7] = 255  # x = 7, y = 5
  m = np.array([[1.0, 0, 3], [0, 1, 2]])  # shift by (3, 2)
  out = align.warp(image, m, (20, 30))
  assert np.argwhere(out[..., 0] > 0).tolist() == [[7, 10]]
  # Doubling about pixel centres: centre 7 -> 14 with q = 2 p.
  out = align.warp(image, np.array([[2.0, 0, 0], [0, 2, 0]]), 40, interpolation="nearest")
  assert out[10, 14, 0] == 255
  # Everything outside the source is the fill value.
  out = align.warp(image, np.array([[1.0, 0, 100], [0, 1, 0]]), 20, fill=(1, 2, 3))
  assert (out == np.array([1, 2, 3], np.uint8)).all()


def test_warp_downscale_is_box_averaged_and_aligns_template():
  # A large checkerboard shrunk 8x: averaging gives ~mid grey, plain sampling would not.
  board = (np.indices((512, 512)).sum(0) % 2 * 255).astype(np.uint8)
  board = np.repeat(board[..., None], 3, -1)
  small = align.warp(board, np.array([[0.125, 0, 0], [0, 0.125, 0]]), 64)
  assert abs(small.mean() - 127.5) < 3 and small.std() < 3
  # Five bright dots at random landmark positions end up on the template.
  truth = _similarity(0.5, 0.2, -10, 5)  # source -> aligned
  landmarks = align.transform_points(align.ARCFACE_TEMPLATE_112, _invert(truth))
  photo = np.zeros((300, 300, 3), np.uint8)
  for x, y in np.round(landmarks).astype(int):
    photo[y - 3 : y + 4, x - 3 : x + 4] = 255
  aligned = align.warp(photo, align.five_point_transforms(landmarks, 112), 112)
  for x, y in align.ARCFACE_TEMPLATE_112:
    assert aligned[int(round(y)), int(round(x)), 0] > 100


def test_align_faces_batch_and_errors():
  images = [np.full((50, 40, 3), v, np.uint8) for v in (10, 200)]
  boxes = np.array([[0.0, 0, 40, 50], [5, 5, 20, 20]])
  out = align.align_faces(images, align.box_transforms(boxes, 32, 0.1), 32)
  assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
  assert out[1, 16, 16, 0] == 200
  with pytest.raises(ValueError, match="matrices"):
    align.align_faces(images, np.zeros((3, 2, 3)), 32)
  with pytest.raises(ValueError, match="image"):
    align.warp(np.zeros((4, 4, 3), np.float32), np.eye(2, 3), 4)
  with pytest.raises(ValueError, match="interpolation"):
    align.warp(images[0], np.eye(2, 3), 4, interpolation="lanczos")


def test_resize_transform_maps_edges_to_edges():
  m = align.resize_transform(218, 178, 112)
  corners = align.transform_points(np.array([[-0.5, -0.5], [177.5, 217.5]]), m)
  np.testing.assert_allclose(corners, [[-0.5, -0.5], [111.5, 111.5]])


def test_axis_aligned_crop_samples_the_right_source_points():
  # A linear ramp is reproduced exactly by bilinear sampling: value(q) = ramp(M^-1 q).
  x = np.arange(80, dtype=np.float64)
  ramp = np.repeat(np.tile(x * 3, (60, 1))[..., None], 3, -1).astype(np.uint8)
  m = align.box_transforms(np.array([20.0, 10, 30, 30]), 60)  # 2x upscale, inside
  out = align.warp(ramp, m, 60).astype(float)
  q = np.arange(60, dtype=np.float64)
  p = (q - m[0, 2]) / m[0, 0]
  np.testing.assert_allclose(out[30, 2:-2, 0], np.round(p[2:-2] * 3), atol=1.0)
