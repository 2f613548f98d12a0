"""Tests for jfr.models.iresnet (equality with PyTorch: tests/test_convert.py)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfr.models import backbones, iresnet
from jfr.train import config_blocks

# Parameters of arcface_torch's iresnet18/50/100 counted by PyTorch (sum of numel over
# model.parameters()) minus the 512 of features.weight, which is frozen at 1 there and
# no parameter here.
TORCH_PARAMS = {"r18": 24_025_600 - 512, "r50": 43_590_848 - 512, "r100": 65_156_160 - 512}


def init(module, size=32, batch=2):
  x = jnp.zeros((batch, size, size, 3))
  return jax.jit(functools.partial(module.init, train=False))(jax.random.PRNGKey(0), x)


@pytest.mark.parametrize("arch", sorted(TORCH_PARAMS))
def test_parameter_count_equals_arcface_torch(arch):
  module = iresnet.iresnet(arch)
  shapes = jax.eval_shape(lambda: init(module, 112, 1))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))
  assert count == TORCH_PARAMS[arch]


def test_layout_names_and_shapes():
  module = iresnet.iresnet("r18", num_filters=4, embedding_dim=8)
  v = init(module)
  p = v["params"]
  assert sorted(p) == sorted(
    [
      "conv1",
      "bn1",
      "prelu",
      *[f"layer{s}_{i}" for s in range(1, 5) for i in range(2)],
      "bn2",
      "fc",
      "features",
    ]
  )
  assert p["conv1"]["kernel"].shape == (3, 3, 3, 4)
  assert p["prelu"]["negative_slope"].shape == (4,)
  np.testing.assert_allclose(p["prelu"]["negative_slope"], 0.25)
  # every stage's first block projects its shortcut (stride 2), the others do not
  assert p["layer1_0"]["downsample_conv"]["kernel"].shape == (1, 1, 4, 4)
  assert "downsample_conv" not in p["layer1_1"]
  assert p["layer4_0"]["conv2"]["kernel"].shape == (3, 3, 32, 32)
  assert p["fc"]["kernel"].shape == (2 * 2 * 32, 8)  # 32 px -> 2x2 final map
  assert set(p["features"]) == {"bias"}  # BatchNorm1d scale fixed at 1
  assert set(v["batch_stats"]["features"]) == {"mean", "var"}


def test_prelu_is_per_channel():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 3, 4)), jnp.float32)
  slope = jnp.asarray([0.1, 0.2, -0.3, 2.0])
  y = iresnet.PReLU().apply({"params": {"negative_slope": slope}}, x)
  np.testing.assert_allclose(y, np.where(x >= 0, x, np.asarray(slope) * x), rtol=1e-6)


def test_block_pads_like_pytorch():
  """A stride-2 block equals convolutions padded by 1 on every side (not Flax 'SAME')."""
  module = iresnet.iresnet("r18", num_filters=4, embedding_dim=8)
  v = init(module)
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1, 8, 8, 4)), jnp.float32)
  bp = v["params"]["layer2_0"]
  bs = v["batch_stats"]["layer2_0"]

  def bn(h, name, channels):
    scale = bp[name]["scale"] / jnp.sqrt(bs[name]["var"] + 1e-5)
    return (h - bs[name]["mean"]) * scale + bp[name]["bias"]

  def conv(h, kernel, stride, pad):
    return jax.lax.conv_general_dilated(
      h, kernel, (stride, stride), [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )

  y = conv(bn(x, "bn1", 4), bp["conv1"]["kernel"], 1, 1)
  y = bn(y, "bn2", 8)
  y = jnp.where(y >= 0, y, bp["prelu"]["negative_slope"] * y)
  y = bn(conv(y, bp["conv2"]["kernel"], 2, 1), "bn3", 8)
  expected = y + bn(conv(x, bp["downsample_conv"]["kernel"], 2, 0), "downsample_bn", 8)

  conv_ = functools.partial(nn.Conv, use_bias=False, padding=((1, 1), (1, 1)))
  norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=1e-5)
  block = iresnet.IBasicBlock(8, 2, conv_, norm)
  out = block.apply({"params": bp, "batch_stats": bs}, x)
  assert out.shape == (1, 4, 4, 8)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_train_mode_updates_statistics_with_pytorch_momentum():
  module = iresnet.iresnet("r18", num_filters=4, embedding_dim=8, dropout_rate=0.5)
  v = init(module)
  x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (4, 32, 32, 3)), jnp.float32)
  apply = jax.jit(functools.partial(module.apply, train=True, mutable=["batch_stats"]))
  emb, updates = apply(v, x, rngs={"dropout": jax.random.PRNGKey(0)})
  assert emb.shape == (4, 8)
  # The stem BN sees conv1(x): running mean <- 0.9 * 0 + 0.1 * batch mean.
  stem = jax.lax.conv_general_dilated(
    x,
    v["params"]["conv1"]["kernel"],
    (1, 1),
    [(1, 1)] * 2,
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )
  np.testing.assert_allclose(
    updates["batch_stats"]["bn1"]["mean"], 0.1 * stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6
  )
  # in training the features BN normalises over the batch: zero mean (its bias is 0)
  np.testing.assert_allclose(emb.mean(axis=0), 0.0, atol=1e-4)
  with pytest.raises(Exception):  # dropout needs its rng in training
    module.apply(v, x, train=True, mutable=["batch_stats"])


def test_registry_config_and_outputs():
  cfg = config_blocks.iresnet("r18", num_filters=4, embedding_dim=8)
  module = backbones.build_backbone(cfg, axis_name=None)
  assert isinstance(module, iresnet.IResNet) and tuple(module.stage_sizes) == (2, 2, 2, 2)
  v = init(module)
  x = jnp.zeros((2, 32, 32, 3))
  emb, fmap = module.apply(v, x, train=False, return_feature_map=True)
  assert emb.shape == (2, 8) and fmap.shape == (2, 2, 2, 32)
  cfg.pooling = "gmp"
  gmp = backbones.build_backbone(cfg, axis_name=None)
  out, fmap = gmp.apply(init(gmp), x, train=False, return_feature_map=True)
  np.testing.assert_allclose(out, fmap.max(axis=(1, 2)))
  cfg.arch = "r17"
  with pytest.raises(ValueError, match="arch"):
    backbones.build_backbone(cfg, axis_name=None)
  with pytest.raises(ValueError, match="x: expected images"):
    module.apply(v, jnp.zeros((2, 32, 32)), train=False)
