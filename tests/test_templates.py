"""Tests for jfr.templates against per-template NumPy loops.

Ferrari, Berretti, Del Bimbo, "Discovering Identity Specific Activation Patterns
in Deep Descriptors for Template Based Face Recognition", Section III (steps 1-4,
Eq. 1, min-mean matching) and Tables I-II (random masks, mask matching). The
references below loop over templates and pairs and are written from the paper,
not from the JAX code.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import absltest, parameterized

from jfr import templates

K = 12


def _random_templates(seed, sizes, k=K, nonneg=False):
  """Shuffled descriptors `[sum(sizes), k]` and ids with the given sizes."""
  rng = np.random.default_rng(seed)
  ids = np.repeat(np.arange(len(sizes)), sizes)
  rng.shuffle(ids)
  desc = rng.normal(size=(len(ids), k)).astype(np.float32)
  if nonneg:  # post-ReLU-like descriptors, as in the paper
    desc = np.abs(desc)
  return desc, ids


# ----------------------------- NumPy references ----------------------------- #
def _np_means(desc, ids, num):
  return np.stack([desc[ids == t].astype(np.float64).mean(axis=0) for t in range(num)])


def _np_masks(desc, ids, num, m):
  masks = np.zeros((num, desc.shape[1]), bool)
  for t in range(num):
    mean = desc[ids == t].astype(np.float64).mean(axis=0)
    top = np.argsort(-mean, kind="stable")[:m]  # ties: lowest index first
    masks[t, top] = True
  return masks


def _np_mask_descriptors(desc, ids, masks):
  out = np.zeros_like(desc)
  for i in range(len(desc)):
    for j in range(desc.shape[1]):
      out[i, j] = desc[i, j] if masks[ids[i], j] else 0.0
  return out


def _np_cosine_distance(x, y):
  nx, ny = np.linalg.norm(x), np.linalg.norm(y)
  if nx == 0 or ny == 0:
    return 1.0
  return 1.0 - float(np.dot(x, y)) / (nx * ny)


def _np_min_mean(desc_a, ids_a, num_a, desc_b, ids_b, num_b):
  out = np.zeros((num_a, num_b))
  for a in range(num_a):
    for b in range(num_b):
      dists = [
        _np_cosine_distance(x.astype(np.float64), y.astype(np.float64))
        for x in desc_a[ids_a == a]
        for y in desc_b[ids_b == b]
      ]
      out[a, b] = min(dists) + np.mean(dists)
  return out


def _np_mask_distance(masks_a, masks_b):
  return np.array(
    [[_np_cosine_distance(a.astype(float), b.astype(float)) for b in masks_b] for a in masks_a]
  )


# ---------------------------------- tests ---------------------------------- #
class TemplateMasksTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_template_means_match_numpy(self):
    desc, ids = _random_templates(0, [3, 1, 5, 2])
    got = self.variant(templates.template_means, static_argnums=2)(desc, ids, 4)
    chex.assert_shape(got, (4, K))
    np.testing.assert_allclose(got, _np_means(desc, ids, 4), rtol=1e-5, atol=1e-6)

  def test_template_means_are_unnormalised(self):
    # A low-norm image weighs less: the mean is not the mean of unit vectors.
    desc = np.array([[10.0, 0.0], [0.0, 0.1]], np.float32)
    got = templates.template_means(desc, np.array([0, 0]), 1)
    np.testing.assert_allclose(got, [[5.0, 0.05]], rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(1, 4, K)
  def test_activation_masks_match_numpy(self, m):
    desc, ids = _random_templates(1, [4, 1, 6, 2, 3], nonneg=True)
    got = self.variant(templates.activation_masks, static_argnums=(2, 3))(desc, ids, 5, m)
    chex.assert_shape(got, (5, K))
    assert got.dtype == jnp.bool_
    np.testing.assert_array_equal(got, _np_masks(desc, ids, 5, m))
    np.testing.assert_array_equal(np.sum(got, axis=1), m)

  @chex.variants(with_jit=True, without_jit=True)
  def test_activation_masks_break_ties_by_lowest_index(self):
    desc = np.array(
      [
        [1.0, 3.0, 3.0, 3.0, 0.0, 3.0],  # template 0
        [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],  # template 1
        [0.0, 5.0, 1.0, 5.0, 1.0, 5.0],  # template 2, two rows:
        [0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
      ],  # mean [0, 3, 1, 3, 1, 3]
      np.float32,
    )
    ids = np.array([0, 1, 2, 2])
    fn = self.variant(templates.activation_masks, static_argnums=(2, 3))
    got2 = np.asarray(fn(desc, ids, 3, 2))
    np.testing.assert_array_equal(np.flatnonzero(got2[0]), [1, 2])
    np.testing.assert_array_equal(np.flatnonzero(got2[1]), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(got2[2]), [1, 3])
    got4 = np.asarray(fn(desc, ids, 3, 4))
    np.testing.assert_array_equal(np.flatnonzero(got4[0]), [1, 2, 3, 5])
    np.testing.assert_array_equal(np.flatnonzero(got4[1]), [0, 1, 2, 3])
    np.testing.assert_array_equal(np.flatnonzero(got4[2]), [1, 2, 3, 5])

  @chex.variants(with_jit=True, without_jit=True)
  def test_mask_descriptors_match_numpy(self):
    desc, ids = _random_templates(2, [2, 1, 4])
    masks = _np_masks(desc, ids, 3, 5)
    got = self.variant(templates.mask_descriptors)(desc, ids, masks)
    chex.assert_shape(got, desc.shape)
    np.testing.assert_array_equal(got, _np_mask_descriptors(desc, ids, masks))

  def test_mask_descriptors_on_a_subset_of_templates(self):
    desc, ids = _random_templates(3, [2, 3])
    masks = np.zeros((4, K), bool)
    masks[:, :2] = True
    got = templates.mask_descriptors(desc, ids, masks)  # templates 2, 3 unused
    np.testing.assert_array_equal(got, _np_mask_descriptors(desc, ids, masks))

  def test_m_equal_k_keeps_everything(self):
    desc, ids = _random_templates(4, [3, 1, 2])
    masks = templates.activation_masks(desc, ids, 3, K)
    assert bool(jnp.all(masks))
    np.testing.assert_array_equal(templates.mask_descriptors(desc, ids, masks), desc)

  @chex.variants(with_jit=True, without_jit=True)
  def test_random_masks(self):
    fn = self.variant(templates.random_masks, static_argnums=(1, 2, 3))
    masks = np.asarray(fn(jax.random.key(0), 2000, 16, 4))
    chex.assert_shape(masks, (2000, 16))
    np.testing.assert_array_equal(masks.sum(axis=1), 4)
    np.testing.assert_array_equal(masks, fn(jax.random.key(0), 2000, 16, 4))
    assert not np.array_equal(masks, fn(jax.random.key(1), 2000, 16, 4))
    # Each bin is chosen with probability m / k = 1/4: 500 +- 19.4 (1 sigma).
    counts = masks.sum(axis=0)
    assert np.all(np.abs(counts - 500) < 100), counts
    # 2,000 uniform draws from C(16, 4) = 1,820 subsets: ~1,213 distinct rows.
    assert len({row.tobytes() for row in masks}) > 1100

  @chex.variants(with_jit=True, without_jit=True)
  def test_mask_distance_matches_numpy(self):
    rng = np.random.default_rng(5)
    masks_a = rng.random((4, K)) < 0.4
    masks_b = rng.random((6, K)) < 0.4
    masks_a[0] = False  # an empty mask: distance 1 to everything
    masks_b[1] = masks_a[2]  # identical masks: distance 0
    got = self.variant(templates.mask_distance)(masks_a, masks_b)
    chex.assert_shape(got, (4, 6))
    expected = _np_mask_distance(masks_a, masks_b)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got[0], 1.0)
    np.testing.assert_allclose(got[2, 1], 0.0, atol=1e-6)

  def test_mask_distance_of_m_bin_masks_is_one_minus_overlap_over_m(self):
    masks = np.zeros((2, 10), bool)
    masks[0, [0, 1, 2, 3]] = True
    masks[1, [2, 3, 4, 5]] = True
    np.testing.assert_allclose(templates.mask_distance(masks, masks)[0, 1], 0.5)

  def test_similarity_from_distance(self):
    np.testing.assert_array_equal(
      templates.similarity_from_distance(np.array([[0.5, 2.0]])), [[-0.5, -2.0]]
    )


class MinMeanDistanceTest(parameterized.TestCase):
  @parameterized.named_parameters(
    # (sizes of a, sizes of b, block size)
    ("equal_sizes_blocks_divide", [3] * 6, [2] * 8, 6),
    ("equal_sizes_blocks_do_not_divide", [3] * 5, [2] * 7, 7),
    ("varied_sizes_block_not_dividing", [1, 5, 2, 3, 1, 4], [4, 1, 1, 2, 6], 3),
    ("templates_straddle_many_blocks", [1, 7, 2], [5, 1, 3], 2),
    ("mixed_equal_and_varied", [4, 4, 4, 4], [1, 6, 2, 1], 5),
    ("template_larger_than_block", [9, 9], [1, 1, 1], 4),
    ("one_image_templates", [1] * 5, [1] * 4, 3),
    ("single_block", [2, 3, 1], [3, 1], 1024),
  )
  def test_matches_numpy(self, sizes_a, sizes_b, block_size):
    desc_a, ids_a = _random_templates(10, sizes_a)
    desc_b, ids_b = _random_templates(11, sizes_b)
    got = templates.min_mean_distance(
      desc_a, ids_a, len(sizes_a), desc_b, ids_b, len(sizes_b), block_size=block_size
    )
    chex.assert_shape(got, (len(sizes_a), len(sizes_b)))
    expected = _np_min_mean(desc_a, ids_a, len(sizes_a), desc_b, ids_b, len(sizes_b))
    np.testing.assert_allclose(got, expected, atol=2e-6)

  def test_block_size_does_not_change_result(self):
    desc_a, ids_a = _random_templates(12, [3, 1, 4, 2, 2])
    desc_b, ids_b = _random_templates(13, [2, 5, 1])
    results = [
      templates.min_mean_distance(desc_a, ids_a, 5, desc_b, ids_b, 3, block_size=bs)
      for bs in (1, 3, 5, 100)
    ]
    for r in results[1:]:
      np.testing.assert_allclose(r, results[0], atol=1e-6)

  def test_zero_descriptors_have_distance_one(self):
    desc_a, ids_a = _random_templates(14, [2, 2])
    desc_b, ids_b = _random_templates(15, [1, 3])
    desc_a[ids_a == 0] = 0.0  # template 0 of a is all zero
    desc_b[np.flatnonzero(ids_b == 1)[0]] = 0.0  # one image of template 1 of b
    got = templates.min_mean_distance(desc_a, ids_a, 2, desc_b, ids_b, 2, block_size=3)
    np.testing.assert_allclose(got[0], 2.0, atol=1e-6)
    expected = _np_min_mean(desc_a, ids_a, 2, desc_b, ids_b, 2)
    np.testing.assert_allclose(got, expected, atol=2e-6)

  def test_identical_single_images_have_distance_zero(self):
    desc, ids = _random_templates(16, [1, 1, 1])
    got = templates.min_mean_distance(desc, ids, 3, desc * 3.0, ids, 3)
    np.testing.assert_allclose(np.diag(got), 0.0, atol=1e-6)

  def test_tiny_descriptors_are_not_treated_as_zero(self):
    desc, ids = _random_templates(17, [2, 1])
    got = templates.min_mean_distance(desc * 1e-30, ids, 2, desc, ids, 2)
    np.testing.assert_allclose(got, _np_min_mean(desc, ids, 2, desc, ids, 2), atol=2e-6)

  def test_masked_pipeline_with_m_equal_k_is_unchanged(self):
    desc_a, ids_a = _random_templates(18, [3, 2, 1], nonneg=True)
    desc_b, ids_b = _random_templates(19, [1, 4], nonneg=True)
    mask_a = templates.mask_descriptors(
      desc_a, ids_a, templates.activation_masks(desc_a, ids_a, 3, K)
    )
    mask_b = templates.mask_descriptors(
      desc_b, ids_b, templates.activation_masks(desc_b, ids_b, 2, K)
    )
    np.testing.assert_allclose(
      templates.min_mean_distance(mask_a, ids_a, 3, mask_b, ids_b, 2),
      templates.min_mean_distance(desc_a, ids_a, 3, desc_b, ids_b, 2),
      atol=1e-6,
    )

  def test_memory_is_bounded_by_block_size(self):
    # 4,096 x 4,096 images: an all-pairs similarity matrix needs 64 MiB.
    desc, ids = _random_templates(20, [8] * 512, k=4)
    args = templates._min_mean_args(desc, ids, 512, desc, ids, 512, block_size=256)
    compiled = templates._min_mean_kernel.lower(*args[0], **args[1]).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < 8 * 2**20, temp

  def test_cannot_be_traced(self):
    desc, ids = _random_templates(21, [2, 1])
    fn = jax.jit(functools.partial(templates.min_mean_distance, num_a=2, num_b=2))
    with pytest.raises(ValueError, match="desc_a"):
      fn(desc, ids, desc_b=desc, ids_b=ids)


# -------------------------------- bad input -------------------------------- #
_DESC, _IDS = _random_templates(30, [2, 1, 3])
_MASKS = np.ones((3, K), bool)


def _with(array, index, value):
  array = array.copy()
  array[index] = value
  return array


_BAD_INPUTS = {
  # activation_masks / template_means
  "m_zero": (lambda: templates.activation_masks(_DESC, _IDS, 3, 0), "m must"),
  "m_above_k": (lambda: templates.activation_masks(_DESC, _IDS, 3, K + 1), "m must"),
  "m_not_int": (lambda: templates.activation_masks(_DESC, _IDS, 3, 2.5), "m must"),
  "id_without_descriptors": (lambda: templates.template_means(_DESC, _IDS, 4), "template_ids"),
  "id_negative": (lambda: templates.template_means(_DESC, _with(_IDS, 0, -1), 3), "template_ids"),
  "id_too_large": (
    lambda: templates.activation_masks(_DESC, _with(_IDS, 0, 3), 3, 2),
    "template_ids",
  ),
  "ids_float": (lambda: templates.template_means(_DESC, _IDS.astype(float), 3), "template_ids"),
  "ids_length": (lambda: templates.template_means(_DESC, _IDS[:-1], 3), "template_ids"),
  "ids_rank": (lambda: templates.template_means(_DESC, _IDS[None], 3), "template_ids"),
  "nan_descriptor": (
    lambda: templates.template_means(_with(_DESC, (0, 0), np.nan), _IDS, 3),
    "descriptors",
  ),
  "inf_descriptor": (
    lambda: templates.activation_masks(_with(_DESC, (1, 2), np.inf), _IDS, 3, 2),
    "descriptors",
  ),
  "descriptors_rank": (lambda: templates.template_means(_DESC[0], _IDS, 3), "descriptors"),
  "descriptors_int": (
    lambda: templates.template_means(_DESC.astype(np.int32), _IDS, 3),
    "descriptors",
  ),
  "num_templates_zero": (lambda: templates.template_means(_DESC, _IDS, 0), "num_templates"),
  # mask_descriptors
  "masks_not_bool": (
    lambda: templates.mask_descriptors(_DESC, _IDS, _MASKS.astype(np.float32)),
    "masks",
  ),
  "masks_wrong_k": (lambda: templates.mask_descriptors(_DESC, _IDS, _MASKS[:, 1:]), "masks"),
  "mask_ids_out_of_range": (
    lambda: templates.mask_descriptors(_DESC, _IDS, _MASKS[:2]),
    "template_ids",
  ),
  "mask_nan_descriptor": (
    lambda: templates.mask_descriptors(_with(_DESC, (2, 0), np.nan), _IDS, _MASKS),
    "descriptors",
  ),
  "mask_ids_length": (lambda: templates.mask_descriptors(_DESC, _IDS[1:], _MASKS), "template_ids"),
  # random_masks
  "random_m_above_k": (lambda: templates.random_masks(jax.random.key(0), 3, 4, 5), "m must"),
  "random_m_zero": (lambda: templates.random_masks(jax.random.key(0), 3, 4, 0), "m must"),
  "random_num_templates": (
    lambda: templates.random_masks(jax.random.key(0), 0, 4, 2),
    "num_templates",
  ),
  "random_k": (lambda: templates.random_masks(jax.random.key(0), 3, True, 1), "k must"),
  # mask_distance
  "mask_distance_k": (lambda: templates.mask_distance(_MASKS, _MASKS[:, 1:]), "masks_b"),
  "mask_distance_dtype": (
    lambda: templates.mask_distance(_MASKS.astype(np.int32), _MASKS),
    "masks_a",
  ),
  "mask_distance_rank": (lambda: templates.mask_distance(_MASKS, _MASKS[0]), "masks_b"),
  # min_mean_distance
  "min_mean_desc_a_nan": (
    lambda: templates.min_mean_distance(_with(_DESC, (0, 1), np.nan), _IDS, 3, _DESC, _IDS, 3),
    "desc_a",
  ),
  "min_mean_ids_a_missing": (
    lambda: templates.min_mean_distance(_DESC, _IDS, 4, _DESC, _IDS, 3),
    "ids_a",
  ),
  "min_mean_num_a": (lambda: templates.min_mean_distance(_DESC, _IDS, -1, _DESC, _IDS, 3), "num_a"),
  "min_mean_desc_b_inf": (
    lambda: templates.min_mean_distance(_DESC, _IDS, 3, _with(_DESC, 0, np.inf), _IDS, 3),
    "desc_b",
  ),
  "min_mean_ids_b_range": (
    lambda: templates.min_mean_distance(_DESC, _IDS, 3, _DESC, _with(_IDS, 1, 7), 3),
    "ids_b",
  ),
  "min_mean_ids_b_length": (
    lambda: templates.min_mean_distance(_DESC, _IDS, 3, _DESC, _IDS[:-1], 3),
    "ids_b",
  ),
  "min_mean_num_b": (
    lambda: templates.min_mean_distance(_DESC, _IDS, 3, _DESC, _IDS, 1.5),
    "num_b",
  ),
  "min_mean_k": (
    lambda: templates.min_mean_distance(_DESC, _IDS, 3, _DESC[:, 1:], _IDS, 3),
    "desc_b",
  ),
  "min_mean_block_size": (
    lambda: templates.min_mean_distance(_DESC, _IDS, 3, _DESC, _IDS, 3, block_size=0),
    "block_size",
  ),
}


@pytest.mark.parametrize("name", sorted(_BAD_INPUTS))
def test_bad_input_raises_value_error_naming_argument(name):
  call, argument = _BAD_INPUTS[name]
  with pytest.raises(ValueError, match=argument):
    call()


if __name__ == "__main__":
  absltest.main()
