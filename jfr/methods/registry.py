"""Which method package runs which ``config.method``, imported on demand.

Each ``jfr.methods.<name>.run`` module exposes ``MODES`` (tuple of mode names) and
``run(config, workdir, mode) -> dict`` (the results it wrote).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

METHODS = {
  "recognition": "jfr.methods.recognition.run",
  "fan": "jfr.methods.fan.run",
  "explain": "jfr.methods.explain.run",
  "attributes": "jfr.methods.attributes.run",
  "interpretable": "jfr.methods.interpretable.run",
  "templates": "jfr.methods.templates.run",
}
# Modes that train (and so record the run's config in its workdir); others only read a run.
TRAINING_MODES = ("all", "train")


def method_module(method: str):
  """The ``run`` module of ``method``."""
  if method not in METHODS:
    raise ValueError(f"config.method={method!r} is not a known method; known: {sorted(METHODS)}")
  return importlib.import_module(METHODS[method])


@dataclasses.dataclass(frozen=True)
class RecordedShape:
  """What shapes a trained run's model (from its ``data_facts.json``): the ``num_classes`` and
  ``image_size`` fields of :class:`jfr.context.RunContext`, without the data set, for
  trainers' restore functions."""

  num_classes: int
  image_size: int


def recorded_shape(workdir: str) -> RecordedShape:
  """The :class:`RecordedShape` of the run in ``workdir``."""
  from jfr import workdir as workdir_lib

  facts = workdir_lib.read_data_facts(workdir)
  return RecordedShape(num_classes=facts["num_classes"], image_size=facts["image_size"])


def allowing_older(config: Any, allow_older: bool) -> Any:
  """``config``, or a copy with ``allow_older_checkpoint=True`` when ``allow_older``."""
  if not allow_older:
    return config
  config = config.copy_and_resolve_references()
  config.allow_older_checkpoint = True
  return config


def check_mode(mode: str, modes: tuple[str, ...]) -> None:
  """Raises ``ValueError`` unless ``mode`` is one of the method's ``modes``."""
  if mode not in modes:
    raise ValueError(f"mode: expected one of {modes}, got {mode!r}")


def run(config: Any, workdir: str, mode: str) -> dict:
  """Runs ``mode`` of the method that ``config.method`` names."""
  module = method_module(config.method)
  if mode not in module.MODES:
    raise ValueError(f"--mode={mode!r} is not a mode of {config.method}; modes: {module.MODES}")
  return module.run(config, workdir, mode)


def load_eval_model(workdir: str, *, batch_size: int = 256, allow_older: bool = False):
  """``(EvalModel, checkpoint info)`` of the trained run in ``workdir``, from its recorded
  config (:mod:`jfr.workdir`): what benchmarks and inference use. A method offers one through
  an ``eval_model(config, workdir, batch_size=, allow_older=)`` function of its ``run`` module."""
  from jfr import workdir as workdir_lib

  config = workdir_lib.load_run_config_dict(workdir)
  module = method_module(config.method)
  if not hasattr(module, "eval_model"):
    raise ValueError(
      f"the {config.method} run in {workdir!r} offers no face embedding model to evaluate"
    )
  return module.eval_model(config, workdir, batch_size=batch_size, allow_older=allow_older)
