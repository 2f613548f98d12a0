"""The saliency suite of a max-pooled recognizer with a reconstruction decoder: every map
of Table II of Xu, Lu, Ebrahimi ("Discriminative Deep Feature Visualization for
Explainable Face Recognition") for a batch of pairs, in one place.

* :class:`ModelFunctions` / :func:`model_functions`: the trained networks as
  ``jax.tree_util.Partial`` functions (variables are traced arguments, so a compiled
  function serves every checkpoint of the same shapes).
* :func:`global_max_pool`: ``F = GlobalMaxPool(C)``, the output layer of the paper's model.
* :func:`similarity_decomposition`: Stylianou et al. [25]'s exact decomposition of the
  cosine similarity of max-pooled features.
* :func:`saliency_maps`: the maps of :data:`MAP_NAMES` (Algorithm 1's ``S``, ``S+``,
  ``S-``, gradient, Grad-CAM, Grad-CAM++, the decomposition, a random control).
* :func:`verify_function`: ``(images_a, images_b) -> cosine similarity`` for the games.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from jfr.eval import protocols
from jfr.explain import saliency

# Display names of the maps of :func:`saliency_maps`.
MAP_NAMES = {
  "ours_s": "Ours S (discriminative)",
  "ours_s_pos": "Ours S+ (similarity)",
  "ours_s_neg": "Ours S- (dissimilarity)",
  "gradient": "Gradient",
  "gradient_neg": "Gradient, negative part",
  "grad_cam": "Grad-CAM",
  "grad_cam_pp": "Grad-CAM++",
  "stylianou": "Stylianou et al. (max-pool decomposition)",
  "random": "Random (control)",
}


class ModelFunctions(NamedTuple):
  """The trained networks as functions for :mod:`jfr.explain.saliency` (inference mode).

  ``embed`` images -> F ``[B, c]``; ``conv`` images -> C ``[B, h, w, c]``; ``head`` C -> F
  (the global max pool); ``decode`` C -> reconstructions ``[B, H, W, 3]``. Images are
  float32 in the model range [-1, 1]. Each is a ``jax.tree_util.Partial`` carrying its
  variables as arguments.
  """

  embed: Partial
  conv: Partial
  head: Partial
  decode: Partial


@jax.jit
def call(fn: Partial, *args: jax.Array) -> jax.Array:
  """``fn(*args)`` compiled once per ``fn``'s function and argument shapes (the variables
  a ``Partial`` carries are traced arguments)."""
  return fn(*args)


def _conv_map(module, variables, images):
  return module.apply(variables, images, train=False, return_feature_map=True)[1]


def global_max_pool(conv_maps: jax.Array) -> jax.Array:
  """``F = GlobalMaxPool(C)``: ``[B, h, w, c]`` -> ``[B, c]`` (the 'gmp' output layer)."""
  return jnp.max(conv_maps, axis=(1, 2))


def model_functions(
  backbone: Any, backbone_variables: dict, decoder: Any, decoder_variables: dict
) -> ModelFunctions:
  """:class:`ModelFunctions` of a global-max-pool backbone and its decoder.

  Args:
    backbone: a flax module with ``apply(variables, images, train=False,
      return_feature_map=True) -> (F [B, c], C [B, h, w, c])``.
    backbone_variables: its variables.
    decoder: a flax module ``C -> images`` (e.g. :class:`jfr.models.decoder.ReconstructionDecoder`).
    decoder_variables: its variables (``{'params': ...}``).
  """
  return ModelFunctions(
    embed=Partial(functools.partial(backbone.apply, train=False), backbone_variables),
    conv=Partial(functools.partial(_conv_map, backbone), backbone_variables),
    head=Partial(global_max_pool),
    decode=Partial(decoder.apply, decoder_variables),
  )


def similarity_decomposition(convs_a: np.ndarray, convs_b: np.ndarray) -> np.ndarray:
  """Stylianou et al. [25]'s spatial decomposition of the cosine similarity (Eq. 1) of
  global-max-pooled features, on the conv grid of image A.

  ``s = sum_k F_A[k] F_B[k] / (|F_A| |F_B|)`` with ``F[k] = max_ij C[i, j, k]``; channel k's
  term is credited to the location of its maximum in ``C_A`` (the first in row-major
  order), so the map sums to ``s``. (With average pooling it would be spread as
  ``C_A[i, j, k] F_B[k] / (h w |F_A| |F_B|)``; max pooling makes it exact at one point.)

  Args:
    convs_a: ``[P, h, w, c]`` conv maps of the explained images.
    convs_b: ``[P, h, w, c]`` conv maps of their partners.

  Returns:
    ``[P, h, w]`` float64 map (upsample for display or games).
  """
  convs_a, convs_b = np.asarray(convs_a, np.float64), np.asarray(convs_b, np.float64)
  if convs_a.ndim != 4 or convs_a.shape != convs_b.shape:
    raise ValueError(
      f"convs_b: expected the shape of convs_a [P, h, w, c] {convs_a.shape}, got {convs_b.shape}"
    )
  p, h, w, c = convs_a.shape
  flat_a = convs_a.reshape(p, h * w, c)
  f_a, f_b = flat_a.max(axis=1), convs_b.reshape(p, h * w, c).max(axis=1)
  norms = np.maximum(np.linalg.norm(f_a, axis=1) * np.linalg.norm(f_b, axis=1), 1e-12)
  terms = f_a * f_b / norms[:, None]
  out = np.zeros((p, h * w))
  np.add.at(out, (np.repeat(np.arange(p), c), flat_a.argmax(axis=1).ravel()), terms.ravel())
  return out.reshape(p, h, w)


def upsample(maps: np.ndarray, size: int) -> np.ndarray:
  """Bilinear ``[P, h, w]`` -> ``[P, size, size]`` float32 (as Grad-CAM's upsampling)."""
  return np.asarray(
    jax.image.resize(jnp.asarray(maps, jnp.float32), (maps.shape[0], size, size), "bilinear")
  )


def _pair_chunk_maps(
  fns: ModelFunctions, a: jax.Array, b: jax.Array, threshold: float, chunk_size: int
) -> dict[str, jax.Array]:
  """The model-based maps of one fixed-size chunk of pairs (see :func:`saliency_maps`)."""
  convs_a, convs_b = call(fns.conv, a), call(fns.conv, b)
  ours = saliency.explain_pairs(
    fns.decode, convs_a, convs_b, threshold, chunk_size, image_size=a.shape[1:3]
  )
  signed = saliency.gradient_saliency(fns.embed, a, b, reduction="sum")
  return {
    "ours_s": ours.s,
    "ours_s_pos": ours.s_pos,
    "ours_s_neg": ours.s_neg,
    "gradient": saliency.gradient_saliency(fns.embed, a, b),
    "gradient_neg": jnp.maximum(-signed, 0.0),
    "grad_cam": saliency.grad_cam(fns.conv, fns.head, a, b),
    "grad_cam_pp": saliency.grad_cam_pp(fns.conv, fns.head, a, b),
    "stylianou": upsample(similarity_decomposition(convs_a, convs_b), a.shape[1]),
  }


def saliency_maps(
  fns: ModelFunctions,
  images_a: np.ndarray,
  images_b: np.ndarray,
  threshold: float,
  chunk_size: int,
  pair_batch: int,
  rng: np.random.Generator,
) -> dict[str, np.ndarray]:
  """Every method's map of image A with respect to image B (keys of :data:`MAP_NAMES`).

  The pairs are processed ``pair_batch`` at a time (the last batch padded with blank
  pairs whose maps are dropped), so every method compiles once per run whatever the
  number of pairs.

  Args:
    fns: the trained networks.
    images_a, images_b: ``[P, H, W, 3]`` float32 pairs (model range).
    threshold: Algorithm 1's ``T``.
    chunk_size: Algorithm 1's decode batch.
    pair_batch: pairs per compiled call.
    rng: draws the random control map (one ``[P, H, W]`` draw).

  Returns:
    name -> ``[P, H, W]`` float32 non-negative maps.
  """
  images_a, images_b = np.asarray(images_a), np.asarray(images_b)
  if images_a.ndim != 4 or images_a.shape != images_b.shape:
    raise ValueError(
      f"images_b: expected the shape of images_a [P, H, W, 3] {images_a.shape}, "
      f"got {images_b.shape}"
    )
  if pair_batch <= 0:
    raise ValueError(f"pair_batch: expected a positive int, got {pair_batch}")
  chunks: dict[str, list[np.ndarray]] = {}
  for start in range(0, len(images_a), pair_batch):
    a, b = images_a[start : start + pair_batch], images_b[start : start + pair_batch]
    real = len(a)
    pad = ((0, pair_batch - real), (0, 0), (0, 0), (0, 0))
    maps = _pair_chunk_maps(
      fns, jnp.asarray(np.pad(a, pad)), jnp.asarray(np.pad(b, pad)), threshold, chunk_size
    )
    for name, value in maps.items():
      chunks.setdefault(name, []).append(np.asarray(value, np.float32)[:real])
  out = {name: np.concatenate(parts) for name, parts in chunks.items()}
  out["random"] = rng.random(images_a.shape[:3], dtype=np.float32)
  return out


def verify_function(
  fns: ModelFunctions, batch_size: int
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """``(images_a, images_b) -> cosine similarities [P]`` (Eq. 1) of float32 model-range
  pairs ``[P, H, W, 3]``, embedding ``batch_size`` images per compiled call. The hiding
  game passes the same unmodified ``images_b`` array at every fraction; its embedding is
  kept (by identity) for the next call."""
  if batch_size <= 0:
    raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
  last: dict[str, Any] = {}

  def embed(images):
    return protocols.batched_apply(
      lambda x: np.asarray(call(fns.embed, x)), images, batch_size=batch_size
    )

  def verify(a, b):
    if last.get("images") is not b:
      last.update(images=b, features=embed(b))
    return np.asarray(saliency.cosine_similarity(embed(a), last["features"]))

  return verify
