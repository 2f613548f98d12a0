"""One phase timer for every method: wall-clock and process CPU seconds per named phase."""

from __future__ import annotations

import contextlib
import time

from absl import logging


class PhaseTimer:
  """Times named phases::

    timer = PhaseTimer()
    with timer.phase("train"):
      ...
    timer.phases  # {"train": {"wall_s": 12.3, "cpu_s": 20.1}}

  A phase that runs twice accumulates. Each finished phase is logged.
  """

  def __init__(self):
    self.phases: dict[str, dict[str, float]] = {}

  @contextlib.contextmanager
  def phase(self, name: str):
    wall, cpu = time.perf_counter(), time.process_time()
    try:
      yield
    finally:
      spent = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
      old = self.phases.get(name, {"wall_s": 0.0, "cpu_s": 0.0})
      self.phases[name] = {k: round(old[k] + v, 1) for k, v in spent.items()}
      logging.info("phase %s: %.1f s wall, %.1f s CPU", name, spent["wall_s"], spent["cpu_s"])

  def total(self) -> dict[str, float]:
    """Sum over phases."""
    return {k: round(sum(p[k] for p in self.phases.values()), 1) for k in ("wall_s", "cpu_s")}
