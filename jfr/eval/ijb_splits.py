"""The splits of the IJB-A(-like) template protocol of :mod:`jfr.eval.ijb`.

* :func:`synthetic_splits`: IJB-A-like splits built from labelled stills and video
  frames (every template mixes both; a fraction of the probe subjects is not enrolled).
* :func:`read_descriptor_keys`, :func:`metadata_rows`, :func:`templates_from_metadata`,
  :func:`ijba_split`: the real IJB-A split files (read by :mod:`jfr.data.adapters.ijb`)
  mapped onto the rows of a user's descriptor array.

No paper equation lives here.
"""

from __future__ import annotations

import csv
import os
from typing import Any

import numpy as np

from jfr.data.adapters import ijb as ijb_files
from jfr.eval.ijb import ProtocolSplit, Templates, _int_array

# --------------------------------------------------------------- synthetic IJB-A splits


def _subject_media(
  labels: np.ndarray, video_ids: np.ndarray, frame_index: np.ndarray, frames_per_video: int | None
) -> dict[int, tuple[np.ndarray, list[np.ndarray]]]:
  """subject -> (still rows, [frame rows of each video in frame order, subsampled])."""
  media = {}
  for subject in np.unique(labels):
    own = labels == subject
    videos = []
    for v in np.unique(video_ids[own & (video_ids >= 0)]):
      rows = np.flatnonzero(own & (video_ids == v))
      rows = rows[np.argsort(frame_index[rows], kind="stable")]
      if frames_per_video is not None and rows.size > frames_per_video:
        rows = rows[
          np.floor((np.arange(frames_per_video) + 0.5) * rows.size / frames_per_video).astype(
            np.int64
          )
        ]
      videos.append(rows)
    media[int(subject)] = (np.flatnonzero(own & (video_ids < 0)), videos)
  return media


def _partition(
  subject: int, stills: np.ndarray, videos: list[np.ndarray], parts: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
  """Splits one subject's media into ``parts`` groups ``(still rows, frame rows)``.

  Stills are shuffled and dealt into ``parts`` near-equal groups. The videos are put in
  random order and their frames (each video in time order) cut into ``parts``
  contiguous chunks, so a group holds consecutive frames of one or two videos (with as
  many parts as equal-length videos, exactly one whole video each). ValueError (naming
  ``labels``) if a group would lack stills or frames.
  """
  frames = (
    np.concatenate([videos[i] for i in rng.permutation(len(videos))])
    if videos
    else np.zeros(0, np.int64)
  )
  if stills.size < parts or frames.size < parts:
    raise ValueError(
      f"labels: subject {subject} has {stills.size} stills and {frames.size} (kept) "
      f"video frames for {parts} templates that must each mix stills and frames; "
      f"needs >= {parts} of each"
    )
  return list(zip(np.array_split(rng.permutation(stills), parts), np.array_split(frames, parts)))


def _templates(groups: list[tuple[np.ndarray, np.ndarray]], subjects: list[int]) -> Templates:
  members = [np.concatenate(g) for g in groups]
  ids = np.repeat(np.arange(len(members)), [m.size for m in members])
  return Templates(np.concatenate(members), ids, np.asarray(subjects, np.int64))


def _positive_int(value: Any, name: str, low: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
  return int(value)


def synthetic_splits(
  labels: np.ndarray,
  video_ids: np.ndarray,
  frame_index: np.ndarray,
  *,
  num_splits: int,
  seed: int,
  out_of_gallery_fraction: float,
  probe_templates_per_subject: int,
  verify_templates_per_subject: int,
  verify_subjects: int | None = None,
  frames_per_video: int | None = None,
) -> list[ProtocolSplit]:
  """IJB-A-like 1:N and 1:1 protocols over labelled stills and video frames.

  For each split (NumPy generator seeded by ``(seed, split)``):

  * 1:N: ``round(out_of_gallery_fraction * S)`` of the S subjects are drawn as
    out-of-gallery. Each subject's media are partitioned into two halves (see below);
    an enrolled subject's first half is its gallery template; every subject's second
    half is partitioned again into ``probe_templates_per_subject`` probe templates
    (non-mated for out-of-gallery subjects, with the same sizes as mated ones). IJB-A
    has 112 gallery and 167 probe subjects per split (a third of the probe subjects out
    of the gallery) and several probe templates per subject.
  * 1:1: ``verify_subjects`` subjects (None: all), drawn at random, each partitioned into
    ``verify_templates_per_subject`` templates; the pairs are all unordered pairs of
    distinct templates (genuine when the subjects match).

  A partition deals the subject's shuffled stills into near-equal groups and cuts its
  video frames (videos in random order, each in time order) into as many contiguous
  chunks, so every template mixes stills and frames of one subject.

  Args:
    labels: ``[N]`` int subject of each descriptor row.
    video_ids: ``[N]`` int video of each row; negative for still images.
    frame_index: ``[N]`` int frame position of each row in its video (ignored for
      stills).
    num_splits: number of splits (IJB-A: 10).
    seed: protocol seed.
    out_of_gallery_fraction: in (0, 1); must leave >= 1 subject on both sides.
    probe_templates_per_subject: >= 1.
    verify_templates_per_subject: >= 2.
    verify_subjects: >= 2 subjects in the 1:1 protocol, or None for all.
    frames_per_video: keep this many evenly spaced frames of each video (None: all).

  Returns:
    ``num_splits`` :class:`ProtocolSplit` whose rows index the ``N`` inputs.
  """
  labels = _int_array(labels, "labels")
  video_ids = _int_array(video_ids, "video_ids")
  frame_index = _int_array(frame_index, "frame_index")
  if not labels.size:
    raise ValueError("labels must be non-empty")
  if video_ids.size != labels.size or frame_index.size != labels.size:
    raise ValueError(
      f"video_ids and frame_index must have one entry per label "
      f"({labels.size}), got {video_ids.size} and {frame_index.size}"
    )
  num_splits = _positive_int(num_splits, "num_splits")
  probes_per = _positive_int(probe_templates_per_subject, "probe_templates_per_subject")
  verify_per = _positive_int(verify_templates_per_subject, "verify_templates_per_subject", 2)
  if frames_per_video is not None:
    frames_per_video = _positive_int(frames_per_video, "frames_per_video")
  if not 0.0 < out_of_gallery_fraction < 1.0:
    raise ValueError(f"out_of_gallery_fraction must be in (0, 1), got {out_of_gallery_fraction}")
  media = _subject_media(labels, video_ids, frame_index, frames_per_video)
  subjects = np.array(sorted(media))
  num_out = int(round(out_of_gallery_fraction * subjects.size))
  if not 1 <= num_out <= subjects.size - 1:
    raise ValueError(
      f"out_of_gallery_fraction={out_of_gallery_fraction} of "
      f"{subjects.size} subjects gives {num_out} out-of-gallery subjects; "
      "need >= 1 in and >= 1 out of the gallery"
    )
  num_verify = (
    subjects.size
    if verify_subjects is None
    else _positive_int(verify_subjects, "verify_subjects", 2)
  )
  if num_verify > subjects.size:
    raise ValueError(f"verify_subjects must be <= the {subjects.size} subjects, got {num_verify}")
  splits = []
  for s in range(num_splits):
    rng = np.random.default_rng([seed, s])
    out = set(rng.choice(subjects, num_out, replace=False).tolist())
    gallery, gallery_subjects, probe, probe_subjects = [], [], [], []
    for subject in subjects:
      first, (stills, frames) = _partition(subject, *media[subject], 2, rng)
      if subject not in out:
        gallery.append(first)
        gallery_subjects.append(subject)
      probe += _partition(subject, stills, [frames], probes_per, rng)
      probe_subjects += [subject] * probes_per
    verify, verify_subject_ids = [], []
    for subject in np.sort(rng.choice(subjects, num_verify, replace=False)):
      verify += _partition(subject, *media[subject], verify_per, rng)
      verify_subject_ids += [subject] * verify_per
    i, j = np.triu_indices(len(verify), k=1)
    splits.append(
      ProtocolSplit(
        _templates(gallery, gallery_subjects),
        _templates(probe, probe_subjects),
        _templates(verify, verify_subject_ids),
        np.stack([i, j], axis=1),
      )
    )
  return splits


# ------------------------------------------------------------------------ real IJB-A


def read_descriptor_keys(path: str) -> tuple[np.ndarray, np.ndarray | None]:
  """Reads which image each row of a user's descriptor array is.

  A CSV with a header holding ``FILENAME`` (or IJB-A's ``FILE``) and optionally
  ``SUBJECT_ID``; row r (after the header) names descriptor row r. ``SUBJECT_ID``
  is needed when one file shows several subjects (IJB-A has such images: the
  metadata lists the file once per subject, each with its own face box).

  Returns:
    ``(filenames [n] str, subject_ids [n] int64 or None)``.
  """
  if not os.path.isfile(path):
    raise ValueError(f"keys path {path!r} does not exist")
  with open(path, newline="", encoding="utf-8-sig") as f:
    rows = [[c.strip() for c in r] for r in csv.reader(f) if any(c.strip() for c in r)]
  if len(rows) < 2:
    raise ValueError(f"{path}: expected a header and >= 1 row")
  header = [{"FILE": "FILENAME"}.get(h.upper(), h.upper()) for h in rows[0]]
  if "FILENAME" not in header or not set(header) <= {"FILENAME", "SUBJECT_ID"}:
    raise ValueError(f"{path}: header must be FILENAME (or FILE) [, SUBJECT_ID], got {rows[0]}")
  bad = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != len(header)]
  if bad:
    raise ValueError(f"{path}:{bad[0]}: expected {len(header)} fields")
  filenames = np.asarray([r[header.index("FILENAME")] for r in rows[1:]], dtype=str)
  if "SUBJECT_ID" not in header:
    return filenames, None
  try:
    subjects = np.asarray([int(r[header.index("SUBJECT_ID")]) for r in rows[1:]], np.int64)
  except ValueError as e:
    raise ValueError(f"{path}: column SUBJECT_ID: {e}") from e
  return filenames, subjects


def metadata_rows(
  metadata: ijb_files.TemplateMetadata, filenames: np.ndarray, subject_ids: np.ndarray | None = None
) -> np.ndarray:
  """The descriptor row of every metadata row, matched on file name (and subject).

  Args:
    metadata: one IJB-A metadata file (:func:`jfr.data.adapters.ijb.read_template_metadata`).
    filenames: ``[n]`` str, the file of each descriptor row.
    subject_ids: ``[n]`` int or None; when given, rows match on (file, subject).

  Returns:
    int64 ``[R]`` rows. ValueError for duplicate keys or metadata rows without one.
  """
  filenames = np.asarray(filenames, dtype=str)
  if filenames.ndim != 1:
    raise ValueError(f"filenames must be 1-D, got shape {filenames.shape}")
  if subject_ids is None:
    keys = filenames.tolist()
    wanted = metadata.filenames.tolist()
  else:
    subject_ids = _int_array(subject_ids, "subject_ids")
    if subject_ids.size != filenames.size:
      raise ValueError(
        f"subject_ids must have one entry per file name ({filenames.size}), got {subject_ids.size}"
      )
    keys = list(zip(filenames.tolist(), subject_ids.tolist()))
    wanted = list(zip(metadata.filenames.tolist(), metadata.subject_ids.tolist()))
  index = {}
  for r, key in enumerate(keys):
    if key in index:
      raise ValueError(f"filenames: key {key!r} names descriptor rows {index[key]} and {r}")
    index[key] = r
  missing = [key for key in wanted if key not in index]
  if missing:
    raise ValueError(
      f"{metadata.path}: {len(missing)} row(s) have no descriptor (first: "
      f"{missing[0]!r}); the keys must list every file of the protocol"
    )
  return np.asarray([index[key] for key in wanted], np.int64)


def templates_from_metadata(metadata: ijb_files.TemplateMetadata, rows: np.ndarray) -> Templates:
  """:class:`Templates` of one metadata file, given each metadata row's descriptor row."""
  return Templates(rows, metadata.template_index, metadata.template_subject_ids)


def ijba_split(
  search: ijb_files.SearchProtocol,
  verify: ijb_files.TemplateMetadata,
  comparisons: ijb_files.TemplatePairs,
  filenames: np.ndarray,
  subject_ids: np.ndarray | None = None,
) -> ProtocolSplit:
  """One real IJB-A split on a user's descriptor rows.

  Args:
    search: the split's ``search_gallery_k.csv`` / ``search_probe_k.csv``.
    verify: the split's ``verify_metadata_k.csv``.
    comparisons: the split's ``verify_comparisons_k.csv``; labels (if present) must
      agree with the metadata.
    filenames, subject_ids: the descriptor keys (:func:`read_descriptor_keys`).
  """
  ijb_files.pair_labels(comparisons, verify)  # ValueError on unknown ids / bad labels
  pairs = np.stack(
    [verify.indices_of(comparisons.template_ids1), verify.indices_of(comparisons.template_ids2)],
    axis=1,
  )
  return ProtocolSplit(
    templates_from_metadata(search.gallery, metadata_rows(search.gallery, filenames, subject_ids)),
    templates_from_metadata(search.probe, metadata_rows(search.probe, filenames, subject_ids)),
    templates_from_metadata(verify, metadata_rows(verify, filenames, subject_ids)),
    pairs,
  )
