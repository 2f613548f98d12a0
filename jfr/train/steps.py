"""Data-parallel step builders: one pure ``train_step`` under pmap, jit + mesh, or plain jit.

A method writes one pure function::

    train_step(state: TrainState, batch: PyTree, rng: jax.Array) -> (TrainState, metrics: dict)

where ``batch`` is this replica's share of the global batch (leading axis ``B/D``
under pmap, ``B`` otherwise) and ``rng`` is this step's key. It must

* average gradients, the loss and metrics with :func:`cross_replica_mean`, which is
  ``lax.pmean(tree, 'batch')`` under pmap and the identity under jit (where the
  batch mean over the sharded global batch is already the global mean), so the
  same function serves every mode;
* leave ``state.step`` alone: the builders increment it after ``train_step``;
* return ``metrics['nonfinite']`` from :func:`jfr.train.state.guarded_update`.

BatchNorm under pmap: each device sees only its share of the batch, so the
BatchNorm layers must average their batch statistics across devices with
``axis_name='batch'``; under jit they see the whole sharded batch and must have
``axis_name=None`` (an unbound axis name is an error there). Models therefore
carry an ``axis_name`` field (:class:`jfr.models.resnet.ResNet` has one) that the
trainer sets with ``axis_name=bn_axis_name(config.parallelism)``.

Randomness: the key given to ``train_step`` is ``fold_in(state.rng, state.step)``;
under pmap the device index is folded in as well
(``fold_in(fold_in(state.rng, step), axis_index('batch'))``) so that replicas draw
different numbers (dropout masks, augmentation) for their different examples. A run
is therefore reproducible (same config, same seed, same parallelism and device count
give the same result, also across a checkpoint resume), but a pmap run and a jit run
draw different numbers. Steps whose randomness is per example (keys derived from
example ids carried in the batch) or absent give the same result in every mode.

:func:`compile_step` bundles a compiled step with the functions that move the state
and batches onto the devices and back (:class:`CompiledStep`); the generic loop
(:mod:`jfr.train.loop`) uses only that. It uses the devices of this process. With
several processes (``jax.distributed``) only 'pmap' is accepted: the pmap spans the
devices of all processes, each process feeds its local devices its own share of the
global batch and ``pmean`` averages over all devices of all processes
(``tests/test_multihost.py``: two processes train as one); 'jit' and 'none' would
train each process on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jfr.train.state import TrainState

PyTree = Any
TrainStepFn = Callable[[TrainState, PyTree, jax.Array], tuple[TrainState, dict[str, jax.Array]]]

BATCH_AXIS = "batch"  # the pmap axis name used by cross_replica_mean and BatchNorm
DATA_AXIS = "data"  # the mesh axis along which jit shards the batch
PARALLELISM = ("pmap", "jit", "none")


def bn_axis_name(parallelism: str) -> str | None:
  """The ``axis_name`` a model's BatchNorm needs under ``parallelism`` ('batch' for pmap)."""
  _check_parallelism(parallelism)
  return BATCH_AXIS if parallelism == "pmap" else None


def cross_replica_mean(tree: PyTree, axis_name: str = BATCH_AXIS) -> PyTree:
  """``lax.pmean(tree, axis_name)`` when ``axis_name`` is bound (pmap), else ``tree`` unchanged."""
  try:
    return lax.pmean(tree, axis_name)
  except NameError:  # the axis is unbound: plain jit or eager, one replica
    return tree


def _check_parallelism(parallelism: str) -> None:
  if parallelism not in PARALLELISM:
    raise ValueError(f"parallelism: expected one of {PARALLELISM}, got {parallelism!r}")


def _counted(train_step: TrainStepFn, axis_name: str | None) -> Callable:
  """``train_step`` with its per-step (and per-device) key derived and ``step`` incremented."""

  def step_fn(state: TrainState, batch: PyTree):
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:
      rng = jax.random.fold_in(rng, lax.axis_index(axis_name))
    new_state, metrics = train_step(state, batch, rng)
    return new_state.replace(step=state.step + 1), metrics

  return step_fn


def pmap_step(
  train_step: TrainStepFn,
  axis_name: str = BATCH_AXIS,
  donate: bool = True,
  devices: Sequence[jax.Device] | None = None,
) -> Callable:
  """``train_step`` under ``jax.pmap`` over ``devices`` (default: all local devices).

  The result takes ``(replicated_state, sharded_batch)`` (see :func:`replicate` and
  :func:`shard_batch`) and returns ``(replicated_state, per_device_metrics)``.
  ``donate`` donates the input state's buffers (do not use them afterwards).
  """
  return jax.pmap(
    _counted(train_step, axis_name),
    axis_name=axis_name,
    devices=devices,
    donate_argnums=(0,) if donate else (),
  )


def jit_step(train_step: TrainStepFn, mesh: Mesh | None = None, donate: bool = True) -> Callable:
  """``train_step`` under ``jax.jit``; with ``mesh`` the batch is sharded over its 'data' axis.

  With a mesh (see :func:`make_mesh`) the state and metrics are replicated over all
  its devices and every batch leaf is split along its leading axis; XLA inserts the
  gradient all-reduce. Without one the step runs on a single device.
  """
  step_fn = _counted(train_step, axis_name=None)
  donate_argnums = (0,) if donate else ()
  if mesh is None:
    return jax.jit(step_fn, donate_argnums=donate_argnums)
  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  return jax.jit(
    step_fn,
    in_shardings=(replicated, sharded),
    out_shardings=(replicated, replicated),
    donate_argnums=donate_argnums,
  )


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis ('data') mesh over ``devices`` (default: all local devices)."""
  devices = list(devices) if devices is not None else jax.local_devices()
  return Mesh(np.array(devices), (DATA_AXIS,))


def replicate(
  tree: PyTree,
  devices: Sequence[jax.Device] | None = None,
  axis_name: str = BATCH_AXIS,
) -> PyTree:
  """Copies every leaf onto each of ``devices`` (default: local ones), stacked on a new axis 0.

  The copies are laid out exactly as a ``pmap(..., axis_name=axis_name)`` returns its
  outputs, so feeding a step's output state back does not recompile the step.
  """
  devices = list(devices) if devices is not None else jax.local_devices()
  sharding = NamedSharding(Mesh(np.array(devices), (axis_name,)), PartitionSpec(axis_name))

  def put(x):
    x = np.array(x)  # a private host copy: the device buffers never alias the caller's
    return jax.device_put(np.broadcast_to(x, (len(devices),) + x.shape), sharding)

  return jax.tree.map(put, tree)


def unreplicate(tree: PyTree) -> PyTree:
  """The first replica of every leaf of a pmap output, as a host (NumPy) copy.

  The copy stays valid after the replicated buffers are donated to the next step.
  """
  return jax.tree.map(lambda x: np.array(x.addressable_shards[0].data).squeeze(0), tree)


def _check_divisible(batch: PyTree, num_devices: int) -> None:
  for path, x in jax.tree_util.tree_flatten_with_path(batch)[0]:
    size = np.shape(x)[0] if np.ndim(x) else None
    if size is None or size % num_devices:
      raise ValueError(
        f"batch{jax.tree_util.keystr(path)}: expected a leading (batch) axis divisible by "
        f"the {num_devices} devices, got shape {np.shape(x)}"
      )


def shard_batch(batch: PyTree, num_devices: int) -> PyTree:
  """Reshapes every leaf ``[B, ...] -> [num_devices, B / num_devices, ...]`` for pmap.

  Raises:
    ValueError: a leaf's leading axis is not divisible by ``num_devices``.
  """
  _check_divisible(batch, num_devices)
  return jax.tree.map(lambda x: np.reshape(x, (num_devices, -1) + np.shape(x)[1:]), batch)


def _put_copy(tree: PyTree, placement: Any) -> PyTree:
  """``jax.device_put`` of a private copy, so donating the result leaves the caller's arrays intact.

  (``device_put(..., may_alias=False)`` still aliases the first device's buffer when
  replicating over a mesh, hence the explicit copy.)
  """
  return jax.device_put(jax.tree.map(lambda x: jnp.array(x, copy=True), tree), placement)


def _host_copy(tree: PyTree) -> PyTree:
  return jax.tree.map(np.array, tree)


@dataclasses.dataclass(frozen=True)
class CompiledStep:
  """A compiled train step with the functions that move data to and from its devices.

  Attributes:
    parallelism: 'pmap', 'jit' (mesh over the devices) or 'none' (one device, plain jit).
    devices: the devices the step runs on.
    step: ``(placed_state, placed_batch) -> (placed_state, placed_metrics)``; donates the state.
    put_state: host :class:`TrainState` -> placed state (replicated as the mode needs), in
      new buffers (the given state stays valid when the placed one is donated).
    put_batch: host global batch (leading axis ``B``, divisible by the device count) ->
      placed batch.
    fetch: placed state or metrics -> one host (NumPy) copy, valid after later donations.
  """

  parallelism: str
  devices: tuple[jax.Device, ...]
  step: Callable[[Any, Any], tuple[Any, Any]]
  put_state: Callable[[TrainState], Any]
  put_batch: Callable[[PyTree], Any]
  fetch: Callable[[Any], PyTree]


def compile_step(
  train_step: TrainStepFn,
  parallelism: str,
  devices: Sequence[jax.Device] | None = None,
  donate: bool = True,
) -> CompiledStep:
  """Builds the :class:`CompiledStep` of ``train_step`` for ``parallelism``.

  Args:
    train_step: the pure step (see the module docstring).
    parallelism: 'pmap' (:func:`pmap_step`), 'jit' (:func:`jit_step` over a mesh)
      or 'none' (:func:`jit_step` on the first device).
    devices: the devices to use (default: all local devices; 'none' takes the first).
    donate: donate the state's buffers to each step.
  """
  _check_parallelism(parallelism)
  if jax.process_count() > 1 and parallelism != "pmap":
    raise ValueError(
      f"parallelism: {jax.process_count()} processes need 'pmap', got "
      f"{parallelism!r} (which would not synchronise the processes)"
    )
  devices = tuple(devices) if devices is not None else tuple(jax.local_devices())
  if parallelism == "none":
    devices = devices[:1]
    return CompiledStep(
      parallelism,
      devices,
      jit_step(train_step, donate=donate),
      put_state=lambda state: _put_copy(state, devices[0]),
      put_batch=lambda batch: jax.device_put(batch, devices[0]),
      fetch=_host_copy,
    )
  if parallelism == "pmap":
    # Several processes: the pmap must span every process's devices (devices=None), each
    # process feeding its local ones; pmap(devices=local ones) would confine pmean and the
    # BatchNorm statistics to one process, i.e. train one model per process.
    pmap_devices = None if jax.process_count() > 1 else devices
    return CompiledStep(
      parallelism,
      devices,
      pmap_step(train_step, donate=donate, devices=pmap_devices),
      put_state=lambda state: replicate(state, devices),
      put_batch=lambda batch: shard_batch(batch, len(devices)),
      fetch=unreplicate,
    )
  mesh = make_mesh(devices)
  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec(DATA_AXIS))

  def put_batch(batch: PyTree) -> PyTree:
    _check_divisible(batch, len(devices))
    return jax.device_put(batch, sharded)

  return CompiledStep(
    parallelism,
    devices,
    jit_step(train_step, mesh, donate=donate),
    put_state=lambda state: _put_copy(state, replicated),
    put_batch=put_batch,
    fetch=_host_copy,
  )
