"""End-to-end test of the recognition method (jfr.methods.recognition) on the tiny synthetic data."""

import json

import numpy as np
import pytest

from configs import baseline
from jfr.methods import registry
from jfr.methods.recognition import run as recognition_run


@pytest.mark.slow
def test_train_then_eval_writes_results(baseline_run, tmp_path):
  config, workdir, results = baseline_run.config, baseline_run.workdir, baseline_run.results
  results = results["recognition"]
  saved = json.loads((workdir / "eval" / "recognition.json").read_text())
  settings = config.evals.recognition
  assert saved["verification"]["num_pairs"] == settings.pairs_per_fold * settings.folds
  assert "rank1" in saved["identification"]["cmc"]
  # every results file records the checkpoint it used
  assert saved["checkpoint"]["step"] == config.num_train_steps
  assert saved["checkpoint"]["older_than_newest"] is False
  assert (workdir / "figures" / "recognition_roc.png").stat().st_size > 0
  assert (workdir / "figures" / "recognition_cmc.png").stat().st_size > 0
  # eval mode restores the final checkpoint and reproduces the numbers exactly
  again = registry.run(config, str(baseline_run.copy_to(tmp_path)), "eval")["recognition"]
  assert again["verification"] == results["verification"]
  np.testing.assert_array_equal(again["_roc"][0], results["_roc"][0])
  # the run's model is usable without its training config or data (benchmarks, inference)
  model, info = registry.load_eval_model(str(workdir), batch_size=4)
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
