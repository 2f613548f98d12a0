"""Tests for jfr.train.attributes (attribute-enhanced identification: trainer and experiment)."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import attributes as attributes_config
from jfr.data import face_renderer
from jfr.models import layers
from jfr.train import attributes
from jfr.train import registry
from jfr.train.checkpoint import TrainCheckpointer

_TINY_TRAIN_IDS = 14  # synthetic_faces/tiny


def _tiny(data_dir, **overrides):
  config = attributes_config.get_config("tiny")
  config.dataset.data_dir = data_dir
  for key, value in overrides.items():
    node = config
    *path, last = key.split(".")
    for name in path:
      node = node[name]
    node[last] = value
  return config


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
  "names,match",
  [
    (("Big_Nose", "Curly_Hair"), "Curly_Hair"),
    ((), "T >= 1"),
    (("Male", "Male"), "duplicate"),
    (("Male",), "figure_attributes"),  # the CAM figure's rows must be predicted
  ],
)
def test_bad_attribute_names_are_errors(tiny_data_dir, tmp_path, names, match):
  config = _tiny(tiny_data_dir, **{"attributes.names": names})
  with pytest.raises(ValueError, match=match):
    attributes.run(config, str(tmp_path), "train")
  assert not (tmp_path / "joint").exists()


def test_attribute_indices_against_metadata():
  names = face_renderer.ATTRIBUTE_NAMES
  assert attributes.attribute_indices(("Bald", "Narrow_Eyes"), names) == (7, 0)
  with pytest.raises(ValueError, match="attribute_names"):
    attributes.attribute_indices(("Bald",), None)


def test_labels_out_of_range_are_an_error(tiny_data_dir, tmp_path):
  config = _tiny(tiny_data_dir, **{"dataset.num_classes": 5})  # the split has 14 identities
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
    attributes.run(config, str(tmp_path), "train")


def test_bad_variants_and_config_variant():
  with pytest.raises(ValueError, match="variant"):
    attributes_config.get_config("huge")
  config = attributes_config.get_config()
  config.variants = ("joint", "fused")
  with pytest.raises(ValueError, match="config.variants"):
    attributes._check_variants(config.variants)
  assert attributes.MODES == ("all", "train", "eval")
  assert registry.TRAINERS["attributes"] == "jfr.train.attributes"


def _zero_checkpoint(config, workdir, mode, num_attributes, num_classes, size=32):
  """A checkpoint of an all-zero stage-1 state (shapes only matter; nothing compiles)."""
  abstract = jax.eval_shape(
    lambda: attributes.create_state(config, mode, num_attributes, num_classes, size)
  )
  state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract)
  with TrainCheckpointer(workdir / mode, keep=1) as ckpt:
    ckpt.save(
      config.num_train_steps,
      state,
      {"batches_consumed": config.num_train_steps, "batch_size": config.batch_size},
    )


@pytest.mark.parametrize(
  "num_attributes,num_classes,match",
  [
    (9, _TINY_TRAIN_IDS, "attribute_head"),  # a checkpoint of another T
    (10, _TINY_TRAIN_IDS + 1, "identity_head"),  # ... of another C
  ],
)
def test_checkpoint_of_another_t_or_c_is_an_error(tmp_path, num_attributes, num_classes, match):
  config = attributes_config.get_config("tiny")
  _zero_checkpoint(config, tmp_path, "joint", num_attributes, num_classes)
  with pytest.raises(ValueError, match=match):
    attributes.restore_pretrained(config, tmp_path, "joint", 10, _TINY_TRAIN_IDS, 32)
  restored = attributes.restore_pretrained(
    config, tmp_path, "joint", num_attributes, num_classes, 32
  )
  assert restored.params["net"]["attribute_head"]["logits"]["kernel"].shape[-1] == num_attributes


def test_eval_mode_refuses_a_checkpoint_of_other_attributes(tiny_data_dir, tmp_path):
  config = _tiny(tiny_data_dir, variants=("joint",))
  config.finetune.enabled = False
  _zero_checkpoint(config, tmp_path, "joint", 10, _TINY_TRAIN_IDS)
  config.attributes.names = tuple(face_renderer.IDENTITY_ATTRIBUTES[:9])
  with pytest.raises(ValueError, match="attribute_head"):
    attributes.run(config, str(tmp_path), "eval")
  with pytest.raises(ValueError, match="no checkpoint"):
    attributes.run(_tiny(tiny_data_dir, variants=("separate",)), str(tmp_path), "eval")


def test_restore_reads_both_stages(tiny_data_dir, tmp_path):
  config = _tiny(tiny_data_dir, variants=("concat",))
  data = attributes._prepare_data(config)
  eval_data = attributes._load_eval_data(config, data)
  _zero_checkpoint(config, tmp_path, "concat", 10, _TINY_TRAIN_IDS)
  classes = len(eval_data.protocol.probe_identities)
  pretrained = attributes.restore_pretrained(config, tmp_path, "concat", 10, _TINY_TRAIN_IDS, 32)
  finetuned = jax.eval_shape(
    lambda: attributes.create_finetune_state(config, "concat", pretrained, 10, classes)
  )
  finetuned = jax.tree.map(lambda s: np.full(s.shape, 0.5, s.dtype), finetuned)
  with TrainCheckpointer(tmp_path / "concat" / "finetune", keep=1) as ckpt:
    ckpt.save(2, finetuned, {"batches_consumed": 2, "batch_size": 4})
  with pytest.raises(ValueError, match="protocol.json is missing"):
    attributes.restore(config, tmp_path, data, eval_data)
  attributes.check_protocol_record(tmp_path / "concat" / "finetune", eval_data.protocol, write=True)
  states = attributes.restore(config, tmp_path, data, eval_data)
  assert set(states["concat"]) == {"pretrained", "finetuned"}
  kernel = states["concat"]["finetuned"].params["net"]["identity_head"]["logits"]["kernel"]
  assert kernel.shape == (8, classes) and np.all(np.asarray(kernel) == 0.5)
  other = dataclasses.replace(eval_data.protocol, finetune=eval_data.protocol.finetune[:-1])
  with pytest.raises(ValueError, match="identity protocol differs"):
    attributes.check_protocol_record(tmp_path / "concat" / "finetune", other, write=True)
  empty = dataclasses.replace(eval_data.protocol, finetune=np.zeros(0, np.int64))
  with pytest.raises(ValueError, match="images_per_identity"):
    attributes.finetune(config, tmp_path, "concat", pretrained, data, eval_data.test, empty)


# ------------------------------------------------------------------------- model shapes


@pytest.mark.parametrize(
  "mode,fused", [("joint", 512 * 10), ("separate", 512), ("concat", 512 + 10)]
)
def test_paper_config_head_shapes(mode, fused):
  config = attributes_config.get_config("paper")
  assert (config.batch_size, config.optimizer.name, config.optimizer.learning_rate) == (
    128,
    "adam",
    1e-3,
  )
  model = attributes.build_model(config, mode, 10, 2000, axis_name=None)
  out, variables = jax.eval_shape(
    lambda x: model.init_with_output(jax.random.PRNGKey(0), x, train=False, return_conv_map=True),
    jnp.zeros((2, 112, 112, 3)),
  )
  assert out["attribute_logits"].shape == (2, 10)
  assert out["identity_logits"].shape == (2, 2000)
  assert out["features"].shape == (2, 4096)
  assert out["fused"].shape == (2, fused)
  assert out["conv_map"].shape == (2, 7, 7, 512)
  heads = variables["params"]
  assert heads["attribute_head"]["hidden"]["kernel"].shape == (512, 4096)
  assert heads["attribute_head"]["logits"]["kernel"].shape == (4096, 10)
  assert heads["identity_head"]["hidden"]["kernel"].shape == (fused, 4096)
  assert heads["identity_head"]["logits"]["kernel"].shape == (4096, 2000)


def test_kronecker_fusion_materialises_nothing_larger_than_its_output():
  b, n, m = 4, 512, 10
  jaxpr = jax.make_jaxpr(layers.kronecker_fusion)(jnp.zeros((b, n)), jnp.zeros((b, m)))
  sizes = [int(np.prod(v.aval.shape)) for eqn in jaxpr.eqns for v in eqn.outvars]
  assert max(sizes) == b * n * m


def test_finetune_state_keeps_everything_but_the_classifier():
  config = attributes_config.get_config("tiny")
  abstract = jax.eval_shape(lambda: attributes.create_state(config, "joint", 10, 14, 32))
  rng = np.random.default_rng(0)
  pretrained = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), abstract)
  state = attributes.create_finetune_state(config, "joint", pretrained, 10, 3)
  old, new = pretrained.params["net"], state.params["net"]
  assert new["identity_head"]["logits"]["kernel"].shape == (8, 3)
  np.testing.assert_array_equal(new["identity_head"]["logits"]["bias"], np.zeros(3))
  for name in ("trunk", "attribute_head"):
    jax.tree.map(np.testing.assert_array_equal, new[name], old[name])
  jax.tree.map(
    np.testing.assert_array_equal, state.batch_stats["net"], pretrained.batch_stats["net"]
  )
  # The attribute branch is frozen by default: its update is zero whatever the gradient.
  grads = jax.tree.map(np.ones_like, new)
  updates, _ = state.tx["net"].update(grads, state.opt_state["net"], new)
  assert all(np.all(u == 0) for u in jax.tree.leaves(updates["attribute_head"]))
  assert all(np.any(u != 0) for u in jax.tree.leaves(updates["trunk"]))


# ------------------------------------------------------------------- protocol and CAM mass


def test_identity_protocol_splits():
  labels = np.repeat(np.arange(100, 110), 6)
  p = attributes.identity_protocol(
    labels, probe_identity_fraction=0.4, finetune_per_identity=2, gallery_per_identity=1, seed=3
  )
  assert len(p.probe_identities) == 4 and len(p.distractor_identities) == 6
  assert not set(p.probe_identities) & set(p.distractor_identities)
  assert (len(p.finetune), len(p.gallery), len(p.probe)) == (8, 4, 12)
  used = np.concatenate([p.finetune, p.gallery, p.probe, p.distractor_stills])
  assert np.array_equal(np.sort(used), np.arange(60))  # a partition of the stills
  assert set(labels[p.gallery]) == set(p.probe_identities) == set(labels[p.probe])
  assert set(labels[p.distractor_stills]) == set(p.distractor_identities)
  again = attributes.identity_protocol(
    labels, probe_identity_fraction=0.4, finetune_per_identity=2, gallery_per_identity=1, seed=3
  )
  assert np.array_equal(again.probe, p.probe)
  with pytest.raises(ValueError, match="stills"):
    attributes.identity_protocol(
      labels, probe_identity_fraction=0.4, finetune_per_identity=5, gallery_per_identity=1, seed=3
    )
  with pytest.raises(ValueError, match="probe_identity_fraction"):
    attributes.identity_protocol(
      labels, probe_identity_fraction=1.0, finetune_per_identity=1, gallery_per_identity=1, seed=3
    )


def _protocol_config(counts, max_rank):
  return ml_collections.ConfigDict(
    {"protocol": dict(distractor_counts=counts, max_rank=max_rank, seed=0)}
  )


def test_identification_with_distractors():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(6, 16))
  labels = np.repeat(np.arange(6), 4)
  features = centres[labels] + 0.05 * rng.normal(size=(24, 16))
  p = attributes.identity_protocol(
    labels, probe_identity_fraction=0.5, finetune_per_identity=1, gallery_per_identity=1, seed=0
  )
  distractors = features[p.distractor_stills]
  out = attributes.identification(features, labels, p, distractors, _protocol_config((0, -1), 3))
  assert out["rank1_by_distractors"] == {"0": 1.0, "12": 1.0}
  assert out["ranks"] == [1, 2, 3] and out["num_probes"] == 6
  with pytest.raises(ValueError, match="distractor_counts"):
    attributes.identification(features, labels, p, distractors, _protocol_config((13,), 3))
  with pytest.raises(ValueError, match="max_rank"):
    attributes.identification(features, labels, p, distractors, _protocol_config((0,), 4))


def test_region_masks_and_mass_shares_match_loops():
  parts = face_renderer.PART_NAMES
  rng = np.random.default_rng(0)
  seg = rng.integers(0, len(parts), (2, 8, 8)).astype(np.uint8)
  landmarks = np.zeros((2, 68, 2), np.float32)
  landmarks[:, 17:27, 1] = [[3.0], [5.0]]  # brow line
  landmarks[:, 48:68, 1] = [[4.0], [6.0]]  # lowest lip point
  hair, skin = parts.index("hair"), parts.index("skin")
  scalp = attributes.region_masks(seg, landmarks, "scalp", parts)
  lower = attributes.region_masks(seg, landmarks, "lower_face", parts)
  for b, (brow, lip) in enumerate([(3, 4), (5, 6)]):
    for y in range(8):
      for x in range(8):
        assert scalp[b, y, x] == (seg[b, y, x] in (hair, skin) and y < brow)
        assert lower[b, y, x] == (seg[b, y, x] == skin and y > lip)
  np.testing.assert_array_equal(
    attributes.region_masks(seg, landmarks, "nose", parts), seg == parts.index("nose")
  )
  with pytest.raises(ValueError, match="region"):
    attributes.region_masks(seg, landmarks, "elbow", parts)
  maps = rng.random((2, 8, 8, 2)).astype(np.float32)
  maps[1, ..., 1] = 0.0
  masks = np.stack([scalp, lower], -1)
  share, area = attributes.map_mass_shares(maps, masks)
  for b in range(2):
    for t in range(2):
      total = sum(maps[b, y, x, t] for y in range(8) for x in range(8))
      inside = sum(maps[b, y, x, t] for y in range(8) for x in range(8) if masks[b, y, x, t])
      if total == 0:
        assert np.isnan(share[b, t])
      else:
        np.testing.assert_allclose(share[b, t], inside / total, rtol=1e-5)
      np.testing.assert_allclose(area[b, t], masks[b, ..., t].sum() / 64)


def test_attribute_regions_cover_the_data_set_attributes():
  assert set(attributes.ATTRIBUTE_REGIONS) == set(face_renderer.ATTRIBUTE_NAMES)
  assert attributes.ATTRIBUTE_REGIONS["Big_Nose"] == "nose"
  assert attributes.ATTRIBUTE_REGIONS["Narrow_Eyes"] == "eyes"
  assert attributes.ATTRIBUTE_REGIONS["Big_Lips"] == "mouth"


def test_array_batches_are_deterministic_and_resume():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
  labels = np.arange(10)
  take = lambda start, n: [
    b
    for _, b in zip(
      range(n),
      attributes.array_batches(
        images, labels, 4, seed=1, start_batch=start, augment_options={"flip": True}
      ).as_numpy_iterator(),
    )
  ]
  full, resumed = take(0, 5), take(3, 2)
  for a, b in zip(full[3:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  seen = np.concatenate([b["label"] for b in full[:5]])
  assert sorted(seen[:10]) == list(range(10))  # each epoch is a permutation of the set
  assert full[0]["image"].dtype == np.float32
  assert np.abs(full[0]["image"]).max() <= 1.0


# ---------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_all_mode_end_to_end_tiny(tiny_data_dir, tmp_path):
  # One variant keeps the test near a minute on two CPU cores (each variant compiles two
  # train steps); the default config runs and compares all three.
  config = _tiny(tiny_data_dir, variants=("joint",))
  results = registry.run(config, str(tmp_path), "all")
  saved = json.loads((tmp_path / "eval" / "attributes.json").read_text())
  assert set(saved["variants"]) == {"joint"}
  out = saved["variants"]["joint"]
  assert set(out) == {"pretrained", "finetuned"}
  table = out["pretrained"]["attributes_test"]
  assert table["num_images"] == 24 and len(table["per_attribute"]) == 10
  assert 0.0 <= out["finetuned"]["attributes_distractor_identities"]["mean_accuracy"] <= 1.0
  for stage in ("pretrained", "finetuned"):
    ident = out[stage]["identification"]
    assert ident["num_probes"] == 6 and ident["num_gallery"] == 3
    assert set(ident["rank1_by_distractors"]) == {"10", str(ident["num_distractors"])}
    assert all(0.0 <= v <= 1.0 for c in ident["cmc_by_distractors"].values() for v in c)
    assert len(ident["cmc_by_distractors"]["10"]) == config.protocol.max_rank
    assert (tmp_path / "eval" / f"cmc_{stage}.png").stat().st_size > 0
    assert (tmp_path / "eval" / f"rank1_vs_distractors_{stage}.png").stat().st_size > 0
  cam = out["pretrained"]["cam"]["per_attribute"]
  assert cam["Bald"]["region"] == "scalp" and cam["Male"]["region"] == "face"
  assert all(0.0 <= c["share"] <= 1.0 for c in cam.values() if c.get("num_images"))
  assert (tmp_path / "joint" / "checkpoints").is_dir()
  assert (tmp_path / "joint" / "finetune" / "checkpoints").is_dir()
  assert (tmp_path / "figures" / "cam_joint.png").stat().st_size > 0
  markdown = (tmp_path / "eval" / "attributes.md").read_text()
  assert "Ours-J (joint)" in markdown and "## Attribute accuracy" in markdown
  assert results["protocol"]["distractor_identities"] == 3
