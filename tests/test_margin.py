"""Tests for jfr.losses.margin against direct NumPy renderings of the formulas."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfr.losses import margin


def _np_softmax_ce(logits, labels):
  out = []
  for z, y in zip(logits.astype(np.float64), labels):
    out.append(-(z[y] - np.log(np.sum(np.exp(z)))))
  return np.array(out)


def _np_arcface(cos, labels, s, m, easy):
  """ArcFace Eq. 3 with insightface's fallback, one example at a time."""
  out = []
  for c, y in zip(cos.astype(np.float64), labels):
    theta = math.acos(c[y])
    if easy:
      target = math.cos(theta + m) if c[y] > 0 else c[y]
    else:
      target = math.cos(theta + m) if theta + m < math.pi else c[y] - m * math.sin(m)
    logits = s * c.copy()
    logits[y] = s * target
    out.append(-(logits[y] - np.log(np.sum(np.exp(logits)))))
  return np.array(out)


def _np_cosface(cos, labels, s, m):
  out = []
  for c, y in zip(cos.astype(np.float64), labels):
    logits = s * c.copy()
    logits[y] = s * (c[y] - m)
    out.append(-(logits[y] - np.log(np.sum(np.exp(logits)))))
  return np.array(out)


def _cosines(batch=6, classes=5, seed=0):
  rng = np.random.default_rng(seed)
  cos = rng.uniform(-0.99, 0.99, (batch, classes)).astype(np.float32)
  labels = rng.integers(0, classes, batch).astype(np.int32)
  # Cover both branches of the margin: one target past cos(pi - m), one negative, one positive.
  cos[0, labels[0]] = -0.95
  cos[1, labels[1]] = -0.3
  cos[2, labels[2]] = 0.9
  return cos, labels


class MarginLossTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_softmax_cross_entropy(self):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 7)).astype(np.float32) * 3
    labels = np.array([0, 6, 3, 3], np.int32)
    got = self.variant(margin.softmax_cross_entropy)(logits, labels)
    chex.assert_shape(got, (4,))
    chex.assert_trees_all_close(got, _np_softmax_ce(logits, labels), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_arcface(self):
    cos, labels = _cosines()
    for easy in (False, True):
      for s, m in ((64.0, 0.5), (30.0, 0.3)):
        got = self.variant(margin.arcface_loss, static_argnums=(2, 3, 4))(cos, labels, s, m, easy)
        chex.assert_shape(got, (6,))
        chex.assert_trees_all_close(got, _np_arcface(cos, labels, s, m, easy), rtol=1e-4, atol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_cosface(self):
    cos, labels = _cosines(seed=2)
    got = self.variant(margin.cosface_loss)(cos, labels, 64.0, 0.35)
    chex.assert_trees_all_close(got, _np_cosface(cos, labels, 64.0, 0.35), rtol=1e-4, atol=1e-5)

  def test_zero_margin_is_scaled_softmax(self):
    cos, labels = _cosines(seed=3)
    want = margin.softmax_cross_entropy(16.0 * cos, labels)
    chex.assert_trees_all_close(margin.arcface_loss(cos, labels, 16.0, 0.0), want, rtol=1e-5)
    chex.assert_trees_all_close(margin.cosface_loss(cos, labels, 16.0, 0.0), want, rtol=1e-5)

  def test_arcface_gradient_is_finite_at_cos_one(self):
    cos = jnp.array([[1.0, 0.0], [-1.0, 0.5]])
    grads = jax.grad(lambda c: margin.arcface_loss(c, jnp.array([0, 0])).sum())(cos)
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize(
  "fn", [margin.softmax_cross_entropy, margin.arcface_loss, margin.cosface_loss]
)
def test_rejects_bad_labels(fn):
  cos = np.zeros((3, 4), np.float32)
  with pytest.raises(ValueError, match=r"labels: expected values in \[0, 4\)"):
    fn(cos, np.array([0, 4, 1]))
  with pytest.raises(ValueError, match=r"labels: expected values in \[0, 4\)"):
    fn(cos, np.array([0, -1, 1]))
  with pytest.raises(ValueError, match="labels: expected shape"):
    fn(cos, np.array([0, 1]))
  with pytest.raises(ValueError, match="labels: expected an integer"):
    fn(cos, np.array([0.0, 1.0, 2.0]))
  with pytest.raises(ValueError, match="expected rank 2"):
    fn(cos[0], np.array([0]))


def test_arcface_rejects_bad_margin():
  with pytest.raises(ValueError, match="margin"):
    margin.arcface_loss(np.zeros((1, 2), np.float32), np.array([0]), margin=2.0)
