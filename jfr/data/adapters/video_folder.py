"""Video-frame data sets: ``root/<identity>/<video>/<frame>`` (YouTube Faces, VoxCeleb dumps).

Every frame is one example with the ``synthetic_faces`` features:

* ``label``: position of the identity folder name in sorted (lexicographic) order;
* ``video_id``: globally unique int, the position of ``(identity, video)`` in sorted
  order (identity folders sorted, then video folders sorted within an identity);
* ``frame_index``: 0-based position of the frame file in *natural* order of file names
  (digit runs compared as numbers, so YTF's 'aligned_detect_0.99.jpg' comes before
  'aligned_detect_0.100.jpg').

Examples are ordered by (video_id, frame_index), so ``jfr.data.pipelines.group_videos``
can rebuild the videos. Missing ground truth (attributes, landmarks, segmentation,
occluder mask) is filled with the sentinels of :mod:`jfr.data.adapters.common`.

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
class VideoFolderIndex:
  """The frames of a video-folder data set.

  Attributes:
    paths: [N] frame paths, ordered by video then frame.
    labels: int64 [N] identity labels; ``class_names[label]`` is the folder name.
    video_ids: int64 [N] in 0..V-1.
    frame_indices: int64 [N], 0..len(video)-1 within each video.
    class_names: sorted identity folder names.
    video_names: [V] ``(identity folder, video folder)`` per video id.
  """

  paths: tuple[str, ...]
  labels: np.ndarray
  video_ids: np.ndarray
  frame_indices: np.ndarray
  class_names: tuple[str, ...]
  video_names: tuple[tuple[str, str], ...]


def index_video_folder(
  root: str, extensions: Sequence[str] = common.IMAGE_EXTENSIONS
) -> VideoFolderIndex:
  """Lists ``root/<identity>/<video>/<frame>``.

  ValueError (naming the path) for: a missing root, files where folders are expected
  (in ``root`` or an identity folder), an identity folder without videos, a video
  folder without frames, sub-folders or non-image files in a video folder.
  """
  extensions = tuple(e.lower() for e in extensions)
  identities = common.list_subfolders(root, "identity")
  paths, labels, video_ids, frames, video_names = [], [], [], [], []
  for label, identity in enumerate(identities):
    identity_dir = os.path.join(root, identity)
    for video in common.list_subfolders(identity_dir, "video"):
      files = common.list_images(os.path.join(identity_dir, video), extensions)
      if not files:
        raise ValueError(f"video folder {os.path.join(identity_dir, video)!r} holds no frames")
      paths += files
      labels += [label] * len(files)
      video_ids += [len(video_names)] * len(files)
      frames += list(range(len(files)))
      video_names.append((identity, video))
  return VideoFolderIndex(
    tuple(paths),
    np.asarray(labels, np.int64),
    np.asarray(video_ids, np.int64),
    np.asarray(frames, np.int64),
    tuple(identities),
    tuple(video_names),
  )


def video_folder_dataset(
  root: str,
  image_size: common.ImageSize,
  *,
  resize: bool = True,
  check: str = "header",
  attribute_names: Sequence[str] = common.JFR_ATTRIBUTE_NAMES,
  extensions: Sequence[str] = common.IMAGE_EXTENSIONS,
  num_workers: Optional[int] = None,
) -> tuple[tf.data.Dataset, common.AdapterInfo]:
  """A tf.data.Dataset of per-frame jfr feature dicts from ``root/<identity>/<video>/<frame>``.

  Files are validated first (ValueError naming an unreadable frame, or one of another
  size when ``resize=False``). Unreadable frames are never skipped here: a dropped frame
  would silently renumber ``frame_index``.

  Args:
    root: data set folder.
    image_size: int or (H, W) of the output frames.
    resize: stretch frames to ``image_size`` (True) or require that size (False).
    check: 'header' or 'decode' (see :func:`common.check_images`).
    attribute_names: names (and length A) of the all-False ``attributes`` vector.
    extensions: accepted frame file extensions.
    num_workers: threads for validation.

  Returns:
    ``(dataset, info)`` with ``info.num_videos`` set; finite, ordered by (video, frame).
  """
  hw = common.image_hw(image_size)
  index = index_video_folder(root, extensions)
  common.check_images(
    index.paths,
    hw=None if resize else hw,
    check=check,
    skip_unreadable=False,
    num_workers=num_workers,
  )
  info = common.AdapterInfo(
    name=f"video_folder:{root}",
    image_size=hw,
    num_examples=len(index.paths),
    class_names=index.class_names,
    attribute_names=tuple(attribute_names),
    has_labels=True,
    has_attributes=False,
    num_videos=len(index.video_names),
  )
  common.log_missing(info)
  ds = common.files_dataset(
    list(index.paths),
    index.labels,
    index.video_ids,
    index.frame_indices,
    hw,
    resize,
    len(attribute_names),
  )
  return ds, info
