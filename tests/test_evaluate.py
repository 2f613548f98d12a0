"""Tests for jfr.evaluate: --help lists the benchmarks; settings parsing; one slow end-to-end
run through ``python -m jfr.evaluate`` on a trained tiny recognition run."""

import json
import os
import subprocess
import sys

import pytest

from jfr import evaluate
from jfr.eval import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_lists_every_benchmark():
  out = subprocess.run(
    [sys.executable, "-m", "jfr.evaluate", "--help"], cwd=ROOT, capture_output=True, text=True
  )
  text = out.stdout + out.stderr
  for name in evaluate.BENCHMARKS:
    assert name in text
    assert name in registry.EVALUATORS
  assert "--data" in text and "--flip" in text and "--allow_older_checkpoint" in text


def test_parse_settings():
  got = evaluate.parse_settings(["view=1", "landmarks=/a/b.txt", "detector_score=False"])
  assert got == {"view": 1, "landmarks": "/a/b.txt", "detector_score": False}


@pytest.mark.slow
def test_end_to_end_on_a_tiny_run(baseline_run, tmp_path):
  from benchmark_layouts import write_bin
  from face_layouts import render_faces

  config = baseline_run.config
  run = baseline_run.copy_to(tmp_path)  # the benchmark writes its results into the run
  faces, _, _, _ = render_faces(8, 1, 32, seed=5)
  same = [True, False] * 4
  first = [faces[i] for i in range(8)]
  second = [faces[i] if s else faces[(i + 1) % 8] for i, s in enumerate(same)]
  write_bin(str(tmp_path / "tiny.bin"), first, second, same, protocol=2)
  cmd = [
    sys.executable, "-m", "jfr.evaluate", f"--workdir={run}", "--benchmark=insightface_bin",
    f"--data={tmp_path / 'tiny.bin'}", "--batch_size=4", "--setting=folds=2",
  ]  # fmt: skip
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "| tiny | 8 |" in out.stdout
  saved = json.loads((run / "eval" / "insightface_bin.json").read_text())
  assert saved["checkpoint"]["step"] == config.num_train_steps
  r = saved["sets"]["tiny"]
  assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["flip"]["accuracy"] <= 1.0 and r["xnorm"] > 0
  assert (run / "eval" / "insightface_bin.md").exists()
  assert (run / "figures" / "insightface_bin_roc.png").stat().st_size > 0
  assert (run / "cache" / f"insightface_bin_{config.num_train_steps}_tiny.npz").exists()
