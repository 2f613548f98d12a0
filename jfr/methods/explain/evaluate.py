"""The explain method's protocols wired to the shared evaluators.

* Table I analog (:func:`evaluate_recognition`): the ``still_images`` evaluators of
  ``config.evals`` on ours and on the plain ArcFace model (same pairs and protocol), plus
  ours' test reconstruction MSE.
* Saliency experiments (:func:`explain`): Algorithm 1's threshold ``T = tau / c`` with
  ``tau`` the verification threshold of the cosine similarity (``explain.threshold_source
  ='best_on_eval_pairs'``: the accuracy-best threshold on the Table I evaluation pairs), so
  a pair's channel weights sum to a positive value exactly when it is accepted (see
  :func:`jfr.explain.saliency.explain_pair`); then the ``hiding_game`` and ``pointing_game``
  evaluators of ``config.evals`` (one ``np.random.Generator``, seeded ``config.seed + 1``,
  threaded through them and the figure pairs), and the Fig. 2 / Fig. 3 analogs.

Ours as an :class:`~jfr.eval.embedding.EvalModel` (:func:`eval_model`): ``embed`` plus the
extras ``features`` / ``conv_map`` / ``pool`` / ``decode`` (float32 model-range functions of
:class:`jfr.explain.suite.ModelFunctions`), ``verify`` and, once ``T`` is known,
``saliency`` (uint8 pairs -> every map of :data:`jfr.explain.suite.MAP_NAMES`).
"""

from __future__ import annotations

import os
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jfr.context import RunContext
from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval import metrics
from jfr.eval import protocols
from jfr.eval import registry
from jfr.explain import hiding_game as hiding
from jfr.explain import suite
from jfr.losses.reconstruction import reconstruction_loss
from jfr.methods.explain import comparisons as comparisons_lib
from jfr.methods.explain import report
from jfr.methods.explain import trainer
from jfr.methods.explain.constants import BASELINE_NAME, OURS_NAME, SALIENCY_EVALUATORS
from jfr.methods.recognition import evaluate as recognition_evaluate
from jfr.report import PhaseTimer
from jfr.report import results as results_lib


def eval_model(
  config: ml_collections.ConfigDict,
  variables: dict,
  input_size: int,
  *,
  threshold: float | None = None,
) -> embedding.EvalModel:
  """Ours as an EvalModel (module docstring); ``saliency`` only with Algorithm 1's ``T``."""
  cfg = config.explain
  fns = trainer.model_functions(config, variables, input_size)
  extras: dict[str, Any] = {
    "features": fns.embed,
    "conv_map": fns.conv,
    "pool": fns.head,
    "decode": fns.decode,
    "verify": suite.verify_function(fns, cfg.verify_batch_size),
  }
  if threshold is not None:

    def saliency_fn(images_a, images_b, rng):
      a = pipelines.to_model_range_np(embedding.check_images(images_a, "images_a"))
      b = pipelines.to_model_range_np(embedding.check_images(images_b, "images_b"))
      return suite.saliency_maps(fns, a, b, threshold, cfg.chunk_size, cfg.pair_batch, rng)

    extras["saliency"] = saliency_fn
  batch_size = config.evals.recognition.batch_size
  return embedding.EvalModel(
    input_size=input_size,
    embed=recognition_evaluate.embed_function(
      config, variables["backbone"], input_size, batch_size
    ),
    extras=extras,
  )


def _still_image_evals(config) -> list[tuple[str, dict]]:
  out = []
  for name, block in config.evals.items():
    type_name, settings = registry.settings_of(block)
    if type_name == "still_images":
      out.append((name, settings))
  return out


def test_reconstruction_mse(config, context: RunContext, fns: suite.ModelFunctions) -> float:
  """Mean ``L_rec`` over the test split (model range)."""
  decode = lambda x: suite.call(fns.decode, suite.call(fns.conv, x))
  total, count = 0.0, 0
  batches = pipelines.numpy_batches(
    pipelines.eval_batches(
      context.builder,
      context.test_split,
      config.evals.recognition.batch_size,
      features=("image",),
    )
  )
  for batch in batches:
    mse = np.asarray(reconstruction_loss(jnp.asarray(batch["image"]), decode(batch["image"])))
    total += float(mse[batch["valid"]].sum())
    count += int(batch["valid"].sum())
  return total / count


def evaluate_recognition(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  context: RunContext,
  ours: tuple[dict, dict],
  baseline: tuple[dict, dict],
) -> dict[str, dict]:
  """Table I analog. ``ours``/``baseline``: ``(variables, checkpoint info)``.

  For each ``still_images`` entry ``<name>`` of ``config.evals``: the plain model's results
  in ``<workdir>/baseline/eval/<name>.json``; ours' (with ``reconstruction_mse``) in
  ``<workdir>/eval/<name>.json`` with the joint table (``.md``) and ROC figure. Returns
  name -> ``{BASELINE_NAME: ..., OURS_NAME: ...}``.
  """
  size = context.image_size
  base_cfg = trainer.baseline_config(config, size)
  out = {}
  for name, settings in _still_image_evals(config):
    models = {
      BASELINE_NAME: embedding.EvalModel(
        input_size=size,
        embed=recognition_evaluate.embed_function(
          base_cfg, baseline[0], size, settings["batch_size"]
        ),
      ),
      OURS_NAME: embedding.EvalModel(
        input_size=size,
        embed=recognition_evaluate.embed_function(
          config, ours[0]["backbone"], size, settings["batch_size"]
        ),
      ),
    }
    results, roc = {}, {}
    for label, model in models.items():
      results[label] = registry.evaluate("still_images", model, context, settings, seed=config.seed)
      fpr, tpr, _ = metrics.roc(*results[label]["_roc"])
      roc[label] = (fpr, tpr)
    fns = trainer.model_functions(config, ours[0], size)
    results[OURS_NAME]["reconstruction_mse"] = test_reconstruction_mse(config, context, fns)
    results[OURS_NAME]["comparisons"] = comparisons_lib.recognition_comparison(
      results[OURS_NAME], results[BASELINE_NAME]
    )
    results_lib.write_results(
      trainer.baseline_workdir(workdir), name, results[BASELINE_NAME], checkpoint=baseline[1]
    )
    title = f"Verification ROC ({context.dataset_name} {settings['split']})"
    results_lib.write_results(
      workdir,
      name,
      results[OURS_NAME],
      markdown=report.recognition_markdown(results),
      figures={"roc": report.roc(roc, title)},
      checkpoint=ours[1],
    )
    logging.info("%s:\n%s", name, report.recognition_markdown(results))
    out[name] = results
  return out


def algorithm1_threshold(
  config: ml_collections.ConfigDict, features: np.ndarray, labels: np.ndarray
) -> float:
  """``tau``: given, or the accuracy-best threshold on the Table I evaluation pairs."""
  if config.explain.threshold_source == "given":
    return float(config.explain.threshold)
  settings = config.evals.recognition
  a, b, same = protocols.verification_pairs(
    labels, settings.pairs_per_fold, seed=config.seed, folds=settings.folds
  )
  return hiding.best_threshold(protocols.pair_scores(features, a, b), same)


def figure_pairs(
  labels: np.ndarray,
  occluded: np.ndarray,
  num_genuine: int,
  num_impostor: int,
  rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Figure rows: genuine pairs whose A is occluded and B is not (Fig. 3's masked
  pairs) where the test split has them, else any genuine pair; then impostor pairs."""
  a, b = [], []
  for ident in rng.permutation(np.unique(labels)):
    if len(a) == num_genuine:
      break
    members = np.flatnonzero(labels == ident)
    occ, clean = members[occluded[members]], members[~occluded[members]]
    if occ.size and clean.size:
      a.append(occ[0]), b.append(clean[0])
  while len(a) < num_genuine:
    members = np.flatnonzero(labels == rng.choice(labels))
    if members.size >= 2:
      i, j = rng.choice(members, 2, replace=False)
      a.append(i), b.append(j)
  while len(a) < num_genuine + num_impostor:
    i, j = rng.choice(labels.size, 2, replace=False)
    if labels[i] != labels[j]:
      a.append(i), b.append(j)
  same = np.arange(len(a)) < num_genuine
  return np.array(a, int), np.array(b, int), same


def _saliency_evals(config) -> list[tuple[str, str, dict]]:
  out = []
  for name, block in config.evals.items():
    type_name, settings = registry.settings_of(block)
    if type_name in SALIENCY_EVALUATORS:
      out.append((SALIENCY_EVALUATORS.index(type_name), name, type_name, settings))
  return [entry[1:] for entry in sorted(out, key=lambda e: e[:2])]


def explain(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  context: RunContext,
  variables: dict,
  checkpoint: dict | None,
) -> dict:
  """The saliency experiments (module docstring). Writes ``eval/explain.json`` (``threshold``
  and one entry per saliency evaluator), ``eval/explain.md`` and ``figures/explain_*.png``;
  returns the results."""
  trainer.check_model_config(config)
  cfg, timer = config.explain, PhaseTimer()
  size = context.image_size
  c = trainer.feature_shape(config, size)[2]
  fns = trainer.model_functions(config, variables, size)
  test = pipelines.load_arrays(
    context.builder, context.test_split, ("image", "label", "occluder_mask")
  )
  images = pipelines.to_model_range_np(test["image"])
  features = protocols.batched_apply(
    lambda x: np.asarray(suite.call(fns.embed, x)),
    images,
    batch_size=config.evals.recognition.batch_size,
  )
  tau = algorithm1_threshold(config, features, test["label"])
  threshold = tau / c
  logging.info(
    "Algorithm 1 threshold: tau = %.4f (%s), T = tau / c = %.6f",
    tau,
    cfg.threshold_source,
    threshold,
  )
  model = eval_model(config, variables, size, threshold=threshold)
  rng = np.random.default_rng(config.seed + 1)
  results: dict[str, Any] = {
    "threshold": {"tau": tau, "T": threshold, "source": cfg.threshold_source, "channels": c}
  }
  extra: dict[str, Any] = {}
  compared: dict = {}
  evals = _saliency_evals(config)
  for name, type_name, settings in evals:
    with timer.phase(name):
      res = registry.get(type_name)(model, context, settings, seed=config.seed, rng=rng)
    results[name] = {k: v for k, v in res.items() if not k.startswith("_")}
    extra[type_name] = (settings, res)
    if type_name == "hiding_game":
      compared.update(comparisons_lib.hiding_comparisons(name, res))
    elif type_name == "pointing_game":
      compared.update(comparisons_lib.pointing_comparisons(name, res))

  with timer.phase("figures"):
    fa, fb, fsame = figure_pairs(
      test["label"],
      test["occluder_mask"].any(axis=(1, 2)),
      cfg.figure_genuine,
      cfg.figure_impostor,
      rng,
    )
    maps_a = model.extras["saliency"](test["image"][fa], test["image"][fb], rng)
    maps_b = model.extras["saliency"](test["image"][fb], test["image"][fa], rng)
    scores = model.extras["verify"](images[fa], images[fb])
    figures = report.explain_figures(
      test["image"], fa, fb, fsame, scores, maps_a, maps_b, extra, fns
    )
  results["method_names"] = report.METHOD_NAMES
  results["comparisons"] = compared
  markdown = report.explain_markdown(results, {name: type_name for name, type_name, _ in evals})
  results_lib.write_results(
    workdir, "explain", results, markdown=markdown, figures=figures, checkpoint=checkpoint
  )
  logging.info("results:\n%s", markdown)
  return results
