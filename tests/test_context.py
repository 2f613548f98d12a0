"""Tests for jfr.context.RunContext: data facts read once, and methods refuse data sets that
lack a feature they read (sentinel values are never trained on)."""

import os

import pytest
from PIL import Image

from configs import attributes as attributes_config
from configs import baseline
from face_layouts import render_faces
from jfr import prepare
from jfr.context import METHOD_FEATURES, RunContext


def test_synthetic_tiny_context_has_every_method_feature(tiny_data_dir):
  config = baseline.get_config("tiny")
  config.dataset.data_dir = tiny_data_dir
  context = RunContext.from_config(config)
  assert context.image_size == 32 and context.num_classes > 1
  assert context.split_size(context.test_split) > 0
  assert context.facts()["num_classes"] == context.num_classes
  with pytest.raises(ValueError, match="split 'nope'"):
    context.split_size("nope")
  for method in METHOD_FEATURES:
    config.method = method
    RunContext.from_config(config)  # synthetic_faces has them all


def test_prepared_photos_train_recognition_but_refuse_attributes(tmp_path):
  images, labels, _, _ = render_faces(6, 3, 32)
  for k, (image, c) in enumerate(zip(images, labels)):
    os.makedirs(tmp_path / "in" / f"id{c}", exist_ok=True)
    Image.fromarray(image).save(tmp_path / "in" / f"id{c}" / f"{k}.png")
  prepare.prepare(
    "folders",
    str(tmp_path / "in"),
    str(tmp_path / "tfds"),
    "photos",
    image_size=32,
    test_identities="2",
  )
  config = baseline.get_config("tiny")
  config.dataset.name, config.dataset.data_dir = "photos", str(tmp_path / "tfds")
  context = RunContext.from_config(config)
  assert context.num_classes == 4  # read from the data set, not typed by hand
  config = attributes_config.get_config("tiny")
  config.dataset.name, config.dataset.data_dir = "photos", str(tmp_path / "tfds")
  with pytest.raises(ValueError, match="attributes"):
    RunContext.from_config(config)
