"""Bootstrap intervals of EER, ROC AUC and TAR@FAR: weighted ROC replicates of one score list.

A resample of groups (folds, identities) draws every group ``c_g`` times, so every scored pair
enters the resample ``w_i`` times, with ``w_i`` a function of its group(s)' draw counts:

* pairs in folds (LFW/YTF-like k-fold tables): ``w_i = c_fold(i)``
  (:func:`fold_weights`);
* probe x gallery pairs with the galleries fixed (1:1 over templates): ``w_i =
  c_subject(probe i)`` (:func:`item_weights`);
* every pair of distinct items, both ends resampled (all pairs of videos): ``w_i =
  c_id(a_i) c_id(b_i)`` (:func:`pair_weights`): a drawn identity contributes each of its items
  once per draw, and the pairs of distinct items of the resample are counted, leaving out an
  item paired with its own copy (an identity drawn ``c`` times gives ``c^2`` copies of each of
  its genuine pairs: ``c`` within copies and ``c (c - 1)`` across them).

The statistic of a resample is the one :mod:`jfr.eval.metrics` computes on the repeated score
list (``np.repeat(scores, w)``), here from weighted counts at the operating points of the full
list (sorted once): ``TP(t) = sum_i w_i [y_i] [s_i >= t]``, ``FP(t)`` likewise, so each
resample costs ``O(n)``. Operating points whose tie run has zero weight repeat the previous
point and change none of the three figures, so the replicates equal
:func:`jfr.eval.metrics.eer`, the trapezoidal AUC of :func:`jfr.eval.metrics.roc` and
:func:`jfr.eval.metrics.tar_at_far` of the repeated list (up to float summation order in the
AUC). A resample without genuine or without impostor pairs gives NaN, which the percentile
interval leaves out (:func:`jfr.report.intervals.percentile_interval`).

Point values are never recomputed here: the caller's figures stay what ``metrics`` gave, and
:func:`add_roc_ci95` only adds ``eer_ci95``, ``auc_ci95`` and, inside ``tar_at_far``,
``'<far>_ci95'`` next to each ``'<far>'`` (the key the README generator's cells read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jfr.report import intervals

# Elements of one [r, n] weight block (bounds memory for long score lists).
_BLOCK = 2_000_000


class Resampled(NamedTuple):
  """How pairs weigh in a resample: ``num_groups`` groups; pair i weighs
  ``counts[group_a[i]]`` (times ``counts[group_b[i]]`` when ``group_b`` is given)."""

  num_groups: int
  group_a: np.ndarray
  group_b: np.ndarray | None = None


class _Segments(NamedTuple):
  """The sorted score list cut into label-pure segments (module docstring)."""

  order: np.ndarray  # [n] descending stable order of the scores
  starts: np.ndarray  # [S] first sorted position of each segment
  genuine: np.ndarray  # [S] bool, the segment's label
  keep: np.ndarray  # [S] bool, the segment ends at an operating point (a tie run's end)


def _segments(scores: np.ndarray, same: np.ndarray) -> _Segments:
  """Sorts once; consecutive pairs of one label form a segment, and a tie run of both labels
  is cut off from its neighbours. Operating points (tie runs' ends, as :mod:`jfr.eval.metrics`)
  inside a one-label segment lie on one horizontal (impostors) or vertical (genuine) stretch of
  the ROC, so dropping them changes neither the trapezoidal AUC, nor where the ROC crosses
  FNR = FPR, nor the TPR at the last point with FPR <= f; segment ends inside a tie run of both
  labels are not operating points and are dropped."""
  s = np.asarray(scores, np.float64).reshape(-1)
  y = np.asarray(same).reshape(-1).astype(bool)
  if s.size == 0 or y.shape != s.shape:
    raise ValueError(f"same: expected {s.shape} labels like scores (non-empty), got {y.shape}")
  s = np.where(np.isnan(s), -np.inf, s)  # NaN = missing = never accepted (metrics)
  order = np.argsort(-s, kind="stable")
  ss, ys = s[order], y[order]
  run_start = np.append(True, ss[1:] != ss[:-1])
  run = np.cumsum(run_start) - 1
  mixed = (np.bincount(run, ys) % np.bincount(run) != 0)[run]  # in a tie run of both labels
  # Segments also start where a mixed tie run starts or ends, so every tie run of both labels
  # is cut off from its neighbours and only its end counts.
  border = run_start & (mixed | np.append(False, mixed[:-1]))
  starts = np.flatnonzero(np.append(True, ys[1:] != ys[:-1]) | border)
  ends = np.append(starts[1:] - 1, s.size - 1)
  tie_end = np.append(run_start[1:], True)
  return _Segments(order, starts, ys[starts], tie_end[ends])


def _replicates_sorted(seg: _Segments, weights: np.ndarray, fars: np.ndarray) -> dict:
  """The three figures of each row of ``weights [r, n]`` (in the sorted order of ``seg``)."""
  totals = np.add.reduceat(weights.astype(np.float64), seg.starts, axis=1)  # [r, S]
  zeros = np.zeros((totals.shape[0], 1))
  tp = np.concatenate([zeros, np.cumsum(totals * seg.genuine, axis=1)[:, seg.keep]], axis=1)
  fp = np.concatenate([zeros, np.cumsum(totals * ~seg.genuine, axis=1)[:, seg.keep]], axis=1)
  n_pos, n_neg = tp[:, -1:], fp[:, -1:]
  valid = (n_pos[:, 0] > 0) & (n_neg[:, 0] > 0)
  with np.errstate(invalid="ignore", divide="ignore"):
    tpr, fpr = tp / n_pos, fp / n_neg
  auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
  # EER: the first point with FNR <= FPR, interpolated with the one before (metrics.eer).
  gap = (1.0 - tpr) - fpr
  rows = np.arange(gap.shape[0])
  i = np.maximum(np.argmax(gap <= 0, axis=1), 1)  # point 0 has gap 1 where valid
  g0, g1 = gap[rows, i - 1], gap[rows, i]
  with np.errstate(invalid="ignore", divide="ignore"):
    eer = fpr[rows, i - 1] + g0 / (g0 - g1) * (fpr[rows, i] - fpr[rows, i - 1])
  # TAR@FAR: the TPR at the last point with FPR <= f (the lowest such threshold; FPR rises).
  idx = np.sum(fpr[:, None, :] <= fars[None, :, None], axis=2) - 1  # [r, K]
  tar = np.take_along_axis(tpr, np.maximum(idx, 0), axis=1)
  nan = np.where(valid, 0.0, np.nan)
  return {"eer": eer + nan, "auc": auc + nan, "tar_at_far": tar + nan[:, None]}


def roc_replicates(
  scores: np.ndarray, same: np.ndarray, weights: np.ndarray, fars: Sequence[float]
) -> dict[str, np.ndarray]:
  """EER, AUC and TAR@FAR of each weighting of one scored pair list.

  Args:
    scores: ``[n]`` similarities (higher = same).
    same: ``[n]`` bool, True for genuine pairs.
    weights: ``[R, n]`` non-negative integer weights (how often each pair enters each
      resample).
    fars: ``[K]`` target false accept rates.

  Returns:
    ``{'eer': [R], 'auc': [R], 'tar_at_far': [R, K]}``, equal to :mod:`jfr.eval.metrics` on
    ``np.repeat(scores, w)`` (NaN for a weighting without genuine or without impostor weight).
  """
  seg = _segments(scores, same)
  w = np.asarray(weights)
  if w.ndim != 2 or w.shape[1] != seg.order.size:
    raise ValueError(f"weights: expected [R, {seg.order.size}], got shape {w.shape}")
  if (w < 0).any():
    raise ValueError("weights: expected non-negative weights")
  return _replicates_sorted(seg, w[:, seg.order], np.asarray(fars, np.float64).reshape(-1))


def _group_numbers(groups: np.ndarray) -> np.ndarray:
  _, inverse = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
  return inverse.reshape(-1)


def fold_weights(num_items: int, folds: int) -> Resampled:
  """``n`` pairs in ``folds`` contiguous folds (the ``np.array_split`` blocks of
  :func:`jfr.eval.metrics.verification_fold_accuracies`); a pair weighs its fold's count."""
  sizes = [len(b) for b in np.array_split(np.arange(num_items), folds)]
  return Resampled(int(folds), np.repeat(np.arange(folds), sizes))


def item_weights(groups: np.ndarray) -> Resampled:
  """Each pair weighs its one group's count (e.g. the probe template's subject; the gallery
  side stays fixed). ``groups``: ``[n]`` labels."""
  inverse = _group_numbers(groups)
  return Resampled(int(inverse.max(initial=-1)) + 1, inverse)


def pair_weights(groups_a: np.ndarray, groups_b: np.ndarray) -> Resampled:
  """A pair of distinct items weighs the product of its two groups' counts (both ends
  resampled; module docstring). ``groups_a``, ``groups_b``: ``[n]`` labels."""
  a, b = np.asarray(groups_a).reshape(-1), np.asarray(groups_b).reshape(-1)
  if a.shape != b.shape:
    raise ValueError(f"groups_b: expected shape {a.shape} like groups_a, got {b.shape}")
  inverse = _group_numbers(np.concatenate([a, b]))
  return Resampled(int(inverse.max(initial=-1)) + 1, inverse[: a.size], inverse[a.size :])


def roc_intervals(
  scores: np.ndarray,
  same: np.ndarray,
  fars: Sequence[float],
  resampled: Resampled,
  *,
  num_resamples: int = intervals.DEFAULT_RESAMPLES,
  seed: int = 0,
  level: float = 0.95,
) -> dict:
  """``{'eer': [lo, hi], 'auc': [lo, hi], 'tar_at_far': {'<far>': [lo, hi]}}``: percentile
  intervals of the three figures over ``num_resamples`` resamples of the groups.

  Args:
    scores, same: ``[n]`` the scored pairs.
    fars: the TAR@FAR targets (keys formatted ``f'{far:g}'`` as in
      :func:`jfr.eval.protocols.roc_summary`).
    resampled: :func:`fold_weights`, :func:`item_weights` or :func:`pair_weights` of the pairs.
    num_resamples, seed, level: as :func:`jfr.report.intervals.bootstrap` (the same seed and
      number of groups draw the same resamples as ``intervals.mean_interval`` over them).
  """
  seg = _segments(scores, same)
  n = seg.order.size
  if resampled.group_a.shape != (n,) or (
    resampled.group_b is not None and resampled.group_b.shape != (n,)
  ):
    raise ValueError(f"resampled: expected group numbers of shape ({n},) (one per pair)")
  if resampled.num_groups < 2:
    raise ValueError(f"resampled: expected at least 2 groups, got {resampled.num_groups}")
  counts = intervals.resample_counts(resampled.num_groups, num_resamples, seed)
  ga = resampled.group_a[seg.order]
  gb = None if resampled.group_b is None else resampled.group_b[seg.order]
  fars = [float(f) for f in fars]
  far_array = np.asarray(fars, np.float64)
  step = max(1, _BLOCK // n)
  parts = []
  for r in range(0, num_resamples, step):
    c = counts[r : r + step]
    weights = (
      np.take(c, ga, axis=1) if gb is None else np.take(c, ga, axis=1) * np.take(c, gb, axis=1)
    )
    parts.append(_replicates_sorted(seg, weights, far_array))
  reps = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  ci = lambda x: list(intervals.percentile_interval(x, level))  # noqa: E731
  return {
    "eer": ci(reps["eer"]),
    "auc": ci(reps["auc"]),
    "tar_at_far": {f"{f:g}": ci(reps["tar_at_far"][:, k]) for k, f in enumerate(fars)},
  }


def add_roc_ci95(
  summary: dict,
  scores: np.ndarray,
  same: np.ndarray,
  fars: Sequence[float],
  resampled: Resampled,
  **kwargs,
) -> dict:
  """Adds the intervals of :func:`roc_intervals` to a :func:`jfr.eval.protocols.roc_summary`
  dict in place (``eer_ci95``, ``auc_ci95``, ``tar_at_far['<far>_ci95']``); returns it.
  Nothing is added with fewer than two groups."""
  if resampled.num_groups < 2:
    return summary
  ci = roc_intervals(scores, same, fars, resampled, **kwargs)
  summary["eer_ci95"], summary["auc_ci95"] = ci["eer"], ci["auc"]
  for far, interval in ci["tar_at_far"].items():
    summary["tar_at_far"][f"{far}_ci95"] = interval
  return summary
