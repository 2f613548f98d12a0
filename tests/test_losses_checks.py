"""Tests for jfr.losses.checks (shared loss input checks)."""

import jax
import jax.numpy as jnp
import pytest

from jfr.losses import checks


def test_check_ndim_names_the_argument_and_its_shape():
  checks.check_ndim("f", jnp.zeros((2, 3)), 2, "[B, D]")
  with pytest.raises(
    ValueError, match=r"f must have shape \[B, D\] \(rank 2\); got shape \(2, 3, 4\)"
  ):
    checks.check_ndim("f", jnp.zeros((2, 3, 4)), 2, "[B, D]")


def test_is_concrete_is_false_only_under_tracing():
  seen = []
  jax.jit(lambda x: seen.append(checks.is_concrete(x)) or x)(jnp.ones(2))
  assert seen == [False]
  assert checks.is_concrete(jnp.ones(2))
