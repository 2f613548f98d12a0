"""95 % intervals of the verification figures (EER, AUC, TAR@FAR), the hiding game's accuracies
and the CAM region-mass table: exact weighted replicates, bracketing, width, Markdown cells."""

import warnings

import numpy as np
import pytest

from jfr.eval import cam_region_mass
from jfr.eval import hiding_protocol
from jfr.eval import metrics
from jfr.eval import protocols
from jfr.eval import roc_intervals as ri
from jfr.eval import video_protocols as vp
from jfr.methods.attributes import report as attributes_report
from jfr.methods.explain import report as explain_report
from jfr.methods.fan import report as fan_report
from jfr.methods.interpretable import report as interpretable_report

FARS = (0.1, 0.01)


def _inside(value, ci):
  return ci[0] - 1e-12 <= value <= ci[1] + 1e-12


def _width(ci):
  return ci[1] - ci[0]


def test_replicates_equal_metrics_on_the_repeated_score_list():
  rng = np.random.default_rng(0)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", metrics.MetricWarning)
    for trial in range(30):
      n = int(rng.integers(3, 60))
      scores = np.round(rng.normal(size=n), int(rng.integers(0, 2)))  # many ties
      if trial % 3 == 0:
        scores[rng.random(n) < 0.2] = np.nan
      same = rng.random(n) < 0.5
      weights = rng.integers(0, 3, size=(8, n))
      got = ri.roc_replicates(scores, same, weights, (0.0, 0.1, 0.5))
      for r in range(8):
        rep = np.repeat(np.arange(n), weights[r])
        s, y = scores[rep], same[rep]
        if y.all() or not y.any():
          assert np.isnan(got["eer"][r]) and np.isnan(got["auc"][r])
          continue
        fpr, tpr, _ = metrics.roc(s, y)
        assert got["eer"][r] == pytest.approx(metrics.eer(s, y), abs=1e-12)
        assert got["auc"][r] == pytest.approx(metrics.auc(fpr, tpr), abs=1e-12)
        np.testing.assert_allclose(
          got["tar_at_far"][r], metrics.tar_at_far(s, y, (0.0, 0.1, 0.5)), atol=1e-12
        )


def test_pair_weights_count_the_pairs_of_distinct_items_of_resampled_identities():
  labels = np.array([0, 0, 1, 1, 1, 2])
  i, j = np.triu_indices(labels.size, k=1)
  res = ri.pair_weights(labels[i], labels[j])
  counts = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]])
  weights = counts[:, res.group_a] * counts[:, res.group_b]
  for r, c in enumerate(counts):
    # explicit resample: every item once per draw of its identity; pairs of distinct items
    items = [(k, d) for k in range(labels.size) for d in range(int(c[labels[k]]))]
    expected = np.zeros(i.size)
    for x in range(len(items)):
      for z in range(x + 1, len(items)):
        a, b = sorted((items[x][0], items[z][0]))
        if a != b:
          expected[np.flatnonzero((i == a) & (j == b))[0]] += 1
    np.testing.assert_array_equal(weights[r], expected)


def _scored_pairs(rng, n, separation=1.5):
  same = np.tile([True, False], n // 2)
  return rng.normal(size=n) + separation * same, same


def test_verification_report_intervals_bracket_and_widen_with_fewer_pairs():
  rng = np.random.default_rng(1)
  widths = []
  for pairs_per_fold in (400, 20):
    scores, same = _scored_pairs(rng, 10 * pairs_per_fold)
    rep = protocols.verification_report(scores, same, FARS, folds=10)
    assert _inside(rep["eer"], rep["eer_ci95"]) and _inside(rep["auc"], rep["auc_ci95"])
    assert _inside(rep["tar_at_far"]["0.1"], rep["tar_at_far"]["0.1_ci95"])
    assert set(rep["tar_at_far"]) == {"0.1", "0.01", "0.1_ci95", "0.01_ci95"}
    widths.append((_width(rep["eer_ci95"]), _width(rep["auc_ci95"])))
  assert widths[1][0] > 2 * widths[0][0] and widths[1][1] > 2 * widths[0][1]


def test_verification_report_keeps_its_point_figures():
  rng = np.random.default_rng(2)
  scores, same = _scored_pairs(rng, 200)
  rep = protocols.verification_report(scores, same, FARS, folds=10)
  plain = protocols.roc_summary(scores, same, FARS)
  assert rep["eer"] == plain["eer"] and rep["auc"] == plain["auc"]
  assert all(rep["tar_at_far"][k] == v for k, v in plain["tar_at_far"].items())
  assert "eer_ci95" not in plain


def test_all_pairs_and_template_verification_intervals_over_identities():
  rng = np.random.default_rng(3)
  widths = []
  for ids in (60, 8):
    labels = np.repeat(np.arange(ids), 3)
    feats = rng.normal(size=(ids, 16))[labels] + 0.9 * rng.normal(size=(labels.size, 16))
    rep = vp.all_pairs_report(feats, labels, FARS)
    assert _inside(rep["eer"], rep["eer_ci95"]) and _inside(rep["auc"], rep["auc_ci95"])
    widths.append(_width(rep["auc_ci95"]))
    ver = vp.template_verification(feats[::3], labels[::3], feats[1::3], labels[1::3], fars=FARS)
    assert _inside(ver["eer"], ver["eer_ci95"])
    assert _inside(ver["tar_at_far"]["0.1"], ver["tar_at_far"]["0.1_ci95"])
  assert widths[1] > widths[0]


def _verify(a, b):
  half = a.shape[2] // 2
  return 1.0 - np.abs(a[:, :, :half] - b[:, :, :half]).mean(axis=(1, 2, 3))


def _hiding(num_pairs, rng):
  b = rng.uniform(-1, 1, (num_pairs, 8, 8, 3)).astype(np.float32)
  a = b + rng.normal(0, 0.3, b.shape).astype(np.float32) * rng.uniform(
    0.5, 1.5, (num_pairs, 1, 1, 1)
  )
  same = np.arange(num_pairs) % 2 == 0
  a[~same, :, :4] += rng.normal(0, 0.1, (int((~same).sum()), 8, 4, 3))  # overlapping scores
  maps = {"random": rng.random((num_pairs, 8, 8))}
  return hiding_protocol.hiding_games(
    _verify, a, b, same, maps, ("random",), (0.0, 0.5, 0.9, 1.0), 2.0
  )["random"]


def test_hiding_game_accuracy_intervals_bracket_widen_and_reach_the_table():
  rng = np.random.default_rng(4)
  big, small = _hiding(200, rng), _hiding(16, rng)
  for res in (big, small):
    assert len(res["accuracy_ci95"]) == len(res["fractions"])
    assert all(_inside(v, ci) for v, ci in zip(res["accuracy"], res["accuracy_ci95"]))
  assert _width(small["accuracy_ci95"][1]) > _width(big["accuracy_ci95"][1])
  table = explain_report.hiding_table({"random": big})
  cell = explain_report.accuracy_at(big, 0.5)
  assert cell == f"{big['accuracy'][1]:.4f} [{big['accuracy_ci95'][1][0]:.4f}, " + (
    f"{big['accuracy_ci95'][1][1]:.4f}]"
  )
  assert cell in table and explain_report.accuracy_at(big, 0.9) in table
  assert "[" not in explain_report.accuracy_at(big, 0.7)  # between fractions: value only


def test_cam_region_mass_intervals_over_identities_and_their_column():
  rng = np.random.default_rng(5)
  names = ("Big_Nose",)
  widths = []
  for ids in (80, 6):
    labels = np.repeat(np.arange(ids), 4)
    share = rng.uniform(0.2, 0.6, (labels.size, 1))
    area = rng.uniform(0.05, 0.15, (labels.size, 1))
    targets = np.ones((labels.size, 1))
    per = cam_region_mass.per_attribute_report(names, share, area, targets, labels)["Big_Nose"]
    for key in ("share", "area", "lift"):
      assert _inside(per[key], per[f"{key}_ci95"]), key
    widths.append(_width(per["share_ci95"]))
    assert (
      "share_ci95"
      not in cam_region_mass.per_attribute_report(names, share, area, targets)["Big_Nose"]
    )
  assert widths[1] > widths[0]
  rows = attributes_report._cam_rows(
    {"joint": {"per_attribute": {"Big_Nose": per}}}, names, ["joint"]
  )
  text = next(v for k, v in rows[0].items() if k not in ("attribute", "region", "images", "area"))
  assert text == attributes_report.percent_ci(per["share"], per["share_ci95"]) and "[" in text


def test_recognition_and_fan_tables_show_the_verification_intervals():
  rng = np.random.default_rng(6)
  scores, same = _scored_pairs(rng, 400)
  v = protocols.verification_report(scores, same, FARS, folds=10)
  ident = {"cmc": {"rank1": 0.5}}
  md = explain_report.recognition_markdown({"ours": {"verification": v, "identification": ident}})
  for key, d in (("eer", v), ("auc", v), ("0.01", v["tar_at_far"])):
    lo, hi = d[f"{key}_ci95"]
    assert f"{d[key]:.4f} [{lo:.4f}, {hi:.4f}]" in md
  labels = np.repeat(np.arange(10), 3)
  feats = rng.normal(size=(10, 8))[labels] + rng.normal(size=(30, 8))
  row = {**v, "all_pairs": vp.all_pairs_report(feats, labels, FARS)}
  lo, hi = row["all_pairs"]["eer_ci95"]
  cell = fan_report.eer_cell(row)
  assert cell == f"{fan_report.eer_percent(row):.2f} [{100 * lo:.2f}, {100 * hi:.2f}]"
  blur = fan_report.blur_lines(
    {"avg": {"9": row}},
    {"set_configs": [(5, 2)], "blur_kernel_sizes": (9,), "blur_sharp_frames": 1},
  )
  assert any(cell in line for line in blur)


def test_interpretable_recognition_cells_show_the_tar_interval():
  rng = np.random.default_rng(7)
  scores, same = _scored_pairs(rng, 400)
  v = protocols.verification_report(scores, same, FARS, folds=10)
  scenario = {"verification": v, "identification": {"cmc": {"rank1": 0.5}}}
  cell = interpretable_report._recognition_cell(scenario, "far:0.1")
  lo, hi = v["tar_at_far"]["0.1_ci95"]
  assert cell == interpretable_report._ci(
    {"v": v["tar_at_far"]["0.1"], "v_ci95": [lo, hi]}, "v", percent=True
  )
  assert "[" in cell


def test_readme_generator_shows_hiding_accuracies_and_cam_shares_with_intervals():
  import sys
  from pathlib import Path

  sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
  import readme_results

  game = {"fractions": [0.0, 0.5, 0.9], "accuracy": [0.9, 0.8, 0.6]}
  game["accuracy_ci95"] = [[0.85, 0.95], [0.7, 0.88], [0.5, 0.7]]
  assert readme_results._accuracy_at(game, 0.5) == "80.0 [70.0, 88.0]"
  assert readme_results._accuracy_at(game, 0.7) == ""
  assert readme_results._accuracy_at({**game, "accuracy_ci95": None}, 0.9) == "60.0"
  cam = {"Big_Nose": {"region": "nose", "share": 0.02, "share_ci95": [0.01, 0.03], "area": 0.01}}
  run = type("R", (), {})()
  run.header = lambda: "run"
  run.json = lambda rel: {"variants": {"joint": {"pretrained": {"cam": {"per_attribute": cam}}}}}
  text = readme_results.attributes_section(run)
  assert "| Big_Nose | nose | 1.00 | 2.00 [1.00, 3.00] |" in text


def test_readme_generator_reads_rank1_intervals_from_the_sibling_cmc_ci95():
  import sys
  from pathlib import Path

  sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
  import readme_results

  ident = {"cmc": {"rank1": 0.5}, "cmc_ci95": {"rank1": [0.4, 0.6]}}
  run = type("R", (), {})()
  run.header = lambda: "run"
  run.json = lambda rel: {"identification": ident}
  assert "rank-1 50.0 [40.0, 60.0] %" in readme_results.headroom_section(run)
  files = {"eval/interpretable.json": {"variants": ["base"]}}
  files["base/eval/recognition.json"] = {s: {"identification": ident} for s in ("original",)}
  run.json = lambda rel: files.get(rel, {})
  assert "50.0 [40.0, 60.0]" in readme_results.interpretable_section(run)
