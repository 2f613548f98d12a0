"""Image-quality metrics of aggregated faces (issue 17 item 2): pure NumPy functions on
batches of float images, used by the ``fan_quality`` evaluator (:mod:`jfr.eval.fan_quality`).

Conventions shared by every function:

* images are float ``[B, H, W, 3]`` (RGB) in the model's range [-1, 1], so the data range is
  ``L = 2`` (``data_range``); sets of input frames are ``[B, N, H, W, 3]`` with a bool
  ``frame_mask`` ``[B, N]`` of real members (padded members never count);
* ``region`` is a bool ``[B, H, W]`` face region (e.g. the canonical face's segmentation);
  a metric "on the region" only counts pixels (or pixel pairs) inside it;
* computations run in float64; results are float64 ``[B]``;
* luminance is ITU-R BT.601 ``Y = 0.299 R + 0.587 G + 0.114 B`` (:func:`luminance`; linear,
  so Y keeps the range [-1, 1]).

Metrics:

* :func:`psnr`: ``10 log10(L^2 / MSE)``, MSE over the region's pixels and all three RGB
  channels; a perfect copy (MSE = 0) is capped at ``max_db`` (default 100 dB) so that means
  over clips stay finite (``max_db=None`` returns ``inf``).
* :func:`ssim`: Wang et al. 2004 (IEEE TIP 13(4), Eq. 13) on luminance, 11x11 Gaussian window
  with sigma 1.5 (normalised to sum 1), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, population
  (biased) local variances; the map has the image's size (reflect padding of 5 px, NumPy
  ``mode='reflect'``: the edge pixel is not repeated) and is averaged over the region.
* :func:`gradient_energy` / :func:`relative_sharpness`: mean squared forward-difference
  gradient of Y on the region, ``E = mean_{(i,j),(i,j+1) in R} (Y[i,j+1] - Y[i,j])^2 +
  mean_{(i,j),(i+1,j) in R} (Y[i+1,j] - Y[i,j])^2``; relative sharpness divides E of the image
  by the largest E of its set's real frames (1 = as sharp as the sharpest input).
* :func:`checkerboard_fraction` / :func:`checkerboard_score`: the share of the (non-DC)
  spectral energy of Y (the whole image, 2-D DFT ``F[u, v]``, H and W even) on the Nyquist
  row and column — frequencies ``(pi, *)`` and ``(*, pi)``, i.e. ``u = H/2`` or ``v = W/2``,
  the period-2 pattern a factor-2 sub-pixel (pixel-shuffle) upsampling leaves:
  ``c = (sum_v |F[H/2, v]|^2 + sum_u |F[u, W/2]|^2 - |F[H/2, W/2]|^2) / (sum |F|^2 - |F[0,0]|^2)``
  (0 for a constant image); the score divides c of the image by the mean c of its set's real
  frames (1 = as much period-2 energy as the inputs).
* :func:`identity_cosine`: cosine between two feature batches (the evaluator passes the
  extractor's feature of the image and the identity's centre).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
LUMA = np.array([0.299, 0.587, 0.114])
DEFAULT_RANGE = 2.0  # images in [-1, 1]
DEFAULT_MAX_DB = 100.0


# ------------------------------------------------------------------------------ checks


def _images(x: Any, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"{name}: expected float images [B, H, W, 3], got shape {x.shape}")
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"{name}: expected float images in [-1, 1], got dtype {x.dtype}")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name}: NaN or Inf pixels")
  return x.astype(np.float64)


def _region(region: Any, shape: tuple[int, ...], name: str = "region") -> np.ndarray:
  region = np.asarray(region)
  if region.dtype != np.bool_:
    raise ValueError(f"{name}: expected a bool mask [B, H, W], got dtype {region.dtype}")
  if region.shape != shape:
    raise ValueError(f"{name}: expected shape {shape}, got {region.shape}")
  if not region.reshape(shape[0], -1).any(axis=1).all():
    raise ValueError(f"{name}: every image needs at least one pixel in the region")
  return region


def _frames(frames: Any, frame_mask: Any, batch_shape: tuple[int, ...]) -> tuple:
  frames = np.asarray(frames)
  if frames.ndim != 5 or frames.shape[0] != batch_shape[0] or frames.shape[2:] != batch_shape[1:]:
    raise ValueError(
      f"frames: expected [B, N, H, W, 3] with [B, H, W, 3] = {batch_shape}, got {frames.shape}"
    )
  frame_mask = np.asarray(frame_mask)
  if frame_mask.dtype != np.bool_ or frame_mask.shape != frames.shape[:2]:
    raise ValueError(
      f"frame_mask: expected bool {frames.shape[:2]}, got {frame_mask.dtype} {frame_mask.shape}"
    )
  if not frame_mask.any(axis=1).all():
    raise ValueError("frame_mask: every set needs at least one real frame")
  b, n = frames.shape[:2]
  flat = frames.reshape((b * n,) + frames.shape[2:])
  _images(flat[frame_mask.reshape(-1)], "frames")  # real members only are checked and used
  return flat, frame_mask


def _range(data_range: float) -> float:
  if not np.isfinite(data_range) or data_range <= 0:
    raise ValueError(f"data_range: expected a positive number, got {data_range}")
  return float(data_range)


# ----------------------------------------------------------------------------- metrics


def luminance(images: np.ndarray) -> np.ndarray:
  """BT.601 luminance ``[..., H, W]`` of RGB images ``[..., H, W, 3]``."""
  return np.asarray(images, np.float64) @ LUMA


def psnr(
  images: Any,
  references: Any,
  region: Any,
  *,
  data_range: float = DEFAULT_RANGE,
  max_db: float | None = DEFAULT_MAX_DB,
) -> np.ndarray:
  """Peak signal-to-noise ratio on the region, ``[B]`` in dB.

  ``PSNR = 10 log10(L^2 / MSE)``, ``MSE = sum_{p in R, c} (x_pc - y_pc)^2 / (3 |R|)``.

  Args:
    images: ``[B, H, W, 3]`` float.
    references: ``[B, H, W, 3]`` float (e.g. the canonical faces).
    region: ``[B, H, W]`` bool.
    data_range: L, the range of the pixel values (2 for [-1, 1]).
    max_db: the value of a perfect copy (MSE = 0) and the cap of every value; None: ``inf``.
  """
  x = _images(images, "images")
  y = _images(references, "references")
  if y.shape != x.shape:
    raise ValueError(f"references: expected shape {x.shape} (images), got {y.shape}")
  r = _region(region, x.shape[:3])
  big = _range(data_range)
  sq = np.sum((x - y) ** 2, axis=-1)
  mse = np.sum(sq * r, axis=(1, 2)) / (3.0 * r.sum(axis=(1, 2)))
  with np.errstate(divide="ignore"):
    out = 10.0 * np.log10(big**2 / mse)
  if max_db is not None:
    out = np.minimum(out, float(max_db))
  return out


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """The 1-D Gaussian ``[size]`` (sum 1) whose outer product is SSIM's window."""
  t = np.arange(size) - (size - 1) / 2.0
  g = np.exp(-(t**2) / (2.0 * sigma**2))
  return g / g.sum()


def _filter(y: np.ndarray, g: np.ndarray) -> np.ndarray:
  """Separable correlation of ``y`` ``[B, H, W]`` with ``g`` (reflect padding, same size)."""
  r = (len(g) - 1) // 2
  if min(y.shape[1:]) <= r:
    raise ValueError(f"images: SSIM needs H, W > {r}, got {y.shape[1:]}")
  p = np.pad(y, ((0, 0), (r, r), (r, r)), mode="reflect")
  h, w = y.shape[1:]
  rows = sum(g[k] * p[:, k : k + h, :] for k in range(len(g)))
  return sum(g[k] * rows[:, :, k : k + w] for k in range(len(g)))


def ssim_map(images: Any, references: Any, *, data_range: float = DEFAULT_RANGE) -> np.ndarray:
  """The SSIM map ``[B, H, W]`` of luminance (module docstring; Wang et al. 2004, Eq. 13):
  ``((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``."""
  x = luminance(_images(images, "images"))
  y = luminance(_images(references, "references"))
  if y.shape != x.shape:
    raise ValueError(f"references: expected images' shape, got {y.shape} vs {x.shape}")
  big = _range(data_range)
  c1, c2 = (SSIM_K1 * big) ** 2, (SSIM_K2 * big) ** 2
  g = gaussian_window()
  mx, my = _filter(x, g), _filter(y, g)
  sxx = _filter(x * x, g) - mx**2
  syy = _filter(y * y, g) - my**2
  sxy = _filter(x * y, g) - mx * my
  return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))


def ssim(
  images: Any, references: Any, region: Any, *, data_range: float = DEFAULT_RANGE
) -> np.ndarray:
  """Mean of :func:`ssim_map` over the region, ``[B]`` (1 for a perfect copy)."""
  m = ssim_map(images, references, data_range=data_range)
  r = _region(region, m.shape)
  return np.sum(m * r, axis=(1, 2)) / r.sum(axis=(1, 2))


def gradient_energy(images: Any, region: Any) -> np.ndarray:
  """Mean squared forward-difference gradient of luminance on the region, ``[B]`` (module
  docstring; a direction without any pair of neighbours inside the region contributes 0)."""
  y = luminance(_images(images, "images"))
  r = _region(region, y.shape)
  out = np.zeros(len(y))
  for d, pairs in (
    (np.diff(y, axis=2), r[:, :, 1:] & r[:, :, :-1]),
    (np.diff(y, axis=1), r[:, 1:, :] & r[:, :-1, :]),
  ):
    count = pairs.sum(axis=(1, 2))
    out += np.where(count > 0, np.sum(d**2 * pairs, axis=(1, 2)) / np.maximum(count, 1), 0.0)
  return out


def _per_frame(fn, frames: Any, frame_mask: Any, region: Any, shape) -> np.ndarray:
  """``fn(flat frames, flat region) -> [B * N]`` reshaped to ``[B, N]`` (NaN where padded)."""
  flat, mask = _frames(frames, frame_mask, shape)
  b, n = mask.shape
  real = mask.reshape(-1)
  regions = None if region is None else np.repeat(region, n, axis=0)[real]
  out = np.full(b * n, np.nan)
  out[real] = fn(flat[real], regions)
  return out.reshape(b, n)


def frame_gradient_energy(frames: Any, frame_mask: Any, region: Any) -> np.ndarray:
  """:func:`gradient_energy` of every frame, ``[B, N]`` (NaN for padded members); ``frames``
  ``[B, N, H, W, 3]``, ``frame_mask`` ``[B, N]``, ``region`` ``[B, H, W]`` (one per set)."""
  frames = np.asarray(frames)
  if frames.ndim != 5:
    raise ValueError(f"frames: expected [B, N, H, W, 3], got shape {frames.shape}")
  r = _region(region, (frames.shape[0],) + frames.shape[2:4])
  return _per_frame(gradient_energy, frames, frame_mask, r, (len(frames),) + frames.shape[2:])


def sharpest_frame(frames: Any, frame_mask: Any, region: Any) -> np.ndarray:
  """Index ``[B]`` of the real frame with the largest :func:`gradient_energy` on the region
  (the first one on ties)."""
  return np.nanargmax(frame_gradient_energy(frames, frame_mask, region), axis=1)


def relative_sharpness(images: Any, frames: Any, frame_mask: Any, region: Any) -> np.ndarray:
  """``E(image) / max_n E(frame_n)`` over real frames, ``[B]`` (:func:`gradient_energy`).

  Raises:
    ValueError: a set whose real frames all have zero gradient energy (flat frames).
  """
  x = _images(images, "images")
  energy = gradient_energy(x, region)
  best = np.nanmax(frame_gradient_energy(frames, frame_mask, region), axis=1)
  if np.any(best <= 0):
    raise ValueError("frames: a set's real frames have zero gradient energy on the region")
  return energy / best


def checkerboard_fraction(images: Any) -> np.ndarray:
  """Share of the non-DC spectral energy of luminance at the sub-pixel period, ``[B]``
  (module docstring; H and W must be even)."""
  y = luminance(_images(images, "images"))
  h, w = y.shape[1:]
  if h % 2 or w % 2:
    raise ValueError(f"images: the Nyquist row/column needs even H and W, got {h}x{w}")
  power = np.abs(np.fft.fft2(y)) ** 2
  nyquist = power[:, h // 2, :].sum(-1) + power[:, :, w // 2].sum(-1) - power[:, h // 2, w // 2]
  ac = power.sum(axis=(1, 2)) - power[:, 0, 0]
  # An exactly constant image has no AC energy (rounding leaves ~1e-30): share 0.
  scale = np.maximum(power[:, 0, 0], 1.0) * 1e-20
  return np.where(ac > scale, nyquist / np.where(ac > scale, ac, 1.0), 0.0)


def checkerboard_score(images: Any, frames: Any, frame_mask: Any) -> np.ndarray:
  """``c(image) / mean_n c(frame_n)`` over real frames, ``[B]``
  (:func:`checkerboard_fraction`); ``inf`` where the inputs have no period-2 energy and the
  image has some, 1 where both have none."""
  x = _images(images, "images")
  c = checkerboard_fraction(x)
  per_frame = _per_frame(lambda f, _: checkerboard_fraction(f), frames, frame_mask, None, x.shape)
  ref = np.nanmean(per_frame, axis=1)
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(ref > 0, c / np.where(ref > 0, ref, 1.0), np.where(c > 0, np.inf, 1.0))


def identity_cosine(features: Any, centers: Any) -> np.ndarray:
  """``<f, c> / (|f| |c|)`` row by row, ``[B]``; ``features`` and ``centers`` ``[B, D]``.

  Raises:
    ValueError: shapes differ, or a zero-norm row.
  """
  f = np.asarray(features, np.float64)
  c = np.asarray(centers, np.float64)
  if f.ndim != 2:
    raise ValueError(f"features: expected [B, D], got shape {f.shape}")
  if c.shape != f.shape:
    raise ValueError(f"centers: expected shape {f.shape} (features), got {c.shape}")
  nf, nc = np.linalg.norm(f, axis=1), np.linalg.norm(c, axis=1)
  if np.any(nf == 0) or np.any(nc == 0):
    raise ValueError("features/centers: a row has zero norm, the cosine is undefined")
  return np.sum(f * c, axis=1) / (nf * nc)
