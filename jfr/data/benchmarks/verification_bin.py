"""insightface verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...).

A ``.bin`` is a pickle of ``(bins, issame_list)``: ``bins`` a list of ``2 P`` encoded images
(JPEG/PNG bytes, already aligned 112x112 crops), ``issame_list`` ``P`` booleans; pair ``p``
is images ``2p`` and ``2p + 1``. Files written by Python 2 hold ``str`` objects (read as
bytes); files written by Python 3 with pickle protocol 2 encode ``bytes`` as
``_codecs.encode(<latin-1 str>, 'latin1')``.

A pickle can run code (any importable callable named by a GLOBAL opcode). This reader uses
a restricted unpickler that admits only the structure above: tuples, lists, bytes, str,
bools and ints, plus the globals ``_codecs.encode`` and ``bytes`` / ``bytearray`` that
protocol-2 files use for bytes. Anything else raises :class:`UnsafePickleError` naming the
global, before it is called.

No paper equation lives here.
"""

from __future__ import annotations

import codecs
import dataclasses
import io
import os
import pickle

import numpy as np

# (module, name) -> object; the only globals a .bin may name.
_ALLOWED = {
  ("_codecs", "encode"): codecs.encode,
  ("builtins", "bytes"): bytes,
  ("builtins", "bytearray"): bytearray,
  ("__builtin__", "bytes"): bytes,
  ("__builtin__", "bytearray"): bytearray,
}


class UnsafePickleError(pickle.UnpicklingError):
  """A pickle names a global that a verification ``.bin`` never needs."""


class _RestrictedUnpickler(pickle.Unpickler):
  def __init__(self, file, name: str):
    super().__init__(file, encoding="bytes")
    self._name = name

  def find_class(self, module: str, name: str):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    raise UnsafePickleError(
      f"{self._name}: refusing to load global {module}.{name}: an insightface .bin holds only "
      "tuples/lists of image bytes and booleans (allowed globals: "
      f"{sorted(f'{m}.{n}' for m, n in _ALLOWED)})"
    )

  def persistent_load(self, pid):
    raise UnsafePickleError(f"{self._name}: refusing persistent id {pid!r}")


def restricted_loads(data: bytes, name: str = "<bytes>"):
  """Unpickles ``data`` with the restricted unpickler (module docstring)."""
  return _RestrictedUnpickler(io.BytesIO(data), name).load()


@dataclasses.dataclass(frozen=True)
class VerificationBin:
  """One verification set.

  Attributes:
    path: the file.
    images: ``2 P`` encoded images (bytes); pair ``p`` is ``images[2p], images[2p + 1]``.
    issame: bool ``[P]``.
  """

  path: str
  images: list
  issame: np.ndarray

  @property
  def num_pairs(self) -> int:
    return int(self.issame.size)


def read_bin(path: str) -> VerificationBin:
  """Reads an insightface ``.bin`` (ValueError on a malformed structure,
  :class:`UnsafePickleError` on a pickle that names another global)."""
  if not os.path.isfile(path):
    raise ValueError(f"path: {path!r} is not a file")
  with open(path, "rb") as f:
    data = f.read()
  try:
    obj = restricted_loads(data, path)
  except UnsafePickleError:
    raise
  except Exception as e:  # truncated / not a pickle
    raise ValueError(f"{path}: not a readable verification .bin ({type(e).__name__}: {e})") from e
  if not isinstance(obj, (tuple, list)) or len(obj) != 2:
    raise ValueError(f"{path}: expected a pickled (bins, issame_list) pair, got {type(obj)}")
  bins, issame = obj
  if not isinstance(bins, (tuple, list)) or not isinstance(issame, (tuple, list)):
    raise ValueError(f"{path}: bins and issame_list must be lists")
  bad = [i for i, b in enumerate(bins) if not isinstance(b, (bytes, bytearray))]
  if bad:
    raise ValueError(f"{path}: bins[{bad[0]}] is {type(bins[bad[0]]).__name__}, expected bytes")
  if any(not isinstance(s, (bool, int)) or s not in (0, 1) for s in issame):
    raise ValueError(f"{path}: issame_list must hold booleans")
  if len(bins) != 2 * len(issame) or not issame:
    raise ValueError(
      f"{path}: {len(bins)} images for {len(issame)} pairs (expected two images per pair)"
    )
  return VerificationBin(path, [bytes(b) for b in bins], np.asarray(issame, bool))
