"""Softmax and margin-based classification losses for face recognition (ArcFace, CosFace).

All losses are per example (``[B]``); the caller takes the mean. The margin losses
take *cosine* logits ``cos θ_j = <x/|x|, w_j/|w_j|>`` in [-1, 1] (as produced by
:class:`jfr.models.heads.ArcFaceHead`) and integer labels ``[B]``.

* :func:`softmax_cross_entropy`: ``L = -log softmax(z)_y``.
* :func:`arcface_loss`: additive angular margin (Deng et al., ArcFace, CVPR 2019,
  Eq. 3; the loss the explanation paper and the FAN's feature extractor use):
  ``L = -log( e^{s cos(θ_y + m)} / (e^{s cos(θ_y + m)} + Σ_{j≠y} e^{s cos θ_j}) )``.
* :func:`cosface_loss`: additive cosine margin (Wang et al., CosFace, CVPR 2018):
  the target logit is ``s (cos θ_y − m)``.

Labels outside ``[0, C)`` raise ``ValueError`` when the labels are concrete (eager
calls); inside ``jit`` they cannot be checked and give a meaningless loss.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def _check_logits_labels(logits: jax.Array, labels: jax.Array, name: str) -> None:
  if jnp.ndim(logits) != 2:
    raise ValueError(f"{name}: expected rank 2 [B, C], got shape {jnp.shape(logits)}")
  if jnp.shape(labels) != jnp.shape(logits)[:1]:
    raise ValueError(f"labels: expected shape [B]={jnp.shape(logits)[:1]}, got {jnp.shape(labels)}")
  if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    raise ValueError(f"labels: expected an integer dtype, got {jnp.result_type(labels)}")
  if not isinstance(labels, jax.core.Tracer):
    values = np.asarray(labels)
    num_classes = jnp.shape(logits)[1]
    if values.size and (values.min() < 0 or values.max() >= num_classes):
      raise ValueError(
        f"labels: expected values in [0, {num_classes}), got min {values.min()} max {values.max()}"
      )


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy ``-log softmax(logits)_label``.

  Args:
    logits: ``[B, C]`` unnormalised scores.
    labels: ``[B]`` integer class indices in ``[0, C)``.

  Returns:
    ``[B]`` float32 losses.
  """
  _check_logits_labels(logits, labels, "logits")
  return _cross_entropy(logits, labels)


def _with_target_logit(cos_logits: jax.Array, labels: jax.Array, target: jax.Array) -> jax.Array:
  one_hot = jax.nn.one_hot(labels, cos_logits.shape[1], dtype=bool)
  return jnp.where(one_hot, target[:, None], cos_logits)


def arcface_loss(
  cos_logits: jax.Array,
  labels: jax.Array,
  scale: float = 64.0,
  margin: float = 0.5,
  easy_margin: bool = False,
) -> jax.Array:
  """ArcFace additive angular margin loss (ArcFace Eq. 3), per example.

  The target logit ``cos θ_y`` becomes ``cos(θ_y + m) = cos θ_y cos m − sin θ_y sin m``
  with ``sin θ_y = sqrt(1 − cos² θ_y)`` (``1 − cos²`` clipped to ``[1e-9, 1]`` so the
  gradient stays finite at ``cos θ = ±1``). ``cos(θ + m)`` stops decreasing in θ
  once ``θ + m > π``; there the insightface reference implementation replaces it by
  ``cos θ_y − m sin m`` (used when ``cos θ_y <= cos(π − m)``), which we follow.
  With ``easy_margin`` the margin applies only where ``cos θ_y > 0`` (``cos θ_y`` is
  kept otherwise). All logits are then multiplied by ``scale`` (``s``) and fed to
  the softmax cross-entropy.

  Args:
    cos_logits: ``[B, C]`` cosines in [-1, 1].
    labels: ``[B]`` integer class indices in ``[0, C)``.
    scale: the feature scale ``s``.
    margin: the additive angular margin ``m`` in radians, ``0 <= m < π/2``.
    easy_margin: apply the margin only to positive target cosines.

  Returns:
    ``[B]`` float32 losses.
  """
  _check_logits_labels(cos_logits, labels, "cos_logits")
  if not 0.0 <= margin < math.pi / 2:
    raise ValueError(f"margin: expected a value in [0, pi/2), got {margin}")
  cos_logits = cos_logits.astype(jnp.float32)
  cos_t = jnp.take_along_axis(cos_logits, labels[:, None], axis=-1)[:, 0]
  sin_t = jnp.sqrt(jnp.clip(1.0 - cos_t * cos_t, 1e-9, 1.0))
  cos_t_plus_m = cos_t * math.cos(margin) - sin_t * math.sin(margin)
  if easy_margin:
    target = jnp.where(cos_t > 0.0, cos_t_plus_m, cos_t)
  else:
    target = jnp.where(
      cos_t > math.cos(math.pi - margin), cos_t_plus_m, cos_t - margin * math.sin(margin)
    )
  return _cross_entropy(scale * _with_target_logit(cos_logits, labels, target), labels)


def cosface_loss(
  cos_logits: jax.Array,
  labels: jax.Array,
  scale: float = 64.0,
  margin: float = 0.35,
) -> jax.Array:
  """CosFace large margin cosine loss, per example.

  The target logit is ``s (cos θ_y − m)``, the others ``s cos θ_j``.

  Args:
    cos_logits: ``[B, C]`` cosines in [-1, 1].
    labels: ``[B]`` integer class indices in ``[0, C)``.
    scale: the feature scale ``s``.
    margin: the additive cosine margin ``m``.

  Returns:
    ``[B]`` float32 losses.
  """
  _check_logits_labels(cos_logits, labels, "cos_logits")
  cos_logits = cos_logits.astype(jnp.float32)
  cos_t = jnp.take_along_axis(cos_logits, labels[:, None], axis=-1)[:, 0]
  return _cross_entropy(scale * _with_target_logit(cos_logits, labels, cos_t - margin), labels)
