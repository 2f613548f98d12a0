"""Video-frame data sets: ``root/<identity>/<video>/<frame>``.

* ``video_folders``: any such tree (VoxCeleb frame dumps, exports).
* ``ytf``: YouTube Faces, either ``aligned_images_DB`` (frames
  ``<Name>/<video>/aligned_detect_<video>.<frame>.jpg``, already centred on the face) or
  ``frame_images_DB`` (frames ``<Name>/<video>/<video>.<frame>.jpg`` with, beside the
  identity folders, ``<Name>.labeled_faces.txt``: one line per frame,
  ``<Name>\\<video>\\<video>.<frame>.jpg,<ignored>,x,y,width,height,<ignored>,<ignored>``
  where (x, y) is the centre of the face box; the frames are cropped with these boxes).
  Point ``--input`` at one of the two folders.

``video_id`` numbers (identity, video) in natural order; ``frame_index`` is a frame's
position in the natural order of its video's file names (digit runs compared as
numbers: ``3.99.jpg`` before ``3.100.jpg``). Hidden / system files are skipped and
counted; an identity or video folder without frames is skipped with a warning.

No paper equation lives here.
"""

from __future__ import annotations

import glob
import os

from absl import logging
import numpy as np

from jfr.data import image_files
from jfr.data.formats import source as source_lib


def read_labeled_faces(path: str) -> dict[str, np.ndarray]:
  """A YTF ``<Name>.labeled_faces.txt`` -> {'Name/video/file.jpg': box (x, y, w, h) [4]}.

  The file's (x, y) is the box centre; the returned box has its top-left corner.
  """
  table = {}
  with open(path, encoding="utf-8", errors="replace") as f:
    for number, line in enumerate(f, start=1):
      fields = line.strip().split(",")
      if fields == [""]:
        continue
      if len(fields) < 6:
        raise ValueError(f"{path}:{number}: expected 'file,_,x,y,w,h,...', got {line.strip()!r}")
      try:
        cx, cy, w, h = (float(v) for v in fields[2:6])
      except ValueError as e:
        raise ValueError(f"{path}:{number}: {e}") from e
      key = fields[0].strip().replace("\\", "/")
      table[key] = np.array([cx - w / 2, cy - h / 2, w, h], np.float32)
  return table


def _index_tree(root: str, format_name: str, with_boxes: bool) -> source_lib.Source:
  skipped = image_files.SkipLog()
  identities, files = image_files.list_folder(root, skipped)
  for name in files:
    if not (with_boxes and name.endswith(".labeled_faces.txt")):
      skipped.add("not_an_identity_folder", os.path.join(root, name))
  paths, labels, video_ids, frames, boxes, video_names, class_names = [], [], [], [], [], [], []
  missing_boxes = 0
  for identity in identities:
    folder = os.path.join(root, identity)
    videos, loose = image_files.list_folder(folder, skipped)
    for name in loose:
      skipped.add("not_in_a_video_folder", os.path.join(folder, name))
    table = {}
    if with_boxes:
      box_file = os.path.join(root, f"{identity}.labeled_faces.txt")
      if os.path.isfile(box_file):
        table = read_labeled_faces(box_file)
    label = len(class_names)
    count = 0
    for video in videos:
      video_dir = os.path.join(folder, video)
      sub, images = image_files.list_folder(video_dir, skipped)
      for s in sub:
        skipped.add("unexpected_subfolder", os.path.join(video_dir, s))
      if not images:
        logging.warning("video folder %r holds no frames; skipped", video_dir)
        skipped.add("empty_video_folder", video_dir)
        continue
      for k, image in enumerate(images):
        paths.append(os.path.join(video_dir, image))
        if with_boxes:
          box = table.get(f"{identity}/{video}/{image}")
          missing_boxes += box is None
          boxes.append(box if box is not None else np.full(4, np.nan, np.float32))
      labels += [label] * len(images)
      video_ids += [len(video_names)] * len(images)
      frames += range(len(images))
      video_names.append(f"{identity}/{video}")
      count += len(images)
    if count:
      class_names.append(identity)
    else:
      logging.warning("identity folder %r holds no video frames; skipped", folder)
      skipped.add("empty_identity_folder", folder)
  if not paths:
    raise ValueError(
      f"{format_name}: no frames under {root!r} (expected <identity>/<video>/<frame>)"
    )
  notes = {}
  if with_boxes:
    notes["frames_without_box"] = int(missing_boxes)
  return source_lib.file_source(
    format_name,
    root,
    paths,
    np.asarray(labels),
    class_names,
    video_ids=np.asarray(video_ids, np.int64),
    frame_indices=np.asarray(frames, np.int64),
    video_names=tuple(video_names),
    boxes=np.stack(boxes) if with_boxes else None,
    default_align="box" if with_boxes else "none",
    skipped=skipped,
    notes=notes,
  )


def index_video_folders(root: str) -> source_lib.Source:
  """``root/<identity>/<video>/<frame>`` -> Source with video ids and frame indices."""
  return _index_tree(root, "video_folders", with_boxes=False)


def index_ytf(root: str) -> source_lib.Source:
  """YouTube Faces ``frame_images_DB`` (cropped with the labeled boxes) or ``aligned_images_DB``."""
  for sub in ("frame_images_DB", "aligned_images_DB"):
    if os.path.isdir(os.path.join(root, sub)):
      raise ValueError(
        f"ytf: {root!r} holds {sub}/; point --input at frame_images_DB or aligned_images_DB"
      )
  with_boxes = bool(glob.glob(os.path.join(glob.escape(root), "*.labeled_faces.txt")))
  source = _index_tree(root, "ytf", with_boxes=with_boxes)
  source.notes["layout"] = "frame_images_DB" if with_boxes else "aligned_images_DB"
  return source
