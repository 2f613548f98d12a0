"""Linear motion blur (FAN paper Sec. 4.1 augmentation and the Table 4 robustness
kernels) and isotropic Gaussian blur, as per-channel 2-D filters with symmetric padding."""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import tensorflow as tf

from jfr.data.augment.tensors import ArrayLike, _check_seed, _image_tensor


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
