"""Tests for jfr.data.pipelines on the tiny synthetic data set."""

import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jfr.data import pipelines


@pytest.fixture(scope="module")
def builder(tiny_data_dir):
  return pipelines.prepare_builder("synthetic_faces/tiny", tiny_data_dir)


def _take(ds, n):
  return [b for _, b in zip(range(n), tfds.as_numpy(ds))]


def test_image_batches_shapes_range_and_determinism(builder):
  kw = dict(
    seed=3,
    features=("image", "label", "attributes"),
    augment_options=dict(
      flip=True,
      brightness=0.2,
      contrast=0.2,
      saturation=0.2,
      motion_blur_prob=0.5,
      motion_blur_max_size=9,
    ),
  )
  a = _take(pipelines.image_batches(builder, "train", 8, **kw), 3)
  b = _take(pipelines.image_batches(builder, "train", 8, **kw), 3)
  size = builder.info.features["image"].shape[0]
  assert a[0]["image"].shape == (8, size, size, 3) and a[0]["image"].dtype == np.float32
  assert a[0]["image"].min() >= -1.0 and a[0]["image"].max() <= 1.0
  assert a[0]["label"].shape == (8,) and a[0]["attributes"].shape[0] == 8
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])


def test_image_batches_resume_matches_uninterrupted(builder):
  kw = dict(seed=1, augment_options=dict(flip=True, brightness=0.1))
  full = _take(pipelines.image_batches(builder, "train", 4, **kw), 5)
  resumed = _take(pipelines.image_batches(builder, "train", 4, start_batch=3, **kw), 2)
  for x, y in zip(full[3:], resumed):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])


def test_image_batches_rejects_unknown_split_and_feature(builder):
  with pytest.raises(ValueError, match="split"):
    pipelines.image_batches(builder, "validation", 4, seed=0)
  with pytest.raises(ValueError, match="features"):
    pipelines.image_batches(builder, "train", 4, seed=0, features=("image", "age"))


def test_eval_batches_pads_with_valid_mask(builder):
  n = builder.info.splits["test"].num_examples
  batches = list(tfds.as_numpy(pipelines.eval_batches(builder, "test", 7)))
  assert all(b["image"].shape[0] == 7 for b in batches)
  assert sum(int(b["valid"].sum()) for b in batches) == n
  assert not batches[-1]["valid"][-1] or n % 7 == 0
  labels = np.concatenate([b["label"][b["valid"]] for b in batches])
  np.testing.assert_array_equal(labels, pipelines.load_arrays(builder, "test", ("label",))["label"])


@pytest.fixture(scope="module")
def videos_and_stills(builder):
  frames = pipelines.load_arrays(
    builder, "train_video", ("image", "label", "video_id", "frame_index")
  )
  stills = pipelines.load_arrays(builder, "train", ("image", "label"))
  return pipelines.group_videos(frames), stills, frames


def test_group_videos_orders_frames(videos_and_stills):
  videos, _, frames = videos_and_stills
  v = 0
  vid = videos["video_ids"][v]
  sel = frames["video_id"] == vid
  order = np.argsort(frames["frame_index"][sel])
  np.testing.assert_array_equal(
    videos["frames"][v, : videos["lengths"][v]], frames["image"][sel][order]
  )
  assert np.all(videos["labels"][v] == frames["label"][sel])


def test_set_batches_members_positive_negative(videos_and_stills):
  videos, stills, _ = videos_and_stills
  ds = pipelines.set_batches(videos, stills, 4, 6, seed=0, min_set_size=2)
  batches = _take(ds, 4)
  b = batches[0]
  h = videos["frames"].shape[2]
  assert b["frames"].shape == (4, 6, h, h, 3) and b["mask"].shape == (4, 6)
  assert b["positive"].shape == (4, h, h, 3) and b["negative"].shape == (4, h, h, 3)
  still_images = pipelines.to_model_range(stills["image"]).numpy()
  for batch in batches:
    n = batch["mask"].sum(1)
    assert np.all(n >= 2) and np.all(n <= 6)
    # masks are a prefix; padded members are zero
    for i in range(4):
      assert np.all(batch["mask"][i, : n[i]]) and not np.any(batch["mask"][i, n[i] :])
      assert np.all(batch["frames"][i, n[i] :] == 0)
      pos = np.flatnonzero(np.all(still_images == batch["positive"][i], axis=(1, 2, 3)))
      neg = np.flatnonzero(np.all(still_images == batch["negative"][i], axis=(1, 2, 3)))
      assert stills["label"][pos[0]] == batch["label"][i]
      assert stills["label"][neg[0]] != batch["label"][i]
      assert batch["negative_label"][i] == stills["label"][neg[0]]
      # members are distinct frames of the labelled video, in time order
      v = np.flatnonzero(videos["labels"] == batch["label"][i])
      frames = pipelines.to_model_range(videos["frames"][v]).numpy().reshape((-1,) + (h, h, 3))
      for m in range(n[i]):
        assert np.any(np.all(frames == batch["frames"][i, m], axis=(1, 2, 3)))
  resumed = _take(
    pipelines.set_batches(videos, stills, 4, 6, seed=0, min_set_size=2, start_batch=2), 1
  )[0]
  np.testing.assert_array_equal(resumed["frames"], batches[2]["frames"])


def test_set_batches_bad_input(videos_and_stills):
  videos, stills, _ = videos_and_stills
  with pytest.raises(ValueError, match="set_size"):
    pipelines.set_batches(videos, stills, 4, 0, seed=0)
  one_id = {"image": stills["image"][:1], "label": stills["label"][:1]}
  with pytest.raises(ValueError, match="identit"):
    pipelines.set_batches(videos, one_id, 4, 3, seed=0)


def test_occlusion_pairs_share_semantic_occluder(builder):
  ds = pipelines.occlusion_pair_batches(builder, "train", 6, seed=0, mode="static", fill="black")
  b = _take(ds, 1)[0]
  assert b["occluded"].shape == b["image"].shape
  m = b["occlusion_mask"]
  assert m.shape == b["image"].shape[:3] and np.all(m.reshape(6, -1).any(1))
  np.testing.assert_array_equal(b["occluded"][~m], b["image"][~m])
  assert np.all(b["occluded"][m] == -1.0)


def test_numpy_model_range_equals_the_tf_one_and_inverts_from_model_range():
  images = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1).repeat(3, axis=-1)
  ours = pipelines.to_model_range_np(images)
  assert ours.dtype == np.float32
  np.testing.assert_array_equal(ours, pipelines.to_model_range(images).numpy())
  np.testing.assert_array_equal(pipelines.from_model_range(ours), images)


def test_split_info_accepts_tfds_split_syntax_and_names_unknown_splits(builder):
  both = pipelines.split_info(builder, "video+video_extra").num_examples
  assert both == (
    builder.info.splits["video"].num_examples + builder.info.splits["video_extra"].num_examples
  )
  assert pipelines.split_info(builder, "test[:5]").num_examples == 5
  labels = pipelines.load_arrays(builder, "video+video_extra", ("label",))["label"]
  assert labels.shape == (both,)
  for bad in ("nope", "video+nope"):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
      pipelines.split_info(builder, bad)
