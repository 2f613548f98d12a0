"""Tests of jfr.data.subsets."""

import numpy as np
import pytest
import tensorflow as tf

from jfr.data import subsets


class _FakeBuilder:
  info = "the info"

  def as_dataset(self, **kwargs):
    assert kwargs == {"split": "train"}
    return tf.data.Dataset.from_tensor_slices({"label": np.array([0, 3, 1, 5, 2, 0])})


def test_identity_subset_keeps_the_first_identities_in_order():
  subset = subsets.IdentitySubset(_FakeBuilder(), 3)
  assert subset.info == "the info" and subset.num_identities == 3
  labels = [int(ex["label"]) for ex in subset.as_dataset(split="train").as_numpy_iterator()]
  assert labels == [0, 1, 2, 0]


def test_identity_subset_rejects_fewer_than_two_identities():
  with pytest.raises(ValueError, match="num_identities"):
    subsets.IdentitySubset(_FakeBuilder(), 1)
