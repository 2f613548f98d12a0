"""Tests for jfr.eval.face_regions (attribute regions and map mass shares)."""

import numpy as np
import pytest

from jfr.data import face_renderer
from jfr.eval import face_regions


def test_region_masks_and_mass_shares_match_loops():
  parts = face_renderer.PART_NAMES
  rng = np.random.default_rng(0)
  seg = rng.integers(0, len(parts), (2, 8, 8)).astype(np.uint8)
  landmarks = np.zeros((2, 68, 2), np.float32)
  landmarks[:, 17:27, 1] = [[3.0], [5.0]]  # brow line
  landmarks[:, 48:68, 1] = [[4.0], [6.0]]  # lowest lip point
  hair, skin = parts.index("hair"), parts.index("skin")
  scalp = face_regions.region_masks(seg, landmarks, "scalp", parts)
  lower = face_regions.region_masks(seg, landmarks, "lower_face", parts)
  face = face_regions.region_masks(seg, landmarks, "face", parts)
  for b, (brow, lip) in enumerate([(3, 4), (5, 6)]):
    for y in range(8):
      for x in range(8):
        assert scalp[b, y, x] == (seg[b, y, x] in (hair, skin) and y < brow)
        assert lower[b, y, x] == (seg[b, y, x] == skin and y > lip)
        assert face[b, y, x] == (seg[b, y, x] != parts.index("background"))
  np.testing.assert_array_equal(
    face_regions.region_masks(seg, landmarks, "nose", parts), seg == parts.index("nose")
  )
  with pytest.raises(ValueError, match="region"):
    face_regions.region_masks(seg, landmarks, "elbow", parts)
  maps = rng.random((2, 8, 8, 2)).astype(np.float32)
  maps[1, ..., 1] = 0.0
  masks = np.stack([scalp, lower], -1)
  share, area = face_regions.map_mass_shares(maps, masks)
  for b in range(2):
    for t in range(2):
      total = sum(maps[b, y, x, t] for y in range(8) for x in range(8))
      inside = sum(maps[b, y, x, t] for y in range(8) for x in range(8) if masks[b, y, x, t])
      if total == 0:
        assert np.isnan(share[b, t])
      else:
        np.testing.assert_allclose(share[b, t], inside / total, rtol=1e-5)
      np.testing.assert_allclose(area[b, t], masks[b, ..., t].sum() / 64)
  with pytest.raises(ValueError, match="maps/masks"):
    face_regions.map_mass_shares(maps, masks[..., :1])


def test_attribute_regions_cover_the_data_set_attributes():
  assert set(face_regions.ATTRIBUTE_REGIONS) == set(face_renderer.ATTRIBUTE_NAMES)
  assert face_regions.ATTRIBUTE_REGIONS["Big_Nose"] == "nose"
  assert face_regions.ATTRIBUTE_REGIONS["Narrow_Eyes"] == "eyes"
  assert face_regions.ATTRIBUTE_REGIONS["Big_Lips"] == "mouth"
  parts = set(face_renderer.PART_NAMES) | {"face", "scalp", "lower_face"}
  assert {r for r in face_regions.ATTRIBUTE_REGIONS.values() if r} <= parts
