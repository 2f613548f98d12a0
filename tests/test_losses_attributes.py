"""Tests for jfr.losses.attributes against a NumPy rendering of Eq. 2 (attribute paper)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import absltest

from jfr.losses import attributes

B, T = 6, 5


def _np_eq2(logits, targets, valid):
  """Eq. 2 with f' a two-way soft-max over (present, absent) logits (z, 0)."""
  out = np.zeros(B)
  for i in range(B):
    for j in range(T):
      if not valid[i, j]:
        continue
      scores = np.array([logits[i, j], 0.0], np.float64)  # present, absent
      probs = np.exp(scores) / np.exp(scores).sum()
      label = targets[i, j]
      out[i] -= label * np.log(probs[0]) + (1 - label) * np.log(probs[1])
  return out


def _data(seed=0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(scale=3.0, size=(B, T)).astype(np.float32)
  targets = (rng.uniform(size=(B, T)) < 0.5).astype(np.float32)
  return logits, targets


class AttributeLossTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_bce_matches_numpy(self):
    logits, targets = _data()
    loss = self.variant(attributes.attribute_bce_loss)(logits, targets)
    chex.assert_shape(loss, (B,))
    chex.assert_trees_all_close(loss, _np_eq2(logits, targets, np.ones((B, T), bool)), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_bce_with_missing_annotations(self):
    logits, targets = _data(1)
    valid = np.random.default_rng(2).uniform(size=(B, T)) < 0.7
    valid[0] = False
    raw = np.where(valid, targets, -1.0).astype(np.float32)  # -1 marks "missing"
    loss = self.variant(attributes.attribute_bce_loss)(logits, raw, valid)
    expected = _np_eq2(logits, targets, valid)
    chex.assert_trees_all_close(loss, expected, rtol=1e-5)
    assert loss[0] == 0.0
    grad = jax.grad(lambda z: jnp.sum(attributes.attribute_bce_loss(z, raw, valid)))(logits)
    np.testing.assert_array_equal(np.asarray(grad)[~valid], 0.0)

  def test_bce_stable_for_extreme_logits(self):
    logits = np.array([[100.0, -100.0, 100.0, -100.0]], np.float32)
    targets = np.array([[1.0, 0.0, 0.0, 1.0]], np.float32)
    loss, grad = jax.value_and_grad(lambda z: jnp.sum(attributes.attribute_bce_loss(z, targets)))(
      logits
    )
    chex.assert_trees_all_close(loss, 200.0, rtol=1e-6)
    assert np.all(np.isfinite(grad))

  def test_bce_accepts_int_and_bool_targets(self):
    logits, targets = _data(3)
    expected = attributes.attribute_bce_loss(logits, targets)
    for cast in (np.int32, bool):
      chex.assert_trees_all_close(
        attributes.attribute_bce_loss(logits, targets.astype(cast)), expected
      )

  def test_bce_bad_input(self):
    logits, targets = _data()
    with pytest.raises(ValueError, match="logits"):
      attributes.attribute_bce_loss(logits[0], targets[0])
    with pytest.raises(ValueError, match="targets"):
      attributes.attribute_bce_loss(logits, targets[:, :-1])
    with pytest.raises(ValueError, match="targets"):
      attributes.attribute_bce_loss(logits, targets * 2.0)
    with pytest.raises(ValueError, match="valid"):
      attributes.attribute_bce_loss(logits, targets, np.ones((B, T), np.float32))
    with pytest.raises(ValueError, match="valid"):
      attributes.attribute_bce_loss(logits, targets, np.ones((B, T - 1), bool))

  @chex.variants(with_jit=True, without_jit=True)
  def test_accuracy_matches_numpy(self):
    logits, targets = _data(4)
    logits[0, 0] = 0.0  # a zero logit predicts "absent"
    targets[0, 0] = 0.0
    acc = self.variant(attributes.attribute_accuracy)(logits, targets)
    expected = np.zeros(T)
    for j in range(T):
      for i in range(B):
        expected[j] += (1.0 if logits[i, j] > 0 else 0.0) == targets[i, j]
    chex.assert_shape(acc, (T,))
    chex.assert_trees_all_close(acc, expected / B, rtol=1e-6)

  def test_accuracy_bad_input(self):
    logits, targets = _data()
    with pytest.raises(ValueError, match="targets"):
      attributes.attribute_accuracy(logits, targets[:-1])
    with pytest.raises(ValueError, match="binary"):
      attributes.attribute_accuracy(logits, targets * 0.5)


if __name__ == "__main__":
  absltest.main()
