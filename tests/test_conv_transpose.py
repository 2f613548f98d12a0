"""Tests of jfr.models.conv_transpose against flax's nn.ConvTranspose and a NumPy loop."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from jfr.models.conv_transpose import SubpixelConvTranspose, icnr_init, subpixel_conv_transpose


def _flax(features, kernel_size):
  return nn.ConvTranspose(features, kernel_size, strides=(2, 2), padding="SAME")


def _np_conv_transpose_4x4(x, kernel):
  """Scatter form of the 4x4 stride-2 'SAME' transposed conv (lax.conv_transpose).

  lax.conv_transpose pads the 2-dilated input by (2, 2) and correlates it with the
  unflipped kernel: output o reads dilated position o + t - 2, which holds input
  pixel i when o + t - 2 = 2i. So input pixel (i, j) adds x[i, j] @ kernel[t, u] to
  output (2i + 2 - t, 2j + 2 - u), when that lies inside the 2H x 2W output.
  """
  batch, height, width, _ = x.shape
  out = np.zeros((batch, 2 * height, 2 * width, kernel.shape[-1]), np.float64)
  for i in range(height):
    for j in range(width):
      for t in range(4):
        for u in range(4):
          oi, oj = 2 * i + 2 - t, 2 * j + 2 - u
          if 0 <= oi < 2 * height and 0 <= oj < 2 * width:
            out[:, oi, oj] += x[:, i, j] @ kernel[t, u]
  return out


class SubpixelConvTransposeTest(chex.TestCase):
  @parameterized.parameters(
    ((4, 4), 5, 7, 3, 4),
    ((4, 4), 8, 8, 6, 2),
    ((4, 4), 1, 1, 2, 3),
    ((4, 4), 7, 4, 16, 8),
    ((2, 2), 3, 5, 4, 5),
    ((6, 6), 4, 3, 3, 2),
    ((4, 2), 5, 6, 3, 3),
  )
  def test_equals_flax_conv_transpose(self, kernel_size, height, width, c_in, c_out):
    rng = np.random.default_rng(height * 31 + width)
    x = jnp.asarray(rng.normal(size=(2, height, width, c_in)), jnp.float32)
    params = {
      "params": {
        "kernel": jnp.asarray(rng.normal(size=kernel_size + (c_in, c_out)), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=(c_out,)), jnp.float32),
      }
    }
    want = _flax(c_out, kernel_size).apply(params, x)
    got = SubpixelConvTranspose(c_out, kernel_size).apply(params, x)
    chex.assert_shape(got, (2, 2 * height, 2 * width, c_out))
    chex.assert_trees_all_close(got, want, atol=1e-4, rtol=1e-5)

  def test_matches_numpy_scatter_reference(self):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 3))
    kernel = rng.normal(size=(4, 4, 3, 2))
    got = subpixel_conv_transpose(jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32))
    np.testing.assert_allclose(
      np.asarray(got), _np_conv_transpose_4x4(x, kernel), atol=1e-4, rtol=1e-5
    )

  def test_gradients_equal_flax(self):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 4)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(2, 10, 12, 3)), jnp.float32)
    params = {
      "params": {
        "kernel": jnp.asarray(rng.normal(size=(4, 4, 4, 3)), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
      }
    }

    def loss(module):
      return lambda p, v: jnp.sum((module.apply(p, v) - target) ** 2)

    want = jax.grad(loss(_flax(3, (4, 4))), argnums=(0, 1))(params, x)
    got = jax.grad(loss(SubpixelConvTranspose(3)), argnums=(0, 1))(params, x)
    chex.assert_trees_all_close(got, want, atol=1e-3, rtol=1e-4)

  def test_same_parameters_and_init_as_flax(self):
    x = jnp.ones((1, 7, 7, 5))
    want = _flax(6, (4, 4)).init(jax.random.key(3), x)
    got = SubpixelConvTranspose(6).init(jax.random.key(3), x)
    chex.assert_trees_all_equal(got, want)

  def test_without_bias_and_extra_batch_axes(self):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 4, 4, 2)), jnp.float32)
    module = SubpixelConvTranspose(3, use_bias=False)
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), x))
    self.assertEqual(set(shapes["params"]), {"kernel"})
    kernel = np.random.default_rng(3).normal(size=(4, 4, 2, 3))
    params = {"params": {"kernel": jnp.asarray(kernel, jnp.float32)}}
    want = nn.ConvTranspose(3, (4, 4), (2, 2), "SAME", use_bias=False).apply(params, x)
    chex.assert_trees_all_close(module.apply(params, x), want, atol=1e-4, rtol=1e-5)

  def test_bfloat16_computation(self):
    x = jnp.ones((1, 4, 4, 3))
    module = SubpixelConvTranspose(2, dtype=jnp.bfloat16)
    params = jax.eval_shape(lambda: module.init(jax.random.key(0), x))
    self.assertEqual(params["params"]["kernel"].dtype, jnp.float32)
    self.assertEqual(jax.eval_shape(module.apply, params, x).dtype, jnp.bfloat16)

  @parameterized.parameters((3, 3), (4, 5), (4,), (0, 4))
  def test_odd_or_bad_kernel_raises(self, *kernel_size):
    with self.assertRaisesRegex(ValueError, "kernel_size"):
      jax.eval_shape(
        lambda: SubpixelConvTranspose(2, kernel_size).init(
          jax.random.key(0), jnp.ones((1, 4, 4, 2))
        )
      )

  def test_bad_input_rank_raises(self):
    with self.assertRaisesRegex(ValueError, "inputs"):
      jax.eval_shape(lambda: SubpixelConvTranspose(2).init(jax.random.key(0), jnp.ones((4, 4, 2))))

  @parameterized.parameters((4, 4), (2, 6))
  def test_icnr_init_gives_equal_subpixel_kernels_and_no_checkerboard(self, kh, kw):
    kernel = np.asarray(icnr_init()(jax.random.key(0), (kh, kw, 3, 5)))
    # The four phases read the taps (a::2, b::2) for a, b in {0, 1} (module docstring).
    phases = [kernel[a::2, b::2] for a in (0, 1) for b in (0, 1)]
    for phase in phases[1:]:
      np.testing.assert_array_equal(phase, phases[0])
    self.assertGreater(np.abs(phases[0]).max(), 0.0)
    module = SubpixelConvTranspose(5, (kh, kw), kernel_init=icnr_init())
    x = jnp.full((1, 8, 8, 3), 0.7)
    out = np.asarray(module.apply(module.init(jax.random.key(1), x), x))
    interior = out[0, kh:-kh, kw:-kw]  # away from the zero padding
    np.testing.assert_allclose(
      interior, np.broadcast_to(interior[:1, :1], interior.shape), atol=1e-5
    )
    # A default (random) kernel gives a period-2 pattern on the same input.
    default = SubpixelConvTranspose(5, (kh, kw))
    out = np.asarray(default.apply(default.init(jax.random.key(1), x), x))[0, kh:-kh, kw:-kw]
    self.assertGreater(np.abs(out[0::2, 0::2] - out[1::2, 1::2]).max(), 1e-2)

  def test_icnr_init_rejects_odd_kernels(self):
    with self.assertRaisesRegex(ValueError, "icnr_init"):
      icnr_init()(jax.random.key(0), (3, 3, 2, 2))
