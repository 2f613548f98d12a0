"""Tests for jfr.eval.plots: figures are written, JSON round-trips."""

import json

import numpy as np
import pytest

from jfr.eval import metrics, plots


def _roc_curves():
  rng = np.random.default_rng(0)
  labels = rng.random(300) < 0.5
  scores = rng.normal(size=300) + labels
  fpr, tpr, _ = metrics.roc(scores, labels)
  return {"model a": (fpr, tpr), "chance": ([0.0, 0.01, 1.0], [0.0, 0.01, 1.0])}


def _is_png(path):
  with open(path, "rb") as f:
    return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_roc_writes_png_in_new_directory(tmp_path):
  path = tmp_path / "new" / "dir" / "roc.png"
  plots.plot_roc(_roc_curves(), path, "ROC")
  assert path.stat().st_size > 1000 and _is_png(path)


def test_plot_cmc_and_curves(tmp_path):
  ranks = np.arange(1, 11)
  plots.plot_cmc({"a": (ranks, np.linspace(0.5, 1, 10))}, tmp_path / "cmc.png", "CMC")
  plots.plot_curves(
    {"loss": ([0, 1, 2], [3.0, 2.0, 1.5])}, str(tmp_path / "loss.pdf"), "step", "loss", "Training"
  )
  plots.plot_curves(
    {"x": ([1e-3, 1e-2, 1e-1], [0.1, 0.5, 0.9])}, tmp_path / "log.png", "x", "y", "log", logx=True
  )
  assert _is_png(tmp_path / "cmc.png") and _is_png(tmp_path / "log.png")
  assert (tmp_path / "loss.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize(
  "curves",
  [
    {},
    {"a": ([0, 1], [0, 1, 2])},
    {"a": ([], [])},
    {"a": ([0, 1],)},
  ],
)
def test_plot_rejects_bad_curves(tmp_path, curves):
  with pytest.raises(ValueError, match="curves"):
    plots.plot_curves(curves, tmp_path / "x.png", "x", "y", "t")


def test_write_json_round_trips_numpy(tmp_path):
  obj = {
    "tar_at_far": np.array([0.5, 0.75]),
    "rank1": np.float32(0.875),
    "count": np.int64(7),
    "flag": np.bool_(True),
    "ranks": (1, 5, 10),
    "nested": {"matrix": np.eye(2, dtype=np.int32), "name": "fan"},
    np.int64(3): "numpy key",
  }
  path = tmp_path / "a" / "b" / "results.json"
  plots.write_json(obj, path)
  back = json.loads(path.read_text())
  assert back == {
    "tar_at_far": [0.5, 0.75],
    "rank1": 0.875,
    "count": 7,
    "flag": True,
    "ranks": [1, 5, 10],
    "nested": {"matrix": [[1, 0], [0, 1]], "name": "fan"},
    "3": "numpy key",
  }


def test_write_json_non_finite_become_null(tmp_path):
  path = tmp_path / "r.json"
  plots.write_json({"tar": np.array([np.nan, 0.5, np.inf])}, path)
  assert json.loads(path.read_text()) == {"tar": [None, 0.5, None]}


def test_write_json_rejects_unknown_types(tmp_path):
  with pytest.raises(TypeError):
    plots.write_json({"a": object()}, tmp_path / "r.json")
