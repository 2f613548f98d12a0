"""Diversity losses of the interpretable face recogniser (SAD and FAD).

Yin et al., "Towards Interpretable Face Recognition", ICCV 2019, Sec. 3:

* Spatial Activation Diversity (SAD): :func:`sad_filter_loss` (Eq. 1) on the
  filters F of the layer Ψ, and :func:`sad_response_loss` (Eq. 2) on its response
  maps ψ. The paper applies Eq. 2 to ψ' = g_σ * LMF(ψ); compose it as
  ``sad_response_loss(gaussian_smooth(large_magnitude_filter(psi)))``
  (``large_magnitude_filter`` lives in ``jfr.models.layers``).
* Feature Activation Diversity (FAD): :func:`fad_mask` (τ, Sec. 3.2 and the
  implementation details of Sec. 4), :func:`fad_loss` (Eq. 4) and
  :func:`masked_features` (the input τ ⊙ f(Î) of the occluded-branch identity
  loss, Eq. 5; the identity losses themselves, Eqs. 3 and 5, are the shared
  softmax cross-entropy in ``jfr.losses.margin``).
* The Siamese training's assembly of these: :func:`sad_losses` (Eqs. 1 and 2 on
  g_σ * ψ, each divided by the K(K−1) ordered filter pairs), :func:`batch_fad_mask` (one
  τ for a batch whose pairs share an occluder, averaged over replicas) and
  :func:`unit_features` (``√K f / ‖f‖``, the scale-free features FAD may act on).

Normalisations guard against zero vectors: a norm below ``sqrt(EPS)`` (1e-6) is
replaced by ``sqrt(EPS)``, so a zero filter column or an all-zero response map has
cosine 0 with everything, with finite values and gradients. Checks on values
(finiteness) run only on concrete arrays; under ``jax.jit`` they cannot run.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jfr.losses import checks
from jfr.models import layers

EPS = 1e-12
DEFAULT_SIGMA = 1.5
FAD_MODES = ("count", "value")


def _check_finite(name: str, x: jax.Array) -> None:
  if checks.is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
    raise ValueError(f"{name} must be finite; it holds NaN or inf")


def _unit(x: jax.Array, axis) -> jax.Array:
  """x / max(||x||, sqrt(EPS)) along ``axis``; zero vectors stay zero."""
  squared_norm = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared_norm, EPS))


def _off_diagonal(gram: jax.Array) -> jax.Array:
  """Zeroes the diagonal of ``[..., K, K]``."""
  k = gram.shape[-1]
  return gram * (1.0 - jnp.eye(k, dtype=gram.dtype))


def sad_filter_loss(kernel: jax.Array) -> jax.Array:
  """SAD filter loss, Eq. 1 of the interpretable-FR paper.

  ``Σ_{i≠j} | Σ_p ⟨F_i^p, F_j^p⟩ / (‖F_i^p‖ ‖F_j^p‖) |`` where F_i is the i-th
  filter of Ψ and F_i^p ∈ R^{c_in} its column at spatial position p (one of the
  kh·kw positions). A zero column counts as cosine 0 (see module docstring).

  Args:
    kernel: the Flax conv kernel of Ψ, ``[kh, kw, c_in, K]``.

  Returns:
    Scalar loss (a penalty on weights, no batch). Orthogonal filters give 0;
    the maximum is ``kh·kw·K·(K-1)``.
  """
  checks.check_ndim("kernel", kernel, 4, "[kh, kw, c_in, K]")
  _check_finite("kernel", kernel)
  kh, kw, c_in, k = kernel.shape
  columns = _unit(jnp.reshape(kernel, (kh * kw, c_in, k)), axis=1)
  summed_cosines = jnp.einsum("pci,pcj->ij", columns, columns)
  return jnp.sum(jnp.abs(_off_diagonal(summed_cosines)))


def _gaussian_band(size: int, sigma: float, dtype) -> jax.Array:
  """``[size, size]`` matrix M with M[o, i] = g(i - o), zero outside the radius ``ceil(3σ)``.

  Multiplying by M along one spatial axis is a 'SAME' 1-D Gaussian filtering
  with zero padding.
  """
  band = layers.gaussian_blur_matrix(size, sigma, radius=math.ceil(3.0 * sigma), mode="constant")
  return jnp.asarray(band, dtype)


def gaussian_smooth(responses: jax.Array, sigma: float = DEFAULT_SIGMA) -> jax.Array:
  """Channel-wise Gaussian filtering g_σ * ψ of Sec. 3.1 of the interpretable-FR paper.

  A separable, normalised Gaussian with radius ``ceil(3σ)`` (kernel size
  ``2·ceil(3σ) + 1``, 11 for the paper's σ = 1.5), applied to every channel on
  its own ('SAME' output size, zero padding at the border, so values near the
  border shrink). Equals ``scipy.ndimage.gaussian_filter(x, σ, mode='constant',
  radius=ceil(3σ))`` over the two spatial axes.

  Args:
    responses: ψ, ``[B, H, W, K]``.
    sigma: the standard deviation σ in pixels (> 0; 1.5 in the paper).

  Returns:
    ψ' ``[B, H, W, K]``.
  """
  checks.check_ndim("responses", responses, 4, "[B, H, W, K]")
  if isinstance(sigma, bool) or not (
    isinstance(sigma, (int, float, np.number)) and math.isfinite(sigma) and sigma > 0
  ):
    raise ValueError(f"sigma must be a finite number > 0; got {sigma!r}")
  _check_finite("responses", responses)
  _, h, w, _ = responses.shape
  rows = _gaussian_band(h, sigma, responses.dtype)
  cols = _gaussian_band(w, sigma, responses.dtype)
  return jnp.einsum("oh,bhwk,pw->bopk", rows, responses, cols)


def sad_response_loss(responses: jax.Array) -> jax.Array:
  """SAD response loss, Eq. 2 of the interpretable-FR paper.

  Per image ``Σ_{i≠j} (⟨ψ_i, ψ_j⟩ / (‖ψ_i‖_F ‖ψ_j‖_F))²`` over the K response
  maps ψ_i ∈ R^{H×W}, via one ``[K, K]`` Gram matrix per image. Pass the
  smoothed maps ψ' (see module docstring). An all-zero map counts as cosine 0:
  value and gradient stay finite.

  Args:
    responses: ψ (or ψ'), ``[B, H, W, K]``.

  Returns:
    ``[B]`` loss per image, in ``[0, K(K-1)]``; K(K-1) when all maps are equal.
  """
  checks.check_ndim("responses", responses, 4, "[B, H, W, K]")
  _check_finite("responses", responses)
  b, h, w, k = responses.shape
  maps = _unit(jnp.reshape(responses, (b, h * w, k)), axis=1)
  cosines = jnp.einsum("bpi,bpj->bij", maps, maps)
  return jnp.sum(jnp.square(_off_diagonal(cosines)), axis=(1, 2))


def _check_feature_pair(f_clean: jax.Array, f_occluded: jax.Array) -> None:
  checks.check_ndim("f_clean", f_clean, 2, "[B, K]")
  checks.check_ndim("f_occluded", f_occluded, 2, "[B, K]")
  if f_clean.shape != f_occluded.shape:
    raise ValueError(
      f"f_occluded must have the shape of f_clean {f_clean.shape}; got {f_occluded.shape}"
    )
  _check_finite("f_clean", f_clean)
  _check_finite("f_occluded", f_occluded)


def fad_mask(
  f_clean: jax.Array, f_occluded: jax.Array, t: float, mode: str = "count", per_pair: bool = False
) -> jax.Array:
  """Feature selection mask τ of the FAD loss, Sec. 3.2 / Sec. 4 of the interpretable-FR paper.

  τ_i = 1 marks the feature elements least changed by the occlusion. The change
  is ``|f_i(I) - f_i(Î)|``, averaged over the batch (the pairs of a batch share a
  semantically equivalent occlusion, as in the paper's implementation) unless
  ``per_pair``.

  * ``mode='count'`` (the paper's choice, t = 260 of K = 320): the ``t`` elements
    with the smallest change get τ = 1; ties go to the lowest index, so exactly
    ``t`` ones per mask.
  * ``mode='value'`` (Eq. 4's definition): τ_i = 1 where the change is ``< t``.

  τ is a selection, not a function to differentiate: it carries no gradient
  (``stop_gradient``).

  Args:
    f_clean: f(I), ``[B, K]``.
    f_occluded: f(Î), ``[B, K]``.
    t: count mode: int in [0, K]; value mode: finite threshold >= 0.
    mode: 'count' or 'value'.
    per_pair: compute one τ per pair from its own change instead of one shared τ.

  Returns:
    Float 0/1 mask, ``[K]`` (broadcasts against ``[B, K]``), or ``[B, K]`` when
    ``per_pair``.
  """
  _check_feature_pair(f_clean, f_occluded)
  k = f_clean.shape[1]
  if mode not in FAD_MODES:
    raise ValueError(f"mode must be one of {FAD_MODES}; got {mode!r}")
  if mode == "count" and (
    isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t <= k
  ):
    raise ValueError(f"t must be an int in [0, K={k}] for mode='count'; got {t!r}")
  if mode == "value" and (
    isinstance(t, bool)
    or not isinstance(t, (int, float, np.number))
    or not math.isfinite(t)
    or t < 0
  ):
    raise ValueError(f"t must be a finite number >= 0 for mode='value'; got {t!r}")
  change = jnp.abs(jax.lax.stop_gradient(f_clean) - jax.lax.stop_gradient(f_occluded))
  if not per_pair:
    change = jnp.mean(change, axis=0)
  if mode == "count":
    order = jnp.argsort(change, axis=-1, stable=True)
    rank = jnp.argsort(order, axis=-1, stable=True)
    keep = rank < t
  else:
    keep = change < t
  return keep.astype(f_clean.dtype)


def _check_tau(tau: jax.Array, features_shape: tuple[int, int]) -> None:
  if jnp.shape(tau) not in (features_shape[1:], features_shape):
    raise ValueError(
      f"tau must have shape [K] = {features_shape[1:]} or [B, K] = "
      f"{features_shape}; got {jnp.shape(tau)}"
    )


def fad_loss(f_clean: jax.Array, f_occluded: jax.Array, tau: jax.Array) -> jax.Array:
  """FAD loss, Eq. 4 of the interpretable-FR paper.

  ``Σ_i |τ_i (f_i(I) - f_i(Î))|``. Gradients flow into both branches (they share
  weights in the paper's Siamese network).

  Args:
    f_clean: f(I), ``[B, K]``.
    f_occluded: f(Î), ``[B, K]``.
    tau: mask from :func:`fad_mask`, ``[K]`` or ``[B, K]``.

  Returns:
    ``[B]`` loss per pair.
  """
  _check_feature_pair(f_clean, f_occluded)
  _check_tau(tau, f_clean.shape)
  return jnp.sum(jnp.abs(tau * (f_clean - f_occluded)), axis=-1)


def masked_features(f_occluded: jax.Array, tau: jax.Array) -> jax.Array:
  """τ ⊙ f(Î), the classifier input of the occluded branch in Eq. 5.

  Args:
    f_occluded: f(Î), ``[B, K]``.
    tau: mask from :func:`fad_mask`, ``[K]`` or ``[B, K]``.

  Returns:
    ``[B, K]``; feed it to the shared classifier and softmax cross-entropy.
  """
  checks.check_ndim("f_occluded", f_occluded, 2, "[B, K]")
  _check_tau(tau, f_occluded.shape)
  return tau * f_occluded


def unit_features(f: jax.Array) -> jax.Array:
  """``√K f / ‖f‖`` per row of ``[B, K]`` (unit RMS per element; zero rows stay zero).

  The scale-free features on which τ and Eq. 4 act with a cosine classifier (so that FAD
  cannot be met by shrinking f); the norm is floored at 1e-12.
  """
  checks.check_ndim("f", f, 2, "[B, K]")
  norm = jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True))
  return f * (jnp.sqrt(float(f.shape[-1])) / jnp.maximum(norm, 1e-12))


def batch_fad_mask(
  f_clean: jax.Array,
  f_occluded: jax.Array,
  t: float,
  mode: str = "count",
  replica_mean: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
  """τ ``[K]`` of a whole (global) batch, without gradient (Sec. 3.3 of the interpretable-FR
  paper).

  The pairs of a batch share one semantically equivalent occluder, so the change
  ``c_i = 1/B Σ_n |f_i(I_n) − f_i(Î_n)|`` is averaged over the batch and, through
  ``replica_mean`` (e.g. :func:`jfr.train.steps.cross_replica_mean` under pmap), over the
  replicas; τ then marks the ``t`` least changed elements (count mode) or those changed by
  less than ``t`` (value mode), by :func:`fad_mask` of ``c``.

  Args:
    f_clean, f_occluded: ``[B, K]`` features of this replica's pairs.
    t: the threshold of ``mode`` (see :func:`fad_mask`).
    mode: 'count' or 'value'.
    replica_mean: averages ``c`` ``[K]`` over replicas (None: one replica).

  Returns:
    float 0/1 ``[K]``.
  """
  _check_feature_pair(f_clean, f_occluded)
  change = jnp.mean(jnp.abs(jax.lax.stop_gradient(f_clean - f_occluded)), axis=0)
  if replica_mean is not None:
    change = replica_mean(change)
  tau = fad_mask(change[None], jnp.zeros_like(change)[None], t, mode)
  return jax.lax.stop_gradient(tau)


def ordered_filter_pairs(k: int) -> float:
  """``K(K−1)`` (at least 1): the number of terms of the sums of Eqs. 1 and 2."""
  return float(max(k * (k - 1), 1))


def sad_losses(
  kernel: jax.Array, responses: jax.Array, sigma: float = DEFAULT_SIGMA
) -> tuple[jax.Array, jax.Array]:
  """The SAD terms of the interpretable-FR training, each a mean over filter pairs.

  ``L_F = Eq. 1(F) / K(K−1)`` and ``L_ψ = Eq. 2(g_σ * ψ) / K(K−1)`` per example. The paper
  gives no loss weights; at K = 320 the raw sums are ~10^4, so dividing by the number of
  ordered pairs makes weight 1 mean "the average pair's |cosine|".

  Args:
    kernel: the Ψ filters ``[kh, kw, c_in, K]``.
    responses: ψ (the paper: LMF(ψ(I)) of the clean faces), ``[B, h, w, K]``.
    sigma: g_σ of :func:`gaussian_smooth`.

  Returns:
    ``(filter_term, response_term)``, scalars; the response term is the batch mean of
    Eq. 2 divided by K(K−1) (mean first, then the division: the order the trainer has
    always used, kept so that runs stay bit-equal).
  """
  checks.check_ndim("kernel", kernel, 4, "[kh, kw, c_in, K]")
  checks.check_ndim("responses", responses, 4, "[B, h, w, K]")
  if responses.shape[-1] != kernel.shape[-1]:
    raise ValueError(
      f"responses: expected K = {kernel.shape[-1]} channels (the kernel's), got {responses.shape}"
    )
  pairs = ordered_filter_pairs(kernel.shape[-1])
  filter_term = sad_filter_loss(kernel) / pairs
  response_term = sad_response_loss(gaussian_smooth(responses, sigma)).mean() / pairs
  return filter_term, response_term
