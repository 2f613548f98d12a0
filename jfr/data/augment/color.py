"""Random brightness, contrast and saturation (FAN paper, Hörmann et al., ICIP 2021,
Sec. 4.1: "random contrast, brightness and saturation")."""

from __future__ import annotations

import tensorflow as tf

from jfr.data.augment.tensors import ArrayLike, _check_seed, _from_unit, _image_tensor, _to_unit


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
