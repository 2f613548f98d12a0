"""Tests of the interpretable-FR trainer (jfr.train.interpretable) and configs/interpretable.py."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from configs import interpretable as interpretable_config
from jfr.losses import diversity
from jfr.train import interpretable
from jfr.train import steps

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
  interpretable.check_config(config)


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
    interpretable.check_config(config)


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
  return config, interpretable.create_state(config, "sad_fad", num_classes=5), _tiny_pairs()


def _abstract_state(config, variant):
  """The initial state's shapes, traced without compiling anything."""
  return jax.eval_shape(lambda: interpretable.create_state(config, variant, num_classes=5))


def test_tau_carries_no_gradient_through_the_full_step(sad_fad_setup):
  config, state, batch = sad_fad_setup
  loss_fn = interpretable.make_loss_fn(config, "sad_fad", state.apply_fn)
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
    f = interpretable.unit_features(out["f"])  # config.loss.fad_on_unit_features
    tau = interpretable.batch_fad_mask(f[:b], f[b:], config.loss.fad_t, "count")
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
  step = jax.jit(interpretable.make_train_step(config, "sad_fad", state.apply_fn))
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
  assert interpretable.build_network(config, variant).keep == (
    config.model.keep if variant == "sad" else None
  )
  step = interpretable.make_train_step(config, variant, _abstract_state(config, variant).apply_fn)
  _, metrics = jax.eval_shape(
    step, _abstract_state(config, variant), _tiny_pairs(), jax.random.PRNGKey(0)
  )
  assert set(metrics) == expected | {"loss", "nonfinite"}


def test_without_occluded_branch_base_sees_clean_faces_only():
  config = _tiny_config(occluded_branch_without_fad=False)
  assert not interpretable.uses_occluded_branch(config, "base")
  assert interpretable.uses_occluded_branch(config, "fad")
  state = _abstract_state(config, "base")
  step = interpretable.make_train_step(config, "base", state.apply_fn)
  _, metrics = jax.eval_shape(step, state, _tiny_pairs(), jax.random.PRNGKey(0))
  assert set(metrics) == {"id", "accuracy", "loss", "nonfinite"}


def test_softmax_head_is_a_dense_layer_and_trains_all_losses():
  config = _tiny_config()
  config.head.kind = "softmax"
  state = _abstract_state(config, "sad_fad")
  assert set(state.params["classifier"]) == {"kernel", "bias"}
  step = interpretable.make_train_step(config, "sad_fad", state.apply_fn)
  _, metrics = jax.eval_shape(step, state, _tiny_pairs(), jax.random.PRNGKey(0))
  assert {"sad_filter", "sad_response", "fad", "id_occluded"} <= set(metrics)


def test_unit_features():
  f = jnp.array([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(
    interpretable.unit_features(f), [[0.6 * np.sqrt(2), 0.8 * np.sqrt(2)], [0.0, 0.0]], rtol=1e-6
  )


class _FakeBuilder:
  info = "the info"

  def as_dataset(self, **kwargs):
    del kwargs
    return tf.data.Dataset.from_tensor_slices({"label": np.array([0, 3, 1, 5, 2])})


def test_identity_subset_keeps_the_first_identities():
  subset = interpretable.IdentitySubset(_FakeBuilder(), 3)
  assert subset.info == "the info"
  labels = [int(ex["label"]) for ex in subset.as_dataset(split="train").as_numpy_iterator()]
  assert labels == [0, 1, 2]
  with pytest.raises(ValueError, match="num_identities"):
    interpretable.IdentitySubset(_FakeBuilder(), 1)


def test_part_rectangle_covers_the_part():
  from jfr.data import face_renderer

  template = face_renderer.frontal_landmarks(64)
  rect = interpretable.part_rectangle(template, "eyes", 2.0)
  eyes = template[36:48]
  assert rect[0, 0] == pytest.approx(eyes[:, 0].min() - 2) and rect[2, 1] == pytest.approx(
    eyes[:, 1].max() + 2
  )
  assert rect.shape == (4, 2)


@pytest.mark.parametrize("mode,t", [("count", 6), ("value", 0.9)])
def test_batch_fad_mask_averages_over_the_replicas(mode, t):
  devices = jax.local_devices()
  rng = np.random.default_rng(1)
  n = 2 * len(devices)
  f_clean = rng.normal(size=(n, 10)).astype(np.float32)
  f_occluded = (f_clean + rng.normal(size=(n, 10)) * np.linspace(0.1, 2, 10)).astype(np.float32)
  expected = np.asarray(diversity.fad_mask(f_clean, f_occluded, t, mode))
  assert 0 < expected.sum() < 10
  sharded = jax.pmap(
    lambda a, b: interpretable.batch_fad_mask(a, b, t, mode), axis_name=steps.BATCH_AXIS
  )(f_clean.reshape(len(devices), 2, 10), f_occluded.reshape(len(devices), 2, 10))
  for replica in np.asarray(sharded):
    np.testing.assert_array_equal(replica, expected)


# -------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_run_trains_compares_and_writes_tables_and_figures(tmp_path, tiny_data_dir):
  config = get_config("tiny")
  config.dataset.data_dir = tiny_data_dir
  config.run_variants = ("base", "sad_fad")
  results = interpretable.run(config, str(tmp_path), "all")
  assert set(results) == {"base", "sad_fad"}
  for res in results.values():
    assert res["peaks"]["spreadness"] >= 0.0
    assert set(res["recognition"]) == set(interpretable.SCENARIOS)
    assert set(res["retrieval"]["part_filters"]) == {"eyes", "nose", "mouth"}
    assert len(res["differences"]["eyes"]["raw"]) == config.model.feature_dim
  for name in ("base", "sad_fad"):
    assert any((tmp_path / name / "checkpoints").iterdir())
  markdown = (tmp_path / "eval" / "interpretable.md").read_text()
  for title in ("Spreadness", "Recognition", "feature difference", "retrieval"):
    assert title in markdown
  saved = json.loads((tmp_path / "eval" / "interpretable.json").read_text())
  assert set(saved["results"]) == {"base", "sad_fad"}
  for figure in (
    "fig5_peak_locations",
    "fig6_feature_difference",
    "fig8_responses_base",
    "fig8_responses_sad_fad",
  ):
    with Image.open(tmp_path / "figures" / f"{figure}.png") as image:
      assert min(image.size) > 200
