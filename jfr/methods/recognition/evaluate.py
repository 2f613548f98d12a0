"""Recognition evaluation: the run's backbone as an :class:`~jfr.eval.embedding.EvalModel`,
put through the evaluators that ``config.evals`` names."""

from __future__ import annotations

import functools
import os

import ml_collections
from absl import logging

from jfr.context import RunContext
from jfr.eval import embedding
from jfr.eval import registry
from jfr.eval import still_images
from jfr.infer import thresholds
from jfr.methods.recognition import trainer
from jfr.report import results as results_lib


def embed_function(
  config: ml_collections.ConfigDict, variables: dict, input_size: int, batch_size: int
) -> embedding.EmbedFn:
  """The backbone of ``config.model`` with ``variables`` as an :data:`EmbedFn`."""
  module = trainer.inference_backbone(config)
  return embedding.model_embedder(
    functools.partial(module.apply, train=False),
    variables,
    input_size=input_size,
    batch_size=batch_size,
  )


def eval_model(
  config: ml_collections.ConfigDict, variables: dict, input_size: int, batch_size: int
) -> embedding.EvalModel:
  """What a recognition run offers evaluators: ``embed``."""
  return embedding.EvalModel(
    input_size=input_size, embed=embed_function(config, variables, input_size, batch_size)
  )


def log_summary(name: str, results: dict) -> None:
  """One log line with the headline numbers of a still-image evaluation."""
  v, i = results["verification"], results["identification"]
  logging.info(
    "%s: verification acc %.4f ± %.4f, EER %.4f, TAR@FAR %s; rank-1 %.4f, TPIR@FPIR %s",
    name,
    v["accuracy"],
    v["accuracy_std"],
    v["eer"],
    v["tar_at_far"],
    i.get("cmc", {}).get("rank1", float("nan")),
    i.get("tpir_at_fpir"),
  )


def evaluate(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  variables: dict,
  context: RunContext,
  checkpoint: dict | None,
) -> dict[str, dict]:
  """Runs every evaluator of ``config.evals`` on the backbone; writes each result
  (``eval/<name>.json``; ROC/CMC figures for ``still_images``); returns name -> results."""
  out = {}
  for name, block in config.evals.items():
    type_name, settings = registry.settings_of(block)
    model = eval_model(config, variables, context.image_size, settings.get("batch_size", 256))
    results = registry.evaluate(type_name, model, context, settings, seed=config.seed)
    figures = None
    if type_name == "still_images":
      title = f"{name} ({context.dataset_name} {settings['split']})"
      figures = still_images.curves(results, name, title)
      log_summary(name, results)
      source = dict(evaluation=name, dataset=context.dataset_name, split=settings["split"])
      thresholds.write_thresholds(
        workdir,
        thresholds.thresholds_from_still_images(
          results, settings, {**source, "flip": settings["flip"]}
        ),
      )
    results_lib.write_results(workdir, name, results, figures=figures, checkpoint=checkpoint)
    out[name] = results
  return out
