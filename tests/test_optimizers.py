"""Tests for jfr.train.optimizers."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfr.train import optimizers


def test_steps_schedule_drops_at_boundaries():
  cfg = optimizers.optimizer_config(
    "adam", 5e-5, schedule="steps", boundaries=(0.5,), decay_factor=0.25
  )
  sched = optimizers.learning_rate_schedule(cfg, 100)
  np.testing.assert_allclose(
    [sched(0), sched(49), sched(50), sched(99)], [5e-5, 5e-5, 1.25e-5, 1.25e-5], rtol=1e-6
  )


def test_warmup_then_cosine():
  cfg = optimizers.optimizer_config("sgd", 0.1, schedule="cosine", warmup_steps=10)
  sched = optimizers.learning_rate_schedule(cfg, 110)
  np.testing.assert_allclose(
    [sched(0), sched(5), sched(10), sched(110)], [0.0, 0.05, 0.1, 0.0], atol=1e-7
  )


def test_sgd_with_weight_decay_matches_formula():
  cfg = optimizers.optimizer_config("sgd", 0.1, momentum=0.0, weight_decay=0.01)
  tx = optimizers.make_optimizer(cfg, 10)
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": jnp.array([0.5, 0.5])}
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(
    new["w"], params["w"] - 0.1 * (grads["w"] + 0.01 * params["w"]), rtol=1e-6
  )


@pytest.mark.parametrize(
  "field,value", [("name", "rmsprop"), ("schedule", "linear"), ("learning_rate", 0.0)]
)
def test_bad_config_names_the_field(field, value):
  cfg = optimizers.optimizer_config()
  cfg[field] = value
  with pytest.raises(ValueError, match=field.split("_")[0]):
    optimizers.make_optimizer(cfg, 10)
