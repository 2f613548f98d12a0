"""Tests of jfr.models.layers against direct NumPy renderings of the equations."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from jfr.models import layers


def _random_set(seed, shape=(3, 4, 2, 3, 5)):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=shape).astype(np.float32)
  mask = rng.random(shape[:2]) < 0.6
  mask[:, 0] = True  # every set has a real member.
  mask[0, 1:] = False  # a set with exactly one member.
  return x, mask


def _np_set_max(x, mask):
  """Eq. 4's max_j X_j over the real members, by loops."""
  out = np.empty((x.shape[0],) + x.shape[2:], x.dtype)
  for b in range(x.shape[0]):
    out[b] = np.max(np.stack([x[b, j] for j in range(x.shape[1]) if mask[b, j]]), axis=0)
  return out


class SetOpsTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_masked_set_max_matches_loop(self):
    x, mask = _random_set(0)
    got = self.variant(layers.masked_set_max)(x, mask)
    chex.assert_trees_all_close(got, _np_set_max(x, mask))

  @chex.variants(with_jit=True, without_jit=True)
  def test_global_concat_matches_eq4(self):
    x, mask = _random_set(1)
    got = np.asarray(self.variant(layers.global_concat)(x, mask))
    chex.assert_shape(got, x.shape[:-1] + (2 * x.shape[-1],))
    pooled = _np_set_max(x, mask)
    for b in range(x.shape[0]):
      for n in range(x.shape[1]):
        np.testing.assert_allclose(got[b, n], np.concatenate([x[b, n], pooled[b]], -1))

  def test_padded_members_never_win_and_get_zero_gradient(self):
    x, mask = _random_set(2)
    x[~mask] = 1e6  # garbage larger than every real value.
    got = layers.masked_set_max(x, mask)
    self.assertLess(float(jnp.max(got)), 1e3)
    grad = jax.grad(lambda v: jnp.sum(layers.global_concat(v, mask) ** 2))(jnp.asarray(x))
    self.assertTrue(bool(jnp.all(jnp.isfinite(grad))))
    # Only the member's own channels reach a padded member's gradient: d/dx of x^2.
    np.testing.assert_allclose(np.asarray(grad)[~mask], 2 * x[~mask], rtol=1e-6)

  def test_gradient_routes_to_the_argmax_member(self):
    x = np.zeros((1, 3, 1, 1, 1), np.float32)
    x[0, :, 0, 0, 0] = [1.0, 5.0, 9.0]
    mask = np.array([[True, True, False]])
    grad = jax.grad(lambda v: jnp.sum(layers.masked_set_max(v, mask)))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(grad).ravel(), [0.0, 1.0, 0.0])

  def test_bad_shapes_raise(self):
    x, mask = _random_set(3)
    with self.assertRaisesRegex(ValueError, "mask"):
      layers.global_concat(x, mask[:, :2])
    with self.assertRaisesRegex(ValueError, "mask"):
      layers.global_concat(x, mask.astype(np.int32))
    with self.assertRaisesRegex(ValueError, "x must"):
      layers.masked_set_max(x[0], mask)


class KroneckerFusionTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_np_kron_row_by_row(self):
    rng = np.random.default_rng(0)
    face = rng.normal(size=(4, 7)).astype(np.float32)
    attributes = rng.normal(size=(4, 3)).astype(np.float32)
    got = self.variant(layers.kronecker_fusion)(face, attributes)
    want = np.stack([np.kron(face[b], attributes[b]) for b in range(4)])
    chex.assert_shape(got, (4, 21))
    chex.assert_trees_all_close(got, want, rtol=1e-6)

  def test_order_is_u_major(self):
    got = layers.kronecker_fusion(jnp.array([[1.0, 10.0]]), jnp.array([[2.0, 3.0, 4.0]]))
    np.testing.assert_array_equal(np.asarray(got), [[2.0, 3.0, 4.0, 20.0, 30.0, 40.0]])

  def test_bad_shapes_raise(self):
    with self.assertRaisesRegex(ValueError, "face"):
      layers.kronecker_fusion(jnp.ones((2, 3, 1)), jnp.ones((2, 3)))
    with self.assertRaisesRegex(ValueError, "attributes"):
      layers.kronecker_fusion(jnp.ones((2, 3)), jnp.ones((3, 3)))


def _np_lmf(x, keep):
  """LMF by sorting: zero all but the `keep` largest |x| per image and channel."""
  out = np.zeros_like(x)
  for b in range(x.shape[0]):
    for k in range(x.shape[3]):
      flat = x[b, :, :, k].ravel()
      kept = np.argsort(-np.abs(flat), kind="stable")[:keep]
      channel = np.zeros_like(flat)
      channel[kept] = flat[kept]
      out[b, :, :, k] = channel.reshape(x.shape[1:3])
  return out


class LargeMagnitudeFilterTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(1, 5, 24, 36)
  def test_matches_argsort_reference(self, keep):
    x = np.random.default_rng(keep).normal(size=(2, 6, 6, 3)).astype(np.float32)
    got = self.variant(functools.partial(layers.large_magnitude_filter, keep=keep))(x)
    chex.assert_trees_all_close(got, _np_lmf(x, keep))
    counts = np.count_nonzero(np.asarray(got), axis=(1, 2))
    np.testing.assert_array_equal(counts, np.full((2, 3), keep))

  def test_paper_rate_on_24x24(self):
    x = np.random.default_rng(7).normal(size=(1, 24, 24, 2)).astype(np.float32)
    got = np.asarray(layers.large_magnitude_filter(jnp.asarray(x), 24))
    # d = 95.83% = 1 - 24 / (24 * 24) of the elements are zeroed.
    np.testing.assert_allclose(np.mean(got == 0, axis=(0, 1, 2)), 1 - 24 / 576)
    np.testing.assert_allclose(got, _np_lmf(x, 24))

  def test_negative_peaks_are_kept(self):
    x = np.zeros((1, 2, 2, 1), np.float32)
    x[0, :, :, 0] = [[-5.0, 1.0], [2.0, -0.5]]
    got = np.asarray(layers.large_magnitude_filter(jnp.asarray(x), 2))
    np.testing.assert_array_equal(got[0, :, :, 0], [[-5.0, 0.0], [2.0, 0.0]])

  def test_ties_with_the_threshold_are_all_kept(self):
    x = np.ones((1, 3, 3, 1), np.float32)
    got = layers.large_magnitude_filter(jnp.asarray(x), 2)
    np.testing.assert_array_equal(np.asarray(got), x)

  def test_gradient_is_identity_on_kept_elements(self):
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 3)).astype(np.float32)
    grad = jax.grad(lambda v: jnp.sum(layers.large_magnitude_filter(v, 3)))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(grad), (_np_lmf(x, 3) != 0).astype(np.float32))

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((0, 1), (20, 3), (35, 5))
  def test_nan_propagates(self, position, keep):
    x = np.random.default_rng(position).normal(size=(2, 6, 6, 3)).astype(np.float32)
    row, col = divmod(position, 6)
    x[1, row, col, 2] = np.nan
    got = np.asarray(self.variant(functools.partial(layers.large_magnitude_filter, keep=keep))(x))
    assert np.isnan(got[1, row, col, 2])  # the NaN survives where it was
    clean = np.isfinite(x).all(axis=(1, 2))  # the other channels are filtered as before
    np.testing.assert_array_equal(
      got.transpose(0, 3, 1, 2)[clean], _np_lmf(np.nan_to_num(x), keep).transpose(0, 3, 1, 2)[clean]
    )

  @parameterized.parameters(0, -1, 17)
  def test_bad_keep_raises(self, keep):
    with self.assertRaisesRegex(ValueError, "keep"):
      layers.large_magnitude_filter(jnp.ones((1, 4, 4, 2)), keep)

  def test_bad_rank_raises(self):
    with self.assertRaisesRegex(ValueError, "responses"):
      layers.large_magnitude_filter(jnp.ones((4, 4, 2)), 2)
