"""The generic training loop shared by every method: compile, resume, step, log, checkpoint.

:func:`run_training` drives a method's pure ``train_step`` (see
:mod:`jfr.train.steps`) over a deterministic stream of batches:

0. holds ``<workdir>/run.lock`` for the whole run (:mod:`jfr.train.run_lock`): a
   second training run on the same workdir fails at once, naming the holder;
1. compiles the step for ``config.parallelism`` ('pmap', 'jit' or 'none') on the
   local devices (:func:`jfr.train.steps.compile_step`);
2. restores the newest complete checkpoint of ``<workdir>/checkpoints`` if there
   is one (:class:`jfr.train.checkpoint.TrainCheckpointer`; damaged ones are moved
   aside) and resumes the input stream where it stopped;
3. runs until ``state.step == config.num_train_steps``;
4. every ``config.log_every_steps`` logs one console line (absl) with the metrics
   averaged since the last line, steps/s and an ETA, and writes the same scalars
   (plus ``steps_per_sec``) to TensorBoard in ``<workdir>/tb``;
5. saves a checkpoint every ``config.checkpoint_every_steps`` and at the end;
6. counts steps whose update the guard rejected (``metrics['nonfinite']``: a
   non-finite loss, gradient or candidate state, or a divergent update; see
   :func:`jfr.train.state.guarded_update` and :mod:`jfr.train.guard`) and raises
   :class:`~jfr.train.state.NonFiniteError` after
   ``config.max_consecutive_nonfinite`` of them in a row, naming why the streak's first
   step was rejected and the last step whose state was fully finite; checkpoints written
   after the divergence began are moved aside to ``<step>.diverged``.

The input contract: ``batch_iterator_fn(start_batch_index)`` returns an iterator
over host (NumPy) batches (pytrees whose leaves have leading axis
``config.batch_size // jax.process_count()``: the whole global batch on one host,
this process's share of it with several) that starts at batch
``start_batch_index`` of a deterministic stream, i.e. yields exactly the batches
an uninterrupted run would have seen from that index on (a tf.data pipeline with
a fixed seed can ``.skip(start_batch_index)``, or compute the epoch and the
offset in it). One train step consumes one batch, so the index is the number of steps done; the
checkpoint's JSON keeps it (``batches_consumed``) with the batch size, and a
resume with another ``batch_size`` is refused. Together with the state's RNG and
step in the checkpoint this makes a resumed run reproduce an uninterrupted one.

Config fields read (all required; the method configs declare them):

* ``num_train_steps`` (int > 0): steps (= batches) to train in total.
* ``log_every_steps`` (int > 0): console/TensorBoard summary period.
* ``checkpoint_every_steps`` (int > 0): checkpoint period (and one at the end).
* ``keep_checkpoints`` (int > 0): how many of the newest checkpoints to keep.
* ``max_consecutive_nonfinite`` (int > 0): rejected steps in a row that stop the run.
* ``guard_update_norm_factor``, ``guard_param_norm_factor`` (float; <= 0 turns the rule
  off): the guard's divergence limits (:mod:`jfr.train.guard`); optional for
  hand-made configs (defaults :data:`jfr.train.guard.DEFAULT_LIMITS`).
* ``parallelism`` ('pmap' | 'jit' | 'none'): how the step is compiled; the model's
  BatchNorm ``axis_name`` must be ``steps.bn_axis_name(config.parallelism)``.
* ``batch_size`` (int > 0): the global batch size, divisible by the number of
  devices (of all processes).

(``config.seed`` is for the caller: it seeds the initial state and the input stream.)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from jfr.train import guard as guard_lib
from jfr.train import run_lock
from jfr.train import steps
from jfr.train.checkpoint import TrainCheckpointer
from jfr.train.metric_writer import MetricWriter, ScalarWriter, summary_line
from jfr.train.state import NonFiniteError, TrainState

PyTree = Any
BatchIteratorFn = Callable[[int], Iterator[PyTree]]
_POSITIVE_INT_FIELDS = (
  "num_train_steps",
  "log_every_steps",
  "checkpoint_every_steps",
  "keep_checkpoints",
  "max_consecutive_nonfinite",
  "batch_size",
)


@dataclasses.dataclass(frozen=True)
class Hook:
  """A callback run every ``every_steps`` steps and after the last step.

  ``fn(step, state, writer)`` gets the step number, a host (NumPy) copy of the
  state and the run's :class:`~jfr.train.metric_writer.ScalarWriter` (e.g. to write
  evaluation scalars next to the training ones).
  """

  every_steps: int
  fn: Callable[[int, TrainState, ScalarWriter], None]


def _check_config(config: ml_collections.ConfigDict) -> None:
  for field in _POSITIVE_INT_FIELDS:
    value = config[field]  # a missing field raises here, naming it
    if not isinstance(value, int) or value <= 0:
      raise ValueError(f"config.{field}: expected a positive int, got {value!r}")
  if config.parallelism not in steps.PARALLELISM:
    raise ValueError(
      f"config.parallelism: expected one of {steps.PARALLELISM}, got {config.parallelism!r}"
    )


class _Diverged(Exception):
  """Raised by :class:`_Progress` when too many steps in a row were rejected."""

  def __init__(self, step: int, in_a_row: int):
    super().__init__(step, in_a_row)
    self.step, self.in_a_row = step, in_a_row


class _Progress:
  """Averages metrics between summaries, times steps, counts skipped (non-finite) steps."""

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    writer: ScalarWriter,
    fetch: Callable[[Any], dict[str, Any]],
    consecutive_nonfinite: int,
    nonfinite_steps: int,
  ):
    self._config = config
    self._writer = writer
    self._fetch = fetch
    self.consecutive_nonfinite = consecutive_nonfinite
    self.nonfinite_steps = nonfinite_steps
    self._sums: dict[str, float] = {}
    self._count = 0
    self._mark: tuple[int, float] | None = None  # (step, time) the rate is measured from

  def record(self, step: int, device_metrics: Any) -> None:
    """Reads back the metrics of ``step``; logs a summary when due; enforces the guard."""
    metrics = self._fetch(device_metrics)
    if "nonfinite" not in metrics:
      raise ValueError(
        "train_step: its metrics must include 'nonfinite' (from jfr.train.state.guarded_update)"
      )
    for name, value in metrics.items():
      self._sums[name] = self._sums.get(name, 0.0) + float(np.mean(value))
    self._count += 1
    if metrics["nonfinite"]:
      self.consecutive_nonfinite += 1
      self.nonfinite_steps += 1
      logging.warning(
        "Step %d: update rejected by the guard (non-finite loss, gradients or new state, "
        "or a divergent update); skipped (%d in a row).",
        step,
        self.consecutive_nonfinite,
      )
      if self.consecutive_nonfinite >= self._config.max_consecutive_nonfinite:
        raise _Diverged(step, self.consecutive_nonfinite)
    else:
      self.consecutive_nonfinite = 0
    if step % self._config.log_every_steps == 0 or step == self._config.num_train_steps:
      self._summarise(step)

  def _summarise(self, step: int) -> None:
    scalars = {name: total / self._count for name, total in self._sums.items()}
    now = time.perf_counter()
    rate = None
    if self._mark is not None and step > self._mark[0]:
      rate = (step - self._mark[0]) / (now - self._mark[1])
      scalars["steps_per_sec"] = rate
    self._mark = (step, now)
    logging.info(
      "%s",
      summary_line(
        step,
        self._config.num_train_steps,
        {k: v for k, v in scalars.items() if k != "steps_per_sec"},
        rate,
      ),
    )
    self._writer.write_scalars(step, scalars)
    self._sums, self._count = {}, 0

  def start_timing(self, step: int) -> None:
    """Measures rates from now on (called after the first, compiling, step)."""
    if self._mark is None:
      self._mark = (step, time.perf_counter())

  def meta(self, step: int) -> dict[str, int]:
    """The checkpoint's JSON: the input position and the guard's counters."""
    return {
      "batches_consumed": step,
      "batch_size": self._config.batch_size,
      "consecutive_nonfinite": self.consecutive_nonfinite,
      "nonfinite_steps": self.nonfinite_steps,
    }


def _resume(
  checkpointer: TrainCheckpointer, state: TrainState, config: ml_collections.ConfigDict
) -> tuple[TrainState, dict[str, int]]:
  restored = checkpointer.restore_latest(state)
  if restored is None:
    return state, {"batches_consumed": 0, "consecutive_nonfinite": 0, "nonfinite_steps": 0}
  state, meta = restored
  if meta["batch_size"] != config.batch_size:
    raise ValueError(
      f"config.batch_size: the checkpoint was written with batch_size "
      f"{meta['batch_size']}, got {config.batch_size}; the input stream "
      "position would not match"
    )
  if int(state.step) != meta["batches_consumed"]:
    raise ValueError(
      f"checkpoint: state.step {int(state.step)} differs from batches_consumed "
      f"{meta['batches_consumed']}"
    )
  logging.info("Resuming from step %d.", int(state.step))
  return state, meta


def run_training(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  state: TrainState,
  train_step_fn: steps.TrainStepFn,
  batch_iterator_fn: BatchIteratorFn,
  *,
  hooks: Sequence[Hook] = (),
  writer: ScalarWriter | None = None,
  devices: Sequence[jax.Device] | None = None,
) -> TrainState:
  """Trains ``state`` with ``train_step_fn`` to ``config.num_train_steps`` (see the module doc).

  Args:
    config: the run's ConfigDict (fields listed in the module docstring).
    workdir: directory for ``checkpoints/`` and ``tb/`` (created if needed).
    state: the initial state (used as is when there is no checkpoint, else as the
      restore target giving shapes and the static ``tx``/``apply_fn``).
    train_step_fn: ``train_step(state, batch, rng) -> (state, metrics)``; metrics
      must include ``'nonfinite'`` and be cross-replica averaged.
    batch_iterator_fn: ``start_batch_index -> iterator of global host batches``.
    hooks: periodic callbacks (:class:`Hook`).
    writer: where scalars go; default a :class:`~jfr.train.metric_writer.MetricWriter`
      on ``<workdir>/tb``. The loop closes it.
    devices: the devices to use (default: all local devices).

  Returns:
    The final state, as a host (NumPy) copy.

  Raises:
    NonFiniteError: ``config.max_consecutive_nonfinite`` skipped steps in a row.
    RunLockError: another training run holds ``<workdir>/run.lock`` (see
      :mod:`jfr.train.run_lock`; only process 0 of a multi-host job locks).
    ValueError: a bad config, a checkpoint that does not fit ``state``, an input
      stream that ends early or yields batches of the wrong size.
  """
  _check_config(config)
  state = state.replace(guard_limits=guard_lib.limits_from_config(config))
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  try:
    with run_lock.lock_if_process_zero(workdir):  # one training run per workdir
      compiled = steps.compile_step(train_step_fn, config.parallelism, devices)
      num_devices = len(compiled.devices) * jax.process_count()
      if config.batch_size % num_devices:
        raise ValueError(
          f"config.batch_size: {config.batch_size} is not divisible by the {num_devices} devices"
        )
      writer = writer if writer is not None else MetricWriter(workdir / "tb")
      with TrainCheckpointer(workdir, keep=config.keep_checkpoints) as checkpointer:
        return _train(config, state, compiled, batch_iterator_fn, hooks, writer, checkpointer)
  finally:
    if writer is not None:
      writer.close()


def _train(
  config: ml_collections.ConfigDict,
  state: TrainState,
  compiled: steps.CompiledStep,
  batch_iterator_fn: BatchIteratorFn,
  hooks: Sequence[Hook],
  writer: ScalarWriter,
  checkpointer: TrainCheckpointer,
) -> TrainState:
  """The body of :func:`run_training`: resume, then step, record, save and call hooks."""
  state, meta = _resume(checkpointer, state, config)
  start = meta["batches_consumed"]
  progress = _Progress(
    config, writer, compiled.fetch, meta["consecutive_nonfinite"], meta["nonfinite_steps"]
  )
  placed = [compiled.put_state(state)]  # the newest placed state (read on divergence)
  try:
    _steps(
      config, compiled, placed, start, batch_iterator_fn, hooks, writer, checkpointer, progress
    )
  except _Diverged as stop:
    host_state = compiled.fetch(placed[0])
    raise NonFiniteError(_divergence_message(config, stop, host_state, checkpointer)) from None
  if progress.consecutive_nonfinite:
    logging.warning(
      "Training ended with its last %d steps rejected by the guard (%d rejected in all): "
      "the final state is that of step %d.",
      progress.consecutive_nonfinite,
      progress.nonfinite_steps,
      config.num_train_steps - progress.consecutive_nonfinite,
    )
  return compiled.fetch(placed[0])  # the last step was saved, so all its metrics are recorded


def _divergence_message(
  config: ml_collections.ConfigDict,
  stop: _Diverged,
  host_state: TrainState,
  checkpointer: TrainCheckpointer,
) -> str:
  """The NonFiniteError text; moves the checkpoints written after the divergence began aside."""
  last_good = stop.step - stop.in_a_row
  cause = guard_lib.describe(host_state)
  newest = checkpointer.latest_step()
  moved = checkpointer.set_aside_after(last_good, "diverged")
  kept = checkpointer.latest_step()
  if newest is None:
    about = "There is no checkpoint."
  elif not moved:
    about = f"The newest checkpoint, step {newest}, predates the divergence."
  else:
    about = (
      f"The newest checkpoint, step {newest}, was written after the divergence began: "
      f"checkpoints {moved} were moved aside to <step>.diverged and are not resumed from; "
      + (
        f"the newest remaining one, step {kept}, predates the divergence."
        if kept is not None
        else "no checkpoint predates the divergence (a rerun starts from step 0)."
      )
    )
  return (
    f"{stop.in_a_row} consecutive train steps (the last one {stop.step}) were rejected by the "
    "guard: non-finite loss, gradients or new state, or a divergent update "
    f"(config.max_consecutive_nonfinite={config.max_consecutive_nonfinite}); stopping. "
    f"The divergence began at {cause or f'step {last_good + 1}'}. The last step whose state "
    f"was fully finite (its update accepted) is step {last_good}. {about} Check the inputs "
    "and lower the learning rate before resuming."
  )


def _steps(
  config: ml_collections.ConfigDict,
  compiled: steps.CompiledStep,
  placed: list,
  start: int,
  batch_iterator_fn: BatchIteratorFn,
  hooks: Sequence[Hook],
  writer: ScalarWriter,
  checkpointer: TrainCheckpointer,
  progress: _Progress,
) -> None:
  """Runs steps ``start + 1 .. num_train_steps``; ``placed[0]`` is kept the newest state."""
  batches = iter(batch_iterator_fn(start))
  pending = None  # (step, metrics) not read back yet: reading lags one step behind dispatch
  for step in range(start + 1, config.num_train_steps + 1):
    batch = next(batches, None)
    if batch is None:
      raise ValueError(
        f"batch_iterator_fn({start}) ended after {step - 1 - start} batches; "
        f"{config.num_train_steps - start} were needed"
      )
    _check_batch_size(batch, config.batch_size // jax.process_count(), step)
    placed[0], metrics = compiled.step(placed[0], compiled.put_batch(batch))
    if pending is not None:
      progress.record(*pending)
    pending = (step, metrics)
    due_hooks = [
      hook for hook in hooks if step % hook.every_steps == 0 or step == config.num_train_steps
    ]
    save = step % config.checkpoint_every_steps == 0 or step == config.num_train_steps
    if step == start + 1 or save or due_hooks:  # read back now (the first step also compiles)
      progress.record(*pending)
      pending = None
      if step == start + 1:
        progress.start_timing(step)
    if save or due_hooks:
      host_state = compiled.fetch(placed[0])
      if save:
        checkpointer.save(step, host_state, progress.meta(step))
      for hook in due_hooks:
        hook.fn(step, host_state, writer)


def _check_batch_size(batch: PyTree, host_batch_size: int, step: int) -> None:
  for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
    if np.ndim(leaf) == 0 or np.shape(leaf)[0] != host_batch_size:
      raise ValueError(
        f"batch{jax.tree_util.keystr(path)} at step {step}: expected leading "
        f"axis {host_batch_size} (config.batch_size / processes), got shape "
        f"{np.shape(leaf)}"
      )
