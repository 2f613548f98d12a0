"""Tests for jfr.data.array_pipeline (in-memory stills as a resumable training stream)."""

import numpy as np
import pytest

from jfr.data import array_pipeline


def _take(images, labels, start, n, **kwargs):
  ds = array_pipeline.array_batches(images, labels, 4, seed=1, start_batch=start, **kwargs)
  return [b for _, b in zip(range(n), ds.as_numpy_iterator())]


def test_array_batches_are_deterministic_and_resume():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
  labels = np.arange(10)
  full = _take(images, labels, 0, 5, augment_options={"flip": True})
  resumed = _take(images, labels, 3, 2, augment_options={"flip": True})
  for a, b in zip(full[3:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  seen = np.concatenate([b["label"] for b in full[:5]])
  assert sorted(seen[:10]) == list(range(10))  # each epoch is a permutation of the set
  assert full[0]["image"].dtype == np.float32 and full[0]["label"].dtype == np.int32
  assert np.abs(full[0]["image"]).max() <= 1.0


def test_without_augmentation_images_are_the_stored_pixels_in_model_range():
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
  labels = np.arange(6) + 100
  for batch in _take(images, labels, 0, 3):
    for image, label in zip(batch["image"], batch["label"]):
      expected = images[label - 100].astype(np.float32) * np.float32(2.0 / 255.0) - 1.0
      np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize(
  "images,labels",
  [(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0)), (np.zeros((3, 8, 8), np.uint8), np.arange(3))],
)
def test_bad_shapes_are_errors(images, labels):
  with pytest.raises(ValueError, match="images/labels"):
    array_pipeline.array_batches(images, labels, 2, seed=0)
