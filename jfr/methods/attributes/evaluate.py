"""Evaluation of the attribute method: each variant's stage-1 and fine-tuned models as
:class:`~jfr.eval.embedding.EvalModel` s, put through ``config.evals`` plus the method's own
attribute-accuracy tables.

* Identification (``config.evals.identification``, evaluator ``cmc_with_distractors``):
  cosine similarity of the identity branch's pre-classifier features (``features``); rank-1
  and the CMC with distractors in the gallery, for the stage-1 model (open set: test
  identities unseen) and the fine-tuned one.
* Fig. 4 analog (``config.evals.cam``, evaluator ``cam_region_mass``, stage-1 models only):
  attribute activation maps of the attribute branch
  (:func:`jfr.models.attribute_net.attribute_maps`: CAM, exact for a linear branch, Grad-CAM
  weights otherwise), bilinearly upsampled to the image; the share of each attribute's map
  mass inside its face region.
* Table 1 analog (this module): per-attribute accuracy of each stage-1 model on the whole
  ``dataset.test_split`` (identity-disjoint from training), with the positive rate and the
  majority-class baseline; after fine-tuning, the attribute accuracy on the distractor
  identities shows how far the attribute branch drifted.

Every entry's results sit under ``variants.<variant>.<stage>.<entry name>`` of
``eval/attributes.json``; the protocol's sizes under ``protocol``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval import registry as eval_registry
from jfr.eval.cam_region_mass import kept_rows
from jfr.losses import attributes as attribute_losses
from jfr.methods.attributes import comparisons as comparisons_lib
from jfr.methods.attributes import finetune as finetune_lib
from jfr.methods.attributes import report, trainer
from jfr.methods.attributes.constants import PROTOCOL_EVAL, RESULTS_NAME, STAGE1_ONLY_TYPES
from jfr.models import attribute_net
from jfr.report import PhaseTimer
from jfr.report import intervals
from jfr.report.results import write_results


def check_evals(config: ml_collections.ConfigDict, names: Sequence[str]) -> None:
  """Fails early (before training) on ``config.evals`` entries the models cannot serve."""
  finetune_lib.protocol_settings(config)
  for name, block in config.evals.items():
    type_name, settings = eval_registry.settings_of(block)
    eval_registry.get(type_name)
    if type_name == "cam_region_mass":
      try:
        kept_rows(settings["keep_maps"], names)
      except ValueError as e:
        raise ValueError(f"config.evals.{name}.{e}") from None


def _maps_function(
  model: attribute_net.AttributeIdentityNet, variables: dict, size: int, batch_size: int
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """uint8 images -> ``maps [B, size, size, T]`` (bilinear, rectified) and ``logits [B, T]``,
  in zero-padded chunks of ``batch_size`` (one compilation)."""

  def fn(variables, images):
    maps = attribute_net.attribute_maps(model, variables, images)
    up = jax.image.resize(maps, (maps.shape[0], size, size, maps.shape[-1]), "linear")
    logits = model.apply(variables, images, train=False)["attribute_logits"]
    return {"maps": jnp.maximum(up, 0.0), "logits": logits}

  jitted = jax.jit(fn)

  def attribute_maps(images: np.ndarray) -> dict[str, np.ndarray]:
    x = embedding.to_model_input(images, size)
    out: dict[str, list] = {}
    for start in range(0, len(x), batch_size):
      chunk = x[start : start + batch_size]
      n = len(chunk)
      padded = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], np.float32)])
      for k, v in jitted(variables, padded).items():
        out.setdefault(k, []).append(np.asarray(v)[:n])
    return {k: np.concatenate(v) for k, v in out.items()}

  return attribute_maps


def eval_model(
  model: attribute_net.AttributeIdentityNet, variables: dict, input_size: int, batch_size: int
) -> embedding.EvalModel:
  """What an attribute network offers evaluators: ``embed`` (identity features) and the
  extras ``attribute_logits`` (uint8 images -> ``[B, T]``) and ``attribute_maps``."""

  def output(key: str) -> embedding.EmbedFn:
    apply = lambda v, x: model.apply(v, x, train=False)[key]
    return embedding.model_embedder(apply, variables, input_size=input_size, batch_size=batch_size)

  return embedding.EvalModel(
    input_size=input_size,
    embed=output("features"),
    extras={
      "attribute_logits": output("attribute_logits"),
      "attribute_maps": _maps_function(model, variables, input_size, batch_size),
    },
  )


def attribute_report(
  logits: np.ndarray,
  targets: np.ndarray,
  names: Sequence[str],
  identities: np.ndarray | None = None,
) -> dict:
  """Per-attribute accuracy (logit > 0 = present) with positive rate and majority baseline.

  With ``identities`` ``[N]`` (the images' identity labels): 95 % intervals by a bootstrap
  over the identities (``mean_accuracy_ci95`` and each ``accuracy_ci95``, seed 0) and, in
  memory, ``_image_correct`` ``[N]`` (each image's share of attributes right, whose mean is
  ``mean_accuracy``) for paired comparisons of models on the same images.
  """
  accuracy = np.asarray(
    attribute_losses.attribute_accuracy(jnp.asarray(logits), jnp.asarray(targets))
  )
  positive = targets.mean(axis=0)
  out = {
    "num_images": int(len(targets)),
    "mean_accuracy": float(accuracy.mean()),
    "per_attribute": {
      n: {"accuracy": float(a), "positive_rate": float(p), "majority": float(max(p, 1 - p))}
      for n, a, p in zip(names, accuracy, positive)
    },
  }
  if identities is not None and np.unique(identities).size >= 2:
    correct = (np.asarray(logits) > 0) == (np.asarray(targets) > 0.5)
    for n, column in zip(names, correct.T):
      out["per_attribute"][n]["accuracy_ci95"] = intervals.mean_interval(
        column, identities
      ).as_list()
    out["_image_correct"] = correct.mean(axis=1)
    out["mean_accuracy_ci95"] = intervals.mean_interval(out["_image_correct"], identities).as_list()
  return out


def evaluate_stage(
  config: ml_collections.ConfigDict,
  data: trainer.AttributeData,
  mode: str,
  stage: str,
  state: Any,
  attributes: Mapping[str, np.ndarray],
) -> tuple[dict, dict[str, dict]]:
  """Every applicable ``config.evals`` entry and the attribute table of one model.

  Returns ``(results, figure inputs of the cam entries)``.
  """
  context = data.context
  model, variables = trainer.inference(config, mode, state, len(data.indices))
  out, figures, units = {}, {}, {}
  for name, block in config.evals.items():
    type_name, settings = eval_registry.settings_of(block)
    if stage != "pretrained" and type_name in STAGE1_ONLY_TYPES:
      continue
    em = eval_model(model, variables, context.image_size, settings.get("batch_size", 256))
    result = eval_registry.evaluate(type_name, em, context, settings, seed=config.seed)
    if "_figure" in result:
      figures[name] = result.pop("_figure")
    if "_rank1_hits" in result:
      units[name] = (result.pop("_rank1_hits"), result.pop("_probe_labels"))
    out[name] = result
  batch = finetune_lib.protocol_settings(config)["batch_size"]
  em = eval_model(model, variables, context.image_size, batch)
  if stage == "pretrained":
    logits = em.extras["attribute_logits"](attributes["test_image"])
    out["attributes_test"] = attribute_report(
      logits, attributes["test"], data.names, attributes["test_label"]
    )
  else:
    # All of the split's stills, then the distractors' rows (batches as in stage 1).
    logits = em.extras["attribute_logits"](attributes["protocol_image"])
    logits = logits[attributes["distractor_stills"]]
    out["attributes_distractor_identities"] = attribute_report(
      logits, attributes["distractor"], data.names, attributes["distractor_label"]
    )
  for name in ("attributes_test", "attributes_distractor_identities"):
    if "_image_correct" in out.get(name, {}):
      units[name] = out[name].pop("_image_correct")
  out["_units"] = units
  return out, figures


def attribute_targets(config: ml_collections.ConfigDict, data: trainer.AttributeData) -> dict:
  """Stills and attribute targets ``[N, T]`` of the test split and of the protocol's
  distractor identities."""
  builder, columns = data.context.builder, np.asarray(data.indices)
  test = pipelines.load_arrays(builder, data.context.test_split, ("image", "label", "attributes"))
  settings = finetune_lib.protocol_settings(config)
  stills = pipelines.load_arrays(builder, settings["split"], ("image", "label", "attributes"))
  protocol = finetune_lib.protocol_of(stills["label"], settings)
  return {
    "test_image": test["image"],
    "test": test["attributes"][:, columns],
    "test_label": test["label"],
    "protocol_image": stills["image"],
    "distractor_stills": protocol.distractor_stills,
    "distractor": stills["attributes"][protocol.distractor_stills][:, columns],
    "distractor_label": stills["label"][protocol.distractor_stills],
  }


def evaluate(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  data: trainer.AttributeData,
  states: Mapping[str, Mapping[str, Any]],
  checkpoints: Mapping[str, Mapping[str, dict]],
) -> dict:
  """Evaluates every variant and stage; writes ``eval/attributes.{json,md}`` and figures."""
  attributes = attribute_targets(config, data)
  results: dict[str, Any] = {"attributes": list(data.names), "variants": {}}
  cam_figures: dict[str, tuple] = {}
  units: dict[str, dict] = {}
  timer = PhaseTimer()
  for mode, stage_states in states.items():
    with timer.phase(f"evaluate_{mode}"):
      out = {}
      for stage, state in stage_states.items():
        out[stage], figures = evaluate_stage(config, data, mode, stage, state, attributes)
        units.setdefault(mode, {})[stage] = out[stage].pop("_units")
        if "protocol" in out[stage].get(PROTOCOL_EVAL, {}):
          results["protocol"] = out[stage][PROTOCOL_EVAL].pop("protocol")
        for name, figure in figures.items():
          cam_figures[f"{name}_{mode}"] = (name, mode, figure)
      results["variants"][mode] = out
  results["timing"] = timer.phases
  results["comparisons"] = comparisons_lib.comparisons(units, attributes["test_label"])
  cam_entries = [
    name
    for name, block in config.evals.items()
    if eval_registry.settings_of(block)[0] == "cam_region_mass"
  ]
  markdown = report.markdown(results, data.names, cam_entries)
  if results["comparisons"]:
    markdown += (
      "\n\n## The paper's comparisons: paired differences [95 % bootstrap interval over "
      "identities]\n\n" + intervals.comparisons_table(results["comparisons"])
    )
  figures = report.figures(results, cam_figures, data.names, config.cam.figure_columns)
  flat = {f"{v}/{s}": info for v, by_stage in checkpoints.items() for s, info in by_stage.items()}
  write_results(workdir, RESULTS_NAME, results, markdown=markdown, figures=figures, checkpoint=flat)
  logging.info("attribute experiment:\n%s", markdown)
  return results
