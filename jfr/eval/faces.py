"""Test faces with landmarks for the face-geometry evaluators (occlusion, peak spread,
partial-face retrieval): one split of the run's data set as arrays, in stored order."""

from __future__ import annotations

from typing import Any

import numpy as np

from jfr.data import pipelines

FEATURES = ("image", "label", "landmarks", "occluder_mask")


def load_faces(context: Any, split: str) -> dict[str, np.ndarray]:
  """``split`` of ``context.builder`` as arrays (stored order).

  Returns ``image`` uint8 ``[N, S, S, 3]``, ``label`` ``[N]``, ``landmarks`` float32
  ``[N, 68, 2]`` (x, y pixels of the stored image) and ``natural`` bool ``[N]``: the face
  carries a natural occluder (eyeglasses, scarf: a non-empty ``occluder_mask``).
  """
  if context is None or not hasattr(context, "builder"):
    raise ValueError("context: this evaluator needs the run's data set (a RunContext)")
  raw = pipelines.load_arrays(context.builder, split, features=FEATURES)
  return {
    "image": raw["image"],
    "label": raw["label"],
    "landmarks": raw["landmarks"].astype(np.float32),
    "natural": raw["occluder_mask"].any(axis=(1, 2)),
  }
