"""Shared pieces of the real-data adapters: the jfr feature dict, sentinels, image files.

Every adapter yields examples with exactly the features of the ``synthetic_faces``
builder, so pipelines and trainers do not care where data come from:

=================  ==================  =============================================
feature            dtype / shape       sentinel when the source has no ground truth
=================  ==================  =============================================
``image``          uint8 [H, W, 3]     (always present)
``label``          int64 []            ``-1`` (identity unknown)
``attributes``     bool [A]            all ``False``
``landmarks``      float32 [68, 2]     all ``NaN``
``segmentation``   uint8 [H, W]        all ``SEGMENTATION_UNKNOWN`` (255)
``occluder_mask``  bool [H, W]         all ``False``
``video_id``       int64 []            ``-1`` for stills (as in synthetic_faces)
``frame_index``    int64 []            ``-1`` for stills
=================  ==================  =============================================

Boolean features have no out-of-band value, so "missing" is recorded per data set in
:class:`AdapterInfo` (``has_labels``, ``has_attributes``, ``has_landmarks``,
``has_segmentation``, ``has_occluder_mask``) and every adapter logs (absl, WARNING) what
it fills with sentinels. NaN landmarks make ``jfr.data.augment.occlude_batch`` fail
loudly instead of occluding nothing.

No paper equation lives here.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
from typing import Optional, Sequence, Union

from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from jfr.data import face_renderer
from jfr.data import image_files

NUM_LANDMARKS = face_renderer.NUM_LANDMARKS
# Attribute vector of synthetic_faces (the first ten are the attributes paper's
# "identity facial attributes"); every name is also a CelebA attribute.
JFR_ATTRIBUTE_NAMES: tuple[str, ...] = face_renderer.ATTRIBUTE_NAMES
# Label of "no segmentation ground truth" (synthetic part ids are 0..len(PART_NAMES)-1).
SEGMENTATION_UNKNOWN = 255
NO_LABEL = -1
STILL = -1  # video_id / frame_index of a still image
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
_PIL_FORMATS = ("JPEG", "PNG", "BMP", "MPO")  # MPO: multi-picture JPEG from cameras

ImageSize = Union[int, Sequence[int]]


@dataclasses.dataclass(frozen=True)
class AdapterInfo:
  """What an adapter's data set holds (the metadata next to the features).

  Attributes:
    name: adapter / source name.
    image_size: (H, W) of every ``image``.
    num_examples: number of examples (-1 when unknown).
    class_names: identity names; ``class_names[label]`` (empty when labels are absent).
    attribute_names: names of the ``attributes`` entries.
    has_labels, has_attributes, has_landmarks, has_segmentation, has_occluder_mask:
      False where the feature holds the sentinel of the module table.
    num_videos: number of distinct ``video_id`` values (0 for stills).
  """

  name: str
  image_size: tuple[int, int]
  num_examples: int
  class_names: tuple[str, ...]
  attribute_names: tuple[str, ...]
  has_labels: bool
  has_attributes: bool
  has_landmarks: bool = False
  has_segmentation: bool = False
  has_occluder_mask: bool = False
  num_videos: int = 0

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def missing(self) -> tuple[str, ...]:
    """Names of the features filled with sentinels."""
    flags = (
      ("label", self.has_labels),
      ("attributes", self.has_attributes),
      ("landmarks", self.has_landmarks),
      ("segmentation", self.has_segmentation),
      ("occluder_mask", self.has_occluder_mask),
    )
    return tuple(name for name, present in flags if not present)


_SENTINEL_TEXT = {
  "label": "-1",
  "attributes": "all False",
  "landmarks": "NaN",
  "segmentation": str(SEGMENTATION_UNKNOWN),
  "occluder_mask": "all False",
}


def log_missing(info: AdapterInfo) -> None:
  """Logs (WARNING) which features of ``info``'s data set are sentinels."""
  missing = info.missing()
  if missing:
    logging.warning(
      "%s: no ground truth for %s; filled with sentinels (%s). See AdapterInfo.has_*.",
      info.name,
      ", ".join(missing),
      ", ".join(f"{m} {_SENTINEL_TEXT[m]}" for m in missing),
    )


def image_hw(image_size: ImageSize) -> tuple[int, int]:
  """int or (H, W) -> validated (H, W)."""
  if isinstance(image_size, (int, np.integer)):
    hw = (int(image_size), int(image_size))
  else:
    try:
      hw = tuple(int(v) for v in image_size)
    except (TypeError, ValueError) as e:
      raise ValueError(f"image_size must be an int or (H, W), got {image_size!r}") from e
  if len(hw) != 2 or min(hw) <= 0:
    raise ValueError(f"image_size must be a positive int or (H, W), got {image_size!r}")
  return hw


def resize_uint8(image: tf.Tensor, hw: tuple[int, int]) -> tf.Tensor:
  """Bilinear (antialiased) resize of a uint8 image to ``hw``, rounded back to uint8."""
  resized = tf.image.resize(tf.cast(image, tf.float32), hw, method="bilinear", antialias=True)
  return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)


def make_features(
  image: tf.Tensor,
  label,
  attributes: tf.Tensor,
  video_id,
  frame_index,
  landmarks: Optional[tf.Tensor] = None,
) -> dict[str, tf.Tensor]:
  """A full jfr feature dict; absent landmarks / segmentation / occluder mask get sentinels.

  Args:
    image: uint8 [H, W, 3] (static H, W).
    label, video_id, frame_index: int scalars.
    attributes: bool [A].
    landmarks: optional float32 [68, 2]; ``None`` -> NaN.
  """
  h, w = image.shape[0], image.shape[1]
  if landmarks is None:
    landmarks = tf.fill([NUM_LANDMARKS, 2], tf.constant(np.nan, tf.float32))
  return {
    "image": image,
    "label": tf.cast(label, tf.int64),
    "attributes": tf.cast(attributes, tf.bool),
    "landmarks": tf.cast(landmarks, tf.float32),
    "segmentation": tf.fill([h, w], tf.constant(SEGMENTATION_UNKNOWN, tf.uint8)),
    "occluder_mask": tf.zeros([h, w], tf.bool),
    "video_id": tf.cast(video_id, tf.int64),
    "frame_index": tf.cast(frame_index, tf.int64),
  }


# ------------------------------------------------------------------------ image files


def natural_key(name: str) -> list:
  """Sort key comparing digit runs as numbers: 'f2.jpg' < 'f10.jpg'."""
  return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def list_images(folder: str, extensions: Sequence[str]) -> list[str]:
  """Image files directly in ``folder`` (natural order); ValueError on anything else.

  Hidden and system entries (``.DS_Store``, ``Thumbs.db``, ...; see
  :func:`jfr.data.image_files.is_system_file`) are skipped and logged; sub-folders and
  files with other extensions are errors (nothing else is skipped).
  """
  images = []
  for entry in sorted(os.scandir(folder), key=lambda e: natural_key(e.name)):
    if image_files.is_system_file(entry.name):
      logging.warning("skipping system file %r", entry.path)
      continue
    if entry.is_dir():
      raise ValueError(f"unexpected folder {entry.path!r}: expected only image files here")
    if os.path.splitext(entry.name)[1].lower() not in extensions:
      raise ValueError(
        f"unexpected file {entry.path!r}: image extensions are "
        f"{tuple(extensions)} (pass extensions=... to accept others)"
      )
    images.append(entry.path)
  return images


def list_subfolders(folder: str, what: str) -> list[str]:
  """Sorted sub-folder names of ``folder``; ValueError on files or if there are none."""
  if not os.path.isdir(folder):
    raise ValueError(f"{what} root {folder!r} does not exist or is not a directory")
  names = []
  for entry in os.scandir(folder):
    if image_files.is_system_file(entry.name):
      logging.warning("skipping system file %r", entry.path)
      continue
    if not entry.is_dir():
      raise ValueError(f"unexpected file {entry.path!r}: expected only {what} folders here")
    names.append(entry.name)
  if not names:
    raise ValueError(f"{what} root {folder!r} holds no folders")
  return sorted(names)


def _check_one(path: str, full: bool) -> tuple[Optional[str], Optional[tuple[int, int]]]:
  """(error message or None, (H, W) or None) for one image file."""
  try:
    with Image.open(path) as im:
      if im.format not in _PIL_FORMATS:
        return f"format {im.format} is not one of {_PIL_FORMATS}", None
      if full:
        im.load()
      return None, (im.height, im.width)
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many kinds)
    return f"{type(e).__name__}: {e}", None


def check_images(
  paths: Sequence[str],
  *,
  hw: Optional[tuple[int, int]],
  check: str,
  skip_unreadable: bool,
  num_workers: Optional[int] = None,
) -> np.ndarray:
  """Validates image files before any tf.data reading.

  Args:
    paths: image files.
    hw: required (H, W) (``resize=False``), or None to accept any size.
    check: 'header' (format and size from the header: fast) or 'decode' (also decodes
      every pixel, which catches truncated files).
    skip_unreadable: False -> ValueError naming the first unreadable file; True ->
      such files are dropped and their count and first paths logged (WARNING). A wrong
      size is always an error.
    num_workers: threads (default: ``os.cpu_count()``).

  Returns:
    bool [len(paths)]: which paths to keep.
  """
  if check not in ("header", "decode"):
    raise ValueError(f"check must be 'header' or 'decode', got {check!r}")
  with concurrent.futures.ThreadPoolExecutor(num_workers or os.cpu_count()) as pool:
    results = list(pool.map(lambda p: _check_one(p, check == "decode"), paths))
  keep = np.ones(len(paths), bool)
  for i, (path, (error, size)) in enumerate(zip(paths, results)):
    if error is not None:
      if not skip_unreadable:
        raise ValueError(f"unreadable image {path!r}: {error}")
      keep[i] = False
    elif hw is not None and size != tuple(hw):
      raise ValueError(
        f"image {path!r} is {size[0]}x{size[1]} (HxW) but image_size is "
        f"{hw[0]}x{hw[1]} and resize=False"
      )
  if not keep.all():
    dropped = [p for p, k in zip(paths, keep) if not k]
    logging.warning(
      "skipped %d unreadable image(s) (skip_unreadable=True), e.g. %s", len(dropped), dropped[:5]
    )
  return keep


def load_image(path: tf.Tensor, hw: tuple[int, int], resize: bool) -> tf.Tensor:
  """Reads and decodes an image file to uint8 [H, W, 3] (resized to ``hw`` if asked)."""
  image = tf.io.decode_image(
    tf.io.read_file(path), channels=3, dtype=tf.uint8, expand_animations=False
  )
  if resize:
    return resize_uint8(image, hw)
  return tf.ensure_shape(image, [hw[0], hw[1], 3])


def files_dataset(
  paths: Sequence[str],
  labels: np.ndarray,
  video_ids: np.ndarray,
  frame_indices: np.ndarray,
  hw: tuple[int, int],
  resize: bool,
  num_attributes: int,
) -> tf.data.Dataset:
  """tf.data of jfr feature dicts from image files (attributes all False)."""
  ds = tf.data.Dataset.from_tensor_slices(
    (
      np.asarray(paths, dtype=object).astype(str),
      np.asarray(labels, np.int64),
      np.asarray(video_ids, np.int64),
      np.asarray(frame_indices, np.int64),
    )
  )
  no_attributes = tf.zeros([num_attributes], tf.bool)

  def load(path, label, video_id, frame_index):
    return make_features(load_image(path, hw, resize), label, no_attributes, video_id, frame_index)

  return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
