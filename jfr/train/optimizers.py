"""Optimizers and learning-rate schedules from config (a small registry, no if-chains).

An optimizer config is a ``ConfigDict`` with fields ``name`` ('sgd' | 'adam' | 'adamw'),
``learning_rate``, ``schedule`` ('constant' | 'cosine' | 'steps'), ``warmup_steps``,
``boundaries`` (fractions of training for 'steps'), ``decay_factor`` (per boundary),
``momentum`` (sgd), ``b1``/``b2`` (adam), ``weight_decay`` and ``grad_clip_norm``
(0 disables). All fields are read, so every optimizer config declares them all
(:func:`optimizer_config` builds one).
"""

from __future__ import annotations

from typing import Any, Sequence

import ml_collections
import optax


def optimizer_config(
  name: str = "sgd",
  learning_rate: float = 0.1,
  *,
  schedule: str = "constant",
  warmup_steps: int = 0,
  boundaries: Sequence[float] = (),
  decay_factor: float = 0.1,
  momentum: float = 0.9,
  b1: float = 0.9,
  b2: float = 0.999,
  weight_decay: float = 0.0,
  grad_clip_norm: float = 0.0,
) -> ml_collections.ConfigDict:
  """A complete optimizer ConfigDict (see the module docstring for the fields)."""
  return ml_collections.ConfigDict(
    dict(
      name=name,
      learning_rate=learning_rate,
      schedule=schedule,
      warmup_steps=warmup_steps,
      boundaries=tuple(boundaries),
      decay_factor=decay_factor,
      momentum=momentum,
      b1=b1,
      b2=b2,
      weight_decay=weight_decay,
      grad_clip_norm=grad_clip_norm,
    )
  )


def _constant(cfg: Any, num_steps: int) -> optax.Schedule:
  del num_steps
  return optax.constant_schedule(cfg.learning_rate)


def _cosine(cfg: Any, num_steps: int) -> optax.Schedule:
  return optax.cosine_decay_schedule(cfg.learning_rate, max(1, num_steps - cfg.warmup_steps))


def _steps(cfg: Any, num_steps: int) -> optax.Schedule:
  for b in cfg.boundaries:
    if not 0.0 < b < 1.0:
      raise ValueError(f"optimizer.boundaries are fractions of training in (0, 1), got {b}")
  scales = {int(b * num_steps): cfg.decay_factor for b in cfg.boundaries}
  return optax.piecewise_constant_schedule(cfg.learning_rate, scales)


SCHEDULES = {"constant": _constant, "cosine": _cosine, "steps": _steps}


def learning_rate_schedule(cfg: Any, num_steps: int) -> optax.Schedule:
  """The schedule of ``cfg`` over ``num_steps`` steps, with linear warm-up if asked."""
  if cfg.schedule not in SCHEDULES:
    raise ValueError(f"optimizer.schedule={cfg.schedule!r}; known: {sorted(SCHEDULES)}")
  main = SCHEDULES[cfg.schedule](cfg, num_steps)
  if cfg.warmup_steps <= 0:
    return main
  warm = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
  return optax.join_schedules([warm, main], [cfg.warmup_steps])


OPTIMIZERS = {
  "sgd": lambda cfg, lr: optax.sgd(lr, momentum=cfg.momentum or None),
  "adam": lambda cfg, lr: optax.adam(lr, b1=cfg.b1, b2=cfg.b2),
  "adamw": lambda cfg, lr: optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay),
}


def make_optimizer(cfg: Any, num_steps: int) -> optax.GradientTransformation:
  """The optax transformation an optimizer config describes.

  'sgd' and 'adam' apply ``weight_decay`` as L2 added to the gradient (coupled, as the
  papers' SGD); 'adamw' decouples it.
  """
  if cfg.name not in OPTIMIZERS:
    raise ValueError(f"optimizer.name={cfg.name!r}; known: {sorted(OPTIMIZERS)}")
  if cfg.learning_rate <= 0:
    raise ValueError(f"optimizer.learning_rate must be positive, got {cfg.learning_rate}")
  chain = []
  if cfg.grad_clip_norm > 0:
    chain.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  if cfg.weight_decay > 0 and cfg.name != "adamw":
    chain.append(optax.add_decayed_weights(cfg.weight_decay))
  chain.append(OPTIMIZERS[cfg.name](cfg, learning_rate_schedule(cfg, num_steps)))
  return optax.chain(*chain)
