"""Face regions of rendered or parsed faces, and how much of a map's mass falls inside them.

Regions come from an amodal part segmentation (``uint8 [B, H, W]`` ids into the data set's
``part_names``, ``background`` first) and the iBUG-68 landmarks (``[B, 68, 2]`` (x, y)
pixels). :data:`ATTRIBUTE_REGIONS` says where each CelebA-style attribute lives (the attribute
paper's Fig. 4 reading: an attribute's activation map should fall on its face part):

Narrow_Eyes, Eyeglasses -> eyes; Big_Nose, Pointy_Nose -> nose; Big_Lips, Smiling,
Mouth_Slightly_Open -> mouth; Bald -> scalp (hair and skin above the brow line);
Double_Chin, 5_o_Clock_Shadow -> lower face (skin below the lowest mouth landmark: chin,
jaw, neck); Chubby, High_Cheekbones, Oval_Face, Pale_Skin -> skin; Male, Young -> face
(every non-background pixel); hair colours -> hair; Bushy_Eyebrows -> brows. Blurry has no
region.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ATTRIBUTE_REGIONS: dict[str, str | None] = {
  "Narrow_Eyes": "eyes",
  "Big_Nose": "nose",
  "Pointy_Nose": "nose",
  "Chubby": "skin",
  "Double_Chin": "lower_face",
  "High_Cheekbones": "skin",
  "Male": "face",
  "Bald": "scalp",
  "Big_Lips": "mouth",
  "Oval_Face": "skin",
  "Eyeglasses": "eyes",
  "Smiling": "mouth",
  "Mouth_Slightly_Open": "mouth",
  "Young": "face",
  "Gray_Hair": "hair",
  "Black_Hair": "hair",
  "Blond_Hair": "hair",
  "Brown_Hair": "hair",
  "Bushy_Eyebrows": "brows",
  "Pale_Skin": "skin",
  "5_o_Clock_Shadow": "lower_face",
  "Blurry": None,
}
BROWS = slice(17, 27)  # iBUG-68 landmark ranges
MOUTH = slice(48, 68)


def region_masks(
  segmentation: np.ndarray, landmarks: np.ndarray, region: str, part_names: Sequence[str]
) -> np.ndarray:
  """Bool ``[B, H, W]`` face region of each image.

  Args:
    segmentation: uint8 ``[B, H, W]`` part ids into ``part_names`` (amodal parsing).
    landmarks: ``[B, 68, 2]`` (x, y) pixels, iBUG-68 order.
    region: a part name, or ``'face'`` (non-background), ``'scalp'`` (hair and skin
      above the highest brow landmark) or ``'lower_face'`` (skin below the lowest
      mouth landmark).
    part_names: the data set's part names (``background`` first).
  """
  part = {name: i for i, name in enumerate(part_names)}
  rows = np.arange(segmentation.shape[1])[None, :, None]
  if region in part:
    return segmentation == part[region]
  if region == "face":
    return segmentation != part["background"]
  if region == "scalp":
    top = landmarks[:, BROWS, 1].min(axis=1)[:, None, None]
    return np.isin(segmentation, (part["hair"], part["skin"])) & (rows < top)
  if region == "lower_face":
    bottom = landmarks[:, MOUTH, 1].max(axis=1)[:, None, None]
    return (segmentation == part["skin"]) & (rows > bottom)
  raise ValueError(
    f"region: unknown {region!r}; expected a part of {tuple(part_names)} "
    "or 'face', 'scalp', 'lower_face'"
  )


def map_mass_shares(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Share of each map's mass inside its region, and the region's area share.

  Args:
    maps: ``[B, H, W, T]`` non-negative activation maps at image resolution.
    masks: bool ``[B, H, W, T]``, the region of map t in image b.

  Returns:
    ``(share [B, T], area [B, T])``: ``Σ M·R / Σ M`` (NaN where a map is all zero) and
    ``mean R``.
  """
  if maps.shape != masks.shape or maps.ndim != 4:
    raise ValueError(
      f"maps/masks: expected equal shapes [B, H, W, T], got {maps.shape} and {masks.shape}"
    )
  total = maps.sum(axis=(1, 2))
  inside = (maps * masks).sum(axis=(1, 2))
  with np.errstate(invalid="ignore", divide="ignore"):
    share = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
  return share, masks.mean(axis=(1, 2))
