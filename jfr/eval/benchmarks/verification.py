"""Pair verification as arcface_torch reports it, and the ``insightface_bin`` evaluator.

:func:`arcface_kfold_accuracy` is the convention of arcface_torch ``eval/verification.py``
(from FaceNet's LFW helper): features are L2-normalised, a pair's distance is the squared
L2 distance ``d = ||f1 - f2||^2`` (in [0, 4]), a pair is predicted "same" when
``d < t``; the thresholds are ``t in {0, 0.01, ..., 3.99}`` (``np.arange(0, 4, 0.01)``);
the pairs are cut into ``k`` contiguous, unshuffled folds (``KFold(shuffle=False)``: the
first ``P mod k`` folds one pair longer); for each fold the threshold with the highest
accuracy on the other folds (the first such threshold) is applied to the fold. The result
is the mean and population std of the fold accuracies.

``insightface_bin`` reports, per ``.bin``, the accuracy of the plain features and the
"Accuracy-Flip" of arcface_torch: features ``f(x) + f(flip(x))``, normalised. It also
reports ``xnorm``, the mean L2 norm of the unnormalised features (arcface_torch's XNorm).
"""

from __future__ import annotations

import glob
import os
from typing import Any

import numpy as np

from jfr.data import image_files
from jfr.data.benchmarks import verification_bin
from jfr.eval import metrics
from jfr.eval.benchmarks import streaming
from jfr.eval.embedding import EvalModel
from jfr.report import tables

NEEDS = ("embed",)
ARCFACE_THRESHOLDS = np.arange(0, 4, 0.01)


def contiguous_folds(n: int, folds: int) -> np.ndarray:
  """int64 ``[n]``: fold of each pair for ``k`` contiguous unshuffled folds (sklearn KFold)."""
  if not 2 <= folds <= n:
    raise ValueError(f"folds: expected 2 <= folds <= {n} (pairs), got {folds}")
  return np.repeat(np.arange(folds), [len(b) for b in np.array_split(np.arange(n), folds)])


def squared_distances(features1: np.ndarray, features2: np.ndarray) -> np.ndarray:
  """``||n(f1) - n(f2)||^2`` ``[P]`` for features ``[P, D]`` (``n``: L2 normalisation)."""
  a = streaming.l2_normalize(np.asarray(features1, np.float64))
  b = streaming.l2_normalize(np.asarray(features2, np.float64))
  if a.shape != b.shape or a.ndim != 2:
    raise ValueError(f"features1/features2: expected equal [P, D] shapes, got {a.shape}, {b.shape}")
  return np.sum(np.square(a - b), axis=1)


def arcface_kfold_accuracy(
  distances: np.ndarray,
  same: np.ndarray,
  folds: int = 10,
  fold_ids: np.ndarray | None = None,
  thresholds: np.ndarray = ARCFACE_THRESHOLDS,
) -> dict[str, Any]:
  """k-fold accuracy of the module docstring.

  Args:
    distances: ``[P]`` squared L2 distances of normalised features.
    same: bool ``[P]``.
    folds: number of contiguous folds (ignored when ``fold_ids`` is given).
    fold_ids: optional int ``[P]`` fold of each pair (e.g. the LFW / YTF split ids).
    thresholds: candidate thresholds (predict same when ``d < t``).

  Returns:
    ``{'accuracy', 'std', 'fold_accuracies' [k], 'thresholds' [k]}``.
  """
  d = np.asarray(distances, np.float64)
  y = np.asarray(same, bool)
  if d.ndim != 1 or y.shape != d.shape:
    raise ValueError(f"distances/same: expected equal [P] shapes, got {d.shape}, {y.shape}")
  if fold_ids is None:
    fold = contiguous_folds(d.size, folds)
  else:
    fold = np.unique(np.asarray(fold_ids), return_inverse=True)[1].reshape(-1)
    if fold.shape != d.shape or fold.max() < 1:
      raise ValueError("fold_ids: expected one fold id per pair and at least two folds")
  k = int(fold.max()) + 1
  t = np.asarray(thresholds, np.float64)
  # correct[j, p]: pair p classified correctly at threshold j.
  correct = (d[None, :] < t[:, None]) == y[None, :]
  per_fold = np.stack([correct[:, fold == i].sum(axis=1) for i in range(k)], axis=1)  # [T, k]
  sizes = np.bincount(fold, minlength=k)
  accuracies, chosen = np.empty(k), np.empty(k)
  for i in range(k):
    train = (per_fold.sum(axis=1) - per_fold[:, i]) / (d.size - sizes[i])
    best = int(np.argmax(train))
    chosen[i] = t[best]
    accuracies[i] = per_fold[best, i] / sizes[i]
  return {
    "accuracy": float(accuracies.mean()),
    "std": float(accuracies.std()),
    "fold_accuracies": accuracies.tolist(),
    "thresholds": chosen.tolist(),
  }


def pair_report(features1: np.ndarray, features2: np.ndarray, same: np.ndarray, **kfold) -> dict:
  """:func:`arcface_kfold_accuracy` plus the EER and the ROC (``_roc``) of the cosine score."""
  d = squared_distances(features1, features2)
  out = arcface_kfold_accuracy(d, same, **kfold)
  score = -d  # cosine = 1 - d / 2: same order
  out["eer"] = metrics.eer(score, same)
  fpr, tpr, _ = metrics.roc(score, same)
  out["_roc"] = (fpr, tpr)
  return out


def _bin_paths(data: str) -> list[str]:
  if os.path.isdir(data):
    paths = sorted(glob.glob(os.path.join(data, "*.bin")))
    if not paths:
      raise ValueError(f"data: {data!r} holds no .bin files")
    return paths
  if not os.path.isfile(data):
    raise ValueError(f"data: {data!r} is neither a .bin file nor a folder of them")
  return [data]


def insightface_bin(model: EvalModel, context: Any, settings: dict, *, seed: int) -> dict:
  """Verification on insightface ``.bin`` sets (module docstring).

  Settings: ``data`` (a ``.bin`` or a folder of them), ``flip`` (default True: also the
  flip-averaged accuracy), ``folds`` (10), ``batch_size`` (256), ``cache``, ``progress``.
  """
  del context, seed
  flip = bool(streaming.setting(settings, "flip", True))
  folds = int(streaming.setting(settings, "folds", 10))
  batch = int(streaming.setting(settings, "batch_size", 256))
  sets, rows = {}, []
  for path in _bin_paths(settings["data"]):
    name = os.path.splitext(os.path.basename(path))[0]
    data = verification_bin.read_bin(path)

    def load(i: int, images=data.images, path=path) -> np.ndarray:
      return image_files.decode_image(images[i], f"{path}[{i}]")

    digest = streaming.fingerprint(
      kind="insightface_bin", size=os.path.getsize(path), mtime=os.path.getmtime(path),
      input_size=model.input_size, flip=flip, n=len(data.images),
    )  # fmt: skip
    feats = streaming.cached(
      settings.get("cache"),
      name,
      digest,
      lambda: streaming.embed_items(
        model.embed, load, len(data.images), batch_size=batch, flip=flip,
        progress=settings.get("progress"), description=name,
      ),
    )  # fmt: skip
    result = {"pairs": data.num_pairs}
    plain = feats["features"]
    plain_report = pair_report(plain[0::2], plain[1::2], data.issame, folds=folds)
    result.update({k: v for k, v in plain_report.items() if not k.startswith("_")})
    norms = [np.linalg.norm(f, axis=1) for f in feats.values()]
    result["xnorm"] = float(np.mean(np.concatenate(norms)))
    curves = {"plain": plain_report["_roc"]}
    if flip:
      both = streaming.flip_sum(feats, True)
      flip_report = pair_report(both[0::2], both[1::2], data.issame, folds=folds)
      result["flip"] = {k: v for k, v in flip_report.items() if not k.startswith("_")}
      curves["flip"] = flip_report["_roc"]
    result["_roc"] = curves
    sets[name] = result
    rows.append(
      {
        "set": name,
        "pairs": data.num_pairs,
        "accuracy": f"{result['accuracy']:.5f} ± {result['std']:.5f}",
        "accuracy_flip": (
          f"{result['flip']['accuracy']:.5f} ± {result['flip']['std']:.5f}" if flip else ""
        ),
        "xnorm": result["xnorm"],
      }
    )
  markdown = (
    "# insightface verification sets\n\n"
    + tables.markdown_table(rows, ["set", "pairs", "accuracy", "accuracy_flip", "xnorm"])
    + f"\n\n{folds}-fold accuracy as arcface_torch reports it: squared L2 distance of "
    "L2-normalised features, thresholds 0:4:0.01, contiguous unshuffled folds, threshold "
    "chosen on the other folds; 'flip' = features of the image plus its mirror image.\n"
  )
  roc = {f"{s}/{k}": c for s, r in sets.items() for k, c in r["_roc"].items()}
  for r in sets.values():
    del r["_roc"]
  return {"sets": sets, "flip": flip, "folds": folds, "_markdown": markdown, "_roc": roc}
