"""Face reconstruction decoder of the explainable-FR paper (Xu, Lu, Ebrahimi).

Section III-C of "Discriminative Deep Feature Visualization for Explainable Face
Recognition": the explanation flow is "a face reconstruction network comprising a stack of
four transposed convolutional layers, which takes the convolutional features as input to
rebuild a facial image", trained with an MSE loss against the input face (Eq. 2,
``L = L_id + lambda * L_rec``). The paper gives no widths, kernels or activations; this
module's reading:

* four transposed convolutions, 4x4 kernels, stride 2, ``'SAME'`` padding (computed by
  :class:`jfr.models.conv_transpose.SubpixelConvTranspose`: the same function and
  parameters as ``nn.ConvTranspose``, without multiplying inserted zeros), so each layer
  doubles the spatial size and four of them undo a 16x downsampling backbone (ArcFace's
  IResNet-50 maps 112x112 faces to a 7x7x512 map: 7 -> 14 -> 28 -> 56 -> 112);
* the first three layers have ``widths`` output channels followed by ``activation``
  (ReLU by default); the last has 3 output channels;
* the output is ``tanh``-squashed into [-1, 1], the range images have inside jfr models
  (CONVENTIONS.md), so the MSE is taken directly against the model-range input image;
* no normalisation layers: the decoder is a pure per-example function of its parameters,
  which Algorithm 1 relies on (the perturbed maps of one image are decoded in batches).

``output_size`` makes the decoder fit a backbone whose downsampling is not 16x: the
16x-upsampled pre-``tanh`` image is bilinearly resized (``jax.image.resize``) to it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jfr.models.conv_transpose import SubpixelConvTranspose

_NUM_HIDDEN = 3  # four transposed convolutions: three hidden layers and the RGB layer


class ReconstructionDecoder(nn.Module):
  """Rebuilds a face ``[B, H, W, 3]`` in [-1, 1] from a conv map ``[B, h, w, c]``.

  Attributes:
    widths: output channels of the first three transposed convolutions (the fourth
      outputs RGB). The paper gives none; (256, 128, 64) halves a 512-channel map.
    output_size: ``(H, W)`` of the reconstruction, or None for ``(16 h, 16 w)``. When it
      differs from ``(16 h, 16 w)`` the last layer's output is bilinearly resized to it
      before the ``tanh``.
    activation: nonlinearity after each hidden transposed convolution.
    kernel_size: side of the square transposed-convolution kernels (stride is 2).
    dtype: computation dtype of the layers (parameters stay float32).
  """

  widths: Sequence[int] = (256, 128, 64)
  output_size: tuple[int, int] | None = None
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  kernel_size: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, conv_map: jax.Array) -> jax.Array:
    """Decodes ``conv_map`` ``[B, h, w, c]`` into images ``[B, H, W, 3]`` in [-1, 1]."""
    if len(self.widths) != _NUM_HIDDEN or any(int(w) <= 0 for w in self.widths):
      raise ValueError(
        f"widths: expected {_NUM_HIDDEN} positive ints (the fourth "
        f"layer outputs RGB), got {self.widths!r}"
      )
    if self.output_size is not None and (
      len(self.output_size) != 2 or any(int(s) <= 0 for s in self.output_size)
    ):
      raise ValueError(
        f"output_size: expected None or (H, W) of positive ints, got {self.output_size!r}"
      )
    if conv_map.ndim != 4:
      raise ValueError(f"conv_map: expected rank 4 [B, h, w, c], got shape {conv_map.shape}")
    kernel = (self.kernel_size, self.kernel_size)
    x = conv_map
    for i, width in enumerate(self.widths):
      x = SubpixelConvTranspose(int(width), kernel, dtype=self.dtype, name=f"deconv{i}")(x)
      x = self.activation(x)
    x = SubpixelConvTranspose(3, kernel, dtype=self.dtype, name=f"deconv{_NUM_HIDDEN}")(x)
    if self.output_size is not None and x.shape[1:3] != tuple(self.output_size):
      x = jax.image.resize(x, (x.shape[0], *self.output_size, 3), "bilinear")
    return jnp.tanh(x.astype(jnp.float32))
