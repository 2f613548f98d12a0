"""A tiny deterministic training job for the loop tests (imported by them, or run as a script).

Run ``python tests/resume_job.py WORKDIR NUM_STEPS [STEP_DELAY_S]`` to train (and
resume) a small conv net with BatchNorm, dropout and SGD with momentum on a
synthetic batch stream, under pmap on the visible devices, checkpointing every 2
steps. It imports no TensorFlow (scalars go to a list writer) to start quickly.
"""

import functools
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from jfr.losses.margin import softmax_cross_entropy
from jfr.models.resnet import conv_kernel_init
from jfr.train import loop
from jfr.train import state as state_lib
from jfr.train import steps

BATCH_SIZE = 8
NUM_CLASSES = 4


def make_config(num_train_steps, parallelism="pmap", **overrides):
  config = ml_collections.ConfigDict(
    {
      "seed": 0,
      "num_train_steps": num_train_steps,
      "log_every_steps": 2,
      "checkpoint_every_steps": 2,
      "keep_checkpoints": 3,
      "max_consecutive_nonfinite": 3,
      "parallelism": parallelism,
      "batch_size": BATCH_SIZE,
    }
  )
  config.update(overrides)
  config.lock()
  return config


class TinyNet(nn.Module):
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Conv(4, (3, 3), strides=(2, 2), kernel_init=conv_kernel_init())(x)
    x = nn.BatchNorm(use_running_average=not train, axis_name=self.axis_name)(x)
    x = nn.relu(x).reshape(x.shape[0], -1)
    x = nn.Dropout(0.3, deterministic=not train)(x)
    return nn.Dense(NUM_CLASSES)(x)


def make_state(config):
  """The initial state (shared between calls: the loop never modifies the state it is given)."""
  return _initial_state(config.seed, config.parallelism)


@functools.lru_cache(maxsize=None)
def _initial_state(seed, parallelism):
  model = TinyNet(axis_name=steps.bn_axis_name(parallelism))
  return state_lib.create_train_state(
    jax.random.PRNGKey(seed),
    {"net": (model, jnp.zeros((1, 8, 8, 3)))},
    {"net": optax.sgd(0.1, momentum=0.9)},
  )


def train_step(state, batch, rng):
  def loss_fn(params):
    logits, updates = state.apply_fn["net"](
      {"params": params, "batch_stats": state.batch_stats["net"]},
      batch["image"],
      rngs={"dropout": rng},
      mutable=["batch_stats"],
    )
    return softmax_cross_entropy(logits, batch["label"]).mean(), updates["batch_stats"]

  (loss, new_bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params["net"])
  grads, loss = steps.cross_replica_mean((grads, loss))
  new_state = state_lib.apply_gradients(state, {"net": grads}, batch_stats={"net": new_bs})
  new_state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
  return new_state, {"loss": loss, "nonfinite": nonfinite}


def make_batch(index):
  """Batch ``index`` of the stream (a function of the index alone)."""
  rng = np.random.default_rng(index)
  return {
    "image": rng.uniform(-1, 1, (BATCH_SIZE, 8, 8, 3)).astype(np.float32),
    "label": rng.integers(0, NUM_CLASSES, BATCH_SIZE).astype(np.int32),
  }


def batch_iterator_fn(step_delay_s=0.0):
  def batches(start):
    index = start
    while True:
      time.sleep(step_delay_s)
      yield make_batch(index)
      index += 1

  return batches


class ListWriter:
  """A ScalarWriter that keeps the scalars in memory."""

  def __init__(self):
    self.scalars = []
    self.closed = False

  def write_scalars(self, step, scalars):
    self.scalars.append((step, dict(scalars)))

  def close(self):
    self.closed = True


def main(argv):
  workdir, num_steps = argv[1], int(argv[2])
  step_delay_s = float(argv[3]) if len(argv) > 3 else 0.0
  logging.set_verbosity(logging.INFO)
  config = make_config(num_steps)
  loop.run_training(
    config,
    workdir,
    make_state(config),
    train_step,
    batch_iterator_fn(step_delay_s),
    writer=ListWriter(),
  )


if __name__ == "__main__":
  main(sys.argv)
