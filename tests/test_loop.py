"""Tests for jfr.train.loop: kill-and-resume equality, the non-finite guard, logging, contracts."""

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import tensorflow as tf

import resume_job
from jfr.train import checkpoint
from jfr.train import loop
from jfr.train import state as state_lib

_REPO = Path(__file__).resolve().parents[1]


def _run(config, workdir, batches=None, **kwargs):
  writer = resume_job.ListWriter()
  final = loop.run_training(
    config,
    workdir,
    resume_job.make_state(config),
    resume_job.train_step,
    batches or resume_job.batch_iterator_fn(),
    writer=writer,
    **kwargs,
  )
  assert writer.closed
  return final, writer


def _assert_states_equal(a, b):
  for field in checkpoint.STATE_FIELDS:
    jax.tree.map(np.testing.assert_array_equal, getattr(a, field), getattr(b, field))


def _job(workdir, num_steps, delay):
  env = dict(
    os.environ,
    PYTHONPATH=str(_REPO),
    JAX_PLATFORMS="cpu",
    # the session's XLA flags (conftest): the job compiles the same code as this process
    XLA_FLAGS=" ".join(
      [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
      + ["--xla_force_host_platform_device_count=4"]
    ),
  )
  return subprocess.Popen(
    [
      sys.executable,
      str(_REPO / "tests" / "resume_job.py"),
      str(workdir),
      str(num_steps),
      str(delay),
    ],
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
  num_steps = 10
  job = _job(tmp_path / "killed", num_steps, delay=0.4)
  ckpt_dir = tmp_path / "killed" / "checkpoints"
  deadline = time.monotonic() + 60
  # Orbax renames a step directory into place only once it is complete.
  while not any(p.name.isdigit() and int(p.name) >= 4 for p in ckpt_dir.glob("*")):
    assert job.poll() is None, "the job ended before it could be killed:\n" + job.stderr.read()
    assert time.monotonic() < deadline, "no checkpoint >= 4 within 60 s"
    time.sleep(0.05)
  job.send_signal(signal.SIGKILL)
  job.communicate()
  assert job.returncode == -signal.SIGKILL
  killed_at = max(int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit())
  assert killed_at < num_steps

  resumed = _job(tmp_path / "killed", num_steps, delay=0.0)
  _, stderr = resumed.communicate(timeout=120)
  assert resumed.returncode == 0, stderr
  assert "Resuming from step" in stderr

  config = resume_job.make_config(num_steps)
  uninterrupted, _ = _run(config, tmp_path / "straight")
  with checkpoint.TrainCheckpointer(tmp_path / "killed", keep=3) as ckpt:
    final, meta = ckpt.restore_latest(resume_job.make_state(config))
  assert meta["batches_consumed"] == num_steps == int(final.step)
  _assert_states_equal(final, uninterrupted)
  # The update moved the parameters (so the equality is not trivial).
  initial = resume_job.make_state(config)
  assert not np.allclose(
    final.params["net"]["Dense_0"]["kernel"], initial.params["net"]["Dense_0"]["kernel"]
  )


def _with_nan_batches(nan_steps):
  """The job's stream, with NaN images at the given (1-based) steps."""

  def batches(start):
    for index, batch in enumerate(resume_job.batch_iterator_fn()(start), start=start):
      if index + 1 in nan_steps:
        batch["image"][0, 0, 0, 0] = np.nan
      yield batch

  return batches


def test_nonfinite_steps_are_skipped_counted_and_stop_the_run(tmp_path):
  config = resume_job.make_config(10, parallelism="none")
  seen = {}
  record = loop.Hook(every_steps=1, fn=lambda step, state, writer: seen.update({step: state}))
  writer = resume_job.ListWriter()
  with pytest.raises(state_lib.NonFiniteError) as error:
    loop.run_training(
      config,
      tmp_path,
      resume_job.make_state(config),
      resume_job.train_step,
      _with_nan_batches({3, 5, 6, 7}),
      hooks=[record],
      writer=writer,
    )
  message = str(error.value)
  assert "3 consecutive train steps (the last one 7)" in message
  assert "The divergence began at step 5: the loss was NaN or Inf." in message
  assert "The last step whose state was fully finite (its update accepted) is step 4." in message
  assert "The newest checkpoint, step 6, was written after the divergence began" in message
  assert "the newest remaining one, step 4, predates the divergence" in message
  assert sorted(seen) == [1, 2, 3, 4, 5, 6]  # step 7 raised before its hooks ran
  # A skipped step leaves params, batch stats and optimizer state as they were.
  for skipped in (3, 5, 6):
    for field in ("params", "batch_stats", "opt_state"):
      jax.tree.map(
        np.testing.assert_array_equal,
        getattr(seen[skipped], field),
        getattr(seen[skipped - 1], field),
      )
    assert int(seen[skipped].step) == skipped
  assert not np.allclose(
    seen[4].params["net"]["Dense_0"]["kernel"], seen[3].params["net"]["Dense_0"]["kernel"]
  )
  assert dict(writer.scalars)[4]["nonfinite"] == 0.5  # steps 3 and 4 are averaged
  # Checkpoint 6 was written mid-divergence: set aside, so the latest good one is 4.
  assert (tmp_path / "checkpoints" / "6.diverged").is_dir()
  with checkpoint.TrainCheckpointer(tmp_path, keep=3) as ckpt:
    assert ckpt.latest_step() == 4
    meta = ckpt.restore_latest(resume_job.make_state(config))[1]
  assert meta["nonfinite_steps"] == 1 and meta["consecutive_nonfinite"] == 0


def _recognition_trainer():
  """The module that holds the recognition trainer (it is moving to jfr.methods)."""
  try:
    from jfr.methods.recognition import trainer
  except ImportError:
    from jfr.train import recognition as trainer
  return trainer


def _baseline_tiny(tmp_path, learning_rate, **overrides):
  """Trains configs/baseline.py:tiny at ``learning_rate``; returns (error, states seen, config)."""
  from configs import baseline

  trainer = _recognition_trainer()
  config = baseline.get_config("tiny")
  config.optimizer.learning_rate = learning_rate
  config.parallelism = "none"
  config.update(overrides)
  num_classes, size = 14, 32  # synthetic_faces/tiny

  def batches(start):
    index = start
    while True:
      rng = np.random.default_rng(index)
      yield {
        "image": rng.uniform(-1, 1, (config.batch_size, size, size, 3)).astype(np.float32),
        "label": rng.integers(0, num_classes, config.batch_size).astype(np.int32),
      }
      index += 1

  seen = {}
  hook = loop.Hook(every_steps=1, fn=lambda step, state, writer: seen.update({step: state}))
  try:
    loop.run_training(
      config,
      tmp_path,
      trainer.create_state(config, num_classes, size),
      trainer.make_train_step(config),
      batches,
      hooks=[hook],
      writer=resume_job.ListWriter(),
    )
  except state_lib.NonFiniteError as error:
    return error, seen, config
  return None, seen, config


def _finite(tree):
  return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree))


def _norm(tree):
  return np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree)))


@pytest.mark.slow
def test_learning_rate_1e30_is_caught_while_params_are_finite(tmp_path):
  error, seen, _ = _baseline_tiny(tmp_path, 1e30, max_consecutive_nonfinite=3)
  assert error is not None
  message = str(error)
  assert (
    "began at step 2: the parameter norm of the trainable sub-models (most: 'backbone')" in message
  )
  assert "the candidate parameters were still finite" in message
  assert "fully finite (its update accepted) is step 1" in message
  assert "checkpoints [3] were moved aside" in message
  assert "no checkpoint predates the divergence" in message
  for step, state in seen.items():  # every state the run ever held is step 1's
    assert _finite((state.params, state.batch_stats, state.opt_state)), step
    jax.tree.map(np.testing.assert_array_equal, state.params, seen[1].params)
  ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
  assert ckpts == ["3.diverged"]


@pytest.mark.slow
def test_learning_rate_1e6_leaves_batch_norm_finite(tmp_path):
  error, seen, config = _baseline_tiny(tmp_path, 1e6)
  assert error is None  # 5 rejected steps < max_consecutive_nonfinite: the run ends
  final = seen[config.num_train_steps]
  assert _finite((final.params, final.batch_stats, final.opt_state))
  assert _norm(final.params) < 2 * _norm(seen[1].params)
  with checkpoint.TrainCheckpointer(tmp_path, keep=2) as ckpt:
    assert ckpt.latest_step() == config.num_train_steps


def test_tensorboard_scalars_and_hooks(tmp_path):
  config = resume_job.make_config(4, parallelism="jit", log_every_steps=2)
  calls = []
  hook = loop.Hook(
    every_steps=3,
    fn=lambda step, state, writer: calls.append(
      (step, int(state.step), isinstance(state.params["net"]["Dense_0"]["kernel"], np.ndarray))
    ),
  )
  loop.run_training(
    config,
    tmp_path,
    resume_job.make_state(config),
    resume_job.train_step,
    resume_job.batch_iterator_fn(),
    hooks=[hook],
  )
  assert calls == [(3, 3, True), (4, 4, True)]
  tags = {}
  for name in glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(name):
      for value in event.summary.value:
        assert value.metadata.plugin_data.plugin_name == "scalars"
        tags.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
  assert [step for step, _ in tags["loss"]] == [2, 4]
  assert tags["nonfinite"] == [(2, 0.0), (4, 0.0)]
  assert [step for step, _ in tags["steps_per_sec"]] == [2, 4]
  assert all(np.isfinite(loss) and loss > 0 for _, loss in tags["loss"])


def test_finished_run_resumes_to_the_same_state(tmp_path):
  config = resume_job.make_config(2, parallelism="none")
  first, _ = _run(config, tmp_path)
  again, writer = _run(config, tmp_path, batches=lambda start: iter(()))
  _assert_states_equal(first, again)
  assert writer.scalars == []


def test_contract_errors(tmp_path):
  config = resume_job.make_config(4, parallelism="none")
  state = resume_job.make_state(config)
  with pytest.raises(ValueError, match=r"batch_iterator_fn\(0\) ended after 0 batches"):
    _run(config, tmp_path / "short", lambda start: iter(()))
  with pytest.raises(ValueError, match=r"batch\['label'\] at step 1: expected leading axis"):
    _run(
      config,
      tmp_path / "size",
      lambda start: iter([{**resume_job.make_batch(0), "label": np.zeros(3, np.int32)}]),
    )
  with checkpoint.TrainCheckpointer(tmp_path / "bs", keep=1) as ckpt:
    ckpt.save(
      2,
      state.replace(step=np.int32(2)),
      {"batches_consumed": 2, "batch_size": 16, "consecutive_nonfinite": 0, "nonfinite_steps": 0},
    )
  with pytest.raises(ValueError, match="config.batch_size: the checkpoint was written"):
    _run(config, tmp_path / "bs")
  with pytest.raises(ValueError, match="must include 'nonfinite'"):
    loop.run_training(
      config,
      tmp_path / "nometric",
      state,
      lambda state, batch, rng: (state, {"loss": 0.0}),
      resume_job.batch_iterator_fn(),
      writer=resume_job.ListWriter(),
    )


@pytest.mark.parametrize(
  "field,value", [("num_train_steps", 0), ("parallelism", "tpu"), ("batch_size", 6)]
)
def test_config_is_validated(tmp_path, field, value):
  config = resume_job.make_config(4, parallelism="pmap")
  state = resume_job.make_state(config)
  config[field] = value
  with pytest.raises(ValueError, match=f"config.{field}"):
    loop.run_training(
      config,
      tmp_path,
      state,
      resume_job.train_step,
      resume_job.batch_iterator_fn(),
      writer=resume_job.ListWriter(),
    )
