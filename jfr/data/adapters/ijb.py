"""IJB-style template protocols: metadata CSVs, verification pairs, 1:N gallery/probe.

Readers for the protocol files of IJB-A / IJB-B / IJB-C (and any data set exported in
the same layout), producing NumPy arrays for ``jfr.eval.protocols``:

* :func:`read_template_metadata`: rows (one image or frame each) with the columns
  ``TEMPLATE_ID``, ``SUBJECT_ID``, ``FILENAME`` (IJB-A calls it ``FILE``; both are
  accepted) and optionally ``MEDIA_ID``, ``SPLIT`` and the face box ``FACE_X``,
  ``FACE_Y``, ``FACE_WIDTH``, ``FACE_HEIGHT``. The header is required and matched case
  insensitively; other columns (SIGHTING_ID, FRAME, ...) are not read. Template ids are
  remapped to ``0..T-1`` in ascending order of the original ids, which are kept.
* :func:`read_template_metadata_splits`: one file per split (IJB-A's ten folders
  ``split1..split10``) -> a list.
* :func:`read_template_pairs`: verification pairs ``TEMPLATE_ID1, TEMPLATE_ID2[, LABEL]``,
  with or without header (IJB-A ``verify_comparisons_k.csv`` and IJB-C
  ``ijbc_11_G1_G2_matches.csv`` have none); :func:`pair_labels` derives genuine/impostor
  labels from subject ids.
* :func:`read_search_protocol`: 1:N gallery (one file, or several that are concatenated,
  e.g. IJB-C G1 + G2) and probe metadata.

Every error names the file, the 1-based line and the column. Blank lines are ignored.

No paper equation lives here.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Optional, Sequence, Union

import numpy as np

PathOrPaths = Union[str, Sequence[str]]

_REQUIRED = ("TEMPLATE_ID", "SUBJECT_ID", "FILENAME")
_ALIASES = {"FILE": "FILENAME"}
_BOX = ("FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT")


@dataclasses.dataclass(frozen=True)
class TemplateMetadata:
  """Rows of a template metadata file (R rows, T templates).

  Attributes:
    path: source file(s), for messages.
    template_index: int64 [R] in 0..T-1.
    template_ids: int64 [T] original TEMPLATE_IDs, ascending;
      ``template_ids[template_index[r]]`` is row r's TEMPLATE_ID.
    subject_ids: int64 [R].
    template_subject_ids: int64 [T] the subject of each template.
    filenames: str [R].
    media_ids: int64 [R] or None when the file has no MEDIA_ID column.
    splits: int64 [R] or None when the file has no SPLIT column.
    boxes: float32 [R, 4] (x, y, width, height) or None when the face box columns are
      absent.
  """

  path: str
  template_index: np.ndarray
  template_ids: np.ndarray
  subject_ids: np.ndarray
  template_subject_ids: np.ndarray
  filenames: np.ndarray
  media_ids: Optional[np.ndarray]
  splits: Optional[np.ndarray]
  boxes: Optional[np.ndarray]

  @property
  def num_templates(self) -> int:
    return len(self.template_ids)

  def indices_of(self, template_ids: np.ndarray) -> np.ndarray:
    """Original TEMPLATE_IDs -> indices 0..T-1 (ValueError naming unknown ids)."""
    ids = np.asarray(template_ids, np.int64)
    pos = np.clip(np.searchsorted(self.template_ids, ids), 0, max(self.num_templates - 1, 0))
    unknown = ids[self.template_ids[pos] != ids]
    if unknown.size:
      raise ValueError(f"template ids {np.unique(unknown)[:10].tolist()} are not in {self.path}")
    return pos.astype(np.int64)

  def select_split(self, split: int) -> "TemplateMetadata":
    """The rows whose SPLIT equals ``split``, with templates re-indexed."""
    if self.splits is None:
      raise ValueError(f"{self.path} has no SPLIT column")
    keep = self.splits == split
    if not keep.any():
      raise ValueError(
        f"{self.path}: no rows with SPLIT {split} (present: {np.unique(self.splits).tolist()})"
      )
    return _build(
      self.path,
      self.template_ids[self.template_index[keep]],
      self.subject_ids[keep],
      self.filenames[keep],
      None if self.media_ids is None else self.media_ids[keep],
      self.splits[keep],
      None if self.boxes is None else self.boxes[keep],
      lines=None,
    )


@dataclasses.dataclass(frozen=True)
class TemplatePairs:
  """Verification pairs: original template ids int64 [P] and optional bool labels [P]."""

  path: str
  template_ids1: np.ndarray
  template_ids2: np.ndarray
  labels: Optional[np.ndarray]


@dataclasses.dataclass(frozen=True)
class SearchProtocol:
  """1:N identification: gallery and probe template metadata."""

  gallery: TemplateMetadata
  probe: TemplateMetadata


def _rows(path: str) -> list[tuple[int, list[str]]]:
  """(1-based line number, stripped fields) of the non-blank CSV rows of ``path``."""
  if not os.path.isfile(path):
    raise ValueError(f"file {path!r} does not exist")
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.reader(f)
    rows = []
    for fields in reader:
      if any(field.strip() for field in fields):
        rows.append((reader.line_num, [field.strip() for field in fields]))
  if not rows:
    raise ValueError(f"{path}: empty file")
  return rows


def _parse(path: str, line: int, column: str, value: str, kind=int):
  try:
    return kind(value)
  except ValueError as e:
    what = "an integer" if kind is int else "a number"
    raise ValueError(f"{path}:{line}: column {column}: expected {what}, got {value!r}") from e


def _is_int(value: str) -> bool:
  try:
    int(value)
  except ValueError:
    return False
  return True


def _build(
  path, template_ids, subject_ids, filenames, media_ids, splits, boxes, lines
) -> TemplateMetadata:
  """Remaps templates and checks that every template has one subject."""
  template_ids = np.asarray(template_ids, np.int64)
  subject_ids = np.asarray(subject_ids, np.int64)
  unique, first, index = np.unique(template_ids, return_index=True, return_inverse=True)
  template_subjects = subject_ids[first]
  clash = np.nonzero(subject_ids != template_subjects[index])[0]
  if clash.size:
    r, r0 = clash[0], first[index[clash[0]]]
    where = f"{path}:{lines[r]}" if lines is not None else path
    raise ValueError(
      f"{where}: column SUBJECT_ID: template {template_ids[r]} has subject "
      f"{subject_ids[r]} here but {subject_ids[r0]}"
      + (f" on line {lines[r0]}" if lines is not None else " elsewhere")
    )
  return TemplateMetadata(
    path=path,
    template_index=index.astype(np.int64),
    template_ids=unique,
    subject_ids=subject_ids,
    template_subject_ids=template_subjects,
    filenames=np.asarray(filenames, dtype=str),
    media_ids=media_ids,
    splits=splits,
    boxes=boxes,
  )


def read_template_metadata(path: str) -> TemplateMetadata:
  """Reads one template metadata CSV (see the module docstring for columns).

  ValueError, naming file, line and column, for: a missing file, an empty file, missing
  required columns, a row with another number of fields than the header, a
  non-integer id, a non-numeric face box value, a template with two subjects.
  """
  rows = _rows(path)
  header_line, header = rows[0]
  names = [_ALIASES.get(h.upper(), h.upper()) for h in header]
  missing = [c for c in _REQUIRED if c not in names]
  if missing:
    raise ValueError(
      f"{path}:{header_line}: header lacks column(s) {missing} "
      f"(found {header}); FILE is accepted for FILENAME"
    )
  duplicated = sorted({n for n in names if names.count(n) > 1})
  if duplicated:
    raise ValueError(f"{path}:{header_line}: duplicated column(s) {duplicated}")
  col = {n: i for i, n in enumerate(names)}
  has_box = all(c in col for c in _BOX)
  data = rows[1:]
  if not data:
    raise ValueError(f"{path}: header but no rows")
  out = {k: [] for k in ("TEMPLATE_ID", "SUBJECT_ID", "FILENAME", "MEDIA_ID", "SPLIT", "BOX")}
  lines = []
  for line, fields in data:
    if len(fields) != len(header):
      raise ValueError(
        f"{path}:{line}: expected {len(header)} fields (as the header), got {len(fields)}"
      )
    for c in ("TEMPLATE_ID", "SUBJECT_ID", "MEDIA_ID", "SPLIT"):
      if c in col:
        out[c].append(_parse(path, line, c, fields[col[c]]))
    if not fields[col["FILENAME"]]:
      raise ValueError(f"{path}:{line}: column FILENAME: empty")
    out["FILENAME"].append(fields[col["FILENAME"]])
    if has_box:
      out["BOX"].append([_parse(path, line, c, fields[col[c]], float) for c in _BOX])
    lines.append(line)
  optional = {c: np.asarray(out[c], np.int64) if c in col else None for c in ("MEDIA_ID", "SPLIT")}
  return _build(
    path,
    out["TEMPLATE_ID"],
    out["SUBJECT_ID"],
    out["FILENAME"],
    optional["MEDIA_ID"],
    optional["SPLIT"],
    np.asarray(out["BOX"], np.float32) if has_box else None,
    lines,
  )


def read_template_metadata_splits(paths: Sequence[str]) -> list[TemplateMetadata]:
  """One metadata file per split (e.g. IJB-A ``split1/verify_metadata_1.csv`` ... 10)."""
  if isinstance(paths, str) or not paths:
    raise ValueError(f"paths must be a non-empty list of files, got {paths!r}")
  return [read_template_metadata(p) for p in paths]


def read_template_pairs(path: str) -> TemplatePairs:
  """Reads verification pairs ``TEMPLATE_ID1, TEMPLATE_ID2[, LABEL]``.

  A first row whose first field is not an integer is a header (names matched case
  insensitively: TEMPLATE_ID1, TEMPLATE_ID2 and optional LABEL, other columns are
  errors). Without header, rows have 2 fields, or 3 with the label. LABEL is 1 (same
  subject) or 0.
  """
  rows = _rows(path)
  first_line, first = rows[0]
  if _is_int(first[0]):
    if len(first) not in (2, 3):
      raise ValueError(
        f"{path}:{first_line}: expected 2 or 3 fields "
        f"(TEMPLATE_ID1, TEMPLATE_ID2[, LABEL]), got {len(first)}"
      )
    names = ["TEMPLATE_ID1", "TEMPLATE_ID2", "LABEL"][: len(first)]
    data = rows
  else:
    names = [h.upper() for h in first]
    if names not in (["TEMPLATE_ID1", "TEMPLATE_ID2"], ["TEMPLATE_ID1", "TEMPLATE_ID2", "LABEL"]):
      raise ValueError(
        f"{path}:{first_line}: header must be TEMPLATE_ID1, TEMPLATE_ID2[, LABEL], got {first}"
      )
    data = rows[1:]
  if not data:
    raise ValueError(f"{path}: no pairs")
  values = []
  for line, fields in data:
    if len(fields) != len(names):
      raise ValueError(f"{path}:{line}: expected {len(names)} fields, got {len(fields)}")
    row = [_parse(path, line, name, value) for name, value in zip(names, fields)]
    if len(row) == 3 and row[2] not in (0, 1):
      raise ValueError(f"{path}:{line}: column LABEL: expected 0 or 1, got {fields[2]!r}")
    values.append(row)
  values = np.asarray(values, np.int64)
  labels = values[:, 2].astype(bool) if values.shape[1] == 3 else None
  return TemplatePairs(path, values[:, 0], values[:, 1], labels)


def pair_labels(pairs: TemplatePairs, metadata: TemplateMetadata) -> np.ndarray:
  """bool [P]: whether the two templates of each pair share a subject.

  ValueError naming unknown template ids, or if ``pairs`` has labels that disagree
  with the metadata.
  """
  same = (
    metadata.template_subject_ids[metadata.indices_of(pairs.template_ids1)]
    == metadata.template_subject_ids[metadata.indices_of(pairs.template_ids2)]
  )
  if pairs.labels is not None and np.any(pairs.labels != same):
    bad = int(np.argmax(pairs.labels != same))
    raise ValueError(
      f"{pairs.path}: pair {bad} ({pairs.template_ids1[bad]}, "
      f"{pairs.template_ids2[bad]}) has LABEL {int(pairs.labels[bad])} but "
      f"the subjects in {metadata.path} say {int(same[bad])}"
    )
  return same


def _concatenate(parts: Sequence[TemplateMetadata]) -> TemplateMetadata:
  """Concatenates metadata files whose template ids are disjoint."""
  if len(parts) == 1:
    return parts[0]
  seen = {}
  for part in parts:
    for t in part.template_ids:
      if t in seen:
        raise ValueError(f"template id {t} is in both {seen[t]} and {part.path}")
      seen[t] = part.path

  def cat(name):
    arrays = [getattr(p, name) for p in parts]
    if any(a is None for a in arrays):
      if not all(a is None for a in arrays):
        raise ValueError(f"column {name} is in some of {[p.path for p in parts]} only")
      return None
    return np.concatenate(arrays)

  return _build(
    " + ".join(p.path for p in parts),
    np.concatenate([p.template_ids[p.template_index] for p in parts]),
    cat("subject_ids"),
    cat("filenames"),
    cat("media_ids"),
    cat("splits"),
    cat("boxes"),
    lines=None,
  )


def read_search_protocol(gallery_paths: PathOrPaths, probe_path: str) -> SearchProtocol:
  """1:N protocol: gallery file(s) (concatenated; template ids must be disjoint) and probe.

  ValueError if a template id occurs in two gallery files or in gallery and probe.
  """
  paths = [gallery_paths] if isinstance(gallery_paths, str) else list(gallery_paths)
  if not paths:
    raise ValueError("gallery_paths is empty")
  gallery = _concatenate([read_template_metadata(p) for p in paths])
  probe = read_template_metadata(probe_path)
  shared = np.intersect1d(gallery.template_ids, probe.template_ids)
  if shared.size:
    raise ValueError(
      f"template ids {shared[:10].tolist()} are in both the gallery "
      f"({gallery.path}) and the probe ({probe_path})"
    )
  return SearchProtocol(gallery, probe)
