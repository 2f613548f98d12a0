"""Identity folders: ``root/<identity>/<image>`` (CASIA-WebFace, LFW, VGGFace2, exports).

* CASIA-WebFace ``0000045/001.jpg``; LFW ``lfw/<Name>/<Name>_0001.jpg`` and the
  deep-funneled ``lfw-deepfunneled/<Name>/...`` (same layout): format ``folders``.
* VGGFace2 ``train/n000002/0001_01.jpg`` with ``bb_landmark/loose_bb_train.csv``
  (``NAME_ID,X,Y,W,H``) and ``bb_landmark/loose_landmark_train.csv`` (``NAME_ID,P1X,P1Y,
  ..., P5X,P5Y``; left eye, right eye, nose, left / right mouth corner), ``NAME_ID`` being
  ``n000002/0001_01``: format ``vggface2``. The CSVs are looked for in ``bb_landmark/``
  next to, inside, or in ``meta/`` next to the input folder; the split name (``train`` /
  ``test``) is the input folder's name. Images are aligned with the five points
  (default) or cropped with the boxes (``--align=box``).

Labels: position of the identity folder in natural order. Hidden / system files are
skipped and counted; empty identity folders skipped with a warning
(:func:`jfr.data.formats.source.scan_identity_folders`).

No paper equation lives here.
"""

from __future__ import annotations

import csv
import os
from typing import Optional

import numpy as np

from jfr.data import image_files
from jfr.data.formats import source as source_lib


def index_folders(root: str) -> source_lib.Source:
  """``root/<identity>/<image>`` -> Source (no ground truth besides labels)."""
  skipped = image_files.SkipLog()
  names, per_identity = source_lib.scan_identity_folders(root, skipped)
  paths = [p for ps in per_identity for p in ps]
  labels = np.repeat(np.arange(len(names)), [len(ps) for ps in per_identity])
  return source_lib.file_source("folders", root, paths, labels, names, skipped=skipped)


def read_vggface2_csv(path: str, columns: int) -> dict[str, np.ndarray]:
  """A VGGFace2 ``bb_landmark`` CSV -> {NAME_ID: float32 [columns]}; errors name file:line."""
  table = {}
  with open(path, newline="", encoding="utf-8") as f:
    rows = csv.reader(f)
    header = next(rows, None)
    if not header or header[0].strip() != "NAME_ID" or len(header) != columns + 1:
      raise ValueError(f"{path}:1: expected a 'NAME_ID' header with {columns} value columns")
    for number, row in enumerate(rows, start=2):
      if not row:
        continue
      if len(row) != columns + 1:
        raise ValueError(f"{path}:{number}: expected {columns + 1} fields, got {len(row)}")
      try:
        table[row[0].strip()] = np.asarray([float(v) for v in row[1:]], np.float32)
      except ValueError as e:
        raise ValueError(f"{path}:{number}: {e}") from e
  return table


def _find_bb_landmark(root: str, name: str) -> Optional[str]:
  parent = os.path.dirname(os.path.abspath(root))
  for folder in (
    os.path.join(parent, "bb_landmark"),
    os.path.join(root, "bb_landmark"),
    os.path.join(parent, "meta", "bb_landmark"),
  ):
    if os.path.isfile(os.path.join(folder, name)):
      return os.path.join(folder, name)
  return None


def index_vggface2(root: str) -> source_lib.Source:
  """VGGFace2 ``<split>/<identity>/<image>`` + ``bb_landmark`` CSVs -> Source.

  Rows without a CSV entry get NaN landmarks / boxes (counted in ``notes``).
  """
  base = index_folders(root)
  split = os.path.basename(os.path.normpath(root))
  landmark_csv = _find_bb_landmark(root, f"loose_landmark_{split}.csv")
  box_csv = _find_bb_landmark(root, f"loose_bb_{split}.csv")
  if landmark_csv is None and box_csv is None:
    raise ValueError(
      f"vggface2: no bb_landmark/loose_landmark_{split}.csv or loose_bb_{split}.csv next to "
      f"{root!r} (use --format=folders for identity folders without them)"
    )
  keys = [
    os.path.splitext(os.path.relpath(base.describe(i), root))[0].replace(os.sep, "/")
    for i in range(len(base))
  ]
  notes = dict(base.notes)
  landmarks = boxes = None
  if landmark_csv:
    table = read_vggface2_csv(landmark_csv, 10)
    landmarks = np.full((len(keys), 5, 2), np.nan, np.float32)
    for i, key in enumerate(keys):
      if key in table:
        landmarks[i] = table[key].reshape(5, 2)
    notes["landmarks_csv"] = landmark_csv
    notes["images_without_landmarks"] = int(np.isnan(landmarks[:, 0, 0]).sum())
  if box_csv:
    table = read_vggface2_csv(box_csv, 4)
    boxes = np.full((len(keys), 4), np.nan, np.float32)
    for i, key in enumerate(keys):
      if key in table:
        boxes[i] = table[key]
    notes["boxes_csv"] = box_csv
    notes["images_without_boxes"] = int(np.isnan(boxes[:, 0]).sum())
  base.format = "vggface2"
  base.landmarks5 = landmarks
  base.boxes = boxes
  base.default_align = "five_point" if landmarks is not None else "box"
  base.notes = notes
  return base
