"""Identity-folder data sets: ``root/<identity>/<image>`` (CASIA-WebFace, MS1M, VGGFace2).

Labels are the positions of the identity folder names in sorted (lexicographic) order.
Images are expected to be aligned face crops; with ``resize=True`` they are stretched to
``image_size`` (no cropping), with ``resize=False`` every image must already have that
size. Output examples carry the features of ``synthetic_faces`` (see
:mod:`jfr.data.adapters.common` for the sentinels of the missing ground truth:
attributes, landmarks, segmentation, occluder mask; ``video_id = frame_index = -1``).

No paper equation lives here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from jfr.data.adapters import common


@dataclasses.dataclass(frozen=True)
class ImageFolderIndex:
  """The files of an identity-folder data set.

  Attributes:
    paths: [N] image paths (identity-major; natural order of file names within an
      identity: 'img2' before 'img10').
    labels: int64 [N] identity labels, ``class_names[labels[i]]`` is the folder name.
    class_names: sorted identity folder names.
  """

  paths: tuple[str, ...]
  labels: np.ndarray
  class_names: tuple[str, ...]


def index_image_folder(
  root: str, extensions: Sequence[str] = common.IMAGE_EXTENSIONS
) -> ImageFolderIndex:
  """Lists ``root/<identity>/<image>``.

  ValueError for: a missing root, a root with no identity folders or with files, an
  identity folder with no images, sub-folders or non-image files in an identity folder
  (each message names the path).
  """
  extensions = tuple(e.lower() for e in extensions)
  names = common.list_subfolders(root, "identity")
  paths, labels = [], []
  for label, name in enumerate(names):
    files = common.list_images(os.path.join(root, name), extensions)
    if not files:
      raise ValueError(f"identity folder {os.path.join(root, name)!r} holds no images")
    paths += files
    labels += [label] * len(files)
  return ImageFolderIndex(tuple(paths), np.asarray(labels, np.int64), tuple(names))


def image_folder_dataset(
  root: str,
  image_size: common.ImageSize,
  *,
  resize: bool = True,
  check: str = "header",
  skip_unreadable: bool = False,
  shuffle_seed: Optional[int] = None,
  attribute_names: Sequence[str] = common.JFR_ATTRIBUTE_NAMES,
  extensions: Sequence[str] = common.IMAGE_EXTENSIONS,
  num_workers: Optional[int] = None,
) -> tuple[tf.data.Dataset, common.AdapterInfo]:
  """A tf.data.Dataset of jfr feature dicts from ``root/<identity>/<image>``.

  Every file is validated before reading (:func:`common.check_images`): an unreadable
  image raises ValueError naming its path unless ``skip_unreadable=True`` (then the
  files are dropped and their count logged); with ``resize=False`` an image of another
  size raises ValueError naming the path.

  Args:
    root: data set folder.
    image_size: int or (H, W) of the output images.
    resize: stretch every image to ``image_size`` (True) or require that size (False).
    check: 'header' (fast) or 'decode' (also catches truncated files).
    skip_unreadable: drop (and log) unreadable files instead of raising.
    shuffle_seed: None keeps identity-major order; an int shuffles the file order
      (NumPy ``default_rng(shuffle_seed)``), which helps shuffle buffers on big sets.
    attribute_names: names (and length A) of the all-False ``attributes`` vector.
    extensions: accepted image file extensions (lower case, with dot).
    num_workers: threads for validation.

  Returns:
    ``(dataset, info)``; the dataset is finite (one pass) and deterministic.
  """
  hw = common.image_hw(image_size)
  index = index_image_folder(root, extensions)
  keep = common.check_images(
    index.paths,
    hw=None if resize else hw,
    check=check,
    skip_unreadable=skip_unreadable,
    num_workers=num_workers,
  )
  paths = np.asarray(index.paths, dtype=object)[keep]
  labels = index.labels[keep]
  if shuffle_seed is not None:
    order = np.random.default_rng(shuffle_seed).permutation(len(paths))
    paths, labels = paths[order], labels[order]
  still = np.full(len(paths), common.STILL, np.int64)
  info = common.AdapterInfo(
    name=f"image_folder:{root}",
    image_size=hw,
    num_examples=len(paths),
    class_names=index.class_names,
    attribute_names=tuple(attribute_names),
    has_labels=True,
    has_attributes=False,
  )
  common.log_missing(info)
  ds = common.files_dataset(list(paths), labels, still, still, hw, resize, len(attribute_names))
  return ds, info
