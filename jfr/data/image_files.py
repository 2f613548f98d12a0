"""Robust reading of face images as they come from cameras, phones and archives.

Pure PIL / NumPy (no TensorFlow), so it runs in preparation worker threads (PIL releases
the GIL while decoding, resizing and encoding).

* :func:`decode_image`: bytes or a path -> uint8 [H, W, 3], the whole image decoded (a
  truncated or corrupt file raises :class:`UnreadableImageError`, a ``ValueError`` whose
  message names the file); the EXIF orientation tag is applied (a phone photo with
  orientation 6 comes out upright; :func:`exif_orientation` reports the tag); alpha is
  composited over :data:`ALPHA_BACKGROUND` (black, the same value as the alignment's
  fill outside the image); grayscale, palette, CMYK and 16-bit images become 3-channel
  8-bit RGB.
* :func:`is_system_file`: hidden and system entries (names starting with ``.``,
  ``Thumbs.db``, ``desktop.ini``, ``__MACOSX``), which listings skip and count.
* :class:`SkipLog`: what was skipped and why (written to ``prepare_report.json``).
* :func:`list_folder`: the sub-folders and image files of a folder in natural order,
  system entries skipped and counted, other files (e.g. ``.txt``) skipped and counted.
* :func:`encode_image`: uint8 [H, W, 3] -> PNG or JPEG bytes.

No paper equation lives here.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import re
from typing import Union

import numpy as np
from PIL import Image, ImageOps

ALPHA_BACKGROUND = (0, 0, 0)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "ehthumbs.db"})
EXIF_ORIENTATION = 0x0112

Source = Union[str, bytes, os.PathLike]


class UnreadableImageError(ValueError):
  """An image that cannot be fully decoded; ``path`` names it, ``reason`` says why."""

  def __init__(self, path: str, reason: str):
    super().__init__(f"unreadable image {path!r}: {reason}")
    self.path = path
    self.reason = reason


def natural_key(name: str) -> list:
  """Sort key comparing digit runs as numbers: 'f2.jpg' < 'f10.jpg'."""
  return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name)]


def is_system_file(name: str) -> bool:
  """Hidden (``.*``, incl. macOS ``._x.jpg`` and ``.DS_Store``) or OS system entries."""
  return name.startswith(".") or name.lower() in SYSTEM_NAMES


@dataclasses.dataclass
class SkipLog:
  """Skipped entries by reason: ``{reason: [path, ...]}`` (all paths kept)."""

  entries: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))

  def add(self, reason: str, path: str) -> None:
    self.entries[reason].append(str(path))

  def counts(self) -> dict[str, int]:
    return {reason: len(paths) for reason, paths in sorted(self.entries.items())}

  def merge(self, other: "SkipLog") -> None:
    for reason, paths in other.entries.items():
      self.entries[reason].extend(paths)

  def to_json(self, max_paths: int = 1000) -> dict:
    """``{reason: {'count': n, 'paths': first max_paths paths}}``."""
    return {
      reason: {"count": len(paths), "paths": paths[:max_paths]}
      for reason, paths in sorted(self.entries.items())
    }


def list_folder(
  folder: str, skipped: SkipLog, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
) -> tuple[list[str], list[str]]:
  """(sub-folder names, image file names) of ``folder``, both in natural order.

  Hidden / system entries are recorded in ``skipped`` as 'system_file'; files with other
  extensions as 'not_an_image' (nothing is dropped without a record).
  """
  if not os.path.isdir(folder):
    raise ValueError(f"folder {folder!r} does not exist or is not a directory")
  dirs, files = [], []
  for entry in os.scandir(folder):
    if is_system_file(entry.name):
      skipped.add("system_file", entry.path)
    elif entry.is_dir():
      dirs.append(entry.name)
    elif os.path.splitext(entry.name)[1].lower() in extensions:
      files.append(entry.name)
    else:
      skipped.add("not_an_image", entry.path)
  return sorted(dirs, key=natural_key), sorted(files, key=natural_key)


def exif_orientation(im: Image.Image) -> int:
  """The EXIF orientation tag of an opened image (1 = upright, also when absent)."""
  try:
    return int(im.getexif().get(EXIF_ORIENTATION, 1))
  except Exception:  # pylint: disable=broad-except  (malformed EXIF blocks)
    return 1


def _to_rgb(im: Image.Image) -> Image.Image:
  """Any PIL mode -> RGB; alpha composited over ALPHA_BACKGROUND."""
  if im.mode == "P":
    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
  if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")
  if im.mode in ("I;16", "I;16B", "I;16L", "I"):
    array = np.asarray(im, np.float64)
    top = 65535.0 if array.max() > 255 else 255.0
    im = Image.fromarray(np.round(array / top * 255).astype(np.uint8))
  return im.convert("RGB") if im.mode != "RGB" else im


def decode_image(source: Source, name: str | None = None) -> np.ndarray:
  """Fully decodes an image: EXIF orientation applied, alpha composited, 3 channels.

  Args:
    source: a path, or the encoded bytes.
    name: how errors name the image (default: the path, or '<bytes>').

  Returns:
    uint8 [H, W, 3].

  Raises:
    UnreadableImageError: the file is missing, not an image, truncated or corrupt.
  """
  name = name or (os.fspath(source) if not isinstance(source, bytes) else "<bytes>")
  stream = io.BytesIO(source) if isinstance(source, bytes) else source
  try:
    with Image.open(stream) as im:
      im.load()  # the whole image: truncated data raises here
      im = ImageOps.exif_transpose(im) if exif_orientation(im) != 1 else im
      array = np.asarray(_to_rgb(im))
  except UnreadableImageError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many kinds)
    raise UnreadableImageError(name, f"{type(e).__name__}: {e}") from e
  if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) == 0:
    raise UnreadableImageError(name, f"decoded to shape {array.shape}")
  return array


def encode_image(image: np.ndarray, image_format: str = "png", quality: int = 95) -> bytes:
  """uint8 [H, W, 3] -> PNG (lossless) or JPEG (``quality``) bytes."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"image: expected uint8 [H, W, 3], got {image.dtype} {image.shape}")
  buffer = io.BytesIO()
  if image_format == "png":
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
  elif image_format == "jpeg":
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
  else:
    raise ValueError(f"image_format: expected 'png' or 'jpeg', got {image_format!r}")
  return buffer.getvalue()
