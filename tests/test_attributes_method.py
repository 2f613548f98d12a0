"""Tests for jfr.methods.attributes (attribute-enhanced identification: trainer, fine-tuning,
evaluation and the run modes)."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import attributes as attributes_config
from jfr.context import RunContext
from jfr.data import face_renderer
from jfr.methods import registry
from jfr.methods.attributes import finetune as finetune_lib
from jfr.methods.attributes import run as attributes
from jfr.methods.attributes import trainer
from jfr.models import layers
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
    (("Male",), "keep_maps"),  # the CAM figure's rows must be predicted
  ],
)
def test_bad_attribute_names_are_errors(tiny_data_dir, tmp_path, names, match):
  config = _tiny(tiny_data_dir, **{"attributes.names": names})
  with pytest.raises(ValueError, match=match):
    attributes.run(config, str(tmp_path), "train")
  assert not (tmp_path / "joint").exists()


def _data(config):
  return trainer.attribute_data(config, RunContext.from_config(config))


def test_attribute_columns_against_metadata(tiny_data_dir):
  data = _data(_tiny(tiny_data_dir, **{"attributes.names": ("Bald", "Narrow_Eyes")}))
  names = face_renderer.ATTRIBUTE_NAMES
  assert data.indices == (names.index("Bald"), names.index("Narrow_Eyes"))


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
    trainer.check_variants(config.variants)
  assert attributes.MODES == ("all", "train", "eval")
  assert registry.METHODS["attributes"] == "jfr.methods.attributes.run"
  assert registry.method_module("attributes") is attributes


def _zero_checkpoint(config, workdir, mode, num_attributes, num_classes, size=32):
  """A checkpoint of an all-zero stage-1 state (shapes only matter; nothing compiles)."""
  abstract = jax.eval_shape(
    lambda: trainer.create_state(config, mode, num_attributes, num_classes, size)
  )
  state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract)
  state = state.replace(step=np.asarray(config.num_train_steps, abstract.step.dtype))
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
    trainer.restore_pretrained(config, tmp_path, "joint", 10, _TINY_TRAIN_IDS, 32)
  restored, info = trainer.restore_pretrained(
    config, tmp_path, "joint", num_attributes, num_classes, 32
  )
  assert info["step"] == config.num_train_steps
  assert restored.params["net"]["attribute_head"]["logits"]["kernel"].shape[-1] == num_attributes


def test_eval_mode_refuses_a_checkpoint_of_other_attributes(tiny_data_dir, tmp_path):
  config = _tiny(tiny_data_dir, variants=("joint",))
  config.finetune.enabled = False
  _zero_checkpoint(config, tmp_path, "joint", 10, _TINY_TRAIN_IDS)
  config.attributes.names = tuple(face_renderer.IDENTITY_ATTRIBUTES[:9])
  with pytest.raises(ValueError, match="attribute_head"):
    attributes.run(config, str(tmp_path), "eval")
  with pytest.raises(ValueError, match="no (usable )?checkpoint"):
    attributes.run(_tiny(tiny_data_dir, variants=("separate",)), str(tmp_path), "eval")


def test_restore_reads_both_stages(tiny_data_dir, tmp_path):
  config = _tiny(tiny_data_dir, variants=("concat",))
  data = _data(config)
  stills, protocol = finetune_lib.load_protocol(config, data)
  _zero_checkpoint(config, tmp_path, "concat", 10, _TINY_TRAIN_IDS)
  classes = len(protocol.probe_identities)
  pretrained, _ = trainer.restore_pretrained(config, tmp_path, "concat", 10, _TINY_TRAIN_IDS, 32)
  finetuned = jax.eval_shape(
    lambda: finetune_lib.create_finetune_state(config, "concat", pretrained, 10, classes)
  )
  finetuned = jax.tree.map(lambda s: np.full(s.shape, 0.5, s.dtype), finetuned)
  finetuned = finetuned.replace(step=np.asarray(2, finetuned.step.dtype))
  with TrainCheckpointer(tmp_path / "concat" / "finetune", keep=1) as ckpt:
    ckpt.save(2, finetuned, {"batches_consumed": 2, "batch_size": 4})
  with pytest.raises(ValueError, match="protocol.json is missing"):
    attributes.restore(config, tmp_path, data)
  finetune_lib.check_protocol_record(tmp_path / "concat" / "finetune", protocol, write=True)
  states, infos = attributes.restore(config, tmp_path, data)
  assert set(states["concat"]) == {"pretrained", "finetuned"}
  assert infos["concat"]["finetuned"]["step"] == 2
  kernel = states["concat"]["finetuned"].params["net"]["identity_head"]["logits"]["kernel"]
  assert kernel.shape == (8, classes) and np.all(np.asarray(kernel) == 0.5)
  other = dataclasses.replace(protocol, finetune=protocol.finetune[:-1])
  with pytest.raises(ValueError, match="identity protocol differs"):
    finetune_lib.check_protocol_record(tmp_path / "concat" / "finetune", other, write=True)
  empty = dataclasses.replace(protocol, finetune=np.zeros(0, np.int64))
  with pytest.raises(ValueError, match="images_per_identity"):
    finetune_lib.finetune(config, tmp_path, "concat", pretrained, 10, stills, empty)


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
  model = trainer.build_model(config, mode, 10, 2000, axis_name=None)
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
  abstract = jax.eval_shape(lambda: trainer.create_state(config, "joint", 10, 14, 32))
  rng = np.random.default_rng(0)
  pretrained = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), abstract)
  state = finetune_lib.create_finetune_state(config, "joint", pretrained, 10, 3)
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


# ---------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_all_mode_end_to_end_tiny(attributes_run):
  # The session's run (conftest) trains the joint variant only: each variant compiles two
  # train steps; the default config runs and compares all three.
  config, workdir, results = attributes_run.config, attributes_run.workdir, attributes_run.results
  saved = json.loads((workdir / "eval" / "attributes.json").read_text())
  assert saved["checkpoint"]["joint/pretrained"]["step"] == config.num_train_steps
  assert saved["checkpoint"]["joint/finetuned"]["step"] == config.finetune.num_train_steps
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
    assert len(ident["cmc_by_distractors"]["10"]) == config.evals.identification.max_rank
    assert (workdir / "figures" / f"attributes_cmc_{stage}.png").stat().st_size > 0
    assert (workdir / "figures" / f"attributes_rank1_vs_distractors_{stage}.png").stat().st_size
  cam = out["pretrained"]["cam"]["per_attribute"]
  assert cam["Bald"]["region"] == "scalp" and cam["Male"]["region"] == "face"
  assert all(0.0 <= c["share"] <= 1.0 for c in cam.values() if c.get("num_images"))
  assert (workdir / "joint" / "checkpoints").is_dir()
  assert (workdir / "joint" / "finetune" / "checkpoints").is_dir()
  assert (workdir / "figures" / "attributes_cam_joint.png").stat().st_size > 0
  markdown = (workdir / "eval" / "attributes.md").read_text()
  assert "Ours-J (joint)" in markdown and "## Attribute accuracy" in markdown
  assert results["protocol"]["distractor_identities"] == 3
  assert results["protocol"]["distractor_frames"] == ident["num_distractors"] - 12
  # The run offers its stage-1 network to benchmarks and inference from the workdir alone.
  model, info = registry.load_eval_model(str(workdir), batch_size=8)
  assert info["step"] == config.num_train_steps
  assert {"embed", "attribute_logits", "attribute_maps"} <= model.capabilities()
  images = np.zeros((3, 32, 32, 3), np.uint8)
  assert model.embed(images).shape == (3, 8)
  assert model.extras["attribute_maps"](images)["maps"].shape == (3, 32, 32, 10)


@pytest.mark.slow
def test_eval_mode_rereads_the_checkpoints_and_writes_the_same_numbers(attributes_run, tmp_path):
  saved = json.loads((attributes_run.workdir / "eval" / "attributes.json").read_text())
  copy = attributes_run.copy_to(tmp_path)
  registry.run(attributes_run.config, str(copy), "eval")
  again = json.loads((copy / "eval" / "attributes.json").read_text())  # NaN -> null
  assert again["variants"] == saved["variants"] and again["protocol"] == saved["protocol"]
