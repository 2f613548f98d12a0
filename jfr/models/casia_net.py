"""Interpretable face recognition backbones with a hypercolumn head (Yin et al., ICCV 2019).

"Towards Interpretable Face Recognition", Sec. 3 and Table 1. Both networks end in
the same head: a hypercolumn (HC) descriptor Φ built from three layers at different
resolutions, a 3x3 filter bank F giving the K response maps ``Ψ = F * Φ``, large
magnitude filtering (LMF, Sec. 3.1) and global average pooling to the K-d
representation ``f = GAP(LMF(Ψ))`` that the softmax identity loss (Eq. 3), the SAD
losses (Eq. 1-2) and the FAD loss (Eq. 4-5) act on.

* :class:`CasiaNetHC`: the CASIA-Net of Table 1 (the strided-conv variant of Tran et
  al. [56] of Yi et al.'s CASIA-Net [63]), K = 320.
* :class:`ResNetHC`: the ResNet variant (Sec. 3.3, K = 512): a ResNet trunk from
  :mod:`jfr.models.resnet` whose last three stages form Φ.

Both return ``dict(f=[B, K], responses=Ψ [B, h, w, K], filtered=LMF(Ψ) [B, h, w, K])``
in float32; the trainer applies SAD to ``g_σ * filtered`` and reads F, the Ψ conv
kernel ``[3, 3, c_Φ, K]``, at ``params['psi']['kernel']`` (:func:`psi_kernel`;
c_Φ = 576 for Table 1).

Readings of Table 1 (the table's text is terse; each choice is stated here):

* "conv32 | input conv32" is a typo for input conv31.
* conv53 has K output channels, as in the table (``6 x 6 x K``).
* conv43-U / conv53-U are parameter-free bilinear resizes by f = 2 and 4
  (``upsample='bilinear'``, default): the table gives them no kernel ("upsampling"
  in the Filter column, where every learned layer has a ``k x k/s``) and keeps
  their channel counts (256 and K), so "HC descriptor via conv upsampling layers"
  (Sec. 3.3) is read as upsampling followed by the 1x1 convs conv44 / conv54.
  ``upsample='transposed'`` makes them learned transposed convolutions instead
  (stride f, a ``2f x 2f`` kernel so that neighbouring outputs blend overlapping
  kernels; channels kept). On CPU these cost about 1.5x the training step of the
  bilinear network at small widths (XLA runs input-dilated convolutions slowly).
* The row "Φ (HC) | conv33,44,54 | 3x3/1 | 24x24x576" is read as: concatenate
  conv33, conv44 and conv54 (192 + 192 + 192 = 576 channels), then one 3x3/1 conv
  to 576 channels (each table row is one layer applied to its input; the
  concatenation alone already has 576 channels, so the 3x3 conv keeps the width).
* Batch norm + ReLU follow every trunk conv (conv11 ... conv53; [56] uses BN after
  each conv, CASIA-Net [63] uses ReLU) and conv44, conv54 and the Φ conv. The
  upsampling layers are linear (a 1x1 conv follows each), and Ψ is a linear conv
  with a bias: its responses are signed, as Sec. 4 requires (positive and negative
  peaks).
* Initialisation: trunk convs He-normal (the paper reuses a pretrained trunk; from
  scratch He-normal suits conv-BN-ReLU), all HC/Ψ layers truncated normal with
  std 0.02 ("all new weights", Sec. 3.3).
* LMF keeps ``keep`` elements per map (24 of 24 x 24: d = 95.83%); ``keep=None`` or
  0 is the base CNN (d = 0%, ``filtered`` = ``responses``).

``axis_name`` is the BatchNorm cross-device axis ('batch' under pmap, else None);
``dtype`` the computation dtype (parameters and outputs stay float32).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jfr.models import layers, resnet

UPSAMPLING = ("bilinear", "transposed")
NEW_WEIGHT_STD = 0.02
# (name, stride) of the trunk convs of Table 1; conv53's width is K.
CASIA_TRUNK = (
  ("conv11", 1),
  ("conv12", 1),
  ("conv21", 2),
  ("conv22", 1),
  ("conv23", 1),
  ("conv31", 2),
  ("conv32", 1),
  ("conv33", 1),
  ("conv41", 2),
  ("conv42", 1),
  ("conv43", 1),
  ("conv51", 2),
  ("conv52", 1),
  ("conv53", 1),
)
CASIA_WIDTHS = (32, 64, 64, 64, 128, 128, 96, 192, 192, 128, 256, 256, 160)


def new_weight_init(stddev: float = NEW_WEIGHT_STD) -> Callable[..., jax.Array]:
  """Truncated normal ``std`` initializer for the new (HC and Ψ) kernels of Sec. 3.3.

  Draws the kernel as its 2-D view ``[prod(shape[:-1]), shape[-1]]`` and reshapes
  (the same distribution; XLA:CPU compiles 2-D draws much faster than rank-4 ones).
  """
  base = nn.initializers.truncated_normal(stddev)

  def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    return base(key, (int(np.prod(shape[:-1])), shape[-1]), dtype).reshape(shape)

  return init


def psi_kernel(params: Mapping[str, Any]) -> jax.Array:
  """The filter bank F of Eq. 1: the Ψ conv kernel ``[3, 3, c_Φ, K]`` in ``params``."""
  return params["psi"]["kernel"]


def _check_images(images: jax.Array, multiple: int) -> None:
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images: expected [B, H, W, 3], got shape {images.shape}")
  if images.shape[1] % multiple or images.shape[2] % multiple:
    raise ValueError(
      f"images: H and W must be multiples of {multiple}; got {images.shape[1]}x{images.shape[2]}"
    )


def _check_head_fields(feature_dim: int, keep: int | None, upsample: str) -> None:
  if feature_dim < 1:
    raise ValueError(f"feature_dim: expected K >= 1, got {feature_dim}")
  if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
    raise ValueError(f"keep: expected None or an int >= 0, got {keep!r}")
  if upsample not in UPSAMPLING:
    raise ValueError(f"upsample: expected one of {UPSAMPLING}, got {upsample!r}")


def _upsample(x: jax.Array, factor: int, mode: str, dtype: Any, name: str) -> jax.Array:
  """``[B, h, w, c] -> [B, f·h, f·w, c]``: transposed conv (2f x 2f, stride f) or bilinear.

  Must be called inside a compact method: the transposed conv becomes a submodule
  ``name`` of the caller.
  """
  if mode == "bilinear":
    batch, height, width, channels = x.shape
    return jax.image.resize(x, (batch, factor * height, factor * width, channels), "bilinear")
  return nn.ConvTranspose(
    x.shape[-1],
    (2 * factor, 2 * factor),
    (factor, factor),
    padding="SAME",
    use_bias=False,
    dtype=dtype,
    kernel_init=new_weight_init(),
    name=name,
  )(x)


def _response_head(
  hypercolumn: Sequence[jax.Array],
  feature_dim: int,
  phi_features: int | None,
  keep: int | None,
  norm: Callable[..., nn.Module],
  dtype: Any,
) -> dict[str, jax.Array]:
  """Φ -> Ψ = F * Φ -> LMF -> GAP (Sec. 3.1); submodules ``phi``, ``phi_bn``, ``psi``.

  Must be called inside a compact method of the network, so that the Ψ kernel sits
  at ``params['psi']['kernel']``.

  Args:
    hypercolumn: maps ``[B, h, w, c_i]`` at one resolution, concatenated into Φ.
    feature_dim: K.
    phi_features: channels of the Φ conv (None: the concatenation's channels).
    keep: LMF elements kept per map; None or 0 disables LMF.
    norm: BatchNorm constructor.
    dtype: computation dtype.

  Returns:
    ``f [B, K]``, ``responses`` Ψ and ``filtered`` LMF(Ψ) ``[B, h, w, K]``, float32.
  """
  phi = jnp.concatenate(hypercolumn, axis=-1)
  conv = functools.partial(nn.Conv, kernel_size=(3, 3), dtype=dtype, kernel_init=new_weight_init())
  phi = conv(phi_features or phi.shape[-1], use_bias=False, name="phi")(phi)
  phi = nn.relu(norm(name="phi_bn")(phi))
  responses = conv(feature_dim, name="psi")(phi).astype(jnp.float32)
  filtered = layers.large_magnitude_filter(responses, keep) if keep else responses
  return {"f": filtered.mean(axis=(1, 2)), "responses": responses, "filtered": filtered}


def _norm(train: bool, axis_name: str | None, dtype: Any) -> Callable[..., nn.Module]:
  return functools.partial(
    nn.BatchNorm,
    use_running_average=not train,
    momentum=0.9,
    epsilon=1e-5,
    dtype=dtype,
    axis_name=axis_name,
  )


class CasiaNetHC(nn.Module):
  """CASIA-Net with the HC descriptor, Table 1 of the interpretable-FR paper.

  Images ``[B, H, W, 3]`` (H, W multiples of 16; 96 in the paper) -> Φ and Ψ at
  ``H/4 x W/4`` (24 x 24). Param paths: trunk ``conv11 ... conv53`` (+ ``_bn``), HC
  ``conv43_u``, ``conv53_u`` ('transposed' only), ``conv44``, ``conv54`` (+ ``_bn``),
  ``phi``, ``phi_bn`` and ``psi`` (kernel ``[3, 3, c_Φ, K]``, bias ``[K]``).

  Attributes:
    feature_dim: K, the number of response maps and of features (320).
    keep: LMF elements kept per map (24); None or 0 disables LMF (base CNN).
    trunk_widths: output channels of conv11 ... conv52 (13 ints, Table 1).
    hc_features: output channels of conv44 and conv54 (192).
    phi_features: output channels of the Φ conv (None: c33 + 2·hc_features = 576).
    upsample: conv43-U / conv53-U: 'bilinear' (default) or 'transposed' (learned).
    axis_name: BatchNorm cross-device axis ('batch' under pmap, else None).
    dtype: computation dtype.
  """

  feature_dim: int = 320
  keep: int | None = 24
  trunk_widths: Sequence[int] = CASIA_WIDTHS
  hc_features: int = 192
  phi_features: int | None = None
  upsample: str = "bilinear"
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    _check_head_fields(self.feature_dim, self.keep, self.upsample)
    if len(self.trunk_widths) != len(CASIA_WIDTHS) or min(self.trunk_widths) < 1:
      raise ValueError(
        f"trunk_widths: expected {len(CASIA_WIDTHS)} positive ints "
        f"(conv11 ... conv52), got {self.trunk_widths}"
      )
    if self.hc_features < 1:
      raise ValueError(f"hc_features: expected >= 1, got {self.hc_features}")
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = True) -> dict[str, jax.Array]:
    """Computes f, Ψ and LMF(Ψ) for a batch of faces.

    Args:
      images: ``[B, H, W, 3]`` in [-1, 1], H and W multiples of 16.
      train: batch statistics (True) or running averages (False) in BatchNorm.

    Returns:
      ``f [B, K]``, ``responses`` Ψ ``[B, H/4, W/4, K]`` (before LMF) and
      ``filtered`` LMF(Ψ) (same shape), all float32.
    """
    _check_images(images, 16)
    norm = _norm(train, self.axis_name, self.dtype)
    x = images.astype(self.dtype)
    taps = {}
    for (name, stride), width in zip(CASIA_TRUNK, (*self.trunk_widths, self.feature_dim)):
      x = nn.Conv(
        width,
        (3, 3),
        (stride, stride),
        use_bias=False,
        dtype=self.dtype,
        kernel_init=resnet.conv_kernel_init(),
        name=name,
      )(x)
      x = taps[name] = nn.relu(norm(name=f"{name}_bn")(x))
    hypercolumn = [taps["conv33"]]
    for source, factor, target in (("conv43", 2, "conv44"), ("conv53", 4, "conv54")):
      y = _upsample(taps[source], factor, self.upsample, self.dtype, f"{source}_u")
      y = nn.Conv(
        self.hc_features,
        (1, 1),
        use_bias=False,
        dtype=self.dtype,
        kernel_init=new_weight_init(),
        name=target,
      )(y)
      hypercolumn.append(nn.relu(norm(name=f"{target}_bn")(y)))
    return _response_head(
      hypercolumn, self.feature_dim, self.phi_features, self.keep, norm, self.dtype
    )


class ResNetHC(nn.Module):
  """ResNet trunk + HC descriptor from its last three stages (Sec. 3.3, K = 512).

  The trunk is :class:`jfr.models.resnet.ResNet`'s 'face' layout (3x3 stride-1
  stem, every stage halves the resolution), so images must be multiples of
  ``2**len(stage_sizes)``. Reading of "HC descriptor using 3 layers at different
  resolutions": the outputs of the last three stages (e.g. 28, 14 and 7 px for
  112 px faces and four stages) each go through a 1x1 conv to ``hc_features`` +
  BN + ReLU (``hc0, hc1, hc2`` + ``_bn``; reducing first keeps the optional
  transposed convs small for bottleneck widths), the two coarser ones are then
  upsampled by 2 and 4 (``hc1_u``, ``hc2_u`` when 'transposed') to the finest of
  the three, and the head is that of :class:`CasiaNetHC` (``phi``, ``phi_bn``, ``psi``).

  Attributes:
    feature_dim: K (512 in the paper).
    keep: LMF elements kept per map; None or 0 disables LMF.
    stage_sizes: residual blocks per stage (at least 3 stages).
    block_cls: :class:`resnet.BasicBlock` or :class:`resnet.BottleneckBlock`.
    width: filters of the stem and the first stage (doubled at each later stage).
    hc_features: channels of each of the three HC inputs.
    phi_features: output channels of the Φ conv (None: 3·hc_features).
    upsample: 'bilinear' (default) or 'transposed'.
    axis_name: BatchNorm cross-device axis ('batch' under pmap, else None).
    dtype: computation dtype.
  """

  feature_dim: int = 512
  keep: int | None = 24
  stage_sizes: Sequence[int] = (1, 1, 1, 1)
  block_cls: type[nn.Module] = resnet.BasicBlock
  width: int = 16
  hc_features: int = 64
  phi_features: int | None = None
  upsample: str = "bilinear"
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    _check_head_fields(self.feature_dim, self.keep, self.upsample)
    if len(self.stage_sizes) < 3 or min(self.stage_sizes) < 1:
      raise ValueError(
        f"stage_sizes: expected at least 3 stages of >= 1 block, got {self.stage_sizes}"
      )
    if self.width < 1 or self.hc_features < 1:
      raise ValueError(
        f"width and hc_features: expected >= 1, got {self.width}, {self.hc_features}"
      )
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = True) -> dict[str, jax.Array]:
    """Computes f, Ψ and LMF(Ψ) for a batch of faces.

    Args:
      images: ``[B, H, W, 3]`` in [-1, 1], H and W multiples of ``2**len(stage_sizes)``.
      train: batch statistics (True) or running averages (False) in BatchNorm.

    Returns:
      ``f [B, K]``, ``responses`` Ψ ``[B, h, w, K]`` (before LMF; h = H / 2**(S-2) for
      S stages) and ``filtered`` LMF(Ψ), all float32.
    """
    _check_images(images, 2 ** len(self.stage_sizes))
    norm = _norm(train, self.axis_name, self.dtype)
    conv = functools.partial(
      nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=resnet.conv_kernel_init()
    )
    x = images.astype(self.dtype)
    x = nn.relu(norm(name="stem_bn")(conv(self.width, (3, 3), name="stem_conv")(x)))
    stage_outputs = []
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        x = self.block_cls(
          self.width * 2**stage,
          strides=2 if block == 0 else 1,
          conv=conv,
          norm=norm,
          name=f"stage{stage}_block{block}",
        )(x)
      stage_outputs.append(x)
    hypercolumn = []
    for level, y in enumerate(stage_outputs[-3:]):
      y = nn.Conv(
        self.hc_features,
        (1, 1),
        use_bias=False,
        dtype=self.dtype,
        kernel_init=new_weight_init(),
        name=f"hc{level}",
      )(y)
      y = nn.relu(norm(name=f"hc{level}_bn")(y))
      if level:
        y = _upsample(y, 2**level, self.upsample, self.dtype, f"hc{level}_u")
      hypercolumn.append(y)
    return _response_head(
      hypercolumn, self.feature_dim, self.phi_features, self.keep, norm, self.dtype
    )


ResNet50HC = functools.partial(
  ResNetHC, stage_sizes=(3, 4, 6, 3), block_cls=resnet.BottleneckBlock, width=64, hc_features=256
)
