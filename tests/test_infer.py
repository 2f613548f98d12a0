"""python -m jfr.infer on a trained ``:tiny`` recognition run: embed, verify, search,
templates, export, the CLI, and the refusals (no checkpoint, wrong method, unreadable image).

The commands read the session's baseline run (conftest ``baseline_run``: trained and evaluated,
which stores ``eval/thresholds.json``).
"""

import json
import os
import sys
import subprocess

import numpy as np
import pytest
from PIL import Image

from jfr.infer import commands
from jfr.infer import inputs
from jfr.infer import loading
from jfr.infer import recognize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(baseline_run):
  """The session's trained and evaluated baseline :tiny run (read-only; see conftest)."""
  return str(baseline_run.workdir)


@pytest.fixture(scope="module")
def faces_dir(tiny_data_dir, tmp_path_factory):
  """PNG files of the tiny test split: gallery/<id>/<i>.png (3 each of 4 identities),
  probes/<id>.png (one more each) and probes/zz_unknown.png (a fifth identity)."""
  import tensorflow_datasets as tfds

  from jfr.data import pipelines

  root = tmp_path_factory.mktemp("faces")
  data = pipelines.load_arrays(
    tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir), "test", ("image", "label")
  )
  labels = np.unique(data["label"])
  for label in labels[:4]:
    idx = np.flatnonzero(data["label"] == label)
    (root / "gallery" / f"id{label}").mkdir(parents=True)
    (root / "probes").mkdir(exist_ok=True)
    for j, i in enumerate(idx[:3]):
      Image.fromarray(data["image"][i]).save(root / "gallery" / f"id{label}" / f"{j}.png")
    Image.fromarray(data["image"][idx[3]]).save(root / "probes" / f"id{label}.png")
  other = np.flatnonzero(data["label"] == labels[4])[0]
  Image.fromarray(data["image"][other]).save(root / "probes" / "zz_unknown.png")
  return root


@pytest.fixture(scope="module")
def run(run_dir):
  return loading.load_run(run_dir, "embed", batch_size=4)


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_thresholds_file_names_its_source(run_dir):
  stored = json.loads(open(os.path.join(run_dir, "eval", "thresholds.json")).read())
  assert stored["source"]["dataset"] == "synthetic_faces/tiny"
  assert stored["source"]["evaluation"] == "recognition" and stored["source"]["split"] == "test"
  assert set(stored["verification"]["far"]) == {"0.1", "0.01", "0.001"}
  assert stored["identification"]["num_nonmated"] > 0


def test_embed_writes_vectors_with_file_names(run, run_dir, faces_dir, tmp_path):
  out = tmp_path / "emb.npz"
  written = commands.embed(
    workdir=run_dir,
    out=str(out),
    images=[str(faces_dir / "gallery"), str(faces_dir / "probes")],
    batch_size=4,
  )
  saved = np.load(out)
  paths = inputs.expand_inputs([str(faces_dir / "gallery"), str(faces_dir / "probes")])
  assert saved["names"].tolist() == paths and len(paths) == 17
  assert saved["embeddings"].shape == (17, 16) and saved["embeddings"].dtype == np.float32
  direct = run.model.embed(inputs.load_faces(paths, 32).images)
  np.testing.assert_allclose(saved["embeddings"], direct, rtol=1e-5, atol=1e-5)
  assert json.loads((tmp_path / "embed.json").read_text())["num_images"] == 17
  assert written["feature_size"] == 16


def test_verify_agrees_with_embed_and_cosine(run, run_dir, faces_dir, tmp_path):
  a, b = str(faces_dir / "probes" / "id14.png"), str(faces_dir / "gallery" / "id15" / "0.png")
  res = commands.verify(workdir=run_dir, out=str(tmp_path), pair=[a, b], far=0.1)
  f = _unit(run.model.embed(inputs.load_faces([a, b], 32).images))
  assert res["score"] == pytest.approx(float(f[0] @ f[1]), abs=1e-5)
  stored = json.loads(open(os.path.join(run_dir, "eval", "thresholds.json")).read())
  assert res["threshold"] == pytest.approx(stored["verification"]["far"]["0.1"])
  assert res["same_identity"] == (res["score"] > res["threshold"])
  assert (tmp_path / "verify.png").stat().st_size > 0
  assert json.loads((tmp_path / "verify.json").read_text())["score"] == res["score"]
  with pytest.raises(ValueError, match="far=0.05"):
    commands.verify(workdir=run_dir, out=str(tmp_path), pair=[a, b], far=0.05)


def test_search_ranks_pooled_templates_and_rejects_unknowns(run, run_dir, faces_dir, tmp_path):
  res = commands.search(
    workdir=run_dir,
    out=str(tmp_path),
    gallery=str(faces_dir / "gallery"),
    probes=[str(faces_dir / "probes")],
    top_k=3,
    fpir=0.1,
    batch_size=4,
  )
  scores = np.load(tmp_path / "scores.npy")
  assert scores.shape == (5, 4)
  # templates: L2-normalised mean of the L2-normalised image features
  gallery = recognize.gallery_paths(str(faces_dir / "gallery"))
  templates = np.stack(
    [
      _unit(_unit(run.model.embed(inputs.load_faces(p, 32).images)).mean(0))
      for p in gallery.values()
    ]
  )
  probes = inputs.expand_inputs([str(faces_dir / "probes")])
  expected = _unit(run.model.embed(inputs.load_faces(probes, 32).images)) @ templates.T
  np.testing.assert_allclose(scores, expected, atol=1e-5)
  for row, s in zip(res["results"], scores):
    assert [h["identity"] for h in row["ranked"]] == [list(gallery)[j] for j in np.argsort(-s)[:3]]
    assert row["decision"] == (
      row["ranked"][0]["identity"] if s.max() > res["threshold"] else "unknown"
    )
  strict = commands.search(
    workdir=run_dir,
    out=str(tmp_path / "strict"),
    gallery=str(faces_dir / "gallery"),
    probes=[str(faces_dir / "probes")],
    threshold=1.0,
    batch_size=4,
  )
  assert {r["decision"] for r in strict["results"]} == {"unknown"}
  assert (tmp_path / "search.png").stat().st_size > 0


def test_templates_from_images_and_npy(run_dir, faces_dir, tmp_path):
  res = commands.templates(
    workdir=run_dir, out=str(tmp_path), folder=str(faces_dir / "gallery"), bins=4
  )
  saved = np.load(tmp_path / "templates.npz")
  assert saved["masks"].shape == (4, 16) and (saved["masks"].sum(1) == 4).all()
  assert saved["masked_descriptors"].shape == (12, 16)
  sim = np.asarray(res["min_mean_similarity"])
  np.testing.assert_allclose(sim, sim.T, atol=1e-5)
  # .npy descriptors need no model
  npy = tmp_path / "npy"
  rng = np.random.default_rng(0)
  for t in range(3):
    (npy / f"t{t}").mkdir(parents=True)
    np.save(npy / f"t{t}" / "d.npy", rng.random((2, 8)).astype(np.float32))
  res = commands.templates(workdir=None, out=str(tmp_path / "o"), folder=str(npy), bins=2)
  assert res["templates"] == ["t0", "t1", "t2"] and res["k"] == 8
  assert (tmp_path / "o" / "templates.png").stat().st_size > 0


def test_export_round_trips_with_a_symbolic_batch(run, run_dir, tmp_path):
  from jfr.infer import export

  info = commands.export(workdir=run_dir, out=str(tmp_path))
  rng = np.random.default_rng(1)
  for batch in (5, 2):
    images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    expected = run.model.embed(images)
    for load, path in (
      (export.load_jax, info["files"]["jax"]),
      (export.load_saved_model, info["files"]["saved_model"]),
    ):
      np.testing.assert_allclose(load(path)(images), expected, rtol=1e-4, atol=1e-4)
  assert json.loads((tmp_path / "export.json").read_text())["feature_size"] == 16


def test_saved_model_path_is_tested_with_this_jax_tensorflow_pair():
  import jax
  import tensorflow as tf

  from jfr.infer import export

  # a new jax or tensorflow release must re-run the round trip and update the pin
  assert {"jax": jax.__version__, "tensorflow": tf.__version__} == export.TESTED_VERSIONS


def test_cli_runs_a_command(run_dir, faces_dir, tmp_path):
  # The real entry point, in its own process: absl flags are process-global, and jfr.evaluate
  # (imported by other tests of the session) defines flags of the same names.
  a, b = str(faces_dir / "probes" / "id14.png"), str(faces_dir / "gallery" / "id14" / "0.png")
  command = [sys.executable, "-m", "jfr.infer", "verify", a, b, f"--workdir={run_dir}"]
  done = subprocess.run(
    command + [f"--out={tmp_path}", "--far=0.1"], capture_output=True, text=True, timeout=600
  )
  assert done.returncode == 0, done.stderr[-2000:]
  saved = json.loads((tmp_path / "verify.json").read_text())
  assert "cosine" in json.dumps(saved)


def test_refusals_name_the_problem(run_dir, faces_dir, tmp_path):
  with pytest.raises(ValueError, match="aggregate.*fan.*recognition"):
    commands.aggregate(workdir=run_dir, out=str(tmp_path), frames=[str(faces_dir / "probes")])
  empty = tmp_path / "untrained"
  empty.mkdir()
  for name in ("config.json", "data_facts.json"):
    (empty / name).write_text(open(os.path.join(run_dir, name)).read())
  with pytest.raises(ValueError, match="checkpoint"):
    commands.embed(workdir=str(empty), out=str(tmp_path), images=[str(faces_dir / "probes")])
  with pytest.raises(ValueError, match="config.json"):
    commands.embed(workdir=str(tmp_path), out=str(tmp_path), images=[str(faces_dir / "probes")])
  broken = tmp_path / "broken.png"
  broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
  with pytest.raises(ValueError, match="broken.png"):
    commands.verify(workdir=run_dir, out=str(tmp_path), pair=[str(broken), str(broken)], far=0.1)
