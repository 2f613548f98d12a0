"""Tests of the interpretable-FR method (jfr.methods.interpretable) and configs/interpretable.py."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import interpretable as interpretable_config
from jfr.losses import diversity
from jfr.methods.interpretable import networks
from jfr.methods.interpretable import run as method_run
from jfr.methods.interpretable import trainer

get_config = interpretable_config.get_config


# --------------------------------------------------------------------------- config


def test_paper_config_has_the_papers_hyperparameters():
  config = get_config("paper")
  assert config.model.image_size == 96 and config.model.feature_dim == 320
  assert config.model.keep == 24 and config.loss.fad_t == 260 and config.loss.sigma == 1.5
  assert config.model.trunk_widths == (32, 64, 64, 64, 128, 128, 96, 192, 192, 128, 256, 256, 160)
  assert config.model.hc_features == 192
  assert config.head.kind == "softmax" and not config.loss.fad_on_unit_features  # Eqs. 3-5
  assert config.loss.fad_mode == "count" and config.dataset.train_identities <= 0
  opt = config.optimizer
  assert (opt.name, opt.learning_rate, opt.momentum) == ("sgd", 1e-3, 0.9)
  assert opt.schedule == "steps" and len(opt.boundaries) == 2 and opt.decay_factor == 0.1
  networks.check_config(config)


def test_default_config_scales_lmf_and_fad_shares():
  config = get_config()
  assert config.model.image_size == 64 and config.model.keep == 11  # 24·16²/24² = 10.7
  assert config.loss.fad_t == round(260 / 320 * config.model.feature_dim)
  assert config.run_variants == ("base", "sad", "fad", "sad_fad")
  assert (config.occlusion.mode, config.occlusion.fill) == ("static", "black")
  gaud = get_config("gaud")
  assert (gaud.occlusion.mode, gaud.occlusion.fill) == ("dynamic", "noise")
  with pytest.raises(ValueError, match="unknown variant"):
    get_config("huge")


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("run_variants", ("base", "nope"), "run_variants"),
    ("run_variants", ("base", "base"), "run_variants"),
    ("model.keep", 65, "keep"),
    ("loss.fad_t", 9, "fad_t"),
    ("occlusion.fill", "grey", "fill"),
    ("model.image_size", 40, "image_size"),
  ],
)
def test_check_config_rejects(field, value, match):
  config = get_config("tiny")
  parent = config
  *path, leaf = field.split(".")
  for part in path:
    parent = parent[part]
  parent[leaf] = value
  with pytest.raises(ValueError, match=match):
    networks.check_config(config)


# ----------------------------------------------------------------- the step


def _tiny_pairs(batch_size: int = 8, size: int = 32, classes: int = 5):
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32)
  occluded = image.copy()
  occluded[:, 8:16, 4:28] = -1.0  # one shared black band
  return {"image": image, "occluded": occluded, "label": np.arange(batch_size) % classes}


def _tiny_config(**loss_fields):
  config = get_config("tiny")
  config.parallelism = "none"
  for key, value in loss_fields.items():
    config.loss[key] = value
  return config


@pytest.fixture(scope="module")
def sad_fad_setup():
  """(config, concrete initial state of the full method, a batch of pairs)."""
  config = _tiny_config()
  return config, trainer.create_state(config, "sad_fad", num_classes=5), _tiny_pairs()


def _abstract_state(config, variant):
  """The initial state's shapes, traced without compiling anything."""
  return jax.eval_shape(lambda: trainer.create_state(config, variant, num_classes=5))


def test_tau_carries_no_gradient_through_the_full_step(sad_fad_setup):
  config, state, batch = sad_fad_setup
  loss_fn = trainer.make_loss_fn(config, "sad_fad", state.apply_fn)
  bs = state.batch_stats["net"]
  b = batch["image"].shape[0]

  @jax.jit
  def gradients(params):
    out = state.apply_fn["net"](
      {"params": params["net"], "batch_stats": bs},
      jnp.concatenate([batch["image"], batch["occluded"]]),
      train=True,
      mutable=["batch_stats"],
    )[0]
    # the batch's τ as a constant: computed from ``params``, not from the argument ``p``
    f = diversity.unit_features(out["f"])  # config.loss.fad_on_unit_features
    tau = diversity.batch_fad_mask(f[:b], f[b:], config.loss.fad_t, "count")
    in_step = jax.value_and_grad(lambda p: loss_fn(p, bs, batch)[0])(params)
    fixed = jax.value_and_grad(lambda p: loss_fn(p, bs, batch, tau)[0])(params)
    ones = jax.grad(lambda p: loss_fn(p, bs, batch, jnp.ones_like(tau))[0])(params)
    return tau, in_step, fixed, ones

  tau, (loss, g), (loss_fixed, g_fixed), g_ones = gradients(state.params)
  assert float(tau.sum()) == config.loss.fad_t < config.model.feature_dim
  # τ computed inside the step == the same τ given as a constant: no gradient through τ
  np.testing.assert_allclose(loss, loss_fixed, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g, g_fixed)
  # ... while another τ changes the gradient (the comparison above is not vacuous)
  diffs = [float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ones))]
  assert max(diffs) > 1e-6


def test_train_step_updates_and_reports_every_loss(sad_fad_setup):
  config, state, batch = sad_fad_setup
  step = jax.jit(trainer.make_train_step(config, "sad_fad", state.apply_fn))
  new, metrics = step(state, batch, jax.random.PRNGKey(0))
  assert set(metrics) == {
    "loss",
    "id",
    "id_occluded",
    "accuracy",
    "accuracy_occluded",
    "sad_filter",
    "sad_response",
    "fad",
    "tau_fraction",
    "nonfinite",
  }
  assert float(metrics["nonfinite"]) == 0.0
  assert float(metrics["tau_fraction"]) == pytest.approx(
    config.loss.fad_t / config.model.feature_dim
  )
  k = config.model.feature_dim
  kernel = state.params["net"]["psi"]["kernel"]
  assert float(metrics["sad_filter"]) == pytest.approx(
    float(diversity.sad_filter_loss(kernel)) / (k * (k - 1)), rel=1e-5
  )
  w = config.loss
  total = (
    w.identity_weight * metrics["id"]
    + w.occluded_identity_weight * metrics["id_occluded"]
    + w.sad_filter_weight * metrics["sad_filter"]
    + w.sad_response_weight * metrics["sad_response"]
    + w.fad_weight * metrics["fad"]
  )
  np.testing.assert_allclose(metrics["loss"], total, rtol=1e-5)
  moved = [
    not np.allclose(a, b)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params))
  ]
  assert all(moved)


@pytest.mark.parametrize(
  "variant,expected",
  [
    ("base", {"id", "id_occluded", "accuracy", "accuracy_occluded"}),
    ("sad", {"id", "id_occluded", "accuracy", "accuracy_occluded", "sad_filter", "sad_response"}),
    ("fad", {"id", "id_occluded", "accuracy", "accuracy_occluded", "fad", "tau_fraction"}),
  ],
)
def test_each_variant_has_its_losses(variant, expected):
  config = _tiny_config()
  assert networks.build_network(config, variant).keep == (
    config.model.keep if variant == "sad" else None
  )
  step = trainer.make_train_step(config, variant, _abstract_state(config, variant).apply_fn)
  _, metrics = jax.eval_shape(
    step, _abstract_state(config, variant), _tiny_pairs(), jax.random.PRNGKey(0)
  )
  assert set(metrics) == expected | {"loss", "nonfinite"}


def test_without_occluded_branch_base_sees_clean_faces_only():
  config = _tiny_config(occluded_branch_without_fad=False)
  assert not networks.uses_occluded_branch(config, "base")
  assert networks.uses_occluded_branch(config, "fad")
  state = _abstract_state(config, "base")
  step = trainer.make_train_step(config, "base", state.apply_fn)
  _, metrics = jax.eval_shape(step, state, _tiny_pairs(), jax.random.PRNGKey(0))
  assert set(metrics) == {"id", "accuracy", "loss", "nonfinite"}


def test_softmax_head_is_a_dense_layer_and_trains_all_losses():
  config = _tiny_config()
  config.head.kind = "softmax"
  state = _abstract_state(config, "sad_fad")
  assert set(state.params["classifier"]) == {"kernel", "bias"}
  step = trainer.make_train_step(config, "sad_fad", state.apply_fn)
  _, metrics = jax.eval_shape(step, state, _tiny_pairs(), jax.random.PRNGKey(0))
  assert {"sad_filter", "sad_response", "fad", "id_occluded"} <= set(metrics)


# -------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_run_trains_compares_and_writes_tables_and_figures(interpretable_run):
  # the session's trained and evaluated :tiny run, variants base and sad_fad (conftest)
  config, workdir, results = (
    interpretable_run.config,
    interpretable_run.workdir,
    interpretable_run.results,
  )
  assert set(results) == {"base", "sad_fad"}
  for name, res in results.items():
    assert res["peak_spread"]["spreadness"] >= 0.0
    assert set(res["recognition"]) >= {"original", "synthetic_occlusion", "natural_occlusion"}
    assert set(res["partial_retrieval"]["part_filters"]) == {"eyes", "nose", "mouth"}
    assert len(res["feature_difference"]["eyes"]["raw"]) == config.model.feature_dim
    assert any((workdir / name / "checkpoints").iterdir())
    for eval_name in config.evals:
      saved = json.loads((workdir / name / "eval" / f"{eval_name}.json").read_text())
      assert saved["checkpoint"]["step"] == config.num_train_steps
  markdown = (workdir / "eval" / "interpretable.md").read_text()
  for title in ("Spreadness", "Recognition", "feature difference", "retrieval"):
    assert title in markdown
  saved = json.loads((workdir / "eval" / "interpretable.json").read_text())
  assert saved["variants"] == ["base", "sad_fad"]
  assert len(saved["figure_filters"]["base"]) <= config.report.figure_filters
  for figure in (
    "fig5_peak_locations",
    "fig6_feature_difference",
    "fig8_responses_base",
    "fig8_responses_sad_fad",
  ):
    with Image.open(workdir / "figures" / f"interpretable_{figure}.png") as image:
      assert min(image.size) > 200


@pytest.mark.slow
def test_eval_mode_reproduces_the_numbers_of_the_run(interpretable_run, tmp_path):
  config, results = interpretable_run.config, interpretable_run.results
  config.run_variants = ("base",)  # one variant keeps the test short
  again = method_run.run(config, str(interpretable_run.copy_to(tmp_path)), "eval")
  for name in again:
    for eval_name in config.evals:
      before = {k: v for k, v in results[name][eval_name].items() if not k.startswith("_")}
      after = {k: v for k, v in again[name][eval_name].items() if not k.startswith("_")}
      assert json.dumps(before, default=str) == json.dumps(after, default=str)


def test_run_refuses_an_unknown_mode():
  with pytest.raises(ValueError, match="mode"):
    method_run.run(get_config("tiny"), "/nonexistent", "explain")
