"""Data augmentation ops for tf.data pipelines (pure TensorFlow, NumPy-friendly).

What lives here:

* Photometric/geometric training augmentation of the FAN paper (Hörmann et al., ICIP
  2021, Sec. 4.1: "left-right flipping, random contrast, brightness and saturation, and
  motion blur with a filter kernel size of up to 9 pixels with a probability of 50 %"):
  :func:`random_flip`, :func:`color_jitter`, :func:`motion_blur`, and the deterministic
  :func:`motion_blur_kernel` / :func:`apply_motion_blur` used for the FAN robustness table
  (Table 4, kernel sizes 7...17); plus :func:`gaussian_blur`.
* The warped synthetic occlusion of the interpretable-FR paper (Yin et al., ICCV 2019,
  Sec. 3.3 and Fig. 3; BlaS / GauD of Table 2): a rectangle placed on the frontal template
  face, its vertices expressed in barycentric coordinates of the template's landmark
  triangle mesh and mapped through the same coordinates to every face of a batch, so that
  one batch carries one *semantically equivalent* occluder whatever each face's pose:
  :func:`sample_occlusion_rectangle`, :func:`warp_rectangle_to_faces`,
  :func:`occlusion_masks`, :func:`apply_occlusion` and the all-in-one :func:`occlude_batch`.

Conventions shared by every function:

* Randomness: every random op takes an explicit stateless seed, an int32/int64 tensor of
  shape ``[2]`` (``tf.random.stateless_*``). Same seed -> same output, in eager mode and
  inside ``tf.data`` maps. Ops that draw several numbers split the seed with
  ``tf.random.experimental.stateless_split``.
* Images: ``uint8`` in [0, 255] (the dataset dtype) or floating point in [-1, 1] (the
  model range of the conventions). The output has the input's dtype; uint8 results are
  rounded and clipped. NumPy arrays are accepted; results are ``tf.Tensor``.
* Pixel coordinates: ``x`` (column) then ``y`` (row), in pixels, with the *centre* of
  pixel ``(row r, column c)`` at ``(x, y) = (c, r)`` (integer pixel centres). Hence a
  left-right flip maps ``x -> W - 1 - x``, and occlusion masks test pixel centres.
* Landmarks: 68 points in the iBUG / 300-W order (0-16 jaw, 17-26 brows, 27-35 nose,
  36-47 eyes, 48-67 mouth); "right eye" = the subject's right, on the image's left.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
from scipy import spatial

ArrayLike = Union[tf.Tensor, np.ndarray]
ImageSize = Union[int, Sequence[int]]

# Mirror pairs of the iBUG 68-point layout (0-based); unlisted points (27-30 nose ridge,
# 33 nose tip, 51/57 lip centres, 62/66 inner-lip centres, 8 chin) map to themselves.
_IBUG68_MIRROR_PAIRS = (
  tuple((i, 16 - i) for i in range(8))  # jaw
  + ((17, 26), (18, 25), (19, 24), (20, 23), (21, 22))  # eyebrows
  + ((31, 35), (32, 34))  # nostrils
  + ((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46))  # eyes
  + ((48, 54), (49, 53), (50, 52), (55, 59), (56, 58))  # outer lips
  + ((60, 64), (61, 63), (65, 67))  # inner lips
)


def _flip_permutation() -> np.ndarray:
  perm = np.arange(68, dtype=np.int32)
  for a, b in _IBUG68_MIRROR_PAIRS:
    perm[a], perm[b] = b, a
  return perm


# After a left-right flip, new point i is the mirror image of old point
# IBUG68_FLIP_PERMUTATION[i] (e.g. new 36, right eye outer corner, = mirrored old 45).
IBUG68_FLIP_PERMUTATION = _flip_permutation()

# Interpretable-FR paper: the template face and its occluders live at 96x96 (CASIA-Net
# input). Rectangle sides are given at that scale and multiplied by (W/96, H/96).
PAPER_TEMPLATE_SIZE = 96
STATIC_OCCLUSION_SIZE = (32, 12)  # (width, height) at 96 px: "a 32 x 12 rectangle"
DYNAMIC_OCCLUSION_RANGE = (12, 32)  # each side drawn from [12, 32] at 96 px
# Spacing (in image pixels) of the grid of candidate rectangle centres, and the slack
# (pixels) allowed when testing that a rectangle lies inside the template's hull.
_CENTRE_GRID_SPACING = 0.5
_HULL_TOLERANCE = 1e-4
# Gaussian-noise fill (GauD), in units of the [0, 1] intensity range, clipped to [0, 1].
NOISE_FILL_MEAN = 0.5
NOISE_FILL_STD = 0.25


# --------------------------------------------------------------------------- helpers


def _check_seed(seed: ArrayLike, name: str = "seed") -> tf.Tensor:
  """Validates a stateless seed: integer tensor of shape [2]."""
  seed = tf.convert_to_tensor(seed)
  if seed.dtype not in (tf.int32, tf.int64):
    raise ValueError(
      f"{name} must be an int32/int64 tensor of shape [2], got dtype {seed.dtype.name}"
    )
  if seed.shape.rank is not None and seed.shape.as_list() != [2]:
    raise ValueError(f"{name} must have shape [2], got {seed.shape}")
  return seed


def _image_tensor(image: ArrayLike, ranks: Sequence[int], name: str = "image") -> tf.Tensor:
  image = tf.convert_to_tensor(image)
  if not (image.dtype == tf.uint8 or image.dtype.is_floating):
    raise ValueError(f"{name} must be uint8 or floating point, got {image.dtype.name}")
  if image.shape.rank not in ranks:
    raise ValueError(
      f"{name} must have rank in {tuple(ranks)} ([H, W, C] or "
      f"[B, H, W, C]), got shape {image.shape}"
    )
  return image


def _to_unit(image: tf.Tensor) -> tf.Tensor:
  """uint8 [0, 255] or float [-1, 1] -> float32 in [0, 1]."""
  if image.dtype == tf.uint8:
    return tf.cast(image, tf.float32) / 255.0
  return (tf.cast(image, tf.float32) + 1.0) * 0.5


def _from_unit(x: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """float in [0, 1] -> uint8 (rounded, clipped) or float in [-1, 1] of ``dtype``."""
  x = tf.clip_by_value(x, 0.0, 1.0)
  if dtype == tf.uint8:
    return tf.cast(tf.round(x * 255.0), tf.uint8)
  return tf.cast(x * 2.0 - 1.0, dtype)


def _hw(image_size: ImageSize, name: str = "image_size") -> tuple[int, int]:
  """int or (H, W) -> (H, W), validated."""
  if isinstance(image_size, (int, np.integer)):
    h = w = int(image_size)
  else:
    try:
      h, w = (int(v) for v in image_size)
    except (TypeError, ValueError) as e:
      raise ValueError(f"{name} must be an int or a pair (H, W), got {image_size!r}") from e
  if h <= 0 or w <= 0:
    raise ValueError(f"{name} must be positive, got {image_size!r}")
  return h, w


# ------------------------------------------------------------------------------ flip


def flip_left_right(
  image: ArrayLike,
  landmarks: Optional[ArrayLike] = None,
  segmentation: Optional[ArrayLike] = None,
  segmentation_permutation: Optional[ArrayLike] = None,
):
  """Deterministic left-right flip of an image and its geometric annotations.

  Args:
    image: [H, W, C] (any dtype).
    landmarks: optional float [68, 2] (x, y) in pixels (integer pixel centres): the
      flipped point i is ``(W - 1 - x, y)`` of old point ``IBUG68_FLIP_PERMUTATION[i]``,
      so indices keep their left/right meaning. NaN (missing) stays NaN.
    segmentation: optional [H, W] or [H, W, C'] map (labels or masks), flipped spatially.
    segmentation_permutation: optional int [num_classes] lookup applied to the flipped
      label map, for label sets with left/right classes (class k -> perm[k]). ``None``
      keeps labels unchanged (label set without left/right distinction).

  Returns:
    ``(image, landmarks, segmentation)``; entries not given are ``None``.
  """
  image = tf.convert_to_tensor(image)
  if image.shape.rank != 3:
    raise ValueError(f"image must be [H, W, C], got shape {image.shape}")
  out_image = tf.reverse(image, axis=[1])
  out_landmarks = None
  if landmarks is not None:
    landmarks = tf.convert_to_tensor(landmarks)
    if landmarks.shape.as_list() != [68, 2] or not landmarks.dtype.is_floating:
      raise ValueError(
        f"landmarks must be float [68, 2], got {landmarks.dtype.name} {landmarks.shape}"
      )
    width = tf.cast(tf.shape(image)[1], landmarks.dtype)
    moved = tf.gather(landmarks, IBUG68_FLIP_PERMUTATION)
    out_landmarks = tf.stack([width - 1.0 - moved[:, 0], moved[:, 1]], axis=1)
  out_segmentation = None
  if segmentation is not None:
    segmentation = tf.convert_to_tensor(segmentation)
    if segmentation.shape.rank not in (2, 3):
      raise ValueError(f"segmentation must be [H, W] or [H, W, C], got {segmentation.shape}")
    out_segmentation = tf.reverse(segmentation, axis=[1])
    if segmentation_permutation is not None:
      lookup = tf.convert_to_tensor(segmentation_permutation)
      out_segmentation = tf.cast(
        tf.gather(lookup, tf.cast(out_segmentation, tf.int32)), segmentation.dtype
      )
  return out_image, out_landmarks, out_segmentation


def random_flip(
  image: ArrayLike,
  seed: ArrayLike,
  landmarks: Optional[ArrayLike] = None,
  segmentation: Optional[ArrayLike] = None,
  segmentation_permutation: Optional[ArrayLike] = None,
):
  """Left-right flip with probability 1/2 (FAN paper Sec. 4.1 augmentation).

  The decision depends only on ``seed``: calling again with the same seed flips another
  map (e.g. the occluder mask) consistently.

  Args:
    image: [H, W, C].
    seed: int [2] stateless seed.
    landmarks, segmentation, segmentation_permutation: see :func:`flip_left_right`.

  Returns:
    The image [H, W, C] when neither ``landmarks`` nor ``segmentation`` is given;
    otherwise the tuple ``(image, landmarks, segmentation)`` (``None`` for the one not
    given).
  """
  seed = _check_seed(seed)
  flip = tf.random.stateless_uniform([], seed) < 0.5
  original = (
    tf.convert_to_tensor(image),
    None if landmarks is None else tf.convert_to_tensor(landmarks),
    None if segmentation is None else tf.convert_to_tensor(segmentation),
  )
  flipped = flip_left_right(image, landmarks, segmentation, segmentation_permutation)
  present = [i for i, v in enumerate(original) if v is not None]
  chosen = tf.cond(
    flip, lambda: [flipped[i] for i in present], lambda: [original[i] for i in present]
  )
  result = [None, None, None]
  for i, value in zip(present, chosen):
    result[i] = value
  if landmarks is None and segmentation is None:
    return result[0]
  return tuple(result)


def random_flip_features(
  features: Mapping[str, Any], seed: ArrayLike, segmentation_permutation: Optional[ArrayLike] = None
) -> dict[str, Any]:
  """:func:`random_flip` of a jfr feature dict (one decision for all spatial features).

  Flips ``image``, ``landmarks`` (with the iBUG permutation), ``segmentation`` and
  ``occluder_mask`` where present; other entries pass through unchanged.
  """
  if "image" not in features:
    raise ValueError(f"features must hold 'image', got keys {sorted(features)}")
  out = dict(features)
  result = random_flip(
    features["image"],
    seed,
    landmarks=features.get("landmarks"),
    segmentation=features.get("segmentation"),
    segmentation_permutation=segmentation_permutation,
  )
  if isinstance(result, tuple):
    out["image"], lm, seg = result
    if lm is not None:
      out["landmarks"] = lm
    if seg is not None:
      out["segmentation"] = seg
  else:
    out["image"] = result
  if "occluder_mask" in features:
    out["occluder_mask"] = random_flip(
      tf.convert_to_tensor(features["occluder_mask"])[..., None], seed
    )[..., 0]
  return out


# ---------------------------------------------------------------------- colour jitter


def color_jitter(
  image: ArrayLike, seed: ArrayLike, brightness: float, contrast: float, saturation: float
) -> tf.Tensor:
  """Random brightness, contrast and saturation (FAN paper Sec. 4.1), in that order.

  On intensities ``x`` in [0, 1] (uint8 / 255, or (float + 1) / 2), each step clipped
  to [0, 1]: ``x + d`` with ``d ~ U[-brightness, brightness]``; per-channel
  ``(x - mean) * f + mean`` with ``f ~ U[1 - contrast, 1 + contrast]``; HSV saturation
  times ``s ~ U[1 - saturation, 1 + saturation]``. A strength of 0 skips that step.
  The FAN paper gives no strengths; they come from the config.

  Args:
    image: [H, W, 3] uint8 or float in [-1, 1] (a batch [B, H, W, 3] shares one draw).
    seed: int [2] stateless seed.
    brightness: in [0, 1]. contrast: in [0, 1]. saturation: in [0, 1].

  Returns:
    The jittered image, same shape and dtype.
  """
  image = _image_tensor(image, (3, 4))
  seed = _check_seed(seed)
  for name, value in (
    ("brightness", brightness),
    ("contrast", contrast),
    ("saturation", saturation),
  ):
    if not 0.0 <= float(value) <= 1.0:
      raise ValueError(f"{name} must be in [0, 1], got {value}")
  seeds = tf.random.experimental.stateless_split(seed, 3)
  x = _to_unit(image)
  if brightness > 0:
    x = tf.clip_by_value(
      tf.image.stateless_random_brightness(x, float(brightness), seeds[0]), 0.0, 1.0
    )
  if contrast > 0:
    x = tf.clip_by_value(
      tf.image.stateless_random_contrast(x, 1.0 - float(contrast), 1.0 + float(contrast), seeds[1]),
      0.0,
      1.0,
    )
  if saturation > 0:
    x = tf.clip_by_value(
      tf.image.stateless_random_saturation(
        x, 1.0 - float(saturation), 1.0 + float(saturation), seeds[2]
      ),
      0.0,
      1.0,
    )
  return _from_unit(x, image.dtype)


# ------------------------------------------------------------------------------ blurs


def _convolve(image: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """Per-channel 2D filtering with a [k, k] kernel and symmetric (mirror) padding.

  Symmetric padding keeps a constant image constant (the kernel sums to 1). ``image`` is
  [H, W, C] or [B, H, W, C]; k must be odd and (k - 1) / 2 <= min(H, W).
  """
  squeeze = image.shape.rank == 3
  x = tf.cast(image[None] if squeeze else image, tf.float32)
  k = kernel.shape[0]
  pad = (k - 1) // 2
  x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")
  channels = x.shape[-1]
  weights = tf.tile(tf.cast(kernel, tf.float32)[:, :, None, None], [1, 1, channels, 1])
  y = tf.nn.depthwise_conv2d(x, weights, strides=[1, 1, 1, 1], padding="VALID")
  if squeeze:
    y = y[0]
  if image.dtype == tf.uint8:
    return tf.cast(tf.round(tf.clip_by_value(y, 0.0, 255.0)), tf.uint8)
  return tf.cast(y, image.dtype)


def _line_kernel(grid: int, length: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
  """A normalised anti-aliased line segment on a ``grid x grid`` array (grid odd).

  The segment passes through the centre cell, has direction ``(cos a, -sin a)`` in (x, y)
  pixel coordinates (``a`` in degrees, counter-clockwise as seen on the image, y down) and
  spans ``length`` pixel centres: its ends are at +-(length - 1) / 2 from the centre.
  Weight of a cell = max(0, 1 - distance of its centre to the segment), then / sum.
  """
  m = (grid - 1) // 2
  offsets = tf.range(-m, m + 1, dtype=tf.float32)
  dy, dx = tf.meshgrid(offsets, offsets, indexing="ij")
  radians = tf.cast(angle, tf.float32) * (math.pi / 180.0)
  ux, uy = tf.cos(radians), -tf.sin(radians)
  half = (tf.cast(length, tf.float32) - 1.0) / 2.0
  t = tf.clip_by_value(dx * ux + dy * uy, -half, half)
  dist = tf.sqrt(tf.square(dx - t * ux) + tf.square(dy - t * uy))
  weights = tf.maximum(0.0, 1.0 - dist)
  return weights / tf.reduce_sum(weights)


def _check_odd_size(size: int, name: str, minimum: int = 1) -> int:
  if not isinstance(size, (int, np.integer)) or size < minimum or size % 2 == 0:
    raise ValueError(f"{name} must be an odd integer >= {minimum}, got {size!r}")
  return int(size)


def motion_blur_kernel(size: int, angle: Union[float, ArrayLike]) -> tf.Tensor:
  """The linear motion-blur kernel of the FAN robustness study (Table 4).

  A line of ``size`` pixels through the kernel centre at ``angle`` degrees (0 =
  horizontal, 90 = vertical, counter-clockwise on the image), anti-aliased (weight
  ``max(0, 1 - distance to the segment)``) and normalised to sum 1. ``size=1`` is the
  identity. At 0 degrees it is exactly ``1/size`` on the middle row.

  Args:
    size: odd int >= 1 (odd keeps the kernel centred, so blurring does not shift).
    angle: scalar, degrees.

  Returns:
    float32 [size, size].
  """
  size = _check_odd_size(size, "size")
  return _line_kernel(size, tf.constant(size, tf.float32), angle)


def apply_motion_blur(image: ArrayLike, size: int, angle: Union[float, ArrayLike]) -> tf.Tensor:
  """Blurs ``image`` ([H, W, C] or [B, H, W, C]) with :func:`motion_blur_kernel`.

  Borders use symmetric padding, so a constant image is unchanged and the mean
  brightness is preserved up to border effects.
  """
  image = _image_tensor(image, (3, 4))
  return _convolve(image, motion_blur_kernel(size, angle))


def motion_blur(
  image: ArrayLike, seed: ArrayLike, max_size: int = 9, prob: float = 0.5
) -> tf.Tensor:
  """Random linear motion blur (FAN paper Sec. 4.1: "kernel size of up to 9 pixels with
  a probability of 50 %").

  With probability ``prob`` the image is blurred by :func:`motion_blur_kernel` with a size
  drawn uniformly from the odd sizes {3, 5, ..., max_size} (1 would be the identity;
  even sizes would shift the image) and an angle uniform in [0, 180) degrees (a line
  kernel is symmetric under 180 degree rotation).

  Args:
    image: [H, W, C] or [B, H, W, C] (a batch shares one draw); uint8 or float.
    seed: int [2] stateless seed.
    max_size: odd int >= 3.
    prob: probability of blurring, in [0, 1].

  Returns:
    Same shape and dtype as ``image``.
  """
  image = _image_tensor(image, (3, 4))
  seed = _check_seed(seed)
  max_size = _check_odd_size(max_size, "max_size", minimum=3)
  if not 0.0 <= float(prob) <= 1.0:
    raise ValueError(f"prob must be in [0, 1], got {prob}")
  seeds = tf.random.experimental.stateless_split(seed, 3)
  apply = tf.random.stateless_uniform([], seeds[0]) < prob
  half = tf.random.stateless_uniform(
    [], seeds[1], minval=1, maxval=(max_size - 1) // 2 + 1, dtype=tf.int32
  )
  size = 2 * half + 1
  angle = tf.random.stateless_uniform([], seeds[2], 0.0, 180.0)
  kernel = _line_kernel(max_size, size, angle)
  return tf.cond(apply, lambda: _convolve(image, kernel), lambda: image)


def gaussian_blur(image: ArrayLike, sigma: float) -> tf.Tensor:
  """Isotropic Gaussian blur with standard deviation ``sigma`` pixels.

  Kernel: ``exp(-(dx^2 + dy^2) / (2 sigma^2))`` on offsets up to ``ceil(3 sigma)``,
  normalised to sum 1; symmetric border padding. ``sigma = 0`` returns the image.

  Args:
    image: [H, W, C] or [B, H, W, C], uint8 or float.
    sigma: Python float >= 0 (static: it fixes the kernel size).
  """
  image = _image_tensor(image, (3, 4))
  sigma = float(sigma)
  if not sigma >= 0.0:
    raise ValueError(f"sigma must be >= 0, got {sigma}")
  if sigma == 0.0:
    return image
  radius = int(math.ceil(3.0 * sigma))
  offsets = np.arange(-radius, radius + 1, dtype=np.float64)
  g = np.exp(-(offsets**2) / (2.0 * sigma**2))
  kernel = np.outer(g, g)
  return _convolve(image, tf.constant(kernel / kernel.sum(), tf.float32))


# ---------------------------------------------------------------- synthetic occlusion


def default_template_landmarks(image_size: int) -> np.ndarray:
  """The frontal template face, ``jfr.data.face_renderer.frontal_landmarks(image_size)``.

  Returns float32 [68, 2] (x, y) pixels. ValueError if the renderer is unavailable.
  """
  try:
    from jfr.data import face_renderer  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError(
      "template_landmarks was not given and jfr.data.face_renderer "
      f"(the default frontal template) cannot be imported: {e}"
    ) from e
  return np.asarray(face_renderer.frontal_landmarks(int(image_size)), np.float32)


@dataclasses.dataclass(frozen=True)
class _TemplateMesh:
  """Precomputed geometry of a template landmark set (NumPy constants)."""

  points: np.ndarray  # [N, 2] float64
  triangles: np.ndarray  # [T, 3] int32, non-degenerate Delaunay triangles
  inverse: np.ndarray  # [T, 2, 2]: (u, v) = inverse @ (p - A) for triangle (A, B, C)
  hull_normals: np.ndarray  # [K, 2] outward unit normals of the convex hull
  hull_offsets: np.ndarray  # [K]: inside iff normals @ p + offsets <= 0


@functools.lru_cache(maxsize=16)
def _mesh_from_bytes(data: bytes, count: int) -> _TemplateMesh:
  points = np.frombuffer(data, np.float64).reshape(count, 2)
  try:
    delaunay = spatial.Delaunay(points)
    hull = spatial.ConvexHull(points)
  except spatial.QhullError as e:
    raise ValueError(f"template_landmarks do not span a 2D face region: {e}") from e
  tris = delaunay.simplices.astype(np.int32)
  a, b, c = points[tris[:, 0]], points[tris[:, 1]], points[tris[:, 2]]
  edges = np.stack([b - a, c - a], axis=-1)  # [T, 2, 2] columns (B-A, C-A)
  area2 = np.abs(np.linalg.det(edges))
  scale2 = np.ptp(points, axis=0).prod()
  keep = area2 > 1e-9 * scale2  # qhull may emit flat simplices for cocircular points
  tris, edges = tris[keep], edges[keep]
  return _TemplateMesh(
    points=points,
    triangles=tris,
    inverse=np.linalg.inv(edges),
    hull_normals=hull.equations[:, :2],
    hull_offsets=hull.equations[:, 2],
  )


def _template_mesh(template_landmarks: ArrayLike) -> _TemplateMesh:
  """Delaunay mesh and convex hull of a concrete template landmark array [N, 2]."""
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
  return _template_mesh(template_landmarks).triangles.copy()


def barycentric_coordinates(
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
  mesh = _template_mesh(template_landmarks)
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


def _rectangle_sides(seed: tf.Tensor, mode: str, h: int, w: int) -> tuple[tf.Tensor, tf.Tensor]:
  """(width, height) in image pixels for ``mode`` ('static' | 'dynamic')."""
  sx, sy = w / PAPER_TEMPLATE_SIZE, h / PAPER_TEMPLATE_SIZE
  if mode == "static":
    return (
      tf.constant(STATIC_OCCLUSION_SIZE[0] * sx, tf.float32),
      tf.constant(STATIC_OCCLUSION_SIZE[1] * sy, tf.float32),
    )
  lo, hi = DYNAMIC_OCCLUSION_RANGE
  sides = tf.cast(tf.random.stateless_uniform([2], seed, lo, hi + 1, dtype=tf.int32), tf.float32)
  return sides[0] * sx, sides[1] * sy


def _centre_grid(mesh: _TemplateMesh, h: int, w: int) -> np.ndarray:
  """Candidate rectangle centres [G, 2]: a 0.5 px grid over the template hull's bbox."""
  lo = np.clip(mesh.points.min(axis=0), 0.0, [w - 1, h - 1])
  hi = np.clip(mesh.points.max(axis=0), 0.0, [w - 1, h - 1])
  xs = np.arange(lo[0], hi[0] + 1e-9, _CENTRE_GRID_SPACING)
  ys = np.arange(lo[1], hi[1] + 1e-9, _CENTRE_GRID_SPACING)
  gx, gy = np.meshgrid(xs, ys)
  return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _hull_scores(centres, mesh: _TemplateMesh, width, height):
  """[G, K] hull scores of width x height rectangles centred at ``centres`` [G, 2].

  For a convex hull ``n_k . p + c_k <= 0`` the rectangle is inside iff for every k:
  ``n_k . centre + (width/2) |n_kx| + (height/2) |n_ky| + c_k <= 0``. Works on NumPy
  arrays and on tensors.
  """
  normals = mesh.hull_normals.astype(np.float32)
  margin = (width / 2.0) * np.abs(normals[:, 0]) + (height / 2.0) * np.abs(normals[:, 1])
  return centres @ normals.T + mesh.hull_offsets.astype(np.float32) + margin


def sample_occlusion_rectangle(
  seed: ArrayLike,
  image_size: ImageSize,
  mode: str = "static",
  template_landmarks: Optional[ArrayLike] = None,
) -> tf.Tensor:
  """Places an axis-aligned occluder rectangle on the frontal template face.

  Interpretable-FR paper Sec. 3.3: "A 32 x 12 rectangle, randomly placed on the face";
  Table 2 'dynamic': "randomly generating a value from [12, 32] for both the window
  height and width". Readings taken here: 32 x 12 is width x height; the sides are given
  at the paper's 96 x 96 template scale and multiplied by W/96 (width) and H/96
  (height); in 'dynamic' mode width and height are drawn independently, uniformly from
  the integers 12..32 (at 96 px). "On the face" = the whole rectangle inside the convex
  hull of the template landmarks; its centre is uniform over a 0.5 px grid of the
  admissible centres.

  Args:
    seed: int [2] stateless seed.
    image_size: template image size, int or (H, W); the template lives in that frame.
    mode: 'static' or 'dynamic'.
    template_landmarks: concrete [N, 2] template (x, y) pixels; default
      :func:`default_template_landmarks` (square sizes only).

  Returns:
    float32 [4, 2]: vertices (x, y) top-left, top-right, bottom-right, bottom-left.
  """
  if mode not in ("static", "dynamic"):
    raise ValueError(f"mode must be 'static' or 'dynamic', got {mode!r}")
  h, w = _hw(image_size)
  seed = _check_seed(seed)
  if template_landmarks is None:
    if h != w:
      raise ValueError(f"template_landmarks must be given for non-square image_size {(h, w)}")
    template_landmarks = default_template_landmarks(h)
  mesh = _template_mesh(template_landmarks)
  centres = _centre_grid(mesh, h, w)
  biggest = STATIC_OCCLUSION_SIZE if mode == "static" else (DYNAMIC_OCCLUSION_RANGE[1],) * 2
  biggest_scores = _hull_scores(
    centres.astype(np.float32),
    mesh,
    biggest[0] * w / PAPER_TEMPLATE_SIZE,
    biggest[1] * h / PAPER_TEMPLATE_SIZE,
  )
  if not np.any(np.all(biggest_scores <= _HULL_TOLERANCE, axis=-1)):
    raise ValueError(
      f"the template face (landmark hull) is too small to hold a "
      f"{biggest[0]}x{biggest[1]} (at 96 px) occluder in mode {mode!r}"
    )
  seeds = tf.random.experimental.stateless_split(seed, 2)
  width, height = _rectangle_sides(seeds[0], mode, h, w)
  centres_t = tf.constant(centres, tf.float32)
  valid = tf.reduce_all(_hull_scores(centres_t, mesh, width, height) <= _HULL_TOLERANCE, axis=-1)
  logits = tf.where(valid, 0.0, -np.inf)[None]
  index = tf.random.stateless_categorical(logits, 1, seeds[1])[0, 0]
  centre = tf.gather(centres_t, index)
  half = tf.stack([width, height]) / 2.0
  signs = tf.constant([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
  return centre[None, :] + signs * half[None, :]


def warp_rectangle_to_faces(
  rect_vertices: ArrayLike, template_landmarks: ArrayLike, landmarks: ArrayLike
) -> tf.Tensor:
  """Maps template-face points to every face through the landmark mesh (Fig. 3).

  Interpretable-FR paper Sec. 3.3: "Each of the rectangle's four vertices can be
  represented by the barycentric coordinate w.r.t. the triangle enclosing the vertex.
  For each image in a batch, corresponding four vertices of a quadrilateral can be found
  via the same barycentric coordinates." Vertex v with triangle (i, j, k) and
  coordinates (l_i, l_j, l_k) becomes ``l_i L_b[i] + l_j L_b[j] + l_k L_b[k]`` for face
  b's landmarks ``L_b``. Vertices outside the mesh use the nearest triangle
  (:func:`barycentric_coordinates`). Barycentric coordinates are affine invariant, so for
  a face whose landmarks are an affine image of the template the quad is exactly the
  affine image of the rectangle.

  Args:
    rect_vertices: float [V, 2] (usually V = 4) in template pixels.
    template_landmarks: concrete [N, 2].
    landmarks: float [B, N, 2] landmarks of each face (pixels of its own image).

  Returns:
    float32 [B, V, 2] warped vertices (quads for V = 4).
  """
  mesh = _template_mesh(template_landmarks)
  landmarks = tf.cast(tf.convert_to_tensor(landmarks), tf.float32)
  if landmarks.shape.rank != 3 or landmarks.shape[1:].as_list() != [len(mesh.points), 2]:
    raise ValueError(f"landmarks must be [B, {len(mesh.points)}, 2], got {landmarks.shape}")
  index, coords = barycentric_coordinates(rect_vertices, mesh.points)
  corner_ids = tf.gather(tf.constant(mesh.triangles), index)  # [V, 3]
  corners = tf.gather(landmarks, corner_ids, axis=1)  # [B, V, 3, 2]
  return tf.einsum("vk,bvkd->bvd", coords, corners)


def occlusion_masks(quads: ArrayLike, image_size: ImageSize) -> tf.Tensor:
  """Rasterises polygons (quadrilaterals) into boolean masks.

  A pixel is inside when its centre (x = column, y = row) is inside the polygon by the
  even-odd (crossing number) rule, so non-convex quads from strong warps are handled;
  parts outside the image are clipped.

  Args:
    quads: float [B, V, 2] polygon vertices (x, y) in order.
    image_size: int or (H, W).

  Returns:
    bool [B, H, W].
  """
  h, w = _hw(image_size)
  quads = tf.cast(tf.convert_to_tensor(quads), tf.float32)
  if quads.shape.rank != 3 or quads.shape[-1] != 2:
    raise ValueError(f"quads must be [B, V, 2], got shape {quads.shape}")
  x0 = quads[:, :, 0, None, None]
  y0 = quads[:, :, 1, None, None]  # [B, V, 1, 1]
  nxt = tf.roll(quads, shift=-1, axis=1)
  x1, y1 = nxt[:, :, 0, None, None], nxt[:, :, 1, None, None]
  ys = tf.range(h, dtype=tf.float32)[:, None]
  xs = tf.range(w, dtype=tf.float32)[None, :]
  straddles = tf.not_equal(y0 > ys, y1 > ys)  # [B, V, H, 1]
  dy = tf.where(tf.equal(y1, y0), tf.ones_like(y0), y1 - y0)
  x_cross = x0 + (ys - y0) * (x1 - x0) / dy  # [B, V, H, 1]
  crossings = tf.logical_and(straddles, xs < x_cross)  # [B, V, H, W]
  count = tf.reduce_sum(tf.cast(crossings, tf.int32), axis=1)
  return tf.equal(count % 2, 1)


def apply_occlusion(
  images: ArrayLike, masks: ArrayLike, fill: str = "black", seed: Optional[ArrayLike] = None
) -> tf.Tensor:
  """Fills the masked pixels: 'black' (BlaS) or i.i.d. Gaussian noise (GauD).

  Black is intensity 0 (uint8 0, float -1). Noise is drawn per pixel and channel as
  ``N(NOISE_FILL_MEAN, NOISE_FILL_STD^2)`` on the [0, 1] intensity scale, clipped to
  [0, 1] (the paper gives no noise parameters).

  Args:
    images: [B, H, W, C] uint8 or float in [-1, 1].
    masks: bool [B, H, W].
    fill: 'black' or 'noise'.
    seed: int [2] stateless seed; required for 'noise'.

  Returns:
    Occluded images, same shape and dtype.
  """
  images = _image_tensor(images, (4,), "images")
  masks = tf.convert_to_tensor(masks)
  if masks.dtype != tf.bool or masks.shape.rank != 3:
    raise ValueError(f"masks must be bool [B, H, W], got {masks.dtype.name} {masks.shape}")
  if fill == "black":
    filler = tf.zeros_like(_to_unit(images))
  elif fill == "noise":
    if seed is None:
      raise ValueError("seed is required for fill='noise'")
    filler = NOISE_FILL_MEAN + NOISE_FILL_STD * tf.random.stateless_normal(
      tf.shape(images), _check_seed(seed)
    )
  else:
    raise ValueError(f"fill must be 'black' or 'noise', got {fill!r}")
  return tf.where(masks[..., None], _from_unit(filler, images.dtype), images)


def occlude_batch(
  images: ArrayLike,
  landmarks: ArrayLike,
  seed: ArrayLike,
  mode: str = "static",
  fill: str = "black",
  template_landmarks: Optional[ArrayLike] = None,
) -> tuple[tf.Tensor, tf.Tensor]:
  """One semantically equivalent synthetic occluder for a whole batch (Fig. 3).

  Samples one rectangle on the template (:func:`sample_occlusion_rectangle`), warps it
  to every face (:func:`warp_rectangle_to_faces`), rasterises (:func:`occlusion_masks`)
  and fills (:func:`apply_occlusion`). Pure TensorFlow: use it directly in a ``tf.data``
  ``map`` over *batches* (no ``tf.numpy_function`` needed); NumPy inputs work eagerly.
  The template must be in the images' pixel frame (same H, W). Landmarks must be finite
  (an InvalidArgumentError is raised otherwise: real data without landmarks cannot be
  occluded this way).

  Args:
    images: [B, H, W, C] uint8 or float in [-1, 1], static H and W.
    landmarks: float [B, 68, 2] (x, y) pixels of each face.
    seed: int [2] stateless seed (one per batch).
    mode: 'static' (BlaS size) or 'dynamic' (GauD size).
    fill: 'black' or 'noise'.
    template_landmarks: concrete [68, 2]; default :func:`default_template_landmarks`.

  Returns:
    ``(occluded images [B, H, W, C] (input dtype), masks bool [B, H, W])``.
  """
  images = _image_tensor(images, (4,), "images")
  h, w = images.shape[1], images.shape[2]
  if h is None or w is None:
    raise ValueError(f"images must have static height and width, got {images.shape}")
  seed = _check_seed(seed)
  if template_landmarks is None:
    if h != w:
      raise ValueError(f"template_landmarks must be given for non-square images {(h, w)}")
    template_landmarks = default_template_landmarks(h)
  landmarks = tf.cast(tf.convert_to_tensor(landmarks), tf.float32)
  landmarks = tf.debugging.assert_all_finite(
    landmarks, "occlude_batch: landmarks must be finite (missing landmarks cannot be occluded)"
  )
  seeds = tf.random.experimental.stateless_split(seed, 2)
  rect = sample_occlusion_rectangle(seeds[0], (h, w), mode, template_landmarks)
  quads = warp_rectangle_to_faces(rect, template_landmarks, landmarks)
  masks = occlusion_masks(quads, (h, w))
  return apply_occlusion(images, masks, fill, seeds[1]), masks
