"""Embedding many images with bounded memory: threaded decoding, batching, flips, a cache.

* :func:`embed_items`: ``load(i) -> uint8 [S, S, 3]`` for ``i < n`` is run on a thread pool
  one batch ahead of the model, so that decoding overlaps the forward pass; only two
  batches of pixels live at a time, features are written into one ``[n, D]`` array.
  With ``flip`` each batch is embedded together with its mirror image (one call of
  ``embed`` on ``2 b`` images) and both features are returned (evaluators form the
  arcface_torch / insightface flip feature ``f(x) + f(flip(x))``, :func:`flip_sum`).
* :func:`cached`: features saved as ``<prefix>_<name>.npz`` beside a fingerprint of what
  they were computed from (item keys, input size, flip, crop settings); a cache whose
  fingerprint differs is recomputed, never silently reused.
* ``progress``: a factory ``progress(total, description) -> bar`` with ``bar.update(k)``
  and ``bar.close()`` (``jfr.evaluate`` passes tqdm); None = no bar.

No paper equation lives here.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jfr.eval import embedding

ProgressFactory = Callable[[int, str], Any]


def embed_items(
  embed: embedding.EmbedFn,
  load: Callable[[int], np.ndarray],
  n: int,
  *,
  batch_size: int,
  flip: bool = False,
  progress: ProgressFactory | None = None,
  description: str = "embedding",
  threads: int = 8,
) -> dict[str, np.ndarray]:
  """Features of ``n`` items.

  Args:
    embed: the model's :data:`~jfr.eval.embedding.EmbedFn`.
    load: item index -> uint8 ``[S, S, 3]`` (every item the same ``S``).
    n: number of items (>= 1).
    batch_size: items per call of ``embed``.
    flip: also embed the horizontally mirrored images.
    progress: progress-bar factory (module docstring) or None.
    description: the bar's label.
    threads: decoding threads.

  Returns:
    ``{'features': float32 [n, D]}`` and, with ``flip``, ``'flipped'``: float32 ``[n, D]``
    features of the mirrored images.
  """
  if n < 1:
    raise ValueError(f"n: expected at least one item, got {n}")
  if batch_size < 1:
    raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
  bar = progress(n, description) if progress is not None else None
  out: dict[str, np.ndarray] = {}
  with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:

    def submit(start: int) -> list:
      return [pool.submit(load, i) for i in range(start, min(start + batch_size, n))]

    pending = submit(0)
    for start in range(0, n, batch_size):
      images = embedding.check_images(np.stack([f.result() for f in pending]), "load(i)")
      pending = submit(start + batch_size) if start + batch_size < n else []
      count = len(images)
      if flip:
        feats = np.asarray(embed(np.concatenate([images, images[:, :, ::-1]])), np.float32)
        parts = {"features": feats[:count], "flipped": feats[count:]}
      else:
        parts = {"features": np.asarray(embed(images), np.float32)}
      for key, value in parts.items():
        if key not in out:
          out[key] = np.empty((n, value.shape[-1]), np.float32)
        out[key][start : start + count] = value
      if bar is not None:
        bar.update(count)
  if bar is not None:
    bar.close()
  return out


def flip_sum(features: Mapping[str, np.ndarray], flip: bool) -> np.ndarray:
  """``features`` or, with ``flip``, ``features + flipped`` (arcface_torch's flip test)."""
  if not flip:
    return features["features"]
  if "flipped" not in features:
    raise ValueError("features: flip requested but no flipped features were computed")
  return features["features"] + features["flipped"]


def fingerprint(**parts: Any) -> str:
  """A SHA-1 hex digest of JSON-serialisable ``parts`` (sorted keys)."""
  text = json.dumps(parts, sort_keys=True, default=str)
  return hashlib.sha1(text.encode("utf-8")).hexdigest()


def keys_digest(keys: Sequence[str]) -> str:
  """A SHA-1 hex digest of an ordered list of item keys (file names)."""
  h = hashlib.sha1()
  for k in keys:
    h.update(k.encode("utf-8"))
    h.update(b"\n")
  return h.hexdigest()


def cached(
  prefix: str | None,
  name: str,
  digest: str,
  compute: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
  """``compute()``, or its saved result from ``<prefix>_<name>.npz`` when that file holds the
  same ``digest``; with ``prefix`` None nothing is read or written."""
  if prefix is None:
    return compute()
  path = f"{prefix}_{name}.npz"
  if os.path.isfile(path):
    with np.load(path) as saved:
      if str(saved["fingerprint"]) == digest:
        return {k: saved[k] for k in saved.files if k != "fingerprint"}
  result = compute()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, fingerprint=np.array(digest), **result)
  os.replace(tmp, path)
  return result


def l2_normalize(x: np.ndarray) -> np.ndarray:
  """Rows divided by their L2 norm (``sklearn.preprocessing.normalize``; zero rows stay 0)."""
  norm = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.where(norm > 0, norm, 1.0)


def setting(settings: Mapping[str, Any], key: str, default: Any) -> Any:
  """``settings[key]`` when present and not None, else ``default``."""
  value = settings.get(key)
  return default if value is None else value
