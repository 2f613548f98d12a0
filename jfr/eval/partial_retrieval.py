"""Partial-face retrieval (interpretable-FR paper, Sec. 4.4).

Evaluator ``partial_face_retrieval`` (:func:`partial_face_retrieval`): the filters of each
part (eyes, nose, mouth) are the ``round(filter_fraction · K)`` whose average peak location
(:func:`jfr.eval.peak_spread.peak_statistics` of the positive peaks on the first ``images``
faces) is nearest the part's box on the template face; two unoccluded faces of each of up
to ``identities`` subjects (:func:`retrieval_indices`) are then matched by the feature
restricted to a part's filters: rank-1 retrieval of the other face of the subject
(:func:`jfr.eval.interpretability.retrieval_rank1`), compared with all filters and with
``random_draws`` random subsets of the same size. Needs ``embed`` and ``response_peaks`` (see :mod:`jfr.eval.peak_spread`).
Settings: ``split``, ``batch_size``, ``images``, ``identities``, ``filter_fraction``,
``random_draws``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from jfr.data import augment
from jfr.eval import embedding
from jfr.eval import interpretability as interp
from jfr.eval import peak_spread
from jfr.eval import still_images
from jfr.report import intervals

NEEDS = ("embed", "response_peaks")
SETTINGS = ("split", "batch_size", "images", "identities", "filter_fraction", "random_draws")
PARTS = ("eyes", "nose", "mouth")


def retrieval_indices(labels: np.ndarray, natural: np.ndarray, max_identities: int) -> np.ndarray:
  """Two unoccluded faces (stored order) per subject, for up to ``max_identities`` subjects."""
  chosen = []
  for label in np.unique(labels):
    members = np.flatnonzero((labels == label) & ~natural)[:2]
    if len(members) == 2:
      chosen.append(members)
    if len(chosen) == max_identities:
      break
  if len(chosen) < 2:
    raise ValueError(
      "split: fewer than two subjects with two unoccluded faces (partial-face retrieval needs them)"
    )
  return np.concatenate(chosen)


def retrieval_metrics(
  features: np.ndarray,
  labels: np.ndarray,
  centres: np.ndarray,
  size: int,
  count: int,
  seed: int,
  random_draws: int,
) -> dict[str, Any]:
  """Rank-1 retrieval by each part's ``count`` filters, all filters and random subsets.

  Args:
    features: ``[N, K]`` of the retrieval set; labels ``[N]`` (two faces per subject).
    centres: ``[K, 2]`` average peak locations on the ``size`` px template face.
    size: the template side (the model's input side).
    count: filters per part.
    seed: seeds the random subsets.
    random_draws: random subsets averaged.

  Returns:
    ``all_filters``, ``random_filters``, each part's rank-1 and ``part_filters``
    (part -> the chosen filter indices); each rank-1 with its 95 % interval (``<key>_ci95``,
    per-query hits resampled by subject, seed 0; the random subsets' hits averaged per
    query first).
  """
  template = augment.default_template_landmarks(size)
  boxes = interp.part_boxes(template)
  out: dict[str, Any] = {"all_filters": interp.retrieval_rank1(features, labels)}
  rng = np.random.default_rng(seed)
  random_subsets = [
    rng.choice(features.shape[1], count, replace=False) for _ in range(random_draws)
  ]
  random_scores = [interp.retrieval_rank1(features, labels, f) for f in random_subsets]
  out["random_filters"] = float(np.mean(random_scores))
  out["part_filters"] = {}
  for part in PARTS:
    chosen = interp.select_part_filters(centres, boxes[part], count)
    out[part] = interp.retrieval_rank1(features, labels, chosen)
    out["part_filters"][part] = chosen.tolist()
  if np.unique(labels).size >= 2:
    hits = {"all_filters": interp.retrieval_hits(features, labels)}
    hits["random_filters"] = np.mean(
      [interp.retrieval_hits(features, labels, np.asarray(f)) for f in random_subsets], axis=0
    )
    for part in PARTS:
      hits[part] = interp.retrieval_hits(features, labels, out["part_filters"][part])
    for key, h in hits.items():
      out[f"{key}_ci95"] = intervals.mean_interval(h, labels).as_list()
  return out


def partial_face_retrieval(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """Evaluator ``partial_face_retrieval`` (module docstring): :func:`retrieval_metrics` plus
  ``filters_per_part`` and ``subjects``."""
  still_images.check_settings(settings, SETTINGS, "partial_face_retrieval")
  data, n = peak_spread.analysed_faces(model, context, settings)
  peaks = model.extras["response_peaks"](data["image"][:n])
  stats = peak_spread.peak_statistics(peaks, data["landmarks"][:n], model.input_size)
  features = model.embed(data["image"])
  index = retrieval_indices(data["label"], data["natural"], settings["identities"])
  count = max(1, int(round(settings["filter_fraction"] * features.shape[1])))
  out = retrieval_metrics(
    features[index],
    data["label"][index],
    stats["pos"]["centres"],
    model.input_size,
    count,
    seed,
    settings["random_draws"],
  )
  out["filters_per_part"] = count
  out["subjects"] = len(index) // 2
  return out
