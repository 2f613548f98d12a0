"""Tests for jfr.losses.fan against direct NumPy renderings of FAN Eqs. 5-13."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import absltest

from jfr.losses import fan

B, N, D, C = 5, 4, 6, 7


def _set_batch(seed=0):
  rng = np.random.default_rng(seed)
  f_agg, f_pos, f_neg = (rng.normal(size=(B, D)).astype(np.float32) for _ in range(3))
  f_inputs = rng.normal(size=(B, N, D)).astype(np.float32)
  mask = np.ones((B, N), bool)
  mask[1, 2:] = False
  mask[3, 1:] = False
  mask[4, 0] = False
  return f_agg, f_pos, f_neg, f_inputs, mask


def _np_discriminative(f_agg, f_pos, f_neg, f_inputs, mask, beta):
  out = np.zeros(B)
  for b in range(B):
    alpha = min(float(np.sum((f_inputs[b, n] - f_pos[b]) ** 2)) for n in range(N) if mask[b, n])
    d_ap = float(np.sum((f_agg[b] - f_pos[b]) ** 2))
    d_an = float(np.sum((f_agg[b] - f_neg[b]) ** 2))
    out[b] = max(0.0, d_ap - alpha) + max(0.0, beta - d_an)
  return out


def _np_rec_avg(f_agg, f_inputs, mask):
  out = np.zeros(B)
  for b in range(B):
    members = [f_inputs[b, n] for n in range(N) if mask[b, n]]
    out[b] = np.sum((f_agg[b] - np.mean(members, axis=0)) ** 2)
  return out


class FanLossesTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_discriminative_loss_matches_numpy(self):
    f_agg, f_pos, f_neg, f_inputs, mask = _set_batch()
    # beta chosen so that the negative term is active for some rows only.
    d_an = np.sum((f_agg - f_neg) ** 2, axis=1)
    beta = float(np.median(d_an))
    # Make the positive term active for some rows: pull f_pos towards inputs.
    f_pos = f_pos.copy()
    f_pos[0] = f_inputs[0, 1] + 0.01
    loss = self.variant(functools.partial(fan.discriminative_loss, beta=beta))(
      f_agg, f_pos, f_neg, f_inputs, mask
    )
    expected = _np_discriminative(f_agg, f_pos, f_neg, f_inputs, mask, beta)
    chex.assert_shape(loss, (B,))
    chex.assert_trees_all_close(loss, expected, rtol=1e-5, atol=1e-5)
    # The data exercises both hinges on and off.
    assert np.any(d_an < beta) and np.any(d_an > beta)
    d_ap0 = np.sum((f_agg[0] - f_pos[0]) ** 2)
    assert d_ap0 > np.min(np.sum((f_inputs[0] - f_pos[0]) ** 2, axis=1))

  @chex.variants(with_jit=True, without_jit=True)
  def test_discriminative_loss_default_beta(self):
    f_agg, f_pos, f_neg, f_inputs, mask = _set_batch(1)
    loss = self.variant(fan.discriminative_loss)(f_agg, f_pos, f_neg, f_inputs, mask)
    expected = _np_discriminative(f_agg, f_pos, f_neg, f_inputs, mask, 32.0)
    chex.assert_trees_all_close(loss, expected, rtol=1e-5, atol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_padded_members_have_no_influence(self):
    f_agg, f_pos, f_neg, f_inputs, mask = _set_batch(2)
    garbage = f_inputs.copy()
    garbage[~mask] = 1e3 * np.sign(garbage[~mask])  # far away and close-to-nothing
    garbage[3, 1:] = f_pos[3]  # would make alpha = 0 if it were counted
    loss = self.variant(fan.discriminative_loss)
    rec = self.variant(fan.reconstruction_loss_avg)
    chex.assert_trees_all_close(
      loss(f_agg, f_pos, f_neg, f_inputs, mask), loss(f_agg, f_pos, f_neg, garbage, mask)
    )
    chex.assert_trees_all_close(rec(f_agg, f_inputs, mask), rec(f_agg, garbage, mask))

    def total(f_in):
      return jnp.sum(
        fan.discriminative_loss(f_agg, f_pos, f_neg, f_in, mask, beta=3.0)
        + fan.reconstruction_loss_avg(f_agg, f_in, mask)
      )

    grad = jax.grad(total)(jnp.asarray(garbage))
    np.testing.assert_array_equal(np.asarray(grad)[~mask], 0.0)
    assert np.any(np.asarray(grad)[mask] != 0.0)

  def test_empty_row_raises_when_concrete(self):
    f_agg, f_pos, f_neg, f_inputs, mask = _set_batch()
    mask[2] = False
    with pytest.raises(ValueError, match="mask"):
      fan.discriminative_loss(f_agg, f_pos, f_neg, f_inputs, mask)
    with pytest.raises(ValueError, match="mask"):
      fan.reconstruction_loss_avg(f_agg, f_inputs, mask)

  def test_empty_row_under_jit_is_zero_with_finite_gradient(self):
    f_agg, f_pos, f_neg, f_inputs, mask = _set_batch()
    mask[2] = False

    def total(fa, m):
      return jnp.sum(
        fan.discriminative_loss(fa, f_pos, f_neg, f_inputs, m)
        + fan.reconstruction_loss_avg(fa, f_inputs, m)
      )

    loss = jax.jit(fan.discriminative_loss)(f_agg, f_pos, f_neg, f_inputs, mask)
    rec = jax.jit(fan.reconstruction_loss_avg)(f_agg, f_inputs, mask)
    grad = jax.jit(jax.grad(total))(f_agg, mask)
    assert loss[2] == 0.0 and rec[2] == 0.0
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[2] == 0.0)

  def test_discriminative_loss_bad_input(self):
    f_agg, f_pos, f_neg, f_inputs, mask = _set_batch()
    with pytest.raises(ValueError, match="mask"):
      fan.discriminative_loss(f_agg, f_pos, f_neg, f_inputs, mask.astype(np.float32))
    with pytest.raises(ValueError, match="f_neg"):
      fan.discriminative_loss(f_agg, f_pos, f_neg[:, :-1], f_inputs, mask)
    with pytest.raises(ValueError, match="f_inputs"):
      fan.discriminative_loss(f_agg, f_pos, f_neg, f_inputs[..., :-1], mask)
    with pytest.raises(ValueError, match="f_agg"):
      fan.discriminative_loss(f_agg[0], f_pos, f_neg, f_inputs, mask)
    with pytest.raises(ValueError, match="mask"):
      fan.discriminative_loss(f_agg, f_pos, f_neg, f_inputs, mask[:, :-1])

  @chex.variants(with_jit=True, without_jit=True)
  def test_reconstruction_loss_avg_matches_numpy(self):
    f_agg, _, _, f_inputs, mask = _set_batch(3)
    loss = self.variant(fan.reconstruction_loss_avg)(f_agg, f_inputs, mask)
    chex.assert_shape(loss, (B,))
    chex.assert_trees_all_close(loss, _np_rec_avg(f_agg, f_inputs, mask), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_reconstruction_loss_center_matches_numpy(self):
    rng = np.random.default_rng(4)
    f_agg = rng.normal(size=(B, D)).astype(np.float32)
    centers = rng.normal(size=(C, D)).astype(np.float32)
    labels = np.array([0, 3, 3, 6, 1], np.int32)
    loss = self.variant(fan.reconstruction_loss_center)(f_agg, centers, labels)
    expected = [np.sum((f_agg[b] - centers[labels[b]]) ** 2) for b in range(B)]
    chex.assert_trees_all_close(loss, np.array(expected), rtol=1e-5)
    grad_c = jax.grad(lambda c: jnp.sum(fan.reconstruction_loss_center(f_agg, c, labels)))(centers)
    np.testing.assert_array_equal(grad_c, 0.0)

  def test_reconstruction_loss_center_bad_labels(self):
    f_agg = np.zeros((B, D), np.float32)
    centers = np.zeros((C, D), np.float32)
    with pytest.raises(ValueError, match="labels"):
      fan.reconstruction_loss_center(f_agg, centers, np.array([0, 1, 2, 3, C]))
    with pytest.raises(ValueError, match="labels"):
      fan.reconstruction_loss_center(f_agg, centers, np.zeros(B, np.float32))
    with pytest.raises(ValueError, match="centers"):
      fan.reconstruction_loss_center(f_agg, centers[:, :-1], np.zeros(B, np.int32))

  @chex.variants(with_jit=True, without_jit=True)
  def test_update_centers_matches_numpy(self):
    _, f_pos, _, f_inputs, mask = _set_batch(5)
    centers = np.random.default_rng(6).normal(size=(C, D)).astype(np.float32)
    labels = np.array([2, 5, 2, 0, 2], np.int32)  # identity 2 three times
    rate = 0.3
    new = self.variant(functools.partial(fan.update_centers, rate=rate))(
      centers, labels, f_pos, f_inputs, mask
    )
    expected = centers.copy()
    for j in range(C):
      targets = []
      for b in range(B):
        if labels[b] == j:
          members = f_inputs[b][mask[b]]
          targets.append((f_pos[b] + members.sum(axis=0)) / (len(members) + 1))
      if targets:
        expected[j] = (1 - rate) * centers[j] + rate * np.mean(targets, axis=0)
    chex.assert_shape(new, (C, D))
    chex.assert_trees_all_close(new, expected, rtol=1e-5, atol=1e-6)
    absent = [j for j in range(C) if j not in labels]
    np.testing.assert_array_equal(np.asarray(new)[absent], centers[absent])

  def test_update_centers_default_rate_and_no_gradient(self):
    _, f_pos, _, f_inputs, mask = _set_batch(7)
    centers = np.zeros((C, D), np.float32)
    labels = np.arange(B, dtype=np.int32)
    new = fan.update_centers(centers, labels, f_pos, f_inputs, mask)
    target0 = (f_pos[0] + f_inputs[0].sum(axis=0)) / (N + 1)
    chex.assert_trees_all_close(new[0], 0.5 * target0, rtol=1e-5)

    def moved(fp):
      return jnp.sum(fan.update_centers(centers, labels, fp, f_inputs, mask))

    np.testing.assert_array_equal(jax.grad(moved)(f_pos), 0.0)
    with pytest.raises(ValueError, match="rate"):
      fan.update_centers(centers, labels, f_pos, f_inputs, mask, rate=1.5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_adversarial_losses_match_numpy(self):
    fake = np.array([-6.0, -2.0, 0.0, 1.5, 5.0], np.float32)
    real = np.array([3.0, -1.0, 0.5, -4.0, 0.0], np.float32)
    prob = lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64)))  # noqa: E731  D = sigmoid
    expected_gen = -np.log(prob(fake))
    expected_dis = -np.log(1.0 - prob(fake)) - np.log(prob(real))
    gen = self.variant(fan.generator_adversarial_loss)
    dis = self.variant(fan.discriminator_loss)
    chex.assert_trees_all_close(gen(fake), expected_gen, rtol=1e-5)
    chex.assert_trees_all_close(gen(fake[:, None]), expected_gen, rtol=1e-5)
    chex.assert_trees_all_close(dis(fake, real), expected_dis, rtol=1e-5)
    chex.assert_trees_all_close(dis(fake[:, None], real[:, None]), expected_dis, rtol=1e-5)

  def test_adversarial_losses_stable_for_extreme_logits(self):
    # -log sigmoid(x) -> -x for x << 0 and -> 0 for x >> 0; naive float32 gives inf.
    x = np.array([-200.0, 200.0], np.float32)
    chex.assert_trees_all_close(fan.generator_adversarial_loss(x), np.array([200.0, 0.0]))
    chex.assert_trees_all_close(fan.discriminator_loss(x, x), np.array([200.0, 200.0]))
    grads = jax.grad(
      lambda v: jnp.sum(fan.discriminator_loss(v, v) + fan.generator_adversarial_loss(v))
    )(x)
    assert np.all(np.isfinite(grads))

  def test_adversarial_bad_shapes(self):
    with pytest.raises(ValueError, match="d_logits_fake"):
      fan.generator_adversarial_loss(np.zeros((B, 2)))
    with pytest.raises(ValueError, match="d_logits_real"):
      fan.discriminator_loss(np.zeros(B), np.zeros((B, 1)))

  @chex.variants(with_jit=True, without_jit=True)
  def test_total_variation_matches_numpy(self):
    images = np.random.default_rng(8).uniform(-1, 1, size=(2, 5, 4, 3)).astype(np.float32)
    loss = self.variant(fan.total_variation_loss)(images)
    expected = np.zeros(2)
    for b in range(2):
      for x in range(5):
        for y in range(4):
          if y + 1 < 4:
            expected[b] += np.sum((images[b, x, y] - images[b, x, y + 1]) ** 2)
          if x + 1 < 5:
            expected[b] += np.sum((images[b, x, y] - images[b, x + 1, y]) ** 2)
    chex.assert_shape(loss, (2,))
    chex.assert_trees_all_close(loss, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="images"):
      fan.total_variation_loss(images[0])

  @chex.variants(with_jit=True, without_jit=True)
  def test_generator_loss_weights(self):
    dis, rec, adv, tv = (np.full(3, v, np.float32) for v in (1.0, 2.0, 3.0, 1e4))
    loss = self.variant(fan.generator_loss)(dis, rec, adv, tv)
    chex.assert_trees_all_close(loss, np.full(3, 1.0 + 0.5 * 2.0 + 3.0 + 1.0))
    custom = fan.generator_loss(
      dis, rec, adv, tv, lambda_dis=2.0, lambda_rec=0.0, lambda_adv=0.0, lambda_tv=0.0
    )
    chex.assert_trees_all_close(custom, np.full(3, 2.0))
    with pytest.raises(ValueError, match="tv"):
      fan.generator_loss(dis, rec, adv, tv[:2])


if __name__ == "__main__":
  absltest.main()
