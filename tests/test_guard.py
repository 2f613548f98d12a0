"""Tests for jfr.train.guard through state.guarded_update: the candidate state is judged."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax.core import FrozenDict

from jfr.train import guard as guard_lib
from jfr.train import state as state_lib


class _BNNet(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Dense(4)(x)
    return nn.BatchNorm(use_running_average=not train)(x)


def _state(lr=0.1, **limits):
  x = jnp.ones((2, 3))
  state = state_lib.create_train_state(
    jax.random.PRNGKey(0),
    {"gen": (nn.Dense(5), x), "bn": (_BNNet(), x)},
    {"gen": optax.sgd(lr), "bn": optax.sgd(0.1)},
  )
  return state.replace(guard_limits=FrozenDict({**guard_lib.DEFAULT_LIMITS, **limits}))


def _ones_grads(state, scale=1.0):
  return {"gen": jax.tree.map(lambda p: jnp.full_like(p, scale), state.params["gen"])}


@jax.jit
def _step(state, loss, grads, batch_stats=None):
  new = state_lib.apply_gradients(state, grads, batch_stats=batch_stats)
  out, nonfinite = state_lib.guarded_update(state, new, loss, grads)
  return out.replace(step=state.step + 1), nonfinite, new


def _assert_kept(out, state):
  for field in ("params", "batch_stats", "opt_state", "extras"):
    jax.tree.map(np.testing.assert_array_equal, getattr(out, field), getattr(state, field))


def _host(state):
  return jax.tree.map(np.asarray, state)


def test_accepted_step_is_the_candidate_bit_for_bit():
  state = _state()
  out, nonfinite, new = _step(state, jnp.float32(1.0), _ones_grads(state))
  assert float(nonfinite) == 0.0
  for field in ("params", "batch_stats", "opt_state"):
    jax.tree.map(np.testing.assert_array_equal, getattr(out, field), getattr(new, field))
  assert guard_lib.describe(_host(out)) is None


def test_non_finite_batch_stats_with_finite_loss_and_grads_is_rejected_and_named():
  state = _state()
  stats = jax.tree.map(jnp.copy, state.batch_stats["bn"])
  stats["BatchNorm_0"]["var"] = stats["BatchNorm_0"]["var"].at[2].set(jnp.inf)
  out, nonfinite, _ = _step(state, jnp.float32(1.0), _ones_grads(state), {"bn": stats})
  assert float(nonfinite) == 1.0
  _assert_kept(out, state)
  assert guard_lib.describe(_host(out)) == (
    "step 1: the candidate batch_stats['bn']['BatchNorm_0']['var'] held NaN or Inf"
  )


def test_non_finite_gradient_is_named_after_its_parameter():
  state = _state()
  grads = _ones_grads(state)
  grads["gen"]["bias"] = grads["gen"]["bias"].at[1].set(jnp.nan)
  out, nonfinite, _ = _step(state, jnp.float32(1.0), grads)
  assert float(nonfinite) == 1.0
  assert (
    guard_lib.describe(_host(out)) == "step 1: the gradient grads['gen']['bias'] held NaN or Inf"
  )


def test_finite_parameter_jump_is_rejected_while_still_finite():
  state = _state(lr=1e30)
  out, nonfinite, new = _step(state, jnp.float32(1.0), _ones_grads(state))
  assert np.isfinite(np.asarray(new.params["gen"]["kernel"])).all()  # the candidate is finite
  assert float(nonfinite) == 1.0
  _assert_kept(out, state)
  text = guard_lib.describe(_host(out))
  assert text.startswith(
    "step 1: the parameter norm of the trainable sub-models (most: 'gen') jumped"
  )
  assert "config.guard_param_norm_factor" in text and "still finite" in text
  # With the rule off the same step is applied.
  out, nonfinite, _ = _step(_state(lr=1e30, param_norm_factor=0.0), 1.0, _ones_grads(state))
  assert float(nonfinite) == 0.0


def test_small_sub_model_may_grow_many_times_when_the_whole_does_not():
  state = _state()  # the 'gen' head is tiny next to 'bn' (as a fresh head next to a backbone)
  state = state.replace(
    params={**state.params, "gen": jax.tree.map(lambda p: p * 1e-4, state.params["gen"])}
  )
  out, nonfinite, new = _step(state, jnp.float32(1.0), _ones_grads(state))
  grown = np.linalg.norm(np.asarray(new.params["gen"]["kernel"])) / np.linalg.norm(
    np.asarray(state.params["gen"]["kernel"])
  )
  assert grown > 1000  # the head alone jumped beyond the factor
  assert float(nonfinite) == 0.0


def test_update_norm_jump_against_the_running_mean():
  state = _state(lr=1e-3, param_norm_factor=0.0)
  norms = []
  for _ in range(3):
    before = state.params["gen"]
    state, nonfinite, _ = _step(state, jnp.float32(1.0), _ones_grads(state))
    assert float(nonfinite) == 0.0
    diff = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, state.params["gen"], before)
    norms.append(np.sqrt(sum(np.sum(d**2) for d in jax.tree.leaves(diff))))
  mean = norms[0]
  for u in norms[1:]:
    mean = guard_lib.EMA_DECAY * mean + (1 - guard_lib.EMA_DECAY) * u
  np.testing.assert_allclose(float(state.guard["update_norm"]["gen"]), mean, rtol=1e-5)
  assert int(state.guard["updates_seen"]["gen"]) == 3
  assert int(state.guard["updates_seen"]["bn"]) == 0  # never updated: not counted
  # 500 x the usual update passes the default factor 1000; 5000 x does not.
  state, nonfinite, _ = _step(state, jnp.float32(1.0), _ones_grads(state, 500.0))
  assert float(nonfinite) == 0.0
  kept = state
  state, nonfinite, _ = _step(state, jnp.float32(1.0), _ones_grads(state, 1e6))
  assert float(nonfinite) == 1.0
  _assert_kept(state, kept)
  assert "update norm of sub-model 'gen' jumped" in guard_lib.describe(_host(state))
  assert int(state.guard["first_rejected_step"]) == 5
  assert int(state.guard["rejected_in_a_row"]) == 1
  # The verdict of a streak's first step stays; an accepted step ends the streak.
  state, _, _ = _step(state, jnp.float32(jnp.nan), _ones_grads(state))
  assert int(state.guard["first_rejected_step"]) == 5 and int(state.guard["rejected_in_a_row"]) == 2
  state, nonfinite, _ = _step(state, jnp.float32(1.0), _ones_grads(state))
  assert float(nonfinite) == 0.0 and int(state.guard["rejected_in_a_row"]) == 0
  assert guard_lib.describe(_host(state)).startswith("step 5: the update norm")


def test_replicas_agree_under_pmap():
  state = _state()
  devices = jax.local_devices()[:2]
  if len(devices) < 2:
    pytest.skip("needs 2 devices")

  def step(state, loss):
    grads = _ones_grads(state)
    new = state_lib.apply_gradients(state, grads)
    return state_lib.guarded_update(state, new, loss, grads)[1]

  # One replica sees a NaN loss (not averaged on purpose): both reject.
  flags = jax.pmap(step, axis_name="batch", in_axes=(None, 0), devices=devices)(
    state, jnp.array([1.0, jnp.nan])
  )
  np.testing.assert_array_equal(np.asarray(flags), [1.0, 1.0])


def test_limits_from_config():
  config = ml_collections.ConfigDict({"guard_update_norm_factor": 50.0})
  assert guard_lib.limits_from_config(config) == FrozenDict(
    update_norm_factor=50.0, param_norm_factor=guard_lib.DEFAULT_LIMITS["param_norm_factor"]
  )
  with pytest.raises(ValueError, match="config.guard_param_norm_factor"):
    guard_lib.limits_from_config(ml_collections.ConfigDict({"guard_param_norm_factor": "x"}))
