"""insightface RecordIO data sets (``train.rec`` + ``train.idx`` [+ ``property``]), no mxnet.

The files of MS1MV2/V3, Glint360K, CASIA-WebFace, ... as distributed for arcface_torch:

* ``train.rec``: MXNet / dmlc-core RecordIO. Each part of a record is ``uint32 magic
  (0xced7230a)``, ``uint32 lrecord`` (``cflag = lrecord >> 29``, ``length = lrecord &
  (2^29 - 1)``), ``length`` bytes of data, zero padding to a multiple of 4. ``cflag`` 0 is
  a whole record; a record whose data contain the magic word (at a 4-byte aligned
  position) is split there into parts with cflags 1 (first), 2 (middle), 3 (last), and
  the reader re-inserts the magic word between parts.
* A record's data start with MXNet's ``IRHeader``, ``struct 'IfQQ'``: ``flag`` (uint32),
  ``label`` (float32), ``id``, ``id2`` (uint64); when ``flag > 0``, ``flag`` float32
  labels follow the header (and ``label`` is ignored). The rest is the encoded image
  (JPEG, already aligned to 112x112 by insightface).
* ``train.idx``: text lines ``<record index>\\t<byte offset>``.
* Record 0 (insightface's layout): ``flag > 0`` and ``labels = (a, b)``: images are
  records ``1 .. a-1``; records ``a .. b-1`` are identity records whose labels
  ``(start, end)`` give each identity's image records ``start .. end-1``. Without it
  (``flag == 0``), every record is an image whose header label is its identity.
* ``property``: ``num_classes,height,width`` (checked when present).

Labels: identity k is the k-th identity record (or the k-th distinct header label in
ascending order); ``class_names`` are the header labels of each identity's first image
or the identity's record index. Images are read with ``os.pread`` (thread safe).

No paper equation lives here.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from jfr.data.formats import source as source_lib

MAGIC = 0xCED7230A
IR_FORMAT = "IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24
_LENGTH_MASK = (1 << 29) - 1


class RecordIOFile:
  """Random access to the records of a ``.rec`` file (thread safe, via ``os.pread``)."""

  def __init__(self, path: str):
    if not os.path.isfile(path):
      raise ValueError(f"RecordIO file {path!r} does not exist")
    self.path = path
    self._fd = os.open(path, os.O_RDONLY)
    self.size = os.fstat(self._fd).st_size

  def close(self) -> None:
    os.close(self._fd)

  def read_at(self, offset: int) -> bytes:
    """The record starting at byte ``offset`` (parts joined, magic words re-inserted)."""
    parts = []
    position = offset
    while True:
      head = os.pread(self._fd, 8, position)
      if len(head) != 8:
        raise ValueError(f"{self.path}: record at byte {offset} runs past the end of the file")
      magic, lrecord = struct.unpack("<II", head)
      if magic != MAGIC:
        raise ValueError(
          f"{self.path}: no record at byte {position} (magic {magic:#010x}, "
          f"expected {MAGIC:#010x}); is train.idx from another file?"
        )
      cflag, length = lrecord >> 29, lrecord & _LENGTH_MASK
      data = os.pread(self._fd, length, position + 8)
      if len(data) != length:
        raise ValueError(f"{self.path}: record at byte {offset} is truncated")
      parts.append(data)
      position += 8 + ((length + 3) & ~3)
      if cflag in (0, 3):
        break
      if cflag not in (1, 2):
        raise ValueError(f"{self.path}: bad continuation flag {cflag} at byte {position}")
      parts.append(struct.pack("<I", MAGIC))
    return b"".join(parts)


def unpack(record: bytes) -> tuple[int, np.ndarray, int, int, bytes]:
  """MXNet ``recordio.unpack``: -> (flag, labels float32 [max(flag, 1)], id, id2, payload)."""
  if len(record) < IR_SIZE:
    raise ValueError(f"record of {len(record)} bytes is shorter than the IRHeader ({IR_SIZE})")
  flag, label, id1, id2 = struct.unpack(IR_FORMAT, record[:IR_SIZE])
  if flag > 0:
    end = IR_SIZE + 4 * flag
    labels = np.frombuffer(record[IR_SIZE:end], np.float32).copy()
    return flag, labels, id1, id2, record[end:]
  return flag, np.array([label], np.float32), id1, id2, record[IR_SIZE:]


def read_idx(path: str) -> dict[int, int]:
  """``train.idx`` -> {record index: byte offset}; errors name file and line."""
  if not os.path.isfile(path):
    raise ValueError(f"RecordIO index {path!r} does not exist")
  table = {}
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != 2:
        raise ValueError(f"{path}:{number}: expected '<index>\\t<offset>', got {line!r}")
      table[int(fields[0])] = int(fields[1])
  return table


def read_property(path: str) -> tuple[int, int, int]:
  """``property`` ('num_classes,height,width') -> the three ints."""
  with open(path, encoding="utf-8") as f:
    text = f.read().strip()
  try:
    values = tuple(int(v) for v in text.split(","))
  except ValueError as e:
    raise ValueError(f"{path}: expected 'num_classes,height,width', got {text!r}") from e
  if len(values) != 3:
    raise ValueError(f"{path}: expected 'num_classes,height,width', got {text!r}")
  return values


def index_recordio(root: str) -> source_lib.Source:
  """``root/train.rec`` + ``root/train.idx`` (or ``root`` naming the ``.rec``) -> Source."""
  rec_path = root if root.endswith(".rec") else os.path.join(root, "train.rec")
  folder = os.path.dirname(rec_path)
  idx_path = rec_path[: -len(".rec")] + ".idx"
  rec = RecordIOFile(rec_path)
  offsets = read_idx(idx_path)
  notes = {"rec": rec_path, "idx": idx_path}
  first = rec.read_at(offsets[min(offsets)]) if offsets else b""
  flag, labels0, _, _, _ = unpack(first) if first else (0, None, 0, 0, b"")
  if flag > 0 and min(offsets) == 0:
    image_end, identity_end = int(labels0[0]), int(labels0[1])
    image_ids, labels, names = [], [], []
    for k, i in enumerate(range(image_end, identity_end)):
      _, bounds, _, _, _ = unpack(rec.read_at(offsets[i]))
      start, end = int(bounds[0]), int(bounds[1])
      image_ids += range(start, end)
      labels += [k] * (end - start)
      names.append(str(i))
    notes["layout"] = (
      f"record 0: images 1..{image_end - 1}, identities {image_end}..{identity_end - 1}"
    )
  else:
    image_ids = sorted(offsets)
    raw = np.array([unpack(rec.read_at(offsets[i]))[1][0] for i in image_ids])
    values, labels = np.unique(raw, return_inverse=True)
    names = [str(int(v)) if float(v).is_integer() else str(v) for v in values]
    notes["layout"] = "no identity ranges: labels from the image headers"
  missing = [i for i in image_ids if i not in offsets]
  if missing:
    raise ValueError(f"{idx_path}: image records {missing[:5]} are not indexed")
  record_offsets = np.array([offsets[i] for i in image_ids], np.int64)
  record_ids = np.asarray(image_ids, np.int64)
  prop = os.path.join(folder, "property")
  aligned = 112
  if os.path.isfile(prop):
    num_classes, height, width = read_property(prop)
    notes["property"] = [num_classes, height, width]
    if num_classes != len(names):
      raise ValueError(f"{prop}: announces {num_classes} classes but {rec_path} holds {len(names)}")
    aligned = height if height == width else None

  def read(i: int) -> bytes:
    return unpack(rec.read_at(int(record_offsets[i])))[4]

  return source_lib.Source(
    format="recordio",
    root=root,
    labels=np.asarray(labels, np.int64),
    class_names=tuple(names),
    reader=read,
    describe=lambda i: f"{rec_path} record {int(record_ids[i])}",
    default_align="none",
    aligned_size=aligned,
    notes=notes,
  )
