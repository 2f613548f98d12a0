"""The Face Aggregation Network's discriminator (Hörmann et al., ICIP 2021, Sec. 3.1.2).

Four convolutional layers with leaky ReLU; the first two have stride 2 (112x112 ->
28x28), the last two keep the resolution; a single output neuron is connected to
every pixel of the last feature map (flatten + Dense(1)), so the discriminator can
weigh the face centre differently from the background. The paper gives neither
kernel sizes nor widths: we use 4x4 kernels for the strided layers and 3x3 for the
others, widths (32, 64, 64, 32), and leaky ReLU slope 0.2 (the usual GAN choices).
The flatten + Dense ties the parameters to the input size: a discriminator built
for 112x112 faces only accepts 112x112 faces.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class Discriminator(nn.Module):
  """Real/fake face classifier returning one logit per image.

  Attributes:
    features: widths of the four conv layers.
    negative_slope: slope of the leaky ReLU for negative inputs.
    dtype: computation dtype (params stay ``param_dtype``; logits are float32).
    param_dtype: parameter dtype.
  """

  features: Sequence[int] = (32, 64, 64, 32)
  negative_slope: float = 0.2
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    """Scores images as real (large logit) or aggregated/fake (small logit).

    Args:
      images: ``[B, H, W, C]`` float images in [-1, 1]; H and W multiples of 4.

    Returns:
      ``[B]`` float32 logits.
    """
    if len(self.features) != 4:
      raise ValueError(f"features must list 4 conv widths; got {self.features}.")
    if images.ndim != 4:
      raise ValueError(f"images must have shape [B, H, W, C]; got {images.shape}.")
    if images.shape[1] % 4 or images.shape[2] % 4 or min(images.shape[1:3]) < 4:
      raise ValueError(
        f"images height and width must be positive multiples of 4; got {images.shape}."
      )
    kw = dict(padding="SAME", dtype=self.dtype, param_dtype=self.param_dtype)
    x = images.astype(self.dtype)
    for index, feats in enumerate(self.features):
      strided = index < 2
      kernel = (4, 4) if strided else (3, 3)
      strides = (2, 2) if strided else (1, 1)
      x = nn.Conv(feats, kernel, strides=strides, name=f"conv{index + 1}", **kw)(x)
      x = nn.leaky_relu(x, self.negative_slope)
    x = x.reshape((x.shape[0], -1))
    logits = nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype, name="logit")(x)
    return logits[:, 0].astype(jnp.float32)
