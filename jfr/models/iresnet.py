"""IResNet (the "improved" ResNet of ArcFace / insightface's ``arcface_torch``) in Flax.

The layout follows ``arcface_torch/backbones/iresnet.py`` exactly, so that its released
weights (and insightface's ONNX exports of them) load one tensor to one parameter
(see :mod:`jfr.convert`). Images ``[B, 112, 112, 3]`` in [-1, 1] (``(x / 255 - 0.5) / 0.5``,
RGB: the normalisation arcface_torch trains with) map to embeddings ``[B, D]``:

* stem: conv3x3 (stride 1, pad 1, no bias) -> BN -> PReLU (one slope per channel);
* four stages of :class:`IBasicBlock` with 64, 128, 256, 512 filters (``num_filters``
  times 1, 2, 4, 8), each stage halving the resolution in its first block
  (112 -> 56 -> 28 -> 14 -> 7);
* output ("E" layer): BN -> flatten -> dropout -> FC(D) -> BatchNorm1d whose scale is
  fixed at 1 (arcface_torch sets ``features.weight = 1`` and freezes it; here the BN
  has no scale parameter at all).

``IBasicBlock(x) = bn3(conv3x3_s(prelu(bn2(conv3x3(bn1(x)))))) + shortcut(x)``, where
the shortcut is ``bn(conv1x1_s(x))`` when the stride or width changes and ``x`` otherwise.

Convolutions pad symmetrically like PyTorch (``padding=1`` for 3x3, none for 1x1):
Flax's ``'SAME'`` would pad a stride-2 conv on an even input only at the bottom/right.
BatchNorm: ``eps = 1e-5``, running averages ``r <- 0.9 r + 0.1 batch`` (PyTorch's
``momentum=0.1``); one difference remains in training only: PyTorch updates the running
variance with the unbiased batch variance, Flax with the biased one (a factor
``n / (n - 1)``, ``n = B * h * w``). Convolutions start He-normal (jfr's
:func:`jfr.models.resnet.conv_kernel_init`) instead of arcface_torch's ``N(0, 0.1)``.

Parameter names mirror arcface_torch's state-dict keys: ``conv1``, ``bn1``, ``prelu``,
``layer{1..4}_{i}`` (blocks, each with ``bn1``, ``conv1``, ``bn2``, ``prelu``, ``conv2``,
``bn3`` and ``downsample_conv``/``downsample_bn``), ``bn2``, ``fc``, ``features``.

``pooling='gmp'`` replaces the output layer by a global max pool of the last stage
(the explanation paper's embedding; D = ``8 * num_filters``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jfr.models.resnet import conv_kernel_init

ModuleDef = Any
# arcface_torch's depths: blocks per stage of iresnet18/34/50/100/200.
ARCHS: dict[str, tuple[int, int, int, int]] = {
  "r18": (2, 2, 2, 2),
  "r34": (3, 4, 6, 3),
  "r50": (3, 4, 14, 3),
  "r100": (3, 13, 30, 3),
  "r200": (6, 26, 60, 6),
}
POOLINGS = ("flatten_fc", "gmp")
BN_MOMENTUM = 0.9  # PyTorch momentum=0.1
BN_EPSILON = 1e-5


class PReLU(nn.Module):
  """Parametric ReLU with one slope per channel (``torch.nn.PReLU(C)``).

  ``y = x if x >= 0 else a_c * x`` over the last axis ``c``; ``a`` (``negative_slope``,
  shape ``[C]``) starts at 0.25 as in PyTorch.
  """

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    slope = self.param("negative_slope", nn.initializers.constant(0.25), (x.shape[-1],))
    return jnp.where(x >= 0, x, slope.astype(self.dtype) * x)


class IBasicBlock(nn.Module):
  """BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus the (projected) input."""

  filters: int
  strides: int
  conv: ModuleDef
  norm: ModuleDef
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    s = (self.strides, self.strides)
    y = self.conv(self.filters, (3, 3), name="conv1")(self.norm(name="bn1")(x))
    y = PReLU(self.dtype, name="prelu")(self.norm(name="bn2")(y))
    y = self.norm(name="bn3")(self.conv(self.filters, (3, 3), s, name="conv2")(y))
    if self.strides != 1 or x.shape[-1] != self.filters:
      x = self.conv(self.filters, (1, 1), s, padding=((0, 0), (0, 0)), name="downsample_conv")(x)
      x = self.norm(name="downsample_bn")(x)
    return x + y


class IResNet(nn.Module):
  """arcface_torch's IResNet returning face embeddings (see the module docstring).

  Attributes:
    stage_sizes: blocks per stage, e.g. ``ARCHS['r50'] = (3, 4, 14, 3)``.
    num_filters: filters of the first stage (64 in arcface_torch; doubled per stage).
    embedding_dim: D (arcface_torch's ``num_features``, 512 in its releases).
    dropout_rate: dropout between the flatten and the FC (needs a 'dropout' rng in training).
    pooling: 'flatten_fc' (arcface_torch's output layer) or 'gmp' (global max pool, no FC).
    axis_name: BatchNorm cross-replica axis ('batch' under pmap, else None).
    dtype: computation dtype (parameters stay float32; outputs are float32).
  """

  stage_sizes: Sequence[int]
  num_filters: int = 64
  embedding_dim: int = 512
  dropout_rate: float = 0.0
  pooling: str = "flatten_fc"
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self, x: jax.Array, train: bool = True, return_feature_map: bool = False
  ) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Embeds a batch of faces.

    Args:
      x: ``[B, H, W, 3]`` images in [-1, 1] (112 px for released weights).
      train: batch statistics and dropout (True) or running averages (False).
      return_feature_map: also return the last stage's output ``[B, H/16, W/16, 8F]``.

    Returns:
      The embedding ``[B, D]``, or ``(embedding, feature_map)``.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"x: expected images [B, H, W, 3], got shape {x.shape}")
    if self.pooling not in POOLINGS:
      raise ValueError(f"pooling: expected one of {POOLINGS}, got {self.pooling!r}")
    conv = functools.partial(
      nn.Conv,
      use_bias=False,
      padding=((1, 1), (1, 1)),
      dtype=self.dtype,
      kernel_init=conv_kernel_init(),
    )
    norm = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=BN_MOMENTUM,
      epsilon=BN_EPSILON,
      dtype=self.dtype,
      axis_name=self.axis_name,
    )
    x = x.astype(self.dtype)
    x = conv(self.num_filters, (3, 3), name="conv1")(x)
    x = PReLU(self.dtype, name="prelu")(norm(name="bn1")(x))
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        x = IBasicBlock(
          self.num_filters * 2**stage,
          strides=2 if block == 0 else 1,
          conv=conv,
          norm=norm,
          dtype=self.dtype,
          name=f"layer{stage + 1}_{block}",
        )(x)
    feature_map = x
    if self.pooling == "flatten_fc":
      # Flattened in (h, w, c) order; the converter permutes PyTorch's (c, h, w) FC rows.
      y = norm(name="bn2")(x).reshape(x.shape[0], -1)
      y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
      y = nn.Dense(self.embedding_dim, dtype=self.dtype, name="fc")(y)
      embedding = norm(use_scale=False, name="features")(y)
    else:
      embedding = x.max(axis=(1, 2))
    embedding = embedding.astype(jnp.float32)
    if return_feature_map:
      return embedding, feature_map.astype(jnp.float32)
    return embedding


def iresnet(arch: str, **kwargs: Any) -> IResNet:
  """``IResNet`` of arcface_torch's ``iresnet{18,34,50,100,200}`` (``arch`` 'r18' ... 'r200')."""
  if arch not in ARCHS:
    raise ValueError(f"arch: expected one of {sorted(ARCHS)}, got {arch!r}")
  return IResNet(stage_sizes=ARCHS[arch], **kwargs)


def from_config(model_cfg: ml_collections.ConfigDict, axis_name: str | None) -> IResNet:
  """The IResNet of ``config.model`` (``name='iresnet'``; fields of
  :func:`jfr.train.config_blocks.iresnet`: ``arch``, ``num_filters``, ``embedding_dim``,
  ``dropout_rate``, ``pooling``)."""
  return iresnet(
    model_cfg.arch,
    num_filters=model_cfg.num_filters,
    embedding_dim=model_cfg.embedding_dim,
    dropout_rate=model_cfg.dropout_rate,
    pooling=model_cfg.pooling,
    axis_name=axis_name,
  )
