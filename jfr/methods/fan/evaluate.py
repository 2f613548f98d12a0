"""FAN evaluation: the extractor's still-image evaluation (``config.extractor.evals``) and the
paper's protocols (``config.evals``) wired to the shared evaluators.

``video_pairs`` (:mod:`jfr.eval.video_pairs`) and ``mixed_media``
(:mod:`jfr.eval.mixed_media`) entries compare feature averaging with the aggregator of every
variant in ``config.eval_variants.<entry>`` (default: all of ``config.variants``), from one
load of the video split; so do ``fan_quality`` entries (:mod:`jfr.eval.fan_quality`:
aggregated-face quality against the canonical faces, ``eval/<name>.md`` and
``figures/<name>_faces.png``); other evaluator types run on the main model (the extractor with
the first variant's aggregator). With ``aggregator.shading_symmetry > 0`` the quality table also
scores the option's fixed prior alone, as the baseline row ``mean_symmetric_shading``
(:func:`jfr.methods.fan.aggregator.symmetric_shading_mean`; no comparisons). Each entry writes
``eval/<name>.json``; the summary ``eval/fan.json`` / ``eval/fan.md`` (Tables 1, 4, 3 analogs)
and the figures ``figures/fan_*.png`` (aggregated faces, blur curve) follow.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
from absl import logging

from jfr.context import RunContext
from jfr.data import pipelines
from jfr.eval import fan_quality
from jfr.eval import mixed_media
from jfr.eval import registry
from jfr.eval import still_images
from jfr.eval import video_pairs
from jfr.eval import video_protocols as vp
from jfr.methods.fan import aggregator
from jfr.methods.fan import comparisons as comparisons_lib
from jfr.methods.fan import report
from jfr.methods.fan import settings as settings_lib
from jfr.report import intervals
from jfr.report import results as results_lib
from jfr.report.timer import PhaseTimer

SYMMETRIC_MEAN = "mean_symmetric_shading"  # fan_quality row: the pixel mean + shading symmetry


def evaluate_extractor(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  extractor: Any,
  context: RunContext,
  checkpoint: dict,
) -> dict[str, dict]:
  """Runs ``config.extractor.evals`` on the stage-1 backbone (``eval/<name>.json``; ROC/CMC
  figures for ``still_images``)."""
  out = {}
  for name, block in config.extractor.evals.items():
    type_name, settings = registry.settings_of(block)
    model = aggregator.extractor_model(
      config, extractor, context.image_size, settings.get("batch_size", 256)
    )
    results = registry.evaluate(type_name, model, context, settings, seed=config.seed)
    figures = None
    if type_name == "still_images":
      title = f"{name} ({context.dataset_name} {settings['split']})"
      figures = still_images.curves(results, name, title)
    results_lib.write_results(workdir, name, results, figures=figures, checkpoint=checkpoint)
    out[name] = results
  return out


def _log(name: str, table: dict) -> None:
  for method, row in table.items():
    if isinstance(row, dict) and all(isinstance(r, dict) and "accuracy" in r for r in row.values()):
      logging.info("%s %s: %s", name, method, {c: report.percent(r) for c, r in row.items()})
    elif isinstance(row, dict) and "mean" in row:
      logging.info("%s %s: %s", name, method, row["mean"])


def evaluate(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  extractor: Any,
  generators: dict[str, Any],
  features: dict,
  context: RunContext,
  checkpoints: dict[str, dict],
  timer: PhaseTimer,
) -> dict:
  """Runs every evaluation (module docstring) and writes results, Markdown and figures.

  Args:
    config: the FAN config.
    workdir: the run's directory.
    extractor: the frozen stage-1 backbone's variables.
    generators: ``{variant: generator params}``.
    features: the statistics of :func:`jfr.methods.fan.trainer.identity_centers`.
    context: the run context.
    checkpoints: stage -> checkpoint info (``extractor``, ``aggregator_<variant>``).
    timer: records the phases.
  """
  results: dict = {}
  with timer.phase("eval_extractor_stills"):
    results.update(
      evaluate_extractor(config, workdir, extractor, context, checkpoints["extractor"])
    )
  size = context.image_size
  base = aggregator.eval_model(config, extractor, None, size)
  models = {
    name: aggregator.eval_model(config, extractor, p, size) for name, p in generators.items()
  }
  videos_cache: dict[str, dict] = {}

  def videos_of(split: str) -> dict:
    if split not in videos_cache:
      videos_cache[split] = vp.load_videos(context.builder, split)
    return videos_cache[split]

  for name, block in config.evals.items():
    type_name, settings = registry.settings_of(block)
    chosen = tuple(config.eval_variants.get(name, config.variants))
    set_models = {v: models[v] for v in chosen}
    with timer.phase(f"eval_{name}"):
      if type_name == "video_pairs":
        table = video_pairs.evaluate_videos(
          videos_of(settings["split"]), base, settings, seed=config.seed, set_models=set_models
        )
      elif type_name == "mixed_media":
        stills = pipelines.load_arrays(context.builder, settings["still_split"], ("image", "label"))
        table = mixed_media.evaluate_templates(
          stills,
          videos_of(settings["video_split"]),
          base,
          settings,
          seed=config.seed,
          set_models=set_models,
        )
      elif type_name == "fan_quality":
        aggregators = {v: m.extras["aggregate_model_range"] for v, m in set_models.items()}
        sigma = config.aggregator.get("shading_symmetry", 0.0)
        extra = {SYMMETRIC_MEAN: aggregator.symmetric_shading_mean(sigma)} if sigma > 0 else {}
        table = fan_quality.fan_quality(
          base,
          context,
          settings,
          seed=config.seed,
          aggregators=aggregators,
          videos=videos_of(settings["split"]),
          extra_baselines=extra,  # the option's fixed prior alone: a row, not a claim
        )
      else:
        table = registry.evaluate(
          type_name, models[config.variants[0]], context, settings, seed=config.seed
        )
    _log(name, table)
    markdown, figures = None, None
    if type_name == "fan_quality":
      markdown, figures = fan_quality.markdown(table), {"faces": fan_quality.figure(table)}
    results_lib.write_results(
      workdir, name, table, markdown=markdown, figures=figures, checkpoint=checkpoints
    )
    results[name] = table
  with timer.phase("figures"):
    summary(config, workdir, results, features, models, videos_of, checkpoints)
  return results


def summary(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  results: dict,
  features: dict,
  models: dict,
  videos_of,
  checkpoints: dict[str, dict],
) -> None:
  """``eval/fan.json`` (features, steps per variant), ``eval/fan.md`` (the tables of every
  video evaluation) and ``figures/fan_*.png`` (aggregated faces; blur curve)."""
  lines = report.header_lines(config.dataset.name, features)
  figures = {}
  blur_settings = None
  compared: dict = {}

  def order(item) -> int:  # Table 1, Table 4, Table 3 (ConfigDict keys come sorted)
    type_name, settings = registry.settings_of(item[1])
    if type_name == "video_pairs":
      return 1 if settings["blur_kernel_sizes"] else 0
    return 2

  for name, block in sorted(config.evals.items(), key=order):
    type_name, settings = registry.settings_of(block)
    table = results[name]
    chosen = ["avg", *config.eval_variants.get(name, config.variants)]
    if type_name == "video_pairs":
      blurred = bool(settings["blur_kernel_sizes"])
      compared.update(comparisons_lib.video_comparisons(name, table, blurred, config.seed))
    elif type_name == "mixed_media":
      compared.update(comparisons_lib.identification_comparisons(name, table))
    if type_name == "video_pairs" and not settings["blur_kernel_sizes"]:
      columns = [video_pairs.column(n, a) for n, a in settings["set_configs"]]
      lines += report.verification_lines(config, "YTF-like verification", table, columns)
    elif type_name == "video_pairs":
      lines += report.blur_lines(table, settings)
      figures["blur_accuracy"] = report.blur_figure(table, settings)
      blur_settings = blur_settings or settings
    elif type_name == "mixed_media":
      lines += report.identification_lines(table, settings, [chosen[0], "avg_media", *chosen[1:]])
    elif type_name == "fan_quality":
      lines += ["", *fan_quality.markdown(table).split("\n")]
  videos = videos_of(config.dataset.video_split)
  (set_size, _) = (
    blur_settings["set_configs"][0] if blur_settings else (config.aggregator.set_size, 1)
  )
  figures.update(
    report.aggregation_figures(
      pipelines.to_model_range_np(videos["frames"]),
      videos["lengths"],
      {name: m.extras["aggregate_model_range"] for name, m in models.items()},
      num_sets=config.figures.sets,
      set_size=set_size,
      blur_kernel=config.figures.blur_kernel,
      sharp_frames=blur_settings["blur_sharp_frames"] if blur_settings else 1,
      seed=config.seed,
    )
  )
  steps = {v: settings_lib.variant_config(config, v).num_train_steps for v in config.variants}
  if compared:
    lines += [
      "",
      "## The paper's comparisons: paired differences [95 % bootstrap interval]",
      "",
      intervals.comparisons_table(compared),
    ]
  markdown = "\n".join(lines)
  results_lib.write_results(
    workdir,
    "fan",
    {"features": features, "train_steps": steps, "comparisons": compared},
    markdown=markdown,
    figures=figures,
    checkpoint=checkpoints,
  )
  logging.info("results:\n%s", markdown)
