"""Train state for several sub-models, each with its own optimizer, and the update guard.

The methods of jfr train more than one network at a time: the FAN trains a
generator and a discriminator alternately with Adam next to a frozen feature
extractor; the explanation method trains a recognition network with SGD and a
decoder with Adam in one step. :class:`TrainState` holds them all by name:

* ``params[name]`` / ``opt_state[name]`` / ``tx[name]``: a trainable sub-model,
  its optimizer state and its ``optax.GradientTransformation``;
* ``batch_stats[name]``: the content of the sub-model's flax ``'batch_stats'``
  collection (``{}`` when it has no BatchNorm);
* ``frozen[name]``: the full variables (``{'params': ..., 'batch_stats': ...}``)
  of a sub-model that is used but never updated (a pretrained feature extractor);
* ``extras``: any other non-gradient training state a method keeps (e.g. the
  moving class centres of a centre loss), checkpointed with the rest;
* ``apply_fn[name]``: ``module.apply`` for every sub-model, trainable or frozen;
* ``step``: the number of train steps run so far (int32 scalar), which the step
  builders of :mod:`jfr.train.steps` increment, and ``rng``: the base
  ``jax.random.PRNGKey`` (raw ``uint32[2]``) from which every step's key is
  derived by folding in the step (and the device index under pmap).

``tx`` and ``apply_fn`` are static (``FrozenDict`` so the state stays hashable for
``jit``); everything else is a pytree leaf that ``pmap``/``jit``/Orbax see.

A ``train_step`` (see :mod:`jfr.train.steps`) typically reads::

    def loss_fn(params):
      logits, updates = state.apply_fn['net'](
          {'params': params, 'batch_stats': state.batch_stats['net']},
          batch['image'], train=True, mutable=['batch_stats'])
      loss = softmax_cross_entropy(logits, batch['label']).mean()
      return loss, updates['batch_stats']
    (loss, new_bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params['net'])
    grads, loss = steps.cross_replica_mean((grads, loss))
    new_state = apply_gradients(state, {'net': grads}, batch_stats={'net': new_bs})
    state, nonfinite = guarded_update(state, new_state, loss, grads)
    return state, {'loss': loss, 'nonfinite': nonfinite}

:func:`guarded_update` is the guard: inside the compiled step it keeps the old
state when the loss, a gradient or the candidate new state (params, batch_stats,
opt_state, extras) holds a NaN/Inf, or when the update diverges (its update or
parameter norm jumps beyond a factor of its history; see :mod:`jfr.train.guard`), and
returns the ``nonfinite`` flag that :func:`jfr.train.loop.run_training` counts (and
stops on, with :class:`NonFiniteError`, after ``config.max_consecutive_nonfinite`` in
a row). ``guard`` (the guard's running statistics, checkpointed) and ``guard_limits``
(its static factors) are the last two fields of the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.core import FrozenDict

from jfr.train import guard as guard_lib

PyTree = Any
# A model to initialise: (module, example input) or (module, init_fn). The example
# input is an array or a tuple of arrays passed positionally to ``module.init`` (with
# 'params' and 'dropout' keys); a pure ``init_fn(rng) -> variables`` covers anything
# else (keyword arguments, ...). Either runs under jax.jit.
ModelSpec = tuple[nn.Module, Any]


class NonFiniteError(RuntimeError):
  """Training diverged: too many rejected (non-finite or divergent) steps, or non-finite params."""


@struct.dataclass
class TrainState:
  """Training state of several named sub-models (see the module docstring)."""

  step: jax.Array
  rng: jax.Array
  params: dict[str, PyTree]
  batch_stats: dict[str, PyTree]
  opt_state: dict[str, PyTree]
  frozen: dict[str, PyTree]
  extras: dict[str, PyTree]
  tx: FrozenDict = struct.field(pytree_node=False)
  apply_fn: FrozenDict = struct.field(pytree_node=False)
  # The update guard's running statistics (see jfr.train.guard; checkpointed) and its
  # limits (static; the loop sets them from the config).
  guard: dict[str, PyTree] = struct.field(default_factory=dict)
  guard_limits: FrozenDict = struct.field(pytree_node=False, default=guard_lib.DEFAULT_LIMITS)

  def variables(self, name: str) -> dict[str, PyTree]:
    """The flax variables of sub-model ``name`` (trainable or frozen) for ``apply_fn[name]``."""
    if name in self.frozen:
      return self.frozen[name]
    if name not in self.params:
      raise ValueError(
        f"name: unknown sub-model {name!r}; expected one of "
        f"{sorted(self.params) + sorted(self.frozen)}"
      )
    variables = {"params": self.params[name]}
    if self.batch_stats[name]:
      variables["batch_stats"] = self.batch_stats[name]
    return variables


def _init_variables(module: nn.Module, init: Any, rng: jax.Array) -> dict[str, PyTree]:
  """Variables of ``module`` from an example input or an ``init_fn(rng)``, under one jit."""
  if callable(init):
    return dict(jax.jit(init)(rng))
  inputs = init if isinstance(init, tuple) else (init,)
  params_rng, dropout_rng = jax.random.split(rng)
  return dict(jax.jit(module.init)({"params": params_rng, "dropout": dropout_rng}, *inputs))


def _raw_key(rng: jax.Array) -> jax.Array:
  """A raw ``uint32[2]`` PRNG key (typed keys are converted) so that it can be checkpointed."""
  if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(rng)
  if rng.shape != (2,) or rng.dtype != jnp.uint32:
    raise ValueError(f"rng: expected a jax.random key, got {rng.dtype}{list(rng.shape)}")
  return rng


def create_train_state(
  rng: jax.Array,
  models: Mapping[str, ModelSpec],
  txs: Mapping[str, optax.GradientTransformation],
  *,
  frozen: Mapping[str, tuple[nn.Module, Mapping[str, PyTree]]] | None = None,
  extras: Mapping[str, PyTree] | None = None,
) -> TrainState:
  """Initialises the trainable sub-models and their optimizers.

  Args:
    rng: a ``jax.random`` key; sub-model ``i`` (in sorted name order) is
      initialised from ``fold_in(rng, i)`` and the state's base step key is
      ``fold_in(rng, len(models))``.
    models: ``{name: (module, example_input_or_init_fn)}``; see :data:`ModelSpec`.
      Collections other than ``params`` and ``batch_stats`` are rejected.
    txs: ``{name: optax transformation}``, exactly one per trainable model.
    frozen: ``{name: (module, variables)}`` of sub-models that are applied but
      never updated (e.g. a pretrained feature extractor).
    extras: other non-gradient state to carry and checkpoint (any pytree of arrays).

  Returns:
    A :class:`TrainState` at step 0.
  """
  frozen = dict(frozen or {})
  if set(models) != set(txs):
    raise ValueError(f"txs: expected one optimizer per model {sorted(models)}, got {sorted(txs)}")
  clash = set(models) & set(frozen)
  if clash:
    raise ValueError(f"frozen: names {sorted(clash)} are also trainable models")
  rng = _raw_key(rng)
  params, batch_stats, opt_state, apply_fn = {}, {}, {}, {}
  for index, name in enumerate(sorted(models)):
    module, init = models[name]
    variables = _init_variables(module, init, jax.random.fold_in(rng, index))
    unknown = set(variables) - {"params", "batch_stats"}
    if unknown:
      raise ValueError(f"models[{name!r}]: unsupported variable collections {sorted(unknown)}")
    params[name] = variables["params"]
    batch_stats[name] = variables.get("batch_stats", {})
    opt_state[name] = txs[name].init(params[name])
    apply_fn[name] = module.apply
  frozen_vars = {}
  for name, (module, variables) in frozen.items():
    frozen_vars[name] = dict(variables)
    apply_fn[name] = module.apply
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    rng=jax.random.fold_in(rng, len(models)),
    params=params,
    batch_stats=batch_stats,
    opt_state=opt_state,
    frozen=frozen_vars,
    extras=dict(extras or {}),
    tx=FrozenDict(txs),
    apply_fn=FrozenDict(apply_fn),
    guard=guard_lib.init_guard(params),
  )


def apply_gradients(
  state: TrainState,
  grads: Mapping[str, PyTree],
  *,
  batch_stats: Mapping[str, PyTree] | None = None,
) -> TrainState:
  """One optimizer update of the named sub-models; the others are left as they are.

  ``params[n] <- optax.apply_updates(params[n], tx[n].update(grads[n], opt_state[n], params[n]))``
  for each ``n`` in ``grads``; ``batch_stats[n]`` is replaced by ``batch_stats[n]``
  where given. ``step`` is not touched (the step builders count steps).

  Args:
    state: the current state.
    grads: ``{name: gradient pytree shaped like params[name]}``.
    batch_stats: ``{name: new 'batch_stats' collection}`` (from ``mutable=['batch_stats']``).
  """
  batch_stats = dict(batch_stats or {})
  unknown = (set(grads) | set(batch_stats)) - set(state.params)
  if unknown:
    raise ValueError(
      f"grads/batch_stats: {sorted(unknown)} are not trainable sub-models ({sorted(state.params)})"
    )
  params, opt_state = dict(state.params), dict(state.opt_state)
  for name, grad in grads.items():
    updates, opt_state[name] = state.tx[name].update(grad, state.opt_state[name], params[name])
    params[name] = optax.apply_updates(params[name], updates)
  return state.replace(
    params=params, opt_state=opt_state, batch_stats={**state.batch_stats, **batch_stats}
  )


def all_finite(tree: PyTree) -> jax.Array:
  """A bool scalar: True iff every floating-point leaf of ``tree`` is free of NaN and Inf."""
  leaves = [
    jnp.isfinite(x).all()
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def guarded_update(
  state: TrainState,
  new_state: TrainState,
  loss: jax.Array,
  grads: PyTree,
) -> tuple[TrainState, jax.Array]:
  """Keeps ``state`` instead of the candidate ``new_state`` when the step is rejected.

  The step is rejected when ``loss`` or ``grads`` holds NaN/Inf, when the candidate's
  params, batch_stats, opt_state or extras hold NaN/Inf, or when its update or
  parameter norm jumps beyond ``state.guard_limits`` (see :mod:`jfr.train.guard`,
  which also keeps the running statistics in ``state.guard``). Works inside
  ``jit``/``pmap`` (a ``lax.cond`` on the verdict that returns one of the two states
  unchanged; the same values as a ``jnp.where`` select over every leaf, but XLA:CPU
  compiles a whole train step 3-4x faster: the select over every leaf, fused with the
  guard's reductions, took e.g. 26 s instead of 7 s for configs/interpretable.py:tiny).
  Under pmap, pass the cross-replica-averaged loss and gradients so that all devices agree.

  Args:
    state: the state before the update.
    new_state: the state after the update (same structure).
    loss: the loss (any shape) that produced ``grads``.
    grads: the gradients (any pytree).

  Returns:
    ``(chosen_state, nonfinite)`` where ``nonfinite`` is a float32 scalar, 1.0 when
    the update was rejected and 0.0 otherwise (a float so that it averages as a metric).
    ``chosen_state.guard`` is the updated guard state either way.
  """
  ok, guard = guard_lib.judge(state, new_state, loss, grads)
  new_state = new_state.replace(guard=state.guard)
  chosen = jax.lax.cond(ok, lambda: new_state, lambda: state)
  return chosen.replace(guard=guard), jnp.logical_not(ok).astype(jnp.float32)


def num_params(params: PyTree) -> int:
  """Number of scalar parameters in a pytree."""
  return sum(int(x.size) for x in jax.tree.leaves(params))
