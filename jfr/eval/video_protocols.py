"""Video and mixed-media protocols of the Face Aggregation Network's evaluation.

Hörmann et al., "Face Aggregation Network for Video Face Recognition", ICIP 2021,
Sec. 4.2-4.4. Complements :mod:`jfr.eval.protocols` (whose
``video_representations`` is the one-shot form of the YTF protocol) with the pieces
the FAN experiment runs many times and therefore shares or caches:

* YTF-like verification (Table 1): :func:`video_pairs` (balanced same/different video
  pairs in folds), :func:`resampled_groups` (each video resampled to ``N * n_avg``
  frames, cut into ``n_avg`` groups of N consecutive frames),
  :func:`average_representations` (the ``avg`` baseline from cached per-frame
  features) and :func:`group_representations` (aggregate every group into one image,
  average the ``n_avg`` image features; or embed every frame of possibly transformed
  groups).
* Motion-blur robustness (Table 4): :func:`blur_groups` blurs all but
  ``num_sharp`` frames of every group.
* IJB-B/C-like 1:N mixed media (Table 3), in :mod:`jfr.eval.mixed_media_templates` and
  re-exported here: :class:`MixedTemplate`,
  :func:`mixed_media_templates`, :func:`template_frame_sets`,
  :func:`template_representations`, :func:`extraction_cost`,
  :func:`two_gallery_identification` and the 1:1 :func:`template_verification`.
* Set embedders (:data:`jfr.eval.embedding.EmbedSetsFn`, e.g. a FAN aggregator followed by
  the recognizer): :func:`set_representations` (YTF groups) and :func:`template_set_features`
  (IJB-like sets of mixed sizes). :func:`load_videos` reads a video split.

The evaluators that wire these pieces to a run's model are :mod:`jfr.eval.video_pairs`
(``video_pairs``) and :mod:`jfr.eval.mixed_media` (``mixed_media``).

Video representations follow :func:`jfr.eval.protocols.pooled_features` (mean of
L2-normalised member features, L2-normalised); comparing them by cosine similarity is
the same as by Euclidean distance of the normalised features (the paper's measure).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from jfr.data import augment
from jfr.data import pipelines
from jfr.eval import protocols
from jfr.eval import roc_intervals
from jfr.eval.mixed_media_templates import (  # noqa: F401  (re-exported: the public API)
  MixedTemplate,
  extraction_cost,
  mixed_media_templates,
  set_mean_features,
  split_subjects,
  template_frame_sets,
  template_representations,
  template_set_features,
  template_verification,
  two_gallery_identification,
)

EmbedFn = Callable[[np.ndarray], np.ndarray]
AggregateFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
EmbedSetsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Per-frame features of a video split (grouped into videos by :func:`load_videos`).
VIDEO_FEATURES = ("image", "label", "video_id", "frame_index")


def load_videos(builder, split: str) -> dict[str, np.ndarray]:
  """A video split grouped by video (:func:`jfr.data.pipelines.group_videos`): ``frames``
  uint8 ``[V, T, H, W, 3]`` (zero padded), ``lengths`` ``[V]``, ``labels`` ``[V]``, ..."""
  return pipelines.group_videos(pipelines.load_arrays(builder, split, VIDEO_FEATURES))


# ----------------------------------------------------------------------- verification


def video_pairs(
  labels: np.ndarray, *, folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Balanced same/different video pairs in ``folds`` contiguous folds (YTF style).

  Every genuine pair (two videos of one identity) is used once; as many impostor
  pairs (videos of two identities) are drawn at random without repetition. Each fold
  receives an equal share of both (``np.array_split`` sizes), in the contiguous-block
  order that :func:`jfr.eval.metrics.verification_accuracy_kfold` expects.

  Args:
    labels: ``[V]`` identity of each video.
    folds: number of folds, at most the number of genuine pairs.
    seed: NumPy seed of the impostor draw and the fold assignment.

  Returns:
    ``(idx_a, idx_b, same)``, ``[2 G]`` each for G genuine pairs; ``same`` is bool.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must have shape [V], got {labels.shape}")
  a, b = np.triu_indices(labels.size, k=1)
  genuine = np.flatnonzero(labels[a] == labels[b])
  impostor = np.flatnonzero(labels[a] != labels[b])
  if genuine.size == 0:
    raise ValueError("labels: no identity has two videos, genuine pairs are impossible")
  if impostor.size < genuine.size:
    raise ValueError(
      f"labels: {impostor.size} impostor pairs cannot balance {genuine.size} genuine pairs"
    )
  if not 2 <= folds <= genuine.size:
    raise ValueError(f"folds must be in [2, {genuine.size}] (genuine pairs), got {folds}")
  rng = np.random.default_rng(seed)
  impostor = rng.choice(impostor, genuine.size, replace=False)
  genuine = rng.permutation(genuine)
  blocks = [
    np.concatenate([g, i])
    for g, i in zip(np.array_split(genuine, folds), np.array_split(impostor, folds))
  ]
  order = np.concatenate(blocks)
  return a[order], b[order], labels[a[order]] == labels[b[order]]


def all_pairs_report(
  features: np.ndarray, labels: np.ndarray, fars: Sequence[float] = (0.01,)
) -> dict:
  """EER, AUC and TAR@FAR over every pair of distinct videos (cosine similarity).

  A statistically stronger companion of the balanced k-fold accuracy when the data
  hold few genuine pairs (all ``V (V - 1) / 2`` pairs are scored, not a balanced
  sample). Their 95 % intervals (``eer_ci95``, ``auc_ci95``, ``tar_at_far['<far>_ci95']``,
  with two identities or more) resample the identities: a pair of videos enters a resample
  as often as the product of its two identities' draw counts, i.e. all pairs of distinct
  videos of the resampled identities (:func:`jfr.eval.roc_intervals.pair_weights`, seed 0).

  Args:
    features: ``[V, D]`` video representations.
    labels: ``[V]`` identities.
    fars: false accept rates for TAR@FAR.
  """
  labels = np.asarray(labels)
  if features.ndim != 2 or features.shape[0] != labels.shape[0]:
    raise ValueError(
      f"features must have shape [V, D] with V = {labels.shape[0]}, got {features.shape}"
    )
  i, j = np.triu_indices(labels.size, k=1)
  scores = np.sum(protocols.l2_normalize(features)[i] * protocols.l2_normalize(features)[j], axis=1)
  same = labels[i] == labels[j]
  return {
    **protocols.roc_summary(scores, same, fars, roc_intervals.pair_weights(labels[i], labels[j])),
    "genuine": int(same.sum()),
    "impostor": int((~same).sum()),
  }


# ---------------------------------------------------------------------------- videos


def resampled_frame_indices(lengths: np.ndarray, total: int) -> np.ndarray:
  """``[V, total]`` frame indices: each video resampled evenly to ``total`` frames
  (:func:`jfr.eval.protocols.resample_indices`; short videos repeat frames)."""
  lengths = np.asarray(lengths)
  if lengths.ndim != 1 or lengths.size == 0:
    raise ValueError(f"lengths must have shape [V] with V >= 1, got {lengths.shape}")
  return np.stack([protocols.resample_indices(int(n), total) for n in lengths])


def resampled_groups(
  frames: np.ndarray, lengths: np.ndarray, set_size: int, n_avg: int
) -> np.ndarray:
  """The YTF protocol's sets: ``[V * n_avg, N, H, W, C]``.

  Video ``v`` is resampled to ``N * n_avg`` frames and cut into ``n_avg`` groups of N
  consecutive frames; group ``v * n_avg + k`` is the k-th group of video v.

  Args:
    frames: ``[V, T, H, W, C]`` (padded beyond ``lengths``).
    lengths: ``[V]`` real frame counts, in ``[1, T]``.
    set_size: N >= 1.
    n_avg: groups per video, >= 1.
  """
  if set_size < 1 or n_avg < 1:
    raise ValueError(f"set_size and n_avg must be >= 1, got {set_size}, {n_avg}")
  if frames.ndim != 5 or frames.shape[0] != np.shape(lengths)[0]:
    raise ValueError(
      f"frames must have shape [V, T, H, W, C] with V = len(lengths) = "
      f"{np.shape(lengths)[0]}, got {frames.shape}"
    )
  if np.any(np.asarray(lengths) > frames.shape[1]) or np.any(np.asarray(lengths) < 1):
    raise ValueError(f"lengths must lie in [1, T = {frames.shape[1]}]")
  idx = resampled_frame_indices(lengths, set_size * n_avg)
  groups = frames[np.arange(frames.shape[0])[:, None], idx]  # [V, N * n_avg, ...]
  return groups.reshape((frames.shape[0] * n_avg, set_size) + frames.shape[2:])


def average_representations(
  frame_features: np.ndarray, lengths: np.ndarray, set_size: int, n_avg: int
) -> np.ndarray:
  """The ``avg`` baseline of the YTF protocol from cached per-frame features.

  Equal to ``protocols.video_representations(..., aggregate_fn=None)`` (the mean of
  the normalised features of the ``N * n_avg`` resampled frames, repeats counted),
  without extracting any feature twice.

  Args:
    frame_features: ``[V, T, D]`` features of every (real) frame.
    lengths: ``[V]`` real frame counts.
    set_size: N.
    n_avg: groups per video.

  Returns:
    ``[V, D]`` unit rows.
  """
  if frame_features.ndim != 3:
    raise ValueError(f"frame_features must have shape [V, T, D], got {frame_features.shape}")
  idx = resampled_frame_indices(lengths, set_size * n_avg)
  num_videos = frame_features.shape[0]
  feats = frame_features[np.arange(num_videos)[:, None], idx]  # [V, N * n_avg, D]
  ids = np.repeat(np.arange(num_videos), idx.shape[1])
  return protocols.pooled_features(feats.reshape(-1, feats.shape[-1]), ids, num_videos)


def group_representations(
  groups: np.ndarray,
  n_avg: int,
  *,
  embed_fn: EmbedFn,
  aggregate_fn: AggregateFn | None = None,
  batch_size: int = 64,
) -> tuple[np.ndarray, dict]:
  """Video representations from the groups of :func:`resampled_groups`.

  With ``aggregate_fn`` every group of N frames becomes one image (the FAN), whose
  ``n_avg`` features per video are averaged; without it every frame is embedded and
  the ``N * n_avg`` features are averaged (the ``avg`` baseline, e.g. on blurred
  groups).

  Args:
    groups: ``[V * n_avg, N, H, W, C]`` float images in [-1, 1].
    n_avg: groups per video.
    embed_fn: images ``[b, H, W, C]`` -> features ``[b, D]``; called with ``batch_size`` rows.
    aggregate_fn: ``(sets [G, N, H, W, C], mask [G, N]) -> images [G, H, W, C]``,
      called once with every group (it batches as it needs, e.g. by
      ``jfr.methods.fan.aggregator.make_aggregator``).
    batch_size: images per ``embed_fn`` call.

  Returns:
    ``([V, D] unit rows, {"embedded_images": feature extractions,
    "aggregated_sets": aggregator calls' real sets})``.
  """
  if groups.ndim != 5 or groups.shape[0] % n_avg:
    raise ValueError(
      f"groups must have shape [V * n_avg, N, H, W, C] with n_avg = {n_avg}, got {groups.shape}"
    )
  num_videos = groups.shape[0] // n_avg
  if aggregate_fn is None:
    images = groups.reshape((-1,) + groups.shape[2:])
    sets = 0
  else:
    mask = np.ones(groups.shape[:2], bool)
    images = np.asarray(aggregate_fn(groups, mask))
    if images.shape != (groups.shape[0],) + groups.shape[2:]:
      raise ValueError(
        f"aggregate_fn returned shape {images.shape}, expected "
        f"{(groups.shape[0],) + groups.shape[2:]}"
      )
    sets = groups.shape[0]
  feats = protocols.batched_apply(embed_fn, images, batch_size=batch_size)
  ids = np.repeat(np.arange(num_videos), images.shape[0] // num_videos)
  return (
    protocols.pooled_features(feats, ids, num_videos),
    {"embedded_images": int(images.shape[0]), "aggregated_sets": int(sets)},
  )


def set_representations(
  groups: np.ndarray, n_avg: int, embed_sets: EmbedSetsFn
) -> tuple[np.ndarray, dict]:
  """Video representations from a set embedder: every group of :func:`resampled_groups`
  (all members real) gives one feature, the ``n_avg`` features of a video are pooled
  (:func:`jfr.eval.protocols.pooled_features`).

  Args:
    groups: ``[V * n_avg, N, H, W, C]`` frames in whatever form ``embed_sets`` takes.
    n_avg: groups per video.
    embed_sets: ``(sets [G, N, ...], mask [G, N]) -> [G, D]``, called once with every group.

  Returns:
    ``([V, D] unit rows, {"embedded_images": G, "aggregated_sets": G})`` (one feature
    extraction per aggregated set).
  """
  if groups.ndim != 5 or groups.shape[0] % n_avg:
    raise ValueError(
      f"groups must have shape [V * n_avg, N, H, W, C] with n_avg = {n_avg}, got {groups.shape}"
    )
  num_videos = groups.shape[0] // n_avg
  feats = np.asarray(embed_sets(groups, np.ones(groups.shape[:2], bool)))
  if feats.ndim != 2 or feats.shape[0] != groups.shape[0]:
    raise ValueError(f"embed_sets returned shape {feats.shape}, expected [{groups.shape[0]}, D]")
  ids = np.repeat(np.arange(num_videos), n_avg)
  cost = {"embedded_images": int(groups.shape[0]), "aggregated_sets": int(groups.shape[0])}
  return protocols.pooled_features(feats, ids, num_videos), cost


# ------------------------------------------------------------------------ motion blur


def _blur_function(kernel_size: int) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
  """A compiled ``(images [n, H, W, C], angles [n]) -> blurred`` for one kernel size."""

  @tf.function
  def blur(images, angles):
    return tf.map_fn(
      lambda x: augment.apply_motion_blur(x[0], kernel_size, x[1]),
      (images, angles),
      fn_output_signature=tf.float32,
    )

  return blur


def blur_groups(
  groups: np.ndarray, kernel_size: int, *, num_sharp: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Motion blur on all but ``num_sharp`` frames of every group (FAN Table 4).

  Table 4 blurs 9 of N = 10 frames. Which frames stay sharp is drawn per group, and
  every blurred frame gets its own direction, uniform in [0, 180) degrees
  (:func:`jfr.data.augment.apply_motion_blur`, a line kernel of ``kernel_size`` px);
  both from a NumPy generator seeded by ``seed``, so every method sees the same
  blurred frames.

  Args:
    groups: ``[G, N, H, W, C]`` float images in [-1, 1].
    kernel_size: odd blur length in pixels.
    num_sharp: untouched frames per group, in ``[0, N]``.
    seed: NumPy seed.

  Returns:
    ``(blurred [G, N, H, W, C] float32, sharp bool [G, N], angles [G, N])``: the
    blurred groups, which frames were left untouched, and each frame's blur direction
    in degrees (drawn for every frame, used where ``sharp`` is False).
  """
  if groups.ndim != 5:
    raise ValueError(f"groups must have shape [G, N, H, W, C], got {groups.shape}")
  g, n = groups.shape[:2]
  if not 0 <= num_sharp <= n:
    raise ValueError(f"num_sharp must be in [0, N = {n}], got {num_sharp}")
  rng = np.random.default_rng(seed)
  sharp = np.zeros((g, n), bool)
  for row in range(g):
    sharp[row, rng.choice(n, num_sharp, replace=False)] = True
  angles = rng.uniform(0.0, 180.0, size=(g, n)).astype(np.float32)
  out = np.array(groups, np.float32)
  todo = ~sharp
  if todo.any():
    blurred = _blur_function(int(kernel_size))(tf.constant(out[todo]), tf.constant(angles[todo]))
    out[todo] = blurred.numpy()
  return out, sharp, angles
