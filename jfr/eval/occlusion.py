"""Occlusion robustness protocols of the interpretable-FR paper (Yin et al., ICCV 2019).

* Evaluator ``occluded_still_images`` (:func:`occluded_still_images`, Tables 2, 4, 5): the
  still-image protocol (:func:`jfr.eval.still_images.evaluate_features`) on the faces of a
  split in three scenarios: ``original``; ``synthetic_occlusion``, every face with its own
  random warped synthetic occluder (:func:`occlude_each`, as in the Siamese training); and
  ``natural_occlusion``, the faces that carry a natural occluder (eyeglasses, scarf), each
  scenario with the pair / gallery protocol within its own faces. Settings: those of
  ``still_images`` plus ``scenarios``, ``occlusion_mode`` ('static' | 'dynamic') and
  ``occlusion_fill`` ('black' | 'noise').
* Evaluator ``occlusion_feature_difference`` (:func:`feature_difference`, Sec. 4.2, Fig. 6):
  ``1/N Σ_n |f_i(I_n) − f_i(Î_n)|`` per feature element between the first ``images`` faces
  and the same faces with a part (``parts``: eyes, nose, mouth) covered by a rectangle over
  the part's template landmarks plus ``margin`` of the side, warped to every face
  (:func:`occlude_part`), filled with ``fill``; raw and for the unit-RMS features
  ``√K f / ‖f‖``. Settings: ``split``, ``batch_size``, ``images``, ``parts``, ``margin``,
  ``fill``. Also per part ``top10_share`` (the share of the normalised curve's total carried
  by its 10 % largest elements) and 95 % intervals (bootstrap over the faces' identities,
  seed 0) of it and of both curves' means; in memory ``_replicates`` (part -> ``[R]`` top
  shares) for paired comparisons of models on the same faces.

Both need ``embed``; the seeds derive from the evaluator's ``seed``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from jfr.data import augment
from jfr.eval import embedding
from jfr.eval import faces
from jfr.eval import interpretability as interp
from jfr.eval import still_images
from jfr.losses import diversity
from jfr.report import intervals

NEEDS = ("embed",)
SCENARIOS = ("original", "synthetic_occlusion", "natural_occlusion")
RECOGNITION_SETTINGS = still_images.SETTINGS + ("scenarios", "occlusion_mode", "occlusion_fill")
DIFFERENCE_SETTINGS = ("split", "batch_size", "images", "parts", "margin", "fill")


def occlude_each(
  images: np.ndarray, landmarks: np.ndarray, seed: int, mode: str, fill: str
) -> np.ndarray:
  """uint8 faces ``[N, S, S, 3]`` with one random warped occluder each
  (:func:`jfr.data.augment.occlude_batch` per face), face n seeded by ``(7919 seed + 17, n)``.

  Args:
    images: uint8 ``[N, S, S, 3]``.
    landmarks: ``[N, 68, 2]`` (x, y) pixels.
    seed: the protocol seed.
    mode, fill: the occluder (see :func:`jfr.data.augment.occlude_batch`).
  """
  template = augment.default_template_landmarks(images.shape[1])

  def occlude(index, image, lms):
    face_seed = tf.stack([tf.constant(seed, tf.int64) * 7_919 + 17, index])
    occluded, _ = augment.occlude_batch(
      image[None], lms[None], face_seed, mode=mode, fill=fill, template_landmarks=template
    )
    return occluded[0]

  ds = tf.data.Dataset.from_tensor_slices((images, landmarks)).enumerate()
  ds = ds.map(
    lambda i, ex: occlude(i, *ex), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
  ).batch(256)
  return np.concatenate(list(ds.as_numpy_iterator()))


def part_rectangle(template: np.ndarray, part: str, margin: float) -> np.ndarray:
  """Rectangle ``[4, 2]`` (tl, tr, br, bl) over a part's template landmarks plus ``margin`` px."""
  boxes = interp.part_boxes(template)
  if part not in boxes:
    raise ValueError(f"part: expected one of {sorted(boxes)}, got {part!r}")
  box = boxes[part]
  x0, y0, x1, y1 = box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin
  return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def occlude_part(
  images: np.ndarray, landmarks: np.ndarray, part: str, margin: float, fill: str, seed: int
) -> np.ndarray:
  """uint8 faces with ``part`` covered by :func:`part_rectangle` (``margin`` as a fraction of
  the side) warped to every face; the fill is seeded by ``(seed, part index + 1)`` (parts in
  :data:`jfr.eval.interpretability.PART_LANDMARKS` order)."""
  size = images.shape[1]
  template = augment.default_template_landmarks(size)
  rect = part_rectangle(template, part, margin * size)
  quads = augment.warp_rectangle_to_faces(rect, template, landmarks)
  masks = augment.occlusion_masks(quads, size)
  part_seed = tf.constant([seed, list(interp.PART_LANDMARKS).index(part) + 1], tf.int64)
  return augment.apply_occlusion(images, masks, fill, part_seed).numpy()


def top_share(curves: np.ndarray) -> np.ndarray:
  """``[...]`` the share of each curve's (last axis, ``K``) total in its ``max(1, K // 10)``
  largest elements."""
  k = curves.shape[-1]
  top = max(1, k // 10)
  largest = -np.partition(-curves, top - 1, axis=-1)[..., :top]
  return largest.sum(axis=-1) / np.maximum(curves.sum(axis=-1), 1e-12)


def difference_intervals(
  raw: np.ndarray, normalised: np.ndarray, identities: np.ndarray, seed: int = 0
) -> tuple[dict, np.ndarray]:
  """Intervals of one part's Fig. 6 figures from the per-face ``|f(I) − f(Î)|`` ``[N, K]``
  (raw and normalised), resampling faces by identity; returns ``(fields, top-share reps
  [R])``."""
  inverse, num_groups = intervals.group_index(identities)
  counts = intervals.resample_counts(num_groups, intervals.DEFAULT_RESAMPLES, seed)
  mult = counts[:, inverse]
  curves = (mult @ normalised) / mult.sum(axis=1, keepdims=True)  # [R, K]
  reps = top_share(curves)
  fields = {
    "top10_share": float(top_share(normalised.mean(axis=0))),
    "top10_share_ci95": list(intervals.percentile_interval(reps)),
    "raw_mean_ci95": intervals.mean_interval(raw.mean(axis=1), identities, seed=seed).as_list(),
    "normalised_mean_ci95": intervals.mean_interval(
      normalised.mean(axis=1), identities, seed=seed
    ).as_list(),
  }
  return fields, reps


def _public(results: Mapping[str, Any]) -> dict:
  return {k: v for k, v in results.items() if not str(k).startswith("_")}


def occluded_still_images(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """Evaluator ``occluded_still_images`` (module docstring).

  Returns ``{scenario: {verification, identification}}`` (the ``still_images`` reports),
  ``split``, ``flip`` and in memory ``_curves`` (scenario -> the full
  :func:`~jfr.eval.still_images.evaluate_features` result, for ROC / CMC figures).
  """
  still_images.check_settings(settings, RECOGNITION_SETTINGS, "occluded_still_images")
  unknown = sorted(set(settings["scenarios"]) - set(SCENARIOS))
  if unknown:
    raise ValueError(f"scenarios: {unknown} are not among {SCENARIOS}")
  data = faces.load_faces(context, settings["split"])
  embed = embedding.flip_average(model.embed) if settings["flip"] else model.embed
  labels = data["label"]
  out: dict[str, Any] = {"split": settings["split"], "flip": bool(settings["flip"])}
  curves = {}
  features = None
  for scenario in settings["scenarios"]:
    if scenario in ("original", "natural_occlusion") and features is None:
      features = embed(data["image"])
    if scenario == "original":
      result = still_images.evaluate_features(features, labels, settings, seed)
    elif scenario == "natural_occlusion":
      natural = data["natural"]
      result = still_images.evaluate_features(features[natural], labels[natural], settings, seed)
    else:
      occluded = occlude_each(
        data["image"],
        data["landmarks"],
        seed,
        settings["occlusion_mode"],
        settings["occlusion_fill"],
      )
      result = still_images.evaluate_features(embed(occluded), labels, settings, seed)
    out[scenario] = _public(result)
    curves[scenario] = result
  out["_curves"] = curves
  return out


def feature_difference(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """Evaluator ``occlusion_feature_difference`` (module docstring).

  Returns ``{part: {'raw': [K], 'normalised': [K]}}`` (element order; sort for Fig. 6) and
  ``images`` (faces used).
  """
  still_images.check_settings(settings, DIFFERENCE_SETTINGS, "occlusion_feature_difference")
  data = faces.load_faces(context, settings["split"])
  n = min(settings["images"], len(data["label"]))
  if n < 1:
    raise ValueError(f"images: expected >= 1 faces, got {settings['images']}")
  clean = model.embed(data["image"][:n])
  out: dict[str, Any] = {}
  reps: dict[str, np.ndarray] = {}
  for part in settings["parts"]:
    occluded = occlude_part(
      data["image"][:n], data["landmarks"][:n], part, settings["margin"], settings["fill"], seed
    )
    f_occluded = model.embed(occluded)
    unit_clean = np.asarray(diversity.unit_features(clean))
    unit_occluded = np.asarray(diversity.unit_features(f_occluded))
    out[part] = {
      "raw": interp.mean_feature_difference(clean, f_occluded),
      "normalised": interp.mean_feature_difference(unit_clean, unit_occluded),
    }
    identities = data["label"][:n]
    if np.unique(identities).size >= 2:
      fields, reps[part] = difference_intervals(
        np.abs(np.asarray(clean, np.float64) - np.asarray(f_occluded, np.float64)),
        np.abs(unit_clean.astype(np.float64) - unit_occluded.astype(np.float64)),
        identities,
      )
      out[part].update(fields)
  out["images"] = n
  if reps:
    out["_replicates"] = reps
  return out
