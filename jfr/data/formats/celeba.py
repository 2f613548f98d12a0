"""CelebA as it ships: the original release, the PNG release and the CSV mirror.

``--input`` is the folder holding the release; files are looked for there and in its
``Anno/``, ``Eval/`` and ``Img/`` sub-folders:

* images: ``img_align_celeba/`` (JPEG, 178x218), ``img_align_celeba_png/`` (the PNG
  release: files ``000001.png`` while every list names ``000001.jpg``; the name is mapped),
  ``img_align_celeba/img_align_celeba/`` (the Kaggle CSV mirror nests it), or the
  in-the-wild ``img_celeba/`` (then ``list_landmarks_celeba`` / ``list_bbox_celeba``
  apply);
* lists, as ``.txt`` (original: a count line, a header line, then space-separated rows)
  or ``.csv`` (mirror: an ``image_id`` header, comma-separated): ``list_eval_partition``
  (the data set's own, identity-disjoint split: 0 train, 1 validation, 2 test),
  ``list_attr_celeba`` (+1/-1 -> the synthetic_faces attributes, which are all CelebA
  attributes), ``list_landmarks_align_celeba`` (five points: left eye, right eye, nose,
  left / right mouth corner; kept as ``landmarks5`` and used for alignment),
  ``list_bbox_celeba`` (``x_1, y_1, width, height``; in-the-wild images only) and
  ``identity_CelebA.txt`` (absent from the CSV mirror: then identities are unknown,
  labels -1, and the data set serves attribute training only).

No paper equation lives here.
"""

from __future__ import annotations

import csv
import os
from typing import Optional

from absl import logging
import numpy as np

from jfr.data.adapters import celeb_a
from jfr.data.formats import source as source_lib
from jfr.data.synthetic_faces import ATTRIBUTE_NAMES

_SUBDIRS = ("", "Anno", "Eval", "Img", "anno", "eval", "img")
_IMAGE_DIRS = (
  ("img_align_celeba_png", True),
  ("img_align_celeba/img_align_celeba", True),
  ("img_align_celeba", True),
  ("img_celeba", False),
)


def read_table(path: str) -> tuple[list[str], dict[str, list[str]]]:
  """A CelebA list file (.txt or .csv) -> (value column names, {image file: values})."""
  rows: list[list[str]] = []
  if path.endswith(".csv"):
    with open(path, newline="", encoding="utf-8") as f:
      rows = [r for r in csv.reader(f) if r]
    if not rows or rows[0][0].strip() != "image_id":
      raise ValueError(f"{path}:1: expected an 'image_id' header")
    header, body, first = rows[0][1:], rows[1:], 2
  else:
    with open(path, encoding="utf-8") as f:
      rows = [line.split() for line in f.read().splitlines()]
    if len(rows) < 2 or len(rows[0]) != 1 or not rows[0][0].isdigit():
      raise ValueError(f"{path}:1: expected the number of images")
    header = rows[1][1:] if rows[1] and rows[1][0] == "image_id" else rows[1]
    body, first = rows[2:], 3
    if int(rows[0][0]) != sum(1 for r in body if r):
      raise ValueError(f"{path}: line 1 announces {rows[0][0]} images but {len(body)} are listed")
  table = {}
  for number, row in enumerate(body, start=first):
    if not row:
      continue
    if len(row) != len(header) + 1:
      raise ValueError(f"{path}:{number}: expected {len(header) + 1} fields, got {len(row)}")
    table[row[0].strip()] = [v.strip() for v in row[1:]]
  return [h.strip() for h in header], table


def _find(root: str, stem: str) -> Optional[str]:
  return source_lib.find_file(root, (stem + ".txt", stem + ".csv"), _SUBDIRS)


def _image_dir(root: str) -> tuple[str, bool]:
  for sub in ("", "Img"):
    for name, aligned in _IMAGE_DIRS:
      path = os.path.join(root, sub, name)
      if os.path.isdir(path) and any(not e.is_dir() for e in os.scandir(path)):
        return path, aligned
  raise ValueError(
    f"celeba: no image folder (img_align_celeba, img_align_celeba_png or img_celeba) in {root!r}"
  )


def _resolve(images_dir: str, name: str) -> str:
  path = os.path.join(images_dir, name)
  if os.path.exists(path):
    return path
  png = os.path.splitext(path)[0] + ".png"  # the PNG release keeps the .jpg names in lists
  return png if os.path.exists(png) else path


def index_celeba(root: str) -> source_lib.Source:
  """A CelebA release folder -> Source with its split, attributes, five points, identities."""
  images_dir, aligned = _image_dir(root)
  notes = {"images": images_dir}
  partition_path = _find(root, "list_eval_partition")
  if partition_path is None:
    raise ValueError(f"celeba: no list_eval_partition.txt/.csv in {root!r}")
  notes["partition"] = partition_path
  _, partition = read_table(partition_path) if partition_path.endswith(".csv") else (None, None)
  if partition is None:
    partition = {k: [str(v)] for k, v in celeb_a.read_celeb_a_partition(partition_path).items()}
  files = sorted(partition)
  own_split = np.array([int(partition[f][0]) for f in files], np.int8)
  if not set(np.unique(own_split)) <= {0, 1, 2}:
    raise ValueError(f"{partition_path}: partition codes must be 0, 1 or 2")
  attributes = None
  attr_path = _find(root, "list_attr_celeba")
  if attr_path:
    names, table = read_table(attr_path)
    missing = [n for n in ATTRIBUTE_NAMES if n not in names]
    if missing:
      raise ValueError(f"{attr_path}: header lacks attributes {missing}")
    columns = [names.index(n) for n in ATTRIBUTE_NAMES]
    absent = [f for f in files if f not in table]
    if absent:
      raise ValueError(f"{attr_path}: no attributes for {len(absent)} image(s), e.g. {absent[:3]}")
    attributes = np.array([[table[f][c] == "1" for c in columns] for f in files], bool)
    notes["attributes"] = attr_path
  landmark_stem = "list_landmarks_align_celeba" if aligned else "list_landmarks_celeba"
  landmarks = _float_rows(_find(root, landmark_stem), files, 10, notes, "landmarks")
  if landmarks is not None:
    landmarks = landmarks.reshape(-1, 5, 2)
  boxes = (
    None if aligned else _float_rows(_find(root, "list_bbox_celeba"), files, 4, notes, "boxes")
  )
  identity_path = _find(root, "identity_CelebA")
  if identity_path:
    identities = celeb_a.read_celeb_a_identities(identity_path)
    absent = [f for f in files if f not in identities]
    if absent:
      raise ValueError(
        f"{identity_path}: no identity for {len(absent)} image(s), e.g. {absent[:3]}"
      )
    numbers = np.array([identities[f] for f in files])
    values, labels = np.unique(numbers, return_inverse=True)
    class_names = tuple(str(v) for v in values)
    notes["identities"] = identity_path
  else:
    logging.warning("celeba: no identity_CelebA.txt in %r; identities unknown (labels -1)", root)
    labels, class_names = np.full(len(files), -1, np.int64), ()
  paths = [_resolve(images_dir, f) for f in files]
  return source_lib.file_source(
    "celeba",
    root,
    paths,
    labels,
    class_names,
    landmarks5=landmarks,
    boxes=boxes,
    attributes=attributes,
    attribute_names=tuple(ATTRIBUTE_NAMES),
    own_split=own_split,
    default_align="five_point" if landmarks is not None else ("none" if aligned else "box"),
    notes=notes,
  )


def _float_rows(path, files, columns, notes, what) -> Optional[np.ndarray]:
  if path is None:
    return None
  names, table = read_table(path)
  if len(names) != columns:
    raise ValueError(f"{path}: expected {columns} value columns, got {names}")
  out = np.full((len(files), columns), np.nan, np.float32)
  for i, f in enumerate(files):
    if f in table:
      out[i] = [float(v) for v in table[f]]
  notes[what] = path
  return out
