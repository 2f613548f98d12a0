"""Tests for jfr.train.steps: one step under jit, pmap and jit + mesh agrees on 1, 2, 4 devices."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfr.losses.margin import softmax_cross_entropy
from jfr.models.resnet import conv_kernel_init
from jfr.train import state as state_lib
from jfr.train import steps


class _TinyConvNet(nn.Module):
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Conv(8, (3, 3), kernel_init=conv_kernel_init())(x)
    x = nn.BatchNorm(use_running_average=not train, axis_name=self.axis_name, momentum=0.8)(x)
    x = nn.relu(x).mean(axis=(1, 2))
    return nn.Dense(5)(x)


def _train_step(state, batch, rng):
  del rng  # no randomness: every mode must agree exactly

  def loss_fn(params):
    logits, updates = state.apply_fn["net"](
      {"params": params, "batch_stats": state.batch_stats["net"]},
      batch["image"],
      mutable=["batch_stats"],
    )
    return softmax_cross_entropy(logits, batch["label"]).mean(), updates["batch_stats"]

  (loss, new_bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params["net"])
  grads, loss = steps.cross_replica_mean((grads, loss))
  new_state = state_lib.apply_gradients(state, {"net": grads}, batch_stats={"net": new_bs})
  new_state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
  return new_state, {"loss": loss, "nonfinite": nonfinite}


def _batches(num):
  rng = np.random.default_rng(0)
  return [
    {
      "image": rng.uniform(-1, 1, (8, 6, 6, 3)).astype(np.float32),
      "label": rng.integers(0, 5, 8).astype(np.int32),
    }
    for _ in range(num)
  ]


@functools.lru_cache(maxsize=None)
def _initial_state(axis_name):
  """The initial state for a BatchNorm ``axis_name`` (shared: the steps copy what they donate)."""
  return state_lib.create_train_state(
    jax.random.PRNGKey(0),
    {"net": (_TinyConvNet(axis_name), jnp.zeros((1, 6, 6, 3)))},
    {"net": optax.sgd(0.5, momentum=0.9)},
  )


def _train(parallelism, num_devices, num_steps=3):
  state = _initial_state(steps.bn_axis_name(parallelism))
  compiled = steps.compile_step(_train_step, parallelism, jax.devices()[:num_devices])
  placed = compiled.put_state(state)
  losses = []
  for batch in _batches(num_steps):
    placed, metrics = compiled.step(placed, compiled.put_batch(batch))
    losses.append(float(compiled.fetch(metrics)["loss"]))
  return compiled.fetch(placed), losses


@pytest.fixture(scope="module")
def reference():
  return _train("none", 1)


@pytest.mark.parametrize("parallelism", ["pmap", "jit"])
@pytest.mark.parametrize("num_devices", [1, 2, 4])
def test_modes_agree(reference, parallelism, num_devices):
  ref_state, ref_losses = reference
  state, losses = _train(parallelism, num_devices)
  assert int(state.step) == int(ref_state.step) == 3
  # The shared initial state survives the donating steps.
  assert int(_initial_state(steps.bn_axis_name(parallelism)).step) == 0
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
  # The updates move the parameters far more than the tolerance.
  assert np.abs(ref_state.params["net"]["Dense_0"]["kernel"]).max() > 0.1
  for got, want in [
    (state.params, ref_state.params),
    (state.batch_stats, ref_state.batch_stats),
    (state.opt_state, ref_state.opt_state),
  ]:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)


def test_cross_replica_mean():
  x = jnp.arange(4.0)
  np.testing.assert_array_equal(jax.jit(steps.cross_replica_mean)(x), x)
  out = jax.pmap(steps.cross_replica_mean, axis_name="batch")(x)
  np.testing.assert_allclose(out, np.full(4, 1.5))


def _rng_step(state, batch, rng):
  del batch
  return state, {"key": rng}


def test_step_rng_folds_in_step_and_device():
  state = _initial_state(None)
  batch = np.zeros((4, 1), np.float32)
  compiled = steps.compile_step(_rng_step, "none")
  placed, metrics = compiled.step(compiled.put_state(state), compiled.put_batch(batch))
  np.testing.assert_array_equal(metrics["key"], jax.random.fold_in(state.rng, 0))
  _, metrics = compiled.step(placed, compiled.put_batch(batch))
  np.testing.assert_array_equal(metrics["key"], jax.random.fold_in(state.rng, 1))

  pmapped = steps.pmap_step(_rng_step, devices=jax.devices()[:4])
  _, metrics = pmapped(steps.replicate(state, jax.devices()[:4]), steps.shard_batch(batch, 4))
  for device in range(4):
    want = jax.random.fold_in(jax.random.fold_in(state.rng, 0), device)
    np.testing.assert_array_equal(metrics["key"][device], want)


def test_replicate_unreplicate_roundtrip():
  tree = {"a": np.arange(6.0).reshape(2, 3), "s": np.int32(7)}
  replicated = steps.replicate(tree, jax.devices()[:2])
  assert replicated["a"].shape == (2, 2, 3)
  back = steps.unreplicate(replicated)
  np.testing.assert_array_equal(back["a"], tree["a"])
  assert back["s"] == 7 and isinstance(back["a"], np.ndarray)


def test_shard_batch():
  batch = {"x": np.arange(12).reshape(6, 2), "y": np.arange(6)}
  sharded = steps.shard_batch(batch, 3)
  assert sharded["x"].shape == (3, 2, 2) and sharded["y"].shape == (3, 2)
  np.testing.assert_array_equal(sharded["x"][1], batch["x"][2:4])
  with pytest.raises(ValueError, match=r"batch\['x'\].*divisible by the 4 devices"):
    steps.shard_batch(batch, 4)


def test_jit_mesh_rejects_indivisible_batch():
  compiled = steps.compile_step(_rng_step, "jit", jax.devices()[:4])
  with pytest.raises(ValueError, match="divisible"):
    compiled.put_batch(np.zeros((6, 2)))


def test_parallelism_is_validated():
  with pytest.raises(ValueError, match="parallelism"):
    steps.compile_step(_rng_step, "dp")
  with pytest.raises(ValueError, match="parallelism"):
    steps.bn_axis_name("shard")
  assert steps.bn_axis_name("pmap") == "batch" and steps.bn_axis_name("jit") is None
  assert steps.make_mesh(jax.devices()[:2]).shape == {"data": 2}
