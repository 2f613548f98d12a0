"""The interpretable-FR paper's comparisons with paired 95 % intervals (contract of
:mod:`jfr.report.intervals`): the full model (``sad_fad``, SAD + FAD) and the SAD-only model
vs the ``base`` CNN, every variant evaluated on the same faces, so each bootstrap resamples
the same identities for both sides (same seed, same labels: the same resamples).

* Fig. 5 / Table 3 (``peak_spread``): d̄ of the average peak locations, higher (SAD
  spreads the filters over the face), and the mean std of the peak locations, lower (each
  filter concentrates on a part); replicates of :func:`jfr.eval.peak_spread.peak_replicates`.
* Tables 2, 4, 5 (``occluded_still_images``): rank-1 under synthetic and natural occlusion,
  higher; and the drop of rank-1 from the original faces to synthetic occlusion, lower;
  per-probe hits from the in-memory similarities, paired over the probes' identities.
* Fig. 6 (``occlusion_feature_difference``): the share of the feature change carried by the
  10 % most changed filters when a part is occluded, higher (occlusion affects fewer filters
  with FAD); replicates of :func:`jfr.eval.occlusion.difference_intervals`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from jfr.eval import metrics
from jfr.methods.interpretable.constants import FEATURE_DIFFERENCE, PEAK_SPREAD, RECOGNITION
from jfr.report import intervals

BASE = "base"
OURS = ("sad_fad", "sad")
_R = intervals.DEFAULT_RESAMPLES


def _entry(claim: str, metric: str, ours: str, paired, higher: bool = True, scale=1.0) -> dict:
  return intervals.comparison(
    paper="interpretable",
    claim=claim,
    metric=metric,
    a=ours,
    b=BASE,
    paired=paired,
    resampled="identities",
    num_resamples=_R,
    higher_is_better=higher,
    scale=scale,
  )


def _hits(curves: Mapping[str, Any], scenario: str) -> tuple[np.ndarray, np.ndarray] | None:
  """``(rank-1 hits [P], probe labels [P])`` of the mated probes of one scenario."""
  if scenario not in curves or "_similarity" not in curves[scenario]:
    return None
  sim, probe_labels, gallery_labels = curves[scenario]["_similarity"]
  mated = np.isin(probe_labels, gallery_labels)
  if np.unique(probe_labels[mated]).size < 2:
    return None
  ranks = metrics.probe_ranks(sim[mated], probe_labels[mated], gallery_labels)
  return (ranks == 1).astype(np.float64), probe_labels[mated]


def _peak_comparisons(ours: str, a: Mapping, b: Mapping) -> dict:
  ra, rb = a.get("_replicates"), b.get("_replicates")
  if ra is None or rb is None:
    return {}
  return {
    f"peak_spread/{ours}_vs_base/spreadness": _entry(
      "SAD (and FAD) spread the filters' average peak locations over the face (larger d̄)",
      "d̄ of average peak locations, px (mean of both signs)",
      ours,
      intervals.paired_from(a["spreadness"], ra["spreadness"], b["spreadness"], rb["spreadness"]),
    ),
    f"peak_spread/{ours}_vs_base/mean_std": _entry(
      "each filter concentrates on a local part (smaller std of its peak locations)",
      "mean std of peak locations, px (mean of both signs)",
      ours,
      intervals.paired_from(a["mean_std"], ra["mean_std"], b["mean_std"], rb["mean_std"]),
      higher=False,
    ),
  }


def _recognition_comparisons(ours: str, a: Mapping, b: Mapping) -> dict:
  ca, cb = a.get("_curves", {}), b.get("_curves", {})
  out = {}
  for scenario in ("synthetic_occlusion", "natural_occlusion"):
    ha, hb = _hits(ca, scenario), _hits(cb, scenario)
    if ha is None or hb is None or not np.array_equal(ha[1], hb[1]):
      continue
    out[f"recognition/{ours}_vs_base/{scenario}/rank1"] = _entry(
      f"the interpretable model identifies occluded faces better ({scenario})",
      f"rank-1 % ({scenario})",
      ours,
      intervals.paired_mean_difference(ha[0], hb[0], ha[1]),
      scale=100.0,
    )
  oa, sa = _hits(ca, "original"), _hits(ca, "synthetic_occlusion")
  ob, sb = _hits(cb, "original"), _hits(cb, "synthetic_occlusion")
  if None in (oa, sa, ob, sb):
    return out
  labels = oa[1]
  if all(np.array_equal(labels, h[1]) for h in (sa, ob, sb)):
    out[f"recognition/{ours}_vs_base/synthetic_occlusion/rank1_drop"] = _entry(
      "occlusion costs the interpretable model less rank-1 than the base CNN",
      "rank-1 drop, original - synthetic occlusion, points",
      ours,
      intervals.paired_mean_difference(oa[0] - sa[0], ob[0] - sb[0], labels),
      higher=False,
      scale=100.0,
    )
  return out


def _difference_comparisons(ours: str, a: Mapping, b: Mapping) -> dict:
  ra, rb = a.get("_replicates", {}), b.get("_replicates", {})
  out = {}
  for part in ra:
    if part not in rb:
      continue
    out[f"feature_difference/{ours}_vs_base/{part}/top10_share"] = _entry(
      f"occluding the {part} changes fewer filters (larger share in the top 10 % filters)",
      f"share of the feature change in the 10 % most changed filters, % ({part} occluded)",
      ours,
      intervals.paired_from(a[part]["top10_share"], ra[part], b[part]["top10_share"], rb[part]),
      scale=100.0,
    )
  return out


def comparisons(results: Mapping[str, Mapping[str, Any]]) -> dict:
  """variant -> eval name -> results (with their in-memory ``_`` keys) -> comparisons."""
  if BASE not in results:
    return {}
  base = results[BASE]
  out = {}
  for ours in OURS:
    if ours not in results:
      continue
    mine = results[ours]
    for key, build in (
      (PEAK_SPREAD, _peak_comparisons),
      (RECOGNITION, _recognition_comparisons),
      (FEATURE_DIFFERENCE, _difference_comparisons),
    ):
      if key in mine and key in base:
        out.update(build(ours, mine[key], base[key]))
  return out
