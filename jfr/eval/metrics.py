"""Face-recognition evaluation metrics (NumPy, exact, vectorised).

Why one module over 400 lines: the 1:1 and 1:N metrics share their private input checks and
operating-point search (``_operating_points``, ``_select``), and every evaluator imports them
from here as one suite (the conventions' public API index lists them under this name).

Verification (1:1) metrics work on a flat list of comparison ``scores`` with
binary ``labels`` (1 = genuine / same identity, 0 = impostor):
``roc``, ``tar_at_far``, ``eer``, ``auc`` and the LFW/YTF protocol
``verification_accuracy_kfold``.

Identification (1:N) metrics work on a probe-by-gallery ``similarity`` matrix
``[P, G]`` with identity labels for probes ``[P]`` and gallery entries ``[G]``:
``cmc`` (closed set, rank-k rates), ``tpir_at_fpir`` (open set, the IJB-B/C
1:N figure reported in Table 3 of the FAN paper) and
``identification_tar_at_far`` (the closed-set "Identification TAR@FAR"
columns of Table I/II of the activation-patterns paper, Ferrari et al.).

Conventions shared by every function:

* Higher score = more similar. A comparison is *accepted* at threshold ``t``
  iff ``score >= t``.
* Operating points are the thresholds at every distinct observed score value,
  plus ``t = +inf`` (accept nothing). Tied scores therefore always move
  together: a tie is never split between accepted and rejected.
* "Rate at a target false rate" (TAR@FAR, TPIR@FPIR) selects the *lowest*
  operating-point threshold whose false-accept fraction is ``<= target``,
  which is the operating point with the highest true rate meeting the
  constraint. Equivalently: with ``tau`` the largest impostor score value
  such that the fraction of impostor scores at-or-above ``tau`` exceeds the
  target, report the fraction of genuine scores strictly above ``tau``.
* NaN scores mean "missing comparison": they are treated as the lowest
  possible score (``-inf``), i.e. rejected at every threshold except the
  final accept-all one, and a ``MetricWarning`` reports how many there were.
  Infinite scores are rejected with ``ValueError`` (use NaN for missing).
* Degenerate inputs never crash and never give a silent figure: they emit a
  ``MetricWarning`` and return the value documented on each function (NaN
  where the figure is undefined).
* Bad input (wrong rank, mismatched lengths, empty arrays, targets outside
  ``[0, 1]``, ranks outside ``[1, G]``) raises ``ValueError`` naming the
  argument.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


class MetricWarning(RuntimeWarning):
  """Warning for degenerate metric inputs (missing classes, NaN scores, ...)."""


def _warn(message: str) -> None:
  """Emits a ``MetricWarning`` attributed to the first caller outside here."""
  frame, level = sys._getframe(1), 2
  while frame is not None and frame.f_globals.get("__name__") == __name__:
    frame, level = frame.f_back, level + 1
  warnings.warn(message, MetricWarning, stacklevel=level)


# ----------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------


def _as_scores(scores, name: str, ndim: int = 1) -> np.ndarray:
  """Returns float64 scores of rank ``ndim`` with NaN replaced by ``-inf``."""
  try:
    x = np.asarray(scores, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{name} must be a numeric array: {e}") from e
  if x.ndim != ndim or x.size == 0:
    raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {x.shape}")
  if np.isinf(x).any():
    raise ValueError(
      f"{name} must be finite (use NaN for a missing score), "
      f"found {int(np.isinf(x).sum())} infinite values"
    )
  nan = np.isnan(x)
  if nan.any():
    _warn(
      f"{name}: {int(nan.sum())} of {x.size} scores are NaN; they are "
      "treated as -inf (never accepted at a finite threshold)"
    )
    x = np.where(nan, -np.inf, x)
  return x


def _as_binary_labels(labels, name: str, length: int) -> np.ndarray:
  y = np.asarray(labels)
  if y.ndim != 1 or y.shape[0] != length:
    raise ValueError(
      f"{name} must be a 1-D array of length {length} (one per score), got shape {y.shape}"
    )
  if y.dtype == np.bool_:
    return y
  if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
    raise ValueError(f"{name} must be bool or hold only 0/1 values")
  return y.astype(bool)


def _as_targets(targets, name: str) -> np.ndarray:
  try:
    t = np.atleast_1d(np.asarray(targets, dtype=np.float64))
  except (TypeError, ValueError) as e:
    raise ValueError(f"{name} must be numeric rates in [0, 1]: {e}") from e
  if t.ndim != 1 or t.size == 0:
    raise ValueError(f"{name} must be a scalar or non-empty 1-D array, got shape {t.shape}")
  if not (np.isfinite(t).all() and (t >= 0).all() and (t <= 1).all()):
    raise ValueError(f"{name} must lie in [0, 1], got {t}")
  return t


def _as_identity_labels(labels, name: str, length: int) -> np.ndarray:
  y = np.asarray(labels)
  if y.ndim != 1 or y.shape[0] != length:
    raise ValueError(f"{name} must be a 1-D array of length {length}, got shape {y.shape}")
  return y


def _mated_matrix(similarity, probe_labels, gallery_labels):
  """Validates identification inputs; returns (sim [P,G], mated [P,G])."""
  sim = _as_scores(similarity, "similarity", ndim=2)
  p, g = sim.shape
  probes = _as_identity_labels(probe_labels, "probe_labels", p)
  gallery = _as_identity_labels(gallery_labels, "gallery_labels", g)
  kinds = {probes.dtype.kind, gallery.dtype.kind}
  if kinds & set("US") and kinds & set("biuf"):
    raise ValueError(
      "probe_labels and gallery_labels must both be "
      f"numeric or both strings, got dtypes {probes.dtype} "
      f"and {gallery.dtype}"
    )
  return sim, np.asarray(probes[:, None] == gallery[None, :], dtype=bool)


def _as_ranks(ranks, name: str, gallery_size: int) -> np.ndarray:
  r = np.atleast_1d(np.asarray(ranks))
  if r.ndim != 1 or r.size == 0 or not np.issubdtype(r.dtype, np.number):
    raise ValueError(f"{name} must be a scalar or non-empty 1-D array of integers, got {ranks!r}")
  if not (np.all(r == np.round(r)) and r.min() >= 1 and r.max() <= gallery_size):
    raise ValueError(f"{name} must be integers in [1, {gallery_size}] (the gallery size), got {r}")
  return r.astype(np.int64)


# ----------------------------------------------------------------------------
# Verification (1:1)
# ----------------------------------------------------------------------------


def _operating_points(scores: np.ndarray, labels: np.ndarray):
  """Cumulative accept counts at every distinct threshold, highest first.

  Returns ``(thresholds, tp, fp)`` of length ``U + 1`` (``U`` distinct
  scores): index 0 is ``t = +inf`` with ``tp = fp = 0``; index ``i`` accepts
  every score ``>= thresholds[i]``.
  """
  order = np.argsort(-scores, kind="stable")
  s, y = scores[order], labels[order]
  # Last position of each run of equal scores (ties form one step).
  last = np.flatnonzero(np.append(s[1:] != s[:-1], True))
  tp = np.cumsum(y)[last]
  fp = (last + 1) - tp
  thresholds = np.concatenate([[np.inf], s[last]])
  return thresholds, np.concatenate([[0], tp]), np.concatenate([[0], fp])


def _select(false_counts: np.ndarray, n_false: int, targets: np.ndarray, what: str) -> np.ndarray:
  """Index of the lowest threshold whose false-accept fraction <= target.

  ``false_counts`` is non-decreasing (thresholds high -> low) and starts at 0,
  so a valid index always exists. Targets below the resolution ``1/n_false``
  get the zero-false-accept operating point, with a warning.
  """
  rates = false_counts / n_false
  low = targets < 1.0 / n_false
  if low.any():
    _warn(
      f"target {what} {targets[low]} below the resolution 1/{n_false} "
      f"of the {n_false} available non-mated/impostor samples; "
      "reporting the operating point with zero false accepts"
    )
  return np.searchsorted(rates, targets, side="right") - 1


def _tar_at_far(s: np.ndarray, y: np.ndarray, f: np.ndarray, caller: str) -> np.ndarray:
  """TAR at target FARs ``f`` for validated scores ``s`` and labels ``y``."""
  n_pos, n_neg = int(y.sum()), int((~y).sum())
  if n_pos == 0 or n_neg == 0:
    _warn(
      f"{caller}: {n_pos} genuine and {n_neg} impostor comparisons; "
      "TAR@FAR is undefined, returning NaN"
    )
    return np.full(f.shape, np.nan)
  _, tp, fp = _operating_points(s, y)
  return tp[_select(fp, n_neg, f, "FAR")] / n_pos


def roc(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Exact ROC curve.

  Args:
    scores: ``[N]`` comparison scores, higher = more similar (NaN = missing,
      treated as ``-inf``).
    labels: ``[N]`` bool or 0/1, 1 = genuine (same identity).

  Returns:
    ``(fpr, tpr, thresholds)``, each ``[U + 1]`` for ``U`` distinct scores,
    ordered by decreasing threshold. Point 0 is ``(0, 0)`` at threshold
    ``+inf``; point ``i`` accepts every score ``>= thresholds[i]``, so
    ``fpr[i] = #{impostor >= t_i} / #impostor`` and
    ``tpr[i] = #{genuine >= t_i} / #genuine``. The last point is ``(1, 1)``
    (its threshold is ``-inf`` when NaN scores are present).
    Tied scores make one step (possibly diagonal). With no genuine
    (impostor) scores ``tpr`` (``fpr``) is all NaN, with a warning.
  """
  s = _as_scores(scores, "scores")
  y = _as_binary_labels(labels, "labels", s.shape[0])
  thresholds, tp, fp = _operating_points(s, y)
  n_pos, n_neg = int(y.sum()), int((~y).sum())
  if n_pos == 0:
    _warn("roc: labels hold no genuine comparisons; tpr is NaN")
  if n_neg == 0:
    _warn("roc: labels hold no impostor comparisons; fpr is NaN")
  fpr = fp / n_neg if n_neg else np.full(fp.shape, np.nan)
  tpr = tp / n_pos if n_pos else np.full(tp.shape, np.nan)
  return fpr, tpr, thresholds


def tar_at_far(scores, labels, fars) -> np.ndarray:
  """True accept rate at target false accept rates (verification, 1:1).

  For each target FAR ``f`` the threshold ``t`` is the lowest distinct-score
  threshold with ``FAR(t) = #{impostor >= t} / #impostor <= f`` (ties never
  split), and the result is ``TAR(t) = #{genuine >= t} / #genuine``. This is
  the standard convention: with ``tau`` the largest impostor score at which
  the fraction of impostors at-or-above ``tau`` would exceed ``f``, the
  result is the fraction of genuine scores strictly above ``tau``.

  Args:
    scores: ``[N]`` comparison scores, higher = more similar.
    labels: ``[N]`` bool or 0/1, 1 = genuine.
    fars: scalar or ``[K]`` target false accept rates in ``[0, 1]``.

  Returns:
    ``[K]`` float64 TARs. Degenerate cases (with a ``MetricWarning``): no
    genuine or no impostor scores -> NaN; a target below ``1/#impostor``
    (including 0) -> the TAR at the zero-false-accept operating point
    (threshold just above the largest impostor score).
  """
  s = _as_scores(scores, "scores")
  y = _as_binary_labels(labels, "labels", s.shape[0])
  return _tar_at_far(s, y, _as_targets(fars, "fars"), "tar_at_far")


def eer(scores, labels) -> float:
  """Equal error rate.

  With ``FNR = 1 - TPR`` and ``FPR`` at the exact ROC operating points (see
  ``roc``), ``FNR - FPR`` falls monotonically from 1 (threshold ``+inf``) to
  -1 (accept all). The EER is the common value of FPR and FNR where the
  piecewise-linear ROC crosses the line ``FNR = FPR``: at the first
  operating point with ``FNR <= FPR``, interpolated linearly between it and
  the previous point when the two are not equal there.

  Args:
    scores: ``[N]`` comparison scores, higher = more similar.
    labels: ``[N]`` bool or 0/1, 1 = genuine.

  Returns:
    The EER in ``[0, 1]``; NaN (with a warning) without genuine or without
    impostor scores. Perfect separation gives 0, fully reversed scores 1.
  """
  s = _as_scores(scores, "scores")
  y = _as_binary_labels(labels, "labels", s.shape[0])
  n_pos, n_neg = int(y.sum()), int((~y).sum())
  if n_pos == 0 or n_neg == 0:
    _warn(f"eer: {n_pos} genuine and {n_neg} impostor scores; EER is undefined, returning NaN")
    return float("nan")
  _, tp, fp = _operating_points(s, y)
  fpr, fnr = fp / n_neg, 1.0 - tp / n_pos
  gap = fnr - fpr
  # First point with FNR <= FPR: exists (the last point has gap -1) and is
  # not point 0 (gap 1), so the previous point has gap > 0.
  i = int(np.argmax(gap <= 0))
  w = gap[i - 1] / (gap[i - 1] - gap[i])  # in (0, 1]; 1 when gap[i] == 0.
  return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def auc(x, y) -> float:
  """Trapezoidal area under the curve ``y(x)``.

  Args:
    x: ``[M]`` (``M >= 2``) monotone (non-decreasing or non-increasing)
      abscissae, e.g. ``fpr`` from ``roc``.
    y: ``[M]`` ordinates.

  Returns:
    ``sum_i (x[i+1] - x[i]) (y[i] + y[i+1]) / 2``, sign-corrected so that a
    non-increasing ``x`` gives a non-negative area for non-negative ``y``.
    NaN (with a warning) if ``x`` or ``y`` holds NaN (e.g. a ROC without
    one class). The AUC of an exact ROC equals the Mann-Whitney statistic
    ``P(genuine > impostor) + P(genuine = impostor) / 2``.
  """
  xs = np.asarray(x, dtype=np.float64)
  ys = np.asarray(y, dtype=np.float64)
  if xs.ndim != 1 or xs.shape[0] < 2:
    raise ValueError(f"x must be a 1-D array of length >= 2, got shape {xs.shape}")
  if ys.shape != xs.shape:
    raise ValueError(f"y must have the shape of x {xs.shape}, got {ys.shape}")
  if np.isnan(xs).any() or np.isnan(ys).any():
    _warn("auc: x or y holds NaN; returning NaN")
    return float("nan")
  dx = np.diff(xs)
  if (dx < 0).any() and (dx > 0).any():
    raise ValueError("x must be monotone (non-decreasing or non-increasing)")
  area = float(np.sum(dx * (ys[1:] + ys[:-1]) / 2.0))
  return -area if (dx < 0).any() else area


def _fold_assignment(n: int, folds: int, fold_ids) -> np.ndarray:
  if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)):
    raise ValueError(f"folds must be an int, got {folds!r}")
  if not 2 <= folds <= n:
    raise ValueError(f"folds must be in [2, {n}] (number of pairs), got {folds}")
  if fold_ids is None:
    return np.repeat(np.arange(folds), [len(b) for b in np.array_split(np.arange(n), folds)])
  ids = np.asarray(fold_ids)
  if ids.shape != (n,):
    raise ValueError(f"fold_ids must have shape ({n},) (one per pair), got {ids.shape}")
  distinct, inverse = np.unique(ids, return_inverse=True)
  if distinct.size != folds:
    raise ValueError(f"fold_ids holds {distinct.size} distinct folds but folds={folds}")
  return inverse


def _best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
  """Training-fold threshold maximising accuracy (see k-fold docstring)."""
  missing = np.isneginf(scores)  # NaN scores: rejected at every threshold.
  s, y = scores[~missing], labels[~missing]
  unique, inverse = np.unique(s, return_inverse=True)
  if unique.size == 0:  # Only missing scores: every threshold rejects all.
    return np.inf
  pos = np.bincount(inverse, weights=y, minlength=unique.size)
  neg = np.bincount(inverse, weights=~y, minlength=unique.size)
  # Candidate j accepts exactly the scores >= unique[j] (j = U: none).
  pos_at_or_above = np.concatenate([np.cumsum(pos[::-1])[::-1], [0.0]])
  neg_below = np.concatenate([[0.0], np.cumsum(neg)])
  correct = pos_at_or_above + neg_below
  candidates = np.concatenate([[-np.inf], 0.5 * unique[:-1] + 0.5 * unique[1:], [np.inf]])
  return float(candidates[int(np.argmax(correct))])


def verification_accuracy_kfold(
  scores, labels, folds: int = 10, fold_ids=None
) -> tuple[float, float]:
  """k-fold verification accuracy (LFW / YTF "unrestricted" protocol).

  For each fold ``k``: on the other folds, choose the threshold maximising
  accuracy among the candidates ``-inf`` (accept all), the midpoints of
  consecutive sorted unique training scores, and ``+inf`` (reject all);
  ties in accuracy go to the lowest such threshold. A pair is predicted
  "same" iff ``score >= threshold`` (NaN scores: never). Accuracy is then
  measured on fold ``k``.

  Args:
    scores: ``[N]`` pair scores, higher = more similar.
    labels: ``[N]`` bool or 0/1, 1 = same identity.
    folds: number of folds. Without ``fold_ids`` the folds are contiguous
      blocks in the given pair order (``np.array_split`` sizes): the LFW
      ``pairs.txt`` and YTF ``splits.txt`` lists are already fold-ordered
      (10 blocks of 600 / 500 pairs).
    fold_ids: optional ``[N]`` explicit fold id per pair; must hold exactly
      ``folds`` distinct values.

  Returns:
    ``(mean, std)`` of the per-fold accuracies (population std, ddof = 0,
    as in the LFW evaluation code).
  """
  accuracies = verification_fold_accuracies(scores, labels, folds, fold_ids)
  return float(accuracies.mean()), float(accuracies.std())


def verification_fold_accuracies(scores, labels, folds: int = 10, fold_ids=None) -> np.ndarray:
  """``[folds]`` the per-fold accuracies of :func:`verification_accuracy_kfold` (same
  arguments): the units its mean averages, and the ones a bootstrap over folds resamples."""
  s = _as_scores(scores, "scores")
  y = _as_binary_labels(labels, "labels", s.shape[0])
  fold = _fold_assignment(s.shape[0], folds, fold_ids)
  accuracies = np.empty(folds)
  for k in range(folds):
    test = fold == k
    t = _best_threshold(s[~test], y[~test])
    predicted = (s[test] >= t) & ~np.isneginf(s[test])
    accuracies[k] = np.mean(predicted == y[test])
  return accuracies


# ----------------------------------------------------------------------------
# Identification (1:N)
# ----------------------------------------------------------------------------


def _mated_ranks(sim: np.ndarray, mated: np.ndarray):
  """Best mated score and its pessimistic rank for every probe ``[P]``.

  Rank = 1 + number of non-mated gallery entries scoring ``>=`` the best
  mated score. Only meaningful for probes with at least one mated entry.
  """
  best = np.where(mated, sim, -np.inf).max(axis=1)
  ahead = (~mated & (sim >= best[:, None])).sum(axis=1)
  return best, 1 + ahead


def cmc(similarity, probe_labels, gallery_labels, ranks) -> np.ndarray:
  """Closed-set cumulative match characteristic (rank-k identification rate).

  The rank of a probe is the position of its first mated entry in the
  gallery list sorted by decreasing similarity, i.e. 1 + the number of
  non-mated gallery entries scoring at least as high as the best mated
  entry. Several gallery entries per identity are allowed (each other
  identity's entries count separately); the usual protocols have one
  template per identity, where this is the rank among identities. Ties are
  counted pessimistically: a non-mated entry tied with the best mated score
  is ranked ahead of it.

  Args:
    similarity: ``[P, G]`` probe-by-gallery scores, higher = more similar.
    probe_labels: ``[P]`` probe identities.
    gallery_labels: ``[G]`` gallery entry identities.
    ranks: scalar or ``[K]`` integers in ``[1, G]``.

  Returns:
    ``[K]`` fraction of mated probes whose rank is ``<= ranks[k]``. Probes
    without any mated gallery entry are excluded, with a warning; if no
    probe is mated the result is NaN, with a warning.
  """
  sim, mated = _mated_matrix(similarity, probe_labels, gallery_labels)
  r = _as_ranks(ranks, "ranks", sim.shape[1])
  has_mate = mated.any(axis=1)
  if not has_mate.any():
    _warn("cmc: no probe has a mated gallery entry; returning NaN")
    return np.full(r.shape, np.nan)
  if not has_mate.all():
    _warn(
      f"cmc: {int((~has_mate).sum())} of {has_mate.size} probes have "
      "no mated gallery entry and are excluded (closed-set metric)"
    )
  _, probe_rank = _mated_ranks(sim[has_mate], mated[has_mate])
  return np.mean(probe_rank[:, None] <= r[None, :], axis=0)


def probe_ranks(similarity, probe_labels, gallery_labels) -> np.ndarray:
  """``[P]`` each probe's rank as in :func:`cmc` (pessimistic ties), 0 for a probe without a
  mated gallery entry: the per-probe units whose mean ``rank <= k`` over the mated probes
  is the CMC (for a bootstrap over probes or identities)."""
  sim, mated = _mated_matrix(similarity, probe_labels, gallery_labels)
  has_mate = mated.any(axis=1)
  out = np.zeros(sim.shape[0], np.int64)
  if has_mate.any():
    out[has_mate] = _mated_ranks(sim[has_mate], mated[has_mate])[1]
  return out


def tpir_at_fpir(similarity, probe_labels, gallery_labels, fpirs, rank: int = 1) -> np.ndarray:
  """Open-set true positive identification rate at target FPIRs (IJB 1:N).

  Probes whose identity has no gallery entry are non-mated searches; the
  others are mated. For a threshold ``t``:
  ``FPIR(t) = #{non-mated probes with max_g similarity >= t} / #non-mated``
  and ``TPIR(t) = #{mated probes whose rank (pessimistic ties, see cmc) is
  <= rank and whose best mated score >= t} / #mated``. For each target the
  threshold is the lowest operating point (distinct non-mated maxima and
  best mated scores, plus ``+inf``) with ``FPIR(t) <= target``; ties are
  never split.

  Args:
    similarity: ``[P, G]`` probe-by-gallery scores, higher = more similar.
    probe_labels: ``[P]`` probe identities.
    gallery_labels: ``[G]`` gallery entry identities.
    fpirs: scalar or ``[K]`` target FPIRs in ``[0, 1]``.
    rank: the rank a mated probe's mate must reach, in ``[1, G]``.

  Returns:
    ``[K]`` TPIRs. With no mated or no non-mated probe: NaN (warning). A
    target below ``1/#non-mated`` (including 0) gives the TPIR at the
    zero-false-positive operating point (warning).
  """
  sim, mated = _mated_matrix(similarity, probe_labels, gallery_labels)
  f = _as_targets(fpirs, "fpirs")
  if np.ndim(rank) != 0:
    raise ValueError(f"rank must be a scalar integer, got {rank!r}")
  max_rank = int(_as_ranks(rank, "rank", sim.shape[1])[0])
  has_mate = mated.any(axis=1)
  n_mated, n_nonmated = int(has_mate.sum()), int((~has_mate).sum())
  if n_mated == 0 or n_nonmated == 0:
    _warn(
      f"tpir_at_fpir: {n_mated} mated and {n_nonmated} non-mated "
      "probes; TPIR@FPIR is undefined, returning NaN"
    )
    return np.full(f.shape, np.nan)
  nonmated_max = np.sort(sim[~has_mate].max(axis=1))
  best, probe_rank = _mated_ranks(sim[has_mate], mated[has_mate])
  hit_scores = np.sort(best[probe_rank <= max_rank])
  thresholds = np.concatenate([[np.inf], np.unique(np.concatenate([nonmated_max, best]))[::-1]])
  false_pos = n_nonmated - np.searchsorted(nonmated_max, thresholds, "left")
  true_pos = hit_scores.size - np.searchsorted(hit_scores, thresholds, "left")
  return true_pos[_select(false_pos, n_nonmated, f, "FPIR")] / n_mated


def identification_tar_at_far(similarity, probe_labels, gallery_labels, fars) -> np.ndarray:
  """Closed-set "Identification TAR@FAR" (Table I/II of Ferrari et al.).

  The paper (Sec. IV) reports for the 1:N protocol "TAR@FAR = 1e-4/1e-5,
  which is similar to TPIR@FPIR but in a closed-set scenario" without a
  formula. Implemented reading (the common IJB-A one): every probe-gallery
  comparison is a trial, genuine when the identities match and impostor
  otherwise, and the result is ``tar_at_far`` over the ``P * G`` trials.
  Probes without a mated gallery entry contribute impostor trials only.

  Args:
    similarity: ``[P, G]`` probe-by-gallery scores, higher = more similar.
    probe_labels: ``[P]`` probe identities.
    gallery_labels: ``[G]`` gallery entry identities.
    fars: scalar or ``[K]`` target FARs in ``[0, 1]``.

  Returns:
    ``[K]`` TARs, with the degenerate cases of ``tar_at_far``.
  """
  sim, mated = _mated_matrix(similarity, probe_labels, gallery_labels)
  return _tar_at_far(
    sim.ravel(), mated.ravel(), _as_targets(fars, "fars"), "identification_tar_at_far"
  )
