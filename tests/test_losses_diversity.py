"""Tests for jfr.losses.diversity against NumPy renderings of the SAD/FAD equations."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from absl.testing import absltest

from jfr.losses import diversity


def _np_sad_filter(kernel):
  kh, kw, _, k = kernel.shape
  total = 0.0
  for i in range(k):
    for j in range(k):
      if i == j:
        continue
      inner = 0.0
      for y in range(kh):
        for x in range(kw):
          fi, fj = kernel[y, x, :, i], kernel[y, x, :, j]
          inner += fi @ fj / (np.linalg.norm(fi) * np.linalg.norm(fj))
      total += abs(inner)
  return total


def _np_sad_response(responses):
  b, _, _, k = responses.shape
  out = np.zeros(b)
  for n in range(b):
    for i in range(k):
      for j in range(k):
        if i != j:
          psi_i, psi_j = responses[n, :, :, i], responses[n, :, :, j]
          cos = np.sum(psi_i * psi_j) / (np.linalg.norm(psi_i) * np.linalg.norm(psi_j))
          out[n] += cos**2
  return out


def _np_fad_mask_count(change, t):
  keep = np.zeros(change.shape[-1])
  remaining = list(range(change.shape[-1]))
  for _ in range(t):  # repeatedly take the smallest, lowest index first
    best = min(remaining, key=lambda i: (change[i], i))
    keep[best] = 1.0
    remaining.remove(best)
  return keep


class SadTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_filter_loss_matches_numpy(self):
    kernel = np.random.default_rng(0).normal(size=(3, 3, 5, 4)).astype(np.float32)
    loss = self.variant(diversity.sad_filter_loss)(kernel)
    chex.assert_shape(loss, ())
    chex.assert_trees_all_close(loss, _np_sad_filter(kernel), rtol=1e-5)

  def test_filter_loss_orthogonal_filters_is_zero(self):
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))
    kernel = np.broadcast_to(q[:, :4], (3, 3, 6, 4)).astype(np.float32)
    chex.assert_trees_all_close(diversity.sad_filter_loss(kernel), 0.0, atol=1e-5)
    same = np.ones((2, 2, 3, 3), np.float32)  # identical filters: kh*kw*K*(K-1)
    chex.assert_trees_all_close(diversity.sad_filter_loss(same), 4.0 * 3 * 2, rtol=1e-6)

  def test_filter_loss_zero_filter_is_safe(self):
    kernel = np.random.default_rng(2).normal(size=(3, 3, 5, 4)).astype(np.float32)
    kernel[..., 2] = 0.0
    loss, grad = jax.value_and_grad(diversity.sad_filter_loss)(kernel)
    expected = _np_sad_filter(np.delete(kernel, 2, axis=-1))  # zero filter adds nothing
    chex.assert_trees_all_close(loss, expected, rtol=1e-5)
    assert np.all(np.isfinite(grad))

  def test_filter_loss_bad_input(self):
    with pytest.raises(ValueError, match="kernel"):
      diversity.sad_filter_loss(np.ones((3, 5, 4)))
    with pytest.raises(ValueError, match="kernel"):
      diversity.sad_filter_loss(np.full((1, 1, 2, 2), np.nan))

  @chex.variants(with_jit=True, without_jit=True)
  def test_gaussian_smooth_matches_scipy(self):
    x = np.random.default_rng(3).normal(size=(2, 9, 13, 3)).astype(np.float32)
    for sigma in (1.5, 0.7):
      smooth = self.variant(functools.partial(diversity.gaussian_smooth, sigma=sigma))(x)
      radius = math.ceil(3 * sigma)
      expected = scipy.ndimage.gaussian_filter(
        x.astype(np.float64),
        sigma=(0, sigma, sigma, 0),
        mode="constant",
        cval=0.0,
        radius=(0, radius, radius, 0),
      )
      chex.assert_shape(smooth, x.shape)
      chex.assert_trees_all_close(smooth, expected, rtol=1e-5, atol=1e-6)

  def test_gaussian_smooth_is_channel_wise_and_default_sigma(self):
    x = np.zeros((1, 15, 15, 2), np.float32)
    x[0, 7, 7, 0] = 1.0
    smooth = np.asarray(diversity.gaussian_smooth(x))
    assert np.all(smooth[..., 1] == 0.0)
    profile = smooth[0, 7, :, 0] / smooth[0, 7, 7, 0]
    chex.assert_trees_all_close(profile[8], math.exp(-0.5 / 1.5**2), rtol=1e-5)
    assert profile[7 + 5] > 0.0 and profile[7 + 6] == 0.0  # radius ceil(4.5) = 5
    chex.assert_trees_all_close(smooth.sum(), 1.0, rtol=1e-5)

  def test_gaussian_smooth_bad_input(self):
    x = np.zeros((1, 4, 4, 2), np.float32)
    for sigma in (0.0, -1.0, float("nan"), True):
      with pytest.raises(ValueError, match="sigma"):
        diversity.gaussian_smooth(x, sigma=sigma)
    with pytest.raises(ValueError, match="responses"):
      diversity.gaussian_smooth(x[0])

  @chex.variants(with_jit=True, without_jit=True)
  def test_response_loss_matches_numpy(self):
    responses = np.random.default_rng(4).normal(size=(3, 4, 5, 6)).astype(np.float32)
    loss = self.variant(diversity.sad_response_loss)(responses)
    chex.assert_shape(loss, (3,))
    chex.assert_trees_all_close(loss, _np_sad_response(responses), rtol=1e-5)

  def test_response_loss_extremes(self):
    k = 5
    same = np.broadcast_to(np.random.default_rng(5).normal(size=(2, 4, 4, 1)), (2, 4, 4, k)).astype(
      np.float32
    )
    chex.assert_trees_all_close(
      diversity.sad_response_loss(same), np.full(2, k * (k - 1.0)), rtol=1e-5
    )
    disjoint = np.zeros((1, 4, 4, k), np.float32)  # one peak per map, all apart
    for i in range(k):
      disjoint[0, i // 4, i % 4, i] = 1.0 + i
    chex.assert_trees_all_close(diversity.sad_response_loss(disjoint), np.zeros(1))

  def test_response_loss_all_zero_maps_finite_value_and_gradient(self):
    responses = np.random.default_rng(6).normal(size=(2, 4, 4, 3)).astype(np.float32)
    responses[0] = 0.0
    responses[1, ..., 1] = 0.0

    loss, grad = jax.value_and_grad(lambda r: jnp.sum(diversity.sad_response_loss(r)))(
      jnp.asarray(responses)
    )
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    per_image = diversity.sad_response_loss(responses)
    chex.assert_trees_all_close(per_image[0], 0.0)
    expected = _np_sad_response(responses[1:, ..., ::2])  # the zero map adds nothing
    chex.assert_trees_all_close(per_image[1], expected[0], rtol=1e-5)

  def test_response_loss_bad_input(self):
    with pytest.raises(ValueError, match="responses"):
      diversity.sad_response_loss(np.zeros((4, 4, 3)))
    bad = np.zeros((1, 4, 4, 3), np.float32)
    bad[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="responses"):
      diversity.sad_response_loss(bad)


class FadTest(chex.TestCase):
  def _pair(self, seed=7, b=4, k=10):
    rng = np.random.default_rng(seed)
    f_clean = rng.normal(size=(b, k)).astype(np.float32)
    f_occluded = (f_clean + rng.normal(scale=rng.uniform(0, 2, size=k), size=(b, k))).astype(
      np.float32
    )
    return f_clean, f_occluded

  @chex.variants(with_jit=True, without_jit=True)
  def test_mask_count_shared(self):
    f_clean, f_occluded = self._pair()
    change = np.mean(np.abs(f_clean - f_occluded), axis=0)
    for t in (0, 3, 7, 10):
      tau = self.variant(functools.partial(diversity.fad_mask, t=t))(f_clean, f_occluded)
      chex.assert_shape(tau, (10,))
      assert tau.dtype == jnp.float32 and float(tau.sum()) == t
      chex.assert_trees_all_equal(np.asarray(tau), _np_fad_mask_count(change, t))

  @chex.variants(with_jit=True, without_jit=True)
  def test_mask_count_per_pair_and_ties(self):
    f_clean, f_occluded = self._pair(8)
    f_occluded[1] = f_clean[1]  # all changes zero: ties -> the lowest indices
    tau = self.variant(functools.partial(diversity.fad_mask, t=4, per_pair=True))(
      f_clean, f_occluded
    )
    chex.assert_shape(tau, (4, 10))
    for n in range(4):
      expected = _np_fad_mask_count(np.abs(f_clean[n] - f_occluded[n]), 4)
      chex.assert_trees_all_equal(np.asarray(tau[n]), expected)
    np.testing.assert_array_equal(tau[1], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])

  @chex.variants(with_jit=True, without_jit=True)
  def test_mask_value(self):
    f_clean, f_occluded = self._pair(9)
    change = np.abs(f_clean - f_occluded)
    t = float(np.median(change))
    shared = self.variant(functools.partial(diversity.fad_mask, t=t, mode="value"))(
      f_clean, f_occluded
    )
    pairs = self.variant(functools.partial(diversity.fad_mask, t=t, mode="value", per_pair=True))(
      f_clean, f_occluded
    )
    expected_shared = np.array([1.0 if change[:, i].mean() < t else 0.0 for i in range(10)])
    chex.assert_trees_all_equal(np.asarray(shared), expected_shared)
    chex.assert_trees_all_equal(np.asarray(pairs), (change < t).astype(np.float32))

  def test_mask_carries_no_gradient(self):
    f_clean, f_occluded = self._pair(10)
    weights = jnp.arange(10.0)

    def weighted(fc, fo):
      return jnp.sum(weights * diversity.fad_mask(fc, fo, t=5))

    grads = jax.grad(weighted, argnums=(0, 1))(f_clean, f_occluded)
    for g in grads:
      np.testing.assert_array_equal(g, 0.0)
    # Through the loss, the gradient comes from the difference only.
    tau = diversity.fad_mask(f_clean, f_occluded, t=5)
    grad = jax.grad(
      lambda fc: jnp.sum(
        diversity.fad_loss(fc, f_occluded, diversity.fad_mask(fc, f_occluded, t=5))
      )
    )(f_clean)
    np.testing.assert_array_equal(grad, tau * np.sign(f_clean - f_occluded))

  def test_mask_bad_input(self):
    f_clean, f_occluded = self._pair()
    for t in (-1, 11, 2.5, True):
      with pytest.raises(ValueError, match="t must"):
        diversity.fad_mask(f_clean, f_occluded, t=t)
    for t in (-0.1, float("inf"), float("nan")):
      with pytest.raises(ValueError, match="t must"):
        diversity.fad_mask(f_clean, f_occluded, t=t, mode="value")
    with pytest.raises(ValueError, match="mode"):
      diversity.fad_mask(f_clean, f_occluded, t=3, mode="top")
    with pytest.raises(ValueError, match="f_occluded"):
      diversity.fad_mask(f_clean, f_occluded[:, :-1], t=3)
    with pytest.raises(ValueError, match="f_clean"):
      diversity.fad_mask(f_clean[0], f_occluded, t=3)
    bad = f_clean.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="f_clean"):
      diversity.fad_mask(bad, f_occluded, t=3)

  @chex.variants(with_jit=True, without_jit=True)
  def test_fad_loss_matches_numpy(self):
    f_clean, f_occluded = self._pair(11)
    rng = np.random.default_rng(12)
    for tau in (
      (rng.uniform(size=10) < 0.6).astype(np.float32),
      (rng.uniform(size=(4, 10)) < 0.6).astype(np.float32),
    ):
      loss = self.variant(diversity.fad_loss)(f_clean, f_occluded, tau)
      tau_b = np.broadcast_to(tau, (4, 10))
      expected = [
        sum(abs(tau_b[n, i] * (f_clean[n, i] - f_occluded[n, i])) for i in range(10))
        for n in range(4)
      ]
      chex.assert_shape(loss, (4,))
      chex.assert_trees_all_close(loss, np.array(expected), rtol=1e-5)
    with pytest.raises(ValueError, match="tau"):
      diversity.fad_loss(f_clean, f_occluded, np.ones(9, np.float32))

  def test_masked_features(self):
    f_clean, f_occluded = self._pair(13)
    tau = diversity.fad_mask(f_clean, f_occluded, t=6)
    masked = diversity.masked_features(f_occluded, tau)
    np.testing.assert_array_equal(masked, np.where(np.asarray(tau) > 0, f_occluded, 0.0))
    with pytest.raises(ValueError, match="tau"):
      diversity.masked_features(f_occluded, np.ones((3, 10), np.float32))

  def test_paper_size_shapes(self):
    # K = 320 filters on a 24x24 map (Tab. 1): one jitted evaluation, t = 260.
    rng = np.random.default_rng(14)
    responses = rng.normal(size=(2, 24, 24, 320)).astype(np.float32)
    loss = jax.jit(lambda r: diversity.sad_response_loss(diversity.gaussian_smooth(r)))(responses)
    assert loss.shape == (2,) and np.all(np.isfinite(loss))
    f = rng.normal(size=(2, 320)).astype(np.float32)
    assert float(diversity.fad_mask(f, f + rng.normal(size=f.shape), t=260).sum()) == 260


if __name__ == "__main__":
  absltest.main()
