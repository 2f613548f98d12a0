"""End-to-end test of the recognition method (jfr.methods.recognition) on the tiny synthetic data."""

import json

import numpy as np
import pytest

from configs import baseline
from jfr.methods import registry
from jfr.methods.recognition import run as recognition_run


@pytest.mark.slow
def test_train_then_eval_writes_results(tiny_data_dir, tmp_path):
  config = baseline.get_config("tiny")
  config.dataset.data_dir = tiny_data_dir
  results = registry.run(config, str(tmp_path), "all")["recognition"]
  saved = json.loads((tmp_path / "eval" / "recognition.json").read_text())
  settings = config.evals.recognition
  assert saved["verification"]["num_pairs"] == settings.pairs_per_fold * settings.folds
  assert "rank1" in saved["identification"]["cmc"]
  # every results file records the checkpoint it used
  assert saved["checkpoint"]["step"] == config.num_train_steps
  assert saved["checkpoint"]["older_than_newest"] is False
  assert (tmp_path / "figures" / "recognition_roc.png").stat().st_size > 0
  assert (tmp_path / "figures" / "recognition_cmc.png").stat().st_size > 0
  # eval mode restores the final checkpoint and reproduces the numbers exactly
  again = registry.run(config, str(tmp_path), "eval")["recognition"]
  assert again["verification"] == results["verification"]
  np.testing.assert_array_equal(again["_roc"][0], results["_roc"][0])
  # the run's model is usable without its training config or data (benchmarks, inference)
  (tmp_path / "config.json").write_text(json.dumps(json.loads(config.to_json_best_effort())))
  model, info = registry.load_eval_model(str(tmp_path), batch_size=4)
  assert info["step"] == config.num_train_steps and model.input_size == 32
  images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  feats = model.embed(images)
  assert feats.shape == (5, config.model.embedding_dim) and np.isfinite(feats).all()
  assert not np.allclose(feats[0], feats[1])


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
  assert recognition_run.MODES == ("all", "train", "eval")
  assert config.evals.recognition.type == "still_images"
