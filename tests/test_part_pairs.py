"""Tests for jfr.data.part_pairs: pairs differ inside the part only; id pairs distinct."""

import numpy as np
import pytest

from jfr.data import part_pairs


@pytest.mark.parametrize("part", sorted(part_pairs.PART_FIELDS))
def test_part_pairs_differ_inside_the_part_only(part):
  out = part_pairs.render_part_pairs(
    0, np.arange(10, 14), np.arange(20, 24), part, 64, seed=3, max_yaw=20.0, region_dilation=2
  )
  assert out["images_a"].shape == (4, 64, 64, 3) and out["region"].dtype == bool
  diff = np.abs(out["images_a"].astype(float) - out["images_b"].astype(float)).sum(-1)
  assert (diff.sum(axis=(1, 2)) > 0).all()  # the part does change
  share = (diff * out["region"]).sum(axis=(1, 2)) / diff.sum(axis=(1, 2))
  area = out["region"].mean(axis=(1, 2))
  assert share.mean() > 0.75 and share.min() > 0.5, share
  assert (area < 0.06).all() and (share > 10 * area).all()


def test_part_pairs_bad_inputs():
  ids = np.arange(3)
  render = part_pairs.render_part_pairs
  with pytest.raises(ValueError, match="part"):
    render(0, ids, ids + 5, "ears", 32, seed=0, max_yaw=10.0, region_dilation=1)
  with pytest.raises(ValueError, match="donor_ids"):
    render(0, ids, ids, "nose", 32, seed=0, max_yaw=10.0, region_dilation=1)
  with pytest.raises(ValueError, match="donor_ids"):
    render(0, ids, ids[:2] + 5, "nose", 32, seed=0, max_yaw=10.0, region_dilation=1)
  with pytest.raises(ValueError, match="region_dilation"):
    render(0, ids, ids + 5, "nose", 32, seed=0, max_yaw=10.0, region_dilation=-1)


def test_part_pair_ids_are_distinct_test_identities():
  ids, donors = part_pairs.part_pair_ids(np.array([3, 7, 9]), 5, np.random.default_rng(0))
  assert ids.shape == donors.shape == (5,)
  assert (ids != donors).all() and set(ids) | set(donors) <= {3, 7, 9}
  with pytest.raises(ValueError, match="test_ids"):
    part_pairs.part_pair_ids(np.array([3]), 2, np.random.default_rng(0))
