"""Argument checks and dtype / range conversions shared by the augmentation ops
(stateless seeds, image tensors, uint8 <-> [0, 1] <-> [-1, 1], image sizes)."""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import tensorflow as tf

ArrayLike = Union[tf.Tensor, np.ndarray]
ImageSize = Union[int, Sequence[int]]


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
