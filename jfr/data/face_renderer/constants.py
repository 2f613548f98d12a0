"""Names and fixed constants of the face world (attribute and part names, image scale).

The public names (:data:`ATTRIBUTE_NAMES`, :data:`PART_NAMES`, ...) are re-exported by
:mod:`jfr.data.face_renderer`; the private ones are shared by its modules.
"""

from __future__ import annotations

import numpy as np

IDENTITY_ATTRIBUTES: tuple[str, ...] = (
  "Narrow_Eyes",
  "Big_Nose",
  "Pointy_Nose",
  "Chubby",
  "Double_Chin",
  "High_Cheekbones",
  "Male",
  "Bald",
  "Big_Lips",
  "Oval_Face",
)
ATTRIBUTE_NAMES: tuple[str, ...] = IDENTITY_ATTRIBUTES + (
  # per-image attributes
  "Eyeglasses",
  "Smiling",
  "Mouth_Slightly_Open",
  # further identity attributes
  "Young",
  "Gray_Hair",
  "Black_Hair",
  "Blond_Hair",
  "Brown_Hair",
  "Bushy_Eyebrows",
  "Pale_Skin",
  "5_o_Clock_Shadow",
  # per-image
  "Blurry",
)
PART_NAMES: tuple[str, ...] = ("background", "skin", "hair", "brows", "eyes", "nose", "mouth")
OCCLUDER_KINDS: tuple[str, ...] = ("none", "eyeglasses", "scarf")
NUM_LANDMARKS = 68
NUM_MARKS = 6  # moles per identity (some may be switched off: darkness 0)

_BG, _SKIN, _HAIR, _BROWS, _EYES, _NOSE, _MOUTH = range(7)
_PX_PER_UNIT = 0.40  # pixels per face unit, as a fraction of the image size (scale 1)
_CENTER_Y = 0.12  # face y that maps to the image centre
_REF_SIZE = 112.0  # blur lengths are given in pixels of a 112-px image
_BG_RES = 32  # background clutter resolution before upsampling
_CHUNK_PIXELS = 2**18  # pixels rendered together (bounds memory, keeps caches warm)
_DELTA = 1e-3  # finite-difference step for loft profile derivatives

_F32 = np.float32
_ROW = np.dtype((np.void, 32))  # one row of the 8-channel float32 shading buffer
