"""Tests for jfr.report: one figure style, tables, results files with TensorBoard images."""

import json

import numpy as np
import pytest

from jfr import report
from jfr.report import figures
from jfr.report import results as results_lib


def test_markdown_table_formats_and_checks_headers():
  table = report.markdown_table([{"a": 0.5, "b": "x"}, {"a": 2}], ["a", "b"])
  assert table.splitlines() == ["| a | b |", "|---|---|", "| 0.5000 | x |", "| 2 |  |"]
  table = report.markdown_table(
    [{"a": 0.123}], ["a"], headers=["acc"], formats={"a": report.percent}
  )
  assert table.splitlines()[2] == "| 12.3 |"
  with pytest.raises(ValueError, match="headers"):
    report.markdown_table([], ["a"], headers=["x", "y"])


def test_write_results_writes_json_markdown_figures_and_checkpoint(tmp_path):
  grid = report.image_grid(
    [[np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 0.5, np.float32)]],
    row_labels=["r"],
    col_labels=["a", "b"],
  )
  roc = report.roc_figure({"m": ([0.0, 0.1, 1.0], [0.0, 0.5, 1.0])}, "t")
  written = report.write_results(
    tmp_path,
    "demo",
    {"accuracy": np.float32(0.5), "nan": float("nan"), "_arrays": np.zeros(3)},
    markdown="# demo",
    figures={"grid": grid, "roc": roc},
    checkpoint={"step": 7, "path": "/x/7"},
  )
  saved = json.loads((tmp_path / "eval" / "demo.json").read_text())
  assert saved == {"accuracy": 0.5, "nan": None, "checkpoint": {"step": 7, "path": "/x/7"}}
  assert (tmp_path / "eval" / "demo.md").read_text() == "# demo\n"
  for key in ("grid", "roc"):
    path = tmp_path / "figures" / f"demo_{key}.png"
    assert written[f"figure:{key}"] == path and path.stat().st_size > 0
  # the figures are TensorBoard image summaries at the checkpoint's step
  import tensorflow as tf

  events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
  assert events
  tags = set()
  for event in tf.compat.v1.train.summary_iterator(str(events[0])):
    for value in event.summary.value:
      tags.add(value.tag)
      assert event.step == 7
      assert value.metadata.plugin_data.plugin_name == "images"
      png = value.tensor.string_val[2]
      assert tf.io.decode_png(png).shape[-1] == 3
  assert tags == {"demo/grid", "demo/roc"}


def test_write_results_rejects_bad_names_and_reserved_key(tmp_path):
  with pytest.raises(ValueError, match="name"):
    report.write_results(tmp_path, "a/b", {})
  with pytest.raises(ValueError, match="checkpoint"):
    report.write_results(tmp_path, "a", {"checkpoint": 1}, checkpoint={"step": 1})
  with pytest.raises(ValueError, match="results"):
    report.write_results(tmp_path, "a", [1, 2])


def test_saliency_overlay_and_figure_pixels():
  fig = figures.new_figure(2, 2)
  ax = fig.add_subplot()
  figures.saliency_overlay(ax, np.zeros((8, 8, 3), np.float32), np.eye(8), title="s")
  pixels = figures.figure_pixels(fig)
  assert pixels.dtype == np.uint8 and pixels.shape[-1] == 3
  assert figures.to_display(np.array([[[-1.0, 0.0, 1.0]]])).tolist() == [[[0.0, 0.5, 1.0]]]


def test_phase_timer_accumulates():
  timer = report.PhaseTimer()
  for _ in range(2):
    with timer.phase("x"):
      sum(range(1000))
  assert set(timer.phases) == {"x"} and timer.phases["x"]["wall_s"] >= 0
  assert timer.total()["wall_s"] == timer.phases["x"]["wall_s"]


def test_write_json_is_strict(tmp_path):
  path = results_lib.write_json(
    {"a": (1, 2), "b": np.int64(3), "c": float("inf")}, tmp_path / "x.json"
  )
  assert json.loads(path.read_text()) == {"a": [1, 2], "b": 3, "c": None}
  with pytest.raises(TypeError):
    results_lib.write_json({"a": object()}, tmp_path / "y.json")
