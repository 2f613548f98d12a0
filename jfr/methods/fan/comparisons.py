"""The FAN paper's comparisons with their paired 95 % intervals (contract of
:mod:`jfr.report.intervals`), built from the tables of :mod:`jfr.eval.video_pairs` and
:mod:`jfr.eval.mixed_media`.

* YTF-like (Table 1): every aggregator row vs ``avg`` per ``(N, n_avg)`` column and on the
  mean over columns; ``full`` vs ``no_adv`` (L_adv helps) and ``full`` (L_rec^cen) vs
  ``rec_avg`` (L_rec^avg) on the mean. Paired over the protocol's folds: the per-fold
  accuracies (``fold_accuracies``) of both rows come from the same pairs and folds, and the
  folds are resampled.
* Motion blur (Table 4): every aggregator row vs ``avg`` at each kernel size (folds).
* IJB-like 1:N (Table 3): every aggregator row vs ``avg`` on rank-k and TPIR@FPIR, paired
  over the probe templates' subjects (the replicates of
  :func:`jfr.eval.mixed_media.identification_replicates`).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jfr.report import intervals

_R = intervals.DEFAULT_RESAMPLES


def _folds(cell: Mapping) -> np.ndarray:
  return np.asarray(cell["fold_accuracies"], np.float64)


def _mean_folds(row: Mapping, columns: list[str]) -> np.ndarray:
  """Per fold, the mean accuracy over ``columns`` (the table's 'mean' column)."""
  return np.mean([_folds(row[c]) for c in columns], axis=0)


def _fold_comparison(claim: str, metric: str, a: str, b: str, fa, fb, seed: int) -> dict:
  paired = intervals.paired_mean_difference(fa, fb, seed=seed)
  return intervals.comparison(
    paper="fan",
    claim=claim,
    metric=metric,
    a=a,
    b=b,
    paired=paired,
    resampled="folds",
    num_resamples=_R,
    scale=100.0,
  )


def video_comparisons(name: str, table: Mapping, blur: bool, seed: int = 0) -> dict:
  """Comparisons of one ``video_pairs`` table (``name``: its ``config.evals`` key)."""
  out = {}
  rows = [r for r in table if r != "avg" and not r.startswith("_")]
  columns = list(table["avg"])
  if any(len(table["avg"][c].get("fold_accuracies", ())) < 2 for c in columns):
    return {}  # one fold (or results without per-fold accuracies): nothing to resample
  what = "motion-blurred " if blur else ""
  for row in rows:
    for col in columns:
      label = f"kernel {col} px" if blur else col
      out[f"{name}/{row}_vs_avg/{col}"] = _fold_comparison(
        f"the aggregated face ({row}) beats feature averaging on {what}video pairs ({label})",
        "YTF-like accuracy %",
        row,
        "avg",
        _folds(table[row][col]),
        _folds(table["avg"][col]),
        seed,
      )
    if not blur and len(columns) > 1:
      out[f"{name}/{row}_vs_avg/mean"] = _fold_comparison(
        f"the aggregated face ({row}) beats feature averaging (mean over (N, n_avg))",
        "YTF-like accuracy %, mean over columns",
        row,
        "avg",
        _mean_folds(table[row], columns),
        _mean_folds(table["avg"], columns),
        seed,
      )
  if not blur and "full" in table:
    for other, claim in (
      ("no_adv", "the adversarial loss L_adv improves the aggregator (full vs no_adv)"),
      ("rec_avg", "L_rec^cen (full) beats L_rec^avg (rec_avg)"),
    ):
      if other in table:
        out[f"{name}/full_vs_{other}/mean"] = _fold_comparison(
          claim,
          "YTF-like accuracy %, mean over columns",
          "full",
          other,
          _mean_folds(table["full"], columns),
          _mean_folds(table[other], columns),
          seed,
        )
  return out


def identification_comparisons(name: str, table: Mapping) -> dict:
  """Comparisons of one ``mixed_media`` table: aggregator rows vs ``avg`` (module docstring)."""
  boot = table.get("_bootstrap", {})
  if "avg" not in boot:
    return {}
  names, value_b, reps_b = boot["avg"]
  out = {}
  for row, (_, value_a, reps_a) in boot.items():
    if row.startswith("avg"):
      continue
    for i, metric in enumerate(names):
      paired = intervals.paired_from(value_a[i], reps_a[:, i], value_b[i], reps_b[:, i])
      out[f"{name}/{row}_vs_avg/{metric}"] = intervals.comparison(
        paper="fan",
        claim=f"the aggregated face ({row}) beats feature averaging on IJB-like 1:N mixed media",
        metric=f"{metric.replace('/', '@FPIR=').replace('tpir_at_fpir', 'TPIR')} %, "
        "mean of two galleries",
        a=row,
        b="avg",
        paired=paired,
        resampled="identities",
        num_resamples=reps_a.shape[0],
        scale=100.0,
      )
  return out
