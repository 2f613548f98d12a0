"""Tests for jfr.eval.cam_region_mass (activation-map mass inside attribute face regions)."""

import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

import jfr.data  # noqa: F401  (registers synthetic_faces)
from jfr.eval import embedding, registry
from jfr.eval.cam_region_mass import attribute_columns
from jfr.eval.face_regions import ATTRIBUTE_REGIONS, region_masks

NAMES = ("Big_Nose", "Male", "Blurry", "Narrow_Eyes")
SETTINGS = dict(split="test", attributes=NAMES, num_images=20, batch_size=8, keep_maps=("Male",))


def _stills(builder):
  return {ex["image"].tobytes(): ex for ex in tfds.as_numpy(builder.as_dataset(split="test"))}


def _model(builder, oracle: bool):
  """Maps equal to each attribute's region (oracle) or uniform; logits all zero."""
  stills = _stills(builder)
  parts = builder.info.metadata["part_names"]

  def attribute_maps(images):
    assert len(images) <= SETTINGS["batch_size"]
    maps = np.ones(images.shape[:3] + (len(NAMES),), np.float32)
    if oracle:
      for i, image in enumerate(images):
        ex = stills[image.tobytes()]
        for t, name in enumerate(NAMES):
          region = ATTRIBUTE_REGIONS[name]
          if region is not None:
            seg, marks = ex["segmentation"][None], ex["landmarks"][None]
            maps[i, ..., t] = region_masks(seg, marks, region, parts)[0]
    return {"maps": maps, "logits": np.zeros((len(images), len(NAMES)), np.float32)}

  return embedding.EvalModel(input_size=32, extras={"attribute_maps": attribute_maps})


def test_oracle_maps_put_all_mass_inside_and_uniform_maps_the_area(tiny_data_dir):
  builder = tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir)
  context = types.SimpleNamespace(builder=builder)
  oracle = registry.evaluate("cam_region_mass", _model(builder, True), context, SETTINGS, seed=0)
  uniform = registry.evaluate("cam_region_mass", _model(builder, False), context, SETTINGS, seed=0)
  assert oracle["num_images"] == 20
  assert oracle["per_attribute"]["Blurry"] == {"region": None}
  scored = 0
  for name in ("Big_Nose", "Male", "Narrow_Eyes"):
    o, u = oracle["per_attribute"][name], uniform["per_attribute"][name]
    assert o["region"] == ATTRIBUTE_REGIONS[name] and o["num_images"] == u["num_images"]
    if o["num_images"]:
      scored += 1
      assert o["share"] == pytest.approx(1.0)
      assert u["share"] == pytest.approx(u["area"], rel=1e-5)
      assert u["lift"] == pytest.approx(1.0, rel=1e-5) and o["lift"] > 1.0
  assert scored >= 2
  figure = oracle["_figure"]
  assert figure["maps"].shape == (20, 32, 32, 1) and figure["rows"] == [1]
  assert figure["segmentation"].shape == (20, 32, 32)


def test_bad_settings_are_errors(tiny_data_dir):
  builder = tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir)
  context = types.SimpleNamespace(builder=builder)
  model = _model(builder, False)
  with pytest.raises(ValueError, match="keep_maps"):
    settings = {**SETTINGS, "keep_maps": ("Bald",)}
    registry.evaluate("cam_region_mass", model, context, settings, seed=0)
  with pytest.raises(ValueError, match="Curly_Hair"):
    registry.evaluate(
      "cam_region_mass", model, context, {**SETTINGS, "attributes": ("Curly_Hair",)}, seed=0
    )
  with pytest.raises(ValueError, match="attribute_maps"):
    registry.evaluate("cam_region_mass", embedding.EvalModel(32), context, SETTINGS, seed=0)


def test_attribute_columns():
  names = ("Narrow_Eyes", "Big_Nose", "Bald")
  assert attribute_columns(("Bald", "Narrow_Eyes"), names) == (2, 0)
  with pytest.raises(ValueError, match="attribute_names"):
    attribute_columns(("Bald",), None)
  with pytest.raises(ValueError, match="duplicate"):
    attribute_columns(("Bald", "Bald"), names)
  with pytest.raises(ValueError, match="T >= 1"):
    attribute_columns((), names)
