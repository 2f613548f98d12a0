"""The attribute paper's comparisons with paired 95 % intervals (contract of
:mod:`jfr.report.intervals`), bootstrap over identities.

* Identification: the jointly trained network (``joint``, Ours-J) vs separately trained
  branches (``separate``, Ours-S) and vs plain concatenation of the two branches'
  features (``concat``), rank-1 with each distractor count, at each stage; paired over the
  probes' identities (every variant is scored on the same protocol: same probes, gallery
  and distractor subsets).
* Attribute prediction (Table 1 analog): ``joint`` vs ``separate`` and ``concat`` on the
  mean attribute accuracy of the stage-1 models on the test identities, paired over the
  test images' identities.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jfr.report import intervals

OURS = "joint"
OTHERS = ("separate", "concat")
_CLAIM = {
  "separate": "joint training of the identity and attribute branches beats training them "
  "separately",
  "concat": "the jointly trained network beats concatenating the two branches' features",
}


def _entry(claim: str, metric: str, other: str, paired: intervals.Paired) -> dict:
  return intervals.comparison(
    paper="attributes",
    claim=claim,
    metric=metric,
    a=OURS,
    b=other,
    paired=paired,
    resampled="identities",
    num_resamples=intervals.DEFAULT_RESAMPLES,
    scale=100.0,
  )


def comparisons(units: Mapping[str, Mapping[str, dict]], test_labels: np.ndarray) -> dict:
  """The comparisons of the module docstring.

  Args:
    units: variant -> stage -> per-unit data of :func:`jfr.methods.attributes.evaluate.
      evaluate_stage`: ``<identification entry>: (count -> [P] rank-1 hits, [P] probe
      labels)`` and ``attributes_test: [N]`` per-image share of attributes right.
    test_labels: ``[N]`` identity labels of the test images.
  """
  out = {}
  if OURS not in units:
    return out
  for other in OTHERS:
    if other not in units:
      continue
    for stage, ours in units[OURS].items():
      theirs = units[other].get(stage, {})
      for name, value in ours.items():
        if name not in theirs:
          continue
        if name.startswith("attributes_"):
          if name != "attributes_test" or np.unique(test_labels).size < 2:
            continue
          paired = intervals.paired_mean_difference(value, theirs[name], test_labels)
          out[f"attributes/{stage}/{OURS}_vs_{other}"] = _entry(
            _CLAIM[other] + " (attribute prediction)",
            "mean attribute accuracy % (test identities)",
            other,
            paired,
          )
          continue
        hits, labels = value
        other_hits, other_labels = theirs[name]
        if not np.array_equal(labels, other_labels) or np.unique(labels).size < 2:
          continue
        for count, h in hits.items():
          if count not in other_hits:
            continue
          paired = intervals.paired_mean_difference(h, other_hits[count], labels)
          out[f"{name}/{stage}/{OURS}_vs_{other}/{count}_distractors"] = _entry(
            _CLAIM[other] + " (identification)",
            f"rank-1 % with {count} distractors ({stage})",
            other,
            paired,
          )
  return out
