"""Left-right flip of images with their iBUG-68 landmarks and segmentation maps
(FAN paper, Hörmann et al., ICIP 2021, Sec. 4.1: "left-right flipping")."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf

from jfr.data.augment.tensors import ArrayLike, _check_seed

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
