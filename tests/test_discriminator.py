"""Tests of jfr.models.discriminator (the FAN discriminator)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from jfr.models.discriminator import Discriminator


class DiscriminatorTest(chex.TestCase):
  def test_paper_layout_at_112(self):
    images = jnp.zeros((2, 112, 112, 3))
    logits, variables = jax.eval_shape(
      lambda: Discriminator().init_with_output(jax.random.key(0), images)
    )
    self.assertEqual(logits.shape, (2,))
    params = variables["params"]
    self.assertEqual(params["conv1"]["kernel"].shape, (4, 4, 3, 32))
    self.assertEqual(params["conv4"]["kernel"].shape, (3, 3, 64, 32))
    # One neuron connected to every pixel of the 28x28 map left by two stride-2 convs.
    self.assertEqual(params["logit"]["kernel"].shape, (28 * 28 * 32, 1))

  def test_logits_are_per_image(self):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(3, 16, 16, 3)).astype(np.float32)
    model = Discriminator(features=(4, 8, 8, 4))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
    rng = np.random.default_rng(1)  # NumPy draws: threefry init compiles slowly on CPU.
    params = jax.tree.map(
      lambda leaf: jnp.asarray(0.3 * rng.normal(size=leaf.shape), jnp.float32), shapes
    )
    logits = jax.jit(model.apply)(params, images)
    chex.assert_shape(logits, (3,))
    self.assertEqual(logits.dtype, jnp.float32)
    chex.assert_tree_all_finite(logits)
    # Each logit depends on its own image only.
    changed = images.copy()
    changed[1] = -changed[1]
    other = np.asarray(jax.jit(model.apply)(params, changed))
    np.testing.assert_allclose(other[[0, 2]], np.asarray(logits)[[0, 2]], rtol=1e-6)
    self.assertNotAlmostEqual(float(other[1]), float(logits[1]), places=5)

  def test_dense_weights_every_pixel_of_the_last_map(self):
    images = jnp.zeros((1, 16, 16, 3))
    model = Discriminator(features=(4, 8, 8, 4))
    params = jax.eval_shape(lambda: model.init(jax.random.key(1), images))
    self.assertEqual(params["params"]["logit"]["kernel"].shape, (4 * 4 * 4, 1))

  @parameterized.named_parameters(
    ("rank", (16, 16, 3), "\\[B, H, W, C\\]"),
    ("size", (1, 18, 16, 3), "multiples of 4"),
  )
  def test_bad_input_raises(self, shape, message):
    with self.assertRaisesRegex(ValueError, message):
      jax.eval_shape(lambda: Discriminator().init(jax.random.key(0), jnp.zeros(shape)))

  def test_bad_features_raise(self):
    with self.assertRaisesRegex(ValueError, "features"):
      jax.eval_shape(
        lambda: Discriminator(features=(4, 8)).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      )
