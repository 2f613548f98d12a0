"""Tests for jfr.methods.explain: the reconstruction gradient switch of Eq. 2, the decoder
initialiser, the config variants and mode checks, and (slow) an end-to-end run of
configs/explain.py:tiny shared by the tests that need a trained model (conftest
``explain_run``)."""

import functools
import json

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import explain as explain_config
from jfr.data import part_pairs
from jfr.eval import registry
from jfr.explain import suite
from jfr.methods.explain import run as method_run
from jfr.methods.explain import trainer
from jfr.models import heads
from jfr.models.decoder import ReconstructionDecoder

get_config = explain_config.get_config


class ToyBackbone(nn.Module):
  """Conv (stride 4) -> BatchNorm -> ReLU -> global max pool, the ResNet's interface."""

  @nn.compact
  def __call__(self, x, train=True, return_feature_map=False):
    conv_map = nn.relu(
      nn.BatchNorm(use_running_average=not train)(nn.Conv(3, (3, 3), strides=(4, 4))(x))
    )
    features = conv_map.max(axis=(1, 2))
    return (features, conv_map) if return_feature_map else features


def _numpy_variables(module, seed, *example):
  """NumPy-drawn variables of ``module`` (skips compiling flax initialisers)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *example)
  return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), jnp.float32), shapes)


def test_reconstruction_gradient_reaches_backbone_only_when_asked():
  size = 16
  modules = {
    "backbone": ToyBackbone(),
    "head": heads.ArcFaceHead(3),
    "decoder": ReconstructionDecoder(widths=(2, 2, 2), output_size=(size, size)),
  }
  rng = np.random.default_rng(0)
  batch = {
    "image": jnp.asarray(rng.uniform(-1, 1, (4, size, size, 3)), jnp.float32),
    "label": jnp.array([0, 1, 2, 1]),
  }
  backbone = _numpy_variables(modules["backbone"], 0, batch["image"])
  params = {
    "backbone": backbone["params"],
    "head": _numpy_variables(modules["head"], 1, jnp.zeros((1, 3)))["params"],
    "decoder": _numpy_variables(modules["decoder"], 2, jnp.zeros((1, 4, 4, 3)))["params"],
  }
  apply_fn = {k: m.apply for k, m in modules.items()}

  def config(backprop, rec_weight):
    c = get_config("tiny").unlock()
    c.decoder_backprop_to_backbone, c.rec_weight = backprop, rec_weight
    return c

  @jax.jit
  def all_grads(params):  # one compilation for the three objectives
    return [
      jax.grad(
        lambda p, c=config(*s): trainer.joint_objective(
          c, apply_fn, p, backbone["batch_stats"], batch, jax.random.PRNGKey(0)
        )[0]
      )(params)
      for s in ((True, 1.0), (False, 1.0), (True, 0.0))
    ]

  joint, detached, id_only = all_grads(params)
  chex.assert_trees_all_close(detached["backbone"], id_only["backbone"], atol=1e-6)
  chex.assert_trees_all_close(detached["decoder"], joint["decoder"], atol=1e-6)
  chex.assert_trees_all_close(joint["head"], id_only["head"], atol=1e-6)
  differences = jax.tree.leaves(
    jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), joint["backbone"], id_only["backbone"])
  )
  assert max(float(d) for d in differences) > 1e-6


def test_init_decoder_matches_flax_structure_and_scale():
  decoder = ReconstructionDecoder(widths=(64, 32, 16), output_size=(32, 32))
  example = jnp.zeros((1, 2, 2, 128))
  variables = jax.jit(functools.partial(trainer.init_decoder, decoder))(
    jax.random.PRNGKey(0), example
  )
  reference = jax.eval_shape(decoder.init, jax.random.PRNGKey(0), example)
  chex.assert_trees_all_equal_shapes_and_dtypes(variables, reference)
  params = variables["params"]
  assert all(float(jnp.abs(params[f"deconv{i}"]["bias"]).max()) == 0.0 for i in range(4))
  kernel = np.asarray(params["deconv0"]["kernel"])  # fan-in 4 * 4 * 128
  np.testing.assert_allclose(kernel.std(), np.sqrt(1.0 / (16 * 128)), rtol=0.05)
  assert np.abs(kernel).max() <= 2.0 * np.sqrt(1.0 / (16 * 128)) / 0.87962566 + 1e-6


def test_config_variants_and_checks():
  for variant in ("tiny", "paper", None):
    config = get_config(variant)
    assert config.model.pooling == "gmp" and config.method == "explain"
    assert set(config.evals.pointing_game.parts) <= set(part_pairs.PART_FIELDS)
    for block in config.evals.values():
      type_name, _ = registry.settings_of(block)
      assert type_name in registry.EVALUATORS
    maps = set(config.evals.hiding_game.methods) | set(config.evals.pointing_game.methods)
    assert maps <= set(suite.MAP_NAMES)
    with pytest.raises(AttributeError):
      config.explain.num_pair = 3  # locked: a typo is an error
  paper = get_config("paper")
  assert paper.optimizer.name == "sgd" and paper.optimizer.learning_rate == 0.02
  assert paper.decoder_optimizer.name == "adam"
  assert paper.decoder_optimizer.learning_rate == 2e-4
  assert paper.model.stage_sizes == (3, 4, 6, 3) and paper.model.block == "bottleneck"
  with pytest.raises(ValueError, match="variant"):
    get_config("huge")
  config = get_config("tiny")
  config.model.pooling = "flatten_fc"
  with pytest.raises(ValueError, match="pooling"):
    method_run.run(config, "/nonexistent", "all")
  with pytest.raises(ValueError, match="mode"):
    method_run.run(get_config("tiny"), "/nonexistent", "plot")


# ----------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_end_to_end_tiny(explain_run):
  # the session's trained, evaluated and explained :tiny run (conftest)
  config, workdir, results = explain_run.config, explain_run.workdir, explain_run.results
  ours = json.loads((workdir / "eval" / "recognition.json").read_text())
  plain = json.loads((workdir / "baseline" / "eval" / "recognition.json").read_text())
  for r in (ours, plain):
    assert 0.0 <= r["verification"]["accuracy"] <= 1.0
    assert r["checkpoint"]["step"] == config.num_train_steps
  assert ours["reconstruction_mse"] > 0 and "reconstruction_mse" not in plain

  res = json.loads((workdir / "eval" / "explain.json").read_text())
  hiding = config.evals.hiding_game
  assert set(res["hiding_game"]) == set(hiding.methods)
  for game in res["hiding_game"].values():
    assert 0.0 <= game["auc"] <= 1.0
    assert len(game["accuracy"]) == len(hiding.fractions)
    assert game["num_pairs"] == hiding.num_pairs
  pointing = res["pointing_game"]
  assert set(pointing["area_share"]) == set(config.evals.pointing_game.parts)
  for method in config.evals.pointing_game.methods:
    for part in config.evals.pointing_game.parts:
      assert 0.0 <= pointing["methods"][method]["parts"][part]["share_mean"] <= 1.0
  assert res["threshold"]["channels"] == 16
  assert results["explain"]["threshold"]["T"] == pytest.approx(res["threshold"]["tau"] / 16)
  assert not any(k.startswith("_") for k in pointing)

  assert "Table I" in (workdir / "eval" / "recognition.md").read_text()
  report = (workdir / "eval" / "explain.md").read_text()
  for title in ("Hiding game", "Pointing game"):
    assert title in report
  for name in (
    "explain_fig2_method_comparison",
    "explain_fig3_similarity_dissimilarity",
    "explain_part_pairs",
    "explain_reconstructions",
    "explain_hiding_game",
    "recognition_roc",
  ):
    assert (workdir / "figures" / f"{name}.png").stat().st_size > 1000
  assert (workdir / "baseline" / "checkpoints").is_dir()


@pytest.mark.slow
def test_explain_mode_repeats_the_saliency_numbers(explain_run, tmp_path):
  results = explain_run.results
  again = method_run.run(explain_run.config, str(explain_run.copy_to(tmp_path)), "explain")
  again = again["explain"]
  assert again["threshold"] == results["explain"]["threshold"]
  assert again["hiding_game"] == results["explain"]["hiding_game"]
  assert again["pointing_game"] == results["explain"]["pointing_game"]
