"""Tests for the synthetic_faces tfds builder (config `tiny`, prepared in a tmp dir)."""

import collections

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jfr.data import face_renderer
from jfr.data import synthetic_faces


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The tiny config prepared twice in two directories; returns both builders."""
  builders = []
  for name in ("a", "b"):
    builder = tfds.builder("synthetic_faces/tiny", data_dir=str(tmp_path_factory.mktemp(name)))
    builder.download_and_prepare()
    builders.append(builder)
  return builders


def _load(builder, split):
  return list(tfds.as_numpy(builder.as_dataset(split=split)))


def test_config_and_metadata(prepared):
  builder = prepared[0]
  config = builder.builder_config
  assert isinstance(config, synthetic_faces.SyntheticFacesConfig)
  assert config.image_size == 32
  meta = builder.info.metadata
  assert tuple(meta["attribute_names"]) == face_renderer.ATTRIBUTE_NAMES
  assert tuple(meta["part_names"]) == face_renderer.PART_NAMES
  assert meta["num_train_identities"] == config.num_train_identities
  assert synthetic_faces.ATTRIBUTE_NAMES == face_renderer.ATTRIBUTE_NAMES
  assert builder.info.features["label"].num_classes == (
    config.num_train_identities + config.num_test_identities
  )
  assert {c.name for c in synthetic_faces.SyntheticFaces.BUILDER_CONFIGS} == {
    "tiny",
    "small",
    "default",
  }


def test_features_shapes_and_dtypes(prepared):
  builder = prepared[0]
  size = builder.builder_config.image_size
  n_attr = len(face_renderer.ATTRIBUTE_NAMES)
  for split in ("train", "test", "train_video", "video"):
    examples = _load(builder, split)
    assert examples, split
    ex = examples[0]
    assert ex["image"].shape == (size, size, 3) and ex["image"].dtype == np.uint8
    assert ex["label"].dtype == np.int64
    assert ex["attributes"].shape == (n_attr,) and ex["attributes"].dtype == bool
    assert ex["landmarks"].shape == (68, 2) and ex["landmarks"].dtype == np.float32
    assert ex["segmentation"].shape == (size, size)
    assert ex["segmentation"].dtype == np.uint8
    assert ex["occluder_mask"].shape == (size, size)
    assert ex["occluder_mask"].dtype == bool
    assert ex["video_id"].dtype == np.int64 and ex["frame_index"].dtype == np.int64


def test_split_sizes_and_disjoint_identities(prepared):
  builder = prepared[0]
  c = builder.builder_config
  train, test = _load(builder, "train"), _load(builder, "test")
  assert len(train) == c.num_train_identities * c.images_per_train_identity
  assert len(test) == c.num_test_identities * c.images_per_test_identity
  train_ids = {int(e["label"]) for e in train}
  test_ids = {int(e["label"]) for e in test}
  assert train_ids == set(range(c.num_train_identities))
  assert test_ids == set(
    range(c.num_train_identities, c.num_train_identities + c.num_test_identities)
  )
  for e in train + test:
    assert e["video_id"] == -1 and e["frame_index"] == -1
  # identity attributes are constant per identity
  by_id = collections.defaultdict(list)
  for e in train:
    by_id[int(e["label"])].append(e["attributes"][:10])
  for rows in by_id.values():
    assert (np.array(rows) == rows[0]).all()


@pytest.mark.parametrize("split,ids", [("train_video", "train"), ("video", "test")])
def test_video_splits(prepared, split, ids):
  builder = prepared[0]
  c = builder.builder_config
  frames = _load(builder, split)
  clips = collections.defaultdict(list)
  for e in frames:
    clips[int(e["video_id"])].append(e)
  n_ids = c.num_train_identities if ids == "train" else c.num_test_identities
  assert len(clips) == n_ids * c.videos_per_identity
  for video_id, clip in clips.items():
    assert sorted(int(e["frame_index"]) for e in clip) == list(range(c.frames_per_video))
    labels = {int(e["label"]) for e in clip}
    assert len(labels) == 1
    assert video_id // c.videos_per_identity == labels.pop()
  labels = {int(e["label"]) for e in frames}
  expected = {int(e["label"]) for e in _load(builder, ids)}
  assert labels == expected
  clip = sorted(next(iter(clips.values())), key=lambda e: e["frame_index"])
  assert not np.array_equal(clip[0]["image"], clip[1]["image"])  # the face moves


def test_video_ids_globally_unique(prepared):
  builder = prepared[0]
  train_ids = {int(e["video_id"]) for e in _load(builder, "train_video")}
  test_ids = {int(e["video_id"]) for e in _load(builder, "video")}
  assert not train_ids & test_ids


def test_prepare_is_deterministic(prepared):
  a, b = prepared
  for split in ("train", "video"):
    ea, eb = _load(a, split), _load(b, split)
    assert len(ea) == len(eb)
    for x, y in zip(ea, eb):
      for k in x:
        np.testing.assert_array_equal(x[k], y[k])


def test_examples_match_the_renderer(prepared):
  builder = prepared[0]
  c = builder.builder_config
  ex = next(e for e in _load(builder, "test") if e["label"] == c.num_train_identities)
  expected = dict(
    synthetic_faces._render_jobs(
      c, "test", list(synthetic_faces._jobs(c, "test", np.array([ex["label"]])))
    )
  )
  assert any(np.array_equal(ex["image"], v["image"]) for v in expected.values())


def test_worker_processes_render_the_same_examples_in_order():
  c = synthetic_faces.SyntheticFaces.builder_configs["tiny"]
  jobs = list(
    synthetic_faces._jobs(c, "video", np.arange(c.num_train_identities, c.num_train_identities + 3))
  )
  batches = [jobs[i : i + 5] for i in range(0, len(jobs), 5)]  # 24 frames: 5 chunks
  serial = list(synthetic_faces.render_batches(c, "video", batches, processes=1))
  parallel = list(synthetic_faces.render_batches(c, "video", batches, processes=2))
  assert [k for k, _ in parallel] == [k for k, _ in serial]
  assert len(serial) == len(jobs)
  for (_, x), (_, y) in zip(serial, parallel):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  with pytest.raises(ValueError, match="processes"):
    list(synthetic_faces.render_batches(c, "video", batches, processes=0))


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_render_processes_rejects_bad_environment(monkeypatch, value):
  monkeypatch.setenv("JFR_RENDER_PROCESSES", value)
  with pytest.raises(ValueError, match="JFR_RENDER_PROCESSES"):
    synthetic_faces.render_processes()


def test_render_processes_reads_environment_or_cpus(monkeypatch):
  monkeypatch.setenv("JFR_RENDER_PROCESSES", "3")
  assert synthetic_faces.render_processes() == 3
  monkeypatch.delenv("JFR_RENDER_PROCESSES")
  assert 1 <= synthetic_faces.render_processes() <= 16


def test_a_failing_pool_falls_back_to_this_process_without_losing_chunks(monkeypatch):
  import concurrent.futures

  class _Pool:  # renders the first two chunks, then breaks like a dead worker would
    def __init__(self, *args, **kwargs):
      self.calls = 0

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return False

    def submit(self, fn, *args):
      future = concurrent.futures.Future()
      self.calls += 1
      if self.calls <= 2:
        future.set_result(fn(*args))
      else:
        future.set_exception(concurrent.futures.process.BrokenProcessPool("killed"))
      return future

  monkeypatch.setattr(synthetic_faces.concurrent.futures, "ProcessPoolExecutor", _Pool)
  c = synthetic_faces.SyntheticFaces.builder_configs["tiny"]
  jobs = list(
    synthetic_faces._jobs(c, "test", np.arange(c.num_train_identities, c.num_train_identities + 3))
  )
  batches = [jobs[i : i + 2] for i in range(0, len(jobs), 2)]
  serial = list(synthetic_faces.render_batches(c, "test", batches, processes=1))
  fallback = list(synthetic_faces.render_batches(c, "test", batches, processes=2))
  assert [k for k, _ in fallback] == [k for k, _ in serial]
  for (_, x), (_, y) in zip(serial, fallback):
    np.testing.assert_array_equal(x["image"], y["image"])
