"""Face alignment: five-point similarity transforms (Umeyama) and box crops, and the warp.

Coordinates are (x, y) pixels with pixel centres at integers (the convention of
``synthetic_faces`` landmarks and of OpenCV / insightface), so pixel ``(i, j)`` covers
``[j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]``. A transform is a ``[2, 3]`` matrix ``M``
mapping a source point ``p`` to the aligned image: ``q = M[:, :2] @ p + M[:, 2]``.

* :data:`ARCFACE_TEMPLATE_112`: insightface's ArcFace 112x112 reference points (left eye,
  right eye, nose tip, left mouth corner, right mouth corner; "left" = image left), as in
  ``insightface/utils/face_align.py`` (``arcface_dst``).
* :func:`arcface_template`: the template for other sizes, following insightface's
  ``estimate_norm``: a multiple of 112 scales by ``size / 112``; a multiple of 128 (and
  not of 112) scales by ``size / 128`` and shifts x by ``8 * size / 128`` (the 128 px
  crop keeps the 112 px face); any other size scales by ``size / 112``.
* :func:`umeyama`: the least-squares similarity transform (Umeyama 1991, Eq. 40-42):
  ``min_{s, R, t} sum_k ||dst_k - (s R src_k + t)||^2`` with ``R`` a rotation
  (``det R = +1``): ``Sigma = dst_c^T src_c / K = U D V^T``, ``S = diag(1, sign(det
  Sigma))``, ``R = U S V^T``, ``s = tr(D S) / var(src)``, ``t = mu_dst - s R mu_src``.
  Works on any ``[..., K, 2]`` batch.
* :func:`five_point_transforms`: landmarks ``[N, 5, 2]`` -> ``[N, 2, 3]`` to the template.
* :func:`box_transforms`: face boxes ``(x, y, w, h)`` ``[N, 4]`` -> ``[N, 2, 3]``: a square
  crop centred on the box, side ``max(w, h) * (1 + margin)``, scaled to the output size
  (no stretching); the crop may extend past the image (filled with ``fill``).
* :func:`warp`: applies a transform to a uint8 image with PIL (bilinear interpolation by
  default; where the transform shrinks by more than 2x the image is first reduced by an
  integer factor with a box filter, so that downscaling does not alias). Outside the
  source image the output is ``fill`` (default black).

Umeyama, "Least-squares estimation of transformation parameters between two point
patterns", IEEE TPAMI 13(4), 1991.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image

ARCFACE_TEMPLATE_112 = np.array(
  [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
  ],
  np.float64,
)
FIVE_POINT_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
ALIGN_MODES = ("five_point", "box", "none")
_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def arcface_template(image_size: int) -> np.ndarray:
  """insightface's ArcFace five reference points for a square ``image_size`` crop.

  Args:
    image_size: output side in pixels (> 0).

  Returns:
    float64 [5, 2] (x, y) pixels, pixel centres at integers.
  """
  if int(image_size) != image_size or image_size <= 0:
    raise ValueError(f"image_size: expected a positive int, got {image_size!r}")
  if image_size % 112 != 0 and image_size % 128 == 0:
    ratio = image_size / 128.0
    template = ARCFACE_TEMPLATE_112 * ratio
    template[:, 0] += 8.0 * ratio
    return template
  return ARCFACE_TEMPLATE_112 * (image_size / 112.0)


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
  """Least-squares similarity transform ``dst ~ s R src + t`` (Umeyama 1991, Eq. 40-42).

  Args:
    src: float [..., K, 2] source points (K >= 2, not all equal).
    dst: float [..., K, 2] or [K, 2] target points (broadcast against ``src``).
    estimate_scale: False fixes ``s = 1`` (a rigid transform).

  Returns:
    float64 [..., 2, 3] matrices ``[s R | t]``.
  """
  src = np.asarray(src, np.float64)
  dst = np.asarray(dst, np.float64)
  if src.ndim < 2 or src.shape[-1] != 2 or src.shape[-2] < 2:
    raise ValueError(f"src: expected [..., K, 2] with K >= 2, got shape {src.shape}")
  if dst.shape[-2:] != src.shape[-2:]:
    raise ValueError(f"dst: expected [..., {src.shape[-2]}, 2] like src, got {dst.shape}")
  if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
    raise ValueError("src/dst: points must be finite (NaN landmarks cannot be aligned)")
  dst = np.broadcast_to(dst, src.shape)
  mu_src = src.mean(-2)
  mu_dst = dst.mean(-2)
  src_c = src - mu_src[..., None, :]
  dst_c = dst - mu_dst[..., None, :]
  k = src.shape[-2]
  var_src = np.sum(src_c**2, axis=(-2, -1)) / k
  if np.any(var_src <= 1e-12):
    raise ValueError("src: the points of a set coincide; no similarity transform is defined")
  sigma = np.swapaxes(dst_c, -1, -2) @ src_c / k  # [..., 2, 2]
  u, d, vt = np.linalg.svd(sigma)
  sign = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
  s_diag = np.stack([np.ones_like(sign), sign], axis=-1)  # [..., 2]
  rotation = (u * s_diag[..., None, :]) @ vt
  if estimate_scale:
    scale = np.sum(d * s_diag, axis=-1) / var_src
  else:
    scale = np.ones(src.shape[:-2])
  linear = scale[..., None, None] * rotation
  translation = mu_dst - np.einsum("...ij,...j->...i", linear, mu_src)
  return np.concatenate([linear, translation[..., None]], axis=-1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """Applies ``[..., 2, 3]`` transforms to ``[..., K, 2]`` points: ``q = A p + t``."""
  points = np.asarray(points, np.float64)
  matrix = np.asarray(matrix, np.float64)
  if matrix.shape[-2:] != (2, 3):
    raise ValueError(f"matrix: expected [..., 2, 3], got {matrix.shape}")
  return np.einsum("...ij,...kj->...ki", matrix[..., :2], points) + matrix[..., None, :, 2]


def five_point_transforms(landmarks: np.ndarray, image_size: int) -> np.ndarray:
  """Similarity transforms taking five landmarks to the ArcFace template.

  Args:
    landmarks: float [N, 5, 2] or [5, 2], (x, y) in the order of
      :data:`FIVE_POINT_NAMES` (CelebA's, VGGFace2's and insightface's order).
    image_size: side of the aligned square output.

  Returns:
    float64 [N, 2, 3] (or [2, 3] for one face).
  """
  landmarks = np.asarray(landmarks, np.float64)
  if landmarks.shape[-2:] != (5, 2) or landmarks.ndim not in (2, 3):
    raise ValueError(f"landmarks: expected [N, 5, 2] or [5, 2], got {landmarks.shape}")
  return umeyama(landmarks, arcface_template(image_size))


def box_transforms(boxes: np.ndarray, image_size: int, margin: float = 0.0) -> np.ndarray:
  """Square crops around face boxes, scaled to ``image_size`` (aspect kept).

  Args:
    boxes: float [N, 4] or [4] ``(x, y, width, height)``, (x, y) the top-left corner
      (pixel edges: the box covers ``[x, x + w] x [y, y + h]`` in edge coordinates).
    image_size: side of the output.
    margin: extra fraction of the box side on all sides together (0.2 -> 1.2x side).

  Returns:
    float64 [N, 2, 3] (or [2, 3]): ``q = scale * p + t`` with ``scale = image_size /
    side``, ``side = max(w, h) * (1 + margin)``, the box centre mapped to the output centre.
  """
  boxes = np.asarray(boxes, np.float64)
  if boxes.shape[-1] != 4 or boxes.ndim not in (1, 2):
    raise ValueError(f"boxes: expected [N, 4] or [4] (x, y, w, h), got {boxes.shape}")
  if margin < 0:
    raise ValueError(f"margin: expected >= 0, got {margin}")
  if np.any(boxes[..., 2:] <= 0) or not np.all(np.isfinite(boxes)):
    raise ValueError("boxes: width and height must be positive and finite")
  # Edge coordinates -> centre-at-integer coordinates: subtract 0.5.
  cx = boxes[..., 0] + boxes[..., 2] / 2 - 0.5
  cy = boxes[..., 1] + boxes[..., 3] / 2 - 0.5
  side = np.maximum(boxes[..., 2], boxes[..., 3]) * (1.0 + margin)
  scale = image_size / side
  centre = (image_size - 1) / 2.0
  zero = np.zeros_like(scale)
  row0 = np.stack([scale, zero, centre - scale * cx], -1)
  row1 = np.stack([zero, scale, centre - scale * cy], -1)
  return np.stack([row0, row1], -2)


def resize_transform(height: int, width: int, image_size: int) -> np.ndarray:
  """The [2, 3] transform of stretching an ``height x width`` image to a square."""
  sx, sy = image_size / width, image_size / height
  # Edges map to edges: q + 0.5 = s (p + 0.5).
  return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], np.float64)


def _invert(matrix: np.ndarray) -> np.ndarray:
  a = matrix[:, :2]
  inv = np.linalg.inv(a)
  return np.concatenate([inv, -inv @ matrix[:, 2:]], axis=1)


def warp(
  image: np.ndarray,
  matrix: np.ndarray,
  image_size: int | Sequence[int],
  *,
  interpolation: str = "bilinear",
  fill: int | Sequence[int] = 0,
) -> np.ndarray:
  """Warps a uint8 image with a [2, 3] transform (source -> output coordinates).

  Args:
    image: uint8 [H, W, 3] (or [H, W]).
    matrix: float [2, 3], e.g. from :func:`five_point_transforms` for one face.
    image_size: output side, or (H, W).
    interpolation: 'bilinear' (default), 'bicubic' or 'nearest'. An axis-aligned
      transform whose footprint lies inside the source (centre crops, resizes, box
      crops inside the image) is PIL's ``resize`` of that box (filter support scaled
      with the shrink factor: antialiased). Otherwise PIL's affine ``transform``; when
      it shrinks by more than 2x, the source is first reduced by ``floor(1 / scale)``
      with a box filter (PIL ``Image.reduce``) and the transform adjusted (no aliasing).
    fill: value outside the source image (int or per channel).

  Returns:
    uint8 [S, S, 3] (or [H_out, W_out, 3]).
  """
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim not in (2, 3):
    raise ValueError(f"image: expected uint8 [H, W, 3] or [H, W], got {image.dtype} {image.shape}")
  matrix = np.asarray(matrix, np.float64)
  if matrix.shape != (2, 3):
    raise ValueError(f"matrix: expected [2, 3], got {matrix.shape}")
  if interpolation not in _RESAMPLE:
    raise ValueError(f"interpolation: expected one of {tuple(_RESAMPLE)}, got {interpolation!r}")
  out_h, out_w = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
  pil = Image.fromarray(image)
  if matrix[0, 1] == 0 and matrix[1, 0] == 0 and matrix[0, 0] > 0 and matrix[1, 1] > 0:
    # Axis-aligned (crops and resizes): PIL's resize of the source box, which filters
    # over the whole footprint (antialiased) and is several times faster than transform.
    # Output edge e_q maps to source edge e_p = (e_q - 0.5 - t) / s + 0.5.
    x0 = (-0.5 - matrix[0, 2]) / matrix[0, 0] + 0.5
    x1 = (out_w - 0.5 - matrix[0, 2]) / matrix[0, 0] + 0.5
    y0 = (-0.5 - matrix[1, 2]) / matrix[1, 1] + 0.5
    y1 = (out_h - 0.5 - matrix[1, 2]) / matrix[1, 1] + 0.5
    eps = 1e-6
    if x0 >= -eps and y0 >= -eps and x1 <= pil.width + eps and y1 <= pil.height + eps:
      box = (max(x0, 0.0), max(y0, 0.0), min(x1, pil.width), min(y1, pil.height))
      return np.asarray(pil.resize((int(out_w), int(out_h)), _RESAMPLE[interpolation], box=box))
  scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
  factor = int(1.0 / scale) if scale > 0 else 1
  if factor >= 2 and interpolation != "nearest":
    factor = min(factor, pil.width, pil.height)
    pil = pil.reduce(factor)
    # A reduced pixel covers ``factor`` source pixels: p = factor * (r + 0.5) - 0.5.
    up = np.array([[factor, 0, 0.5 * factor - 0.5], [0, factor, 0.5 * factor - 0.5]])
    matrix = matrix[:, :2] @ up[:, :2], matrix[:, :2] @ up[:, 2] + matrix[:, 2]
    matrix = np.concatenate([matrix[0], matrix[1][:, None]], axis=1)
  # PIL samples output pixel centres at (x + 0.5) and puts source centres at i + 0.5.
  inv = _invert(matrix)
  shift = inv[:, :2] @ np.array([-0.5, -0.5]) + inv[:, 2] + 0.5
  coefficients = (inv[0, 0], inv[0, 1], shift[0], inv[1, 0], inv[1, 1], shift[1])
  if not np.isscalar(fill):
    fill = tuple(int(v) for v in fill)
  out = pil.transform(
    (int(out_w), int(out_h)),
    Image.AFFINE,
    coefficients,
    resample=_RESAMPLE[interpolation],
    fillcolor=fill,
  )
  return np.asarray(out)


def align_faces(
  images: Sequence[np.ndarray], matrices: np.ndarray, image_size: int, **kwargs
) -> np.ndarray:
  """Warps each of N images with its transform: -> uint8 [N, S, S, 3] (see :func:`warp`)."""
  matrices = np.asarray(matrices)
  if matrices.shape != (len(images), 2, 3):
    raise ValueError(f"matrices: expected [{len(images)}, 2, 3], got {matrices.shape}")
  return np.stack([warp(im, m, image_size, **kwargs) for im, m in zip(images, matrices)])
