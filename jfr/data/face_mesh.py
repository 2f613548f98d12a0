"""The landmark face mesh: Delaunay triangles on the template landmarks and the
barycentric (piecewise-affine) warp through them, in TensorFlow and in NumPy.

The interpretable-FR paper (Yin et al., ICCV 2019) moves points through a landmark mesh
twice: Sec. 3.3 / Fig. 3, the vertices of an occluder rectangle on the frontal template
go to every face of a batch "via the same barycentric coordinates" (in ``tf.data``,
:mod:`jfr.data.augment.occlusion`: :func:`template_mesh`, :func:`locate_points_tf`,
:func:`warp_points_tf`); Sec. 4.2 note 2, peak locations of each face go to the
canonical face through the 68 landmarks plus control points on the image border (NumPy,
:mod:`jfr.eval.interpretability`: :func:`boundary_control_points`,
:func:`canonical_mesh`, :func:`barycentric_coordinates`, :func:`warp_points`,
:func:`warp_points_to_template`).

Both meshes are built by :func:`delaunay_triangles` (Delaunay on the template, flat
triangles dropped) and every face uses the template's triangles (vertex indices). Both
warps implement one map: ``p = l_i S_i + l_j S_j + l_k S_k`` in triangle ``(i, j, k)``
of the source vertices ``S`` (barycentric coordinates ``l`` summing to 1) goes to
``l_i D_i + l_j D_j + l_k D_k`` of the destination vertices ``D``. Inside a mesh that
does not fold they agree (float32 against float64); they differ only in the triangle a
point takes where that is ambiguous. TF (:func:`locate_points_tf`): a triangle
containing the point, else the *nearest* one (Euclidean distance), extrapolated. NumPy
(:func:`warp_points`), in this order: a triangle containing the point whose source and
destination orientations agree (faces fold under strong yaw), any triangle containing
it, or the one it is least outside of (largest minimum barycentric coordinate).

Coordinates are (x, y) pixels with pixel centres at integers.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Union

import numpy as np
import tensorflow as tf
from scipy import spatial

ArrayLike = Union[tf.Tensor, np.ndarray]

DEGENERATE_AREA = 1e-9  # relative |det| below which a triangle is treated as flat
_CONTAIN_TOLERANCE = 1e-6


def _det(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


# ---------------------------------------------------------------- mesh construction


def delaunay_triangles(vertices: np.ndarray, area_scale: float) -> np.ndarray:
  """Delaunay triangles of ``vertices`` without the flat ones.

  qhull may emit (near-)flat simplices for cocircular points; a triangle (A, B, C) is
  kept when ``|det(B - A, C - A)| > DEGENERATE_AREA * area_scale`` (twice its area
  against a squared length of the point set). ``spatial.QhullError`` propagates (points
  that do not span a 2-D region).

  Args:
    vertices: float64 ``[V >= 3, 2]``.
    area_scale: squared length, e.g. the bounding-box area or the squared image size.

  Returns:
    int32 ``[T, 3]`` vertex indices.
  """
  vertices = np.asarray(vertices, np.float64)
  if vertices.ndim != 2 or vertices.shape[1] != 2 or vertices.shape[0] < 3:
    raise ValueError(f"vertices: expected [V >= 3, 2], got shape {vertices.shape}")
  simplices = spatial.Delaunay(vertices).simplices
  corners = vertices[simplices]
  area2 = np.abs(_det(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]))
  return simplices[area2 > DEGENERATE_AREA * area_scale].astype(np.int32)


@dataclasses.dataclass(frozen=True)
class TemplateMesh:
  """Precomputed geometry of a template landmark set (NumPy constants)."""

  points: np.ndarray  # [N, 2] float64
  triangles: np.ndarray  # [T, 3] int32, non-degenerate Delaunay triangles
  inverse: np.ndarray  # [T, 2, 2]: (u, v) = inverse @ (p - A) for triangle (A, B, C)
  hull_normals: np.ndarray  # [K, 2] outward unit normals of the convex hull
  hull_offsets: np.ndarray  # [K]: inside iff normals @ p + offsets <= 0


@functools.lru_cache(maxsize=16)
def _mesh_from_bytes(data: bytes, count: int) -> TemplateMesh:
  points = np.frombuffer(data, np.float64).reshape(count, 2)
  try:
    tris = delaunay_triangles(points, np.ptp(points, axis=0).prod())
    hull = spatial.ConvexHull(points)
  except spatial.QhullError as e:
    raise ValueError(f"template_landmarks do not span a 2D face region: {e}") from e
  a, b, c = points[tris[:, 0]], points[tris[:, 1]], points[tris[:, 2]]
  edges = np.stack([b - a, c - a], axis=-1)  # [T, 2, 2] columns (B-A, C-A)
  return TemplateMesh(
    points=points,
    triangles=tris,
    inverse=np.linalg.inv(edges),
    hull_normals=hull.equations[:, :2],
    hull_offsets=hull.equations[:, 2],
  )


def template_mesh(template_landmarks: ArrayLike) -> TemplateMesh:
  """Delaunay mesh and convex hull of a concrete template landmark array [N, 2] (cached)."""
  if isinstance(template_landmarks, tf.Tensor):
    value = tf.get_static_value(template_landmarks)
    if value is None:
      raise ValueError(
        "template_landmarks must be a concrete array (NumPy, eager or "
        "constant tensor), not a symbolic tensor"
      )
    template_landmarks = value
  points = np.asarray(template_landmarks, np.float64)
  if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 3:
    raise ValueError(f"template_landmarks must be [N >= 3, 2], got shape {points.shape}")
  if not np.all(np.isfinite(points)):
    raise ValueError("template_landmarks must be finite")
  return _mesh_from_bytes(np.ascontiguousarray(points).tobytes(), points.shape[0])


def mesh_triangles(template_landmarks: ArrayLike) -> np.ndarray:
  """The triangle list [T, 3] (int32 landmark indices) of the template mesh.

  The interpretable-FR paper uses "a frontal face template with 142 triangles created
  by 68 landmarks"; a planar triangulation of 68 points has at most 131 triangles, so
  the paper's mesh must hold extra points. jfr uses the Delaunay triangulation of the
  68 template landmarks (flat triangles from cocircular points dropped), which covers
  their convex hull.
  """
  return template_mesh(template_landmarks).triangles.copy()


def boundary_control_points(image_size: int, per_side: int = 3) -> np.ndarray:
  """Control points ``[4 (per_side − 1), 2]`` (float64) on a square image's border.

  ``per_side`` evenly spaced points per side (corners shared), on the image edge
  ``−0.5`` / ``image_size − 0.5`` (half a pixel outside the outermost pixel centres).
  """
  if per_side < 2:
    raise ValueError(f"per_side: expected >= 2 (the corners), got {per_side}")
  lo, hi = -0.5, image_size - 0.5
  ticks = np.linspace(lo, hi, per_side)
  points = [(t, lo) for t in ticks[:-1]] + [(hi, t) for t in ticks[:-1]]
  points += [(t, hi) for t in ticks[::-1][:-1]] + [(lo, t) for t in ticks[::-1][:-1]]
  return np.asarray(points, np.float64)


def canonical_mesh(
  template_landmarks: np.ndarray, image_size: int, boundary_points_per_side: int = 3
) -> tuple[np.ndarray, np.ndarray]:
  """The warp mesh of the canonical face: template landmarks + border control points.

  The paper uses "68 estimated landmarks and control points on the image boundary"; we
  place ``boundary_points_per_side`` evenly spaced points on each side of the image
  border (:func:`boundary_control_points`) and triangulate landmarks + boundary points
  by Delaunay on the *template* (:func:`delaunay_triangles`, flat below
  ``DEGENERATE_AREA * image_size²``).

  Args:
    template_landmarks: ``[L, 2]`` canonical frontal landmarks (x, y pixels).
    image_size: side of the (square) template image.
    boundary_points_per_side: control points per image side (corners included).

  Returns:
    ``(vertices [L + B, 2] float64, triangles [T, 3] int32)``: the landmarks first, then
    the boundary control points; triangles index the vertices.
  """
  template = np.asarray(template_landmarks, np.float64)
  if template.ndim != 2 or template.shape[1] != 2 or template.shape[0] < 3:
    raise ValueError(f"template_landmarks: expected [L >= 3, 2], got {template.shape}")
  vertices = np.concatenate(
    [template, boundary_control_points(image_size, boundary_points_per_side)]
  )
  return vertices, delaunay_triangles(vertices, float(image_size) ** 2)


# ------------------------------------------------------------------- TensorFlow warp


def locate_points_tf(
  points: ArrayLike, template_landmarks: ArrayLike
) -> tuple[tf.Tensor, tf.Tensor]:
  """Locates points in the template mesh: enclosing triangle and barycentric coords.

  A point inside the mesh gets a triangle that contains it (on a shared edge either
  neighbour: both give the same mapped point). A point outside every triangle gets the
  *nearest* triangle (Euclidean distance to the triangle) and its extrapolated
  barycentric coordinates (some negative), i.e. the affine map of that triangle
  extended outwards.

  Args:
    points: float [V, 2] (x, y) in template pixels.
    template_landmarks: concrete [N, 2] array.

  Returns:
    ``(triangle_index int32 [V], coords float32 [V, 3])`` with
    ``points[v] = sum_k coords[v, k] * template[triangles[triangle_index[v], k]]``.
  """
  mesh = template_mesh(template_landmarks)
  points = tf.convert_to_tensor(points, tf.float32)
  if points.shape.rank != 2 or points.shape[-1] != 2:
    raise ValueError(f"points must be [V, 2], got shape {points.shape}")
  corners = tf.constant(mesh.points[mesh.triangles], tf.float32)  # [T, 3, 2]
  rel = points[:, None, :] - corners[None, :, 0, :]  # [V, T, 2]
  uv = tf.einsum("tij,vtj->vti", tf.constant(mesh.inverse, tf.float32), rel)
  coords = tf.concat([1.0 - tf.reduce_sum(uv, -1, keepdims=True), uv], axis=-1)
  # Distance from each point to each triangle (0 inside), via its three edges.
  start = corners  # [T, 3, 2]
  edge = tf.roll(corners, shift=-1, axis=1) - corners  # [T, 3, 2]
  to_point = points[:, None, None, :] - start[None]  # [V, T, 3, 2]
  t = tf.clip_by_value(
    tf.reduce_sum(to_point * edge, -1) / tf.reduce_sum(edge * edge, -1), 0.0, 1.0
  )  # [V, T, 3]
  edge_dist = tf.norm(to_point - t[..., None] * edge[None], axis=-1)  # [V, T, 3]
  inside = tf.reduce_all(coords >= -1e-6, axis=-1)
  dist = tf.where(inside, 0.0, tf.reduce_min(edge_dist, axis=-1))  # [V, T]
  index = tf.argmin(dist, axis=-1, output_type=tf.int32)
  return index, tf.gather(coords, index, axis=1, batch_dims=1)


def warp_points_tf(
  points: ArrayLike, template_landmarks: ArrayLike, landmarks: ArrayLike
) -> tf.Tensor:
  """Maps template points to every face through the template's landmark mesh.

  Point v in triangle (i, j, k) of :func:`template_mesh` with coordinates
  (l_i, l_j, l_k) (:func:`locate_points_tf`) becomes ``l_i L_b[i] + l_j L_b[j] +
  l_k L_b[k]`` for face b's landmarks ``L_b``. Barycentric coordinates are affine
  invariant: for a face whose landmarks are an affine image of the template the points
  move by that affine map. Pure TensorFlow (usable in ``tf.data``); the template must
  be concrete.

  Args:
    points: float [V, 2] in template pixels.
    template_landmarks: concrete [N, 2].
    landmarks: float [B, N, 2] landmarks of each face (pixels of its own image).

  Returns:
    float32 [B, V, 2].
  """
  mesh = template_mesh(template_landmarks)
  landmarks = tf.cast(tf.convert_to_tensor(landmarks), tf.float32)
  if landmarks.shape.rank != 3 or landmarks.shape[1:].as_list() != [len(mesh.points), 2]:
    raise ValueError(f"landmarks must be [B, {len(mesh.points)}, 2], got {landmarks.shape}")
  index, coords = locate_points_tf(points, mesh.points)
  corner_ids = tf.gather(tf.constant(mesh.triangles), index)  # [V, 3]
  corners = tf.gather(landmarks, corner_ids, axis=1)  # [B, V, 3, 2]
  return tf.einsum("vk,bvkd->bvd", coords, corners)


# ------------------------------------------------------------------------ NumPy warp


def barycentric_coordinates(
  points: np.ndarray, corners: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """Barycentric coordinates of points in triangles.

  Args:
    points: ``[..., P, 2]``.
    corners: ``[..., T, 3, 2]`` triangle corners (same leading shape as ``points``).

  Returns:
    ``(coords [..., P, T, 3], valid [..., T])``: ``points = Σ_k coords_k corner_k`` for
    every non-degenerate triangle (``valid``); degenerate ones get NaN coordinates.
  """
  a = corners[..., 0, :]
  e1, e2 = corners[..., 1, :] - a, corners[..., 2, :] - a
  det = _det(e1, e2)  # [..., T]
  edge_scale = np.maximum(np.sum(e1 * e1, axis=-1), np.sum(e2 * e2, axis=-1))
  valid = np.abs(det) > DEGENERATE_AREA * np.maximum(edge_scale, 1e-12)
  safe = np.where(valid, det, 1.0)
  rel = points[..., :, None, :] - a[..., None, :, :]  # [..., P, T, 2]
  u = _det(rel, e2[..., None, :, :]) / safe[..., None, :]
  v = _det(e1[..., None, :, :], rel) / safe[..., None, :]
  coords = np.stack([1.0 - u - v, u, v], axis=-1)
  return np.where(valid[..., None, :, None], coords, np.nan), valid


def _choose_triangle(
  coords: np.ndarray, valid: np.ndarray, same_orientation: np.ndarray
) -> np.ndarray:
  """Index [..., P] of the triangle each point takes (preference in the module docstring)."""
  least = np.where(
    valid[..., None, :], np.min(np.nan_to_num(coords, nan=-np.inf), axis=-1), -np.inf
  )  # [..., P, T]
  contains = least >= -_CONTAIN_TOLERANCE
  score = np.where(contains, 2.0 + same_orientation[..., None, :] + least, least)
  return np.argmax(score, axis=-1)


def _orientation(corners: np.ndarray) -> np.ndarray:
  return np.sign(
    _det(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])
  )


def warp_points(
  points: np.ndarray,
  source_vertices: np.ndarray,
  target_vertices: np.ndarray,
  triangles: np.ndarray,
  chunk: int = 64,
) -> np.ndarray:
  """Maps points through a triangle mesh from source to target vertices (NumPy).

  Point p of face n in triangle (i, j, k) of that face's source vertices, with
  barycentric coordinates (λ_i, λ_j, λ_k), becomes ``λ_i D_i + λ_j D_j + λ_k D_k`` for
  the target vertices D. The triangle is chosen as in the module docstring (orientation
  compared between source and target triangle).

  Args:
    points: ``[N, P, 2]`` (x, y) pixels of face n.
    source_vertices: ``[N, V, 2]`` or ``[V, 2]`` (shared by all faces).
    target_vertices: ``[N, V, 2]`` or ``[V, 2]`` (shared by all faces).
    triangles: int ``[T, 3]`` vertex indices.
    chunk: faces processed at a time (bounds memory: ``chunk·P·T·3`` floats).

  Returns:
    float64 ``[N, P, 2]``.
  """
  points = np.asarray(points, np.float64)
  if points.ndim != 3 or points.shape[-1] != 2:
    raise ValueError(f"points: expected [N, P, 2], got shape {points.shape}")
  n = points.shape[0]
  source = np.asarray(source_vertices, np.float64)
  target = np.asarray(target_vertices, np.float64)
  triangles = np.asarray(triangles)
  v = source.shape[-2] if source.ndim in (2, 3) else -1
  for name, value in (("source_vertices", source), ("target_vertices", target)):
    if value.ndim not in (2, 3) or value.shape[-2:] != (v, 2) or value.shape[:-2] not in ((), (n,)):
      raise ValueError(f"{name}: expected [N={n}, V, 2] or [V, 2] (one V), got {value.shape}")
  if triangles.ndim != 2 or triangles.shape[1] != 3 or not np.all(triangles < v):
    raise ValueError(f"triangles: expected [T, 3] indices < {v}, got {triangles.shape}")
  source = np.broadcast_to(source, (n,) + source.shape[-2:])
  target = np.broadcast_to(target, (n,) + target.shape[-2:])
  out = np.empty_like(points)
  for start in range(0, n, chunk):
    sl = slice(start, start + chunk)
    corners = source[sl][:, triangles]  # [n, T, 3, 2]
    target_corners = target[sl][:, triangles]  # [n, T, 3, 2]
    coords, valid = barycentric_coordinates(points[sl], corners)  # [n, P, T, 3]
    same = _orientation(corners) == _orientation(target_corners)  # [n, T]
    chosen = _choose_triangle(coords, valid, same.astype(np.float64))  # [n, P]
    lam = np.take_along_axis(coords, chosen[..., None, None], axis=-2)[..., 0, :]
    chosen_corners = target_corners[np.arange(len(chosen))[:, None], chosen]  # [n, P, 3, 2]
    out[sl] = np.einsum("npk,npkd->npd", lam, chosen_corners)
  return out


def warp_points_to_template(
  points: np.ndarray,
  landmarks: np.ndarray,
  template_landmarks: np.ndarray,
  image_size: int,
  boundary_points_per_side: int = 3,
  chunk: int = 64,
) -> np.ndarray:
  """Maps points of each face to the canonical face through the landmark mesh.

  Sec. 4.2 (note 2) of the interpretable-FR paper: a peak location in an arbitrary-view
  face is warped "to a canonical frontal-view face, by its barycentric coordinates
  w.r.t. the triangle enclosing it". Point p of face n in the triangle (i, j, k) of that
  face's mesh with coordinates (λ_i, λ_j, λ_k) becomes ``λ_i T_i + λ_j T_j + λ_k T_k``
  for the template vertices T (:func:`warp_points`). The face's mesh vertices are its
  landmarks plus the same boundary control points as the template (see
  :func:`canonical_mesh`).

  Args:
    points: ``[N, P, 2]`` (x, y) pixels of face n.
    landmarks: ``[N, L, 2]`` landmarks of each face (same order as the template).
    template_landmarks: ``[L, 2]`` canonical frontal landmarks.
    image_size: side of the square images (faces and template share it).
    boundary_points_per_side: control points per image side.
    chunk: faces processed at a time (bounds memory: ``chunk·P·T·3`` floats).

  Returns:
    float64 ``[N, P, 2]`` points in the template frame.
  """
  points = np.asarray(points, np.float64)
  landmarks = np.asarray(landmarks, np.float64)
  vertices, triangles = canonical_mesh(template_landmarks, image_size, boundary_points_per_side)
  num_landmarks = len(vertices) - len(boundary_control_points(image_size, boundary_points_per_side))
  if points.ndim != 3 or points.shape[-1] != 2:
    raise ValueError(f"points: expected [N, P, 2], got shape {points.shape}")
  if landmarks.shape != (points.shape[0], num_landmarks, 2):
    raise ValueError(
      f"landmarks: expected [N={points.shape[0]}, {num_landmarks}, 2], got {landmarks.shape}"
    )
  if not (np.all(np.isfinite(points)) and np.all(np.isfinite(landmarks))):
    raise ValueError("points and landmarks must be finite")
  boundary = np.broadcast_to(
    vertices[num_landmarks:], (points.shape[0],) + vertices[num_landmarks:].shape
  )
  face_vertices = np.concatenate([landmarks, boundary], axis=1)  # [N, V, 2]
  return warp_points(points, face_vertices, vertices, triangles, chunk)
