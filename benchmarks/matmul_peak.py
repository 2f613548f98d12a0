"""Attainable matrix-multiply throughput (GFLOP/s) of the default JAX device.

The reference other benchmarks divide by to report a fraction of peak (e.g.
``benchmarks/train_step.py``): ``matmul_peak_gflops`` times a jitted chain of
``n x n`` matmuls (``2 n^3`` FLOPs each) and returns the best of a few repeats.

Usage::

  python -m benchmarks.matmul_peak --n=2048 --dtype=float32
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
from absl import app, flags

_CHAIN = 8  # matmuls per compiled call, so that dispatch overhead does not count


def matmul_peak_gflops(n: int = 2048, dtype: jnp.dtype = jnp.float32, repeats: int = 3) -> float:
  """Best observed GFLOP/s of ``n x n @ n x n`` matmuls in ``dtype`` on the default device.

  Args:
    n: matrix side.
    dtype: element type of both operands (and of the accumulation XLA picks).
    repeats: timed calls (after one compiling call); the fastest one counts.
  """
  if n <= 0 or repeats <= 0:
    raise ValueError(f"n, repeats: expected positive ints, got {n}, {repeats}")
  key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
  a = (jax.random.normal(key_a, (n, n), jnp.float32) / math.sqrt(n)).astype(dtype)
  b = jax.random.normal(key_b, (n, n), jnp.float32).astype(dtype)

  @jax.jit
  def chain(a, b):
    # Each product depends on the last, so XLA cannot drop or merge them; the
    # 1 / sqrt(n) scale of ``a`` keeps the values of order one.
    for _ in range(_CHAIN):
      b = a @ b
    return b

  chain(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    chain(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return _CHAIN * 2 * n**3 / best / 1e9


def compiled_flops(compiled) -> float | None:
  """FLOPs XLA counts for one call of a compiled computation (None when unavailable;
  ``cost_analysis`` is a dict, or a list of one, depending on the jax version)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost["flops"]) if cost and "flops" in cost else None


def main(argv):
  del argv
  args = flags.FLAGS
  gflops = matmul_peak_gflops(args.n, jnp.dtype(args.dtype), args.repeats)
  print(
    f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
    f"{jax.device_count()} device(s)"
  )
  print(f"matmul peak: {gflops:.1f} GFLOP/s ({args.n}x{args.n} {args.dtype})")


if __name__ == "__main__":
  # Flags are defined only when run as a script, so other benchmarks can import
  # matmul_peak_gflops next to flags of their own.
  flags.DEFINE_integer("n", 2048, "Matrix side.")
  flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16", "float16"], "Operand dtype.")
  flags.DEFINE_integer("repeats", 3, "Timed calls; the fastest counts.")
  app.run(main)
