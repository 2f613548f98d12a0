"""Tests of the FAN package (jfr.methods.fan) and its config (configs/fan.py)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import fan as fan_config
from jfr.losses import fan as fan_losses
from jfr.methods.fan import aggregator, run, settings, step, trainer
from jfr.methods.fan import report as fan_report

get_config = fan_config.get_config


# --------------------------------------------------------------------------- config


def _loss_weights(config):
  loss = config.loss
  return (loss.lambda_dis, loss.lambda_rec, loss.lambda_adv, loss.lambda_tv)


def test_default_config_carries_the_paper_losses_but_lambda_rec_and_augmentation():
  config = get_config()
  # The paper's weights but lambda_rec (0.5 in the paper; 4 chosen on held-out train ids).
  assert _loss_weights(config) == (1.0, 4.0, 1.0, 1e-4)
  assert config.loss.center_rate == 0.5
  assert config.augment.flip and config.augment.contrast > 0
  assert config.augment.brightness > 0 and config.augment.saturation > 0
  assert (config.augment.motion_blur_prob, config.augment.motion_blur_max_size) == (0.5, 9)
  assert config.dataset.name == "synthetic_faces/small"
  assert config.extractor.head.kind == "arcface"
  assert config.optimizer.name == "adam"
  assert (
    config.optimizer.schedule,
    tuple(config.optimizer.boundaries),
    config.optimizer.decay_factor,
  ) == ("steps", (0.5,), 0.25)
  settings.check_config(config)


def test_paper_config_carries_the_paper_settings():
  config = get_config("paper")
  assert config.dataset.name == "synthetic_faces/default"
  model = config.extractor.model
  assert (tuple(model.stage_sizes), model.block, model.embedding_dim) == (
    (3, 4, 6, 3),
    "bottleneck",
    512,
  )
  assert (config.batch_size, config.aggregator.set_size, config.loss.beta) == (6, 10, 32.0)
  assert config.optimizer.learning_rate == 5e-5
  assert (config.aggregator.upsample_init, config.aggregator.residual) == ("default", "none")
  assert config.aggregator.shading_symmetry == 0.0
  assert _loss_weights(config) == (1.0, 0.5, 1.0, 1e-4)
  assert config.optimizer.learning_rate * config.optimizer.decay_factor == pytest.approx(1.25e-5)
  assert config.num_train_steps == 6 * 1_100_000 // 6
  config.train_sets_per_epoch = 6000  # 6 epochs of a smaller set, in steps
  assert config.num_train_steps == 6000
  settings.check_config(config)


def test_unknown_config_variant_is_an_error():
  with pytest.raises(ValueError, match="unknown variant"):
    get_config("huge")


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("variants", ("full", "nope"), "unknown"),
    ("variants", (), "at least one"),
    ("eval_variants.fan_blur", ("no_tv",), "fan_blur"),
    ("aggregator.min_set_size", 0, "min_set_size"),
    ("evals.fan_blur.set_configs", ((40, 1),), "max_members"),
  ],
)
def test_check_config_rejects_inconsistent_settings(field, value, match):
  config = get_config()
  *path, leaf = field.split(".")
  node = config
  for key in path:
    node = node[key]
  node[leaf] = value
  with pytest.raises(ValueError, match=match):
    settings.check_config(config)


def test_extractor_config_is_a_recognition_config_on_the_fan_data():
  config = get_config("tiny")
  config.dataset.data_dir = "/somewhere"
  config.seed = 5
  derived = settings.extractor_config(config)
  assert derived.method == "recognition" and derived.seed == 5
  assert derived.dataset.data_dir == "/somewhere"
  assert derived.dataset.name == "synthetic_faces/tiny"
  assert derived.num_train_steps == config.extractor.num_train_steps
  assert derived.model.embedding_dim == config.extractor.model.embedding_dim


def test_variant_config_shortens_only_the_ablations():
  config = get_config()
  assert settings.variant_config(config, "full").num_train_steps == config.num_train_steps
  assert (
    settings.variant_config(config, "no_adv").num_train_steps == config.ablation_num_train_steps
  )
  config.ablation_num_train_steps = -1
  assert settings.variant_config(config, "no_adv").num_train_steps == config.num_train_steps


# ------------------------------------------------------------------------ bad input


def _sets(b=2, n=3, size=32):
  frames = np.random.default_rng(0).uniform(-1, 1, (b, n, size, size, 3)).astype(np.float32)
  return frames, np.ones((b, n), bool)


def test_validate_face_sets_accepts_a_valid_padded_batch():
  frames, mask = _sets()
  mask[1, 2] = False
  frames[1, 2] = np.nan  # padded members are never read
  assert aggregator.validate_face_sets(frames, mask, max_members=4, image_size=32) is None
  mask[1, 2] = True  # the same NaN frame as a real member is refused
  with pytest.raises(
    ValueError, match=r"non-finite pixels in real member\(s\) \(set, member\) \[\[1, 2\]\]"
  ):
    aggregator.validate_face_sets(frames, mask, max_members=4, image_size=32)


@pytest.mark.parametrize(
  "case,match",
  [
    ("empty", "N >= 1"),
    ("all_false", "no real member"),
    ("too_many", "max_members"),
    ("wrong_size", "32x32"),
    ("nan", "non-finite"),
    ("int_mask", "boolean"),
  ],
)
def test_validate_face_sets_rejects_bad_input(case, match):
  frames, mask = _sets()
  if case == "empty":
    frames, mask = frames[:, :0], mask[:, :0]
  elif case == "all_false":
    mask[0] = False
  elif case == "too_many":
    frames, mask = _sets(n=5)
  elif case == "wrong_size":
    frames, mask = _sets(size=16)
  elif case == "nan":
    frames[1, 0, 3, 4, 1] = np.nan
  elif case == "int_mask":
    mask = mask.astype(np.int32)
  with pytest.raises(ValueError, match=match):
    aggregator.validate_face_sets(frames, mask, max_members=4, image_size=32)


def test_make_aggregator_validates_before_running_the_generator():
  config = get_config("tiny")
  aggregate = aggregator.make_aggregator(config, generator_params=None, image_size=32)
  frames, mask = _sets(n=config.aggregator.max_members + 1)
  with pytest.raises(ValueError, match="max_members"):
    aggregate(frames, mask[:, : frames.shape[1]])
  frames, mask = _sets()
  mask[:] = False
  with pytest.raises(ValueError, match="no real member"):
    aggregate(frames, mask)


# -------------------------------------------------------------------------- figures


def test_aggregation_grid_has_a_row_per_set_and_checks_shapes():
  sets = np.full((2, 3, 8, 8, 3), -1.0, np.float32)
  outputs = np.zeros((2, 8, 8, 3), np.float32)
  fig = fan_report.aggregation_grid(sets, outputs, "t")
  assert len(fig.axes) == 2 * (3 + 2)
  with pytest.raises(ValueError, match="do not match"):
    fan_report.aggregation_grid(sets, outputs[:1], "t")


# ----------------------------------------------------------------------- train step


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["full", "no_adv"])
def test_train_step_updates_the_networks_and_moves_the_centres_by_eq10(variant):
  config = get_config("tiny")
  config.parallelism = "none"
  size, n, b, dim, classes = 32, config.aggregator.set_size, config.batch_size, 16, 5
  extractor_module = aggregator.extractor_module(config)
  extractor = jax.jit(lambda x: extractor_module.init(jax.random.PRNGKey(1), x, train=False))(
    jnp.zeros((1, size, size, 3))
  )
  rng = np.random.default_rng(0)
  centers = rng.normal(size=(classes, dim)).astype(np.float32)
  initial = trainer.initial_variables(config, size)
  state = trainer.create_aggregator_state(config, extractor, centers, initial, 10)
  mask = np.ones((b, n), bool)
  mask[0, 2:] = False
  batch = {
    "frames": rng.uniform(-1, 1, (b, n, size, size, 3)).astype(np.float32),
    "mask": mask,
    "label": np.array([0, 3, 3, 1]),
    "positive": rng.uniform(-1, 1, (b, size, size, 3)).astype(np.float32),
    "negative": rng.uniform(-1, 1, (b, size, size, 3)).astype(np.float32),
  }
  new, metrics = jax.jit(step.make_train_step(config, variant))(state, batch, jax.random.PRNGKey(0))
  assert float(metrics["nonfinite"]) == 0.0
  changed = lambda name: any(  # noqa: E731
    not np.allclose(x, y)
    for x, y in zip(jax.tree.leaves(state.params[name]), jax.tree.leaves(new.params[name]))
  )
  assert changed("generator")
  assert changed("discriminator") == (variant == "full")
  embed = lambda x: extractor_module.apply(extractor, x, train=False)  # noqa: E731
  f_inputs = embed(batch["frames"].reshape(-1, size, size, 3)).reshape(b, n, -1)
  expected = fan_losses.update_centers(
    centers, batch["label"], embed(batch["positive"]), f_inputs, mask, rate=config.loss.center_rate
  )
  new_centers = np.asarray(new.extras["centers"])
  np.testing.assert_allclose(new_centers, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(new_centers[[2, 4]], centers[[2, 4]])
  assert not np.allclose(new_centers[[0, 1, 3]], centers[[0, 1, 3]])


# ----------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_run_trains_evaluates_and_writes_tables_and_figures(fan_run):
  config, workdir, results = fan_run.config, fan_run.workdir, fan_run.results
  assert set(results["fan_ytf"]) == {"avg", "full", "no_adv"}
  columns = {f"N={n},n_avg={a}" for n, a in config.evals.fan_ytf.set_configs}
  for row in results["fan_ytf"].values():
    assert set(row) == columns
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in row.values())
  assert results["fan_ytf"]["full"]["N=2,n_avg=2"]["embedded_images"] == 2 * 12
  assert results["fan_ytf"]["avg"]["N=2,n_avg=2"]["embedded_images"] == 4 * 12
  assert set(results["fan_blur"]) == {"avg", "full"}
  assert set(results["fan_blur"]["avg"]) == {"7", "11"}
  cost = results["fan_ijb"]["extraction_cost"]
  assert 0.0 < cost["saved_fraction"] < 1.0
  assert set(results["fan_ijb"]["full"]["mean"]) == {"rank1", "tpir_at_fpir"}
  assert 0.0 <= results["fan_ijb"]["full"]["verification"]["eer"] <= 1.0
  for name in ("fan_ytf", "fan_blur", "fan_ijb", "fan_features", "fan_timing", "extractor", "fan"):
    assert (workdir / "eval" / f"{name}.json").exists()
  markdown = (workdir / "eval" / "fan.md").read_text()
  assert "Table 1" in markdown and "Table 4" in markdown and "Table 3" in markdown
  for variant in ("full", "no_adv"):
    for tag in ("clean", "blur7"):
      grid = Image.open(workdir / "figures" / f"fan_aggregation_{variant}_{tag}.png")
      assert grid.size[0] > grid.size[1]
  assert (workdir / "figures" / "fan_blur_accuracy.png").exists()
  timing = json.loads((workdir / "eval" / "fan_timing.json").read_text())
  assert "stage2_full" in timing and timing["total"]["wall_s"] > 0


@pytest.mark.slow
def test_eval_mode_restores_both_stages_and_reproduces_the_tables(fan_run, tmp_path):
  results = fan_run.results
  again = run.run(fan_run.config, str(fan_run.copy_to(tmp_path)), "eval")
  assert again["fan_ytf"]["full"] == results["fan_ytf"]["full"]
  assert again["fan_blur"] == results["fan_blur"]


def test_identity_centers_are_the_class_means_of_the_extractor_features():
  config = get_config("tiny")
  module = aggregator.extractor_module(config)
  variables = jax.jit(lambda x: module.init(jax.random.PRNGKey(0), x, train=False))(
    jnp.zeros((1, 32, 32, 3))
  )
  rng = np.random.default_rng(0)
  stills = {
    "image": rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
    "label": np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2]),
  }
  centers, stats = trainer.identity_centers(config, stills, variables, num_classes=3)
  feats = np.asarray(module.apply(variables, stills["image"] / 127.5 - 1.0, train=False))
  for c in range(3):
    np.testing.assert_allclose(centers[c], feats[stills["label"] == c].mean(0), atol=1e-4)
  assert stats["mean_squared_norm"] == pytest.approx(np.mean(np.sum(feats**2, 1)), rel=1e-4)
  assert stats["beta"] == config.loss.beta
  with pytest.raises(ValueError, match="missing"):
    trainer.identity_centers(config, stills, variables, num_classes=4)
