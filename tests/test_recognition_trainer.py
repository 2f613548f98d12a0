"""End-to-end test of the recognition baseline trainer on the tiny synthetic data."""

import json

import numpy as np
import pytest

from configs import baseline
from jfr.train import recognition
from jfr.train import registry


@pytest.mark.slow
def test_train_then_eval_writes_results(tiny_data_dir, tmp_path):
  config = baseline.get_config("tiny")
  config.dataset.data_dir = tiny_data_dir
  results = registry.run(config, str(tmp_path), "all")
  saved = json.loads((tmp_path / "eval" / "recognition.json").read_text())
  assert 0.0 <= saved["verification"]["accuracy"] <= 1.0
  assert saved["verification"]["num_pairs"] == config.eval.pairs_per_fold * config.eval.folds
  assert "rank1" in saved["identification"]["cmc"]
  assert (tmp_path / "eval" / "recognition_roc.png").stat().st_size > 0
  assert (tmp_path / "eval" / "recognition_cmc.png").stat().st_size > 0
  # eval mode restores the final checkpoint and reproduces the same figures
  again = registry.run(config, str(tmp_path), "eval")
  np.testing.assert_allclose(again["verification"]["accuracy"], results["verification"]["accuracy"])


def test_unknown_mode_and_method_are_errors():
  config = baseline.get_config("tiny")
  with pytest.raises(ValueError, match="mode"):
    registry.run(config, "/tmp/unused", "explain")
  config.method = "recognize"
  with pytest.raises(ValueError, match="method"):
    registry.run(config, "/tmp/unused", "all")


def test_config_variants_and_locked_fields():
  with pytest.raises(ValueError, match="variant"):
    baseline.get_config("huge")
  config = baseline.get_config()
  with pytest.raises(AttributeError):
    config.model.num_filter = 8  # typo: locked ConfigDicts reject unknown fields
  assert recognition.MODES == ("all", "train", "eval")
