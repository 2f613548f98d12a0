"""Tests for jfr.eval.registry and the still_images evaluator."""

import numpy as np
import pytest

from jfr.eval import embedding
from jfr.eval import registry
from jfr.eval import still_images
from jfr.train import config_blocks


def test_every_registered_evaluator_imports_and_declares_needs():
  for name in registry.EVALUATORS:
    fn = registry.get(name)
    assert callable(fn), name
    needs = registry.needs(fn)
    assert needs and all(isinstance(n, str) for n in needs), (name, needs)


def test_unknown_type_and_missing_capability_are_named_errors():
  with pytest.raises(ValueError, match="not known"):
    registry.get("nope")
  model = embedding.EvalModel(input_size=4)
  with pytest.raises(ValueError, match="needs"):
    registry.evaluate("still_images", model, None, {}, seed=0)
  with pytest.raises(ValueError, match="type"):
    registry.settings_of({"split": "test"})


def test_register_user_evaluator():
  registry.register("demo_constant", "tests.test_eval_registry:_constant")
  try:
    model = embedding.EvalModel(input_size=4, embed=lambda x: x)
    out = registry.run_evals({"d": {"type": "demo_constant", "value": 3}}, model, None, seed=0)
    assert out == {"d": {"value": 3, "seed": 0}}
  finally:
    del registry.EVALUATORS["demo_constant"]
  with pytest.raises(ValueError, match="module:function"):
    registry.register("x", "no_colon")


def _constant(model, context, settings, *, seed):
  return {"value": settings["value"], "seed": seed}


_constant.NEEDS = ("embed",)


def test_still_images_settings_are_checked():
  settings = config_blocks.still_images("test").to_dict()
  settings.pop("type")
  still_images.check_settings(settings, still_images.SETTINGS, "still_images")
  with pytest.raises(ValueError, match="unknown"):
    still_images.check_settings({**settings, "typo": 1}, still_images.SETTINGS, "still_images")


def test_still_images_protocol_separates_identities():
  # Two clean clusters per identity: verification must be perfect, rank-1 too.
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(20), 4)
  centres = rng.normal(size=(20, 16))
  feats = centres[labels] + 0.01 * rng.normal(size=(80, 16))
  settings = config_blocks.still_images("test").to_dict()
  settings.update(pairs_per_fold=20, folds=2)
  out = still_images.evaluate_features(feats, labels, settings, seed=0)
  assert out["verification"]["accuracy"] == 1.0
  assert out["identification"]["cmc"]["rank1"] == 1.0
  # random features are near chance
  noise = rng.normal(size=(80, 16))
  out = still_images.evaluate_features(noise, labels, settings, seed=0)
  assert out["verification"]["accuracy"] < 0.8


def test_still_images_evaluator_on_tiny_data(tiny_data_dir):
  from jfr.context import RunContext
  from configs import baseline

  config = baseline.get_config("tiny")
  config.dataset.data_dir = tiny_data_dir
  context = RunContext.from_config(config)
  settings = config.evals.recognition.to_dict()
  settings.pop("type")
  # An "embedding" that is the label itself (one-hot through the pixels is impossible):
  # use the mean colour; the evaluator must run end to end and record its split.
  model = embedding.EvalModel(
    input_size=context.image_size,
    embed=lambda x: x.reshape(len(x), -1).astype(np.float32)[:, :64],
  )
  out = registry.evaluate("still_images", model, context, settings, seed=0)
  assert out["split"] == "test" and out["flip"] is False
  assert out["verification"]["num_pairs"] == settings["pairs_per_fold"] * settings["folds"]
  settings["flip"] = True
  flipped = registry.evaluate("still_images", model, context, settings, seed=0)
  assert flipped["flip"] is True
