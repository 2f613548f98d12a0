"""The Face Aggregation Network's face aggregator: a permutation invariant set U-Net.

Hörmann et al., "Face Aggregation Network for Video Face Recognition", ICIP 2021,
Sec. 3.1.1. ``SetUNet`` maps a set of N aligned face images ``[B, N, H, W, 3]`` (with
a bool membership mask ``[B, N]``) to one aggregated face ``[B, H, W, 3]``. Every
member runs through the same U-Net (shared weights: N is folded into the batch axis
for the convolutions); global concatenation layers (Eq. 4, ``layers.global_concat``)
let the members exchange information at every depth, and a max-pool over the
members turns the N branches into one image.

Layout (``base_features = c``; the paper gives no widths, these are our choice,
doubling per encoder level as in the U-Net):

=====================  =========================================  ===========  ======
stage                  layers                                      resolution   width
=====================  =========================================  ===========  ======
stem                   3x3 conv                                    112          c
encoder block 1..4     global concat, 1x1 conv, 3x3 conv stride 2  56/28/14/7   c,2c,4c,8c
decoder block 1..4     4x4 transposed conv stride 2, global        14/28/56/112 4c,2c,c,c
                       concat, concat encoder skip, 1x1, 3x3 conv
head                   masked max over members, 3x3 conv, 3x3      112          c, 3
                       conv to RGB
=====================  =========================================  ===========  ======

(resolutions for a 112x112 input; any multiple of 16 works). The decoder's skip at
each resolution is the encoder output of that resolution (the stem output at full
resolution). Each "global concat + 1x1 conv" (and the decoder's "+ skip") is one
``SetMergeConv``: the same function and parameters as ``nn.Conv`` 1x1 over the
concatenation, computed without materialising it and with the set maximum's share
computed once per set.

ELU follows every convolution and transposed convolution except the last one.
Reading of the paper: it says ELU follows *every* convolution, but the output is an
image in [-1, 1] and ELU's range (-1, inf) only approaches -1 (with a vanishing
gradient there), so by default the last conv is linear
(``output_activation='linear'``); ``'elu'`` gives the literal reading and ``'tanh'``
a bounded output.

Sets of different sizes: the module works for any static N >= 1, but every new N
compiles a new program under ``jit``. To serve sets of varying size with one
program, pad every set to a fixed ``N_max`` (``pad_set``) and pass the mask: padded
members are zeroed at the input, never enter a global concatenation or the final
max-pool, and so cannot change the output (they only cost compute).

Options beyond the paper (both off by default and in ``configs/fan.py:paper``):

* ``upsample_init='icnr'``: the transposed convolutions start from an ICNR kernel
  (:func:`jfr.models.conv_transpose.icnr_init`: all four sub-pixel phases equal), so the
  untrained decoder upsamples without the checkerboard that a random 4x4 stride-2 kernel
  prints on every level.
* ``residual='mean'``: the output is the masked pixel mean of the members plus the
  network's output, and the last conv starts at zero, so the untrained aggregator returns
  the pixel mean of the set and training learns a correction of it (the paper's U-Net
  generates the face from scratch).
* ``residual='weighted_mean'``: as ``'mean'``, but the mean is weighted per pixel:
  ``sum_n w_n(y, x) X_n(y, x)`` with ``w = softmax_n`` of a 3x3 conv of each member's
  decoder output (which carries the set's context through the global concatenations).
  The weights' conv also starts at zero (uniform weights: the pixel mean), so training can
  learn to take each region from the members where it is sharp, unoccluded and frontal.
  The weights are a softmax over the members, so the output stays permutation invariant.
* ``shading_symmetry=sigma > 0``: an even-light prior for the aggregated face. The output's
  low frequencies are made left-right symmetric about the image's vertical centre line:
  ``y + (G_sigma * (flip(y) - y)) / 2`` (:func:`jfr.models.layers.symmetrise_shading`; ``G_sigma`` a Gaussian
  low-pass of std ``sigma`` pixels, mirrored at the borders). Side light is a low-frequency,
  left-right asymmetric shading of a face; details finer than ``sigma`` (eyes, a parting,
  a mole) are kept as the network made them. It is a fixed linear map with no parameters,
  and it does not look at any target. It assumes faces centred in their crops, as the
  aligned faces of every jfr pipeline are.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen import dtypes as flax_dtypes

from jfr.models import layers
from jfr.models.conv_transpose import SubpixelConvTranspose, icnr_init

_OUTPUT_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
  "linear": lambda x: x,
  "tanh": jnp.tanh,
  "elu": nn.elu,
}
_TRANSPOSED_CONVS: dict[str, Callable[..., nn.Module]] = {
  "subpixel": lambda features, **kw: SubpixelConvTranspose(features, (4, 4), **kw),
  "flax": lambda features, **kw: nn.ConvTranspose(
    features, (4, 4), strides=(2, 2), padding="SAME", **kw
  ),
}
_UPSAMPLE_INITS = ("default", "icnr")
_RESIDUALS = ("none", "mean", "weighted_mean")
_NUM_LEVELS = 4  # encoder/decoder blocks; the input size must be a multiple of 2**4.


def _check_shapes(
  frames_shape: tuple[int, ...], mask_shape: tuple[int, ...], max_members: int
) -> None:
  """Raises ValueError unless the static shapes describe a valid padded face set."""
  if len(frames_shape) != 5:
    raise ValueError(f"frames must have shape [B, N, H, W, 3]; got {frames_shape}.")
  batch, members, height, width, channels = frames_shape
  if members < 1:
    raise ValueError(f"frames must hold at least one member (N >= 1); got N = {members}.")
  if members > max_members:
    raise ValueError(f"frames holds N = {members} members, above max_members = {max_members}.")
  size = 2**_NUM_LEVELS
  if height < size or width < size or height % size or width % size:
    raise ValueError(
      f"frames height and width must be positive multiples of {size}; got {height}x{width}."
    )
  if channels != 3:
    raise ValueError(f"frames must have 3 (RGB) channels; got {channels}.")
  if tuple(mask_shape) != (batch, members):
    raise ValueError(f"mask must have shape [B, N] = {(batch, members)}; got {mask_shape}.")


def validate_set_inputs(frames: Any, mask: Any, max_members: int) -> None:
  """Checks a concrete face set before it is given to ``SetUNet``.

  Args:
    frames: ``[B, N, H, W, 3]`` float images in [-1, 1] (padded members may hold
      anything, NaN included; they are never read).
    mask: ``[B, N]`` bool, True for real members.
    max_members: the largest N accepted (``SetUNet.max_members``).

  Raises:
    ValueError: wrong rank/shape (N = 0, N > max_members, H or W not a positive
      multiple of 16, not 3 channels), a non-bool mask, a set with no real member
      (an all-False mask row), or a non-finite pixel in a real member.
  """
  frames = np.asarray(frames)
  mask = np.asarray(mask)
  _check_shapes(frames.shape, mask.shape, max_members)
  if mask.dtype != np.bool_:
    raise ValueError(f"mask must be boolean; got dtype {mask.dtype}.")
  if not np.issubdtype(frames.dtype, np.floating):
    raise ValueError(f"frames must be floating point in [-1, 1]; got dtype {frames.dtype}.")
  empty = np.flatnonzero(~mask.any(axis=1))
  if empty.size:
    raise ValueError(f"mask has no real member in set(s) {empty.tolist()}; every set needs one.")
  bad = ~np.isfinite(frames).all(axis=(2, 3, 4)) & mask
  if bad.any():
    raise ValueError(
      f"frames has non-finite pixels in real member(s) (set, member) {np.argwhere(bad).tolist()}."
    )


def pad_set(frames: Any, max_members: int) -> tuple[np.ndarray, np.ndarray]:
  """Pads one set of N frames to ``max_members`` members with zero images.

  Args:
    frames: ``[N, H, W, C]`` with ``1 <= N <= max_members``.
    max_members: the fixed set size of the padded batch.

  Returns:
    ``(padded [max_members, H, W, C], mask [max_members] bool)``.
  """
  frames = np.asarray(frames)
  if frames.ndim != 4:
    raise ValueError(f"frames must have shape [N, H, W, C]; got {frames.shape}.")
  members = frames.shape[0]
  if not 1 <= members <= max_members:
    raise ValueError(f"frames must hold 1..{max_members} members; got N = {members}.")
  padded = np.zeros((max_members,) + frames.shape[1:], frames.dtype)
  padded[:members] = frames
  return padded, np.arange(max_members) < members


def masked_member_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
  """Softmax over the members axis, padded members excluded.

  ``w[b, n, y, x] = exp(l[b, n, y, x]) / sum_{m real} exp(l[b, m, y, x])`` for real members,
  0 for padded ones.

  Args:
    logits: ``[B, N, H, W, 1]`` per-member, per-pixel scores.
    mask: ``[B, N]`` bool, True for real members (every row has one).

  Returns:
    ``[B, N, H, W, 1]`` weights, non-negative, summing to 1 over N at every pixel.
  """
  real = mask[:, :, None, None, None]
  logits = jnp.where(real, logits, jnp.finfo(logits.dtype).min)
  return jnp.where(real, jax.nn.softmax(logits, axis=1), 0)


class SetMergeConv(nn.Module):
  """The 1x1 conv that follows a global concatenation, without the concatenation.

  Computes ``Conv1x1([X_n ⊕ max_j X_j ⊕ S_n])`` (Eq. 4 then the FAN's 1x1 merge
  layer; ``S_n`` are optional extra maps such as the decoder's encoder skip) as
  ``X_n W_x + (max_j X_j) W_max + S_n W_s + b``: the set maximum's term is computed
  once per set instead of once per member (it is the same for all N members), and
  no ``[B, N, h, w, 2c + s]`` concatenation is materialised. The parameters are
  exactly those of ``nn.Conv(features, (1, 1))`` applied to the concatenation
  (``kernel`` ``[1, 1, 2c + s, features]`` with rows in the order x, max, extras;
  ``bias`` ``[features]``), so the two forms are interchangeable.

  Attributes:
    features: output channels.
    dtype: computation dtype (None: inferred from inputs and params).
    param_dtype: parameter dtype.
  """

  features: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *extras: jax.Array) -> jax.Array:
    """Applies the merge.

    Args:
      x: ``[B, N, h, w, c]`` member features.
      mask: ``[B, N]`` bool, True for real members.
      *extras: ``[B, N, h, w, c_i]`` maps concatenated after the set maximum.

    Returns:
      ``[B, N, h, w, features]``.
    """
    widths = [x.shape[-1], x.shape[-1]] + [e.shape[-1] for e in extras]
    kernel = self.param(
      "kernel", nn.linear.default_kernel_init, (1, 1, sum(widths), self.features), self.param_dtype
    )
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), self.param_dtype)
    x, kernel, bias, *extras = flax_dtypes.promote_dtype(x, kernel, bias, *extras, dtype=self.dtype)
    blocks = jnp.split(kernel[0, 0], np.cumsum(widths)[:-1], axis=0)
    pooled = layers.masked_set_max(x, mask)  # [B, h, w, c]
    out = x @ blocks[0]
    for extra, block in zip(extras, blocks[2:]):
      out = out + extra @ block
    return out + (pooled @ blocks[1] + bias)[:, None]


class SetUNet(nn.Module):
  """Permutation invariant set U-Net face aggregator (FAN paper, Sec. 3.1.1).

  Attributes:
    base_features: width c of the stem; encoder widths are c, 2c, 4c, 8c (see the
      module docstring for the full layout).
    max_members: the largest set size N accepted.
    output_activation: activation of the last conv: 'linear' (default), 'tanh' or
      'elu' (the paper's literal "ELU after every conv").
    transposed_conv: 'subpixel' (``SubpixelConvTranspose``, default) or 'flax'
      (``nn.ConvTranspose``); same function and parameters, different speed.
    upsample_init: initialiser of the transposed convs' kernels: 'default' (flax's
      LeCun normal) or 'icnr' (all sub-pixel phases equal; module docstring).
    residual: 'none' (the paper: the network's output is the face), 'mean' (the
      masked pixel mean of the members plus the output, last conv zero-initialised) or
      'weighted_mean' (a learned per-pixel softmax weighting of the members instead of the
      plain mean; module docstring).
    shading_symmetry: 0 (the paper: off) or the std in pixels of the low-pass whose band of
      the output is made left-right symmetric (module docstring, ``layers.symmetrise_shading``).
    dtype: computation dtype (params stay ``param_dtype``; the output is float32).
    param_dtype: parameter dtype.
  """

  base_features: int = 32
  max_members: int = 64
  output_activation: str = "linear"
  transposed_conv: str = "subpixel"
  upsample_init: str = "default"
  residual: str = "none"
  shading_symmetry: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, frames: jax.Array, mask: jax.Array) -> jax.Array:
    """Aggregates each set of faces into one face.

    Args:
      frames: ``[B, N, H, W, 3]`` float images in [-1, 1]; H and W multiples of 16;
        ``1 <= N <= max_members``.
      mask: ``[B, N]`` bool, True for real members; every row needs a True entry.

    Returns:
      ``[B, H, W, 3]`` float32 aggregated images.

    Raises:
      ValueError: bad static shapes (always), and bad values (all-False mask row,
        non-finite pixels of real members) when the inputs are concrete arrays
        (outside ``jit``); under ``jit`` call ``validate_set_inputs`` beforehand.
    """
    if self.output_activation not in _OUTPUT_ACTIVATIONS:
      raise ValueError(
        f"output_activation must be one of {sorted(_OUTPUT_ACTIVATIONS)}; "
        f"got {self.output_activation!r}."
      )
    if self.transposed_conv not in _TRANSPOSED_CONVS:
      raise ValueError(
        f"transposed_conv must be one of {sorted(_TRANSPOSED_CONVS)}; got {self.transposed_conv!r}."
      )
    if self.upsample_init not in _UPSAMPLE_INITS:
      raise ValueError(
        f"upsample_init must be one of {_UPSAMPLE_INITS}; got {self.upsample_init!r}."
      )
    if self.residual not in _RESIDUALS:
      raise ValueError(f"residual must be one of {_RESIDUALS}; got {self.residual!r}.")
    if not np.isfinite(self.shading_symmetry) or self.shading_symmetry < 0:
      raise ValueError(
        f"shading_symmetry must be 0 (off) or a positive std in pixels; "
        f"got {self.shading_symmetry!r}."
      )
    _check_shapes(tuple(frames.shape), tuple(mask.shape), self.max_members)
    if mask.dtype != jnp.bool_:
      raise ValueError(f"mask must be boolean; got dtype {mask.dtype}.")
    if not isinstance(frames, jax.core.Tracer) and not isinstance(mask, jax.core.Tracer):
      validate_set_inputs(frames, mask, self.max_members)

    batch, members, height, width, _ = frames.shape
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv = lambda feats, size, name, strides=1: nn.Conv(  # noqa: E731
      feats, (size, size), strides=(strides, strides), padding="SAME", name=name, **kw
    )
    up_kw = dict(kernel_init=icnr_init()) if self.upsample_init == "icnr" else {}
    deconv = lambda feats, name: _TRANSPOSED_CONVS[self.transposed_conv](  # noqa: E731
      feats, name=name, **kw, **up_kw
    )
    merge = lambda feats, name: SetMergeConv(feats, name=name, **kw)  # noqa: E731

    def as_sets(h: jax.Array) -> jax.Array:
      return h.reshape((batch, members) + h.shape[1:])

    def as_images(h: jax.Array) -> jax.Array:
      return h.reshape((batch * members,) + h.shape[2:])

    # Padded members are zeroed so that garbage (even NaN) cannot reach a gradient.
    x = jnp.where(mask[:, :, None, None, None], frames, 0).astype(self.dtype)
    x = x.reshape((batch * members, height, width, 3))

    c = self.base_features
    x = nn.elu(conv(c, 3, name="stem")(x))
    skips = [x]
    for level, feats in enumerate((c, 2 * c, 4 * c, 8 * c), start=1):
      x = nn.elu(merge(feats, f"encoder{level}_merge")(as_sets(x), mask))
      x = nn.elu(conv(feats, 3, strides=2, name=f"encoder{level}_down")(as_images(x)))
      skips.append(x)
    skips.pop()  # the bottleneck is the decoder's input, not a skip.
    for level, feats in enumerate((4 * c, 2 * c, c, c), start=1):
      x = nn.elu(deconv(feats, name=f"decoder{level}_up")(x))
      x = nn.elu(merge(feats, f"decoder{level}_merge")(as_sets(x), mask, as_sets(skips.pop())))
      x = nn.elu(conv(feats, 3, name=f"decoder{level}_conv")(as_images(x)))

    members_out = x  # [B*N, H, W, c]: every member's decoder output (with the set's context)
    x = layers.masked_set_max(as_sets(x), mask)
    x = nn.elu(conv(c, 3, name="head_conv")(x))
    if self.residual != "none":
      rgb = nn.Conv(
        3, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros, name="head_rgb", **kw
      )
      x = _OUTPUT_ACTIVATIONS[self.output_activation](rgb(x))
      real = mask[:, :, None, None, None]
      if self.residual == "weighted_mean":
        weights = nn.Conv(
          1, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros, name="head_weights", **kw
        )(members_out)
        weights = masked_member_softmax(as_sets(weights), mask)  # [B, N, H, W, 1]
      else:
        weights = real / jnp.maximum(jnp.sum(mask, axis=1), 1)[:, None, None, None, None]
      base = jnp.sum(weights * jnp.where(real, frames, 0).astype(self.dtype), axis=1)
      x = x + base
    else:
      x = _OUTPUT_ACTIVATIONS[self.output_activation](conv(3, 3, name="head_rgb")(x))
    if self.shading_symmetry > 0:
      x = layers.symmetrise_shading(x, self.shading_symmetry)
    return x.astype(jnp.float32)
