"""The warped synthetic occlusion of the interpretable-FR paper (Yin et al., ICCV 2019,
Sec. 3.3 and Fig. 3; BlaS / GauD of Table 2): one rectangle on the frontal template face,
mapped to every face of a batch through barycentric coordinates of the landmark mesh."""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from jfr.data import face_mesh
from jfr.data.augment.tensors import (
  ArrayLike,
  ImageSize,
  _check_seed,
  _from_unit,
  _hw,
  _image_tensor,
  _to_unit,
)

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


def _centre_grid(mesh: face_mesh.TemplateMesh, h: int, w: int) -> np.ndarray:
  """Candidate rectangle centres [G, 2]: a 0.5 px grid over the template hull's bbox."""
  lo = np.clip(mesh.points.min(axis=0), 0.0, [w - 1, h - 1])
  hi = np.clip(mesh.points.max(axis=0), 0.0, [w - 1, h - 1])
  xs = np.arange(lo[0], hi[0] + 1e-9, _CENTRE_GRID_SPACING)
  ys = np.arange(lo[1], hi[1] + 1e-9, _CENTRE_GRID_SPACING)
  gx, gy = np.meshgrid(xs, ys)
  return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _hull_scores(centres, mesh: face_mesh.TemplateMesh, width, height):
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
  mesh = face_mesh.template_mesh(template_landmarks)
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
  b's landmarks ``L_b`` (:func:`jfr.data.face_mesh.warp_points_tf`). Vertices outside the
  mesh use the nearest triangle (:func:`jfr.data.face_mesh.locate_points_tf`). Barycentric
  coordinates are affine invariant, so for a face whose landmarks are an affine image of
  the template the quad is exactly the affine image of the rectangle.

  Args:
    rect_vertices: float [V, 2] (usually V = 4) in template pixels.
    template_landmarks: concrete [N, 2].
    landmarks: float [B, N, 2] landmarks of each face (pixels of its own image).

  Returns:
    float32 [B, V, 2] warped vertices (quads for V = 4).
  """
  return face_mesh.warp_points_tf(rect_vertices, template_landmarks, landmarks)


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
