"""Facial-attribute prediction loss and accuracy.

Taherkhani, Nasrabadi, Dawson, "A Deep Face Identification Network Enhanced by
Facial Attributes Prediction", Eq. 2 (L1, the attribute branch). The identity
loss L2 (Eq. 3) is the shared softmax cross-entropy in ``jfr.losses.margin``.

Reading of Eq. 2: for every attribute j the network gives a two-way soft-max f'
over {attribute present, absent}, and L1 sums the binary cross-entropies over
attributes (and samples). A two-way soft-max over logits (0, z) is sigmoid(z), so
one logit per attribute with a sigmoid is the same model; that is the form used
here. The sum over samples becomes a per-example ``[B]`` result whose mean the
caller takes (a constant 1/B factor relative to the printed sum).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jfr.losses import checks


def _check_logits_targets(logits: jax.Array, targets: jax.Array) -> None:
  if jnp.ndim(logits) != 2:
    raise ValueError(f"logits must have shape [B, T] (rank 2); got {jnp.shape(logits)}")
  if jnp.shape(targets) != jnp.shape(logits):
    raise ValueError(
      f"targets must have the shape of logits {jnp.shape(logits)}; got {jnp.shape(targets)}"
    )


def attribute_bce_loss(
  logits: jax.Array, targets: jax.Array, valid: jax.Array | None = None
) -> jax.Array:
  """Attribute loss L1, Eq. 2 of the attribute paper.

  ``Σ_j -[L_j log σ(z_j) + (1 - L_j) log(1 - σ(z_j))]`` over the T attributes,
  computed stably from logits (``log σ`` via ``log_sigmoid``). Entries with
  ``valid`` False (missing annotations) contribute nothing, whatever their
  target value (e.g. a -1 placeholder) and logit.

  Args:
    logits: z, one logit per attribute, ``[B, T]``.
    targets: L, labels in [0, 1] (binary, or soft probabilities), ``[B, T]``.
    valid: optional bool ``[B, T]``, True where the annotation exists; None
      means all valid.

  Returns:
    ``[B]`` loss per example (summed over attributes).

  Raises:
    ValueError: on shape/dtype mismatch, or (when concrete) valid targets
      outside [0, 1].
  """
  _check_logits_targets(logits, targets)
  if valid is None:
    valid = jnp.ones(jnp.shape(logits), bool)
  if jnp.shape(valid) != jnp.shape(logits) or jnp.result_type(valid) != jnp.bool_:
    raise ValueError(
      f"valid must be a bool array of shape {jnp.shape(logits)}; got "
      f"{jnp.result_type(valid)} {jnp.shape(valid)}"
    )
  if checks.is_concrete(targets) and checks.is_concrete(valid):
    used = np.asarray(targets)[np.asarray(valid)]
    if used.size and not (np.all(used >= 0) and np.all(used <= 1)):
      raise ValueError(
        f"targets must lie in [0, 1] where valid; got values in [{used.min()}, {used.max()}]"
      )
  targets = jnp.where(valid, targets, 0).astype(logits.dtype)
  per_entry = -(
    targets * jax.nn.log_sigmoid(logits) + (1.0 - targets) * jax.nn.log_sigmoid(-logits)
  )
  return jnp.sum(jnp.where(valid, per_entry, 0.0), axis=1)


def attribute_accuracy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-attribute accuracy of the binary predictions.

  An attribute is predicted present when its logit is > 0 (σ(z) > 0.5; a logit
  of exactly 0 counts as absent).

  Args:
    logits: z, ``[B, T]``.
    targets: binary labels {0, 1} (bool, int or float), ``[B, T]``.

  Returns:
    ``[T]`` fraction of the B examples predicted correctly, per attribute.

  Raises:
    ValueError: on shape mismatch, or (when concrete) targets other than 0/1.
  """
  _check_logits_targets(logits, targets)
  if checks.is_concrete(targets) and not np.all(np.isin(np.asarray(targets), (0, 1))):
    raise ValueError("targets must be binary (0 or 1) for attribute_accuracy")
  predicted = logits > 0
  return jnp.mean(predicted == (targets > 0.5), axis=0)
