"""Classification heads on top of face embeddings ``[B, D]``.

* :class:`SoftmaxHead`: a fully connected layer, logits ``z = x W + b`` ``[B, C]``
  for :func:`jfr.losses.margin.softmax_cross_entropy`.
* :class:`ArcFaceHead`: cosine logits ``cos θ_j = <x/|x|, w_j/|w_j|>`` ``[B, C]``
  (ArcFace, Deng et al. CVPR 2019, Sec. 3.1: bias-free, weight columns and features
  L2-normalised) for :func:`jfr.losses.margin.arcface_loss` / ``cosface_loss``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_NORM_EPS = 1e-12


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """``x / max(|x|, 1e-12)`` along ``axis``."""
  sq_norm = jnp.sum(x * x, axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq_norm, _NORM_EPS**2))


def _check_embeddings(x: jax.Array) -> None:
  if x.ndim != 2:
    raise ValueError(f"x: expected embeddings [B, D], got shape {x.shape}")


class SoftmaxHead(nn.Module):
  """Linear classifier: ``[B, D] -> [B, num_classes]`` logits (float32)."""

  num_classes: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_embeddings(x)
    return nn.Dense(self.num_classes, use_bias=self.use_bias)(x.astype(jnp.float32))


class ArcFaceHead(nn.Module):
  """Normalised weight matrix ``W [D, num_classes]``: ``[B, D] -> [B, num_classes]`` cosines.

  ``cos θ_{ij} = <x_i / |x_i|, W_{:, j} / |W_{:, j}|>``, in [-1, 1].
  """

  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_embeddings(x)
    kernel = self.param("kernel", nn.initializers.normal(0.01), (x.shape[-1], self.num_classes))
    return l2_normalize(x.astype(jnp.float32)) @ l2_normalize(kernel, axis=0)
