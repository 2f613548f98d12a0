"""Writes a :class:`~jfr.data.formats.source.Source` as a tfds data set, shard by shard.

Layout: ``<data_dir>/<name>/1.0.0/`` holds tfds's files (``<name>-<split>.tfrecord-
XXXXX-of-YYYYY``, ``dataset_info.json``, ``features.json``), readable with
``tfds.builder_from_directory`` (``jfr.data.pipelines.prepare_builder`` does that);
``<data_dir>/<name>/prepare_report.json`` is the report (and marks a jfr-prepared set).

Features: those of ``synthetic_faces`` plus ``landmarks5`` (float32 [5, 2], the five
points in the aligned image). Missing ground truth holds sentinels and the data set's
metadata says what is real (``present``): label -1; attributes all False; landmarks
(iBUG-68) NaN; landmarks5 NaN; segmentation 255; occluder_mask False; video_id and
frame_index -1 for stills.

Splits (:func:`plan_splits`): the data set's own split where it has one (CelebA), else
identity-disjoint ``train`` / ``test`` (a seeded draw of test identities). Labels are
renumbered: train identities ``0..C_train-1`` (in the source's order), then test
identities. Video sources also get ``train_video`` / ``video`` (all frames of the train /
test identities), and ``train`` / ``test`` hold ``stills_per_video`` evenly spaced frames
per video as stills. Still splits are stored in a seeded random order (shuffle buffers
see many identities); video splits in (video, frame) order.

Resuming: every shard is written to a temporary file, renamed when complete, and
recorded in ``_shards/<split>-XXXXX.json`` (count, bytes, skipped files); a rerun with
the same arguments skips recorded shards. ``_prepare_state.json`` holds the arguments;
a rerun with other arguments is refused.

No paper equation lives here.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from jfr.data import align as align_lib
from jfr.data import image_files
from jfr.data.formats.source import OWN_SPLIT_CODES, Source
from jfr.data.synthetic_faces import ATTRIBUTE_NAMES

VERSION = "1.0.0"
REPORT = "prepare_report.json"
SEGMENTATION_UNKNOWN = 255
SENTINELS = {
  "label": -1,
  "attributes": "all False",
  "landmarks": "NaN",
  "landmarks5": "NaN",
  "segmentation": SEGMENTATION_UNKNOWN,
  "occluder_mask": "all False",
  "video_id": -1,
  "frame_index": -1,
}


def features(image_size: int, num_classes: int, class_names=None) -> tfds.features.FeaturesDict:
  """The synthetic_faces features (plus ``landmarks5``) for ``image_size`` images."""
  s = image_size
  label = (
    tfds.features.ClassLabel(names=list(class_names))
    if class_names
    else tfds.features.ClassLabel(num_classes=max(1, num_classes))
  )
  return tfds.features.FeaturesDict(
    {
      "image": tfds.features.Image(shape=(s, s, 3)),
      "label": label,
      "attributes": tfds.features.Tensor(shape=(len(ATTRIBUTE_NAMES),), dtype=np.bool_),
      "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
      "landmarks5": tfds.features.Tensor(shape=(5, 2), dtype=np.float32),
      "segmentation": tfds.features.Tensor(shape=(s, s), dtype=np.uint8, encoding="zlib"),
      "occluder_mask": tfds.features.Tensor(shape=(s, s), dtype=np.bool_, encoding="zlib"),
      "video_id": tfds.features.Scalar(dtype=np.int64),
      "frame_index": tfds.features.Scalar(dtype=np.int64),
    }
  )


def _num_test(spec: str, num_identities: int) -> int:
  value = float(spec)
  count = int(value) if value >= 1 else int(round(value * num_identities))
  if not 1 <= count < num_identities:
    raise ValueError(
      f"test_identities: {spec!r} gives {count} test identities of {num_identities}; "
      "need at least 1 and at least 1 train identity"
    )
  return count


def plan_splits(source: Source, test_identities: str, seed: int, stills_per_video: int):
  """-> ({split: (rows int64 [n], as_still bool [n])}, new label of each old label, counts).

  ``test_identities``: 'auto' (the source's own split if any, else 0.1), a fraction < 1
  of the identities, or a count.
  """
  labels = source.labels
  known = np.unique(labels[labels >= 0])
  rng = np.random.default_rng(seed)
  own = source.own_split is not None and test_identities == "auto"
  if own:
    train_rows = source.own_split == OWN_SPLIT_CODES["train"]
    train_ids = np.unique(labels[train_rows & (labels >= 0)])
    test_ids = np.setdiff1d(known, train_ids)
  else:
    if known.size < 2:
      raise ValueError(f"{source.format}: {known.size} identities; a train/test split needs >= 2")
    spec = "0.1" if test_identities == "auto" else test_identities
    test_ids = np.sort(rng.choice(known, _num_test(spec, known.size), replace=False))
    train_ids = np.setdiff1d(known, test_ids)
  new_label = np.full(len(source.class_names) + 1, -1, np.int64)  # [-1] stays -1
  new_label[train_ids] = np.arange(train_ids.size)
  new_label[test_ids] = train_ids.size + np.arange(test_ids.size)
  is_test_id = np.isin(labels, test_ids)
  still = source.video_ids < 0
  splits = {}
  if own:
    for name, code in OWN_SPLIT_CODES.items():
      rows = np.flatnonzero(still & (source.own_split == code))
      splits[name] = (rng.permutation(rows), np.ones(rows.size, bool))
  else:
    for name, mask in (("train", ~is_test_id), ("test", is_test_id)):
      rows = np.flatnonzero(still & mask)
      if source.has_videos:
        rows = np.concatenate([rows, _video_stills(source, mask, stills_per_video)])
      splits[name] = (rng.permutation(rows), np.ones(rows.size, bool))
    if source.has_videos:
      for name, mask in (("train_video", ~is_test_id), ("video", is_test_id)):
        rows = np.flatnonzero(~still & mask)
        splits[name] = (rows, np.zeros(rows.size, bool))
  splits = {k: v for k, v in splits.items() if v[0].size}
  return splits, new_label, (int(train_ids.size), int(test_ids.size))


def _video_stills(source: Source, mask: np.ndarray, per_video: int) -> np.ndarray:
  """Up to ``per_video`` evenly spaced frames of every video selected by ``mask``."""
  rows = []
  selected = mask & (source.video_ids >= 0)
  for vid in np.unique(source.video_ids[selected]):
    frames = np.flatnonzero(source.video_ids == vid)
    pick = np.unique(np.linspace(0, frames.size - 1, min(per_video, frames.size)).round())
    rows.append(frames[pick.astype(int)])
  return np.concatenate(rows) if rows else np.zeros(0, np.int64)


class ExampleMaker:
  """Row -> feature dict (image encoded), run in worker threads (PIL releases the GIL)."""

  def __init__(self, source: Source, image_size: int, align: str, new_label, **options):
    if align not in align_lib.ALIGN_MODES:
      raise ValueError(f"align: expected one of {align_lib.ALIGN_MODES}, got {align!r}")
    if align == "five_point" and source.landmarks5 is None:
      raise ValueError(f"align=five_point: the {source.format} data carry no five landmarks")
    if align == "box" and source.boxes is None:
      raise ValueError(f"align=box: the {source.format} data carry no face boxes")
    self.source, self.size, self.align, self.new_label = source, image_size, align, new_label
    self.margin = options.get("margin", 0.2)
    self.image_format = options.get("image_format", "png")
    s = image_size
    self._constant = {
      "landmarks": np.full((68, 2), np.nan, np.float32),
      "segmentation": np.full((s, s), SEGMENTATION_UNKNOWN, np.uint8),
      "occluder_mask": np.zeros((s, s), bool),
    }
    self._no_attributes = np.zeros(len(ATTRIBUTE_NAMES), bool)

  def transform(self, i: int, height: int, width: int) -> tuple[np.ndarray, str]:
    """The [2, 3] source -> output transform of row i, and the alignment used."""
    src = self.source
    if self.align == "five_point" and np.all(np.isfinite(src.landmarks5[i])):
      return align_lib.five_point_transforms(src.landmarks5[i], self.size), "five_point"
    if self.align in ("five_point", "box") and src.boxes is not None:
      if np.all(np.isfinite(src.boxes[i])) and np.all(src.boxes[i][2:] > 0):
        return align_lib.box_transforms(src.boxes[i], self.size, self.margin), "box"
    side = min(height, width)  # centre square crop, no stretching
    box = np.array([(width - side) / 2, (height - side) / 2, side, side])
    return align_lib.box_transforms(box, self.size, 0.0), "centre_crop"

  def __call__(self, job: tuple[int, bool]):
    """-> (example dict, alignment used) or (None, UnreadableImageError)."""
    i, as_still = job
    src = self.source
    try:
      data = src.reader(i)
      image = image_files.decode_image(data, name=src.describe(i))
    except (ValueError, OSError) as e:
      if isinstance(e, image_files.UnreadableImageError):
        return None, e
      return None, image_files.UnreadableImageError(src.describe(i), str(e))
    h, w = image.shape[:2]
    keep = self.align == "none" and (h, w) == (self.size, self.size)
    if keep:  # already aligned crops (RecordIO): keep the checked bytes, no re-encoding
      matrix, used = np.array([[1.0, 0, 0], [0, 1, 0]]), "kept"
      encoded = data
    else:
      matrix, used = self.transform(i, h, w)
      encoded = image_files.encode_image(
        align_lib.warp(image, matrix, self.size), self.image_format
      )
    landmarks5 = np.full((5, 2), np.nan, np.float32)
    if src.landmarks5 is not None and np.all(np.isfinite(src.landmarks5[i])):
      landmarks5 = align_lib.transform_points(src.landmarks5[i], matrix).astype(np.float32)
    example = {
      "image": encoded,
      "label": int(self.new_label[src.labels[i]]),
      "attributes": src.attributes[i] if src.attributes is not None else self._no_attributes,
      "landmarks5": landmarks5,
      "video_id": -1 if as_still else int(src.video_ids[i]),
      "frame_index": -1 if as_still else int(src.frame_indices[i]),
      **self._constant,
    }
    return example, used


def shard_path(out_dir: str, name: str, split: str, k: int, num: int) -> str:
  return os.path.join(out_dir, f"{name}-{split}.tfrecord-{k:05d}-of-{num:05d}")


def write_split(
  out_dir: str,
  name: str,
  split: str,
  jobs: list,
  maker: ExampleMaker,
  feature_spec: tfds.features.FeaturesDict,
  *,
  shard_size: int,
  pool: concurrent.futures.Executor,
  skip_unreadable: bool,
  progress: Optional[Callable[[int], None]] = None,
) -> dict:
  """Writes (or resumes) one split; returns ``{shard_lengths, num_bytes, skipped, alignment}``."""
  num = max(1, -(-len(jobs) // shard_size))
  done_dir = os.path.join(out_dir, "_shards")
  os.makedirs(done_dir, exist_ok=True)
  lengths, total_bytes, skipped, used_counts = [], 0, image_files.SkipLog(), {}
  for k in range(num):
    record = os.path.join(done_dir, f"{split}-{k:05d}.json")
    chunk = jobs[k * shard_size : (k + 1) * shard_size]
    if os.path.isfile(record):
      with open(record, encoding="utf-8") as f:
        info = json.load(f)
      if progress:
        progress(len(chunk))
    else:
      info = _write_shard(
        shard_path(out_dir, name, split, k, num),
        chunk,
        maker,
        feature_spec,
        pool,
        skip_unreadable,
        progress,
      )
      with open(record + ".tmp", "w", encoding="utf-8") as f:
        json.dump(info, f)
      os.replace(record + ".tmp", record)
    lengths.append(info["count"])
    total_bytes += info["bytes"]
    for reason, paths in info["skipped"].items():
      for p in paths:
        skipped.add(reason, p)
    for key, value in info["alignment"].items():
      used_counts[key] = used_counts.get(key, 0) + value
  return {
    "shard_lengths": lengths,
    "num_bytes": total_bytes,
    "skipped": skipped,
    "alignment": used_counts,
  }


def _write_shard(path, chunk, maker, feature_spec, pool, skip_unreadable, progress) -> dict:
  tmp = path + ".tmp"
  count, skipped, used_counts = 0, {}, {}
  try:
    with tf.io.TFRecordWriter(tmp) as writer:
      for example, used in pool.map(maker, chunk, chunksize=16):
        if progress:
          progress(1)
        if example is None:
          if not skip_unreadable:
            raise used
          skipped.setdefault("unreadable", []).append(used.path + ": " + used.reason)
          continue
        writer.write(feature_spec.serialize_example(example))
        count += 1
        used_counts[used] = used_counts.get(used, 0) + 1
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  os.replace(tmp, path)
  return {
    "count": count,
    "bytes": os.path.getsize(path),
    "skipped": skipped,
    "alignment": used_counts,
  }


def check_state(out_dir: str, state: dict) -> None:
  """Records the arguments of a preparation, or refuses to resume one with others."""
  path = os.path.join(out_dir, "_prepare_state.json")
  if os.path.isfile(path):
    with open(path, encoding="utf-8") as f:
      old = json.load(f)
    if old != state:
      changed = sorted(k for k in set(old) | set(state) if old.get(k) != state.get(k))
      raise ValueError(
        f"{out_dir} holds a preparation made with other arguments ({changed}); "
        "remove it or choose another --name"
      )
    return
  os.makedirs(out_dir, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(state, f, indent=1)


def write_info(out_dir: str, feature_spec, split_results: dict, metadata: dict, description: str):
  """Writes tfds's ``dataset_info.json`` / ``features.json`` for the finished shards."""
  split_infos = [
    tfds.core.SplitInfo(
      name=split,
      shard_lengths=result["shard_lengths"],
      num_bytes=result["num_bytes"],
      filename_template=None,
    )
    for split, result in split_results.items()
  ]
  tfds.folder_dataset.write_metadata(
    data_dir=out_dir,
    features=feature_spec,
    split_infos=split_infos,
    check_data=False,
    description=description,
    metadata=tfds.core.MetadataDict(metadata),
    supervised_keys=("image", "label"),
  )
