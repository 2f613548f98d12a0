"""Evaluation protocols on features: verification pairs, 1:N identification, YTF-style
video aggregation, IJB-style templates and a MegaFace-like CMC with distractors.

Protocols take features (NumPy ``[n, D]``) or feature-extraction callables and return
plain dicts of floats/lists ready for ``jfr.eval.plots.write_json``. Scores are
similarities: higher means "more likely the same identity". The metric definitions
live in :mod:`jfr.eval.metrics`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from jfr.eval import metrics
from jfr.eval import roc_intervals
from jfr.report import intervals


# --------------------------------------------------------------------------- features


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
  """Rows scaled to unit L2 norm (zero rows stay zero)."""
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)


def cosine_similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[Na, D], [Nb, D] -> [Na, Nb] cosine similarities."""
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f"features must be [Na, D] and [Nb, D], got {a.shape} and {b.shape}")
  return l2_normalize(a) @ l2_normalize(b).T


def pooled_features(features: np.ndarray, group_ids: np.ndarray, num_groups: int) -> np.ndarray:
  """Template/video representation: mean of L2-normalised member features, normalised.

  Args:
    features: [n, D].
    group_ids: [n] ints in [0, num_groups); every group needs >= 1 member.
  Returns:
    [num_groups, D] unit rows.
  """
  group_ids = np.asarray(group_ids)
  if features.shape[0] != group_ids.shape[0]:
    raise ValueError(
      f"features has {features.shape[0]} rows but group_ids has {group_ids.shape[0]}"
    )
  counts = np.bincount(group_ids, minlength=num_groups)
  if counts.shape[0] != num_groups or np.any(counts == 0):
    raise ValueError(
      f"group_ids must cover 0..{num_groups - 1} with >= 1 member each; "
      f"empty groups: {np.flatnonzero(counts[:num_groups] == 0)[:10].tolist()}"
    )
  sums = np.zeros((num_groups, features.shape[1]))
  np.add.at(sums, group_ids, l2_normalize(features))
  return l2_normalize(sums)


def batched_apply(
  fn: Callable[..., np.ndarray], *arrays: np.ndarray, batch_size: int
) -> np.ndarray:
  """Applies ``fn(*chunks)`` over the leading axis of ``arrays`` in fixed-size chunks
  (the last one zero-padded), so a jitted ``fn`` compiles once. Returns the
  concatenated, unpadded outputs."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  n = arrays[0].shape[0]
  if any(a.shape[0] != n for a in arrays):
    raise ValueError(f"arrays differ in length: {[a.shape[0] for a in arrays]}")
  outs = []
  for start in range(0, n, batch_size):
    chunks = [a[start : start + batch_size] for a in arrays]
    pad = batch_size - chunks[0].shape[0]
    if pad:
      chunks = [np.concatenate([c, np.zeros((pad,) + c.shape[1:], c.dtype)]) for c in chunks]
    outs.append(np.asarray(fn(*chunks))[: batch_size - pad])
  if not outs:
    raise ValueError("batched_apply got empty arrays")
  return np.concatenate(outs)


# ----------------------------------------------------------------------- verification


def verification_pairs(
  labels: np.ndarray, pairs_per_fold: int, *, seed: int, folds: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Balanced genuine/impostor pairs in fold order (LFW/YTF style).

  Each fold holds ``pairs_per_fold`` pairs, half genuine (two different items of one
  identity) and half impostor; folds are contiguous blocks, as
  :func:`jfr.eval.metrics.verification_accuracy_kfold` expects. Pairs are drawn with a
  NumPy generator seeded by ``seed`` (duplicates across folds are possible but rare).

  Returns:
    (idx_a, idx_b, same): [folds * pairs_per_fold] each; ``same`` bool.
  """
  labels = np.asarray(labels)
  if pairs_per_fold < 2 or pairs_per_fold % 2:
    raise ValueError(f"pairs_per_fold must be an even number >= 2, got {pairs_per_fold}")
  rng = np.random.default_rng(seed)
  ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
  multi = np.flatnonzero(counts >= 2)
  if multi.size == 0:
    raise ValueError("no identity has two items: genuine pairs are impossible")
  if ids.size < 2:
    raise ValueError("a single identity: impostor pairs are impossible")
  members = [np.flatnonzero(inverse == i) for i in range(ids.size)]
  half = pairs_per_fold // 2
  a, b, same = [], [], []
  for _ in range(folds):
    for _ in range(half):
      m = members[rng.choice(multi)]
      i, j = rng.choice(m, 2, replace=False)
      a.append(i), b.append(j), same.append(True)
    for _ in range(half):
      p, q = rng.choice(ids.size, 2, replace=False)
      a.append(rng.choice(members[p])), b.append(rng.choice(members[q])), same.append(False)
  return np.array(a), np.array(b), np.array(same)


def roc_summary(
  scores: np.ndarray,
  same: np.ndarray,
  fars: Sequence[float],
  resampled: roc_intervals.Resampled | None = None,
) -> dict:
  """EER, AUC and TAR@FAR (keys ``'0.01'``-style) of a list of scored pairs.

  With ``resampled`` (the pairs' groups: :func:`jfr.eval.roc_intervals.fold_weights`,
  ``item_weights`` or ``pair_weights``) also their 95 % bootstrap intervals, seed 0:
  ``eer_ci95``, ``auc_ci95`` and ``tar_at_far['<far>_ci95']``
  (:func:`jfr.eval.roc_intervals.add_roc_ci95`; the figures themselves are unchanged).
  """
  fpr, tpr, _ = metrics.roc(scores, same)
  tars = metrics.tar_at_far(scores, same, fars)
  summary = {
    "eer": float(metrics.eer(scores, same)),
    "auc": float(metrics.auc(fpr, tpr)),
    "tar_at_far": {f"{far:g}": float(t) for far, t in zip(fars, tars)},
  }
  if resampled is not None:
    roc_intervals.add_roc_ci95(summary, scores, same, fars, resampled)
  return summary


def verification_report(
  scores: np.ndarray, same: np.ndarray, fars: Sequence[float] = (1e-1, 1e-2, 1e-3), folds: int = 10
) -> dict:
  """k-fold accuracy, EER, AUC and TAR@FAR of a list of scored pairs.

  Also ``fold_accuracies`` ``[folds]`` and ``accuracy_ci95``: the 95 % bootstrap interval of
  the accuracy over the folds (:func:`jfr.report.intervals.mean_interval`, seed 0; one
  fold: ``[accuracy, accuracy]``). EER, AUC and TAR@FAR are figures of the pooled scores of
  all folds, so their intervals (``eer_ci95``, ``auc_ci95``, ``tar_at_far['<far>_ci95']``;
  with two folds or more) recompute each figure on the pooled scores of the resampled folds
  (:func:`jfr.eval.roc_intervals.roc_intervals`, the same resamples as ``accuracy_ci95``).
  """
  accuracies = metrics.verification_fold_accuracies(scores, same, folds=folds)
  mean, std = float(accuracies.mean()), float(accuracies.std())
  ci = intervals.mean_interval(accuracies).as_list() if folds >= 2 else [mean, mean]
  return {
    "accuracy": float(mean),
    "accuracy_std": float(std),
    "accuracy_ci95": ci,
    "fold_accuracies": accuracies.tolist(),
    **roc_summary(
      scores, same, fars, roc_intervals.fold_weights(len(scores), folds) if folds >= 2 else None
    ),
    "num_pairs": int(len(scores)),
  }


def pair_scores(features: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
  """Cosine similarity of each pair of rows."""
  f = l2_normalize(features)
  return np.sum(f[idx_a] * f[idx_b], axis=1)


# --------------------------------------------------------------------- identification


def gallery_probe_split(
  labels: np.ndarray, *, seed: int, gallery_per_identity: int = 1, unknown_fraction: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
  """Splits labelled items into gallery and probe indices.

  ``gallery_per_identity`` items of each enrolled identity go to the gallery, the rest
  are probes. A fraction ``unknown_fraction`` of identities is not enrolled at all: their
  items are all probes (non-mated, for open-set metrics). Identities with too few items
  to leave a probe are enrolled without probes.
  """
  labels = np.asarray(labels)
  if gallery_per_identity < 1:
    raise ValueError(f"gallery_per_identity must be >= 1, got {gallery_per_identity}")
  if not 0.0 <= unknown_fraction < 1.0:
    raise ValueError(f"unknown_fraction must be in [0, 1), got {unknown_fraction}")
  rng = np.random.default_rng(seed)
  ids = np.unique(labels)
  unknown = set(rng.choice(ids, int(round(unknown_fraction * ids.size)), replace=False).tolist())
  gallery, probe = [], []
  for i in ids:
    m = rng.permutation(np.flatnonzero(labels == i))
    if i in unknown:
      probe.extend(m)
    else:
      gallery.extend(m[:gallery_per_identity])
      probe.extend(m[gallery_per_identity:])
  return np.sort(np.array(gallery, int)), np.sort(np.array(probe, int))


def identification_report(
  similarity: np.ndarray,
  probe_labels: np.ndarray,
  gallery_labels: np.ndarray,
  ranks: Sequence[int] = (1, 5, 10),
  fpirs: Sequence[float] = (0.01, 0.1),
) -> dict:
  """Closed-set CMC at ``ranks`` (mated probes only) and open-set TPIR@FPIR (rank 1).

  Ranks beyond the gallery size are left out of the report (listed under
  ``ranks_beyond_gallery``). ``cmc_ci95``: each CMC figure's 95 % interval, a bootstrap over
  the mated probes' identities (seed 0; when they hold at least two identities).
  """
  probe_labels = np.asarray(probe_labels)
  beyond = [r for r in ranks if r > len(gallery_labels)]
  ranks = [r for r in ranks if r <= len(gallery_labels)]
  mated = np.isin(probe_labels, gallery_labels)
  report = {
    "num_probes": int(probe_labels.size),
    "num_mated": int(mated.sum()),
    "num_gallery": int(len(gallery_labels)),
  }
  if beyond:
    report["ranks_beyond_gallery"] = beyond
  if mated.any():
    cmc = metrics.cmc(similarity[mated], probe_labels[mated], gallery_labels, ranks)
    report["cmc"] = {f"rank{r}": float(v) for r, v in zip(ranks, cmc)}
    if np.unique(probe_labels[mated]).size >= 2:
      probe_rank = metrics.probe_ranks(similarity[mated], probe_labels[mated], gallery_labels)
      report["cmc_ci95"] = {
        f"rank{r}": intervals.mean_interval(probe_rank <= r, probe_labels[mated]).as_list()
        for r in ranks
      }
  if (~mated).any():
    tpir = metrics.tpir_at_fpir(similarity, probe_labels, gallery_labels, fpirs)
    report["tpir_at_fpir"] = {f"{f:g}": float(v) for f, v in zip(fpirs, tpir)}
  return report


# --------------------------------------------------------------------------- videos


def resample_indices(length: int, total: int) -> np.ndarray:
  """``total`` frame indices spread evenly over a video of ``length`` frames (repeats
  frames when the video is shorter than ``total``): the DAN/FAN YTF resampling."""
  if length < 1 or total < 1:
    raise ValueError(f"length and total must be >= 1, got {length}, {total}")
  return np.floor((np.arange(total) + 0.5) * length / total).astype(int)


def video_representations(
  frames: np.ndarray,
  lengths: np.ndarray,
  *,
  embed_fn: Callable[[np.ndarray], np.ndarray],
  set_size: int,
  n_avg: int,
  aggregate_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
  frame_transform: Callable[[np.ndarray], np.ndarray] | None = None,
  batch_size: int = 64,
) -> tuple[np.ndarray, dict]:
  """YTF protocol representation of each video (FAN paper Sec. 4.2).

  Each video is resampled to ``N * n_avg`` frames. With ``aggregate_fn`` every N
  consecutive frames are fused into one image (``n_avg`` images per video) whose
  features are averaged; without it (the ``avg`` baseline) the features of all
  ``N * n_avg`` frames are averaged. The mean is L2-normalised.

  Args:
    frames: float32 [V, T, H, W, 3] in [-1, 1] (padded beyond ``lengths``).
    lengths: [V] real frame counts.
    embed_fn: images [b, H, W, 3] -> features [b, D] (called with ``batch_size`` rows).
    set_size: N.
    n_avg: aggregated images per video.
    aggregate_fn: (sets [b, N, H, W, 3], mask [b, N]) -> images [b, H, W, 3].
    frame_transform: applied to each group [N, H, W, 3] before aggregation/embedding
      (e.g. motion blur of 9 of the N frames for the robustness table).
  Returns:
    ([V, D] unit features, {"embedded_images": number of feature extractions}).
  """
  num_videos = frames.shape[0]
  groups = np.stack(
    [frames[v][resample_indices(int(lengths[v]), set_size * n_avg)] for v in range(num_videos)]
  )  # [V, N*n_avg, H, W, 3]
  groups = groups.reshape((num_videos * n_avg, set_size) + frames.shape[2:])
  if frame_transform is not None:
    groups = np.stack([frame_transform(g) for g in groups])
  if aggregate_fn is None:
    images = groups.reshape((-1,) + frames.shape[2:])
    per_video = set_size * n_avg
  else:
    mask = np.ones(groups.shape[:2], bool)
    images = batched_apply(aggregate_fn, groups, mask, batch_size=max(1, batch_size // set_size))
    per_video = n_avg
  feats = batched_apply(embed_fn, images, batch_size=batch_size)
  ids = np.repeat(np.arange(num_videos), per_video)
  return pooled_features(feats, ids, num_videos), {"embedded_images": int(images.shape[0])}


# ------------------------------------------------------------------ MegaFace-like CMC


def cmc_with_distractors(
  probe_features: np.ndarray,
  probe_labels: np.ndarray,
  gallery_features: np.ndarray,
  gallery_labels: np.ndarray,
  distractor_features: np.ndarray,
  distractor_counts: Sequence[int],
  ranks: Sequence[int] = (1, 5, 10),
  *,
  seed: int,
) -> dict:
  """Rank-k identification as distractors are added to the gallery (MegaFace-like).

  For each count in ``distractor_counts`` (``-1`` = all), that many distractor
  features (a seeded random subset, nested: smaller sets are prefixes of larger ones)
  join the gallery with a label no probe has.

  ``_probe_ranks`` (in memory): count -> ``[P]`` each probe's rank
  (:func:`jfr.eval.metrics.probe_ranks`), for intervals over the probes' identities.
  """
  rng = np.random.default_rng(seed)
  order = rng.permutation(distractor_features.shape[0])
  out, probe_ranks = {}, {}
  base_sim = cosine_similarity_matrix(probe_features, gallery_features)
  dis_sim = cosine_similarity_matrix(probe_features, distractor_features)[:, order]
  unseen = np.min(np.concatenate([np.asarray(probe_labels), np.asarray(gallery_labels)])) - 1
  for count in distractor_counts:
    c = distractor_features.shape[0] if count == -1 else int(count)
    if not 0 <= c <= distractor_features.shape[0]:
      raise ValueError(
        f"distractor count {count} exceeds the {distractor_features.shape[0]} distractors available"
      )
    sim = np.concatenate([base_sim, dis_sim[:, :c]], axis=1)
    labels = np.concatenate([gallery_labels, np.full(c, unseen)])
    out[str(c)] = [float(v) for v in metrics.cmc(sim, probe_labels, labels, ranks)]
    probe_ranks[str(c)] = metrics.probe_ranks(sim, probe_labels, labels)
  return {"ranks": list(ranks), "cmc_by_distractors": out, "_probe_ranks": probe_ranks}
