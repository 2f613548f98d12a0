"""The explanation paper's comparisons with paired 95 % intervals (contract of
:mod:`jfr.report.intervals`).

* Table I (:func:`recognition_comparison`): the model with the reconstruction decoder vs the
  plain ArcFace model, k-fold verification accuracy, paired over the folds (both models are
  scored on the same pairs and folds). The paper claims no deterioration (similar accuracy,
  slightly better on three of five sets): ``diff = ours - plain``; an interval that spans 0
  is what "similar accuracy" predicts, one below 0 contradicts it.
* Hiding game (Table II, :func:`hiding_comparisons`): ours ``S`` and ``S+`` vs Gradient,
  Grad-CAM, Grad-CAM++ and the random control on the AUC (x 100), paired over the test
  pairs (each pair's area under its correct(p) curve, the same pairs for every map).
* Pointing game (:func:`pointing_comparisons`): ours ``S-`` vs chance (the part's area
  share) on the share of the map's mass inside the differing part, paired over the part
  pairs (all parts pooled).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from jfr.report import intervals

HIDING_OURS = ("ours_s", "ours_s_pos")
HIDING_BASELINES = ("gradient", "grad_cam", "grad_cam_pp", "random")
POINTING_OURS = "ours_s_neg"


def recognition_comparison(ours: Mapping, plain: Mapping, seed: int = 0) -> dict:
  """``{'table1/ours_vs_plain/accuracy': entry}`` from two ``still_images`` results."""
  fa = ours["verification"].get("fold_accuracies")
  fb = plain["verification"].get("fold_accuracies")
  if fa is None or fb is None or len(fa) != len(fb) or len(fa) < 2:
    return {}
  paired = intervals.paired_mean_difference(fa, fb, seed=seed)
  return {
    "table1/ours_vs_plain/accuracy": intervals.comparison(
      paper="explain",
      claim="no deterioration: the decoder-augmented model verifies as well as plain ArcFace",
      metric="verification accuracy % (k-fold)",
      a="ours (max pool + decoder)",
      b="ArcFace (plain)",
      paired=paired,
      resampled="folds",
      num_resamples=intervals.DEFAULT_RESAMPLES,
      scale=100.0,
    )
  }


def hiding_comparisons(name: str, res: Mapping[str, Any], seed: int = 0) -> dict:
  """Ours vs each baseline on a ``hiding_game`` result (with its in-memory ``_pair_auc``)."""
  pair_auc = res.get("_pair_auc", {})
  out = {}
  for ours in HIDING_OURS:
    for other in HIDING_BASELINES:
      if ours not in pair_auc or other not in pair_auc:
        continue
      paired = intervals.paired_mean_difference(pair_auc[ours], pair_auc[other], seed=seed)
      out[f"{name}/{ours}_vs_{other}"] = intervals.comparison(
        paper="explain",
        claim=f"hiding game: ours ({ours}) ranks pixels better than {other} (higher AUC)",
        metric="hiding-game AUC x100",
        a=ours,
        b=other,
        paired=paired,
        resampled="pairs",
        num_resamples=intervals.DEFAULT_RESAMPLES,
        scale=100.0,
      )
  return out


def pointing_comparisons(name: str, res: Mapping[str, Any], seed: int = 0) -> dict:
  """Ours ``S-`` vs chance on a ``pointing_game`` result (``_pair_shares``, ``_pair_area``)."""
  shares = res.get("_pair_shares", {})
  area = res.get("_pair_area")
  if POINTING_OURS not in shares or area is None or np.size(area) < 2:
    return {}
  paired = intervals.paired_mean_difference(shares[POINTING_OURS], area, seed=seed)
  return {
    f"{name}/{POINTING_OURS}_vs_chance": intervals.comparison(
      paper="explain",
      claim="the dissimilarity map S- points at the face part in which the pair differs",
      metric="share of map mass inside the part, %",
      a=POINTING_OURS,
      b="chance (area share)",
      paired=paired,
      resampled="pairs",
      num_resamples=intervals.DEFAULT_RESAMPLES,
      scale=100.0,
    )
  }
