"""Spreadness of the filters' peak responses (interpretable-FR paper, Sec. 4.2, Fig. 5, Table 3).

Evaluator ``peak_spread`` (:func:`peak_spread`): on the first ``images`` faces of ``split``,
the positive and negative peak of every filter's response map (the model extra
``response_peaks``: uint8 ``[B, H, W, 3]`` -> ``pos_xy``, ``neg_xy`` ``[B, K, 2]`` and
``pos_weight``, ``neg_weight`` ``[B, K]`` of
:func:`jfr.eval.interpretability.response_peaks` on the maps the features pool; a model with
only ``response_maps`` gets it from :func:`peaks_from_maps`), warped to the canonical frontal face through the landmark mesh, their
magnitude-weighted average location ``c_i`` and its standard deviation per filter, the
spreadness ``d̄ = 1/K Σ_i ‖c_i − c̄‖`` and the share of the ``c_i`` on the face
(:func:`peak_statistics`; the measures of :mod:`jfr.eval.interpretability`). Coordinates are
pixels of the model's input (``model.input_size``). Settings: ``split``, ``batch_size``,
``images``.

Intervals (:func:`peak_replicates`): the faces are resampled by identity (seed 0) and the
centres, stds, d̄ and mean std recomputed: ``spreadness_ci95`` / ``mean_std_ci95`` per sign
and for the mean of both signs (``mean_std`` of both signs is new in the results with it);
in memory ``_replicates`` (figure -> ``[R]``) for paired comparisons of models on the same
faces.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np

from jfr.data import augment
from jfr.data import resize
from jfr.eval import embedding
from jfr.eval import faces
from jfr.eval import interpretability as interp
from jfr.eval import still_images
from jfr.report import intervals

NEEDS = ("response_peaks",)
SETTINGS = ("split", "batch_size", "images")
SIGNS = ("pos", "neg")


def peaks_from_maps(
  response_maps: Callable[[np.ndarray], np.ndarray], input_size: int
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """A ``response_peaks`` extra built from a ``response_maps`` extra (uint8 faces ->
  ``[B, h, w, K]``): :func:`jfr.eval.interpretability.response_peaks` of the maps, in pixels
  of the model's ``input_size`` input. (A model whose features and maps come from one
  network should rather compute the peaks inside the same compiled function.)"""
  peaks = jax.jit(lambda maps: interp.response_peaks(maps, (input_size, input_size)))

  def response_peaks(images: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in peaks(response_maps(images)).items()}

  return response_peaks


def _resampled(warped: np.ndarray, weights: np.ndarray, mult: np.ndarray) -> tuple:
  """``(d̄ [R], mean std [R])`` with face n counted ``mult[r, n]`` times: the centres and
  stds of :func:`jfr.eval.interpretability.average_peak_locations` as weighted sums
  (``warped`` ``[N, K, 2]``, ``weights`` ``[N, K]``, ``mult`` ``[R, N]``)."""
  n, k = weights.shape
  total = mult @ weights  # [R, K]
  first = (mult @ (weights[..., None] * warped).reshape(n, 2 * k)).reshape(-1, k, 2)
  second = mult @ (weights * np.sum(warped**2, axis=-1))  # [R, K]
  with np.errstate(invalid="ignore", divide="ignore"):
    centres = first / total[..., None]
    sq = second - 2.0 * np.sum(centres * first, axis=-1) + np.sum(centres**2, -1) * total
    std = np.sqrt(np.maximum(sq, 0.0) / (2.0 * total))
  finite = np.all(np.isfinite(centres), axis=-1)  # [R, K]
  c = np.where(finite[..., None], centres, 0.0)
  mean = c.sum(axis=1) / np.maximum(finite.sum(axis=1), 1)[:, None]
  dist = np.where(finite, np.linalg.norm(c - mean[:, None], axis=-1), 0.0)
  with np.errstate(invalid="ignore", divide="ignore"):
    spread = dist.sum(axis=1) / finite.sum(axis=1)
  return spread, np.nanmean(np.where(np.isfinite(std), std, np.nan), axis=1)


def peak_replicates(
  warped: Mapping[str, np.ndarray],
  weights: Mapping[str, np.ndarray],
  identities: np.ndarray,
  *,
  num_resamples: int = intervals.DEFAULT_RESAMPLES,
  seed: int = 0,
) -> dict[str, np.ndarray]:
  """figure -> ``[R]``: ``spreadness_pos|neg``, ``spreadness`` (mean of both signs),
  ``mean_std_pos|neg`` and ``mean_std`` recomputed on ``R`` resamples of the faces by
  identity (``identities`` ``[N]``; sign -> ``warped [N, K, 2]``, ``weights [N, K]``)."""
  inverse, num_groups = intervals.group_index(identities)
  counts = intervals.resample_counts(num_groups, num_resamples, seed)
  mult = counts[:, inverse]
  out = {}
  for sign in SIGNS:
    spread, std = _resampled(
      np.asarray(warped[sign], np.float64), np.asarray(weights[sign], np.float64), mult
    )
    out[f"spreadness_{sign}"], out[f"mean_std_{sign}"] = spread, std
  out["spreadness"] = (out["spreadness_pos"] + out["spreadness_neg"]) / 2.0
  out["mean_std"] = (out["mean_std_pos"] + out["mean_std_neg"]) / 2.0
  return out


def peak_statistics(
  peaks: Mapping[str, np.ndarray],
  landmarks: np.ndarray,
  size: int,
  identities: np.ndarray | None = None,
) -> dict[str, Any]:
  """Fig. 5 / Table 3 numbers of both peak signs.

  Args:
    peaks: :func:`peaks_of` of ``N`` faces (pixels of ``size`` px images).
    landmarks: ``[N, 68, 2]`` in the same frame.
    size: the image side.
    identities: ``[N]`` the faces' identity labels: adds the intervals of the module
      docstring (at least two identities).

  Returns:
    ``{'pos' | 'neg': {centres [K, 2], std [K], spreadness, mean_std, on_face},
    'spreadness'}`` (the mean of both signs' d̄); centres in the template frame.
  """
  template = augment.default_template_landmarks(size)
  out: dict[str, Any] = {}
  warped_by_sign = {}
  for sign in SIGNS:
    warped = interp.warp_points_to_template(peaks[f"{sign}_xy"], landmarks, template, size)
    warped_by_sign[sign] = warped
    centres, std = interp.average_peak_locations(warped, peaks[f"{sign}_weight"])
    out[sign] = {
      "centres": centres,
      "std": std,
      "spreadness": interp.spreadness(centres),
      "mean_std": float(np.nanmean(std)),
      "on_face": interp.fraction_inside_face(centres, template),
    }
  out["spreadness"] = (out["pos"]["spreadness"] + out["neg"]["spreadness"]) / 2.0
  if identities is not None and np.unique(identities).size >= 2:
    weights = {sign: peaks[f"{sign}_weight"] for sign in SIGNS}
    reps = peak_replicates(warped_by_sign, weights, identities)
    for sign in SIGNS:
      for key in ("spreadness", "mean_std"):
        out[sign][f"{key}_ci95"] = list(intervals.percentile_interval(reps[f"{key}_{sign}"]))
    out["mean_std"] = (out["pos"]["mean_std"] + out["neg"]["mean_std"]) / 2.0
    for key in ("spreadness", "mean_std"):
      out[f"{key}_ci95"] = list(intervals.percentile_interval(reps[key]))
    out["_replicates"] = reps
  return out


def analysed_faces(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], int]:
  """``(faces, n)``: :func:`jfr.eval.faces.load_faces` of ``settings['split']`` with the
  landmarks moved to the model's input frame, and ``n = min(images, N)``."""
  data = faces.load_faces(context, settings["split"])
  data["landmarks"] = resize.scale_landmarks(
    data["landmarks"], data["image"].shape[1], model.input_size
  )
  n = min(settings["images"], len(data["label"]))
  if n < 1:
    raise ValueError(f"images: expected >= 1 faces, got {settings['images']}")
  return data, n


def peak_spread(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """Evaluator ``peak_spread`` (module docstring): :func:`peak_statistics` plus ``images``."""
  del seed  # deterministic
  still_images.check_settings(settings, SETTINGS, "peak_spread")
  data, n = analysed_faces(model, context, settings)
  peaks = model.extras["response_peaks"](data["image"][:n])
  out = peak_statistics(peaks, data["landmarks"][:n], model.input_size, data["label"][:n])
  out["images"] = n
  return out
