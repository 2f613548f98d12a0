"""Reads a PyTorch ``state_dict`` file (``torch.save``, zip format) into NumPy, without torch.

A ``.pth`` written by ``torch.save`` (PyTorch >= 1.6) is a zip archive
``<name>/data.pkl`` + ``<name>/data/<key>`` (+ ``byteorder``, ``version``, ...):

* ``data.pkl`` is a pickle (protocol 2) of the state dict: an
  ``collections.OrderedDict`` of tensors, each pickled as
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
  backward_hooks[, metadata])`` (parameters wrapped in ``_rebuild_parameter``), where
  ``storage`` is a *persistent id* ``('storage', torch.<Type>Storage, key, location,
  numel)``;
* ``data/<key>`` holds that storage's raw bytes (little-endian unless ``byteorder``
  says otherwise).

Unpickling runs whatever callables a file names, so the unpickler here resolves only
the names above (the rebuild functions, ``OrderedDict`` and the storage types) to
functions of this module that build ``numpy`` arrays; any other global — a class of
some library, ``os.system``, ... — is refused with :class:`UnsafePickleError` before
anything is called. No torch is imported. The legacy (pre-1.6, non-zip) format is not
read: re-save such a file with a recent PyTorch.
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

# torch storage type name -> NumPy dtype of its elements.
STORAGE_DTYPES = {
  "FloatStorage": np.float32,
  "DoubleStorage": np.float64,
  "HalfStorage": np.float16,
  "BFloat16Storage": ml_dtypes.bfloat16,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
}


class UnsafePickleError(pickle.UnpicklingError):
  """The file names a Python global that a state dict does not need (refused, never called)."""


class _StorageType:
  """Stands for ``torch.<Type>Storage`` inside the pickle: just the element dtype."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(STORAGE_DTYPES[name])


def _rebuild_tensor_v2(
  storage: np.ndarray,
  storage_offset: int,
  size: tuple[int, ...],
  stride: tuple[int, ...],
  requires_grad: bool = False,
  backward_hooks: Any = None,
  metadata: Any = None,
) -> np.ndarray:
  """The tensor ``storage[offset:]`` viewed with ``size``/``stride`` (in elements), copied."""
  del requires_grad, backward_hooks, metadata
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if len(size) != len(stride):
    raise pickle.UnpicklingError(f"tensor size {size} and stride {stride} differ in rank")
  if any(n == 0 for n in size):
    return np.zeros(size, storage.dtype)
  last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
  if storage_offset < 0 or any(s < 0 for s in stride) or last >= storage.size:
    raise pickle.UnpicklingError(
      f"tensor of size {size}, stride {stride} at offset {storage_offset} lies outside "
      f"its storage of {storage.size} elements (truncated file?)"
    )
  item = storage.itemsize
  view = np.lib.stride_tricks.as_strided(
    storage[storage_offset:], size, tuple(s * item for s in stride), writeable=False
  )
  return np.array(view)


def _rebuild_parameter(data: np.ndarray, requires_grad: bool = False, *args: Any) -> np.ndarray:
  del requires_grad, args
  return data


_ALLOWED: dict[tuple[str, str], Any] = {
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
  """Resolves only the globals of a tensor state dict; storages come from the zip."""

  def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str, byteorder: str):
    super().__init__(file)
    self._archive, self._prefix, self._byteorder = archive, prefix, byteorder
    self._storages: dict[str, np.ndarray] = {}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    if module == "torch" and name in STORAGE_DTYPES:
      return _StorageType(name)
    raise UnsafePickleError(
      f"refusing to load global {module}.{name}: a state dict of tensors does not need it "
      "(only torch's tensor rebuild functions, storages and collections.OrderedDict are "
      "allowed; load full pickled models with torch and save their state_dict())"
    )

  def persistent_load(self, pid: Any) -> np.ndarray:
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    _, storage_type, key, _location, numel = pid
    if not isinstance(storage_type, _StorageType):
      raise UnsafePickleError(f"storage {key!r}: unsupported storage type {storage_type!r}")
    if key not in self._storages:
      name = f"{self._prefix}data/{key}"
      try:
        raw = self._archive.read(name)
      except KeyError as error:
        raise pickle.UnpicklingError(f"storage {name!r} is missing from the archive") from error
      dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
      if len(raw) < int(numel) * dtype.itemsize:
        raise pickle.UnpicklingError(
          f"storage {name!r} holds {len(raw)} bytes, expected {int(numel)} x {dtype.itemsize}"
        )
      array = np.frombuffer(raw, dtype, count=int(numel))
      self._storages[key] = array.astype(array.dtype.newbyteorder("="))
    return self._storages[key]


def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
  if isinstance(tree, np.ndarray):
    out[prefix] = tree
  elif isinstance(tree, dict):
    for key, value in tree.items():
      _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
  # Other leaves (epoch counters, optimizer hyper-parameters, ...) are not tensors: skipped.


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The tensors of a ``torch.save``'d state dict as ``{name: np.ndarray}``.

  Nested dicts (``{'state_dict': {...}}``) are flattened with dots; leaves that are
  not tensors (numbers, strings, lists) are skipped. Tensors keep their
  dtype (bfloat16 via ``ml_dtypes``); a ``module.`` prefix (DistributedDataParallel)
  is left to the caller.

  Raises:
    ValueError: ``path`` is not a zip-format ``torch.save`` file, or is damaged.
    UnsafePickleError: the pickle names any global outside the state-dict allowlist.
  """
  try:
    archive = zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError) as error:
    raise ValueError(
      f"input: {path} is not a zip-format torch.save file (PyTorch >= 1.6); legacy "
      f"files must be re-saved with a recent PyTorch ({error})"
    ) from error
  with archive:
    pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"input: {path} holds {len(pickles)} data.pkl records, expected 1")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if f"{prefix}byteorder" in archive.namelist():
      byteorder = archive.read(f"{prefix}byteorder").decode().strip()
    try:
      with archive.open(pickles[0]) as f:
        tree = _StateDictUnpickler(f, archive, prefix, byteorder).load()
    except UnsafePickleError:
      raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError) as error:
      raise ValueError(f"input: {path} is damaged: {error}") from error
  out: dict[str, np.ndarray] = {}
  _flatten(tree, "", out)
  return out
