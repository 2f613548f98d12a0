"""Face Aggregation Network run (``configs/fan.py``). Modes:

* ``train``: stage 1 (the extractor, ``<workdir>/extractor``; skipped when
  ``config.extractor.workdir`` names a run to take it from) and stage 2 (one aggregator per
  variant, ``<workdir>/aggregator_<variant>``), see :mod:`jfr.methods.fan.trainer`; each
  resumes from its checkpoints; ``eval/fan_features.json`` holds the feature scale;
* ``eval``: restores the newest checkpoints of both stages and runs the evaluations of
  :mod:`jfr.methods.fan.evaluate` (``eval/<name>.json`` per entry of
  ``config.extractor.evals`` and ``config.evals``, ``eval/fan.md``, ``figures/fan_*.png``);
* ``all``: both. ``eval/fan_timing.json`` holds wall and CPU seconds per phase.
"""

from __future__ import annotations

import ml_collections
from absl import logging

from jfr import workdir as workdir_lib
from jfr.context import RunContext
from jfr.data import pipelines
from jfr.methods import registry
from jfr.methods.fan import evaluate
from jfr.methods.fan import extractor_source
from jfr.methods.fan import settings
from jfr.methods.fan import trainer
from jfr.report import results as results_lib
from jfr.report.timer import PhaseTimer

MODES = ("all", "train", "eval")


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring)."""
  registry.check_mode(mode, MODES)
  settings.check_config(config)
  config = extractor_source.effective_config(config)  # extractor.workdir's model, if set
  timer = PhaseTimer()
  with timer.phase("context"):
    context = RunContext.from_config(config)
  workdir_lib.write_data_facts(workdir, context.facts())
  features = None
  if mode in ("all", "train"):
    features = trainer.train(config, workdir, context, timer)
  results: dict = {}
  if mode in ("all", "eval"):
    with timer.phase("restore"):
      extractor, generators, infos = trainer.restore(config, workdir, context)
    if features is None:
      with timer.phase("centers"):
        stills = pipelines.load_arrays(context.builder, context.train_split, ("image", "label"))
        _, features = trainer.identity_centers(config, stills, extractor, context.num_classes)
      logging.info("extractor features: %s", features)
      results_lib.write_results(workdir, "fan_features", {"features": features})
    results = evaluate.evaluate(
      config, workdir, extractor, generators, features, context, infos, timer
    )
  timer.phases["total"] = timer.total()
  results_lib.write_json(timer.phases, f"{workdir}/eval/fan_timing.json")
  results["timing"] = timer.phases
  return results


def eval_model(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  batch_size: int,
  allow_older: bool = False,
):
  """``(EvalModel, checkpoint infos)`` of a trained FAN run, shaped from its
  ``data_facts.json``: ``embed`` (the extractor), ``embed_sets`` (the first of
  ``config.variants``), extras ``embed_sets_<variant>`` and ``aggregate_<variant>`` (float
  sets in [-1, 1] -> aggregated faces) for every variant, and ``embed_model_range``.
  ``batch_size`` is not used (``config.inference`` sets the FAN's batches)."""
  import dataclasses

  from jfr.methods.fan import aggregator

  del batch_size
  context = registry.recorded_shape(workdir)
  config = extractor_source.effective_config(registry.allowing_older(config, allow_older))
  extractor, generators, infos = trainer.restore(config, workdir, context)
  models = {
    name: aggregator.eval_model(config, extractor, params, context.image_size)
    for name, params in generators.items()
  }
  first = models[config.variants[0]]
  extras = dict(first.extras)
  for name, model in models.items():
    extras[f"embed_sets_{name}"] = model.embed_sets
    extras[f"aggregate_{name}"] = model.extras["aggregate_model_range"]
  return dataclasses.replace(first, extras=extras), infos
