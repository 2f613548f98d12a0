"""Saliency maps that explain a face-verification decision.

Why one module over 400 lines: Algorithm 1 and the three baselines it is judged against share
the input checks, the cosine similarity of Eq. 1 and the zero-feature handling, and the
conventions' public API index names them together under ``jfr.explain.saliency``.

Reconstruction-based maps: Algorithm 1 of Xu, Lu, Ebrahimi, "Discriminative Deep Feature
Visualization for Explainable Face Recognition" (:func:`explain_pair`,
:func:`explain_pairs`). Baselines of that paper's Table II, all taken with respect to the
cosine similarity of the two faces' features (Eq. 1): input x gradient
(:func:`gradient_saliency`), Grad-CAM (:func:`grad_cam`) and Grad-CAM++
(:func:`grad_cam_pp`).

Function arguments (they may be plain callables or ``jax.tree_util.Partial`` objects;
a ``Partial(model.apply, variables)`` passes the variables as traced arrays, so new
parameters reuse the compiled code, while a plain callable is a compile-cache key by
identity and anything it closes over is baked in as a constant):

* ``decode(conv_maps [b, h, w, c]) -> images [b, H, W, 3]`` -- the reconstruction network,
  e.g. :class:`jfr.models.decoder.ReconstructionDecoder`; it must treat examples
  independently (no batch statistics), because the perturbed maps are decoded in batches.
* ``embed_fn(images [B, H, W, 3]) -> features [B, D]`` -- the recognition network.
* ``conv_fn(images [B, H, W, 3]) -> conv maps [B, h, w, c]`` and
  ``head_fn(conv maps [B, h, w, c]) -> features [B, D]`` -- the same network split at its
  last conv map (for the paper's model ``head_fn`` is the global max pool), so that
  ``embed_fn = head_fn o conv_fn``; Grad-CAM differentiates ``head_fn``.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import Partial

_EPS = 1e-12


class PairExplanation(NamedTuple):
  """Output of Algorithm 1 (leading ``[P]`` axis on every field for :func:`explain_pairs`).

  Attributes:
    s: discriminative map ``S = |H|``, ``[H, W]``.
    s_pos: similarity map ``S+ = ReLU(H)``, ``[H, W]``.
    s_neg: dissimilarity map ``S- = ReLU(-H)``, ``[H, W]``.
    h: signed map ``H = sum_i Residual[i] * weights[i]``, ``[H, W]``.
    weights: channel weights ``F_A * F_B - T``, ``[c]``.
    num_active: int32 scalar, channels of ``C_A`` whose maximum is nonzero; only these
      (plus the unperturbed map) are decoded.
  """

  s: jax.Array
  s_pos: jax.Array
  s_neg: jax.Array
  h: jax.Array
  weights: jax.Array
  num_active: jax.Array


# --------------------------------------------------------------------------- helpers


def _as_partial(fn: Any, name: str) -> Partial:
  """Wraps a callable as a ``Partial`` pytree (the callable becomes static aux data)."""
  if not callable(fn):
    raise ValueError(f"{name}: expected a callable, got {type(fn).__name__}")
  return fn if isinstance(fn, Partial) else Partial(fn)


def cosine_similarity(features_a: jax.Array, features_b: jax.Array) -> jax.Array:
  """Cosine similarity per row, Eq. 1 of the paper: ``F_1 . F_2 / (|F_1| |F_2|)``.

  Args:
    features_a: ``[B, D]``.
    features_b: ``[B, D]``.

  Returns:
    ``[B]``. A zero feature vector has similarity 0 with everything, and gradient 0
    (not the NaN of ``d|F|/dF`` at 0), so saliency maps of such a pair are zeros.
  """
  nonzero = jnp.any(features_a != 0, axis=-1) & jnp.any(features_b != 0, axis=-1)
  # The where-trick: the untaken branch sees safe values, so its gradient is finite (x 0);
  # rows with both vectors non-zero go through exactly the same operations as without it.
  norm_a = jnp.linalg.norm(jnp.where(nonzero[..., None], features_a, 1.0), axis=-1)
  norm_b = jnp.linalg.norm(jnp.where(nonzero[..., None], features_b, 1.0), axis=-1)
  dot = jnp.sum(features_a * features_b, axis=-1)
  return jnp.where(nonzero, dot / jnp.maximum(norm_a * norm_b, _EPS), 0.0)


def _warn_zero_features(zero: jax.Array, name: str) -> None:
  """A ``RuntimeWarning`` naming the pairs (``zero`` bool ``[P]``) whose maps are all 0."""
  pairs = np.flatnonzero(np.asarray(zero))
  if pairs.size:
    warnings.warn(
      f"{name}: pairs {pairs.tolist()} have a zero feature vector (cosine similarity "
      "undefined); their saliency maps are all zeros",
      RuntimeWarning,
      stacklevel=3,
    )


def _zero_features(features: jax.Array) -> jax.Array:
  return jnp.all(features == 0, axis=-1)


def _normalised_max_pool(conv_map: jax.Array) -> jax.Array:
  """``F = GlobalMaxPool(C) / |GlobalMaxPool(C)|`` for ``C`` ``[h, w, c]`` -> ``[c]``."""
  pooled = jnp.max(conv_map, axis=(0, 1)).astype(jnp.float32)
  return pooled / jnp.maximum(jnp.linalg.norm(pooled), _EPS)


# --------------------------------------------------------------- Algorithm 1 (jitted)


def _weighted_residuals(images: jax.Array, base: jax.Array, weights: jax.Array) -> jax.Array:
  """``sum_k weights[k] * Residual[k]`` over one chunk.

  ``Residual[k] = mean_colour |base - images[k]|`` divided by its own spatial maximum
  (an all-zero residual stays zero). images ``[k, H, W, 3]``, base ``[H, W, 3]``,
  weights ``[k]`` -> ``[H, W]``.
  """
  residual = jnp.mean(jnp.abs(images.astype(jnp.float32) - base), axis=-1)
  peak = jnp.max(residual, axis=(1, 2))
  scale = jnp.where(peak > 0, weights / jnp.where(peak > 0, peak, 1.0), 0.0)
  return jnp.sum(scale[:, None, None] * residual, axis=0)


def _explain_one(
  decode: Partial, conv_a: jax.Array, conv_b: jax.Array, threshold: jax.Array, chunk_size: int
) -> PairExplanation:
  """Algorithm 1 for one pair; ``chunk_size`` <= c + 1 is static.

  Decode slots: slot 0 holds the unperturbed ``C_A``, slots 1..n hold ``C_A`` with the
  maximum of the n active channels (nonzero maximum) set to 0, and the remaining slots
  up to a multiple of ``chunk_size`` repeat ``C_A`` with weight 0. Only the
  ``ceil((n + 1) / chunk_size)`` chunks that hold slots 0..n are decoded: the trip count
  of the loop is a traced value, so the compiled code is shared by every pair of the
  same shape whatever its number of active channels.
  """
  h, w, c = conv_a.shape
  weights = _normalised_max_pool(conv_a) * _normalised_max_pool(conv_b) - threshold
  flat = conv_a.reshape(h * w, c)
  max_pos = jnp.argmax(flat, axis=0)  # first maximum in row-major (y, x) order
  max_val = jnp.take_along_axis(flat, max_pos[None], axis=0)[0]
  active = max_val != 0
  num_active = jnp.sum(active, dtype=jnp.int32)

  num_slots = math.ceil((c + 1) / chunk_size) * chunk_size
  slot_channel = (
    jnp.zeros((num_slots,), jnp.int32)
    .at[1 : c + 1]
    .set(jnp.argsort(jnp.logical_not(active), stable=True).astype(jnp.int32))
  )
  slot = jnp.arange(num_slots)
  perturbed = (slot >= 1) & (slot <= num_active)
  slot_pos = max_pos[slot_channel]
  slot_value = jnp.where(perturbed, jnp.zeros((), flat.dtype), max_val[slot_channel])
  slot_weight = jnp.where(perturbed, weights[slot_channel], 0.0)

  def decode_chunk(j):
    take = lambda x: lax.dynamic_slice_in_dim(x, j * chunk_size, chunk_size)
    maps = jnp.broadcast_to(flat, (chunk_size, h * w, c))
    maps = maps.at[jnp.arange(chunk_size), take(slot_pos), take(slot_channel)].set(take(slot_value))
    return decode(maps.reshape(chunk_size, h, w, c)), take(slot_weight)

  images, chunk_weight = decode_chunk(0)
  base = images[0].astype(jnp.float32)  # Recon(C_A)
  heat = _weighted_residuals(images, base, chunk_weight)

  def body(j, heat):
    images, chunk_weight = decode_chunk(j)
    return heat + _weighted_residuals(images, base, chunk_weight)

  num_chunks = num_active // chunk_size + 1  # ceil((num_active + 1) / chunk_size)
  heat = lax.fori_loop(1, num_chunks, body, heat)
  return PairExplanation(
    s=jnp.abs(heat),
    s_pos=jax.nn.relu(heat),
    s_neg=jax.nn.relu(-heat),
    h=heat,
    weights=weights,
    num_active=num_active,
  )


_explain_one_jit = jax.jit(_explain_one, static_argnames=("chunk_size",))


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _explain_many_jit(decode, convs_a, convs_b, threshold, chunk_size):
  return lax.map(
    lambda ab: _explain_one(decode, ab[0], ab[1], threshold, chunk_size), (convs_a, convs_b)
  )


# ------------------------------------------------------------------ public wrappers


def _check_inputs(
  decode: Any,
  conv_a: jax.Array,
  conv_b: jax.Array,
  threshold: Any,
  chunk_size: Any,
  image_size: tuple[int, int] | None,
  rank: int,
) -> tuple[Partial, jax.Array, int]:
  """Validates Algorithm 1's inputs; returns (decode, threshold, effective chunk size)."""
  names = ("conv_a", "conv_b") if rank == 3 else ("convs_a", "convs_b")
  layout = "[h, w, c]" if rank == 3 else "[P, h, w, c]"
  for name, conv in zip(names, (conv_a, conv_b)):
    if conv.ndim != rank or not jnp.issubdtype(conv.dtype, jnp.floating):
      raise ValueError(
        f"{name}: expected a float array of rank {rank} {layout}, got "
        f"{conv.dtype} array of shape {conv.shape}"
      )
  if conv_a.shape != conv_b.shape:
    raise ValueError(
      f"{names[0]}, {names[1]}: expected equal shapes, got {conv_a.shape} and {conv_b.shape}"
    )
  if np.ndim(threshold) != 0 or not np.isfinite(float(threshold)):
    raise ValueError(f"threshold: expected a finite scalar, got {threshold!r}")
  if (
    isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size <= 0
  ):
    raise ValueError(f"chunk_size: expected a positive int, got {chunk_size!r}")
  h, w, c = conv_a.shape[-3:]
  chunk = min(int(chunk_size), c + 1)
  decode = _as_partial(decode, "decode")
  out = jax.eval_shape(decode, jax.ShapeDtypeStruct((chunk, h, w, c), conv_a.dtype))
  expected = "[b, H, W, 3]" if image_size is None else f"[b, {image_size[0]}, {image_size[1]}, 3]"
  if (
    not isinstance(out, jax.ShapeDtypeStruct)
    or len(out.shape) != 4
    or out.shape[0] != chunk
    or out.shape[3] != 3
    or (image_size is not None and out.shape[1:3] != tuple(image_size))
  ):
    got = out.shape if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__
    raise ValueError(
      f"decode: expected conv maps [b={chunk}, {h}, {w}, {c}] -> images "
      f"{expected} with b={chunk}, got {got}"
    )
  return decode, jnp.asarray(threshold, jnp.float32), chunk


def explain_pair(
  decode: Callable[[jax.Array], jax.Array],
  conv_a: jax.Array,
  conv_b: jax.Array,
  threshold: float,
  chunk_size: int = 64,
  *,
  image_size: tuple[int, int] | None = None,
) -> PairExplanation:
  """Similarity / dissimilarity / discriminative maps of face A (Algorithm 1).

  ``F_A, F_B`` = L2-normalised global max pools of ``C_A, C_B`` (Sec. III-C: the FC
  layer is replaced by global max pooling, so the cosine similarity of Eq. 1 is
  ``sum_i F_A[i] F_B[i]``); ``weights = F_A * F_B - T``; for each channel i,
  ``C'_A`` = ``C_A`` with the maximum element of channel i set to 0,
  ``Residual[i] = mean_colour |Recon(C_A) - Recon(C'_A)|`` normalised by its maximum;
  ``H = sum_i Residual[i] weights[i]``; ``S = |H|``, ``S+ = ReLU(H)``, ``S- = ReLU(-H)``.

  Readings of the paper (where its listing is ambiguous):

  * The perturbation is per channel, not cumulative: the listing initialises ``C'_A``
    once before the loop, but the text says each residual shows "the specific face
    region that corresponds to the masked channel", so ``C'_A`` restarts from ``C_A``.
  * "The maximum" of a channel is one element, its first maximum in row-major (y, x)
    order (``argmax``); ties only matter for continuous activations when the maximum
    is 0, where zeroing changes nothing anyway.
  * ``normalization(Residual[i])`` inside the loop acts on one channel's residual map:
    the colour-averaged residual is divided by its own spatial maximum, giving [0, 1]
    (an all-zero residual stays 0); the weight alone sets a channel's strength.
  * Channels whose maximum is exactly 0 (dead after a ReLU) give ``C'_A = C_A`` and a
    zero residual, so they are not decoded. A negative maximum (a map taken before its
    ReLU) is raised to 0, which changes the map, so such channels are decoded.
  * ``T`` is on the per-channel scale of ``F_A * F_B``: ``sum_i weights[i] = s - c T``,
    so ``T = tau / c`` for a verification threshold ``tau`` on the cosine similarity
    makes ``sum_i weights[i]`` positive exactly for accepted pairs.

  Cost: ``ceil((n + 1) / chunk)`` batched decodes of ``chunk`` maps, ``n`` = the number of
  active channels, run inside one compiled call (one compilation per shape, chunk size
  and ``decode``); nothing else of note.

  Args:
    decode: ``[b, h, w, c] -> [b, H, W, 3]`` reconstruction network (see module doc).
    conv_a: last conv map ``C_A`` of image A, ``[h, w, c]``.
    conv_b: last conv map ``C_B`` of image B, ``[h, w, c]``.
    threshold: ``T``, a finite scalar (see above).
    chunk_size: perturbed maps decoded per batch, a positive int (capped at c + 1);
      at most ``chunk_size - 1`` padding decodes are spent. Small chunks (8-16) were
      fastest on a 2-core CPU; accelerators want larger ones.
    image_size: optional ``(H, W)`` the decoder must produce.

  Returns:
    :class:`PairExplanation` with ``[H, W]`` maps (they explain image A; swap the
    arguments to explain image B).

  Raises:
    ValueError: non-finite threshold, conv maps of different shapes or ranks, a decoder
      output of the wrong rank / size, or chunk_size <= 0.
  """
  conv_a, conv_b = jnp.asarray(conv_a), jnp.asarray(conv_b)
  decode, threshold, chunk = _check_inputs(
    decode, conv_a, conv_b, threshold, chunk_size, image_size, rank=3
  )
  return _explain_one_jit(decode, conv_a, conv_b, threshold, chunk_size=chunk)


def explain_pairs(
  decode: Callable[[jax.Array], jax.Array],
  convs_a: jax.Array,
  convs_b: jax.Array,
  threshold: float,
  chunk_size: int = 64,
  *,
  image_size: tuple[int, int] | None = None,
) -> PairExplanation:
  """:func:`explain_pair` for ``P`` pairs in one compiled call (``lax.map`` over pairs).

  Args:
    decode: ``[b, h, w, c] -> [b, H, W, 3]`` reconstruction network.
    convs_a: ``[P, h, w, c]`` conv maps of the explained images.
    convs_b: ``[P, h, w, c]`` conv maps of their partners.
    threshold: ``T`` (finite scalar), shared by all pairs.
    chunk_size: perturbed maps decoded per batch (positive int).
    image_size: optional ``(H, W)`` the decoder must produce.

  Returns:
    :class:`PairExplanation` whose fields have a leading ``[P]`` axis.
  """
  convs_a, convs_b = jnp.asarray(convs_a), jnp.asarray(convs_b)
  decode, threshold, chunk = _check_inputs(
    decode, convs_a, convs_b, threshold, chunk_size, image_size, rank=4
  )
  return _explain_many_jit(decode, convs_a, convs_b, threshold, chunk_size=chunk)


# ------------------------------------------------------------------------ baselines


def _check_images(images_a: jax.Array, images_b: jax.Array) -> None:
  if images_a.ndim != 4 or images_a.shape[-1] != 3:
    raise ValueError(f"images_a: expected [P, H, W, 3], got shape {images_a.shape}")
  if images_b.shape != images_a.shape:
    raise ValueError(
      f"images_b: expected the shape of images_a {images_a.shape}, got {images_b.shape}"
    )


def _check_output(
  fn: Partial, name: str, inputs: Any, rank: int, batch: int, layout: str
) -> jax.ShapeDtypeStruct:
  out = jax.eval_shape(fn, inputs)
  if not isinstance(out, jax.ShapeDtypeStruct) or len(out.shape) != rank or out.shape[0] != batch:
    got = out.shape if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__
    raise ValueError(f"{name}: expected an output {layout} with P={batch}, got {got}")
  return out


@functools.partial(jax.jit, static_argnames=("reduction",))
def _gradient_saliency(embed_fn, images_a, images_b, reduction):
  features_b = lax.stop_gradient(embed_fn(images_b))

  def similarity(x):
    features_a = embed_fn(x)
    return jnp.sum(cosine_similarity(features_a, features_b)), _zero_features(features_a)

  grads, zero_a = jax.grad(similarity, has_aux=True)(images_a)
  contribution = images_a * grads
  zero = zero_a | _zero_features(features_b)
  if reduction == "abs_sum":
    return jnp.sum(jnp.abs(contribution), axis=-1), zero
  return jnp.sum(contribution, axis=-1), zero


def gradient_saliency(
  embed_fn: Callable[[jax.Array], jax.Array],
  images_a: jax.Array,
  images_b: jax.Array,
  reduction: str = "abs_sum",
) -> jax.Array:
  """Input x gradient ("Gradient" [10] in Table II) of the pair's cosine similarity.

  ``G = x_A * d s(f(x_A), f(x_B)) / d x_A`` with ``f(x_B)`` held fixed, reduced over colour
  by ``sum_colour |G|`` (``reduction="abs_sum"``, a pixel's total relevance magnitude,
  the default used for ranking pixels in the hiding game) or ``sum_colour G``
  (``"sum"``, signed). The pairs' similarities are summed before differentiating, which
  equals per-pair gradients when ``embed_fn`` treats examples independently.

  Args:
    embed_fn: ``images [B, H, W, 3] -> features [B, D]``.
    images_a: ``[P, H, W, 3]`` explained images.
    images_b: ``[P, H, W, 3]`` their partners.
    reduction: ``"abs_sum"`` or ``"sum"``.

  Returns:
    ``[P, H, W]`` saliency of images_a. A pair whose features (of A or of B) are the zero
    vector has an undefined cosine similarity: its map is all zeros, with a ``RuntimeWarning``
    naming the pair.
  """
  images_a, images_b = jnp.asarray(images_a), jnp.asarray(images_b)
  _check_images(images_a, images_b)
  if reduction not in ("abs_sum", "sum"):
    raise ValueError(f"reduction: expected 'abs_sum' or 'sum', got {reduction!r}")
  embed_fn = _as_partial(embed_fn, "embed_fn")
  _check_output(embed_fn, "embed_fn", images_a, 2, images_a.shape[0], "[P, D]")
  saliency, zero = _gradient_saliency(embed_fn, images_a, images_b, reduction=reduction)
  _warn_zero_features(zero, "gradient_saliency")
  return saliency


@jax.jit
def _conv_map_gradients(conv_fn, head_fn, images_a, images_b):
  """Conv map ``A`` ``[P, h, w, c]`` of images_a, ``dS/dA`` for S = Eq. 1 per pair, and
  which pairs ``[P]`` have a zero feature vector (their ``dS/dA`` is 0)."""
  features_b = lax.stop_gradient(head_fn(conv_fn(images_b)))
  conv_a = conv_fn(images_a)

  def similarity(a):
    features_a = head_fn(a)
    return jnp.sum(cosine_similarity(features_a, features_b)), _zero_features(features_a)

  grads, zero_a = jax.grad(similarity, has_aux=True)(conv_a)
  return conv_a, grads, zero_a | _zero_features(features_b)


def _prepare_cam(conv_fn, head_fn, images_a, images_b):
  images_a, images_b = jnp.asarray(images_a), jnp.asarray(images_b)
  _check_images(images_a, images_b)
  conv_fn = _as_partial(conv_fn, "conv_fn")
  head_fn = _as_partial(head_fn, "head_fn")
  batch = images_a.shape[0]
  conv = _check_output(conv_fn, "conv_fn", images_a, 4, batch, "[P, h, w, c]")
  _check_output(head_fn, "head_fn", conv, 2, batch, "[P, D]")
  return conv_fn, head_fn, images_a, images_b


def _upsample(cam: jax.Array, image_shape: tuple[int, ...]) -> jax.Array:
  """Bilinear (half-pixel) upsampling ``[P, h, w]`` -> ``[P, H, W]``."""
  return jax.image.resize(cam, (cam.shape[0], *image_shape[1:3]), "bilinear")


def grad_cam(
  conv_fn: Callable[[jax.Array], jax.Array],
  head_fn: Callable[[jax.Array], jax.Array],
  images_a: jax.Array,
  images_b: jax.Array,
) -> jax.Array:
  """Grad-CAM [14] of the pair's cosine similarity on the last conv map of image A.

  ``alpha_k = mean_ij dS/dA_ijk``; ``L = ReLU(sum_k alpha_k A_k)`` ``[P, h, w]``, bilinearly
  upsampled (``jax.image.resize``) to the image size; S = Eq. 1 with image B's features
  held fixed. Not normalised (rescale for display; rankings are unaffected).

  Args:
    conv_fn: ``images [B, H, W, 3] -> conv maps [B, h, w, c]``.
    head_fn: ``conv maps [B, h, w, c] -> features [B, D]``.
    images_a: ``[P, H, W, 3]`` explained images.
    images_b: ``[P, H, W, 3]`` their partners.

  Returns:
    ``[P, H, W]`` saliency of images_a. A pair whose features (of A or of B) are the zero
    vector has an undefined cosine similarity: its map is all zeros, with a ``RuntimeWarning``
    naming the pair.
  """
  conv_fn, head_fn, images_a, images_b = _prepare_cam(conv_fn, head_fn, images_a, images_b)
  conv_a, grads, zero = _conv_map_gradients(conv_fn, head_fn, images_a, images_b)
  _warn_zero_features(zero, "grad_cam")
  alpha = jnp.mean(grads, axis=(1, 2), keepdims=True)
  cam = jax.nn.relu(jnp.sum(alpha * conv_a, axis=-1))
  return _upsample(cam, images_a.shape)


def grad_cam_pp(
  conv_fn: Callable[[jax.Array], jax.Array],
  head_fn: Callable[[jax.Array], jax.Array],
  images_a: jax.Array,
  images_b: jax.Array,
) -> jax.Array:
  """Grad-CAM++ [15] of the pair's cosine similarity on the last conv map of image A.

  Closed form of Chattopadhyay et al. with the exponential-score assumption
  ``Y = exp(S)`` (so the higher derivatives of Y are ``exp(S) g^2`` and ``exp(S) g^3``
  with ``g = dS/dA``, S taken as locally linear in A):
  ``a_ijk = g_ijk^2 / (2 g_ijk^2 + sum_ab A_abk g_ijk^3)`` (0 where the denominator is 0),
  ``w_k = sum_ij a_ijk ReLU(g_ijk)``, ``L = ReLU(sum_k w_k A_k)``, then bilinear
  upsampling. The common positive factor ``exp(S)`` of ``ReLU(dY/dA)`` is dropped (it
  rescales the map of each pair uniformly). Arguments and shapes as :func:`grad_cam`.

  Returns:
    ``[P, H, W]`` saliency of images_a. A pair whose features (of A or of B) are the zero
    vector has an undefined cosine similarity: its map is all zeros, with a ``RuntimeWarning``
    naming the pair.
  """
  conv_fn, head_fn, images_a, images_b = _prepare_cam(conv_fn, head_fn, images_a, images_b)
  conv_a, grads, zero = _conv_map_gradients(conv_fn, head_fn, images_a, images_b)
  _warn_zero_features(zero, "grad_cam_pp")
  g2, g3 = grads**2, grads**3
  denominator = 2.0 * g2 + jnp.sum(conv_a, axis=(1, 2), keepdims=True) * g3
  safe = jnp.where(denominator != 0, denominator, 1.0)
  alpha = jnp.where(denominator != 0, g2 / safe, 0.0)
  channel_weights = jnp.sum(alpha * jax.nn.relu(grads), axis=(1, 2), keepdims=True)
  cam = jax.nn.relu(jnp.sum(channel_weights * conv_a, axis=-1))
  return _upsample(cam, images_a.shape)
