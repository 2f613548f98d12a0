"""Tests for jfr.models.resnet and jfr.models.heads."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfr.models import heads
from jfr.models import resnet

_TINY = functools.partial(resnet.ResNet, stage_sizes=(1, 1), num_filters=4, embedding_dim=6)


def _num_params(variables):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))


def _images(batch, seed=1):
  return np.random.default_rng(seed).uniform(-1, 1, (batch, 32, 32, 3)).astype(np.float32)


def _variables(model, x):
  """Variables with ``model.init``'s structure, filled from NumPy.

  (Tests of shapes and outputs need no real initialisation, and XLA:CPU takes
  seconds to compile each random draw of an init.)
  """
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0), x)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = path[-1].key
    if name in ("var", "scale"):
      return np.ones(leaf.shape, leaf.dtype)
    if name in ("mean", "bias"):
      return np.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.mark.parametrize(
  "factory,want",
  [(resnet.ResNet18, 11_689_512), (resnet.ResNet34, 21_797_672), (resnet.ResNet50, 25_557_032)],
)
def test_imagenet_configuration_matches_reference_parameter_count(factory, want):
  # With the ImageNet stem and a 1000-way FC after global average pooling the
  # backbones are the published ResNets (torchvision's counts).
  model = factory(pooling="gap", stem="imagenet", embedding_dim=1000)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)))
  assert _num_params(shapes) == want


def test_face_stem_at_112_gives_7x7_map():
  model, channels = resnet.ResNet50(pooling="flatten_fc"), 2048
  x = jnp.zeros((2, 112, 112, 3))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  emb, fmap = jax.eval_shape(
    functools.partial(model.apply, train=False, return_feature_map=True), variables, x
  )
  assert emb.shape == (2, 512) and fmap.shape == (2, 7, 7, channels)
  assert variables["params"]["fc"]["kernel"].shape == (7 * 7 * channels, 512)
  # The embedding BN has a bias but a fixed unit scale (insightface).
  assert set(variables["params"]["embedding_bn"]) == {"bias"}


@pytest.mark.parametrize(
  "pooling,dim,stem,side,dtype",
  [
    ("flatten_fc", 6, "face", 8, jnp.float32),
    ("gap", 6, "imagenet", 4, jnp.float32),
    ("gmp", 8, "face", 8, jnp.bfloat16),
  ],
)
def test_tiny_outputs(pooling, dim, stem, side, dtype):
  model = _TINY(pooling=pooling, stem=stem, dtype=dtype)
  x = _images(3)
  variables = _variables(model, x)
  emb, fmap = jax.jit(functools.partial(model.apply, train=False, return_feature_map=True))(
    variables, x
  )
  assert emb.shape == (3, dim) and fmap.shape == (3, side, side, 8)
  # Parameters and outputs stay float32 whatever the computation dtype.
  assert emb.dtype == fmap.dtype == jnp.float32
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
  assert np.all(np.isfinite(emb))
  if pooling == "gmp":
    np.testing.assert_array_equal(emb, np.asarray(fmap).max(axis=(1, 2)))
  else:
    embed = jax.jit(functools.partial(model.apply, train=False))
    np.testing.assert_allclose(embed(variables, x), emb, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def gap_model():
  """A tiny 'gap' ResNet, a batch, its variables and its train-mode (embedding, updates)."""
  model = _TINY(pooling="gap")
  x = _images(4)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  out = jax.jit(functools.partial(model.apply, mutable=["batch_stats"]))(variables, x)
  return x, variables, out


def test_train_mode_updates_batch_stats_and_blocks_start_as_identity(gap_model):
  _, variables, (_, updates) = gap_model
  before = variables["batch_stats"]["stem_bn"]["mean"]
  assert not np.allclose(updates["batch_stats"]["stem_bn"]["mean"], before)
  assert np.all(variables["params"]["BasicBlock_0"]["BatchNorm_1"]["scale"] == 0)


def test_bottleneck_and_dropout():
  model = _TINY(block_cls=resnet.BottleneckBlock, dropout_rate=0.5)
  x = _images(2)
  variables = _variables(model, x)
  assert variables["params"]["BottleneckBlock_1"]["Conv_2"]["kernel"].shape == (1, 1, 8, 32)
  run = jax.jit(
    lambda key: model.apply(variables, x, rngs={"dropout": key}, mutable=["batch_stats"])[0]
  )
  assert not np.allclose(run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(2)))


def test_batch_norm_syncs_across_pmap_devices(gap_model):
  x, variables, (want, _) = gap_model
  synced = _TINY(pooling="gap", axis_name="batch")
  got = jax.pmap(
    lambda v, xs: synced.apply(v, xs, mutable=["batch_stats"])[0],
    axis_name="batch",
    in_axes=(None, 0),
    devices=jax.devices()[:2],
  )(variables, x.reshape(2, 2, 32, 32, 3))
  np.testing.assert_allclose(np.asarray(got).reshape(4, -1), want, rtol=1e-4, atol=1e-5)


def test_conv_kernel_init_matches_he_normal_statistics():
  kernel = resnet.conv_kernel_init()(jax.random.PRNGKey(0), (3, 3, 16, 64))
  assert kernel.shape == (3, 3, 16, 64)
  # Truncated (at 2 sigma) normal with variance 2 / fan_in, fan_in = 3 * 3 * 16.
  np.testing.assert_allclose(np.std(kernel), np.sqrt(2.0 / 144), rtol=0.05)
  assert np.abs(kernel).max() <= 2 * np.sqrt(2.0 / 144) / 0.87962566 + 1e-6


@pytest.mark.parametrize(
  "kwargs,x,match",
  [
    ({}, jnp.zeros((2, 32, 32)), "x: expected images"),
    ({}, jnp.zeros((2, 32, 32, 1)), "x: expected images"),
    ({"pooling": "avg"}, jnp.zeros((2, 32, 32, 3)), "pooling"),
    ({"stem": "big"}, jnp.zeros((2, 32, 32, 3)), "stem"),
  ],
)
def test_resnet_rejects_bad_input(kwargs, x, match):
  with pytest.raises(ValueError, match=match):
    _TINY(**kwargs).init(jax.random.PRNGKey(0), x)


def test_arcface_head_returns_cosines():
  x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
  head = heads.ArcFaceHead(num_classes=3)
  variables = head.init(jax.random.PRNGKey(1), x)
  cos = head.apply(variables, x)
  w = np.asarray(variables["params"]["kernel"])
  xn = np.asarray(x)
  want = np.array(
    [
      [xn[i] @ w[:, j] / np.linalg.norm(xn[i]) / np.linalg.norm(w[:, j]) for j in range(3)]
      for i in range(5)
    ]
  )
  np.testing.assert_allclose(cos, want, rtol=1e-5, atol=1e-6)
  assert w.shape == (4, 3)


def test_softmax_head_and_validation():
  x = jnp.ones((2, 4))
  head = heads.SoftmaxHead(num_classes=7)
  variables = head.init(jax.random.PRNGKey(1), x)
  assert head.apply(variables, x).shape == (2, 7)
  with pytest.raises(ValueError, match="x: expected embeddings"):
    heads.ArcFaceHead(3).init(jax.random.PRNGKey(0), jnp.ones((2, 3, 4)))
  np.testing.assert_allclose(np.linalg.norm(heads.l2_normalize(jnp.array([[3.0, 4.0]]))), 1.0)
  np.testing.assert_array_equal(heads.l2_normalize(jnp.zeros((1, 2))), np.zeros((1, 2)))
