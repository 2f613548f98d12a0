"""IJB-B / IJB-C as insightface packages them (``IJB_release/IJBB``, ``IJB_release/IJBC``).

Layout of one target folder (``X`` = ``b`` or ``c``)::

  loose_crop/<image>.jpg                   face crops (loosely cropped, not aligned)
  meta/ijbX_face_tid_mid.txt               '<image> <template id> <media id>' per crop
  meta/ijbX_name_5pts_score.txt            '<image> x1 y1 ... x5 y5 <detector score>' per crop
  meta/ijbX_template_pair_label.txt        '<template 1> <template 2> <label 0/1>' per 1:1 pair
  meta/ijbX_1N_gallery_{G1,G2}.csv         1:N galleries (IJB-B: ..._S1.csv / ..._S2.csv)
  meta/ijbX_1N_probe_mixed.csv             1:N probes

The ``.txt`` files are space separated without header (insightface's ``ijb_11.py`` reads them
with ``sep=' '``); the two crop lists list the same crops in the same order. The 1:N CSVs
have a header and ``TEMPLATE_ID,SUBJECT_ID,...`` as their first two columns (one row per
media item; a template's crops are taken from ``face_tid_mid``, as insightface does).
Landmarks are (x, y) pixels in the loose crop, in :data:`jfr.data.align.FIVE_POINT_NAMES`
order.

The pair list of IJB-C has 15.7 M rows: it is parsed in blocks of lines with NumPy.

No paper equation lives here.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

TARGETS = ("ijbb", "ijbc")
_GALLERIES = {"ijbb": ("S1", "S2"), "ijbc": ("G1", "G2")}


@dataclasses.dataclass(frozen=True)
class IjbLayout:
  """Paths of one IJB-B / IJB-C folder (module docstring)."""

  root: str
  target: str
  crops: str
  face_tid_mid: str
  five_points: str
  pairs: str
  galleries: tuple
  gallery_names: tuple
  probe: str

  def has_1n(self) -> bool:
    return all(os.path.isfile(p) for p in (*self.galleries, self.probe))


def find_layout(root: str) -> IjbLayout:
  """The layout under ``root`` (an ``IJBB`` / ``IJBC`` folder holding ``meta/`` and
  ``loose_crop/``); the target is read from the meta file names."""
  meta = os.path.join(root, "meta")
  if not os.path.isdir(meta):
    raise ValueError(f"data: {root!r} has no meta/ folder (expected insightface's IJBB/IJBC)")
  found = [t for t in TARGETS if os.path.isfile(os.path.join(meta, f"{t}_face_tid_mid.txt"))]
  if len(found) != 1:
    raise ValueError(
      f"data: expected exactly one of {[f'meta/{t}_face_tid_mid.txt' for t in TARGETS]} "
      f"under {root!r}, found {found}"
    )
  t = found[0]
  layout = IjbLayout(
    root=root,
    target=t,
    crops=os.path.join(root, "loose_crop"),
    face_tid_mid=os.path.join(meta, f"{t}_face_tid_mid.txt"),
    five_points=os.path.join(meta, f"{t}_name_5pts_score.txt"),
    pairs=os.path.join(meta, f"{t}_template_pair_label.txt"),
    galleries=tuple(os.path.join(meta, f"{t}_1N_gallery_{g}.csv") for g in _GALLERIES[t]),
    gallery_names=_GALLERIES[t],
    probe=os.path.join(meta, f"{t}_1N_probe_mixed.csv"),
  )
  for path in (layout.five_points, layout.pairs):
    if not os.path.isfile(path):
      raise ValueError(f"data: missing {path!r}")
  if not os.path.isdir(layout.crops):
    raise ValueError(f"data: missing the crop folder {layout.crops!r}")
  return layout


def _split_lines(path: str, fields: int, what: str) -> list[list[str]]:
  if not os.path.isfile(path):
    raise ValueError(f"{path!r} does not exist")
  rows = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      parts = line.split()
      if not parts:
        continue
      if len(parts) != fields:
        raise ValueError(f"{path}:{number}: expected {what} ({fields} fields), got {len(parts)}")
      rows.append(parts)
  if not rows:
    raise ValueError(f"{path}: empty file")
  return rows


def read_face_tid_mid(path: str) -> tuple[list, np.ndarray, np.ndarray]:
  """``(image names [N], template ids int64 [N], media ids int64 [N])``."""
  rows = _split_lines(path, 3, "'<image> <template> <media>'")
  try:
    ids = np.asarray([(int(r[1]), int(r[2])) for r in rows], np.int64)
  except ValueError as e:
    raise ValueError(f"{path}: template and media ids must be integers ({e})") from e
  return [r[0] for r in rows], ids[:, 0], ids[:, 1]


def read_five_points(path: str) -> tuple[list, np.ndarray, np.ndarray]:
  """``(image names [N], landmarks float32 [N, 5, 2], detector scores float32 [N])``."""
  rows = _split_lines(path, 12, "'<image> x1 y1 ... x5 y5 <score>'")
  try:
    values = np.asarray([[float(v) for v in r[1:]] for r in rows], np.float32)
  except ValueError as e:
    raise ValueError(f"{path}: landmarks and scores must be numbers ({e})") from e
  return [r[0] for r in rows], values[:, :10].reshape(-1, 5, 2), values[:, 10]


def read_template_pairs(
  path: str, block_lines: int = 1_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(template 1 int64 [P], template 2 int64 [P], label bool [P])`` of the space-separated
  ``t1 t2 label`` file, parsed ``block_lines`` lines at a time."""
  if not os.path.isfile(path):
    raise ValueError(f"{path!r} does not exist")
  blocks = []
  done = 0
  with open(path, encoding="utf-8") as f:
    while True:
      lines = f.readlines(block_lines * 16)
      if not lines:
        break
      try:
        with warnings.catch_warnings():
          warnings.simplefilter("ignore", DeprecationWarning)  # older NumPy: stops at bad data
          values = np.fromstring("".join(lines), dtype=np.int64, sep=" ")
      except ValueError:  # NumPy >= 2.3: unparsable data
        values = np.zeros(0, np.int64)
      if values.size != 3 * sum(1 for line in lines if line.strip()):
        for i, line in enumerate(lines):
          if line.strip() and len(line.split()) != 3:
            raise ValueError(
              f"{path}:{done + i + 1}: expected '<template 1> <template 2> <label>', "
              f"got {line.strip()!r}"
            )
        raise ValueError(f"{path}: lines {done + 1}-{done + len(lines)}: non-integer values")
      blocks.append(values.reshape(-1, 3))
      done += len(lines)
  if not blocks:
    raise ValueError(f"{path}: empty file")
  table = np.concatenate(blocks)
  if table.size == 0:
    raise ValueError(f"{path}: empty file")
  if not np.isin(table[:, 2], (0, 1)).all():
    bad = int(np.argmax(~np.isin(table[:, 2], (0, 1))))
    raise ValueError(f"{path}: pair {bad + 1}: label must be 0 or 1, got {table[bad, 2]}")
  return table[:, 0], table[:, 1], table[:, 2].astype(bool)


def read_1n_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
  """``(template ids int64 [T], subject ids int64 [T])``, one entry per distinct template
  (in ascending template order) of a 1:N gallery/probe CSV (header, then
  ``TEMPLATE_ID,SUBJECT_ID,...``); ValueError if a template has two subjects."""
  if not os.path.isfile(path):
    raise ValueError(f"{path!r} does not exist")
  pairs = []
  with open(path, encoding="utf-8-sig") as f:
    for number, line in enumerate(f, start=1):
      fields = [v.strip() for v in line.split(",")]
      if number == 1 or not line.strip():
        continue
      try:
        pairs.append((int(fields[0]), int(fields[1])))
      except (ValueError, IndexError) as e:
        raise ValueError(f"{path}:{number}: expected 'TEMPLATE_ID,SUBJECT_ID,...' ({e})") from e
  if not pairs:
    raise ValueError(f"{path}: no rows after the header")
  table = np.unique(np.asarray(pairs, np.int64), axis=0)
  templates, first = np.unique(table[:, 0], return_index=True)
  if templates.size != table.shape[0]:
    dup = templates[np.bincount(np.searchsorted(templates, table[:, 0])) > 1][0]
    raise ValueError(f"{path}: template {dup} has more than one SUBJECT_ID")
  return templates, table[first, 1]
