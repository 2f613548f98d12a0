"""Tests of the Siamese assembly in jfr.losses.diversity (unit_features, batch_fad_mask,
sad_losses) against NumPy renderings of the interpretable-FR paper's equations."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfr.losses import diversity
from jfr.train import steps


def _unit_np(f):
  norm = np.sqrt((f.astype(np.float64) ** 2).sum(-1, keepdims=True))
  return f * np.sqrt(f.shape[-1]) / np.maximum(norm, 1e-12)


class UnitFeaturesTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_numpy(self):
    f = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    f[2] = 0.0
    out = np.asarray(self.variant(diversity.unit_features)(f))
    chex.assert_trees_all_close(out, _unit_np(f).astype(np.float32), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.sqrt(np.mean(np.square(out[[0, 1, 3]]), -1)), 1.0, rtol=1e-6)
    assert np.all(np.asarray(out[2]) == 0.0)

  def test_rejects_bad_rank(self):
    with pytest.raises(ValueError, match="f must have shape"):
      diversity.unit_features(jnp.zeros(3))


def _tau_np(f_clean, f_occluded, t, mode):
  change = np.abs(f_clean - f_occluded).mean(axis=0)
  if mode == "count":
    keep = np.zeros(change.shape, bool)
    keep[np.argsort(change, kind="stable")[:t]] = True
    return keep.astype(np.float32)
  return (change < t).astype(np.float32)


class BatchFadMaskTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.filterwarnings("ignore")
  def test_matches_numpy(self):
    rng = np.random.default_rng(1)
    f_clean = rng.normal(size=(5, 10)).astype(np.float32)
    f_occluded = (f_clean + rng.normal(size=(5, 10)) * np.linspace(0.1, 2, 10)).astype(np.float32)
    for mode, t in (("count", 6), ("value", 0.9)):
      fn = self.variant(lambda a, b, t=t, mode=mode: diversity.batch_fad_mask(a, b, t, mode))
      expected = _tau_np(f_clean, f_occluded, t, mode)
      assert 0 < expected.sum() < 10
      chex.assert_trees_all_equal(fn(f_clean, f_occluded), expected)

  def test_carries_no_gradient(self):
    f = jnp.ones((2, 4))
    grad = jax.grad(lambda a: diversity.batch_fad_mask(a, 2 * a, 2, "count").sum())(f)
    assert np.all(np.asarray(grad) == 0.0)

  def test_replica_mean_averages_over_the_replicas(self):
    devices = jax.local_devices()
    rng = np.random.default_rng(1)
    n = 2 * len(devices)
    f_clean = rng.normal(size=(n, 10)).astype(np.float32)
    f_occluded = (f_clean + rng.normal(size=(n, 10)) * np.linspace(0.1, 2, 10)).astype(np.float32)
    expected = _tau_np(f_clean, f_occluded, 6, "count")
    sharded = jax.pmap(
      lambda a, b: diversity.batch_fad_mask(a, b, 6, "count", steps.cross_replica_mean),
      axis_name=steps.BATCH_AXIS,
    )(f_clean.reshape(len(devices), 2, 10), f_occluded.reshape(len(devices), 2, 10))
    for replica in np.asarray(sharded):
      np.testing.assert_array_equal(replica, expected)


def _gaussian_np(maps, sigma):
  radius = int(np.ceil(3 * sigma))
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  taps /= taps.sum()
  b, h, w, k = maps.shape
  out = np.zeros_like(maps, np.float64)
  for dy in range(-radius, radius + 1):
    for dx in range(-radius, radius + 1):
      shifted = np.zeros_like(maps, np.float64)
      ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
      xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
      shifted[:, yd, xd] = maps[:, ys, xs]
      out += taps[dy + radius] * taps[dx + radius] * shifted
  return out


def _sad_np(kernel, responses, sigma):
  kh, kw, c, k = kernel.shape
  filt = 0.0
  for p in range(kh * kw):
    cols = kernel.reshape(kh * kw, c, k)[p].astype(np.float64)
    unit = cols / np.maximum(np.linalg.norm(cols, axis=0, keepdims=True), 1e-6)
    filt = filt + unit.T @ unit
  filt = np.abs(filt - np.diag(np.diag(filt))).sum()
  smoothed = _gaussian_np(responses.astype(np.float64), sigma)
  per_image = []
  for m in smoothed:
    flat = m.reshape(-1, k)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=0, keepdims=True), 1e-6)
    cos = unit.T @ unit
    per_image.append(np.square(cos - np.diag(np.diag(cos))).sum())
  pairs = k * (k - 1)
  return filt / pairs, np.mean(per_image) / pairs


class SadLossesTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_pair_means_match_numpy(self):
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    responses = rng.normal(size=(2, 6, 6, 5)).astype(np.float32)
    got = self.variant(lambda a, b: diversity.sad_losses(a, b, 1.0))(kernel, responses)
    chex.assert_trees_all_close(got, _sad_np(kernel, responses, 1.0), rtol=1e-4)

  def test_rejects_mismatched_channels(self):
    with pytest.raises(ValueError, match="responses"):
      diversity.sad_losses(jnp.zeros((3, 3, 2, 4)), jnp.zeros((1, 4, 4, 5)))
    assert diversity.ordered_filter_pairs(1) == 1.0 and diversity.ordered_filter_pairs(4) == 12.0
