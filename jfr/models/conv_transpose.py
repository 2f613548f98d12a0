"""Sub-pixel (phase-decomposed) stride-2 transposed convolution.

``SubpixelConvTranspose`` computes exactly what
``flax.linen.ConvTranspose(features, kernel_size, strides=(2, 2), padding='SAME')``
computes (default ``transpose_kernel=False``) and has the same parameters (``kernel``
``[kh, kw, c_in, features]``, ``bias`` ``[features]``, same initialisers), so
variables can be moved between the two modules unchanged. It is used by the set
U-Net's decoder (FAN paper, Sec. 3.1.1, "4x4 deconvolutional layer").

Why: flax lowers ``ConvTranspose`` to ``lax.conv_general_dilated`` with
``lhs_dilation=2``, i.e. a convolution over an input with zeros inserted between
pixels: three quarters of its multiply-adds hit inserted zeros, and XLA's CPU backend
runs such input-dilated convolutions (and their gradients) far slower than plain
ones. Here every output phase is a plain stride-1 convolution instead.

Derivation (one spatial axis, kernel size ``k = 2p``): for stride 2 and 'SAME',
``lax.conv_transpose`` pads the dilated input by ``p`` on both sides and correlates
with the (unflipped) kernel, so ``y[o] = sum_t x[(o + t - p) / 2] K[t]`` over the taps
``t`` for which ``o + t - p`` is even, with ``x`` zero outside ``[0, H)``. Writing
``o = 2m + a`` (phase ``a`` in {0, 1}), phase ``a`` uses the taps
``t = f_a, f_a + 2, …`` with ``f_a = (p + a) mod 2`` and reads
``x[m + s_a], …, x[m + s_a + p - 1]`` with ``s_a = (a + f_a - p) / 2``: a stride-1
correlation with a ``p``-tap kernel ``K[f_a::2]`` and padding ``(-s_a, p - 1 + s_a)``.
For ``k = 4``: phase 0 is ``x[m-1] K[0] + x[m] K[2]``, phase 1 is
``x[m] K[1] + x[m+1] K[3]``. In 2-D the four phases ``(a, b)`` are four 2x2
convolutions whose outputs are interleaved by depth-to-space.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen import dtypes as flax_dtypes
from flax.linen import initializers

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def icnr_init(base_init: initializers.Initializer = nn.linear.default_kernel_init):
  """ICNR initialiser of a stride-2 transposed-conv kernel (checkerboard-free start).

  Aitken et al., "Checkerboard artifact free sub-pixel convolution" (2017): start the
  layer as "nearest-neighbour upsampling, then a convolution", so that all four output
  phases (the sub-pixel kernels ``K[f_a::2, f_b::2]`` of the module docstring) are equal.
  A kernel ``[kh, kw, c_in, c_out]`` (even ``kh``, ``kw``) is drawn as
  ``k = base_init([kh/2, kw/2, c_in, c_out])`` (the fan-in of one phase) and every tap
  repeated twice along both spatial axes, ``K[2i + a, 2j + b] = k[i, j]``. Since phase
  ``a`` uses the taps ``f_a, f_a + 2, ...`` with ``f_a`` in {0, 1}, each phase's kernel is
  ``k``: a constant input gives a constant output (away from the zero-padded border),
  i.e. no checkerboard at initialisation. Training may then move the phases apart.

  Args:
    base_init: initialiser of the per-phase kernel ``k`` (default: flax's conv default).

  Returns:
    ``init(key, shape, dtype) -> [kh, kw, c_in, c_out]``.
  """

  def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    if len(shape) != 4 or shape[0] % 2 or shape[1] % 2:
      raise ValueError(
        f"icnr_init: shape must be [kh, kw, c_in, c_out] with even kh, kw; got {shape}."
      )
    small = base_init(key, (shape[0] // 2, shape[1] // 2) + tuple(shape[2:]), dtype)
    return jnp.repeat(jnp.repeat(small, 2, axis=0), 2, axis=1)

  return init


def _phase(half_kernel: int, phase: int) -> tuple[slice, tuple[int, int]]:
  """Kernel taps and input padding of one output phase along one axis.

  Args:
    half_kernel: ``p = k / 2`` for an even kernel size ``k``.
    phase: output phase ``a`` in {0, 1} (output index ``o = 2m + a``).

  Returns:
    ``(taps, (pad_low, pad_high))``: the kernel slice ``f_a::2`` and the padding of
    the stride-1 correlation that yields this phase (see the module docstring).
  """
  first = (half_kernel + phase) % 2
  start = (phase + first - half_kernel) // 2
  return slice(first, None, 2), (-start, half_kernel - 1 + start)


def subpixel_conv_transpose(
  inputs: jax.Array, kernel: jax.Array, precision: jax.lax.PrecisionLike = None
) -> jax.Array:
  """Stride-2 'SAME' transposed convolution as four phase convolutions.

  Equal to ``lax.conv_transpose(inputs, kernel, (2, 2), 'SAME')`` (no kernel flip).

  Args:
    inputs: ``[B, H, W, C_in]``.
    kernel: ``[kh, kw, C_in, C_out]`` with even ``kh`` and ``kw``.
    precision: passed to ``lax.conv_general_dilated``.

  Returns:
    ``[B, 2H, 2W, C_out]``.
  """
  kh, kw, _, c_out = kernel.shape
  if kh % 2 or kw % 2:
    raise ValueError(f"kernel spatial size must be even; got {(kh, kw)}.")
  batch, height, width, _ = inputs.shape
  rows = []
  for a in (0, 1):
    taps_h, pad_h = _phase(kh // 2, a)
    row = []
    for b in (0, 1):
      taps_w, pad_w = _phase(kw // 2, b)
      row.append(
        jax.lax.conv_general_dilated(
          inputs,
          kernel[taps_h, taps_w],
          window_strides=(1, 1),
          padding=(pad_h, pad_w),
          dimension_numbers=_DIMENSION_NUMBERS,
          precision=precision,
        )
      )
    rows.append(jnp.stack(row, axis=3))  # [B, H, W, 2 (b), C_out]
  out = jnp.stack(rows, axis=2)  # [B, H, 2 (a), W, 2 (b), C_out]
  return out.reshape(batch, 2 * height, 2 * width, c_out)


class SubpixelConvTranspose(nn.Module):
  """Drop-in replacement for ``nn.ConvTranspose(..., strides=(2, 2), padding='SAME')``.

  Only the configuration the set U-Net needs is supported: 2-D, stride 2, 'SAME'
  padding, no kernel dilation, ``transpose_kernel=False`` (flax's default), even
  kernel sizes. The parameter tree (``kernel`` ``[kh, kw, c_in, features]``,
  ``bias`` ``[features]``) and the default initialisers are those of
  ``nn.ConvTranspose``, so ``init`` with the same key gives the same parameters.

  Attributes:
    features: number of output channels.
    kernel_size: ``(kh, kw)``, both even (the FAN decoder uses 4x4).
    use_bias: whether to add a bias.
    dtype: computation dtype (None: inferred from inputs and params).
    param_dtype: parameter dtype.
    precision: convolution precision.
    kernel_init: kernel initialiser.
    bias_init: bias initialiser.
  """

  features: int
  kernel_size: Sequence[int] = (4, 4)
  use_bias: bool = True
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32
  precision: jax.lax.PrecisionLike = None
  kernel_init: initializers.Initializer = nn.linear.default_kernel_init
  bias_init: initializers.Initializer = initializers.zeros_init()

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    """Applies the transposed convolution.

    Args:
      inputs: ``[..., H, W, C_in]`` with at least one leading batch axis.

    Returns:
      ``[..., 2H, 2W, features]``.
    """
    kernel_size = tuple(self.kernel_size)
    if len(kernel_size) != 2 or any(k <= 0 or k % 2 for k in kernel_size):
      raise ValueError(f"kernel_size must be two positive even ints; got {self.kernel_size}.")
    if inputs.ndim < 4:
      raise ValueError(f"inputs must have shape [..., H, W, C]; got {inputs.shape}.")
    batch_shape = inputs.shape[:-3]
    flat = inputs.reshape((-1,) + inputs.shape[-3:])
    kernel = self.param(
      "kernel", self.kernel_init, kernel_size + (inputs.shape[-1], self.features), self.param_dtype
    )
    bias = (
      self.param("bias", self.bias_init, (self.features,), self.param_dtype)
      if self.use_bias
      else None
    )
    flat, kernel, bias = flax_dtypes.promote_dtype(flat, kernel, bias, dtype=self.dtype)
    out = subpixel_conv_transpose(flat, kernel, precision=self.precision)
    if bias is not None:
      out = out + bias
    return out.reshape(batch_shape + out.shape[1:])
