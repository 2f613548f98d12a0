"""ResNet backbones (He et al., CVPR 2016) for faces: face-style stems, embedding outputs.

:class:`ResNet` maps images ``[B, H, W, 3]`` (float32 in [-1, 1], 32..112 px and
up) to an embedding ``[B, D]`` and, on request, the last convolutional feature map
``[B, h, w, c]``. Blocks are the standard post-activation ones (conv-BN-ReLU, with
the projection shortcut where the shape changes and the stride on the 3x3 conv of
the bottleneck, "ResNet v1.5"); each residual branch ends in a BatchNorm whose
scale starts at zero, so every block starts as the identity.

Stems (``stem``):

* ``'face'`` (default; ArcFace's input setting for 112x112 faces): a 3x3 stride-1
  conv and no max pool; every stage (the first included) halves the resolution,
  so 112 px gives a 7x7 final map and 32 px a 2x2 one.
* ``'imagenet'``: the original 7x7 stride-2 conv + 3x3 stride-2 max pool; the
  first stage keeps the resolution.

Embedding outputs (``pooling``):

* ``'flatten_fc'``: ArcFace's "E" output layer: BN -> Dropout -> flatten -> FC(D)
  -> BN (the last BN has a bias but a fixed unit scale, as in insightface).
* ``'gap'``: global average pooling -> FC(D).
* ``'gmp'``: global max pooling with no FC (the explanation paper replaces the last
  FC layer by a global max pool so that each embedding entry is one location of
  the feature map); D is the channel count of the last stage.

``axis_name`` is the BatchNorm cross-device axis: set it to
``jfr.train.steps.bn_axis_name(config.parallelism)`` ('batch' under pmap, None
otherwise). ``dtype`` is the computation dtype (``jnp.bfloat16`` on GPUs/TPUs);
parameters stay float32 and outputs are returned as float32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ModuleDef = Any
POOLINGS = ("flatten_fc", "gap", "gmp")
STEMS = ("face", "imagenet")


def conv_kernel_init(scale: float = 2.0) -> Callable[..., jax.Array]:
  """He-normal (fan-in, truncated normal) initializer for conv kernels ``[kh, kw, c_in, c_out]``.

  Draws the kernel as its 2-D view ``[kh * kw * c_in, c_out]`` and reshapes. The
  fan-in (``kh * kw * c_in``) and so the distribution are those of
  ``variance_scaling(scale, 'fan_in', 'truncated_normal')`` on the 4-D shape, but
  XLA:CPU compiles the 2-D random draw many times faster than the rank-4 one
  (seconds per kernel shape otherwise), which keeps CPU start-up and tests short.
  """
  base = nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal")

  def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    flat = (int(np.prod(shape[:-1])), shape[-1])
    return base(key, flat, dtype).reshape(shape)

  return init


class BasicBlock(nn.Module):
  """Two 3x3 convs (ResNet-18/34 block); ``strides`` on the first."""

  filters: int
  strides: int
  conv: ModuleDef
  norm: ModuleDef

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), (self.strides, self.strides))(x)))
    y = self.norm(scale_init=nn.initializers.zeros)(self.conv(self.filters, (3, 3))(y))
    if x.shape != y.shape:
      x = self.conv(self.filters, (1, 1), (self.strides, self.strides), name="proj_conv")(x)
      x = self.norm(name="proj_bn")(x)
    return nn.relu(x + y)


class BottleneckBlock(nn.Module):
  """1x1 -> 3x3 (``strides``) -> 1x1 (4x filters) convs (ResNet-50 block)."""

  filters: int
  strides: int
  conv: ModuleDef
  norm: ModuleDef

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
    y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), (self.strides, self.strides))(y)))
    y = self.norm(scale_init=nn.initializers.zeros)(self.conv(4 * self.filters, (1, 1))(y))
    if x.shape != y.shape:
      x = self.conv(4 * self.filters, (1, 1), (self.strides, self.strides), name="proj_conv")(x)
      x = self.norm(name="proj_bn")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """A configurable ResNet backbone returning face embeddings (see the module docstring).

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
    block_cls: :class:`BasicBlock` or :class:`BottleneckBlock`.
    num_filters: filters of the first stage (doubled at each later stage).
    embedding_dim: D of the 'flatten_fc' and 'gap' outputs (ignored by 'gmp').
    pooling: 'flatten_fc', 'gap' or 'gmp'.
    stem: 'face' or 'imagenet'.
    dropout_rate: dropout before the FC of 'flatten_fc' (needs a 'dropout' rng in training).
    axis_name: BatchNorm cross-replica axis ('batch' under pmap, else None).
    dtype: computation dtype.
  """

  stage_sizes: Sequence[int]
  block_cls: type[nn.Module] = BasicBlock
  num_filters: int = 64
  embedding_dim: int = 512
  pooling: str = "flatten_fc"
  stem: str = "face"
  dropout_rate: float = 0.0
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self, x: jax.Array, train: bool = True, return_feature_map: bool = False
  ) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Embeds a batch of faces.

    Args:
      x: ``[B, H, W, 3]`` images in [-1, 1].
      train: batch statistics and dropout (True) or running averages (False).
      return_feature_map: also return the last conv feature map.

    Returns:
      The embedding ``[B, D]``, or ``(embedding, feature_map [B, h, w, c])``.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"x: expected images [B, H, W, 3], got shape {x.shape}")
    if self.pooling not in POOLINGS:
      raise ValueError(f"pooling: expected one of {POOLINGS}, got {self.pooling!r}")
    if self.stem not in STEMS:
      raise ValueError(f"stem: expected one of {STEMS}, got {self.stem!r}")
    conv = functools.partial(
      nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=conv_kernel_init()
    )
    norm = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      dtype=self.dtype,
      axis_name=self.axis_name,
    )
    x = x.astype(self.dtype)
    if self.stem == "face":
      x = nn.relu(norm(name="stem_bn")(conv(self.num_filters, (3, 3), name="stem_conv")(x)))
    else:
      x = conv(self.num_filters, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        downsample = block == 0 and (stage > 0 or self.stem == "face")
        x = self.block_cls(
          self.num_filters * 2**stage, strides=2 if downsample else 1, conv=conv, norm=norm
        )(x)
    feature_map = x
    if self.pooling == "flatten_fc":
      y = norm(name="out_bn")(x).reshape(x.shape[0], -1)
      # Element-wise dropout, drawn after the flatten: the same distribution, and 2-D
      # random draws compile much faster than 4-D ones on XLA:CPU.
      y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
      y = nn.Dense(self.embedding_dim, dtype=self.dtype, name="fc")(y)
      embedding = norm(use_scale=False, name="embedding_bn")(y)
    elif self.pooling == "gap":
      embedding = nn.Dense(self.embedding_dim, dtype=self.dtype, name="fc")(x.mean(axis=(1, 2)))
    else:
      embedding = x.max(axis=(1, 2))
    embedding = embedding.astype(jnp.float32)
    if return_feature_map:
      return embedding, feature_map.astype(jnp.float32)
    return embedding


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock)
