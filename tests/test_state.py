"""Tests for jfr.train.state: multi-model train state, apply_gradients, the non-finite guard."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfr.train import state as state_lib


class _BNNet(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Dense(4)(x)
    return nn.BatchNorm(use_running_average=not train)(x)


def _make_state(**kwargs):
  x = jnp.ones((2, 3))
  return state_lib.create_train_state(
    jax.random.PRNGKey(0),
    models={"gen": (nn.Dense(5), x), "bn": (_BNNet(), x)},
    txs={"gen": optax.adam(1e-2), "bn": optax.sgd(0.1, momentum=0.9)},
    **kwargs,
  )


def test_create_train_state_layout():
  frozen_module = nn.Dense(2)
  frozen_vars = frozen_module.init(jax.random.PRNGKey(1), jnp.ones((1, 3)))
  state = _make_state(
    frozen={"feat": (frozen_module, frozen_vars)}, extras={"centers": jnp.zeros((3, 2))}
  )
  assert int(state.step) == 0
  assert state.rng.shape == (2,) and state.rng.dtype == jnp.uint32
  assert set(state.params) == {"gen", "bn"} == set(state.opt_state) == set(state.batch_stats)
  assert state.batch_stats["gen"] == {}
  assert state.batch_stats["bn"]["BatchNorm_0"]["mean"].shape == (4,)
  assert set(state.apply_fn) == {"gen", "bn", "feat"}
  assert state.variables("gen") == {"params": state.params["gen"]}
  assert set(state.variables("bn")) == {"params", "batch_stats"}
  assert state.variables("feat") is state.frozen["feat"]
  out = state.apply_fn["feat"](state.variables("feat"), jnp.ones((1, 3)))
  assert out.shape == (1, 2)
  np.testing.assert_array_equal(state.extras["centers"], np.zeros((3, 2)))
  assert state_lib.num_params(state.params["gen"]) == 3 * 5 + 5


def test_create_train_state_is_deterministic_and_accepts_typed_keys():
  a = _make_state()
  b = state_lib.create_train_state(
    jax.random.key(0),
    models={"gen": (nn.Dense(5), jnp.ones((2, 3))), "bn": (_BNNet(), jnp.ones((2, 3)))},
    txs={"gen": optax.adam(1e-2), "bn": optax.sgd(0.1, momentum=0.9)},
  )
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  np.testing.assert_array_equal(a.rng, b.rng)


def test_create_train_state_init_fn():
  module = nn.Dense(3)
  state = state_lib.create_train_state(
    jax.random.PRNGKey(0),
    models={"net": (module, lambda rng: module.init(rng, jnp.ones((1, 7))))},
    txs={"net": optax.sgd(0.1)},
  )
  assert state.params["net"]["kernel"].shape == (7, 3)


def test_create_train_state_rejects_bad_input():
  with pytest.raises(ValueError, match="txs"):
    state_lib.create_train_state(
      jax.random.PRNGKey(0), {"a": (nn.Dense(2), jnp.ones((1, 2)))}, {"b": optax.sgd(0.1)}
    )
  with pytest.raises(ValueError, match="rng"):
    state_lib.create_train_state(
      jnp.zeros(3), {"a": (nn.Dense(2), jnp.ones((1, 2)))}, {"a": optax.sgd(0.1)}
    )
  module = nn.Dense(2)
  with pytest.raises(ValueError, match="frozen"):
    state_lib.create_train_state(
      jax.random.PRNGKey(0),
      {"a": (module, jnp.ones((1, 2)))},
      {"a": optax.sgd(0.1)},
      frozen={"a": (module, module.init(jax.random.PRNGKey(0), jnp.ones((1, 2))))},
    )


def test_apply_gradients_updates_only_named_model():
  state = _make_state()
  grads = jax.tree.map(jnp.ones_like, state.params["bn"])
  new_bs = jax.tree.map(lambda x: x + 1.0, state.batch_stats["bn"])
  new = state_lib.apply_gradients(state, {"bn": grads}, batch_stats={"bn": new_bs})
  # SGD with momentum from a zero trace: p - lr * g.
  jax.tree.map(
    lambda p, q: np.testing.assert_allclose(q, np.asarray(p) - 0.1, rtol=1e-6),
    state.params["bn"],
    new.params["bn"],
  )
  jax.tree.map(np.testing.assert_array_equal, new.batch_stats["bn"], new_bs)
  jax.tree.map(np.testing.assert_array_equal, new.params["gen"], state.params["gen"])
  assert new.opt_state["gen"] is state.opt_state["gen"]
  assert int(new.step) == 0  # the step builders count steps
  with pytest.raises(ValueError, match="not trainable"):
    state_lib.apply_gradients(state, {"nope": grads})


def test_all_finite():
  assert bool(state_lib.all_finite({"a": jnp.ones(3), "i": jnp.arange(3)}))
  assert not bool(state_lib.all_finite({"a": jnp.array([1.0, jnp.nan])}))
  assert not bool(state_lib.all_finite([jnp.array(jnp.inf)]))
  assert bool(state_lib.all_finite({}))


@pytest.mark.parametrize("bad", ["loss_nan", "grad_inf", "none"])
def test_guarded_update(bad):
  state = _make_state()
  grads = {"gen": jax.tree.map(jnp.ones_like, state.params["gen"])}
  loss = jnp.float32(1.0)
  if bad == "loss_nan":
    loss = jnp.float32(jnp.nan)
  elif bad == "grad_inf":
    grads["gen"]["bias"] = grads["gen"]["bias"].at[0].set(jnp.inf)

  @jax.jit
  def step(state, loss, grads):
    new = state_lib.apply_gradients(state, grads)
    return state_lib.guarded_update(state, new, loss, grads)

  out, nonfinite = step(state, loss, grads)
  if bad == "none":
    assert float(nonfinite) == 0.0
    assert not np.allclose(out.params["gen"]["kernel"], state.params["gen"]["kernel"])
  else:
    assert float(nonfinite) == 1.0
    jax.tree.map(np.testing.assert_array_equal, out.params, state.params)
    jax.tree.map(np.testing.assert_array_equal, out.opt_state, state.opt_state)
