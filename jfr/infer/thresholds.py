"""Decision thresholds a run stores for inference: ``<workdir>/eval/thresholds.json``.

Contract (written by the ``still_images`` evaluations of recognition runs, see
:func:`jfr.methods.recognition.evaluate.evaluate`, and by any benchmark that calls
:func:`write_thresholds`; read by ``python -m jfr.infer verify/search/explain``)::

  {
    "source": {"evaluation": "recognition", "dataset": "synthetic_faces/tiny",
               "split": "test", "flip": false, "num_genuine": 600, "num_impostor": 600},
    "rule": "same identity when cosine score > threshold",
    "verification": {"far": {"0.1": t, "0.01": t, ...}, "best_accuracy": t, "eer": t},
    "identification": {"fpir": {"0.1": t, ...}, "num_nonmated": n}
  }

``verification.far[f]``: the ``floor(f * n_impostor)``-th largest impostor score (0-based),
so that at most a fraction ``f`` of the impostor pairs scores above it; when
``f * n_impostor < 1`` the pairs cannot measure that FAR and the stored value is the largest
impostor score (the operating point with no false accept, as :mod:`jfr.eval.metrics`
reports it), flagged by ``far_resolution = 1 / n_impostor`` (readers warn). ``best_accuracy``: the
threshold of the highest pair accuracy (accept above it). ``eer``: where FAR = FRR.
``identification.fpir[f]``: the same quantile of the non-mated probes' best gallery scores
(open-set rejection at FPIR ``f``). Keys are formatted with ``f"{f:g}"``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jfr.report import results as results_lib

THRESHOLDS_FILE = os.path.join("eval", "thresholds.json")
RULE = "same identity when cosine score > threshold"


def quantile_threshold(negatives: np.ndarray, rate: float) -> float | None:
  """The score above which at most ``rate`` of ``negatives`` lie (the largest negative when
  ``rate`` is below ``1 / len(negatives)``; None without negatives)."""
  if not 0.0 < rate < 1.0:
    raise ValueError(f"rate: expected a value in (0, 1), got {rate}")
  negatives = np.sort(np.asarray(negatives, np.float64))[::-1]
  if len(negatives) == 0:
    return None
  k = int(np.floor(rate * len(negatives) + 1e-9))
  return float(negatives[k - 1]) if k >= len(negatives) else float(negatives[k])


def best_accuracy_threshold(scores: np.ndarray, same: np.ndarray) -> float:
  """The threshold ``t`` maximising ``mean((scores > t) == same)`` (midpoint between
  neighbouring scores)."""
  order = np.argsort(scores)
  s, y = np.asarray(scores, np.float64)[order], np.asarray(same, bool)[order]
  candidates = np.concatenate([[s[0] - 1e-6], (s[:-1] + s[1:]) / 2, [s[-1] + 1e-6]])
  # accept above candidate i: rejects s[:i]; correct = impostors below + genuines above.
  impostor_below = np.concatenate([[0], np.cumsum(~y)])
  genuine_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
  return float(candidates[int(np.argmax(impostor_below + genuine_above))])


def eer_threshold(scores: np.ndarray, same: np.ndarray) -> float:
  """The threshold where the false accept and false reject rates meet."""
  scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
  candidates = np.unique(scores)
  far = np.array([(scores[~same] > t).mean() for t in candidates])
  frr = np.array([(scores[same] <= t).mean() for t in candidates])
  return float(candidates[int(np.argmin(np.abs(far - frr)))])


def verification_thresholds(
  scores: np.ndarray, same: np.ndarray, fars: Sequence[float]
) -> dict[str, Any]:
  """The ``verification`` block of the contract for scored pairs ``[P]`` / labels ``[P]``."""
  scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
  if scores.shape != same.shape or scores.ndim != 1:
    raise ValueError(f"scores/same: expected equal [P] shapes, got {scores.shape}, {same.shape}")
  if same.all() or not same.any():
    raise ValueError("same: needs both genuine and impostor pairs")
  return {
    "far": {f"{far:g}": quantile_threshold(scores[~same], far) for far in fars},
    "far_resolution": 1.0 / int((~same).sum()),
    "best_accuracy": best_accuracy_threshold(scores, same),
    "eer": eer_threshold(scores, same),
  }


def identification_thresholds(
  similarity: np.ndarray,
  probe_labels: np.ndarray,
  gallery_labels: np.ndarray,
  fpirs: Sequence[float],
) -> dict[str, Any]:
  """The ``identification`` block: FPIR quantiles of the non-mated probes' best scores
  (``similarity`` ``[P, G]`` probe x gallery)."""
  nonmated = ~np.isin(probe_labels, gallery_labels)
  best = np.asarray(similarity)[nonmated].max(axis=1) if nonmated.any() else np.zeros(0)
  return {
    "fpir": {f"{f:g}": quantile_threshold(best, f) for f in fpirs},
    "fpir_resolution": 1.0 / len(best) if len(best) else None,
    "num_nonmated": int(nonmated.sum()),
  }


def thresholds_from_still_images(results: dict, settings: dict, source: dict) -> dict:
  """The whole contract from a ``still_images`` result (its in-memory ``_roc`` and
  ``_similarity``) and settings (``fars``, ``fpirs``); ``source`` names the evaluation."""
  scores, same = results["_roc"]
  out = {
    "source": {
      **source,
      "num_genuine": int(np.sum(same)),
      "num_impostor": int(np.sum(~np.asarray(same, bool))),
    },
    "rule": RULE,
    "verification": verification_thresholds(scores, same, settings["fars"]),
  }
  if "_similarity" in results:
    out["identification"] = identification_thresholds(*results["_similarity"], settings["fpirs"])
  return out


def write_thresholds(workdir: str | os.PathLike, thresholds: dict) -> Path:
  """Writes ``<workdir>/eval/thresholds.json``."""
  return results_lib.write_json(thresholds, Path(workdir) / THRESHOLDS_FILE)


def read_thresholds(workdir: str | os.PathLike) -> dict:
  """The stored thresholds of a run; ``ValueError`` naming the file when there are none."""
  path = Path(workdir) / THRESHOLDS_FILE
  if not path.exists():
    raise ValueError(
      f"no decision thresholds stored for the run in {os.fspath(workdir)!r}: {path} is "
      "missing. Run its evaluation first (python -m jfr.main --workdir=RUN --mode=eval, which "
      "writes it from the still_images evaluation), or pass --threshold explicitly."
    )
  return json.loads(path.read_text())


def lookup(thresholds: dict, block: str, kind: str, rate: float | None) -> float:
  """``thresholds[block][kind][f"{rate:g}"]`` (or ``thresholds[block][kind]`` without a
  rate); ``ValueError`` listing what is stored."""
  table = thresholds.get(block, {})
  value = table.get(kind) if rate is None else table.get(kind, {}).get(f"{rate:g}")
  if value is None:
    stored = {k: v for k, v in table.get(kind, {}).items() if v is not None}
    raise ValueError(
      f"{kind}={rate:g}: no {block} threshold stored for it in {THRESHOLDS_FILE} "
      f"(from {thresholds.get('source', {}).get('dataset')}); stored: {sorted(stored)}"
    )
  resolution = table.get(f"{kind}_resolution")
  if rate is not None and resolution and rate < resolution:
    warnings.warn(
      f"{kind}={rate:g} is below what the stored evaluation can measure (1/{round(1 / resolution)} "
      f"negatives): using its zero-false-accept threshold {value:.4f}",
      stacklevel=2,
    )
  return float(value)
