"""What a format reader hands to ``jfr.prepare``: a column-wise index of the images.

A :class:`Source` holds one row per image (N rows, arrays rather than objects so that
17 M RecordIO images fit in memory) and knows how to read a row's encoded bytes. Rows are
in the reader's natural order (identity, then video, then natural file-name order).

Ground truth a format does not have is ``None`` (the whole column) or NaN (a row of
``landmarks5`` / ``boxes`` where one image lacks it).

No paper equation lives here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence

import numpy as np

from jfr.data import image_files

OWN_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass
class Source:
  """The images of a data set as found on disk.

  Attributes:
    format: format name (a key of ``jfr.data.formats.FORMATS``).
    root: the input path.
    labels: int64 [N] identity index into ``class_names`` (-1: unknown identity).
    class_names: identity names (folder names, CelebA numbers, RecordIO labels).
    reader: ``i -> bytes``, the encoded image of row i.
    describe: ``i -> str``, how messages name row i (its path or record).
    video_ids: int64 [N] (-1 for stills), ``video_names[video_id]`` names the video.
    frame_indices: int64 [N] (-1 for stills).
    landmarks5: float32 [N, 5, 2] five points in source pixels (NaN rows: unknown) or None.
    boxes: float32 [N, 4] face boxes (x, y, w, h) in source pixels (NaN rows) or None.
    attributes: bool [N, A] or None; ``attribute_names`` names the columns.
    own_split: int8 [N] codes of :data:`OWN_SPLIT_CODES` where the data set defines its
      own split (CelebA), else None.
    default_align: the alignment used when ``--align=auto``.
    aligned_size: side of the source's images when they already are aligned square
      crops (RecordIO: 112), else None.
    skipped: entries skipped while listing, by reason.
    notes: free-form facts for the report (files found, options detected).
  """

  format: str
  root: str
  labels: np.ndarray
  class_names: tuple[str, ...]
  reader: Callable[[int], bytes]
  describe: Callable[[int], str]
  video_ids: Optional[np.ndarray] = None
  frame_indices: Optional[np.ndarray] = None
  video_names: tuple[str, ...] = ()
  landmarks5: Optional[np.ndarray] = None
  boxes: Optional[np.ndarray] = None
  attributes: Optional[np.ndarray] = None
  attribute_names: tuple[str, ...] = ()
  own_split: Optional[np.ndarray] = None
  default_align: str = "none"
  aligned_size: Optional[int] = None
  skipped: image_files.SkipLog = dataclasses.field(default_factory=image_files.SkipLog)
  notes: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    n = len(self.labels)
    self.labels = np.asarray(self.labels, np.int64)
    if self.video_ids is None:
      self.video_ids = np.full(n, -1, np.int64)
    if self.frame_indices is None:
      self.frame_indices = np.full(n, -1, np.int64)
    for name in ("video_ids", "frame_indices", "landmarks5", "boxes", "attributes", "own_split"):
      value = getattr(self, name)
      if value is not None and len(value) != n:
        raise ValueError(f"Source.{name}: expected {n} rows like labels, got {len(value)}")
    if n == 0:
      raise ValueError(f"{self.format}: no images found under {self.root!r}")

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def has_videos(self) -> bool:
    return bool(np.any(self.video_ids >= 0))


def file_source(
  format_name: str, root: str, paths: Sequence[str], labels, class_names, **kwargs
) -> Source:
  """A :class:`Source` whose rows are image files (``paths``)."""
  paths = np.asarray(paths, dtype=object)

  def read(i: int) -> bytes:
    with open(paths[i], "rb") as f:
      return f.read()

  return Source(
    format=format_name,
    root=root,
    labels=labels,
    class_names=tuple(class_names),
    reader=read,
    describe=lambda i: str(paths[i]),
    **kwargs,
  )


def find_file(root: str, names: Sequence[str], subdirs: Sequence[str] = ("",)) -> Optional[str]:
  """The first ``root/<subdir>/<name>`` that exists (None if none does)."""
  for sub in subdirs:
    for name in names:
      path = os.path.join(root, sub, name)
      if os.path.isfile(path):
        return path
  return None


def scan_identity_folders(
  root: str, skipped: image_files.SkipLog, what: str = "identity"
) -> tuple[list[str], list[list[str]]]:
  """``root/<identity>/<image>`` -> (identity names, image paths per identity).

  System files are skipped and counted; an identity folder without images is skipped
  with a warning (reason 'empty_identity_folder'); files directly in ``root`` are
  recorded as 'not_an_identity_folder'.
  """
  from absl import logging  # pylint: disable=g-import-not-at-top

  dirs, files = image_files.list_folder(root, skipped)
  for name in files:
    skipped.add("not_an_identity_folder", os.path.join(root, name))
  names, paths = [], []
  for name in dirs:
    folder = os.path.join(root, name)
    sub, images = image_files.list_folder(folder, skipped)
    for s in sub:
      skipped.add("unexpected_subfolder", os.path.join(folder, s))
    if not images:
      logging.warning("%s folder %r holds no images; skipped", what, folder)
      skipped.add("empty_identity_folder", folder)
      continue
    names.append(name)
    paths.append([os.path.join(folder, f) for f in images])
  if not names:
    raise ValueError(f"{root!r} holds no {what} folders with images")
  return names, paths
