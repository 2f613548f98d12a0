"""Orbax checkpoints of a whole :class:`~jfr.train.state.TrainState` and the input position.

Layout: ``<workdir>/checkpoints/<step>/`` written by an
``orbax.checkpoint.CheckpointManager`` with two items, ``state`` (every array of
the state: step, rng, params, batch_stats, opt_state, frozen, extras and the update
guard's running statistics, ``guard``; the static ``tx``/``apply_fn``/``guard_limits``
come from the code; a checkpoint written before ``guard`` existed restores with the
target's fresh guard) and ``meta`` (a small JSON dict, e.g.
``{"batches_consumed": 600, "batch_size": 64}``, from which the loop resumes its
input pipeline exactly). Orbax writes each step into a temporary directory and
renames it when complete, so a run killed mid-write leaves no half checkpoint
under a step name (leftover temporary directories are removed on start).

Saving (:meth:`TrainCheckpointer.save`) is asynchronous where Orbax supports it:
the arrays are copied to the host before ``save`` returns, the files are written in
the background; :meth:`TrainCheckpointer.wait` / :meth:`~TrainCheckpointer.close`
block until they are on disk. A save is refused (``NonFiniteError``) when a
parameter or batch statistic holds NaN/Inf, and (``ValueError``) when the step
already exists: nothing is ever written over an existing checkpoint.

Restoring (:meth:`TrainCheckpointer.restore_latest`) walks the steps from the
newest down. A checkpoint whose metadata or arrays cannot be read (missing or
truncated files) is *damaged*: it is reported with an absl warning, moved aside to
``<step>.damaged`` (``<step>.damaged.1``, ... if taken; Orbax ignores these names
and never deletes them) and the previous one is tried. A readable checkpoint whose
arrays do not match the target state (another model configuration) raises
``ValueError`` naming each mismatching parameter path (up to 10) with both
(shape, dtype) pairs; it is not moved.

:meth:`TrainCheckpointer.set_aside_after` moves checkpoints newer than a step to
``<step>.<label>`` (the loop uses ``diverged`` for those written after a training run
began to diverge), so that they are never restored as the latest good state.

Only the newest ``keep`` checkpoints are kept (Orbax deletes older ones once a
new one is complete).

Several processes (``jax.distributed``): every process calls save and restore with the same
(replicated, host) arrays; Orbax's primary process writes them once, the others wait at its
barriers, and every process restores them, so the directory must be one that all processes
share (``tests/test_multihost.py``: a two-process checkpoint has the layout of a one-process
one and resumes in one process). Moving a damaged checkpoint aside is not coordinated
between processes (each would try to rename it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from jfr.train.state import NonFiniteError, TrainState

PyTree = Any
# The pytree fields of TrainState that are saved (tx, apply_fn, guard_limits are static).
STATE_FIELDS = ("step", "rng", "params", "batch_stats", "opt_state", "frozen", "extras", "guard")
# Fields a checkpoint may lack (written before they existed): the target's values are kept.
_OPTIONAL_FIELDS = ("guard",)


def checkpoint_dir(workdir: str | os.PathLike) -> Path:
  """``<workdir>/checkpoints``."""
  return Path(workdir) / "checkpoints"


def _state_tree(state: TrainState) -> dict[str, PyTree]:
  return {field: getattr(state, field) for field in STATE_FIELDS}


def _flat_arrays(tree: PyTree) -> dict[str, tuple[tuple[int, ...], str]]:
  """``{'params.net.Dense_0.kernel': (shape, dtype)}`` for every array leaf (Orbax's naming)."""
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if leaf is None or not hasattr(leaf, "shape"):
      continue
    flat[".".join(ocp.tree.str_keypath(path))] = (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
  return flat


def _check_compatible(saved: PyTree, target: PyTree, step: int) -> None:
  """Raises ValueError listing the arrays whose path, shape or dtype differ (up to 10)."""
  saved, target = _flat_arrays(saved), _flat_arrays(target)
  problems = []
  for name in sorted(set(saved) | set(target)):
    if name not in saved:
      problems.append(f"{name!r} {target[name]} of the target state is missing from the checkpoint")
    elif name not in target:
      problems.append(f"{name!r} {saved[name]} of the checkpoint is not in the target state")
    elif saved[name] != target[name]:
      problems.append(
        f"{name!r} has (shape, dtype) {saved[name]} in the checkpoint but "
        f"{target[name]} in the target state"
      )
  if problems:
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    raise ValueError(
      f"checkpoint step {step} does not fit the target state (another model "
      "configuration?):\n  " + "\n  ".join(problems[:10]) + more
    )


def _check_finite(state: TrainState, step: int) -> None:
  for group in ("params", "batch_stats"):
    for path, leaf in jax.tree_util.tree_flatten_with_path(getattr(state, group))[0]:
      value = np.asarray(leaf)
      if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all():
        raise NonFiniteError(
          f"refusing to save checkpoint step {step}: {group}"
          f"{jax.tree_util.keystr(path)} holds NaN or Inf"
        )


class _Damaged(Exception):
  """A checkpoint step whose files cannot be read."""


class TrainCheckpointer:
  """Saves and restores :class:`TrainState` checkpoints in ``<workdir>/checkpoints``.

  Args:
    workdir: the run's working directory.
    keep: how many of the newest checkpoints to keep (``config.keep_checkpoints``).
    async_save: write in a background thread (call :meth:`wait` or :meth:`close`).
    read_only: a reader (evaluation, inference) next to a possibly live training run:
      never creates, deletes or moves anything (damaged checkpoints are only skipped,
      unfinished temporary directories are left to their writer).
  """

  def __init__(
    self,
    workdir: str | os.PathLike,
    *,
    keep: int,
    async_save: bool = True,
    read_only: bool = False,
  ):
    if keep < 1:
      raise ValueError(f"keep: expected at least 1 checkpoint to keep, got {keep}")
    self.directory = checkpoint_dir(workdir)
    self.read_only = read_only
    options = ocp.CheckpointManagerOptions(
      max_to_keep=None if read_only else keep,
      create=not read_only,
      cleanup_tmp_directories=not read_only,  # a reader never touches a live run's files
      enable_async_checkpointing=async_save,
      read_only=read_only,
    )
    self._manager = ocp.CheckpointManager(
      self.directory.absolute(),
      options=options,
      item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
    )

  def all_steps(self) -> list[int]:
    """The saved steps (complete or not yet checked), oldest first."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """The newest saved step, or None."""
    return self._manager.latest_step()

  def save(self, step: int, state: TrainState, meta: Mapping[str, Any]) -> None:
    """Saves ``state`` and the JSON-serialisable ``meta`` as checkpoint ``step``.

    Raises:
      NonFiniteError: a parameter or batch statistic is NaN/Inf (nothing is written).
      ValueError: checkpoint ``step`` already exists.
    """
    if step in self._manager.all_steps():
      raise ValueError(
        f"step: checkpoint {step} already exists in {self.directory}; refusing to write over it"
      )
    _check_finite(state, step)
    self._manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(_state_tree(state)), meta=ocp.args.JsonSave(dict(meta))
      ),
      force=True,
    )

  def restore_latest(self, target: TrainState) -> tuple[TrainState, dict[str, Any]] | None:
    """Restores the newest complete checkpoint into the structure of ``target``.

    Damaged checkpoints met on the way are moved aside (see the module docstring;
    skipped, not moved, when ``read_only``).

    Args:
      target: a state of the same configuration (e.g. freshly created); its arrays
        give the expected shapes and dtypes, its ``tx``/``apply_fn`` are kept.

    Returns:
      ``(restored_state, meta)`` or None when there is no usable checkpoint.

    Raises:
      ValueError: the checkpoint does not fit ``target`` (path and shapes named).
    """
    found = self.restore_newest(target, allow_older=True)
    return None if found is None else found[:2]

  def restore_newest(
    self, target: TrainState, *, allow_older: bool
  ) -> tuple[TrainState, dict[str, Any], int] | None:
    """Like :meth:`restore_latest`, also returning the step; with ``allow_older=False``
    a damaged newest checkpoint raises ``ValueError`` instead of falling back."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _state_tree(target))
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        tree, meta = self._restore_step(step, abstract)
      except _Damaged as error:
        if not allow_older:
          raise ValueError(
            f"checkpoint {step} in {self.directory}, the newest, is damaged "
            f"({str(error)[:300]}); "
            "--allow_older_checkpoint (config.allow_older_checkpoint=True) uses the newest "
            "usable older one and records that in the results"
          ) from None
        logging.warning(
          "Checkpoint %d in %s is damaged (%s); skipping it.", step, self.directory, error
        )
        if not self.read_only:
          self._move_aside(step, "damaged")
        continue
      logging.info("Restored checkpoint %d from %s.", step, self.directory)
      return target.replace(**tree), meta, step
    return None

  def _restore_step(self, step: int, abstract: PyTree) -> tuple[PyTree, dict[str, Any]]:
    try:
      metadata = self._manager.item_metadata(step)
      saved = metadata["state"].tree if metadata["state"] is not None else None
    except Exception as error:  # noqa: BLE001 - any read failure means the files are bad
      raise _Damaged(f"unreadable metadata: {error!r}") from error
    if saved is None:
      raise _Damaged("missing state metadata")
    abstract = {
      k: v for k, v in abstract.items() if k in saved or k not in _OPTIONAL_FIELDS
    }  # an older checkpoint without the guard keeps the target's fresh guard
    _check_compatible(saved, abstract, step)
    try:
      restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        ),
      )
    except Exception as error:  # noqa: BLE001 - any read failure means the files are bad
      raise _Damaged(f"unreadable arrays or meta: {str(error)[:300]!r}") from error
    return restored["state"], dict(restored["meta"])

  def _move_aside(self, step: int, label: str) -> None:
    source = self.directory / str(step)
    destination = self.directory / f"{step}.{label}"
    index = 0
    while destination.exists():
      index += 1
      destination = self.directory / f"{step}.{label}.{index}"
    source.rename(destination)
    logging.warning("Moved %s checkpoint %s to %s.", label, source, destination)
    self._manager.reload()

  def set_aside_after(self, step: int, label: str) -> list[int]:
    """Moves every checkpoint newer than ``step`` to ``<step>.<label>`` (kept, never restored).

    Used when a run diverged: checkpoints written after the divergence began are not
    kept as the latest good ones. Waits for pending saves first. Returns the moved steps.
    """
    self.wait()
    moved = [s for s in self.all_steps() if s > step]
    for s in moved:
      self._move_aside(s, label)
    return moved

  def wait(self) -> None:
    """Blocks until every pending asynchronous save is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self) -> TrainCheckpointer:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def restore_with_info(
  workdir: str | os.PathLike, target: TrainState, keep: int, *, allow_older: bool = False
) -> tuple[TrainState, dict[str, Any]]:
  """The newest complete checkpoint restored into ``target``, with where it came from.

  For evaluating a run, finished or live: reads only (no lock, nothing moved or deleted;
  see ``TrainCheckpointer(read_only=True)``). Returns ``(state, info)`` with ``info`` =
  ``{"step": int, "path": str, "newest_step": int, "older_than_newest": bool}``: the
  step and directory restored, the newest step present (damaged or not) and whether
  the restored one is older than it (recorded in every results file).

  Raises:
    ValueError: no usable checkpoint; the newest checkpoint is damaged and
      ``allow_older`` is False (``--allow_older_checkpoint`` evaluates the newest usable
      older one); a checkpoint that does not fit ``target``.
  """
  directory = checkpoint_dir(workdir)
  found = None
  if directory.is_dir():
    with TrainCheckpointer(workdir, keep=keep, read_only=True) as ckpt:
      newest = ckpt.latest_step()
      found = ckpt.restore_newest(target, allow_older=allow_older)
  if found is None:
    raise ValueError(f"workdir: no usable checkpoint in {directory}; run --mode=train first")
  state, _, step = found
  info = {
    "step": int(step),
    "path": os.fspath(directory.absolute() / str(step)),
    "newest_step": int(newest),
    "older_than_newest": bool(step != newest),
  }
  if info["older_than_newest"]:
    logging.warning(
      "Evaluating checkpoint %d of %s: the newest, %d, is damaged (allow_older).",
      step,
      directory,
      newest,
    )
  return state, info


def restore_trained(
  workdir: str | os.PathLike, target: TrainState, keep: int, *, allow_older: bool = True
) -> TrainState:
  """The newest complete checkpoint of ``workdir`` restored into ``target``'s structure.

  :func:`restore_with_info` without the info (kept for callers that do not record it;
  ``allow_older`` defaults to its old behaviour: fall back past a damaged newest one).
  """
  return restore_with_info(workdir, target, keep, allow_older=allow_older)[0]
