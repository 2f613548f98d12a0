"""python -m jfr.infer commands of the method runs, each on a trained ``:tiny`` workdir of its
method: ``aggregate`` (FAN), ``explain`` (explain), ``attributes`` (attributes), ``filters``
(interpretable). The runs are the session's trained ``:tiny`` runs (conftest ``fan_run``,
``explain_run``, ``attributes_run``, ``interpretable_run``); they are read-only."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jfr.infer import commands
from jfr.infer import inputs
from jfr.infer import loading

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faces(tiny_data_dir, tmp_path_factory):
  """PNG files of the tiny data: ``stills/<i>.png`` (test split) and ``frames/<i>.png``
  (20 video frames, more than the tiny FAN's max_members = 8)."""
  import tensorflow_datasets as tfds

  from jfr.data import pipelines

  root = tmp_path_factory.mktemp("faces")
  builder = tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir)
  stills = pipelines.load_arrays(builder, "test", ("image",))["image"]
  frames = pipelines.load_arrays(builder, "video", ("image",))["image"][:20]
  for name, images in (("stills", stills[:6]), ("frames", frames)):
    (root / name).mkdir()
    for i, image in enumerate(images):
      Image.fromarray(image).save(root / name / f"{i:02d}.png")
  return root


def test_aggregate_any_number_of_frames(fan_run, faces, tmp_path):
  workdir = str(fan_run.workdir)
  res = commands.aggregate(
    workdir=workdir,
    out=str(tmp_path),
    frames=[str(faces / "frames")],
    reference=[str(faces / "stills" / "00.png")],
  )
  assert res["chunks"] == [(0, 7), (7, 13), (13, 20)]  # 20 frames, max_members 8
  saved = np.load(tmp_path / "aggregate.npz")
  assert saved["faces"].shape == (3, 32, 32, 3) and saved["chunk_features"].shape == (3, 16)
  assert sorted(p.name for p in tmp_path.glob("aggregated_*.png")) == [
    "aggregated_0.png",
    "aggregated_1.png",
    "aggregated_2.png",
  ]
  # the policy: video feature = normalised mean of the normalised chunk features; the
  # first chunk's feature equals embed_sets of those frames
  unit = saved["chunk_features"] / np.linalg.norm(saved["chunk_features"], axis=1, keepdims=True)
  mean = unit.mean(0)
  np.testing.assert_allclose(saved["feature"], mean / np.linalg.norm(mean), atol=1e-5)
  run = loading.load_run(workdir, "aggregate")
  frames = inputs.read_faces([str(faces / "frames")], 32).images
  first = run.model.embed_sets(frames[None, :7], np.ones((1, 7), bool))
  np.testing.assert_allclose(saved["chunk_features"][:1], first, rtol=1e-4, atol=1e-4)
  baseline = run.model.embed(frames).mean(0)
  np.testing.assert_allclose(saved["mean_feature"], baseline / np.linalg.norm(baseline), atol=1e-5)
  assert set(res["cosine_to_reference"]) == {"fan", "mean_feature"}
  assert (tmp_path / "aggregate_overview.png").stat().st_size > 0


def test_explain_maps_equal_explain_pair(explain_run, faces, tmp_path):
  from jfr.data import pipelines
  from jfr.explain import saliency, suite
  from jfr.infer import explain as explain_lib

  # a copy without the stored tau of --mode=explain (this test writes its own)
  workdir = str(explain_run.copy_to(tmp_path / "copy"))
  Path(workdir, "eval", "explain.json").unlink()
  a, b = str(faces / "stills" / "00.png"), str(faces / "stills" / "05.png")
  with pytest.raises(ValueError, match="threshold"):
    commands.explain(workdir=workdir, out=str(tmp_path), pair=[a, b], methods=("ours",))
  res = commands.explain(
    workdir=workdir,
    out=str(tmp_path),
    pair=[a, b],
    methods=("ours", "gradient", "grad_cam", "grad_cam_pp"),
    threshold=0.4,
  )
  run = loading.load_run(workdir, "explain")
  fns = explain_lib.model_functions(run)
  x = pipelines.to_model_range_np(inputs.read_faces([a, b], 32).images)
  convs = np.asarray(suite.call(fns.conv, x))
  t = 0.4 / convs.shape[-1]
  assert res["T"] == pytest.approx(t)
  for row, (i, j) in enumerate(((0, 1), (1, 0))):
    ref = saliency.explain_pair(fns.decode, convs[i], convs[j], t, run.config.explain.chunk_size)
    for name, field in (("ours_s", ref.s), ("ours_s_pos", ref.s_pos), ("ours_s_neg", ref.s_neg)):
      np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy")[row], field, atol=1e-5)
  grad = saliency.gradient_saliency(fns.embed, x, x[::-1])
  np.testing.assert_allclose(np.load(tmp_path / "gradient.npy"), grad, rtol=1e-4, atol=1e-6)
  assert np.load(tmp_path / "grad_cam_pp.npy").shape == (2, 32, 32)
  f = np.asarray(suite.call(fns.embed, x))
  f = f / np.linalg.norm(f, axis=1, keepdims=True)
  assert res["score"] == pytest.approx(float(f[0] @ f[1]), abs=1e-5)
  # the stored tau of --mode=explain is used when no threshold is given
  (tmp_path / "w").mkdir()
  Path(workdir, "eval", "explain.json").write_text(
    json.dumps({"threshold": {"tau": 0.3, "source": "x"}})
  )
  res = commands.explain(workdir=workdir, out=str(tmp_path / "w"), pair=[a, b], methods=("ours",))
  assert res["tau"] == 0.3 and res["maps"] == ["ours_s", "ours_s_neg", "ours_s_pos"]
  assert (tmp_path / "explain.png").stat().st_size > 0


def test_attributes_probabilities_and_maps(attributes_run, faces, tmp_path):
  workdir = str(attributes_run.workdir)
  images = [str(faces / "stills")]
  res = commands.attributes(workdir=workdir, out=str(tmp_path), images=images)
  run = loading.load_run(workdir, "attributes")
  names = list(run.config.attributes.names)
  maps = np.load(tmp_path / "attribute_maps.npy")
  assert maps.shape == (6, 32, 32, len(names)) and (maps >= 0).all()
  crops = inputs.read_faces(images, 32).images
  probs = 1 / (1 + np.exp(-run.model.extras["attribute_logits"](crops)))
  first = res["probabilities"][res["images"][0]]
  assert list(first) == names
  np.testing.assert_allclose([first[n] for n in names], probs[0], rtol=1e-5)
  assert (tmp_path / "attributes.png").stat().st_size > 0
  with pytest.raises(ValueError, match="attributes"):
    commands.filters(workdir=workdir, out=str(tmp_path), images=images)


def test_filters_peaks_and_response_maps(interpretable_run, faces, tmp_path):
  from jfr.eval import interpretability

  workdir = str(interpretable_run.workdir)
  images = [str(faces / "stills")]
  res = commands.filters(workdir=workdir, out=str(tmp_path), images=images)
  maps = np.load(tmp_path / "response_maps.npy")
  assert maps.shape[0] == 6 and maps.shape[-1] == res["num_filters"]
  # peaks are the maxima of the saved maps, in model-input pixels
  expected = interpretability.response_peaks(maps, (32, 32))
  first = res["peaks"][res["images"][0]]
  np.testing.assert_allclose(first["pos_xy"], np.asarray(expected["pos_xy"][0]), atol=0.01)
  assert len(res["shown_filters"]) == min(6, res["num_filters"])
  assert (tmp_path / "filters.png").stat().st_size > 0
