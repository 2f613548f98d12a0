"""Tests of jfr.data.resize."""

import numpy as np
import pytest
import tensorflow as tf

from jfr.data import resize


def test_resize_faces_returns_same_object_at_the_target_size():
  images = np.zeros((2, 8, 8, 3), np.float32)
  assert resize.resize_faces(images, 8) is images


def test_resize_faces_matches_tf_antialiased_bilinear():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
  out = np.asarray(resize.resize_faces(images, 8))
  expected = tf.image.resize(images, (8, 8), method="bilinear", antialias=True).numpy()
  np.testing.assert_array_equal(out, expected)
  # antialiased 2x reduction of a constant image stays constant
  np.testing.assert_allclose(resize.resize_faces(np.full((1, 16, 16, 3), 0.5), 8), 0.5, atol=1e-6)


def test_resize_faces_rejects_non_square_and_bad_size():
  with pytest.raises(ValueError, match="images"):
    resize.resize_faces(np.zeros((1, 8, 6, 3)), 4)
  with pytest.raises(ValueError, match="size"):
    resize.resize_faces(np.zeros((1, 8, 8, 3)), 0)


def test_scale_landmarks_keeps_pixel_centres_and_edges():
  # the image edge -0.5 / S - 0.5 maps to the new edge; the centre maps to the centre
  points = np.array([[-0.5, -0.5], [111.5, 111.5], [55.5, 55.5]])
  out = resize.scale_landmarks(points, 112, 96)
  np.testing.assert_allclose(out, [[-0.5, -0.5], [95.5, 95.5], [47.5, 47.5]], atol=1e-5)
  assert out.dtype == np.float32
  # pixel centre 0 of a 2x larger image lies between the new pixels: (0 + 0.5) / 2 - 0.5
  assert resize.scale_landmarks(np.array([[0.0, 0.0]]), 64, 32)[0, 0] == pytest.approx(-0.25)
  with pytest.raises(ValueError, match="landmarks"):
    resize.scale_landmarks(np.zeros((3, 3)), 64, 32)
