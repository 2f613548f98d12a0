"""The ``lfw`` evaluator: LFW verification from ``pairs.txt`` (View 2) or the View 1 files.

``settings['data']``: a folder holding ``lfw/`` (``Name/Name_0001.jpg``) and the pair lists.

* View 2 (``view=2``, default): ``pairs.txt``; 10-fold accuracy with the folds of the file
  (the 10 sets of 600 pairs, which are also arcface_torch's contiguous folds of
  ``lfw.bin``), by :func:`jfr.eval.benchmarks.verification.arcface_kfold_accuracy`.
* View 1 (``view=1``): the threshold with the best accuracy on ``pairsDevTrain.txt`` (first
  of the grid 0:4:0.01 of squared L2 distances) applied to ``pairsDevTest.txt``.

Faces: the crop policy of :mod:`jfr.data.benchmarks.lfw` (centre crop of side
``crop_fraction * 250``, or five-point alignment with ``settings['landmarks']``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jfr.data.benchmarks import lfw as lfw_files
from jfr.eval.benchmarks import streaming
from jfr.eval.benchmarks import verification
from jfr.eval.embedding import EvalModel
from jfr.report import tables

NEEDS = ("embed",)


def _features(model, settings, root, names, flip) -> dict[str, np.ndarray]:
  """Features of the unique images ``names`` (cached)."""
  landmarks_path = settings.get("landmarks")
  landmarks = lfw_files.read_landmarks(landmarks_path) if landmarks_path else None
  crop = float(streaming.setting(settings, "crop_fraction", lfw_files.DEFAULT_CROP_FRACTION))
  if landmarks is not None:
    missing = [n for n in names if n not in landmarks]
    if missing:
      raise ValueError(f"landmarks: {landmarks_path} has no entry for {missing[0]!r}")

  def load(i: int) -> np.ndarray:
    name = names[i]
    return lfw_files.load_face(
      os.path.join(root, name),
      model.input_size,
      landmarks=None if landmarks is None else landmarks[name],
      crop_fraction=crop,
    )

  digest = streaming.fingerprint(
    kind="lfw", keys=streaming.keys_digest(names), input_size=model.input_size, flip=flip,
    crop=crop, landmarks=landmarks_path and os.path.getmtime(landmarks_path),
  )  # fmt: skip
  return streaming.cached(
    settings.get("cache"),
    "faces",
    digest,
    lambda: streaming.embed_items(
      model.embed, load, len(names), batch_size=int(streaming.setting(settings, "batch_size", 256)),
      flip=flip, progress=settings.get("progress"), description="lfw",
    ),
  )  # fmt: skip


def lfw(model: EvalModel, context: Any, settings: dict, *, seed: int) -> dict:
  """LFW verification (module docstring). Settings: ``data``, ``view`` (2), ``flip``
  (False), ``landmarks`` (None), ``crop_fraction`` (0.6), ``batch_size``, ``cache``,
  ``progress``."""
  del context, seed
  data = settings["data"]
  root = os.path.join(data, "lfw")
  if not os.path.isdir(root):
    raise ValueError(f"data: {data!r} has no lfw/ image folder")
  view = int(streaming.setting(settings, "view", 2))
  flip = bool(streaming.setting(settings, "flip", False))
  files = {2: ["pairs.txt"], 1: ["pairsDevTrain.txt", "pairsDevTest.txt"]}
  if view not in files:
    raise ValueError(f"view: expected 1 or 2, got {view}")
  lists = [lfw_files.read_pairs(os.path.join(data, f)) for f in files[view]]
  names = sorted({n for p in lists for n in (*p.first, *p.second)})
  feats = streaming.flip_sum(_features(model, settings, root, names, flip), flip)
  row = {n: i for i, n in enumerate(names)}

  def pair_features(pairs):
    return feats[[row[n] for n in pairs.first]], feats[[row[n] for n in pairs.second]]

  if view == 2:
    pairs = lists[0]
    result = verification.pair_report(*pair_features(pairs), pairs.same, fold_ids=pairs.fold)
    result["pairs"] = int(pairs.same.size)
  else:
    train, test = lists
    d_train = verification.squared_distances(*pair_features(train))
    grid = verification.ARCFACE_THRESHOLDS
    accuracy = ((d_train[None] < grid[:, None]) == train.same[None]).mean(axis=1)
    threshold = float(grid[int(np.argmax(accuracy))])
    report = verification.pair_report(*pair_features(test), test.same, folds=2)
    d_test = verification.squared_distances(*pair_features(test))
    result = {
      "threshold": threshold,
      "train_accuracy": float(accuracy.max()),
      "accuracy": float(np.mean((d_test < threshold) == test.same)),
      "eer": report["eer"],
      "_roc": report["_roc"],
      "pairs": int(test.same.size),
      "train_pairs": int(train.same.size),
    }
  result.update(view=view, flip=flip, images=len(names))
  result["alignment"] = "five_point" if settings.get("landmarks") else "centre_crop"
  shown = {
    "view": view,
    "pairs": result["pairs"],
    "accuracy": result["accuracy"],
    "std": result.get("std"),
    "eer": result["eer"],
  }
  result["_markdown"] = (
    "# LFW\n\n"
    + tables.markdown_table([shown], ["view", "pairs", "accuracy", "std", "eer"])
    + "\n\nSquared L2 distance of normalised features, thresholds 0:4:0.01 (arcface_torch); "
    + ("10-fold on the 10 sets of pairs.txt." if view == 2 else "threshold from pairsDevTrain.")
    + f" Faces: {result['alignment']}; flip: {flip}.\n"
  )
  result["_roc"] = {"lfw": result["_roc"]}
  return result
