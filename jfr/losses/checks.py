"""Input checks shared by the loss modules (raise ``ValueError`` naming the argument)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def is_concrete(x: jax.Array) -> bool:
  """True outside tracing: value checks (ranges, NaN) run only on concrete arrays."""
  return not isinstance(x, jax.core.Tracer)


def check_ndim(name: str, x: jax.Array, ndim: int, layout: str) -> None:
  """Raises ``ValueError`` unless ``x`` has rank ``ndim`` (``layout`` e.g. ``'[B, D]'``)."""
  if jnp.ndim(x) != ndim:
    raise ValueError(f"{name} must have shape {layout} (rank {ndim}); got shape {jnp.shape(x)}")
