"""Reading a user's faces for inference: files, folders or lists -> aligned uint8 crops.

* :func:`expand_inputs`: image files, folders (their images in natural order, then those of
  their sub-folders; hidden/system files skipped) and list files (``.txt``/``.lst``: one
  image path per line, relative to the list) -> ordered paths.
* :func:`read_landmarks`: five-point landmarks, either insightface's text format (one line
  per image, ``<image> x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 [score]``, points in the order left eye,
  right eye, nose, left mouth corner, right mouth corner, as in IJB-B/C's
  ``*_name_5pts_score.txt``), matched to images by relative path, then by file name; or a
  ``.npy`` ``[N, 5, 2]`` in the order of the inputs.
* :func:`load_faces`: decodes every image (:func:`jfr.data.image_files.decode_image`: EXIF,
  alpha, grayscale; an unreadable file raises naming it) and either aligns it to the
  ArcFace template with its landmarks (:func:`jfr.data.align.five_point_transforms`) or
  takes it as a crop (:func:`crop_policy`).

Crop policy without landmarks (no face detector ships): the image must be close to square;
it is centre-cropped to a square and resized to the model's side by the embedder.

* aspect ratio (long / short side) above :data:`MAX_ASPECT` or a short side below
  ``input_size / MIN_SIZE_FACTOR`` pixels: refused with a ``ValueError`` naming the file
  (the model cannot take it; crop the face or give landmarks);
* aspect ratio above :data:`WARN_ASPECT` or a side above ``MAX_SIZE_FACTOR * input_size``:
  a warning that the image is clearly not a face crop (it is still used).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Sequence

import numpy as np

from jfr.data import align
from jfr.data import image_files

LIST_EXTENSIONS = (".txt", ".lst")
WARN_ASPECT = 1.15
MAX_ASPECT = 1.6
MIN_SIZE_FACTOR = 4
MAX_SIZE_FACTOR = 6


class NotAFaceCropWarning(UserWarning):
  """An input far from the model's square face crop (aspect or size)."""


@dataclasses.dataclass
class Faces:
  """Faces ready for an :data:`~jfr.eval.embedding.EmbedFn`.

  Attributes:
    images: uint8 ``[N, S, S, 3]`` (aligned or centre-cropped, resized to ``S``).
    names: ``[N]`` input paths as given.
    aligned: ``[N]`` bool, True where five-point landmarks aligned the face.
    warnings: ``{path: message}`` of inputs that are clearly not face crops.
  """

  images: np.ndarray
  names: list[str]
  aligned: np.ndarray
  warnings: dict[str, str]


def _folder_images(folder: str) -> list[str]:
  """Images of ``folder``, then of its sub-folders (recursively), each in natural order."""
  dirs, files = image_files.list_folder(folder, image_files.SkipLog())
  out = [os.path.join(folder, f) for f in files]
  for d in dirs:
    out.extend(_folder_images(os.path.join(folder, d)))
  return out


def expand_inputs(inputs: Sequence[str] | str) -> list[str]:
  """Image files, folders and list files -> image paths in order (module docstring)."""
  if isinstance(inputs, str):
    inputs = [p for p in inputs.split(",") if p]
  paths: list[str] = []
  for item in inputs:
    if os.path.isdir(item):
      paths.extend(_folder_images(item))
    elif item.lower().endswith(LIST_EXTENSIONS) and os.path.isfile(item):
      base = os.path.dirname(item)
      with open(item, encoding="utf-8") as f:
        for line in f:
          line = line.strip()
          if line and not line.startswith("#"):
            paths.append(line if os.path.isabs(line) else os.path.join(base, line))
    elif os.path.exists(item):
      paths.append(item)
    else:
      raise ValueError(f"images: {item!r} is not an image file, folder or list file")
  if not paths:
    raise ValueError(f"images: no image files found in {list(inputs)}")
  return paths


def read_landmarks(path: str, images: Sequence[str]) -> np.ndarray:
  """Five-point landmarks ``[N, 5, 2]`` (x, y pixels) of ``images`` from ``path`` (module
  docstring); NaN rows for images the text file does not name (they are taken as crops)."""
  if path.endswith(".npy"):
    points = np.load(path)
    if points.shape != (len(images), 5, 2):
      raise ValueError(
        f"landmarks: {path!r} holds shape {points.shape}, expected [{len(images)}, 5, 2] "
        "(one row per input image, in order)"
      )
    return points.astype(np.float32)
  if not os.path.isfile(path):
    raise ValueError(f"landmarks: {path!r} is not a file")
  table: dict[str, np.ndarray] = {}
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields or fields[0].startswith("#"):
        continue
      if len(fields) not in (11, 12):
        raise ValueError(
          f"landmarks: {path}:{number}: expected '<image> x1 y1 ... x5 y5 [score]' "
          f"(11 or 12 fields), got {len(fields)}"
        )
      try:
        table[fields[0].replace("\\", "/")] = np.asarray(fields[1:11], np.float32).reshape(5, 2)
      except ValueError as e:
        raise ValueError(f"landmarks: {path}:{number}: {e}") from e
  by_name = {os.path.basename(k): v for k, v in table.items()}
  out = np.full((len(images), 5, 2), np.nan, np.float32)
  for i, image in enumerate(images):
    key = image.replace("\\", "/")
    match = [v for k, v in table.items() if key == k or key.endswith("/" + k)]
    if match:
      out[i] = match[0]
    elif os.path.basename(key) in by_name:
      out[i] = by_name[os.path.basename(key)]
  return out


def crop_policy(image: np.ndarray, name: str, input_size: int) -> tuple[np.ndarray, str | None]:
  """``(square centre crop, warning or None)`` of a face crop (module docstring); raises
  ``ValueError`` naming ``name`` for an image the model cannot take."""
  h, w = image.shape[:2]
  aspect = max(h, w) / min(h, w)
  if aspect > MAX_ASPECT or min(h, w) < input_size / MIN_SIZE_FACTOR:
    raise ValueError(
      f"image {name!r} is {w}x{h} px: the model takes square face crops of "
      f"{input_size}x{input_size} (aspect <= {MAX_ASPECT}, side >= "
      f"{input_size // MIN_SIZE_FACTOR} px); crop the face or give five-point --landmarks"
    )
  warning = None
  if aspect > WARN_ASPECT or max(h, w) > MAX_SIZE_FACTOR * input_size:
    warning = (
      f"{name}: {w}x{h} px is clearly not a {input_size}x{input_size} face crop "
      "(no face detector ships with jfr: crop the face or give five-point --landmarks); "
      "using its centre square"
    )
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  return image[top : top + side, left : left + side], warning


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  if image.shape[0] == size:
    return image
  return align.warp(image, align.resize_transform(image.shape[0], image.shape[1], size), size)


def load_faces(paths: Sequence[str], input_size: int, landmarks: np.ndarray | None = None) -> Faces:
  """Decodes and aligns/crops ``paths`` (module docstring) to ``input_size`` squares.

  Args:
    paths: image files.
    input_size: the model's side S.
    landmarks: optional ``[N, 5, 2]``; rows with NaN are taken as crops.
  """
  if landmarks is not None and len(landmarks) != len(paths):
    raise ValueError(f"landmarks: expected {len(paths)} rows, got {len(landmarks)}")
  images, aligned, notes = [], [], {}
  for i, path in enumerate(paths):
    image = image_files.decode_image(path)
    points = None if landmarks is None else landmarks[i]
    if points is not None and np.isfinite(points).all():
      matrix = align.five_point_transforms(points[None], input_size)[0]
      images.append(align.warp(image, matrix, input_size))
      aligned.append(True)
      continue
    crop, warning = crop_policy(image, path, input_size)
    if warning:
      notes[path] = warning
      warnings.warn(warning, NotAFaceCropWarning, stacklevel=2)
    images.append(_resize(crop, input_size))
    aligned.append(False)
  return Faces(np.stack(images), list(paths), np.asarray(aligned, bool), notes)


def read_faces(
  inputs: Sequence[str] | str, input_size: int, landmarks_path: str | None = None
) -> Faces:
  """:func:`expand_inputs` then :func:`load_faces` with :func:`read_landmarks`."""
  paths = expand_inputs(inputs)
  landmarks = read_landmarks(landmarks_path, paths) if landmarks_path else None
  return load_faces(paths, input_size, landmarks)
