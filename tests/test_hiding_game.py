"""Tests for jfr.explain.hiding_game on a toy verifier that only looks at one region."""

import json

import numpy as np
import pytest
from scipy import ndimage

from jfr.explain import hiding_game as hg

P, S = 24, 16
REGION = (slice(6, 10), slice(6, 10))  # the only pixels the toy verifier compares


def _pairs(seed=0):
  rng = np.random.default_rng(seed)
  images_a = rng.uniform(-1, 1, size=(P, S, S, 3)).astype(np.float32)
  labels = np.arange(P) % 2 == 0
  others = rng.uniform(-1, 1, size=(P, S, S, 3)).astype(np.float32)
  noisy = images_a + 0.05 * rng.normal(size=images_a.shape).astype(np.float32)
  images_b = np.where(labels[:, None, None, None], noisy, others)
  return images_a, images_b, labels


def _verify(images_a, images_b):
  """Score = minus the mean squared difference inside REGION."""
  diff = np.asarray(images_a)[:, REGION[0], REGION[1]] - images_b[:, REGION[0], REGION[1]]
  return -np.mean(diff**2, axis=(1, 2, 3))


def _region_saliency(seed=1):
  rng = np.random.default_rng(seed)
  saliency = 0.01 * rng.uniform(size=(P, S, S))
  saliency[:, REGION[0], REGION[1]] += 1.0
  return saliency


def test_p0_equals_unmodified_accuracy_and_curve_is_sane():
  images_a, images_b, labels = _pairs()
  good = hg.hiding_game(_verify, images_a, images_b, labels, _region_saliency())
  scores = _verify(images_a, images_b)
  assert good["accuracy"][0] == np.mean((scores >= good["threshold"]) == labels) == 1.0
  assert good["threshold_source"] == "best_on_unmodified"
  accuracy = np.asarray(good["accuracy"])
  # The 16 region pixels (1/16 of the image) are hidden last: untouched up to p = 0.9.
  np.testing.assert_array_equal(accuracy[:10], 1.0)
  assert accuracy[-1] < 1.0
  assert np.all(np.diff(accuracy) <= 0)
  inverted = hg.hiding_game(_verify, images_a, images_b, labels, -_region_saliency())
  assert inverted["accuracy"][0] == 1.0
  assert inverted["auc"] < good["auc"] - 0.2
  expected_auc = np.trapezoid(accuracy, np.linspace(0, 1, 11))
  assert good["auc"] == pytest.approx(expected_auc)
  json.dumps(good)


def test_given_threshold_is_used():
  images_a, images_b, labels = _pairs(2)
  out = hg.hiding_game(
    _verify,
    images_a,
    images_b,
    labels,
    _region_saliency(),
    fractions=[0.0, 0.5, 1.0],
    threshold=1.0,
  )  # rejects everything
  assert out["threshold_source"] == "given" and out["threshold"] == 1.0
  np.testing.assert_allclose(out["accuracy"], 0.5)
  assert out["fractions"] == [0.0, 0.5, 1.0]


def test_best_threshold_hand_case():
  assert hg.best_threshold([0.1, 0.4, 0.35, 0.8], [0, 1, 0, 1]) == pytest.approx(0.375)
  assert hg.best_threshold([0.5, 0.5], [1, 1]) == pytest.approx(-0.5)  # accept all
  assert hg.best_threshold([0.5, 0.6], [0, 0]) == pytest.approx(1.6)  # reject all


def test_hide_least_salient_hand_case():
  images = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
  blurred = -np.ones_like(images)
  saliency = np.array([[[3.0, 1.0], [2.0, 4.0]]])
  ranks = hg._saliency_ranks(saliency)
  np.testing.assert_array_equal(ranks, [[[2, 0], [1, 3]]])
  hidden = hg.hide_least_salient(images, blurred, ranks, 0.5)
  expected = images.copy()
  expected[0, 0, 1] = expected[0, 1, 0] = -1
  np.testing.assert_array_equal(hidden, expected)
  np.testing.assert_array_equal(hg.hide_least_salient(images, blurred, ranks, 0.0), images)


def test_hidden_pixels_come_from_gaussian_blur():
  images_a, images_b, labels = _pairs(3)
  seen = []

  def recording_verify(a, b):
    seen.append(np.array(a))
    return _verify(a, b)

  hg.hiding_game(
    recording_verify,
    images_a,
    images_b,
    labels,
    _region_saliency(),
    fractions=[0.0, 1.0],
    blur_sigma=2.0,
    threshold=-0.1,
  )
  blurred = ndimage.gaussian_filter(images_a, sigma=(0, 2.0, 2.0, 0), mode="reflect")
  np.testing.assert_array_equal(seen[0], images_a)
  np.testing.assert_allclose(seen[1], blurred, atol=1e-6)


def test_hiding_game_bad_inputs():
  images_a, images_b, labels = _pairs(4)
  sal = _region_saliency()
  cases = [
    (dict(images_b=images_b[:3]), "images_b"),
    (dict(labels=labels[:3]), "labels"),
    (dict(labels=np.full(P, 2)), "labels"),
    (dict(saliency_a=sal[:, :4]), "saliency_a"),
    (dict(fractions=[0.5, 0.2]), "fractions"),
    (dict(fractions=[0.0]), "fractions"),
    (dict(fractions=[0.0, 1.5]), "fractions"),
    (dict(blur_sigma=0.0), "blur_sigma"),
    (dict(threshold=float("nan")), "threshold"),
    (dict(verify_fn=lambda a, b: np.zeros(P + 1)), "verify_fn"),
  ]
  base = dict(
    verify_fn=_verify, images_a=images_a, images_b=images_b, labels=labels, saliency_a=sal
  )
  for override, name in cases:
    with pytest.raises(ValueError, match=name):
      hg.hiding_game(**{**base, **override})


def test_pointing_game_hand_case():
  saliency = np.array(
    [[[1.0, 3.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]]]
  )
  masks = np.array(
    [[[True, False], [False, True]], [[True, True], [True, True]], [[False, True], [False, False]]]
  )
  np.testing.assert_allclose(hg.pointing_game(saliency, masks), [0.625, 0.0, 1.0])
  with pytest.raises(ValueError, match="saliency"):
    hg.pointing_game(-saliency, masks)
  with pytest.raises(ValueError, match="region_masks"):
    hg.pointing_game(saliency, masks[:, :1])
  with pytest.raises(ValueError, match="region_masks"):
    hg.pointing_game(saliency, masks.astype(int))
