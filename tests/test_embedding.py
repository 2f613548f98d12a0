"""Tests for jfr.eval.embedding: the uint8 embedding contract, flip averaging, set means."""

import functools

import numpy as np
import pytest

from jfr.data import pipelines
from jfr.eval import embedding


def _linear(variables, images):
  """A toy model: per-image mean of each channel times a weight -> [b, 3]."""
  return images.mean(axis=(1, 2)) * variables["w"]


def test_model_embedder_converts_batches_and_pads():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(5, 4, 4, 3), dtype=np.uint8)
  embed = embedding.model_embedder(_linear, {"w": 2.0}, input_size=4, batch_size=2)
  out = embed(images)
  expected = pipelines.to_model_range_np(images).mean(axis=(1, 2)) * 2.0
  assert out.shape == (5, 3) and out.dtype == np.float32
  np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_model_embedder_resizes_square_images_and_refuses_others():
  images = np.full((2, 8, 8, 3), 255, np.uint8)
  embed = embedding.model_embedder(_linear, {"w": 1.0}, input_size=4, batch_size=4)
  np.testing.assert_allclose(embed(images), np.ones((2, 3)), atol=1e-6)
  with pytest.raises(ValueError, match="square"):
    embed(np.zeros((1, 8, 6, 3), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    embed(np.zeros((1, 4, 4, 3), np.float32))
  with pytest.raises(ValueError, match="batch_size"):
    embedding.model_embedder(_linear, {}, input_size=4, batch_size=0)


def test_flip_average_sums_mirrored_features():
  images = np.zeros((1, 2, 2, 3), np.uint8)
  images[0, :, 0] = 255  # left column white
  left = lambda x: x[:, :, 0].astype(np.float32).mean(axis=(1, 2))[:, None]
  out = embedding.flip_average(left)(images)
  np.testing.assert_allclose(out, [[255.0]])  # 255 (left column) + 0 (mirrored)


def test_mean_feature_sets_ignores_padded_members():
  frames = np.zeros((2, 3, 2, 2, 3), np.uint8)
  frames[0, 0] = 10
  frames[0, 1] = 30
  frames[0, 2] = 200  # padded: must not count
  frames[1, 0] = 50
  mask = np.array([[True, True, False], [True, False, False]])
  embed = lambda x: x.reshape(len(x), -1)[:, :1].astype(np.float32)
  out = embedding.mean_feature_sets(embed)(frames, mask)
  np.testing.assert_allclose(out, [[20.0], [50.0]])
  with pytest.raises(ValueError, match="real member"):
    embedding.mean_feature_sets(embed)(frames, np.zeros((2, 3), bool))


def test_eval_model_requires_capabilities():
  model = embedding.EvalModel(input_size=4, embed=lambda x: x, extras={"decode": print})
  assert model.capabilities() == {"embed", "decode"}
  model.require(("embed",), "x")
  with pytest.raises(ValueError, match="embed_sets"):
    model.require(("embed", "embed_sets"), "video_pairs")


def test_embedder_compiles_once_per_function():
  calls = []

  def apply(variables, images):
    calls.append(images.shape)
    return images.mean(axis=(1, 2))

  embed = embedding.model_embedder(functools.partial(apply), {}, input_size=2, batch_size=3)
  embed(np.zeros((7, 2, 2, 3), np.uint8))
  assert calls == [(3, 2, 2, 3)]  # traced once: every chunk is padded to the batch size
