"""Interpretable face recognition (Yin et al., ICCV 2019; ``configs/interpretable.py``).

One run trains the ``config.run_variants`` of ``config.variants`` (default: ``base``,
``sad``, ``fad``, ``sad_fad``; each names which of LMF, SAD and FAD it uses), each in
``<workdir>/<variant>`` (checkpoints, TensorBoard, resume; :mod:`.trainer`), runs the
evaluators of ``config.evals`` on each (``<workdir>/<variant>/eval/<name>.json``;
:mod:`.evaluate`) and compares them (:mod:`.report`): ``<workdir>/eval/interpretable.md``
(also logged) and ``interpretable.json`` (Fig. 8 filters, phase timings, checkpoints);
figures ``<workdir>/figures/interpretable_fig5_peak_locations.png``,
``..._fig6_feature_difference.png``, ``..._fig8_responses_<variant>.png``.

Modes: ``all`` (train every variant, then evaluate), ``train``, ``eval`` (restores the
newest checkpoint of every variant).
"""

from __future__ import annotations

import os

import ml_collections
from absl import logging

from jfr import workdir as workdir_lib
from jfr.context import RunContext
from jfr.data import resize
from jfr.eval import faces as faces_lib
from jfr.methods import registry
from jfr.methods.interpretable import comparisons as comparisons_lib
from jfr.methods.interpretable import evaluate
from jfr.methods.interpretable import networks
from jfr.methods.interpretable import report
from jfr.methods.interpretable import trainer
from jfr.methods.interpretable.constants import FEATURE_DIFFERENCE, PEAK_SPREAD, REPORT_NAME
from jfr.report import results as results_lib
from jfr.report.timer import PhaseTimer

MODES = ("all", "train", "eval")


def comparison_figures(
  config: ml_collections.ConfigDict,
  context: RunContext,
  variables: dict[str, dict],
  results: dict[str, dict],
) -> tuple[dict, dict[str, list[int]]]:
  """``(figures, figure_filters)``: Figs. 5, 6 and 8 of the variants (those whose evaluators
  ran) and the filters Fig. 8 shows per variant."""
  size = config.model.image_size
  figures, filters = {}, {}
  first = next(iter(results.values()))
  if FEATURE_DIFFERENCE in first:
    differences = {name: res[FEATURE_DIFFERENCE] for name, res in results.items()}
    figures["fig6_feature_difference"] = report.feature_difference_figure(differences)
  if PEAK_SPREAD not in first:
    return figures, filters
  peaks = {name: res[PEAK_SPREAD] for name, res in results.items()}
  figures["fig5_peak_locations"] = report.peak_locations_figure(peaks, size)
  data = faces_lib.load_faces(context, config.evals[PEAK_SPREAD].split)
  landmarks = resize.scale_landmarks(data["landmarks"], data["image"].shape[1], size)
  shown = data["image"][report.figure_faces(data["label"], data["natural"], landmarks)]
  for name in results:
    stats = peaks[name]["pos"]
    chosen = report.pick_display_filters(
      stats["centres"], stats["std"], config.report.figure_filters, 0.12 * size
    )
    filters[name] = chosen.tolist()
    maps = evaluate.response_maps(config, name, variables[name], shown)
    lmf = bool(networks.variant_flags(config, name).lmf)
    figures[f"fig8_responses_{name}"] = report.responses_figure(name, shown, maps, chosen, lmf)
  return figures, filters


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring); returns variant -> eval name -> results."""
  registry.check_mode(mode, MODES)
  networks.check_config(config)
  context = RunContext.from_config(config)
  workdir_lib.write_data_facts(workdir, context.facts())
  timer = PhaseTimer()
  if mode in ("all", "train"):
    for name in config.run_variants:
      with timer.phase(f"train_{name}"):
        trainer.train_variant(config, workdir, name, context)
  if mode == "train":
    return {}
  variables, checkpoints, results = {}, {}, {}
  for name in config.run_variants:
    variables[name], checkpoints[name] = trainer.restore_variant(config, workdir, name, context)
    with timer.phase(f"eval_{name}"):
      results[name] = evaluate.evaluate_variant(
        config, workdir, name, variables[name], context, checkpoints[name]
      )
  with timer.phase("figures"):
    figures, figure_filters = comparison_figures(config, context, variables, results)
  compared = comparisons_lib.comparisons(results)
  markdown = report.markdown_report(config, results, timer.phases, compared)
  results_lib.write_results(
    workdir,
    REPORT_NAME,
    {
      "variants": list(config.run_variants),
      "figure_filters": figure_filters,
      "timing": timer.phases,
      "comparisons": compared,
    },
    markdown=markdown,
    figures=figures,
    checkpoint=checkpoints,
  )
  logging.info("interpretable FR results:\n%s", markdown)
  return results


def eval_model(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  batch_size: int,
  allow_older: bool = False,
):
  """``(EvalModel, checkpoint info)`` of the last of ``config.run_variants`` (the full
  method, ``sad_fad``, by default): :func:`.evaluate.eval_model` (``embed``: f; extras
  ``response_peaks`` and ``response_maps``), shaped from the run's ``data_facts.json``."""
  context = registry.recorded_shape(workdir)
  config = registry.allowing_older(config, allow_older)
  name = config.run_variants[-1]
  variables, info = trainer.restore_variant(config, workdir, name, context)
  return evaluate.eval_model(config, name, variables, batch_size), info
