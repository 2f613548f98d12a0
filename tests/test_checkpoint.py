"""Tests for jfr.train.checkpoint: round trip, retention, damaged and mismatching checkpoints."""

import functools
import glob
import logging
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfr.train import checkpoint
from jfr.train import state as state_lib


class _Net(nn.Module):
  features: int = 5

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Dense(self.features)(x)
    return nn.BatchNorm(use_running_average=not train)(x)


@functools.lru_cache(maxsize=None)
def _state(features=5, seed=0):
  """A two-model state (shared between tests: saving and restoring never modify it)."""
  x = jnp.ones((2, 3))
  return state_lib.create_train_state(
    jax.random.PRNGKey(seed),
    {"net": (_Net(features), x), "dec": (nn.Dense(2), x)},
    {"net": optax.sgd(0.1, momentum=0.9), "dec": optax.adam(1e-3)},
    extras={"centers": jnp.arange(6.0).reshape(3, 2)},
  )


def _perturbed(state, step):
  """A state that differs from ``state`` in every array, at ``step``."""
  moved = jax.tree.map(
    lambda x: x + 1 if jnp.issubdtype(x.dtype, jnp.floating) else x,
    (state.params, state.batch_stats, state.opt_state, state.extras),
  )
  return state.replace(
    step=jnp.int32(step), params=moved[0], batch_stats=moved[1], opt_state=moved[2], extras=moved[3]
  )


def _assert_states_equal(a, b):
  for field in checkpoint.STATE_FIELDS:
    jax.tree.map(np.testing.assert_array_equal, getattr(a, field), getattr(b, field))


def _saved(tmp_path, steps=(2, 4), keep=3):
  state = _state()
  with checkpoint.TrainCheckpointer(tmp_path, keep=keep) as ckpt:
    for step in steps:
      ckpt.save(step, _perturbed(state, step), {"batches_consumed": step})
  return state


def test_round_trip_and_retention(tmp_path):
  state = _saved(tmp_path, steps=(2, 4, 6, 8), keep=2)
  with checkpoint.TrainCheckpointer(tmp_path, keep=2) as ckpt:
    assert ckpt.all_steps() == [6, 8] and ckpt.latest_step() == 8
    restored, meta = ckpt.restore_latest(state)
  assert meta == {"batches_consumed": 8}
  _assert_states_equal(restored, _perturbed(state, 8))
  assert int(restored.step) == 8
  assert restored.tx is state.tx and restored.apply_fn is state.apply_fn
  assert (tmp_path / "checkpoints" / "8").is_dir()


def test_restore_without_checkpoint_returns_none(tmp_path):
  with checkpoint.TrainCheckpointer(tmp_path, keep=1) as ckpt:
    assert ckpt.restore_latest(_state()) is None


def test_refuses_to_write_over_a_step(tmp_path):
  state = _saved(tmp_path, steps=(2,))
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    with pytest.raises(ValueError, match="checkpoint 2 already exists"):
      ckpt.save(2, state, {})


def test_refuses_non_finite_params(tmp_path):
  state = _state()
  bad = state.replace(
    params={
      **state.params,
      "dec": {**state.params["dec"], "bias": state.params["dec"]["bias"].at[1].set(jnp.nan)},
    }
  )
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    with pytest.raises(state_lib.NonFiniteError, match=r"params\['dec'\]\['bias'\]"):
      ckpt.save(2, bad, {})
    ckpt.wait()
    assert ckpt.all_steps() == []


def _truncate_arrays(step_dir):
  files = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
  assert files
  for name in files:
    with open(name, "r+b") as f:
      f.truncate(os.path.getsize(name) // 2)


def _remove(relative):
  def damage(step_dir):
    os.remove(os.path.join(step_dir, relative))

  return damage


# Orbax's failed reads leave tensorstore callbacks aimed at a closed asyncio loop (harmless).
_ASYNC_NOISE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@_ASYNC_NOISE
@pytest.mark.parametrize(
  "damage",
  [
    _truncate_arrays,
    _remove("state/_METADATA"),
    _remove("meta/metadata"),
    _remove("state/manifest.ocdbt"),
  ],
  ids=["truncated", "no_metadata", "no_meta", "no_manifest"],
)
def test_damaged_latest_falls_back_to_previous(tmp_path, caplog, damage):
  state = _saved(tmp_path)
  directory = tmp_path / "checkpoints"
  damage(str(directory / "4"))
  with caplog.at_level(logging.WARNING):
    with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
      restored, meta = ckpt.restore_latest(state)
      assert meta == {"batches_consumed": 2}
      _assert_states_equal(restored, _perturbed(state, 2))
      assert ckpt.all_steps() == [2]
      # The damaged files are kept aside, and step 4 can be written again.
      assert (directory / "4.damaged").is_dir() and not (directory / "4").exists()
      ckpt.save(4, restored, {"batches_consumed": 4})
  assert "Checkpoint 4" in caplog.text and "damaged" in caplog.text
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    assert ckpt.restore_latest(state)[1] == {"batches_consumed": 4}


@_ASYNC_NOISE
def test_all_damaged_returns_none_and_keeps_files(tmp_path):
  state = _saved(tmp_path)
  directory = tmp_path / "checkpoints"
  for step in ("2", "4"):
    _truncate_arrays(str(directory / step))
  (directory / "4.damaged").mkdir()  # an earlier damaged copy is not overwritten
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    assert ckpt.restore_latest(state) is None
  assert sorted(os.listdir(directory)) == ["2.damaged", "4.damaged", "4.damaged.1"]


def test_wrong_shape_names_path_and_shapes(tmp_path):
  _saved(tmp_path)
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    with pytest.raises(
      ValueError,
      match=(
        r"'params\.net\.Dense_0\.bias' has \(shape, dtype\) "
        r"\(\(5,\), 'float32'\) in the checkpoint but "
        r"\(\(7,\), 'float32'\)"
      ),
    ):
      ckpt.restore_latest(_state(features=7))
    assert ckpt.all_steps() == [2, 4]  # a mismatch is not damage: nothing is moved


def test_missing_model_is_named(tmp_path):
  _saved(tmp_path)
  other = state_lib.create_train_state(
    jax.random.PRNGKey(0),
    {"net": (_Net(5), jnp.ones((2, 3)))},
    {"net": optax.sgd(0.1, momentum=0.9)},
    extras={"centers": jnp.zeros((3, 2))},
  )
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    with pytest.raises(ValueError, match=r"'opt_state\.dec\..*not in the target state"):
      ckpt.restore_latest(other)


def test_keep_is_validated(tmp_path):
  with pytest.raises(ValueError, match="keep"):
    checkpoint.TrainCheckpointer(tmp_path, keep=0)


def test_checkpoint_without_guard_state_restores_with_a_fresh_guard(tmp_path, monkeypatch):
  state = _state()
  old_fields = tuple(f for f in checkpoint.STATE_FIELDS if f != "guard")
  with monkeypatch.context() as patch:  # a checkpoint written before the guard had a state
    patch.setattr(checkpoint, "STATE_FIELDS", old_fields)
    with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
      ckpt.save(2, _perturbed(state, 2), {"batches_consumed": 2})
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    assert "guard" not in ckpt._manager.item_metadata(2)["state"].tree
    restored, _ = ckpt.restore_latest(state)
  _assert_states_equal(restored.replace(guard=state.guard), _perturbed(state, 2))
  jax.tree.map(np.testing.assert_array_equal, restored.guard, state.guard)


def test_guard_state_round_trips(tmp_path):
  state = _state()
  guard = jax.tree.map(lambda x: x + 3, state.guard)
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    ckpt.save(2, state.replace(guard=guard), {})
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    restored, _ = ckpt.restore_latest(state)
  jax.tree.map(np.testing.assert_array_equal, restored.guard, guard)


def test_set_aside_after(tmp_path):
  state = _saved(tmp_path, steps=(2, 4, 6))
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    assert ckpt.set_aside_after(2, "diverged") == [4, 6]
    assert ckpt.all_steps() == [2]
    assert ckpt.restore_latest(state)[1] == {"batches_consumed": 2}
  names = sorted(os.listdir(tmp_path / "checkpoints"))
  assert names == ["2", "4.diverged", "6.diverged"]


def test_restore_with_info_records_the_step_and_path(tmp_path):
  state = _saved(tmp_path, steps=(2, 4))
  restored, info = checkpoint.restore_with_info(tmp_path, state, keep=3)
  assert info == {
    "step": 4,
    "path": str((tmp_path / "checkpoints" / "4").absolute()),
    "newest_step": 4,
    "older_than_newest": False,
  }
  _assert_states_equal(restored, _perturbed(state, 4))


@_ASYNC_NOISE
def test_restore_with_info_refuses_a_damaged_newest_unless_allowed(tmp_path):
  state = _saved(tmp_path, steps=(2, 4))
  directory = tmp_path / "checkpoints"
  _truncate_arrays(str(directory / "4"))
  with pytest.raises(ValueError, match=r"checkpoint 4 .* the newest, is damaged.*allow_older"):
    checkpoint.restore_with_info(tmp_path, state, keep=3)
  restored, info = checkpoint.restore_with_info(tmp_path, state, keep=3, allow_older=True)
  assert info["step"] == 2 and info["newest_step"] == 4 and info["older_than_newest"] is True
  assert info["path"].endswith("checkpoints/2")
  _assert_states_equal(restored, _perturbed(state, 2))
  assert sorted(os.listdir(directory)) == ["2", "4"]  # a reader moves nothing


def test_reader_leaves_a_live_writers_files_alone(tmp_path):
  state = _saved(tmp_path, steps=(2,))
  unfinished = tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1700000000000000"
  (unfinished / "state").mkdir(parents=True)
  assert checkpoint.restore_with_info(tmp_path, state, keep=1)[1]["step"] == 2
  assert unfinished.is_dir()
  with pytest.raises(ValueError, match="no usable checkpoint"):
    checkpoint.restore_with_info(tmp_path / "empty", state, keep=1)
  assert not (tmp_path / "empty").exists()
