"""Tests of scripts/fan_validation.py (FAN options chosen on held-out train identities)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import fan_validation  # noqa: E402

from configs import fan as fan_config  # noqa: E402


def test_overrides_are_checked():
  config = fan_validation.apply_overrides(fan_config.get_config("tiny"), ["loss.lambda_tv=0.01"])
  assert config.loss.lambda_tv == 0.01 and config.variants == ("full",)
  with pytest.raises(ValueError, match="unknown config key 'loss.lambda_tvv'"):
    fan_validation.apply_overrides(fan_config.get_config("tiny"), ["loss.lambda_tvv=1"])
  with pytest.raises(ValueError, match="key=value"):
    fan_validation.apply_overrides(fan_config.get_config("tiny"), ["loss.lambda_tv"])


@pytest.mark.slow
def test_validation_run_on_tiny(fan_run, tmp_path):
  out = tmp_path / "val"
  results = fan_validation.main(
    [
      f"--extractor={fan_run.workdir}",
      f"--out={out}",
      "--config=tiny",
      f"--set=dataset.data_dir={str(fan_run.config.dataset.data_dir)!r}",
      "--val_fraction=0.3",
      "--set_size=4",
      "--set=aggregator.shading_symmetry=0.0",  # so that the untrained model is the pixel mean
    ]
  )
  assert json.loads((out / "metrics.json").read_text())["methods"] == results["methods"]
  assert (out / "grid.png").exists()
  methods = results["methods"]
  assert set(methods) == {"pixel_mean", "sharpest_frame", "middle_frame", "full"}
  assert results["val_identities"] >= 1 and results["val_clips"] >= results["val_identities"]
  # Canonical faces were rendered for the train clips: a finite PSNR below the copy cap.
  assert 5.0 < methods["pixel_mean"]["psnr"] < 100.0
  # The residual aggregator starts at the pixel mean; 4 steps move it only a little.
  assert abs(results["full_minus_pixel_mean"]["psnr"]) < 1.0
  assert methods["sharpest_frame"]["sharpness"] == pytest.approx(1.0)
