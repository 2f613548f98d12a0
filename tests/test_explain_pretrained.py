"""Tests for the explanation model started from a converted recognizer
(``config.backbone_init``; jfr.methods.explain.trainer.effective_config /
init_backbone_from_run).

The recognizer is the committed arcface_torch fixture (``fixtures/iresnet_r18_narrow.pth``,
random weights, 32 px) converted by ``jfr.convert``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from jfr.methods.explain import trainer

FIXTURES = Path(__file__).parent / "fixtures"
PTH = FIXTURES / "iresnet_r18_narrow.pth"
REFERENCE = FIXTURES / "iresnet_r18_narrow_reference.npz"


def explain_config(data_dir: str, run: str):
  from configs import explain

  config = explain.get_config("tiny")
  config.dataset.data_dir = data_dir
  config.backbone_init = run
  return trainer.effective_config(config)


def test_trunk_is_copied_and_gmp_pools_the_converted_map(tiny_data_dir, converted_run):
  from jfr.methods.recognition import trainer as recognition
  from jfr import workdir as workdir_lib

  config = explain_config(tiny_data_dir, str(converted_run))
  assert (config.model.name, config.model.pooling) == ("iresnet", "gmp")
  fresh = trainer.create_state(config, 14, 32)
  state = trainer.init_backbone_from_run(config, fresh, 32)
  source_cfg = workdir_lib.load_run_config_dict(converted_run)
  converted, _ = recognition.restore(source_cfg, converted_run, 14, 32)
  ours = {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}
  # Every trunk variable equals the converted one; the output layer is not in ours.
  assert set(converted["params"]) - set(ours["params"]) == {"bn2", "fc", "features"}
  for path, leaf in jax.tree_util.tree_flatten_with_path(ours)[0]:
    ref = dict(jax.tree_util.tree_flatten_with_path(converted)[0])[path]
    np.testing.assert_array_equal(np.asarray(leaf), np.asarray(ref))
  # Head and decoder are the fresh ones.
  for name in ("head", "decoder"):
    jax.tree.map(np.testing.assert_array_equal, state.params[name], fresh.params[name])
  # F = GMP(C) of the converted network's last conv map.
  images = np.load(REFERENCE)["images"]
  x = (images / 127.5 - 1.0).astype(np.float32)
  source_net = recognition.inference_backbone(source_cfg)
  _, fmap = source_net.apply(converted, x, train=False, return_feature_map=True)
  features = recognition.inference_backbone(config).apply(ours, x, train=False)
  np.testing.assert_allclose(np.asarray(features), np.asarray(fmap).max(axis=(1, 2)), rtol=1e-6)


def test_other_input_size_is_refused(tiny_data_dir, converted_run):
  config = explain_config(tiny_data_dir, str(converted_run))
  state = trainer.create_state(config, 14, 64)
  with pytest.raises(ValueError, match="takes 32 px images, but config.dataset has 64 px"):
    trainer.init_backbone_from_run(config, state, 64)


def test_without_backbone_init_nothing_changes():
  from configs import explain

  config = explain.get_config("tiny")
  assert config.backbone_init is None and trainer.effective_config(config) is config


@pytest.mark.slow
def test_explain_run_from_converted_trunk(tiny_data_dir, converted_run, tmp_path):
  """configs/explain.py:tiny trains and explains from the converted trunk (mode 'all')."""
  from configs import explain
  from jfr import workdir as workdir_lib
  from jfr.methods import registry

  config = explain.get_config("tiny")
  config.dataset.data_dir = tiny_data_dir
  config.backbone_init = str(converted_run)
  workdir = tmp_path / "run"
  workdir_lib.write_run_record(workdir, config, ["test"])
  results = registry.run(config, str(workdir), "all")
  assert "recognition" in results and "explain" in results
  model, info = registry.load_eval_model(str(workdir))
  assert info["step"] == config.num_train_steps
  images = np.load(REFERENCE)["images"]
  assert model.embed(images).shape == (4, 32)  # GMP of the r18 narrow map: c = 8 * 4
