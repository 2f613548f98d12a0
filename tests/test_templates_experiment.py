"""Tests for jfr.methods.templates (the Tables I/II experiment) and configs/templates.py."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import templates as templates_config
from jfr.data import pipelines
from jfr.methods.recognition import trainer as recognition
from jfr.methods.templates import descriptors as descriptors_lib
from jfr.methods.templates import evaluate as experiment
from jfr.methods.templates import run as templates_run_lib


def _tiny_config(tmp_path):
  config = templates_config.get_config("tiny")
  config.dataset.data_dir = str(tmp_path)
  return config


def _read(workdir):
  with open(os.path.join(workdir, "eval", "templates.json")) as f:
    return json.load(f)


def _check_outputs(workdir, results, k):
  assert os.path.isfile(os.path.join(workdir, "eval", "templates.md"))
  for png in results["plots"]:
    assert os.path.getsize(png) > 0
  assert _read(workdir)["k"] == k
  markdown = open(os.path.join(workdir, "eval", "templates.md")).read()
  assert "## Table I" in markdown and "## Table II" in markdown
  for row in results["rows"]:
    for value in row["mean"].values():
      assert 0.0 <= value <= 1.0


@pytest.mark.slow
def test_all_mode_end_to_end_tiny(templates_run):
  # the session's run (conftest): 2 splits, masked m = 8 and 200 (clipped to k = 128), binary 16
  workdir, results = str(templates_run.workdir), templates_run.results
  _check_outputs(workdir, results, k=128)  # 2 x 2 x 32 conv map, flattened
  rows = {(r["method"], r["m"]): r for r in results["rows"]}
  assert set(rows) == {
    ("original", 128),
    ("masked", 8),
    ("masked", 128),
    ("random", 8),
    ("random", 128),
    ("binary", 16),
  }
  # Keeping all k bins is the original, for top-m and random masks alike.
  assert rows[("masked", 128)]["mean"] == rows[("original", 128)]["mean"]
  assert rows[("random", 128)]["mean"] == rows[("original", 128)]["mean"]
  assert results["protocol"]["out_of_gallery_probes"] == 2 * 2  # 2 subjects x 2 templates
  assert len(rows[("original", 128)]["per_split"]) == 2
  assert os.path.isdir(os.path.join(workdir, "backbone", "checkpoints"))


@pytest.mark.slow
def test_eval_mode_restores_the_backbone_and_reproduces_the_tables(templates_run, tmp_path):
  copy = str(templates_run.copy_to(tmp_path))
  again = templates_run_lib.run(templates_run.config, copy, "eval")
  assert [r["mean"] for r in again["rows"]] == [r["mean"] for r in templates_run.results["rows"]]


# ------------------------------------------------------------------------- npy mode


HEADER = "TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID"


def _write(path, lines):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def _ijba_fixture(root, subjects=8, images=6, k=64, seed=0):
  """Descriptors [subjects * images, k] (>= 0; each subject has k / subjects bins of its
  own with large activations), keys and 2 IJB-A splits."""
  rng = np.random.default_rng(seed)
  spikes = np.zeros((subjects, k), bool)
  spikes[np.repeat(np.arange(subjects), k // subjects), rng.permutation(k)] = True
  rows, descriptors = [], []
  for s in range(subjects):
    for i in range(images):
      rows.append((s, f"img/{s}_{i}.jpg"))
      descriptors.append(np.abs(rng.normal(size=k)) + 4.0 * spikes[s])
  np.save(os.path.join(root, "desc.npy"), np.array(descriptors, np.float32))
  _write(os.path.join(root, "keys.csv"), ["FILE"] + [f for _, f in rows])
  for split in (1, 2):
    out = set(rng.choice(subjects, 3, replace=False).tolist())
    gallery, probe, verify, comparisons, tid = [HEADER], [HEADER], [HEADER], [], 0
    for s in range(subjects):
      files = [f for subject, f in rows if subject == s]
      halves = (files[: images // 2], files[images // 2 :])
      for part, target in zip(halves, (gallery, probe)):
        tid += 1
        if target is gallery and s in out:
          continue
        target += [f"{tid},{100 + s},{f},{tid}" for f in part]
      for j, part in enumerate(halves):
        verify += [f"{1000 + 2 * s + j},{100 + s},{f},{s}" for f in part]
    ids = [1000 + t for t in range(2 * subjects)]
    comparisons = [f"{a},{b}" for i, a in enumerate(ids) for b in ids[i + 1 :]]
    base = os.path.join(root, "IJB-A_1N_sets", f"split{split}")
    _write(os.path.join(base, f"search_gallery_{split}.csv"), gallery)
    _write(os.path.join(base, f"search_probe_{split}.csv"), probe)
    base = os.path.join(root, "IJB-A_11_sets", f"split{split}")
    _write(os.path.join(base, f"verify_metadata_{split}.csv"), verify)
    _write(os.path.join(base, f"verify_comparisons_{split}.csv"), comparisons)


def _npy_config(root):
  config = templates_config.get_config("paper")
  config.descriptors.npy_path = os.path.join(root, "desc.npy")
  config.descriptors.keys_path = os.path.join(root, "keys.csv")
  config.ijba.root = str(root)
  config.ijba.splits = (1, 2)
  config.experiment.masked_ms = (8, 16)
  config.experiment.binary_ms = (8, 100)  # 100 is clipped to k = 64
  config.experiment.block_size = 32
  return config


def test_npy_mode_on_ijba_files(tmp_path):
  _ijba_fixture(str(tmp_path))
  config = _npy_config(str(tmp_path))
  workdir = str(tmp_path / "run")
  results = templates_run_lib.run(config, workdir, "npy")
  _check_outputs(workdir, results, k=64)
  assert results["source"] == "desc.npy on IJB-A"
  summary = results["protocol"]
  assert summary["splits"] == 2 and summary["out_of_gallery_probes"] == 3
  assert summary["genuine_pairs"] == 8
  methods = [(r["method"], r["m"]) for r in results["rows"]]
  assert methods == [
    ("original", 64),
    ("masked", 8),
    ("masked", 16),
    ("random", 8),
    ("random", 16),
    ("binary", 8),
    ("binary", 64),
  ]
  # Identity spikes: every template's top bins are its identity's spikes.
  rows = {(r["method"], r["m"]): r for r in results["rows"]}
  assert rows[("binary", 8)]["mean"]["Rank-1"] == 1.0
  assert [e["claim"][:8] for e in results["effects"]] == ["Table I:"] * 3 + ["Table II"] * 2


def test_npy_mode_bad_inputs(tmp_path):
  _ijba_fixture(str(tmp_path))
  config = _npy_config(str(tmp_path))
  config.descriptors.npy_path = ""
  with pytest.raises(ValueError, match="config.descriptors.npy_path"):
    templates_run_lib.run(config, str(tmp_path / "w"), "npy")
  config = _npy_config(str(tmp_path))
  np.save(os.path.join(tmp_path, "short.npy"), np.zeros((5, 64), np.float32))
  config.descriptors.npy_path = os.path.join(tmp_path, "short.npy")
  with pytest.raises(ValueError, match="config.descriptors.npy_path.*one row per key"):
    templates_run_lib.run(config, str(tmp_path / "w"), "npy")
  config = _npy_config(str(tmp_path))
  bad = np.load(os.path.join(tmp_path, "desc.npy"))
  bad[3, 1] = np.inf
  np.save(os.path.join(tmp_path, "bad.npy"), bad)
  config.descriptors.npy_path = os.path.join(tmp_path, "bad.npy")
  with pytest.raises(ValueError, match="descriptors must be finite"):
    templates_run_lib.run(config, str(tmp_path / "w"), "npy")


# ------------------------------------------------------------------------ pieces


def test_clipped_ms():
  assert experiment.clipped_ms((50, 150, 250, 500, 1024), 200, "ms") == [50, 150, 200]
  for bad in ((0, 5), (-1,), (), (2.5,)):
    with pytest.raises(ValueError, match="config.experiment.masked_ms"):
      experiment.clipped_ms(bad, 10, "config.experiment.masked_ms")


def test_run_rejects_unknown_mode(tmp_path):
  with pytest.raises(ValueError, match="mode"):
    templates_run_lib.run(_tiny_config(tmp_path), str(tmp_path), "train")


def test_descriptor_kinds(tmp_path):
  config = _tiny_config(tmp_path)
  backbone = recognition.inference_backbone(config)
  images = jnp.zeros((2, 32, 32, 3))
  variables = jax.jit(lambda x: backbone.init(jax.random.PRNGKey(0), x, train=False))(images)
  pixels = np.linspace(0, 255, images.size).astype(np.uint8).reshape(images.shape)
  images = pipelines.to_model_range_np(pixels)
  for kind, k in (("conv_flat", 2 * 2 * 32), ("conv_gap", 32), ("embedding", 16)):
    config.descriptors.kind = kind
    out = descriptors_lib.descriptor_function(config, variables, 32)(pixels)
    assert out.shape == (2, k)
    if kind != "embedding":
      assert np.all(out >= 0) and np.any(out > 0)  # post-ReLU activations
  _, fmap = backbone.apply(variables, images, train=False, return_feature_map=True)
  np.testing.assert_allclose(
    descriptors_lib.descriptor_function(config.copy_and_resolve_references(), variables, 32)(
      pixels
    ),
    backbone.apply(variables, images, train=False),
    rtol=1e-5,
    atol=1e-6,
  )
  config.descriptors.kind = "conv_gap"
  np.testing.assert_allclose(
    descriptors_lib.descriptor_function(config, variables, 32)(pixels),
    np.asarray(fmap).mean(axis=(1, 2)),
    rtol=1e-5,
    atol=1e-6,
  )
  config.descriptors.kind = "fc7"
  with pytest.raises(ValueError, match="config.descriptors.kind"):
    descriptors_lib.descriptor_function(config, variables, 32)


def test_paper_effects_signs():
  names = ["Rank-1", "1:1 TAR@FAR=0.1"]

  def row(method, m, rank1, tar):
    per = [{"Rank-1": rank1 + d, "1:1 TAR@FAR=0.1": tar} for d in (-0.01, 0.01)]
    return {
      "method": method,
      "m": m,
      "per_split": per,
      "mean": {"Rank-1": rank1, "1:1 TAR@FAR=0.1": tar},
    }

  rows = [
    row("original", 64, 0.5, 0.5),
    row("masked", 8, 0.7, 0.5),
    row("masked", 64, 0.5, 0.5),
    row("random", 8, 0.1, 0.1),
    row("binary", 8, 0.4, 0.5),
  ]
  effects = experiment.paper_effects(rows, names)
  assert [e["verdict"] for e in effects] == ["yes", "yes", "yes", "no", "no"]
  np.testing.assert_allclose(effects[0]["difference"], 0.2)  # masked m=8 - original
  np.testing.assert_allclose(effects[2]["difference"], -0.5)  # random - masked
  assert effects[3]["splits_with_claimed_sign"] == 0


def test_configs_build():
  for variant in templates_config.VARIANTS:
    config = templates_config.get_config(variant)
    assert config.method == "templates"
  with pytest.raises(ValueError, match="unknown variant"):
    templates_config.get_config("huge")
