"""Every method's :tiny results carry 95 % intervals next to their figures and the paper's
comparisons in the contract of jfr.report.intervals (cheap reads of the session's trained
runs; no training here beyond the shared fixtures)."""

import json
import math

import numpy as np
import pytest

from jfr.methods.attributes import comparisons as attribute_comparisons
from jfr.report import intervals

CONTRACT = {
  "paper",
  "claim",
  "metric",
  "a",
  "b",
  "value_a",
  "value_b",
  "diff",
  "ci95",
  "resampled",
  "num_resamples",
}
TOL = 1e-6


def _json(path):
  return json.loads(path.read_text())


def _brackets(value, ci):
  lo, hi = ci
  return lo - TOL <= value <= hi + TOL


def _check_comparisons(comparisons, paper, *, bracket=True):
  assert comparisons, "no comparisons"
  for name, c in comparisons.items():
    assert set(c) == CONTRACT, name
    assert c["paper"] == paper and c["num_resamples"] == intervals.DEFAULT_RESAMPLES
    lo, hi = c["ci95"]
    assert lo <= hi, name
    if bracket:
      assert _brackets(c["diff"], c["ci95"]), (name, c["diff"], c["ci95"])
    assert intervals.verdict(c) in ("reproduced", "not reproduced", "inconclusive")


def test_templates_rows_and_comparisons(templates_run):
  res = _json(templates_run.workdir / "eval" / "templates.json")
  for row in res["rows"]:
    for name, value in row["mean"].items():
      assert _brackets(value, row["mean_ci95"][name]), (row["method"], name)
  _check_comparisons(res["comparisons"], "templates")
  assert any(k.startswith("masked_m8_vs_original/") for k in res["comparisons"])
  assert all(c["resampled"] == "splits" for c in res["comparisons"].values())
  assert "[" in (templates_run.workdir / "eval" / "templates.md").read_text()


def test_fan_tables_and_comparisons(fan_run):
  ytf = _json(fan_run.workdir / "eval" / "fan_ytf.json")
  for row in ytf.values():
    if isinstance(row, dict) and "N=1,n_avg=2" in row:
      cell = row["N=1,n_avg=2"]
      assert _brackets(cell["accuracy"], cell["accuracy_ci95"])
      assert len(cell["fold_accuracies"]) == fan_run.config.evals.fan_ytf.folds
  ijb = _json(fan_run.workdir / "eval" / "fan_ijb.json")
  assert _brackets(ijb["avg"]["mean"]["rank1"], ijb["avg"]["mean_ci95"]["rank1"])
  summary = _json(fan_run.workdir / "eval" / "fan.json")
  names = set(summary["comparisons"])
  assert "fan_ytf/full_vs_avg/mean" in names and "fan_ytf/full_vs_no_adv/mean" in names
  assert any(n.startswith("fan_blur/full_vs_avg/") for n in names)
  assert any(n.startswith("fan_ijb/full_vs_avg/rank1") for n in names)
  _check_comparisons(summary["comparisons"], "fan")
  assert "paired differences" in (fan_run.workdir / "eval" / "fan.md").read_text()


def test_attributes_intervals(attributes_run):
  res = _json(attributes_run.workdir / "eval" / "attributes.json")
  stage = res["variants"]["joint"]["pretrained"]
  ident = stage["identification"]
  for count, value in ident["rank1_by_distractors"].items():
    assert _brackets(value, ident["rank1_by_distractors_ci95"][count])
  attrs = stage["attributes_test"]
  assert _brackets(attrs["mean_accuracy"], attrs["mean_accuracy_ci95"])
  assert res["comparisons"] == {}  # the fixture trains the joint variant only


def test_attribute_comparisons_pair_the_same_probes():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(20), 3)
  good = (rng.random(60) < 0.9).astype(float)
  bad = (rng.random(60) < 0.2).astype(float)
  test_labels = np.repeat(np.arange(10), 4)
  units = {
    v: {"pretrained": {"identification": ({"10": h}, labels), "attributes_test": a}}
    for v, h, a in (
      ("joint", good, np.full(40, 0.8)),
      ("separate", bad, np.full(40, 0.5)),
    )
  }
  out = attribute_comparisons.comparisons(units, test_labels)
  assert set(out) == {
    "identification/pretrained/joint_vs_separate/10_distractors",
    "attributes/pretrained/joint_vs_separate",
  }
  _check_comparisons(out, "attributes")
  assert all(intervals.verdict(c) == "reproduced" for c in out.values())


def test_interpretable_intervals_and_comparisons(interpretable_run):
  root = interpretable_run.workdir
  peaks = _json(root / "sad_fad" / "eval" / "peak_spread.json")
  for key in ("spreadness_ci95", "mean_std_ci95"):
    lo, hi = peaks[key]
    assert math.isfinite(lo) and lo <= hi
  rec = _json(root / "base" / "eval" / "recognition.json")
  ident = rec["original"]["identification"]
  assert _brackets(ident["cmc"]["rank1"], ident["cmc_ci95"]["rank1"])
  diff = _json(root / "base" / "eval" / "feature_difference.json")
  assert diff["eyes"]["top10_share_ci95"][0] <= diff["eyes"]["top10_share_ci95"][1]
  summary = _json(root / "eval" / "interpretable.json")
  names = set(summary["comparisons"])
  assert {
    "peak_spread/sad_fad_vs_base/spreadness",
    "peak_spread/sad_fad_vs_base/mean_std",
    "recognition/sad_fad_vs_base/synthetic_occlusion/rank1",
    "recognition/sad_fad_vs_base/synthetic_occlusion/rank1_drop",
    "feature_difference/sad_fad_vs_base/eyes/top10_share",
  } <= names
  # d̄ and the top-10 % share are not means: their percentile interval need not hold them
  _check_comparisons(summary["comparisons"], "interpretable", bracket=False)
  for name in names:
    if name.startswith("recognition/"):
      c = summary["comparisons"][name]
      assert _brackets(c["diff"], c["ci95"]), name


def test_explain_intervals_and_comparisons(explain_run):
  root = explain_run.workdir
  res = _json(root / "eval" / "explain.json")
  hiding = res["hiding_game"]
  for name, r in hiding.items():
    assert _brackets(r["auc"], r["auc_ci95"]), name
  pointing = res["pointing_game"]["methods"]["ours_s_neg"]
  assert _brackets(pointing["share_mean"], pointing["share_mean_ci95"])
  names = set(res["comparisons"])
  assert {"hiding_game/ours_s_vs_grad_cam", "pointing_game/ours_s_neg_vs_chance"} <= names
  _check_comparisons(res["comparisons"], "explain")
  table1 = _json(root / "eval" / "recognition.json")
  v = table1["verification"]
  assert _brackets(v["accuracy"], v["accuracy_ci95"])
  _check_comparisons(table1["comparisons"], "explain")


@pytest.mark.parametrize("value, ci, text", [(0.5, [0.25, 0.75], "50.0 [25.0, 75.0]")])
def test_cell_format(value, ci, text):
  assert intervals.format_interval(value, ci, lambda x: f"{100 * x:.1f}") == text
