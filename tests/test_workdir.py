"""Tests for jfr.workdir (config.json, command.txt, model check) and jfr.main's use of it."""

import json
import subprocess
import sys

import pytest

from configs import baseline
from jfr import workdir as workdir_lib


def test_record_round_trips_and_appends_commands(tmp_path):
  config = baseline.get_config("tiny")
  workdir_lib.write_run_record(tmp_path, config, ["jfr.main", "--x"])
  workdir_lib.write_run_record(tmp_path, config, ["jfr.main", "--y"])
  loaded = workdir_lib.load_run_config_dict(tmp_path)
  assert loaded.model.stage_sizes == tuple(config.model.stage_sizes)
  assert loaded.evals.recognition.fars == tuple(config.evals.recognition.fars)
  commands = (tmp_path / "command.txt").read_text()
  assert "--x" in commands and "--y" in commands
  with pytest.raises(AttributeError):
    loaded.model.typo = 1  # locked like a config file's


def test_model_check_names_the_differing_field(tmp_path):
  config = baseline.get_config("tiny")
  workdir_lib.check_same_model(tmp_path, config)  # no record yet: passes
  workdir_lib.write_run_record(tmp_path, config, [])
  other = baseline.get_config("tiny")
  other.optimizer.learning_rate = 0.5  # not a model field
  workdir_lib.check_same_model(tmp_path, other)
  other.model.num_filters = 8
  with pytest.raises(ValueError, match="model.num_filters"):
    workdir_lib.check_same_model(tmp_path, other)


def test_load_without_record_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="config.json"):
    workdir_lib.load_run_config(tmp_path)


@pytest.mark.slow
def test_main_records_config_and_eval_reads_it(tiny_data_dir, tmp_path):
  workdir = tmp_path / "run"
  base = [sys.executable, "-m", "jfr.main", f"--workdir={workdir}"]
  train = base + [
    "--config=configs/baseline.py:tiny",
    f"--config.dataset.data_dir={tiny_data_dir}",
    "--mode=train",
  ]
  subprocess.run(train, check=True, capture_output=True)
  recorded = json.loads((workdir / "config.json").read_text())
  assert recorded["dataset"]["data_dir"] == tiny_data_dir
  # eval needs only --workdir: the model comes from the record
  subprocess.run(base + ["--mode=eval"], check=True, capture_output=True)
  saved = json.loads((workdir / "eval" / "recognition.json").read_text())
  assert saved["checkpoint"]["step"] == recorded["num_train_steps"]
  # a config whose model differs from the trained one is refused, naming the field
  bad = subprocess.run(
    base + ["--config=configs/baseline.py:tiny", "--config.model.num_filters=8", "--mode=eval"],
    capture_output=True,
    text=True,
  )
  assert bad.returncode != 0 and "model.num_filters" in bad.stderr
