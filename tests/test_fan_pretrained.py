"""Tests for jfr.methods.fan.extractor_source: a FAN whose stage 1 is a converted recognizer.

The recognizer is the committed arcface_torch fixture (``fixtures/iresnet_r18_narrow.pth``,
random weights, 32 px, D = 16) converted by ``jfr.convert``; its reference embeddings were
written by PyTorch (``fixtures/make_iresnet_pth.py``), so the FAN's extractor is checked
against the source framework, not against jfr.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from jfr import workdir as workdir_lib
from jfr.methods.fan import extractor_source

FIXTURES = Path(__file__).parent / "fixtures"
PTH = FIXTURES / "iresnet_r18_narrow.pth"
REFERENCE = FIXTURES / "iresnet_r18_narrow_reference.npz"


def fan_config(data_dir: str, extractor_workdir: str):
  from configs import fan

  config = fan.get_config("tiny")
  config.dataset.data_dir = data_dir
  config.extractor.workdir = extractor_workdir
  config.variants = ("no_adv",)  # one variant: one compiled train step
  config.eval_variants.fan_blur = ("no_adv",)
  config.eval_variants.fan_ijb = ("no_adv",)
  return config


@pytest.fixture(scope="module")
def fan_pretrained(tiny_data_dir, converted_run, tmp_path_factory):
  """``(workdir, results)`` of ``configs/fan.py:tiny`` trained and evaluated (mode 'all')
  against the converted recognizer."""
  from jfr.methods import registry

  config = fan_config(tiny_data_dir, str(converted_run))
  workdir = tmp_path_factory.mktemp("fan") / "run"
  workdir_lib.write_run_record(workdir, config, ["test"])
  results = registry.run(config, str(workdir), "all")
  return workdir, results


@pytest.mark.slow
def test_fan_trains_against_the_converted_extractor(fan_pretrained, converted_run):
  workdir, results = fan_pretrained
  # Stage 1 did not run: no extractor folder, no stage-1 phase; the source is recorded.
  assert not (workdir / "extractor").exists()
  assert "stage1_extractor" not in results["timing"]
  assert "extractor_restore" in results["timing"]
  record = json.loads((workdir / extractor_source.SOURCE_FILE).read_text())
  assert record["kind"] == "recognition" and record["run"] == str(converted_run.absolute())
  assert record["model"]["name"] == "iresnet" and record["converted"]["arch"] == "r18"
  # The feature scale was measured on the converted network's 16-d features.
  features = json.loads((workdir / "eval" / "fan_features.json").read_text())["features"]
  assert features["feature_dim"] == 16
  # Stage 2 trained and the evaluation wrote its tables.
  for name in ("fan_ytf", "fan_blur", "fan_ijb", "extractor"):
    assert (workdir / "eval" / f"{name}.json").exists(), name
  assert (workdir / "aggregator_no_adv" / "checkpoints").is_dir()


@pytest.mark.slow
def test_the_aggregator_checkpoint_holds_the_converted_weights(fan_pretrained, converted_run):
  """The frozen extractor saved with the trained aggregator is the converted network."""
  from configs import fan as fan_configs  # noqa: F401  (configs importable)
  from jfr.methods import registry
  from jfr.methods.fan import settings, trainer
  from jfr.train import checkpoint

  workdir, _ = fan_pretrained
  config = extractor_source.effective_config(workdir_lib.load_run_config_dict(workdir))
  context = registry.recorded_shape(str(workdir))
  _, converted, _ = extractor_source.restore(config, context.image_size)
  zeros = jax.tree.map(np.zeros_like, converted)
  cfg = settings.variant_config(config, "no_adv")
  target = trainer.create_aggregator_state(
    cfg,
    zeros,
    np.zeros((context.num_classes, 16), np.float32),
    trainer.initial_variables(cfg, context.image_size, shapes_only=True),
    cfg.num_train_steps,
  )
  state, info = checkpoint.restore_with_info(workdir / "aggregator_no_adv", target, 2)
  assert info["step"] == cfg.num_train_steps
  flat_saved = jax.tree.leaves(state.frozen["extractor"])
  flat_converted = jax.tree.leaves(converted)
  assert len(flat_saved) == len(flat_converted) > 0
  for saved, conv in zip(flat_saved, flat_converted):
    np.testing.assert_array_equal(np.asarray(saved), np.asarray(conv))


@pytest.mark.slow
def test_fan_run_embeds_like_pytorch(fan_pretrained):
  """load_eval_model on the FAN run (eval-mode restore via extractor.workdir) embeds the
  reference images as PyTorch did, and aggregates sets."""
  from jfr.methods import registry

  workdir, _ = fan_pretrained
  model, infos = registry.load_eval_model(str(workdir))
  ref = np.load(REFERENCE)
  emb = model.embed(ref["images"])
  err = np.linalg.norm(emb - ref["embeddings"], axis=1) / np.linalg.norm(ref["embeddings"], axis=1)
  assert float(err.max()) < 1e-4
  assert infos["extractor"]["step"] == 0  # the converted checkpoint
  sets = model.embed_sets(ref["images"][None], np.ones((1, 4), bool))
  assert sets.shape == (1, 16) and np.all(np.isfinite(sets))


def test_locate_accepts_fan_runs_and_their_extractor_folder(tmp_path):
  from configs import fan

  config = fan.get_config("tiny")
  run = tmp_path / "fan"
  workdir_lib.write_run_record(run, config, ["test"])
  facts = {"num_classes": 14, "image_size": 32, "dataset_name": "synthetic_faces/tiny"}
  workdir_lib.write_data_facts(run, facts)
  (run / "extractor").mkdir()
  for path in (run, run / "extractor"):
    source = extractor_source.locate(path)
    assert source.kind == "fan" and source.checkpoints == str((run / "extractor").absolute())
    assert (source.num_classes, source.image_size) == (14, 32)
    assert source.config.method == "recognition"
    assert source.config.model.to_dict() == config.extractor.model.to_dict()
  # A FAN run that itself took its extractor from `run` leads back to it.
  config2 = fan.get_config("tiny")
  config2.extractor.workdir = str(run)
  workdir_lib.write_run_record(tmp_path / "fan2", config2, ["test"])
  assert extractor_source.locate(tmp_path / "fan2").checkpoints == source.checkpoints


def test_locate_refuses_what_is_not_a_recognizer(tmp_path):
  from configs import templates

  with pytest.raises(ValueError, match="not a directory"):
    extractor_source.locate(tmp_path / "missing")
  with pytest.raises(ValueError, match="no config.json"):
    extractor_source.locate(tmp_path)
  workdir_lib.write_run_record(tmp_path / "t", templates.get_config("tiny"), ["test"])
  with pytest.raises(ValueError, match="'templates' run"):
    extractor_source.locate(tmp_path / "t")


def test_other_input_size_is_refused_naming_both(converted_run):
  source = extractor_source.locate(converted_run)
  assert (source.kind, source.image_size, source.num_classes) == ("recognition", 32, 14)
  extractor_source.check_image_size(source, 32)
  with pytest.raises(ValueError, match="32 px images, but config.dataset has 64 px"):
    extractor_source.check_image_size(source, 64)


def test_effective_config_takes_the_source_model(tiny_data_dir, converted_run):
  from configs import fan

  config = fan_config(tiny_data_dir, str(converted_run))
  derived = extractor_source.effective_config(config)
  assert derived.extractor.model.name == "iresnet" and derived.extractor.model.embedding_dim == 16
  assert config.extractor.model.name == "resnet"  # the given config is not changed
  plain = fan.get_config("tiny")
  assert extractor_source.effective_config(plain) is plain


def test_pretrained112_requires_an_extractor_workdir():
  from configs import fan
  from jfr.methods.fan import settings

  config = fan.get_config("pretrained112")
  assert config.loss.beta == 32.0 and config.extractor.workdir is None
  with pytest.raises(ValueError, match="config.extractor.workdir: required"):
    settings.check_config(config)
