"""Labeled Faces in the Wild: pair lists, the ``lfw/`` image folder, face crops.

Pair lists (tab separated; blank lines ignored):

* View 2 ``pairs.txt``: first line ``<folds>\\t<n>`` (10 and 300), then for each fold ``n``
  matched lines ``Name\\tn1\\tn2`` followed by ``n`` mismatched lines
  ``Name1\\tn1\\tName2\\tn2``. Fold ``k`` is the ``k``-th block of ``2 n`` lines.
* View 1 ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: first line a single count ``n``
  (1100 / 500), then ``n`` matched and ``n`` mismatched lines (one fold).

Image ``n`` of ``Name`` is ``lfw/Name/Name_%04d.jpg``.

Crop policy (LFW images are 250x250 and not aligned), :func:`load_face`:

* with a user landmark file (:func:`read_landmarks`: lines ``Name/Name_0001.jpg x1 y1 ... x5
  y5``, the five points in :data:`jfr.data.align.FIVE_POINT_NAMES` order, pixel centres at
  integers): Umeyama alignment to the ArcFace template (:mod:`jfr.data.align`);
* otherwise a centre square crop of side ``crop_fraction * min(H, W)`` (default 0.6: the
  central 150x150 of LFW's 250x250, where the face detector's box lies), resized to the
  model's input side with the antialiased warp of :func:`jfr.data.align.warp`.

No paper equation lives here.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jfr.data import align
from jfr.data import image_files

DEFAULT_CROP_FRACTION = 0.6


@dataclasses.dataclass(frozen=True)
class LfwPairs:
  """A pair list.

  Attributes:
    path: the file.
    first, second: ``[P]`` image paths relative to the ``lfw/`` folder.
    same: bool ``[P]``.
    fold: int64 ``[P]`` fold of each pair (0 for the View 1 files).
    num_folds: number of folds.
  """

  path: str
  first: list
  second: list
  same: np.ndarray
  fold: np.ndarray
  num_folds: int


def image_name(name: str, number: int) -> str:
  """``('Aaron_Peirsol', 1) -> 'Aaron_Peirsol/Aaron_Peirsol_0001.jpg'``."""
  return f"{name}/{name}_{number:04d}.jpg"


def _int(path: str, line: int, value: str, what: str) -> int:
  try:
    return int(value)
  except ValueError as e:
    raise ValueError(f"{path}:{line}: {what}: expected an integer, got {value!r}") from e


def read_pairs(path: str) -> LfwPairs:
  """Reads ``pairs.txt`` or ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` (module docstring).

  ValueError naming file and line for: a bad header, a line of neither form, a non-integer
  image number, a pair count different from the header's, a fold whose matched/mismatched
  counts differ from ``n``.
  """
  if not os.path.isfile(path):
    raise ValueError(f"pairs: {path!r} is not a file")
  with open(path, encoding="utf-8") as f:
    rows = [(i, line.strip()) for i, line in enumerate(f, start=1) if line.strip()]
  if not rows:
    raise ValueError(f"{path}: empty file")
  header_line, header = rows[0]
  fields = header.split()
  if len(fields) == 2:
    num_folds = _int(path, header_line, fields[0], "number of folds")
    per_fold = _int(path, header_line, fields[1], "pairs per fold")
  elif len(fields) == 1:
    num_folds, per_fold = 1, _int(path, header_line, fields[0], "number of pairs")
  else:
    raise ValueError(
      f"{path}:{header_line}: header must be '<folds>\\t<pairs per fold>' (pairs.txt) or "
      f"'<pairs>' (pairsDevTrain/DevTest.txt), got {header!r}"
    )
  if num_folds < 1 or per_fold < 1:
    raise ValueError(f"{path}:{header_line}: folds and pairs must be positive, got {header!r}")
  first, second, same = [], [], []
  for line, text in rows[1:]:
    parts = text.split("\t") if "\t" in text else text.split()
    parts = [p.strip() for p in parts]
    if len(parts) == 3:
      first.append(image_name(parts[0], _int(path, line, parts[1], "image number")))
      second.append(image_name(parts[0], _int(path, line, parts[2], "image number")))
      same.append(True)
    elif len(parts) == 4:
      first.append(image_name(parts[0], _int(path, line, parts[1], "image number")))
      second.append(image_name(parts[2], _int(path, line, parts[3], "image number")))
      same.append(False)
    else:
      raise ValueError(
        f"{path}:{line}: expected 'Name n1 n2' (same) or 'Name1 n1 Name2 n2' (different), "
        f"got {text!r}"
      )
  expected = 2 * num_folds * per_fold
  if len(same) != expected:
    raise ValueError(
      f"{path}: header says {num_folds} fold(s) x 2 x {per_fold} = {expected} pairs, "
      f"found {len(same)}"
    )
  same = np.asarray(same, bool)
  fold = np.repeat(np.arange(num_folds), 2 * per_fold)
  for k in range(num_folds):
    matched = int(same[fold == k].sum())
    if matched != per_fold:
      raise ValueError(f"{path}: fold {k + 1} holds {matched} matched pairs, expected {per_fold}")
  return LfwPairs(path, first, second, same, fold.astype(np.int64), num_folds)


def read_landmarks(path: str) -> dict[str, np.ndarray]:
  """A five-point file -> {'Name/Name_0001.jpg': float32 [5, 2]} (module docstring);
  a leading ``lfw/`` in the image path is dropped."""
  if not os.path.isfile(path):
    raise ValueError(f"landmarks: {path!r} is not a file")
  table = {}
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != 11:
        raise ValueError(
          f"{path}:{number}: expected '<image> x1 y1 ... x5 y5' (11 fields), got {len(fields)}"
        )
      try:
        points = np.asarray([float(v) for v in fields[1:]], np.float32).reshape(5, 2)
      except ValueError as e:
        raise ValueError(f"{path}:{number}: {e}") from e
      key = fields[0].replace("\\", "/")
      table[key[4:] if key.startswith("lfw/") else key] = points
  return table


def load_face(
  path: str,
  image_size: int,
  *,
  landmarks: np.ndarray | None = None,
  crop_fraction: float = DEFAULT_CROP_FRACTION,
) -> np.ndarray:
  """One face as uint8 ``[image_size, image_size, 3]`` under the crop policy of the module
  docstring (five-point alignment when ``landmarks`` [5, 2] is given)."""
  if not 0.0 < crop_fraction <= 1.0:
    raise ValueError(f"crop_fraction: expected a value in (0, 1], got {crop_fraction}")
  image = image_files.decode_image(path)
  if landmarks is not None:
    matrix = align.five_point_transforms(np.asarray(landmarks, np.float64), image_size)
  else:
    h, w = image.shape[:2]
    side = crop_fraction * min(h, w)
    box = np.array([(w - side) / 2, (h - side) / 2, side, side])
    matrix = align.box_transforms(box, image_size)
  return align.warp(image, matrix, image_size)
