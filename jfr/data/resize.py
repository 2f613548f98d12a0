"""Resizing faces and their landmarks to a model's input side.

:func:`resize_faces` resizes square images (bilinear, antialiased: ``tf.image.resize``, the
resize policy of :mod:`jfr.eval.embedding`) and :func:`scale_landmarks` moves (x, y) pixel
landmarks of the source image into the resized one, keeping the pixel-centre convention of
:mod:`jfr.data.augment` (pixel centres at integers, the image spanning ``[-0.5, S - 0.5]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def resize_faces(images: Any, size: int) -> Any:
  """Square images ``[..., S, S, 3]`` (tensor or array, any float range) resized to
  ``size`` x ``size`` (bilinear, antialiased); returned unchanged (same object) when
  ``S == size``.

  Raises:
    ValueError: ``images`` are not ``[..., S, S, C]`` or ``size`` is not positive.
  """
  if size <= 0:
    raise ValueError(f"size: expected a positive side, got {size}")
  shape = tuple(images.shape)
  if len(shape) < 3 or shape[-3] != shape[-2]:
    raise ValueError(f"images: expected square images [..., S, S, C], got shape {shape}")
  if shape[-2] == size:
    return images
  return tf.image.resize(images, (size, size), method="bilinear", antialias=True)


def scale_landmarks(landmarks: np.ndarray, source: int, size: int) -> np.ndarray:
  """(x, y) pixels ``[..., 2]`` of a ``source`` px image in the ``size`` px image:
  ``(p + 0.5) · size / source − 0.5`` (pixel centres kept); float32."""
  if source <= 0 or size <= 0:
    raise ValueError(f"source, size: expected positive sides, got {source} and {size}")
  landmarks = np.asarray(landmarks, np.float32)
  if landmarks.shape[-1:] != (2,):
    raise ValueError(f"landmarks: expected [..., 2] (x, y), got shape {landmarks.shape}")
  return (landmarks + 0.5) * (size / source) - 0.5
