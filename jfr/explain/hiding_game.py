"""Quantitative evaluation of saliency maps: the hiding game and a pointing game.

Hiding game (Castanon & Byrne 2018, as modified in Sec. IV-B of Xu, Lu, Ebrahimi,
"Discriminative Deep Feature Visualization for Explainable Face Recognition"): the
least important p% of pixels of the explained image are replaced by a Gaussian-blurred
copy of the image (the paper blurs rather than blacks them out, to stay closer to the
data distribution), the pairs are verified again, and accuracy against p is summarised
by its area under the curve (Fig. 4 / Table II, which report the AUC x 100).

Pointing game (for synthetic pairs that differ in one known part): the share of a
saliency map's mass that falls inside that part.

Both return plain Python / NumPy values ready for JSON; plots live in ``jfr.eval.plots``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy import ndimage

DEFAULT_FRACTIONS = np.linspace(0.0, 1.0, 11)


def _binary_labels(labels: Any, num_pairs: int) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.shape != (num_pairs,) or not np.isin(labels, (0, 1)).all():
    raise ValueError(
      f"labels: expected [{num_pairs}] of bool / 0-1 (True = same "
      f"identity), got shape {labels.shape}"
    )
  return labels.astype(bool)


def _accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
  """Share of pairs where ``scores >= threshold`` agrees with ``labels``."""
  return float(np.mean((scores >= threshold) == labels))


def best_threshold(scores: Any, labels: Any) -> float:
  """Threshold on ``scores`` with the highest verification accuracy.

  Candidates are the midpoints between consecutive distinct scores and one value below
  the lowest / above the highest score (all accepted / all rejected); a pair is accepted
  when ``score >= threshold``. Ties go to the lowest candidate.

  Args:
    scores: ``[P]`` similarity scores (higher = more alike).
    labels: ``[P]`` bool, True for same-identity pairs.

  Returns:
    The threshold, a finite float.
  """
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 1 or scores.size == 0 or not np.isfinite(scores).all():
    raise ValueError(f"scores: expected a non-empty finite [P] array, got shape {scores.shape}")
  labels = _binary_labels(labels, scores.size)
  distinct = np.unique(scores)
  candidates = np.concatenate(
    [[distinct[0] - 1.0], (distinct[1:] + distinct[:-1]) / 2, [distinct[-1] + 1.0]]
  )
  accepted = scores[None, :] >= candidates[:, None]
  accuracies = np.mean(accepted == labels[None, :], axis=1)
  return float(candidates[int(np.argmax(accuracies))])


def hide_least_salient(
  images: np.ndarray, blurred: np.ndarray, ranks: np.ndarray, fraction: float
) -> np.ndarray:
  """Replaces the ``round(fraction * H * W)`` least salient pixels of each image.

  Args:
    images: ``[P, H, W, 3]`` images.
    blurred: ``[P, H, W, 3]`` their blurred copies.
    ranks: ``[P, H, W]`` int, each pixel's position in the ascending saliency order of
      its image (0 = least salient).
    fraction: share of pixels to replace, in [0, 1].

  Returns:
    ``[P, H, W, 3]`` images with the hidden pixels taken from ``blurred``.
  """
  count = int(np.floor(fraction * ranks[0].size + 0.5))
  return np.where((ranks < count)[..., None], blurred, images)


def _saliency_ranks(saliency: np.ndarray) -> np.ndarray:
  """Ascending rank of each pixel within its map (stable: equal values keep raster order)."""
  flat = saliency.reshape(saliency.shape[0], -1)
  order = np.argsort(flat, axis=1, kind="stable")
  ranks = np.empty_like(order)
  np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=1)
  return ranks.reshape(saliency.shape)


def hiding_game(
  verify_fn: Callable[[Any, Any], Any],
  images_a: Any,
  images_b: Any,
  labels: Any,
  saliency_a: Any,
  fractions: Any = DEFAULT_FRACTIONS,
  blur_sigma: float = 4.0,
  threshold: float | None = None,
  *,
  per_pair: bool = False,
) -> dict:
  """Verification accuracy while the least salient pixels of image A are blurred.

  For each fraction p, the ``round(p H W)`` pixels of ``images_a`` with the lowest
  ``saliency_a`` (ascending order, ties in raster order) are replaced by the same pixels
  of a Gaussian-blurred ``images_a`` (``scipy.ndimage.gaussian_filter``, ``blur_sigma``
  pixels, reflected borders, colour channels separate); ``images_b`` stays intact. The
  pairs are verified again with one fixed threshold: ``threshold`` when given,
  otherwise the one with the best accuracy on the unmodified pairs
  (:func:`best_threshold`), so p = 0 gives the unmodified accuracy. ``auc`` is the
  trapezoidal area under accuracy(p) divided by the span of ``fractions`` (in [0, 1];
  Table II reports it x 100).

  Args:
    verify_fn: ``(images_a [P, H, W, 3], images_b [P, H, W, 3]) -> scores [P]``, higher
      = more alike (e.g. the cosine similarity of the two faces' features).
    images_a: ``[P, H, W, 3]`` explained images (model range, float).
    images_b: ``[P, H, W, 3]`` their partners.
    labels: ``[P]`` bool / 0-1, True for same-identity pairs.
    saliency_a: ``[P, H, W]`` saliency of images_a (higher = more important).
    fractions: increasing shares of hidden pixels in [0, 1], at least two.
    blur_sigma: standard deviation of the Gaussian blur in pixels (> 0).
    threshold: verification threshold on the scores, or None to choose it as above.
    per_pair: also return ``pair_auc`` ``[P]``: each pair's area under its correct(p)
      (0/1) curve over the span, whose mean is ``auc`` (the units a bootstrap over pairs
      resamples), and ``pair_correct`` ``[F, P]`` bool (pair correct at each fraction; its
      mean over pairs is ``accuracy``).

  Returns:
    dict with ``fractions`` and ``accuracy`` (lists), ``auc``, ``threshold``,
    ``threshold_source`` (``"given"`` / ``"best_on_unmodified"``), ``blur_sigma`` and
    ``num_pairs`` (and ``pair_auc``, ``pair_correct`` with ``per_pair``).
  """
  images_a = np.asarray(images_a, np.float32)
  images_b = np.asarray(images_b, np.float32)
  if images_a.ndim != 4 or images_a.shape[-1] != 3:
    raise ValueError(f"images_a: expected [P, H, W, 3], got shape {images_a.shape}")
  if images_b.shape != images_a.shape:
    raise ValueError(
      f"images_b: expected the shape of images_a {images_a.shape}, got {images_b.shape}"
    )
  num_pairs = images_a.shape[0]
  labels = _binary_labels(labels, num_pairs)
  saliency_a = np.asarray(saliency_a, np.float64)
  if saliency_a.shape != images_a.shape[:3] or not np.isfinite(saliency_a).all():
    raise ValueError(
      f"saliency_a: expected finite values of shape "
      f"{images_a.shape[:3]}, got shape {saliency_a.shape}"
    )
  fractions = np.asarray(fractions, np.float64)
  if (
    fractions.ndim != 1
    or fractions.size < 2
    or np.any(np.diff(fractions) <= 0)
    or fractions[0] < 0
    or fractions[-1] > 1
  ):
    raise ValueError(
      f"fractions: expected >= 2 strictly increasing values in [0, 1], got {fractions!r}"
    )
  if not np.isfinite(blur_sigma) or blur_sigma <= 0:
    raise ValueError(f"blur_sigma: expected a positive finite float, got {blur_sigma!r}")
  if threshold is not None and not np.isfinite(threshold):
    raise ValueError(f"threshold: expected None or a finite float, got {threshold!r}")

  def scores_of(modified: np.ndarray) -> np.ndarray:
    scores = np.asarray(verify_fn(modified, images_b), np.float64)
    if scores.shape != (num_pairs,):
      raise ValueError(f"verify_fn: expected scores [{num_pairs}], got shape {scores.shape}")
    return scores

  if threshold is None:
    threshold = best_threshold(scores_of(images_a), labels)
    source = "best_on_unmodified"
  else:
    threshold, source = float(threshold), "given"
  blurred = ndimage.gaussian_filter(images_a, sigma=(0, blur_sigma, blur_sigma, 0), mode="reflect")
  ranks = _saliency_ranks(saliency_a)
  correct = [
    (scores_of(hide_least_salient(images_a, blurred, ranks, p)) >= threshold) == labels
    for p in fractions
  ]
  accuracy = [float(np.mean(c)) for c in correct]
  auc = np.trapezoid(accuracy, fractions) / (fractions[-1] - fractions[0])
  extra = {}
  if per_pair:
    pair_auc = np.trapezoid(np.asarray(correct, np.float64), fractions, axis=0)
    extra["pair_auc"] = pair_auc / (fractions[-1] - fractions[0])
    extra["pair_correct"] = np.asarray(correct, bool)
  return {
    "fractions": fractions.tolist(),
    "accuracy": accuracy,
    "auc": float(auc),
    "threshold": float(threshold),
    "threshold_source": source,
    "blur_sigma": float(blur_sigma),
    "num_pairs": int(num_pairs),
    **extra,
  }


def pointing_game(saliency: Any, region_masks: Any) -> np.ndarray:
  """Share of each saliency map's mass inside a given region.

  ``share_p = sum(saliency_p * mask_p) / sum(saliency_p)``; a map with no mass points
  nowhere and scores 0.

  Args:
    saliency: ``[P, H, W]`` non-negative saliency maps (e.g. ``S``, ``S+`` or ``S-``).
    region_masks: ``[P, H, W]`` bool, the part in which the pair differs.

  Returns:
    ``[P]`` float64 shares in [0, 1].
  """
  saliency = np.asarray(saliency, np.float64)
  region_masks = np.asarray(region_masks)
  if saliency.ndim != 3 or not np.isfinite(saliency).all() or (saliency < 0).any():
    raise ValueError(
      f"saliency: expected finite non-negative [P, H, W], got shape {saliency.shape}"
    )
  if region_masks.shape != saliency.shape or region_masks.dtype != bool:
    raise ValueError(
      f"region_masks: expected bool of shape {saliency.shape}, got "
      f"{region_masks.dtype} of shape {region_masks.shape}"
    )
  total = saliency.sum(axis=(1, 2))
  inside = (saliency * region_masks).sum(axis=(1, 2))
  return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)
