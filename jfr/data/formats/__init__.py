"""Readers of the face data formats researchers hold, for ``python -m jfr.prepare``.

Each reader turns a path into a :class:`~jfr.data.formats.source.Source` (one row per
image: label, how to read its bytes, and whatever ground truth the format ships).
:data:`FORMATS` maps ``--format`` names to ``(reader, one-line description)``.
"""

from __future__ import annotations

from typing import Callable

from jfr.data.formats import celeba, folders, recordio, videos
from jfr.data.formats.source import Source

FORMATS: dict[str, tuple[Callable[[str], Source], str]] = {
  "folders": (
    folders.index_folders,
    "identity folders <root>/<identity>/<image> (CASIA-WebFace, LFW, LFW deep-funneled)",
  ),
  "vggface2": (
    folders.index_vggface2,
    "VGGFace2 <split>/<identity>/<image> + bb_landmark/loose_{landmark,bb}_<split>.csv",
  ),
  "recordio": (
    recordio.index_recordio,
    "insightface train.rec + train.idx (+ property): MS1MV2/V3, Glint360K, CASIA (no mxnet)",
  ),
  "celeba": (
    celeba.index_celeba,
    "CelebA: original release (.txt lists), PNG release, Kaggle CSV mirror (.csv lists)",
  ),
  "ytf": (
    videos.index_ytf,
    "YouTube Faces frame_images_DB (+ <Name>.labeled_faces.txt boxes) or aligned_images_DB",
  ),
  "video_folders": (
    videos.index_video_folders,
    "video frames <root>/<identity>/<video>/<frame> (VoxCeleb dumps)",
  ),
}


def read_source(format_name: str, path: str) -> Source:
  """Indexes ``path`` with the reader of ``format_name`` (ValueError naming unknown formats)."""
  if format_name not in FORMATS:
    raise ValueError(f"format: expected one of {sorted(FORMATS)}, got {format_name!r}")
  return FORMATS[format_name][0](path)
