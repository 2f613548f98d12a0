"""IJB-B/C-like mixed-media templates (FAN paper Sec. 4.4, Table 3): templates of stills and
video frames, the sets an aggregator fuses, template features, 1:N over two galleries and
1:1 over all template pairs. Re-exported by :mod:`jfr.eval.video_protocols`; wired to a
run's model by the ``mixed_media`` evaluator (:mod:`jfr.eval.mixed_media`).

Template features follow :func:`jfr.eval.protocols.pooled_features` (mean of L2-normalised
media features, L2-normalised).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from jfr.eval import protocols
from jfr.eval import roc_intervals

EmbedSetsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


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


def template_set_features(
  embed_sets: EmbedSetsFn, frames: np.ndarray, sets: Sequence[tuple[int, int, np.ndarray]]
) -> np.ndarray:
  """``[len(sets), D]``: ``embed_sets`` of every set of :func:`template_frame_sets`, one
  call per distinct set size (all members real), in set order.

  Args:
    embed_sets: ``(sets [B, N, ...], mask [B, N]) -> [B, D]``.
    frames: ``[V, T, ...]`` the videos' frames, in the form ``embed_sets`` takes.
    sets: ``(template index, video index, frame indices)`` triples.
  """
  if not sets:
    raise ValueError("sets: expected at least one set")
  sizes = np.array([len(idx) for _, _, idx in sets])
  out = None
  for size in np.unique(sizes):
    rows = np.flatnonzero(sizes == size)
    group = np.stack([frames[sets[r][1], sets[r][2]] for r in rows])
    feats = np.asarray(embed_sets(group, np.ones(group.shape[:2], bool)))
    if out is None:
      out = np.zeros((len(sets), feats.shape[-1]), feats.dtype)
    out[rows] = feats
  return out


def template_verification(
  gallery_features: np.ndarray,
  gallery_labels: np.ndarray,
  probe_features: np.ndarray,
  probe_labels: np.ndarray,
  *,
  fars: Sequence[float] = (0.01,),
) -> dict:
  """IJB-style 1:1: every (probe template, gallery template) pair is compared by cosine
  similarity (mated: the same subject); EER, AUC and TAR@FAR over all those pairs, with their
  95 % intervals (``eer_ci95``, ``auc_ci95``, ``tar_at_far['<far>_ci95']``; seed 0): a
  bootstrap over the probe templates' subjects with the gallery fixed, as the 1:N intervals
  (:func:`jfr.eval.roc_intervals.item_weights`).

  Args:
    gallery_features: ``[G, D]``; gallery_labels: ``[G]``.
    probe_features: ``[P, D]``; probe_labels: ``[P]``.
    fars: false accept rates.
  """
  gallery_labels, probe_labels = np.asarray(gallery_labels), np.asarray(probe_labels)
  scores = protocols.cosine_similarity_matrix(probe_features, gallery_features).ravel()
  same = (probe_labels[:, None] == gallery_labels[None, :]).ravel()
  if same.all() or not same.any():
    raise ValueError("template_verification needs mated and non-mated template pairs")
  return {
    **protocols.roc_summary(
      scores, same, fars, roc_intervals.item_weights(np.repeat(probe_labels, gallery_labels.size))
    ),
    "mated": int(same.sum()),
    "non_mated": int((~same).sum()),
  }


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
