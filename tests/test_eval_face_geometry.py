"""Tests of the face-geometry evaluators: jfr.eval.faces, occlusion, peak_spread and
partial_retrieval (registered in jfr.eval.registry), on the tiny synthetic faces with a
hand-made model (features = mean colour of 4 x 4 cells; maps = those cells)."""

import numpy as np
import pytest

from configs import interpretable as interpretable_config
from jfr.context import RunContext
from jfr.data import augment
from jfr.data import face_renderer
from jfr.eval import embedding
from jfr.eval import faces
from jfr.eval import occlusion
from jfr.eval import partial_retrieval
from jfr.eval import peak_spread
from jfr.eval import registry


def _maps(images: np.ndarray) -> np.ndarray:
  """uint8 [B, S, S, 3] -> [B, 4, 4, 3]: the mean of each (S/4)^2 cell, in [-1, 1]."""
  x = images.astype(np.float32) / 127.5 - 1.0
  b, s = x.shape[:2]
  return x.reshape(b, 4, s // 4, 4, s // 4, 3).mean(axis=(2, 4))


_PROJECTION = np.random.default_rng(0).normal(size=(3, 12)).astype(np.float32)


def _projected_maps(images: np.ndarray) -> np.ndarray:
  """[B, 4, 4, 12]: 12 fixed colour projections of the cells."""
  return _maps(images) @ _PROJECTION


def _model(size: int) -> embedding.EvalModel:
  """embed: the 48 cell colours; response_peaks from 12 projected maps."""
  return embedding.EvalModel(
    input_size=size,
    embed=lambda images: _maps(images).reshape(len(images), -1),
    extras={"response_peaks": peak_spread.peaks_from_maps(_projected_maps, size)},
  )


def _pooled_model(size: int) -> embedding.EvalModel:
  """embed: the 12 projected maps averaged over the cells (K matches the maps)."""
  return embedding.EvalModel(
    input_size=size,
    embed=lambda images: _projected_maps(images).mean(axis=(1, 2)),
    extras={"response_peaks": peak_spread.peaks_from_maps(_projected_maps, size)},
  )


@pytest.fixture(scope="module")
def context(tiny_data_dir):
  config = interpretable_config.get_config("tiny")
  config.dataset.data_dir = tiny_data_dir
  return RunContext.from_config(config)


@pytest.fixture(scope="module")
def evals():
  return {
    name: registry.settings_of(block)
    for name, block in interpretable_config.get_config("tiny").evals.items()
  }


def test_load_faces_marks_natural_occluders(context):
  data = faces.load_faces(context, "test")
  n = len(data["label"])
  assert data["image"].dtype == np.uint8 and data["landmarks"].shape == (n, 68, 2)
  assert data["natural"].dtype == bool and 0 < data["natural"].sum() < n
  with pytest.raises(ValueError, match="context"):
    faces.load_faces(None, "test")


def test_part_rectangle_covers_the_part():
  template = face_renderer.frontal_landmarks(64)
  rect = occlusion.part_rectangle(template, "eyes", 2.0)
  eyes = template[36:48]
  assert rect.shape == (4, 2)
  assert rect[0, 0] == pytest.approx(eyes[:, 0].min() - 2)
  assert rect[2, 1] == pytest.approx(eyes[:, 1].max() + 2)
  with pytest.raises(ValueError, match="part"):
    occlusion.part_rectangle(template, "ears", 2.0)


def test_occlude_each_is_seeded_per_face_and_changes_every_face(context):
  data = faces.load_faces(context, "test")
  images, lms = data["image"][:6], data["landmarks"][:6]
  a = occlusion.occlude_each(images, lms, 0, "static", "black")
  b = occlusion.occlude_each(images, lms, 0, "static", "black")
  c = occlusion.occlude_each(images, lms, 1, "static", "black")
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert all((a[i] != images[i]).any() for i in range(6))
  # face 0 of a batch of one gets the same occluder as face 0 of the batch
  np.testing.assert_array_equal(
    occlusion.occlude_each(images[:1], lms[:1], 0, "static", "black"), a[:1]
  )


def test_occlude_part_blackens_the_part_only(context):
  data = faces.load_faces(context, "test")
  images, lms = data["image"][:4], data["landmarks"][:4]
  eyes = occlusion.occlude_part(images, lms, "eyes", 0.04, "black", 0)
  changed = (eyes != images).any(axis=-1)
  for i in range(4):
    ys, _ = np.nonzero(changed[i])
    eye_y = lms[i, 36:48, 1]
    assert ys.min() <= eye_y.mean() <= ys.max()
    assert changed[i].mean() < 0.3
    assert np.all(eyes[i][changed[i]] == 0)


def test_occluded_still_images_reports_each_scenario(context, evals):
  type_name, settings = evals["recognition"]
  model = _model(context.image_size)
  out = registry.evaluate(type_name, model, context, settings, seed=0)
  for scenario in occlusion.SCENARIOS:
    report = out[scenario]
    assert set(report) == {"verification", "identification"}
    assert 0.0 <= report["verification"]["accuracy"] <= 1.0
  assert set(out["_curves"]) == set(occlusion.SCENARIOS)
  with pytest.raises(ValueError, match="scenarios"):
    occlusion.occluded_still_images(model, context, {**settings, "scenarios": ("rain",)}, seed=0)
  with pytest.raises(ValueError, match="unknown"):
    occlusion.occluded_still_images(model, context, {**settings, "extra": 1}, seed=0)


def test_feature_difference_is_zero_where_the_occluder_is_not(context, evals):
  type_name, settings = evals["feature_difference"]
  out = registry.evaluate(type_name, _model(context.image_size), context, settings, seed=0)
  assert out["images"] == settings["images"]
  for part in ("eyes", "nose"):
    raw = np.asarray(out[part]["raw"])
    assert raw.shape == (48,) and raw.max() > 0
  # cells far from the part (the bottom row for the eyes) change less than the eye row
  eyes = np.asarray(out["eyes"]["raw"]).reshape(4, 4, 3)
  assert eyes[3].mean() < eyes[1].mean()


def test_peak_statistics_of_fixed_peaks_on_template_faces():
  size = 32
  template = augment.default_template_landmarks(size)
  n, k = 5, 3
  xy = np.broadcast_to(np.array([[10.0, 12.0], [20.0, 12.0], [16.0, 22.0]]), (n, k, 2))
  peaks = {
    "pos_xy": xy,
    "neg_xy": xy[:, ::-1],
    "pos_weight": np.ones((n, k)),
    "neg_weight": np.ones((n, k)),
  }
  stats = peak_spread.peak_statistics(peaks, np.broadcast_to(template, (n, 68, 2)), size)
  np.testing.assert_allclose(stats["pos"]["centres"], xy[0], atol=1e-6)
  np.testing.assert_allclose(stats["pos"]["std"], 0.0, atol=1e-6)
  centre = xy[0].mean(axis=0)
  expected = np.mean(np.linalg.norm(xy[0] - centre, axis=1))
  assert stats["pos"]["spreadness"] == pytest.approx(expected)
  assert stats["spreadness"] == pytest.approx(expected)


def test_peak_spread_needs_response_peaks(context, evals):
  type_name, settings = evals["peak_spread"]
  size = context.image_size
  out = registry.evaluate(type_name, _model(size), context, settings, seed=0)
  assert out["images"] == settings["images"]
  assert np.asarray(out["pos"]["centres"]).shape == (12, 2) and out["spreadness"] >= 0
  with pytest.raises(ValueError, match="response_peaks"):
    registry.evaluate(
      type_name, embedding.EvalModel(size, embed=lambda x: x), context, settings, seed=0
    )


def test_retrieval_indices_two_clean_faces_per_subject():
  labels = np.array([0, 0, 0, 1, 1, 2, 2, 3])
  natural = np.array([False, True, False, False, True, False, False, False])
  np.testing.assert_array_equal(
    partial_retrieval.retrieval_indices(labels, natural, 10), [0, 2, 5, 6]
  )
  with pytest.raises(ValueError, match="two subjects"):
    partial_retrieval.retrieval_indices(labels, natural, 1)  # one subject is not a search
  with pytest.raises(ValueError, match="two subjects"):
    partial_retrieval.retrieval_indices(labels[:3], natural[:3], 10)


def test_partial_face_retrieval_reports_each_part(context, evals):
  type_name, settings = evals["partial_retrieval"]
  out = registry.evaluate(type_name, _pooled_model(context.image_size), context, settings, seed=0)
  assert out["filters_per_part"] == max(1, round(settings["filter_fraction"] * 12))
  for part in partial_retrieval.PARTS:
    assert 0.0 <= out[part] <= 1.0 and len(out["part_filters"][part]) == out["filters_per_part"]
  assert 0.0 <= out["all_filters"] <= 1.0 and out["subjects"] >= 2
