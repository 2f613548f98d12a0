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
* IJB-B/C-like 1:N mixed media (Table 3): :class:`MixedTemplate`,
  :func:`mixed_media_templates`, :func:`template_frame_sets`,
  :func:`template_representations`, :func:`extraction_cost` and
  :func:`two_gallery_identification`.

Video representations follow :func:`jfr.eval.protocols.pooled_features` (mean of
L2-normalised member features, L2-normalised); comparing them by cosine similarity is
the same as by Euclidean distance of the normalised features (the paper's measure).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from jfr.data import augment
from jfr.eval import metrics
from jfr.eval import protocols

EmbedFn = Callable[[np.ndarray], np.ndarray]
AggregateFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


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
  sample).

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
  fpr, tpr, _ = metrics.roc(scores, same)
  return {
    "eer": float(metrics.eer(scores, same)),
    "auc": float(metrics.auc(fpr, tpr)),
    "tar_at_far": {
      f"{f:g}": float(t) for f, t in zip(fars, metrics.tar_at_far(scores, same, fars))
    },
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
      ``jfr.train.fan.make_aggregator``).
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


# ---------------------------------------------------------------- IJB-like templates


@dataclasses.dataclass(frozen=True)
class MixedTemplate:
  """One mixed-media template: still images and frames of one or more videos.

  Attributes:
    label: the subject.
    stills: indices into the still images.
    videos: ``((video index, frame indices in that video), ...)``.
  """

  label: int
  stills: np.ndarray
  videos: tuple[tuple[int, np.ndarray], ...]


def mixed_media_templates(
  still_labels: np.ndarray,
  video_labels: np.ndarray,
  video_lengths: np.ndarray,
  *,
  gallery_stills: int,
  probes_per_subject: int,
  seed: int,
) -> tuple[list[MixedTemplate], list[MixedTemplate]]:
  """Gallery and probe templates of an IJB-B/C-like 1:N mixed-media protocol.

  For every subject (sorted by label), with its stills in a seeded random order and
  its videos in index order:

  * one gallery template: the first ``gallery_stills`` stills and every frame of the
    subject's first video;
  * ``probes_per_subject`` probe templates: the remaining stills and the frames of the
    remaining videos (in time order), each cut into that many near-equal consecutive
    chunks (``np.array_split``); probe k gets still chunk k and frame chunk k (a frame
    chunk that spans two videos contributes one part per video).

  Args:
    still_labels: ``[M]`` subject of each still.
    video_labels: ``[V]`` subject of each video.
    video_lengths: ``[V]`` frames per video.
    gallery_stills: stills per gallery template, >= 0.
    probes_per_subject: probe templates per subject, >= 1.
    seed: NumPy seed of the still order.

  Returns:
    ``(gallery, probes)`` lists of :class:`MixedTemplate`.

  Raises:
    ValueError: a subject without stills for every template or with fewer than two
      videos, or fewer frames in its other videos than probes (named in the message).
  """
  still_labels, video_labels = np.asarray(still_labels), np.asarray(video_labels)
  video_lengths = np.asarray(video_lengths)
  if gallery_stills < 0 or probes_per_subject < 1:
    raise ValueError(
      f"gallery_stills must be >= 0 and probes_per_subject >= 1, got "
      f"{gallery_stills}, {probes_per_subject}"
    )
  if video_labels.shape != video_lengths.shape:
    raise ValueError(
      f"video_labels {video_labels.shape} and video_lengths "
      f"{video_lengths.shape} must have the same shape [V]"
    )
  rng = np.random.default_rng(seed)
  gallery, probes = [], []
  for subject in np.unique(np.concatenate([still_labels, video_labels])):
    stills = rng.permutation(np.flatnonzero(still_labels == subject))
    videos = np.flatnonzero(video_labels == subject)
    probe_frames = [(int(v), t) for v in videos[1:] for t in range(int(video_lengths[v]))]
    if (
      stills.size < gallery_stills + probes_per_subject
      or videos.size < 2
      or len(probe_frames) < probes_per_subject
    ):
      raise ValueError(
        f"subject {subject}: needs >= {gallery_stills + probes_per_subject} stills, "
        f">= 2 videos and >= {probes_per_subject} frames outside its first video; has "
        f"{stills.size} stills, {videos.size} videos, {len(probe_frames)} such frames"
      )
    first = int(videos[0])
    gallery.append(
      MixedTemplate(
        int(subject),
        np.sort(stills[:gallery_stills]),
        ((first, np.arange(int(video_lengths[first]))),),
      )
    )
    still_chunks = np.array_split(stills[gallery_stills:], probes_per_subject)
    frame_chunks = np.array_split(np.arange(len(probe_frames)), probes_per_subject)
    for still_chunk, frame_chunk in zip(still_chunks, frame_chunks):
      parts: dict[int, list[int]] = {}
      for i in frame_chunk:
        v, t = probe_frames[i]
        parts.setdefault(v, []).append(t)
      probes.append(
        MixedTemplate(
          int(subject), np.sort(still_chunk), tuple((v, np.array(ts)) for v, ts in parts.items())
        )
      )
  return gallery, probes


def template_frame_sets(
  templates: Sequence[MixedTemplate], max_members: int
) -> list[tuple[int, int, np.ndarray]]:
  """The sets an aggregator fuses: ``(template index, video index, frame indices)``.

  All frames of one video in a template form one set (the paper aggregates "all video
  frames into a single representative image"); a video part longer than
  ``max_members`` is cut into ``ceil(n / max_members)`` near-equal consecutive sets.
  """
  if max_members < 1:
    raise ValueError(f"max_members must be >= 1, got {max_members}")
  sets = []
  for t, template in enumerate(templates):
    for video, frames in template.videos:
      pieces = -(-len(frames) // max_members)
      sets.extend((t, video, chunk) for chunk in np.array_split(frames, pieces))
  return sets


def template_representations(
  templates: Sequence[MixedTemplate],
  still_features: np.ndarray,
  frame_features: np.ndarray | None = None,
  *,
  sets: Sequence[tuple[int, int, np.ndarray]] | None = None,
  set_features: np.ndarray | None = None,
) -> np.ndarray:
  """Template features: the mean of the normalised features of its media, normalised.

  Media of a template are its stills plus either every frame (``frame_features``: the
  ``avg`` baseline) or one aggregated image per set (``sets`` with ``set_features``:
  the FAN).

  Args:
    templates: the templates.
    still_features: ``[M, D]`` features of the still images.
    frame_features: ``[V, T, D]`` per-frame features of the videos.
    sets: the output of :func:`template_frame_sets` for ``templates``.
    set_features: ``[len(sets), D]`` features of the aggregated images.

  Returns:
    ``[len(templates), D]`` unit rows.
  """
  if (frame_features is None) == (sets is None or set_features is None):
    raise ValueError("pass either frame_features (avg) or sets with set_features (aggregated)")
  feats, owners = [], []
  for t, template in enumerate(templates):
    feats.append(still_features[template.stills])
    owners.append(np.full(template.stills.size, t))
    if frame_features is not None:
      for video, frames in template.videos:
        feats.append(frame_features[video, frames])
        owners.append(np.full(len(frames), t))
  if sets is not None:
    if len(sets) != len(set_features):
      raise ValueError(f"set_features has {len(set_features)} rows for {len(sets)} sets")
    feats.append(np.asarray(set_features))
    owners.append(np.array([t for t, _, _ in sets], int))
  return protocols.pooled_features(np.concatenate(feats), np.concatenate(owners), len(templates))


def set_mean_features(
  frame_features: np.ndarray, sets: Sequence[tuple[int, int, np.ndarray]]
) -> np.ndarray:
  """``[len(sets), D]``: the mean of the L2-normalised frame features of each set.

  With :func:`template_representations` this gives the media-pooled baseline (every
  video part counts as one item next to each still), which separates the effect of
  giving a video one vote from the effect of aggregating its frames into an image.
  """
  return np.stack(
    [protocols.l2_normalize(frame_features[video, frames]).mean(0) for _, video, frames in sets]
  )


def extraction_cost(
  templates: Sequence[MixedTemplate], sets: Sequence[tuple[int, int, np.ndarray]]
) -> dict:
  """Feature extractions of the ``avg`` baseline (every still and frame) and of the
  FAN (every still and one per aggregated set), and the share the FAN saves."""
  stills = sum(t.stills.size for t in templates)
  frames = sum(len(f) for t in templates for _, f in t.videos)
  avg, ours = stills + frames, stills + len(sets)
  return {
    "stills": int(stills),
    "frames": int(frames),
    "sets": len(sets),
    "extractions_avg": int(avg),
    "extractions_aggregated": int(ours),
    "saved_fraction": float(1.0 - ours / avg),
  }


def split_subjects(labels: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Two disjoint, near-equal halves of the subjects in ``labels`` (seeded)."""
  subjects = np.random.default_rng(seed).permutation(np.unique(labels))
  if subjects.size < 2:
    raise ValueError("split_subjects needs at least two subjects")
  half = subjects.size // 2
  return np.sort(subjects[:half]), np.sort(subjects[half:])


def two_gallery_identification(
  gallery_features: np.ndarray,
  gallery_labels: np.ndarray,
  probe_features: np.ndarray,
  probe_labels: np.ndarray,
  subject_halves: Sequence[np.ndarray],
  *,
  ranks: Sequence[int] = (1,),
  fpirs: Sequence[float] = (0.01,),
) -> dict:
  """IJB-B/C 1:N: each gallery holds the templates of one half of the subjects; every
  probe template is searched in both (non-mated in the gallery without its subject).

  Returns ``{"galleries": [report per gallery], "mean": {"rank<k>": ..., "tpir_at_fpir":
  {fpir: ...}}}`` with :func:`jfr.eval.protocols.identification_report` reports and
  their mean over the galleries (the paper's "average of both galleries").
  """
  gallery_labels, probe_labels = np.asarray(gallery_labels), np.asarray(probe_labels)
  reports = []
  for half in subject_halves:
    keep = np.isin(gallery_labels, half)
    if not keep.any():
      raise ValueError("subject_halves: a gallery has no template")
    sim = protocols.cosine_similarity_matrix(probe_features, gallery_features[keep])
    reports.append(
      protocols.identification_report(sim, probe_labels, gallery_labels[keep], ranks, fpirs)
    )
  mean = {f"rank{r}": float(np.mean([rep["cmc"][f"rank{r}"] for rep in reports])) for r in ranks}
  mean["tpir_at_fpir"] = {
    f"{f:g}": float(np.mean([rep["tpir_at_fpir"][f"{f:g}"] for rep in reports])) for f in fpirs
  }
  return {"galleries": reports, "mean": mean}
