"""Evaluators by name: ``config.evals = {name: {type: <evaluator>, ...settings}}``.

An evaluator is a function ``fn(model, context, settings, *, seed) -> dict``:

* ``model``: :class:`jfr.eval.embedding.EvalModel` — what the trained run offers (``embed``,
  ``embed_sets``, named extras); the function's module-level ``NEEDS`` (or the registry entry)
  lists what it requires, and a model without it is refused with a ``ValueError``;
* ``context``: :class:`jfr.context.RunContext` (the data set) or, for file benchmarks, None;
* ``settings``: the evaluator's block of ``config.evals`` (without ``type``);
* ``seed``: protocol randomness (pair sampling, gallery splits).

It returns a results dict (``_``-prefixed keys carry arrays for figures and are not written).
Entries name ``module:function`` and are imported on first use, so a config naming one
evaluator does not import them all, and evaluator modules never import methods.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

from jfr.eval.embedding import EvalModel

# type -> "module:function"
EVALUATORS: dict[str, str] = {
  "still_images": "jfr.eval.still_images:verification_identification",
  "video_pairs": "jfr.eval.video_pairs:video_pairs",
  "mixed_media": "jfr.eval.mixed_media:mixed_media",
  "occluded_still_images": "jfr.eval.occlusion:occluded_still_images",
  "occlusion_feature_difference": "jfr.eval.occlusion:feature_difference",
  "peak_spread": "jfr.eval.peak_spread:peak_spread",
  "partial_face_retrieval": "jfr.eval.partial_retrieval:partial_face_retrieval",
  "hiding_game": "jfr.eval.hiding_protocol:evaluate",
  "pointing_game": "jfr.eval.pointing_protocol:evaluate",
  "cmc_with_distractors": "jfr.eval.cmc_distractors:identification_with_distractors",
  "cam_region_mass": "jfr.eval.cam_region_mass:cam_region_mass",
  "fan_quality": "jfr.eval.fan_quality:fan_quality",
  # File benchmarks (context None; python -m jfr.evaluate --benchmark=...)
  "insightface_bin": "jfr.eval.benchmarks.verification:insightface_bin",
  "lfw": "jfr.eval.benchmarks.lfw:lfw",
  "ytf": "jfr.eval.benchmarks.ytf:ytf",
  "ijb": "jfr.eval.benchmarks.ijb:ijb",
  "ijba": "jfr.eval.benchmarks.ijba:ijba",
}


def register(name: str, target: str) -> None:
  """Adds evaluator ``name`` -> ``'module:function'`` (e.g. from a user's own package)."""
  if ":" not in target:
    raise ValueError(f"target: expected 'module:function', got {target!r}")
  EVALUATORS[name] = target


def get(name: str) -> Callable[..., dict]:
  """The evaluator function registered as ``name``."""
  if name not in EVALUATORS:
    raise ValueError(f"evaluator type {name!r} is not known; known: {sorted(EVALUATORS)}")
  module, function = EVALUATORS[name].split(":")
  return getattr(importlib.import_module(module), function)


def needs(fn: Callable[..., dict]) -> tuple[str, ...]:
  """What ``fn`` requires of the model (its ``NEEDS`` attribute or its module's)."""
  if hasattr(fn, "NEEDS"):
    return tuple(fn.NEEDS)
  return tuple(getattr(importlib.import_module(fn.__module__), "NEEDS", ("embed",)))


def evaluate(
  type_name: str, model: EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """Runs evaluator ``type_name`` on ``model`` after checking it has what the evaluator needs."""
  fn = get(type_name)
  model.require(needs(fn), type_name)
  return fn(model, context, settings, seed=seed)


def settings_of(block: Any) -> tuple[str, dict]:
  """``(type, settings)`` of one ``config.evals`` entry (ConfigDict or dict)."""
  data = block.to_dict() if hasattr(block, "to_dict") else dict(block)
  if "type" not in data:
    raise ValueError(f"config.evals entry {data} has no 'type'; known types: {sorted(EVALUATORS)}")
  type_name = data.pop("type")
  return type_name, data


def run_evals(
  evals: Mapping[str, Any], model: EvalModel, context: Any, *, seed: int
) -> dict[str, dict]:
  """Runs every entry of ``config.evals``; returns name -> results."""
  out = {}
  for name, block in evals.items():
    type_name, settings = settings_of(block)
    out[name] = evaluate(type_name, model, context, settings, seed=seed)
  return out
