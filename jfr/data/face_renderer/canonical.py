"""Canonical faces: each identity's ground-truth face, for evaluation only.

The canonical face of an identity is what the renderer draws for it with every nuisance
removed: frontal (yaw 0), neutral expression (no smile, mouth closed, eyes open), even
light (white, from straight ahead at the mean elevation of
:func:`~jfr.data.face_renderer.sample_nuisances`, 22.5 deg; strength 0.58 and ambient 0.39
make the mean face-region brightness that of the stills: a frontal light at the stills'
mean strength 0.65 / ambient 0.435 lights faces 12 % brighter than their random
directions do; 800 stills relit so: 1.01 times as bright; canonical faces of 100 other
identities: 0.97 times their stills), no occluder, no defocus or motion blur, no sensor
noise, and a flat mid-grey background (0.5, i.e. uint8 128) instead of clutter. What
belongs to the identity stays: head shape, skin, eyes, brows, nose, lips, hair (style,
colour, greyness), beard shadow, wrinkles, freckles and moles. Eyeglasses and scarves
are per-image nuisances and are never drawn; the clothing is a fixed dark grey.

Framing (scale, translation, roll: the 2-D similarity applied after the projection) is
not part of the face: by default the canonical face is centred at scale 1 with no roll
(the framing of :func:`~jfr.data.face_renderer.frontal_landmarks`); for a video clip,
``framing=clip_framing(clip_nuisances)`` draws it at the clip's mean scale, shift and
roll, so that comparing an aggregated face of the clip with it does not penalise the
clip's framing. No random stream is read: the canonical face is a deterministic function
of the identity latents, the image size and the framing (the background is flat, the
noise level is 0), so rendering it changes no other image.

Canonical faces are an evaluation reference (quality of aggregated / reconstructed
faces); they are never a training target.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jfr.data.face_renderer.compositing import _pixel_grid, render
from jfr.data.face_renderer.constants import _F32, PART_NAMES
from jfr.data.face_renderer.geometry import _face_params
from jfr.data.face_renderer.latents import _LATENT_FIELDS
from jfr.data.face_renderer.nuisances import neutral_nuisances
from jfr.data.face_renderer.primitives import _check_batch

CANONICAL_BACKGROUND = 0.5  # flat grey of the canonical face's background (uint8 128)
CANONICAL_LIGHT = {  # frontal light, as bright on the face as the stills on average
  "light_azimuth": 0.0,
  "light_elevation": 22.5,
  "light_strength": 0.58,
  "ambient": 0.39,
}
FACE_REGION_PARTS: tuple[str, ...] = ("skin", "brows", "eyes", "nose", "mouth")
FOREHEAD_TOP = -0.65  # face y where the face region starts (eyes at ~-0.15, chin at ~1)
_CLOTHING = 0.3
_FRAMING_FIELDS = ("scale", "shift", "roll")


def image_framing(nuisances: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The framing of each image: ``scale`` [n], ``shift`` [n, 2] (fraction of the image
  size), ``roll`` [n] (degrees), copied as float32 from its nuisances."""
  _check_framing("nuisances", nuisances)
  return {k: np.asarray(nuisances[k], _F32).copy() for k in _FRAMING_FIELDS}


def clip_framing(nuisances: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The mean framing of a clip of T frames: ``scale`` [1], ``shift`` [1, 2], ``roll``
  [1], the arithmetic means over the frames of its nuisances (rolls stay within +-16
  degrees, so the plain mean is the circular one)."""
  _check_framing("nuisances", nuisances)
  return {
    k: np.asarray(nuisances[k], np.float64).mean(0, keepdims=True).astype(_F32)
    for k in _FRAMING_FIELDS
  }


def canonical_nuisances(
  n: int, framing: Mapping[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
  """Nuisances [n] of canonical faces (see the module docstring) at ``framing`` (default:
  scale 1, centred, no roll). Deterministic; reads no random stream of the data set."""
  if not isinstance(n, (int, np.integer)) or n < 1:
    raise ValueError(f"n must be a positive int, got {n!r}")
  f = neutral_nuisances(int(n))
  for k, v in CANONICAL_LIGHT.items():
    f[k][:] = v
  f["eye_open"][:] = 1.0
  f["clothing_color"][:] = _CLOTHING
  f["background_seed"][:] = 0  # not read: the background is flat
  f["noise_seed"][:] = 0
  if framing is not None:
    m = _check_framing("framing", framing)
    if m != n:
      raise ValueError(f"framing must have leading dimension n={n}, got {m}")
    for k in _FRAMING_FIELDS:
      f[k][:] = np.asarray(framing[k], _F32)
  return f


def canonical_face(
  latents: Mapping[str, np.ndarray],
  image_size: int,
  *,
  framing: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
  """Each identity's canonical (ground-truth) face; for evaluation only.

  Args:
    latents: identity latents with leading dimension n (:func:`identity_latents`).
    image_size: output height = width S (16..512).
    framing: optional ``scale`` [n], ``shift`` [n, 2], ``roll`` [n] (as in the nuisances;
      :func:`clip_framing` of a clip, :func:`image_framing` of stills); default scale 1,
      centred, no roll.

  Returns:
    dict: ``image`` uint8 [n, S, S, 3] (flat background 128); ``mask`` bool [n, S, S],
    the face region: pixels whose part is one of :data:`FACE_REGION_PARTS` (skin, brows,
    eyes, nose, mouth; not hair or background) between the top of the forehead and the
    chin (:data:`FOREHEAD_TOP` <= face y <= chin height: no neck, and no scalp of a bald
    head; ears count as face); ``segmentation`` uint8 [n, S, S] (PART_NAMES ids);
    ``landmarks`` float32 [n, 68, 2] (pixels, as :func:`render`).
  """
  n = _check_batch("latents", latents, _LATENT_FIELDS)
  if not isinstance(image_size, (int, np.integer)) or not 16 <= image_size <= 512:
    raise ValueError(f"image_size must be an int in [16, 512], got {image_size!r}")
  nui = canonical_nuisances(n, framing)
  out = render(latents, nui, int(image_size), seed_or_rng=0, background=CANONICAL_BACKGROUND)
  chin = _face_params({k: np.asarray(v) for k, v in latents.items()}, nui)["y_chin"]
  _, v = _pixel_grid(nui, int(image_size))
  parts = np.isin(out["segmentation"], [PART_NAMES.index(p) for p in FACE_REGION_PARTS])
  mask = parts & (v >= FOREHEAD_TOP) & (v <= chin.reshape(n, 1, 1))
  return {
    "image": out["image"],
    "mask": mask,
    "segmentation": out["segmentation"],
    "landmarks": out["landmarks"],
  }


def _check_framing(name: str, framing: Mapping[str, np.ndarray]) -> int:
  """Leading dimension of a framing (or nuisances) dict; ValueError naming ``name``."""
  if not isinstance(framing, Mapping) or not all(k in framing for k in _FRAMING_FIELDS):
    raise ValueError(f"{name} must be a mapping with keys {_FRAMING_FIELDS}")
  scale, shift, roll = (np.asarray(framing[k]) for k in _FRAMING_FIELDS)
  if scale.ndim != 1 or len(scale) < 1:
    raise ValueError(f"{name}['scale'] must have shape [n], got {scale.shape}")
  n = len(scale)
  if shift.shape != (n, 2) or roll.shape != (n,):
    raise ValueError(
      f"{name}: expected shift [{n}, 2] and roll [{n}], got {shift.shape} and {roll.shape}"
    )
  if not (np.isfinite(scale).all() and np.isfinite(shift).all() and np.isfinite(roll).all()):
    raise ValueError(f"{name}: scale, shift and roll must be finite")
  if (scale <= 0).any():
    raise ValueError(f"{name}['scale'] must be positive, got {scale}")
  return n
