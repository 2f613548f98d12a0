"""Interpretability measures of the interpretable face recogniser (Yin et al., ICCV 2019).

"Towards Interpretable Face Recognition", Sec. 4.2 and 4.4. Everything here works on
the outputs of a trained network (response maps, features) and on landmarks; nothing
trains. Coordinates are (x, y) pixels with pixel centres at integers (the convention of
:mod:`jfr.data.augment` and the dataset's landmarks).

* **Peak response locations** (Sec. 4.2): :func:`response_peaks` finds, per image and
  filter, the highest (positive peak) and the lowest (negative peak) value of the map
  LMF(ψ(I)) and its location in image pixels (:func:`map_to_image_coordinates`).
* **Warp to the canonical face** (Sec. 4.2, note 2): a peak in an arbitrary-view face is
  moved to the canonical frontal face through its barycentric coordinates in the
  triangle of the landmark mesh enclosing it: :func:`canonical_mesh` (the 68 template
  landmarks plus control points on the image boundary, Delaunay-triangulated on the
  template), :func:`barycentric_coordinates` and :func:`warp_points_to_template` (from
  :mod:`jfr.data.face_mesh`, shared with the synthetic occlusion; re-exported here).
* **Average location and spread** (Sec. 4.2, note 3, Fig. 5, Table 3):
  :func:`average_peak_locations` gives each filter's magnitude-weighted mean peak
  location c_i and the standard deviation of its peak location; :func:`spreadness` is
  ``d̄ = 1/K Σ_i ‖c_i − 1/K Σ_j c_j‖``; :func:`fraction_inside_face` the share of the
  c_i on the face (not on the background or the image border).
* **Mean feature difference** (Sec. 4.2, Fig. 6): :func:`mean_feature_difference`,
  ``1/N Σ_n |f_i(I_n) − f_i(Î_n)|`` per filter.
* **Partial-face retrieval** (Sec. 4.4): :func:`part_boxes` (regions of the template
  face), :func:`select_part_filters` (the filters whose average peak location is nearest
  a part) and :func:`retrieval_rank1` (rank-1 retrieval of the other image of the same
  subject with the masked feature).

Readings of the paper (it does not fix these):

* Weights (note 3): an image's weight for a filter is the magnitude of its peak, i.e.
  ``max(ψ_max, 0)`` for the positive and ``max(−ψ_min, 0)`` for the negative peak (a map
  without a positive value contributes nothing to the positive location).
* "Standard deviation for each filter's peak location" is the weighted root mean square
  of the per-axis deviations, ``sqrt(Σ_n w_n ‖x_n − c_i‖² / (2 Σ_n w_n))`` (a value per
  axis, comparable with Table 3: a uniform spread over a 96 px face gives about 27.7).
* Map cell (row r, column c) of an ``h x w`` map over an ``H x W`` image is at
  ``x = (c + 0.5) W / w − 0.5``, ``y = (r + 0.5) H / h − 0.5`` (the cells tile the image).
* The mesh: the paper uses "68 estimated landmarks and control points on the image
  boundary"; we place ``boundary_points_per_side`` evenly spaced points on each side of
  the image border (corners included, at ±0.5 px outside the outermost pixel centres),
  triangulate landmarks + boundary points by Delaunay on the *template* and use the same
  triangles (landmark indices) in every face. In a face the triangles may fold (strong
  yaw); a point then takes, in this order of preference, a triangle that contains it and
  has the template's orientation, any triangle that contains it, or the triangle it is
  least outside of (largest minimum barycentric coordinate; extrapolation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import spatial

# The warp to the canonical face lives in the shared face-mesh module (also used by the
# synthetic occlusion of jfr.data.augment); its names stay importable from here.
from jfr.data.face_mesh import (  # noqa: F401  (re-exports)
  barycentric_coordinates,
  boundary_control_points,
  canonical_mesh,
  warp_points_to_template,
)

# iBUG-68 landmark index ranges of the parts used for retrieval and part occlusion.
PART_LANDMARKS: dict[str, tuple[int, ...]] = {
  "eyes": tuple(range(36, 48)),
  "nose": tuple(range(27, 36)),
  "mouth": tuple(range(48, 68)),
}


# ------------------------------------------------------------------ peak locations


def map_to_image_coordinates(
  rows: jax.Array, cols: jax.Array, map_size: Sequence[int], image_size: Sequence[int]
) -> jax.Array:
  """Pixel (x, y) of map cells: ``x = (c + 0.5) W / w − 0.5``, ``y = (r + 0.5) H / h − 0.5``.

  Args:
    rows, cols: integer cell indices of any (equal) shape.
    map_size: (h, w) of the response map.
    image_size: (H, W) of the image the map covers.

  Returns:
    float32 ``[..., 2]`` (x, y) in image pixels.
  """
  (h, w), (height, width) = map_size, image_size
  x = (cols.astype(jnp.float32) + 0.5) * (width / w) - 0.5
  y = (rows.astype(jnp.float32) + 0.5) * (height / h) - 0.5
  return jnp.stack([x, y], axis=-1)


def response_peaks(maps: jax.Array, image_size: Sequence[int]) -> dict[str, jax.Array]:
  """Positive and negative peak of every map, Sec. 4.2 of the interpretable-FR paper.

  The positive peak is the location of the highest value of a map, the negative peak
  that of the lowest value (first in row-major order on ties). Jittable.

  Args:
    maps: LMF(ψ(I)) (or ψ for the base CNN), ``[N, h, w, K]``.
    image_size: (H, W) of the input images.

  Returns:
    ``pos_xy``, ``neg_xy`` float32 ``[N, K, 2]`` (image pixels, see
    :func:`map_to_image_coordinates`) and ``pos_weight`` = ``max(ψ_max, 0)``,
    ``neg_weight`` = ``max(−ψ_min, 0)``, float32 ``[N, K]``.
  """
  if maps.ndim != 4:
    raise ValueError(f"maps: expected [N, h, w, K], got shape {maps.shape}")
  n, h, w, k = maps.shape
  flat = jnp.transpose(maps, (0, 3, 1, 2)).reshape(n, k, h * w).astype(jnp.float32)
  out = {}
  for name, values in (("pos", flat), ("neg", -flat)):
    index = jnp.argmax(values, axis=-1)
    peak = jnp.take_along_axis(values, index[..., None], axis=-1)[..., 0]
    out[f"{name}_xy"] = map_to_image_coordinates(index // w, index % w, (h, w), image_size)
    out[f"{name}_weight"] = jnp.maximum(peak, 0.0)
  return out


# ---------------------------------------------------------- averages and spreadness


def average_peak_locations(
  locations: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """Magnitude-weighted average peak location and its spread per filter (Sec. 4.2).

  Args:
    locations: ``[N, K, 2]`` peak (x, y) of filter k in image n (in one common frame,
      e.g. after :func:`warp_points_to_template`).
    weights: ``[N, K]`` non-negative weights (peak magnitudes).

  Returns:
    ``(centres [K, 2], std [K])``: ``c_k = Σ_n w_nk x_nk / Σ_n w_nk`` and
    ``sqrt(Σ_n w_nk ‖x_nk − c_k‖² / (2 Σ_n w_nk))`` (per-axis RMS, module docstring).
    A filter whose weights are all 0 gets NaN.
  """
  locations = np.asarray(locations, np.float64)
  weights = np.asarray(weights, np.float64)
  if locations.ndim != 3 or locations.shape[-1] != 2:
    raise ValueError(f"locations: expected [N, K, 2], got shape {locations.shape}")
  if weights.shape != locations.shape[:2]:
    raise ValueError(f"weights: expected {locations.shape[:2]}, got {weights.shape}")
  if np.any(weights < 0) or not np.all(np.isfinite(weights)):
    raise ValueError("weights must be finite and non-negative")
  total = weights.sum(axis=0)  # [K]
  with np.errstate(invalid="ignore", divide="ignore"):
    centres = np.einsum("nk,nkd->kd", weights, locations) / total[:, None]
    sq = np.sum((locations - centres[None]) ** 2, axis=-1)
    std = np.sqrt(np.einsum("nk,nk->k", weights, sq) / (2.0 * total))
  return centres, std


def spreadness(centres: np.ndarray) -> float:
  """``d̄ = 1/K Σ_i ‖c_i − 1/K Σ_j c_j‖`` of the average locations (Sec. 4.2, Fig. 5).

  Args:
    centres: ``[K, 2]`` average peak locations (NaN rows, filters that never peak, are
      left out).
  """
  centres = np.asarray(centres, np.float64)
  if centres.ndim != 2 or centres.shape[1] != 2:
    raise ValueError(f"centres: expected [K, 2], got shape {centres.shape}")
  centres = centres[np.all(np.isfinite(centres), axis=1)]
  if centres.shape[0] == 0:
    raise ValueError("centres: no finite average location")
  return float(np.mean(np.linalg.norm(centres - centres.mean(axis=0), axis=1)))


def fraction_inside_face(centres: np.ndarray, template_landmarks: np.ndarray) -> float:
  """Share of the (finite) average locations inside the convex hull of the template
  landmarks (the face from the brows to the chin): d̄ also grows when filters move to
  the background or the image border, which this separates.

  Args:
    centres: ``[K, 2]`` average peak locations in the template frame.
    template_landmarks: ``[L, 2]``.
  """
  centres = np.asarray(centres, np.float64)
  finite = centres[np.all(np.isfinite(centres), axis=1)]
  if finite.shape[0] == 0:
    raise ValueError("centres: no finite average location")
  hull = spatial.Delaunay(np.asarray(template_landmarks, np.float64))
  return float(np.mean(hull.find_simplex(finite) >= 0))


# ------------------------------------------------------------- feature difference


def mean_feature_difference(f_clean: np.ndarray, f_occluded: np.ndarray) -> np.ndarray:
  """``1/N Σ_n |f_i(I_n) − f_i(Î_n)|`` for each filter i (Sec. 4.2, Fig. 6).

  Args:
    f_clean, f_occluded: ``[N, K]`` features of the clean and occluded faces.

  Returns:
    ``[K]`` in filter order (sort it for the Fig. 6 curves).
  """
  f_clean = np.asarray(f_clean, np.float64)
  f_occluded = np.asarray(f_occluded, np.float64)
  if f_clean.ndim != 2 or f_clean.shape != f_occluded.shape:
    raise ValueError(
      f"f_clean, f_occluded: expected two [N, K] arrays, got {f_clean.shape} and {f_occluded.shape}"
    )
  return np.mean(np.abs(f_clean - f_occluded), axis=0)


# ------------------------------------------------------------ partial-face retrieval


def part_boxes(
  template_landmarks: np.ndarray, parts: Mapping[str, Sequence[int]] | None = None
) -> dict[str, np.ndarray]:
  """Bounding box ``[x0, y0, x1, y1]`` of each part's template landmarks.

  Args:
    template_landmarks: ``[68, 2]`` (iBUG order).
    parts: part -> landmark indices (default :data:`PART_LANDMARKS`).
  """
  template = np.asarray(template_landmarks, np.float64)
  parts = PART_LANDMARKS if parts is None else parts
  if template.ndim != 2 or template.shape[1] != 2:
    raise ValueError(f"template_landmarks: expected [L, 2], got {template.shape}")
  boxes = {}
  for name, index in parts.items():
    pts = template[list(index)]
    boxes[name] = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
  return boxes


def distance_to_box(points: np.ndarray, box: np.ndarray) -> np.ndarray:
  """Euclidean distance ``[P]`` from points ``[P, 2]`` to a box ``[x0, y0, x1, y1]`` (0 inside)."""
  points = np.asarray(points, np.float64)
  lo, hi = np.asarray(box[:2], np.float64), np.asarray(box[2:], np.float64)
  gap = np.maximum(np.maximum(lo - points, points - hi), 0.0)
  return np.linalg.norm(gap, axis=-1)


def select_part_filters(centres: np.ndarray, box: np.ndarray, count: int) -> np.ndarray:
  """The ``count`` filters whose average peak location is nearest a part (Sec. 4.4).

  "Nearest" is the distance to the part's box (0 inside); ties (e.g. several inside)
  are broken by the distance to the box centre, then by filter index. Filters without
  a finite average location are never chosen.

  Args:
    centres: ``[K, 2]`` average peak locations in the template frame.
    box: the part's ``[x0, y0, x1, y1]`` (:func:`part_boxes`).
    count: filters to select, ``1 <= count <= #finite centres``.

  Returns:
    int ``[count]`` filter indices, nearest first.
  """
  centres = np.asarray(centres, np.float64)
  finite = np.all(np.isfinite(centres), axis=1)
  if not 1 <= count <= int(finite.sum()):
    raise ValueError(
      f"count: expected 1 <= count <= {int(finite.sum())} (filters with a "
      f"finite location), got {count}"
    )
  safe = np.where(finite[:, None], centres, 0.0)
  centre = (np.asarray(box[:2], np.float64) + np.asarray(box[2:], np.float64)) / 2.0
  to_box = np.where(finite, distance_to_box(safe, box), np.inf)
  to_centre = np.linalg.norm(safe - centre, axis=1)
  order = np.lexsort((np.arange(len(centres)), to_centre, to_box))
  return order[:count]


def retrieval_rank1(
  features: np.ndarray, labels: np.ndarray, filters: np.ndarray | None = None
) -> float:
  """Rank-1 retrieval accuracy with a (part-)masked feature (Sec. 4.4).

  Every item queries all the others by cosine similarity of its feature restricted to
  ``filters`` ("masking out all elements ... except selected part-related filters"); a
  query is correct when its most similar other item has its label (ties: lowest index).
  The paper's set has exactly two images per subject.

  Args:
    features: ``[N, K]``.
    labels: ``[N]``; every label must occur at least twice.
    filters: indices of the kept elements (None: all).

  Returns:
    The fraction of correct queries.
  """
  features = np.asarray(features, np.float64)
  labels = np.asarray(labels)
  if features.ndim != 2 or labels.shape != features.shape[:1]:
    raise ValueError(
      f"features, labels: expected [N, K] and [N], got {features.shape} and {labels.shape}"
    )
  _, counts = np.unique(labels, return_counts=True)
  if counts.min() < 2:
    raise ValueError("labels: every label needs at least two items")
  if filters is not None:
    features = features[:, np.asarray(filters)]
  unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  similarity = unit @ unit.T
  np.fill_diagonal(similarity, -np.inf)
  return float(np.mean(labels[np.argmax(similarity, axis=1)] == labels))


def retrieval_hits(
  features: np.ndarray, labels: np.ndarray, filters: np.ndarray | None = None
) -> np.ndarray:
  """``[N]`` bool: whether each query of :func:`retrieval_rank1` is correct (same rule;
  its mean is the rank-1), the units a bootstrap over subjects resamples."""
  features = np.asarray(features, np.float64)
  labels = np.asarray(labels)
  if filters is not None:
    features = features[:, np.asarray(filters)]
  unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  similarity = unit @ unit.T
  np.fill_diagonal(similarity, -np.inf)
  return labels[np.argmax(similarity, axis=1)] == labels
