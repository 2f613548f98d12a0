"""Tests for jfr.losses.reconstruction: Eq. 2 of Xu, Lu, Ebrahimi against a NumPy rendering."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from jfr.losses import reconstruction


def _numpy_l_rec(images, recon):
  """L_rec[b] = (1 / (H W 3)) sum (Recon - I)^2, written loop by loop."""
  out = []
  for b in range(images.shape[0]):
    total = 0.0
    for y in range(images.shape[1]):
      for x in range(images.shape[2]):
        for ch in range(3):
          total += (float(recon[b, y, x, ch]) - float(images[b, y, x, ch])) ** 2
    out.append(total / (images.shape[1] * images.shape[2] * 3))
  return np.array(out)


class ReconstructionLossTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_reconstruction_loss_matches_numpy(self):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (3, 5, 4, 3)).astype(np.float32)
    recon = rng.uniform(-1, 1, (3, 5, 4, 3)).astype(np.float32)
    out = self.variant(reconstruction.reconstruction_loss)(images, recon)
    chex.assert_shape(out, (3,))
    chex.assert_trees_all_close(out, _numpy_l_rec(images, recon), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_joint_loss_matches_numpy(self):
    rng = np.random.default_rng(1)
    id_loss = rng.uniform(0, 10, 4).astype(np.float32)
    rec = rng.uniform(0, 1, 4).astype(np.float32)
    out = self.variant(lambda i, r: reconstruction.joint_loss(i, r, 0.7))(id_loss, rec)
    chex.assert_trees_all_close(out, id_loss + 0.7 * rec, rtol=1e-6)

  def test_perfect_reconstruction_is_zero(self):
    images = jnp.ones((2, 3, 3, 3)) * 0.25
    np.testing.assert_array_equal(reconstruction.reconstruction_loss(images, images), [0.0, 0.0])


def test_shape_errors():
  with pytest.raises(ValueError, match="reconstructions"):
    reconstruction.reconstruction_loss(jnp.zeros((2, 4, 4, 3)), jnp.zeros((2, 4, 5, 3)))
  with pytest.raises(ValueError, match="reconstructions"):
    reconstruction.reconstruction_loss(jnp.zeros((4, 4, 3)), jnp.zeros((4, 4, 3)))
  with pytest.raises(ValueError, match="rec_loss"):
    reconstruction.joint_loss(jnp.zeros((2,)), jnp.zeros((3,)), 1.0)
