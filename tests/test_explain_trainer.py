"""Tests for jfr.train.explain: Eq. 2 against NumPy, the reconstruction gradient switch,
the max-pool similarity decomposition, the decoder initialiser, the one-part pair
renderer, and (slow) an end-to-end run of configs/explain.py:tiny."""

import functools
import json

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import explain as explain_config
from jfr.models import heads
from jfr.models.decoder import ReconstructionDecoder
from jfr.train import explain

get_config = explain_config.get_config


# --------------------------------------------------------------------------- Eq. 2


class LossTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_reconstruction_and_joint_loss_match_numpy(self):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (3, 5, 4, 3)).astype(np.float32)
    recon = rng.uniform(-1, 1, (3, 5, 4, 3)).astype(np.float32)
    id_loss = rng.uniform(0, 10, 3).astype(np.float32)
    rec = self.variant(explain.reconstruction_loss)(images, recon)
    expected_rec = np.array([np.sum((recon[b] - images[b]) ** 2) / (5 * 4 * 3) for b in range(3)])
    chex.assert_trees_all_close(rec, expected_rec, rtol=1e-5)
    joint = self.variant(lambda i, r: explain.joint_loss(i, r, 0.7))(id_loss, rec)
    chex.assert_trees_all_close(joint, id_loss + 0.7 * expected_rec, rtol=1e-5)

  def test_loss_shape_errors(self):
    with pytest.raises(ValueError, match="reconstructions"):
      explain.reconstruction_loss(jnp.zeros((2, 4, 4, 3)), jnp.zeros((2, 4, 5, 3)))
    with pytest.raises(ValueError, match="rec_loss"):
      explain.joint_loss(jnp.zeros((2,)), jnp.zeros((3,)), 1.0)


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
    c = get_config("tiny")
    c.decoder_backprop_to_backbone, c.rec_weight = backprop, rec_weight
    return c

  @jax.jit
  def all_grads(params):  # one compilation for the three objectives
    return [
      jax.grad(
        lambda p, c=config(*s): explain.joint_objective(
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
  variables = jax.jit(functools.partial(explain.init_decoder, decoder))(
    jax.random.PRNGKey(0), example
  )
  reference = jax.eval_shape(decoder.init, jax.random.PRNGKey(0), example)
  chex.assert_trees_all_equal_shapes_and_dtypes(variables, reference)
  params = variables["params"]
  assert all(float(jnp.abs(params[f"deconv{i}"]["bias"]).max()) == 0.0 for i in range(4))
  kernel = np.asarray(params["deconv0"]["kernel"])  # fan-in 4 * 4 * 128
  np.testing.assert_allclose(kernel.std(), np.sqrt(1.0 / (16 * 128)), rtol=0.05)
  assert np.abs(kernel).max() <= 2.0 * np.sqrt(1.0 / (16 * 128)) / 0.87962566 + 1e-6


# ------------------------------------------------------------ similarity decomposition


def test_similarity_decomposition_matches_loop_and_sums_to_cosine():
  rng = np.random.default_rng(1)
  convs_a = np.maximum(rng.normal(size=(2, 3, 4, 5)), 0)
  convs_b = np.maximum(rng.normal(size=(2, 3, 4, 5)), 0)
  out = explain.similarity_decomposition(convs_a, convs_b)
  expected = np.zeros((2, 3, 4))
  for p in range(2):
    f_a, f_b = convs_a[p].max(axis=(0, 1)), convs_b[p].max(axis=(0, 1))
    for k in range(5):
      y, x = np.unravel_index(np.argmax(convs_a[p, :, :, k]), (3, 4))
      expected[p, y, x] += f_a[k] * f_b[k] / (np.linalg.norm(f_a) * np.linalg.norm(f_b))
  np.testing.assert_allclose(out, expected, rtol=1e-12)
  cosine = np.asarray(
    explain.saliency.cosine_similarity(
      jnp.asarray(convs_a.max(axis=(1, 2))), jnp.asarray(convs_b.max(axis=(1, 2)))
    )
  )
  np.testing.assert_allclose(out.sum(axis=(1, 2)), cosine, rtol=1e-5)
  with pytest.raises(ValueError, match="convs_b"):
    explain.similarity_decomposition(convs_a, convs_b[:, :2])


# ------------------------------------------------------------------- one-part pairs


@pytest.mark.parametrize("part", sorted(explain.PART_FIELDS))
def test_part_pairs_differ_inside_the_part_only(part):
  out = explain.render_part_pairs(
    0, np.arange(10, 14), np.arange(20, 24), part, 64, seed=3, max_yaw=20.0, region_dilation=2
  )
  assert out["images_a"].shape == (4, 64, 64, 3) and out["region"].dtype == bool
  diff = np.abs(out["images_a"].astype(float) - out["images_b"].astype(float)).sum(-1)
  assert (diff.sum(axis=(1, 2)) > 0).all()  # the part does change
  share = (diff * out["region"]).sum(axis=(1, 2)) / diff.sum(axis=(1, 2))
  area = out["region"].mean(axis=(1, 2))
  assert share.mean() > 0.75 and share.min() > 0.5, share
  assert (area < 0.06).all() and (share > 10 * area).all()


def test_part_pairs_bad_inputs():
  ids = np.arange(3)
  with pytest.raises(ValueError, match="part"):
    explain.render_part_pairs(0, ids, ids + 5, "ears", 32, seed=0, max_yaw=10.0, region_dilation=1)
  with pytest.raises(ValueError, match="donor_ids"):
    explain.render_part_pairs(0, ids, ids, "nose", 32, seed=0, max_yaw=10.0, region_dilation=1)
  with pytest.raises(ValueError, match="donor_ids"):
    explain.render_part_pairs(
      0, ids, ids[:2] + 5, "nose", 32, seed=0, max_yaw=10.0, region_dilation=1
    )
  with pytest.raises(ValueError, match="region_dilation"):
    explain.render_part_pairs(0, ids, ids + 5, "nose", 32, seed=0, max_yaw=10.0, region_dilation=-1)


def test_config_variants_and_checks():
  for variant in ("tiny", "paper", None):
    config = get_config(variant)
    assert config.model.pooling == "gmp" and config.method == "explain"
    assert set(config.explain.parts) <= set(explain.PART_FIELDS)
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
    explain.run(config, "/nonexistent", "all")
  with pytest.raises(ValueError, match="mode"):
    explain.run(get_config("tiny"), "/nonexistent", "plot")


# ----------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_end_to_end_tiny(tmp_path):
  config = get_config("tiny")
  config.dataset.data_dir = str(tmp_path / "data")
  workdir = tmp_path / "run"
  results = explain.run(config, str(workdir), "all")

  recognition = json.loads((workdir / "eval" / "recognition.json").read_text())
  assert set(recognition) == {"ArcFace (plain)", "Ours (max pool + decoder)"}
  for r in recognition.values():
    assert 0.0 <= r["verification"]["accuracy"] <= 1.0
  assert recognition["Ours (max pool + decoder)"]["reconstruction_mse"] > 0

  res = json.loads((workdir / "eval" / "explain.json").read_text())
  assert set(res["hiding_game"]) == set(explain.HIDING_METHODS)
  for game in res["hiding_game"].values():
    assert 0.0 <= game["auc"] <= 1.0
    assert len(game["accuracy"]) == len(config.explain.fractions)
    assert game["num_pairs"] == config.explain.num_pairs
  pointing = res["pointing_game"]
  assert set(pointing["area_share"]) == set(config.explain.parts)
  for method in explain.POINTING_METHODS:
    for part in config.explain.parts:
      assert 0.0 <= pointing["methods"][method]["parts"][part]["share_mean"] <= 1.0
  assert res["threshold"]["channels"] == 16
  assert results["explain"]["threshold"]["T"] == pytest.approx(res["threshold"]["tau"] / 16)

  report = (workdir / "eval" / "explain.md").read_text()
  for title in ("Table I", "Hiding game", "Pointing game"):
    assert title in report
  for name in (
    "fig2_method_comparison",
    "fig3_similarity_dissimilarity",
    "part_pairs",
    "reconstructions",
  ):
    assert (workdir / "figures" / f"{name}.png").stat().st_size > 1000
  assert (workdir / "eval" / "hiding_game.png").exists()
  assert (workdir / "baseline" / "checkpoints").is_dir()
