"""YouTube Faces: the pair list ``splits.txt`` and the ``aligned_images_DB/`` frames.

``splits.txt`` (as published with the data set): a header line ``split number, pair
number, first name, second name, is same``, then 5,000 lines ``split, pair, first video,
second video, is same`` separated by a comma and a space, e.g.
``1, 1, Aaron_Eckhart/0, Aaron_Eckhart/1, 1``; the 10 splits are contiguous blocks of 500
pairs. A video is ``<Name>/<video number>``; its frames are the images of
``aligned_images_DB/<Name>/<video number>/`` (``aligned_detect_<v>.<frame>.jpg``), read in
natural file-name order (``...2.99.jpg`` before ``...2.100.jpg``).

Crop policy: ``aligned_images_DB`` frames are centred on the face, whose detector box was
enlarged 2.2 times (YTF README); :func:`load_frame` keeps a centre square of side
``crop_fraction * min(H, W)`` (default 0.5, about the face box with a margin), resized to
the model's input side.

No paper equation lives here.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jfr.data import align
from jfr.data import image_files

DEFAULT_CROP_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class YtfPairs:
  """Attributes: ``path``; ``first``, ``second``: ``[P]`` videos ``'Name/3'``; ``same`` bool
  ``[P]``; ``split`` int64 ``[P]`` (1-based split number as in the file)."""

  path: str
  first: list
  second: list
  same: np.ndarray
  split: np.ndarray


def read_splits(path: str) -> YtfPairs:
  """Reads ``splits.txt`` (module docstring); the header line is optional.

  ValueError naming file and line for a row without 5 comma-separated fields, a non-integer
  split/pair number, an ``is same`` other than 0/1, or a video name without ``Name/video``.
  """
  if not os.path.isfile(path):
    raise ValueError(f"splits: {path!r} is not a file")
  first, second, same, split = [], [], [], []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      fields = [v.strip() for v in line.split(",")]
      if number == 1 and not fields[0].isdigit():
        continue  # the header
      if len(fields) != 5:
        raise ValueError(
          f"{path}:{number}: expected 'split, pair, first name, second name, is same', "
          f"got {line.strip()!r}"
        )
      try:
        s, _, flag = int(fields[0]), int(fields[1]), int(fields[4])
      except ValueError as e:
        raise ValueError(f"{path}:{number}: {e}") from e
      if flag not in (0, 1):
        raise ValueError(f"{path}:{number}: 'is same' must be 0 or 1, got {fields[4]!r}")
      for video in fields[2:4]:
        if video.count("/") != 1:
          raise ValueError(f"{path}:{number}: expected a video 'Name/number', got {video!r}")
      first.append(fields[2])
      second.append(fields[3])
      same.append(bool(flag))
      split.append(s)
  if not same:
    raise ValueError(f"{path}: no pairs")
  return YtfPairs(path, first, second, np.asarray(same, bool), np.asarray(split, np.int64))


def video_frames(root: str, video: str) -> list[str]:
  """Paths of the frames of ``video`` (``'Name/3'``) under ``root`` (``aligned_images_DB``),
  in natural order; ValueError if the folder is missing or holds no images."""
  folder = os.path.join(root, *video.split("/"))
  if not os.path.isdir(folder):
    raise ValueError(f"video {video!r}: no folder {folder!r}")
  _, images = image_files.list_folder(folder, image_files.SkipLog())
  if not images:
    raise ValueError(f"video {video!r}: {folder!r} holds no frames")
  return [os.path.join(folder, name) for name in images]


def load_frame(
  path: str, image_size: int, crop_fraction: float = DEFAULT_CROP_FRACTION
) -> np.ndarray:
  """One frame as uint8 ``[image_size, image_size, 3]`` (centre crop, module docstring)."""
  if not 0.0 < crop_fraction <= 1.0:
    raise ValueError(f"crop_fraction: expected a value in (0, 1], got {crop_fraction}")
  image = image_files.decode_image(path)
  h, w = image.shape[:2]
  side = crop_fraction * min(h, w)
  box = np.array([(w - side) / 2, (h - side) / 2, side, side])
  return align.warp(image, align.box_transforms(box, image_size), image_size)
