"""Tests for jfr.data.dataset_facts on synthetic_faces (prepared sets: tests/test_prepare.py)."""

import pytest

from jfr.data import dataset_facts, pipelines


def test_synthetic_faces_facts_and_requirements(tiny_data_dir):
  builder = pipelines.prepare_builder("synthetic_faces/tiny", tiny_data_dir)
  facts = dataset_facts.dataset_facts(builder)
  assert facts.num_train_classes == 14 and facts.num_classes == 20 and facts.image_size == 32
  assert not facts.prepared and facts.present["videos"] and facts.present["segmentation"]
  assert facts.missing(["label", "landmarks", "occluder_mask"]) == []
  assert dataset_facts.require_features(facts, ["attributes"], "x") is facts
  with pytest.raises(ValueError, match="landmarks5"):
    dataset_facts.require_features(builder, ["landmarks5"], "configs/x.py")
  with pytest.raises(ValueError, match="unknown feature kinds"):
    facts.missing(["parts"])


def test_prepared_dataset_dir_needs_the_report(tmp_path):
  assert dataset_facts.prepared_dataset_dir(None, "x") is None
  version = tmp_path / "mine" / "1.0.0"
  version.mkdir(parents=True)
  (version / "dataset_info.json").write_text("{}")
  assert dataset_facts.prepared_dataset_dir(str(tmp_path), "mine") is None
  (tmp_path / "mine" / "prepare_report.json").write_text("{}")
  assert dataset_facts.prepared_dataset_dir(str(tmp_path), "mine") == str(version)
  assert dataset_facts.prepared_dataset_dir(str(tmp_path), "synthetic_faces/tiny") is None
