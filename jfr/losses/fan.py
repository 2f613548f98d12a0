"""Losses of the Face Aggregation Network (FAN).

Hörmann et al., "Face Aggregation Network for Video Face Recognition", ICIP 2021,
Sec. 3.2, Eqs. 5-13. The face aggregator (a set U-Net) turns a set of N frames
into one image A; a frozen feature extractor gives the features used here:

* ``f_agg``    f_A, feature of the aggregated image A,            ``[B, D]``
* ``f_pos``    f_P, feature of a same-identity image P from another video, ``[B, D]``
* ``f_neg``    f_N, feature of an image N of another identity,    ``[B, D]``
* ``f_inputs`` f_{I_n}, features of the set members,              ``[B, N, D]``
* ``mask``     bool ``[B, N]``, True for real members; padded members never
  influence a result (value or gradient).

Every per-example loss returns ``[B]``; the caller takes the mean. Inputs are
validated eagerly; checks on values (e.g. an empty set) only run when the arrays
are concrete, i.e. not under ``jax.jit`` tracing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jfr.losses import checks

DEFAULT_BETA = 32.0
DEFAULT_CENTER_RATE = 0.5
LAMBDA_DIS = 1.0
LAMBDA_REC = 0.5
LAMBDA_ADV = 1.0
LAMBDA_TV = 1e-4


def _check_features_and_set(
  f_name: str, f_ref: jax.Array, f_inputs: jax.Array, mask: jax.Array
) -> None:
  """Checks ``f_ref [B, D]``, ``f_inputs [B, N, D]``, bool ``mask [B, N]``."""
  checks.check_ndim(f_name, f_ref, 2, "[B, D]")
  checks.check_ndim("f_inputs", f_inputs, 3, "[B, N, D]")
  checks.check_ndim("mask", mask, 2, "[B, N]")
  b, d = jnp.shape(f_ref)
  if jnp.shape(f_inputs)[0] != b or jnp.shape(f_inputs)[2] != d:
    raise ValueError(
      f"f_inputs must have shape [B, N, D] = [{b}, N, {d}] to match "
      f"{f_name}; got {jnp.shape(f_inputs)}"
    )
  if jnp.shape(mask) != jnp.shape(f_inputs)[:2]:
    raise ValueError(
      f"mask must have shape [B, N] = {jnp.shape(f_inputs)[:2]}; got {jnp.shape(mask)}"
    )
  if jnp.result_type(mask) != jnp.bool_:
    raise ValueError(f"mask must be a bool array; got dtype {jnp.result_type(mask)}")


def _check_no_empty_set(mask: jax.Array) -> None:
  if checks.is_concrete(mask):
    empty = np.flatnonzero(~np.asarray(mask).any(axis=1))
    if empty.size:
      raise ValueError(
        f"mask must mark at least one real member per row; rows {empty.tolist()} are all False"
      )


def _check_same_shape(name: str, x: jax.Array, ref_name: str, ref: jax.Array) -> None:
  if jnp.shape(x) != jnp.shape(ref):
    raise ValueError(
      f"{name} must have the shape of {ref_name} {jnp.shape(ref)}; got {jnp.shape(x)}"
    )


def _squared_distance(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(x - y), axis=-1)


def discriminative_loss(
  f_agg: jax.Array,
  f_pos: jax.Array,
  f_neg: jax.Array,
  f_inputs: jax.Array,
  mask: jax.Array,
  beta: float = DEFAULT_BETA,
) -> jax.Array:
  """Triplet-style discriminative loss L_dis, Eqs. 6-7 of the FAN paper.

  ``L_dis = (||f_A - f_P||² - α)_+ + (β - ||f_A - f_N||²)_+`` with
  ``α = min_n ||f_{I_n} - f_P||²`` taken over the real members only (Eq. 7).

  Args:
    f_agg: f_A, ``[B, D]``.
    f_pos: f_P, ``[B, D]``.
    f_neg: f_N, ``[B, D]``.
    f_inputs: f_{I_n}, ``[B, N, D]``.
    mask: bool ``[B, N]``, True for real members.
    beta: the constant margin β (32 in the paper, for unnormalised ArcFace
      features; scale it to the feature norm in use).

  Returns:
    ``[B]`` loss per example. Gradients flow into every feature argument (in
    the FAN all but f_A come from the frozen extractor).

  Raises:
    ValueError: on shape/dtype mismatch, or when a row of a concrete ``mask`` is
      all False (α is undefined). Under ``jax.jit`` this cannot be checked; such
      a row then yields 0 (value and gradient), like a padded example.
  """
  _check_features_and_set("f_agg", f_agg, f_inputs, mask)
  _check_same_shape("f_pos", f_pos, "f_agg", f_agg)
  _check_same_shape("f_neg", f_neg, "f_agg", f_agg)
  _check_no_empty_set(mask)
  dist_inputs = _squared_distance(f_inputs, f_pos[:, None, :])  # [B, N]
  alpha = jnp.min(jnp.where(mask, dist_inputs, jnp.inf), axis=1)
  pos_term = jax.nn.relu(_squared_distance(f_agg, f_pos) - alpha)
  neg_term = jax.nn.relu(beta - _squared_distance(f_agg, f_neg))
  return jnp.where(jnp.any(mask, axis=1), pos_term + neg_term, 0.0)


def _masked_member_sum(f_inputs: jax.Array, mask: jax.Array) -> jax.Array:
  """Σ over real members of ``f_inputs [B, N, D]`` -> ``[B, D]``."""
  return jnp.sum(jnp.where(mask[..., None], f_inputs, 0.0), axis=1)


def reconstruction_loss_avg(f_agg: jax.Array, f_inputs: jax.Array, mask: jax.Array) -> jax.Array:
  """Average-feature reconstruction loss L_rec^avg, Eq. 8 of the FAN paper.

  ``||f_A - (1/N) Σ_n f_{I_n}||²`` where the mean runs over real members only.

  Args:
    f_agg: f_A, ``[B, D]``.
    f_inputs: f_{I_n}, ``[B, N, D]``.
    mask: bool ``[B, N]``, True for real members.

  Returns:
    ``[B]`` loss per example.

  Raises:
    ValueError: on shape/dtype mismatch, or when a row of a concrete ``mask`` is
      all False. Under ``jax.jit`` this cannot be checked; such a row then
      yields 0 (value and gradient), like a padded example.
  """
  _check_features_and_set("f_agg", f_agg, f_inputs, mask)
  _check_no_empty_set(mask)
  count = jnp.sum(mask, axis=1)
  mean = _masked_member_sum(f_inputs, mask) / jnp.maximum(count, 1)[:, None]
  return jnp.where(count > 0, _squared_distance(f_agg, mean), 0.0)


def _check_centers_and_labels(centers: jax.Array, labels: jax.Array, batch: int, dim: int) -> None:
  checks.check_ndim("centers", centers, 2, "[C, D]")
  checks.check_ndim("labels", labels, 1, "[B]")
  if jnp.shape(centers)[1] != dim:
    raise ValueError(
      f"centers must have shape [C, {dim}] to match the features; got {jnp.shape(centers)}"
    )
  if jnp.shape(labels)[0] != batch:
    raise ValueError(f"labels must have shape [{batch}]; got {jnp.shape(labels)}")
  if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    raise ValueError(
      f"labels must be integer identity indices; got dtype {jnp.result_type(labels)}"
    )
  if checks.is_concrete(labels):
    lab = np.asarray(labels)
    num_classes = jnp.shape(centers)[0]
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
      raise ValueError(
        f"labels must lie in [0, {num_classes}) (one row of centers "
        f"per identity); got range [{lab.min()}, {lab.max()}]"
      )


def reconstruction_loss_center(
  f_agg: jax.Array, centers: jax.Array, labels: jax.Array
) -> jax.Array:
  """Center reconstruction loss L_rec^cen, Eq. 9 of the FAN paper.

  ``||f_A^j - c^j||²`` with j the identity of the example. The centers are
  constants here (``stop_gradient``); :func:`update_centers` moves them.

  Args:
    f_agg: f_A, ``[B, D]``.
    centers: c, one row per identity, ``[C, D]``.
    labels: int identity j of each example, ``[B]``, in ``[0, C)``.

  Returns:
    ``[B]`` loss per example.

  Raises:
    ValueError: on shape/dtype mismatch, or labels out of range (checked when
      concrete; under ``jax.jit`` out-of-range indices are clamped by JAX).
  """
  checks.check_ndim("f_agg", f_agg, 2, "[B, D]")
  b, d = jnp.shape(f_agg)
  _check_centers_and_labels(centers, labels, b, d)
  return _squared_distance(f_agg, jax.lax.stop_gradient(centers)[labels])


def update_centers(
  centers: jax.Array,
  labels: jax.Array,
  f_pos: jax.Array,
  f_inputs: jax.Array,
  mask: jax.Array,
  rate: float = DEFAULT_CENTER_RATE,
) -> jax.Array:
  """Moving-average center update, Eq. 10 of the FAN paper.

  The printed Eq. 10, ``c ← (1 - r) c - r/(N+1) [f_P + Σ f_{I_n}]``, has a sign
  typo (it would push the center away from its identity); implemented is the
  moving average ``c ← (1 - r) c + r/(N+1) [f_P + Σ_n f_{I_n}]``, with N the
  number of real members of that example. An identity that occurs in several
  examples of the batch is updated once, towards the mean of those examples'
  targets ``(f_P + Σ_n f_{I_n}) / (N + 1)``; identities absent from the batch
  are unchanged. No gradient flows through the update (``stop_gradient``).

  Args:
    centers: c, ``[C, D]``.
    labels: int identity of each example, ``[B]``, in ``[0, C)``.
    f_pos: f_P, ``[B, D]``.
    f_inputs: f_{I_n}, ``[B, N, D]``.
    mask: bool ``[B, N]``, True for real members (an empty row contributes
      f_P alone, N = 0).
    rate: update rate r in [0, 1] (0.5 in the paper).

  Returns:
    New centers ``[C, D]``.

  Raises:
    ValueError: on shape/dtype mismatch, a rate outside [0, 1], or labels out of
      range (checked when concrete; under ``jax.jit`` JAX drops out-of-range
      segment ids).
  """
  _check_features_and_set("f_pos", f_pos, f_inputs, mask)
  b, d = jnp.shape(f_pos)
  _check_centers_and_labels(centers, labels, b, d)
  if not 0.0 <= float(rate) <= 1.0:
    raise ValueError(f"rate must lie in [0, 1]; got {rate}")
  centers, f_pos, f_inputs = jax.lax.stop_gradient((centers, f_pos, f_inputs))
  count = jnp.sum(mask, axis=1)
  targets = (f_pos + _masked_member_sum(f_inputs, mask)) / (count + 1)[:, None]
  num_classes = jnp.shape(centers)[0]
  target_sum = jax.ops.segment_sum(targets, labels, num_segments=num_classes)
  hits = jax.ops.segment_sum(jnp.ones((b,), centers.dtype), labels, num_segments=num_classes)
  target_mean = target_sum / jnp.maximum(hits, 1.0)[:, None]
  moved = (1.0 - rate) * centers + rate * target_mean
  return jnp.where((hits > 0)[:, None], moved, centers)


def _logits_to_vector(name: str, logits: jax.Array) -> jax.Array:
  """Accepts discriminator logits ``[B]`` or ``[B, 1]`` and returns ``[B]``."""
  shape = jnp.shape(logits)
  if len(shape) == 1:
    return logits
  if len(shape) == 2 and shape[1] == 1:
    return logits[:, 0]
  raise ValueError(f"{name} must have shape [B] or [B, 1]; got {shape}")


def generator_adversarial_loss(d_logits_fake: jax.Array) -> jax.Array:
  """Generator adversarial loss L_adv^G = -log D(A), Eq. 11 of the FAN paper.

  D(A) = sigmoid(logit); computed stably as ``softplus(-logit)``.

  Args:
    d_logits_fake: discriminator logits of the aggregated images, ``[B]`` or
      ``[B, 1]``.

  Returns:
    ``[B]`` loss per example.
  """
  return jax.nn.softplus(-_logits_to_vector("d_logits_fake", d_logits_fake))


def discriminator_loss(d_logits_fake: jax.Array, d_logits_real: jax.Array) -> jax.Array:
  """Discriminator loss L_adv^D = -log(1 - D(A)) - log D(P), Eq. 12 of the FAN paper.

  Computed stably from logits as ``softplus(fake) + softplus(-real)``.

  Args:
    d_logits_fake: logits of the aggregated images A, ``[B]`` or ``[B, 1]``.
    d_logits_real: logits of the real images P, same shape as d_logits_fake.

  Returns:
    ``[B]`` loss per example.
  """
  _check_same_shape("d_logits_real", d_logits_real, "d_logits_fake", d_logits_fake)
  fake = _logits_to_vector("d_logits_fake", d_logits_fake)
  real = _logits_to_vector("d_logits_real", d_logits_real)
  return jax.nn.softplus(fake) + jax.nn.softplus(-real)


def total_variation_loss(images: jax.Array) -> jax.Array:
  """Total variation loss L_tv, Eq. 13 of the FAN paper.

  Sum of squared differences between horizontally and vertically adjacent
  pixels, summed over channels as well (no normalisation by image size).

  Args:
    images: A, ``[B, H, W, C]``.

  Returns:
    ``[B]`` loss per image.
  """
  checks.check_ndim("images", images, 4, "[B, H, W, C]")
  horizontal = jnp.sum(jnp.square(images[:, :, 1:, :] - images[:, :, :-1, :]), axis=(1, 2, 3))
  vertical = jnp.sum(jnp.square(images[:, 1:, :, :] - images[:, :-1, :, :]), axis=(1, 2, 3))
  return horizontal + vertical


def generator_loss(
  dis: jax.Array,
  rec: jax.Array,
  adv: jax.Array,
  tv: jax.Array,
  *,
  lambda_dis: float = LAMBDA_DIS,
  lambda_rec: float = LAMBDA_REC,
  lambda_adv: float = LAMBDA_ADV,
  lambda_tv: float = LAMBDA_TV,
) -> jax.Array:
  """Weighted generator objective L_G, Eq. 5 of the FAN paper.

  ``L_G = λ_dis L_dis + λ_rec L_rec + λ_adv L_adv^G + λ_tv L_tv``; the defaults
  are the paper's (Sec. 4.1): λ_dis = λ_adv = 1, λ_rec = 0.5, λ_tv = 1e-4.
  ``rec`` is either reconstruction loss (the paper trains with L_rec^cen).

  Args:
    dis: L_dis, ``[B]``.
    rec: L_rec, ``[B]``.
    adv: L_adv^G, ``[B]``.
    tv: L_tv, ``[B]``.
    lambda_dis, lambda_rec, lambda_adv, lambda_tv: the weights.

  Returns:
    ``[B]`` weighted sum.
  """
  checks.check_ndim("dis", dis, 1, "[B]")
  for name, term in (("rec", rec), ("adv", adv), ("tv", tv)):
    _check_same_shape(name, term, "dis", dis)
  return lambda_dis * dis + lambda_rec * rec + lambda_adv * adv + lambda_tv * tv
