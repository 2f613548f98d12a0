"""The update guard: judges a train step's candidate new state before it is applied.

:func:`jfr.train.state.guarded_update` calls :func:`judge` inside the compiled step. A
step's update is *rejected* (the old state is kept and the step is reported as skipped,
``metrics['nonfinite'] == 1``) when

1. the loss or a gradient holds NaN/Inf;
2. the candidate new state holds NaN/Inf: its ``params``, ``batch_stats`` (e.g. a
   BatchNorm running variance that overflowed while the loss stayed finite),
   ``opt_state`` or ``extras``;
3. it is *divergent*: for a trainable sub-model ``n`` with parameters ``p`` before and
   ``p'`` after the step,

   * update norm: ``||p' - p|| > update_norm_factor * u_n``, where ``u_n`` is the
     running mean of the update norms of the accepted steps, an exponential moving
     average ``u_n <- d u_n + (1 - d) ||p' - p||`` with ``d =`` :data:`EMA_DECAY`
     (started at the first non-zero update, judged from the second on; zero updates,
     e.g. a learning rate warming up from 0 or a sub-model this step leaves alone,
     are not counted);
   * parameter norm, over all trainable sub-models together:
     ``||P'|| > param_norm_factor * ||P||`` with ``P`` every trainable parameter (the
     last accepted ones; not judged while ``||P|| = 0``). Judged together because a
     small freshly initialised head can grow 20x in a normal early step
     (``configs/explain.py:tiny``); the error names the sub-model that grew most. A
     learning rate a million times too large is caught here at its first update, while
     the parameters are still finite.

   Norms are Euclidean over all floating-point leaves of the sub-model, in float32
   (an overflowing norm is Inf, so it counts as a jump). A factor ``<= 0`` turns its
   rule off. The factors are ``TrainState.guard_limits`` (static), which
   :func:`jfr.train.loop.run_training` sets from ``config.guard_update_norm_factor``
   and ``config.guard_param_norm_factor``.

Under pmap the verdict is the minimum over the replicas (all keep or all apply).

The guard's own state, ``TrainState.guard`` (:func:`init_guard`), is a pytree that is
checkpointed with the rest, so a resumed run judges exactly as an uninterrupted one::

    update_norm[n]      float32  running mean u_n of sub-model n's update norms
    updates_seen[n]     int32    accepted non-zero updates of n
    rejected_in_a_row   int32    steps rejected since the last accepted one
    first_rejected_step int32    the first rejected step of the latest streak (0: none yet)
    reason, leaf, ratio          why that step was rejected (see :func:`describe`)

A step that is applied changes the parameters exactly as without the guard (the guard
only selects between the candidate and the old state), so a run that never diverges
gives bit-identical parameters.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax.core import FrozenDict
from jax import lax

PyTree = Any
EMA_DECAY = 0.95
# Why a step was rejected (the guard's ``reason``): checked in this order, the first wins.
REASONS = (
  "none",
  "loss",
  "grads",
  "params",
  "batch_stats",
  "opt_state",
  "extras",
  "update_norm",
  "param_norm",
)
STATE_GROUPS = ("params", "batch_stats", "opt_state", "extras")
DEFAULT_LIMITS = FrozenDict(update_norm_factor=1000.0, param_norm_factor=1000.0)
_CONFIG_FIELDS = {
  "update_norm_factor": "guard_update_norm_factor",
  "param_norm_factor": "guard_param_norm_factor",
}


def init_guard(params: dict[str, PyTree]) -> dict[str, PyTree]:
  """The guard state of a new run for the trainable sub-models ``params`` (see module doc)."""
  names = sorted(params)
  return {
    "update_norm": {name: jnp.zeros((), jnp.float32) for name in names},
    "updates_seen": {name: jnp.zeros((), jnp.int32) for name in names},
    "rejected_in_a_row": jnp.zeros((), jnp.int32),
    "first_rejected_step": jnp.zeros((), jnp.int32),
    "reason": jnp.zeros((), jnp.int32),
    "leaf": jnp.zeros((), jnp.int32),
    "ratio": jnp.zeros((), jnp.float32),
  }


def limits_from_config(config: Any) -> FrozenDict:
  """``guard_limits`` from a run config (fields missing from a hand-made config: defaults)."""
  limits = {}
  for key, field in _CONFIG_FIELDS.items():
    value = config.get(field, DEFAULT_LIMITS[key])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
      raise ValueError(
        f"config.{field}: expected a number (<= 0 turns the rule off), got {value!r}"
      )
    limits[key] = float(value)
  return FrozenDict(limits)


def _inexact(x: Any) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _first_nonfinite(tree: PyTree, index_map: list[int] | None = None):
  """(any leaf non-finite, index of the first such leaf in ``jax.tree.leaves`` order)."""
  leaves = jax.tree.leaves(tree)
  flags = [jnp.logical_not(jnp.isfinite(x).all()) for x in leaves if _inexact(x)]
  if not flags:
    return jnp.asarray(False), jnp.asarray(0, jnp.int32)
  positions = [i for i, x in enumerate(leaves) if _inexact(x)]
  if index_map is not None:
    positions = [index_map[i] for i in positions]
  bad = jnp.stack(flags)
  return bad.any(), jnp.asarray(positions, jnp.int32)[jnp.argmax(bad)]


def _grads_as_params(grads: PyTree, params: PyTree) -> list[int]:
  """For each gradient leaf, the index of the parameter leaf with the same path (-1: none)."""
  param_index = {
    jax.tree_util.keystr(path): i
    for i, (path, _) in enumerate(jax.tree_util.tree_flatten_with_path(params)[0])
  }
  return [
    param_index.get(jax.tree_util.keystr(path), -1)
    for path, _ in jax.tree_util.tree_flatten_with_path(grads)[0]
  ]


def _norm(tree: PyTree) -> jax.Array:
  squares = [
    jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree) if _inexact(x)
  ]
  return jnp.sqrt(sum(squares)) if squares else jnp.zeros((), jnp.float32)


def _all_replicas(ok: jax.Array) -> jax.Array:
  try:
    return lax.pmin(ok.astype(jnp.int32), "batch").astype(bool)
  except NameError:  # no pmap axis bound: one replica
    return ok


def judge(state: Any, new_state: Any, loss: jax.Array, grads: PyTree) -> tuple[jax.Array, PyTree]:
  """The verdict on one step and the next guard state (jit/pmap-safe; see the module doc).

  Args:
    state: the :class:`~jfr.train.state.TrainState` before the step (its ``guard`` and
      ``guard_limits`` are used).
    new_state: the candidate state after the step (same structure).
    loss: the loss (any shape); gradients: any pytree (``{name: tree like params[name]}``
      gets its leaves named after the parameters).

  Returns:
    ``(ok, guard)``: a bool scalar (apply ``new_state``) and the guard state to keep.
  """
  limits = state.guard_limits
  guard = state.guard
  bad, leaf, ratio = [], [], []

  def add(flag, index, value=0.0):
    bad.append(flag)
    leaf.append(jnp.asarray(index, jnp.int32))
    ratio.append(jnp.asarray(value, jnp.float32))

  add(*_first_nonfinite(loss))
  add(*_first_nonfinite(grads, _grads_as_params(grads, state.params)))
  for group in STATE_GROUPS:
    add(*_first_nonfinite(getattr(new_state, group)))
  names = sorted(state.params)
  stack = lambda xs, dtype=jnp.float32: jnp.stack(xs) if xs else jnp.zeros((0,), dtype)  # noqa: E731
  update_norms = stack(
    [_norm(jax.tree.map(lambda a, b: a - b, new_state.params[n], state.params[n])) for n in names]
  )
  old_norms = stack([_norm(state.params[n]) for n in names])
  new_norms = stack([_norm(new_state.params[n]) for n in names])
  if guard:
    means = stack([guard["update_norm"][n] for n in names])
    seen = stack([guard["updates_seen"][n] for n in names], jnp.int32)
    judged = (seen > 0) & (means > 0)
    update_ratio = jnp.where(judged, update_norms / jnp.where(judged, means, 1.0), 0.0)
  else:
    update_ratio = jnp.zeros_like(update_norms)
  grown = lambda new, old: jnp.where(old > 0, new / jnp.where(old > 0, old, 1.0), 0.0)  # noqa: E731
  # The parameter rule judges all trainable sub-models together (a small, e.g. freshly
  # initialised, head may legitimately grow many times in one step); it names the
  # sub-model that grew most.
  param_ratio = grown(jnp.sqrt(jnp.sum(new_norms**2)), jnp.sqrt(jnp.sum(old_norms**2)))
  for key, ratios in (("update_norm_factor", update_ratio), ("param_norm_factor", param_ratio)):
    factor = limits[key]
    if factor <= 0 or not names:  # rule off, or nothing trainable to judge
      add(jnp.asarray(False), 0)
      continue
    if key == "param_norm_factor":
      add(ratios > factor, jnp.argmax(grown(new_norms, old_norms)), ratios)
      continue
    jumped = ratios > factor
    first = jnp.argmax(jumped)
    add(jumped.any(), first, ratios[first])
  bad = jnp.stack(bad)
  ok = _all_replicas(jnp.logical_not(bad.any()))
  if not guard:
    return ok, guard
  cause = jnp.argmax(bad)
  new_streak = jnp.logical_not(ok) & (guard["rejected_in_a_row"] == 0)
  keep_or = lambda value, old: jnp.where(new_streak, value, old)
  counted = ok & (update_norms > 0)
  ema = jnp.where(seen > 0, EMA_DECAY * means + (1 - EMA_DECAY) * update_norms, update_norms)
  ema = jnp.where(counted, ema, means)
  return ok, {
    "update_norm": {n: ema[i] for i, n in enumerate(names)},
    "updates_seen": {n: seen[i] + counted[i].astype(jnp.int32) for i, n in enumerate(names)},
    "rejected_in_a_row": jnp.where(ok, 0, guard["rejected_in_a_row"] + 1),
    "first_rejected_step": keep_or(state.step.astype(jnp.int32) + 1, guard["first_rejected_step"]),
    "reason": keep_or((cause + 1).astype(jnp.int32), guard["reason"]),
    "leaf": keep_or(jnp.stack(leaf)[cause], guard["leaf"]),
    "ratio": keep_or(jnp.stack(ratio)[cause], guard["ratio"]),
  }


def _leaf_name(tree: PyTree, index: int) -> str:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return jax.tree_util.keystr(flat[index][0]) if 0 <= index < len(flat) else f"[leaf {index}]"


def describe(state: Any) -> str | None:
  """Why the first step of the latest rejected streak was rejected, from a host ``state``.

  E.g. ``"step 2: the parameter norm of the trainable sub-models (most: 'backbone') jumped
  to 5.4e+05 times its previous value (limit 1000: config.guard_param_norm_factor)"``, or
  ``"step 7: the candidate batch_stats['net']['BatchNorm_0']['var'] held NaN or Inf"``.
  None when no step was ever rejected (or the state carries no guard).
  """
  guard = state.guard
  if not guard or int(guard["first_rejected_step"]) <= 0:
    return None
  reason = REASONS[int(guard["reason"])]
  leaf, ratio = int(guard["leaf"]), float(guard["ratio"])
  if reason == "loss":
    what = "the loss was NaN or Inf"
  elif reason == "grads":
    name = _leaf_name(state.params, leaf) if leaf >= 0 else " (a leaf outside the params layout)"
    what = f"the gradient grads{name} held NaN or Inf"
  elif reason in STATE_GROUPS:
    what = f"the candidate {reason}{_leaf_name(getattr(state, reason), leaf)} held NaN or Inf"
  else:
    key = f"{reason}_factor"
    quantity = "update norm" if reason == "update_norm" else "parameter norm"
    reference = "its running mean" if reason == "update_norm" else "its previous value"
    name = sorted(state.params)[leaf]
    whose = (
      f"sub-model {name!r}"
      if reason == "update_norm"
      else f"the trainable sub-models (most: {name!r})"
    )
    what = (
      f"the {quantity} of {whose} jumped to {ratio:.3g} times "
      f"{reference} (limit {state.guard_limits[key]:g}: config.{_CONFIG_FIELDS[key]}); the "
      "candidate parameters were still finite"
    )
  return f"step {int(guard['first_rejected_step'])}: {what}"
