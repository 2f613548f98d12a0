"""Explainable face recognition (Xu, Lu, Ebrahimi; ``configs/explain.py``). Modes:

* ``train``: trains ours (``<workdir>/checkpoints``, :mod:`jfr.methods.explain.trainer`)
  and the plain ArcFace model (``<workdir>/baseline``), both resumable;
* ``eval``: restores both and runs the ``still_images`` entries of ``config.evals`` on each
  (Table I analog: ``eval/<name>.json`` / ``.md`` of ours with the joint table,
  ``baseline/eval/<name>.json``, ``figures/<name>_roc.png``);
* ``explain``: restores ours and runs the saliency experiments (``hiding_game`` and
  ``pointing_game`` entries of ``config.evals``, Fig. 2 / Fig. 3 analogs:
  ``eval/explain.json`` / ``.md``, ``figures/explain_*.png``);
* ``all``: the three in turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_collections

from jfr import workdir as workdir_lib
from jfr.context import RunContext
from jfr.methods import registry
from jfr.methods.explain import evaluate
from jfr.methods.explain import trainer
from jfr.methods.explain.constants import MODES
from jfr.report import PhaseTimer

__all__ = ["MODES", "run"]


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring); returns the results it wrote."""
  registry.check_mode(mode, MODES)
  config = trainer.effective_config(config)  # backbone_init's model with GMP, if set
  trainer.check_model_config(config)
  workdir = Path(workdir)
  context = RunContext.from_config(config)
  workdir_lib.write_data_facts(workdir, context.facts())
  timer = PhaseTimer()
  results: dict[str, Any] = {}
  if mode in ("all", "train"):
    with timer.phase("train ours"):
      trainer.train(config, workdir, context)
    with timer.phase("train plain ArcFace"):
      trainer.train_baseline(config, workdir, context)
  if mode in ("all", "eval", "explain"):
    ours = trainer.restore(config, workdir, context)
  if mode in ("all", "eval"):
    baseline = trainer.restore_baseline(config, workdir, context)
    with timer.phase("recognition"):
      results["recognition"] = evaluate.evaluate_recognition(
        config, workdir, context, ours, baseline
      )
  if mode in ("all", "explain"):
    with timer.phase("explain"):
      results["explain"] = evaluate.explain(config, workdir, context, *ours)
  return results


def eval_model(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  batch_size: int,
  allow_older: bool = False,
):
  """``(EvalModel, checkpoint info)`` of ours (:func:`.evaluate.eval_model`: ``embed`` and
  the extras ``features``, ``conv_map``, ``pool``, ``decode``, ``verify``), shaped from
  the run's ``data_facts.json``. ``batch_size`` is not used (``config.evals`` sets it)."""
  del batch_size
  context = registry.recorded_shape(workdir)
  config = trainer.effective_config(registry.allowing_older(config, allow_older))
  variables, info = trainer.restore(config, workdir, context)
  return evaluate.eval_model(config, variables, context.image_size), info
