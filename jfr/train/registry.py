"""Which trainer module runs which method (``config.method``), imported on demand.

Each trainer module exposes ``MODES`` (tuple of mode names) and
``run(config, workdir, mode) -> dict`` (the results it wrote).
"""

import importlib
from typing import Any

TRAINERS = {
  "recognition": "jfr.train.recognition",
  "fan": "jfr.train.fan",
  "explain": "jfr.train.explain",
  "attributes": "jfr.train.attributes",
  "interpretable": "jfr.train.interpretable",
  "templates": "jfr.train.templates",
}


def run(config: Any, workdir: str, mode: str) -> dict:
  """Runs ``mode`` of the trainer that ``config.method`` names."""
  method = config.method
  if method not in TRAINERS:
    raise ValueError(f"config.method={method!r} is not a known method; known: {sorted(TRAINERS)}")
  trainer = importlib.import_module(TRAINERS[method])
  if mode not in trainer.MODES:
    raise ValueError(f"--mode={mode!r} is not a mode of {method}; modes: {trainer.MODES}")
  return trainer.run(config, workdir, mode)
