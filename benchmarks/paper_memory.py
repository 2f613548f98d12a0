"""Memory estimate of every ``configs/*.py:paper`` train step, compiled on this machine.

Builds the same abstract states and steps as ``tests/test_paper_configs.py`` (paper batch
and image size, the whole batch on one device under ``pmap``), compiles them (the test
only lowers) and prints XLA's ``memory_analysis()`` of each: arguments (state + batch),
outputs, temporaries and the peak estimate ``arguments + outputs + temporaries - aliased``.

These are CPU estimates: XLA:CPU's buffer assignment, without donation of the state (so
the state is counted twice). A GPU compiles other fusions and layouts and adds cuDNN
workspaces and the allocator's fragmentation; treat the figures as an order of magnitude
(does one device hold the paper batch?), not as a GPU measurement. With ``D`` devices
under pmap each holds ``batch / D`` examples and a full copy of the state.

Usage::

  python -m benchmarks.paper_memory                       # every paper config
  python -m benchmarks.paper_memory --configs=baseline,fan
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_paper_configs as paper  # noqa: E402  (the test's step table: one source)

_CONFIGS = flags.DEFINE_list("configs", list(paper.PAPER_CONFIGS), "Paper configs to compile.")

_GIB = 1024**3


def _row(label: str, compiled, seconds: float) -> str:
  memory = compiled.memory_analysis()
  if memory is None:
    return f"{label:28s} (no memory analysis on this backend)"
  args, outs = memory.argument_size_in_bytes, memory.output_size_in_bytes
  temp, alias = memory.temp_size_in_bytes, memory.alias_size_in_bytes
  peak = args + outs + temp - alias
  return (
    f"{label:28s} {args / _GIB:8.2f} {outs / _GIB:8.2f} {temp / _GIB:8.2f} "
    f"{peak / _GIB:8.2f}   {seconds:6.1f}"
  )


def main(argv):
  del argv
  import jax

  print(f"CPU ESTIMATE (XLA:{jax.default_backend()}): GiB per device, whole paper batch on it")
  print(f"{'step':28s} {'args':>8s} {'outputs':>8s} {'temp':>8s} {'peak':>8s}   compile s")
  for name in _CONFIGS.value:
    config = paper._paper(name)
    for label, state_fn, make_step, batch in paper.train_steps(name, config):
      start = time.perf_counter()
      lowered, _ = paper.lower_step(state_fn, make_step, batch)
      compiled = lowered.compile()
      size = jax.tree.leaves(batch)[0].shape[0]
      print(_row(f"{label} (B={size})", compiled, time.perf_counter() - start))
      sys.stdout.flush()


if __name__ == "__main__":
  app.run(main)
