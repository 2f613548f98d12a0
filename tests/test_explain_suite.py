"""Tests for jfr.explain.suite: the max-pool similarity decomposition against a loop, the
saliency suite's keys, shapes and batching, and the pair verifier."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfr.explain import saliency
from jfr.explain import suite
from jfr.models.decoder import ReconstructionDecoder


def test_similarity_decomposition_matches_loop_and_sums_to_cosine():
  rng = np.random.default_rng(1)
  convs_a = np.maximum(rng.normal(size=(2, 3, 4, 5)), 0)
  convs_b = np.maximum(rng.normal(size=(2, 3, 4, 5)), 0)
  out = suite.similarity_decomposition(convs_a, convs_b)
  expected = np.zeros((2, 3, 4))
  for p in range(2):
    f_a, f_b = convs_a[p].max(axis=(0, 1)), convs_b[p].max(axis=(0, 1))
    for k in range(5):
      y, x = np.unravel_index(np.argmax(convs_a[p, :, :, k]), (3, 4))
      expected[p, y, x] += f_a[k] * f_b[k] / (np.linalg.norm(f_a) * np.linalg.norm(f_b))
  np.testing.assert_allclose(out, expected, rtol=1e-12)
  cosine = np.asarray(
    saliency.cosine_similarity(
      jnp.asarray(convs_a.max(axis=(1, 2))), jnp.asarray(convs_b.max(axis=(1, 2)))
    )
  )
  np.testing.assert_allclose(out.sum(axis=(1, 2)), cosine, rtol=1e-5)
  with pytest.raises(ValueError, match="convs_b"):
    suite.similarity_decomposition(convs_a, convs_b[:, :2])


def test_global_max_pool():
  x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype(np.float32)
  np.testing.assert_array_equal(suite.global_max_pool(jnp.asarray(x)), x.max(axis=(1, 2)))


class ToyBackbone(nn.Module):
  """Conv (stride 4) -> ReLU -> global max pool, the ResNet's interface."""

  @nn.compact
  def __call__(self, x, train=False, return_feature_map=False):
    conv_map = nn.relu(nn.Conv(6, (3, 3), strides=(4, 4))(x))
    features = conv_map.max(axis=(1, 2))
    return (features, conv_map) if return_feature_map else features


@pytest.fixture(scope="module")
def fns():
  size = 16
  backbone = ToyBackbone()
  decoder = ReconstructionDecoder(widths=(4, 4, 4), output_size=(size, size))
  x = jnp.zeros((1, size, size, 3))
  bvars = backbone.init(jax.random.PRNGKey(0), x)
  dvars = decoder.init(jax.random.PRNGKey(1), jnp.zeros((1, 4, 4, 6)))
  return suite.model_functions(backbone, bvars, decoder, dvars)


def test_saliency_maps_keys_shapes_and_batching(fns):
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
  b = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
  maps = suite.saliency_maps(fns, a, b, 0.01, 4, 2, np.random.default_rng(0))
  assert set(maps) == set(suite.MAP_NAMES)
  for name, m in maps.items():
    assert m.shape == (3, 16, 16) and m.dtype == np.float32, name
    assert (m >= 0).all(), name
  np.testing.assert_allclose(maps["ours_s"], maps["ours_s_pos"] + maps["ours_s_neg"], atol=1e-6)
  # A pair's maps do not depend on the batch it was computed in (padding is dropped).
  alone = suite.saliency_maps(fns, a[2:], b[2:], 0.01, 4, 2, np.random.default_rng(0))
  for name in ("ours_s", "gradient", "grad_cam", "stylianou"):
    np.testing.assert_allclose(alone[name][0], maps[name][2], rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="images_b"):
    suite.saliency_maps(fns, a, b[:2], 0.01, 4, 2, np.random.default_rng(0))


def test_verify_function_is_cosine_of_features_and_caches_b(fns):
  rng = np.random.default_rng(2)
  a = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
  b = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
  verify = suite.verify_function(fns, 2)
  fa, fb = np.asarray(suite.call(fns.embed, a)), np.asarray(suite.call(fns.embed, b))
  expected = (fa * fb).sum(1) / np.maximum(
    np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1), 1e-12
  )
  np.testing.assert_allclose(verify(a, b), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
    verify(b, b), np.where(np.linalg.norm(fb, axis=1) > 0, 1.0, 0.0), rtol=1e-5
  )
  with pytest.raises(ValueError, match="batch_size"):
    suite.verify_function(fns, 0)
