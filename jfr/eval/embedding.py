"""The embedding contract every evaluator is written against.

* ``EmbedFn``: ``embed(images) -> features``, images uint8 ``[B, H, W, 3]`` (RGB, as stored or
  read from files), features float32 ``[B, D]``. The function owns everything between the
  pixels and the model: conversion to the model's range ([-1, 1]), the resize to the model's
  input size and batching (see :func:`model_embedder`). It does NOT normalise features and
  does not flip: evaluators own flip averaging (:func:`flip_average`) and normalisation.
* ``EmbedSetsFn``: ``embed_sets(frames, mask) -> features``, frames uint8
  ``[B, N, H, W, 3]``, mask bool ``[B, N]`` (real members), features float32 ``[B, D]`` — a
  set aggregator (e.g. the FAN) followed by the recognizer, or feature averaging.

Resize policy (:func:`model_embedder`): square images of another side are resized to the
model's ``input_size`` with antialiased bilinear interpolation (``tf.image.resize``) after
conversion to [-1, 1]; non-square images are refused with a ``ValueError`` (crop or align
them first: :mod:`jfr.data.align`). Images of the model's own size are not touched.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import jax
import numpy as np

from jfr.data import pipelines

EmbedFn = Callable[[np.ndarray], np.ndarray]
EmbedSetsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def check_images(images: Any, name: str = "images") -> np.ndarray:
  """``images`` as uint8 ``[B, H, W, 3]`` with square ``H == W``; ValueError otherwise."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise ValueError(f"{name}: expected uint8 pixels, got dtype {images.dtype}")
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"{name}: expected shape [B, H, W, 3], got {images.shape}")
  if images.shape[1] != images.shape[2]:
    raise ValueError(
      f"{name}: expected square images, got {images.shape[1]}x{images.shape[2]} "
      "(crop or align them first, e.g. with jfr.data.align)"
    )
  return images


def to_model_input(images: np.ndarray, input_size: int) -> np.ndarray:
  """uint8 ``[B, H, W, 3]`` -> float32 ``[B, input_size, input_size, 3]`` in [-1, 1]
  (the resize policy of the module docstring)."""
  images = check_images(images)
  x = pipelines.to_model_range_np(images)
  if images.shape[1] != input_size:
    import tensorflow as tf

    x = tf.image.resize(x, (input_size, input_size), method="bilinear", antialias=True).numpy()
  return x


@functools.lru_cache(maxsize=16)
def _jitted(apply_fn: Callable) -> Callable:
  return jax.jit(apply_fn)


def model_embedder(
  apply_fn: Callable[[Any, np.ndarray], Any],
  variables: Any,
  *,
  input_size: int,
  batch_size: int,
) -> EmbedFn:
  """An :data:`EmbedFn` over ``apply_fn(variables, images [b, S, S, 3] in [-1, 1]) -> [b, D]``.

  Inputs are cut into chunks of ``batch_size`` rows; the last chunk is padded to
  ``batch_size`` so that the jitted function compiles once (padded rows are dropped).

  Args:
    apply_fn: the inference function (e.g. ``functools.partial(module.apply, train=False)``);
      jitted once per function object.
    variables: its variables.
    input_size: the model's input side ``S``.
    batch_size: rows per call.
  """
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if input_size <= 0:
    raise ValueError(f"input_size must be positive, got {input_size}")
  fn = _jitted(apply_fn)

  def embed(images: np.ndarray) -> np.ndarray:
    x = to_model_input(images, input_size)
    out = []
    for start in range(0, len(x), batch_size):
      chunk = x[start : start + batch_size]
      n = len(chunk)
      if n < batch_size:
        chunk = np.concatenate([chunk, np.zeros((batch_size - n, *chunk.shape[1:]), chunk.dtype)])
      out.append(np.asarray(fn(variables, chunk), np.float32)[:n])
    if not out:
      return np.zeros((0, 0), np.float32)
    return np.concatenate(out)

  # The traceable forward pass behind this EmbedFn (jfr.infer export and benchmarks).
  embed.apply_fn, embed.variables, embed.input_size = apply_fn, variables, input_size
  return embed


def flip_average(embed: EmbedFn) -> EmbedFn:
  """``images -> embed(images) + embed(mirrored images)`` (horizontal flip), the flip test
  augmentation of arcface_torch / insightface (sum of the two features; cosine scores are
  the same as for their mean)."""

  def flipped(images: np.ndarray) -> np.ndarray:
    images = check_images(images)
    return embed(images) + embed(np.ascontiguousarray(images[:, :, ::-1]))

  return flipped


def mean_feature_sets(embed: EmbedFn) -> EmbedSetsFn:
  """``(frames [B, N, H, W, 3], mask [B, N]) -> mean of the real members' features`` —
  the feature-averaging baseline of set evaluators."""

  def embed_sets(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    mask = np.asarray(mask, bool)
    if frames.ndim != 5 or mask.shape != frames.shape[:2]:
      raise ValueError(
        f"frames/mask: expected [B, N, H, W, 3] and [B, N], got {frames.shape} and {mask.shape}"
      )
    if not mask.any(axis=1).all():
      raise ValueError("mask: every set needs at least one real member")
    feats = embed(frames[mask])
    out = np.zeros((len(frames), feats.shape[-1]), np.float32)
    owner = np.nonzero(mask)[0]
    np.add.at(out, owner, feats)
    return out / mask.sum(axis=1, keepdims=True)

  return embed_sets


@dataclasses.dataclass(frozen=True)
class EvalModel:
  """What a trained run offers to evaluators.

  Attributes:
    input_size: the model's input side.
    embed: still-image embedding (:data:`EmbedFn`), or None.
    embed_sets: set embedding (:data:`EmbedSetsFn`), or None.
    extras: further named functions a method offers (e.g. ``'conv_map'``, ``'decode'``).
  """

  input_size: int
  embed: EmbedFn | None = None
  embed_sets: EmbedSetsFn | None = None
  extras: Mapping[str, Callable] = dataclasses.field(default_factory=dict)

  def capabilities(self) -> set[str]:
    caps = set(self.extras)
    if self.embed is not None:
      caps.add("embed")
    if self.embed_sets is not None:
      caps.add("embed_sets")
    return caps

  def require(self, needs: tuple[str, ...], evaluator: str) -> None:
    """Raises ``ValueError`` naming what ``evaluator`` needs and this model lacks."""
    missing = [n for n in needs if n not in self.capabilities()]
    if missing:
      raise ValueError(
        f"evaluator {evaluator!r} needs {missing}; this run's model offers "
        f"{sorted(self.capabilities())}"
      )
