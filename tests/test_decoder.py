"""Tests for jfr.models.decoder.ReconstructionDecoder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfr.models.decoder import ReconstructionDecoder


def _params(model, example, seed=0):
  """NumPy-drawn parameters of the right shapes (Flax's initialisers compile slowly)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), example)
  return jax.tree.map(
    lambda s: jnp.asarray(
      rng.normal(size=s.shape) / np.sqrt(max(np.prod(s.shape[:-1]) / 4, 1)), jnp.float32
    ),
    shapes,
  )


def test_four_stride2_transposed_convs_to_16x():
  model = ReconstructionDecoder(widths=(8, 6, 4))
  conv = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 2, 5)), jnp.float32)
  params = _params(model, conv)
  kernels = {name: layer["kernel"].shape for name, layer in params["params"].items()}
  assert kernels == {
    "deconv0": (4, 4, 5, 8),
    "deconv1": (4, 4, 8, 6),
    "deconv2": (4, 4, 6, 4),
    "deconv3": (4, 4, 4, 3),
  }
  images = model.apply(params, conv)
  assert images.shape == (2, 48, 32, 3)
  assert float(jnp.abs(images).max()) <= 1.0 and float(images.std()) > 0.05


def test_examples_are_independent_and_shift_equivariant():
  """Per-example (no batch statistics) and a 1-cell shift moves the image 16 pixels."""
  model = ReconstructionDecoder(widths=(4, 4, 4))
  conv = np.zeros((2, 6, 6, 3), np.float32)
  conv[0, 2, 2] = [1.0, -0.5, 2.0]
  conv[1, 3, 2] = conv[0, 2, 2]
  params = _params(model, conv, 2)
  images = np.asarray(model.apply(params, jnp.asarray(conv)))
  alone = np.asarray(model.apply(params, jnp.asarray(conv[:1])))
  np.testing.assert_allclose(images[:1], alone, atol=1e-6)
  np.testing.assert_allclose(images[1, 32:80], images[0, 16:64], atol=1e-6)
  assert np.abs(images[0, 16:64] - images[0, 0]).max() > 1e-3


def test_output_size_resizes_and_activation_is_used():
  conv = jnp.ones((1, 2, 2, 3))
  model = ReconstructionDecoder(widths=(4, 4, 4), output_size=(24, 20))
  assert model.apply(_params(model, conv), conv).shape == (1, 24, 20, 3)
  # With identity activations and zero biases the decoder is tanh of a linear map: odd.
  x = jnp.asarray(np.random.default_rng(4).normal(size=(1, 2, 2, 3)), jnp.float32)
  for activation, odd in ((lambda v: v, True), (jax.nn.relu, False)):
    model = ReconstructionDecoder(widths=(4, 4, 4), activation=activation)
    params = jax.tree.map(lambda v: v if v.ndim > 1 else 0 * v, _params(model, conv, 3))
    plus, minus = model.apply(params, x), model.apply(params, -x)
    assert np.allclose(plus, -minus, atol=1e-5) == odd


def test_bad_configuration_and_input():
  conv = jnp.ones((1, 2, 2, 3))
  with pytest.raises(ValueError, match="widths"):
    ReconstructionDecoder(widths=(4, 4)).init(jax.random.key(0), conv)
  with pytest.raises(ValueError, match="output_size"):
    ReconstructionDecoder(output_size=(0, 4)).init(jax.random.key(0), conv)
  with pytest.raises(ValueError, match="conv_map"):
    ReconstructionDecoder().init(jax.random.key(0), conv[0])
