"""The FAN experiment's report: the Markdown of Tables 1, 4 and 3 (analogs), the grids of
aggregated faces next to their inputs, and the blur curve (all through :mod:`jfr.report`)."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import ml_collections
import numpy as np
from matplotlib.figure import Figure

from jfr.eval import video_protocols as vp
from jfr.methods.fan import settings as settings_lib
from jfr.methods.fan.constants import VARIANTS
from jfr.report import figures as figures_lib
from jfr.report import intervals
from jfr.report import tables


def percent(report: dict) -> float:
  """k-fold accuracy in percent, rounded to 2 decimals."""
  return round(100.0 * report["accuracy"], 2)


def _two(x: float) -> str:
  return f"{x:.2f}"


def accuracy_cell(report: dict) -> str:
  """``'58.33 [50.00, 66.67]'``: :func:`percent` with its 95 % interval over the folds."""
  ci = report.get("accuracy_ci95")
  return intervals.format_interval(
    percent(report), None if ci is None else [100.0 * v for v in ci], _two
  )


def mean_accuracy_cell(row: dict, columns: Sequence[str]) -> str:
  """The mean over ``columns`` of a row's accuracies (%), with the 95 % interval of the
  per-fold mean over the columns (bootstrap over folds)."""
  mean = float(np.mean([percent(row[c]) for c in columns]))
  if not all(len(row[c].get("fold_accuracies", ())) >= 2 for c in columns):
    return _two(mean)
  per_fold = np.mean([row[c]["fold_accuracies"] for c in columns], axis=0)
  ci = intervals.mean_interval(100.0 * per_fold)
  return intervals.format_interval(mean, [ci.lo, ci.hi], _two)


def eer_percent(report: dict) -> float:
  """EER over all video pairs in percent, rounded to 2 decimals."""
  return round(100.0 * report["all_pairs"]["eer"], 2)


def eer_cell(report: dict) -> str:
  """:func:`eer_percent` with its 95 % interval (bootstrap over identities) when present."""
  ci = report["all_pairs"].get("eer_ci95")
  return intervals.format_interval(
    eer_percent(report), None if ci is None else [100.0 * v for v in ci], _two
  )


def loss_flags(method: str) -> list[str]:
  """Table 1 check marks (L_adv, L_dis, L_rec^avg, L_rec^cen, L_tv) of a method."""
  if method not in VARIANTS:
    return [""] * 5
  t = VARIANTS[method]
  return [
    "x" if t.adversarial else "",
    "x",
    "x" if t.reconstruction == "average" else "",
    "x" if t.reconstruction == "center" else "",
    "x" if t.total_variation else "",
  ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  keys = [str(i) for i in range(len(header))]
  text = tables.markdown_table([dict(zip(keys, row)) for row in rows], keys, headers=list(header))
  return text.split("\n")


def verification_lines(
  config: ml_collections.ConfigDict, title: str, table: dict, columns: Sequence[str]
) -> list[str]:
  """The Table 1 analog (accuracy and all-pairs EER) of a clean ``video_pairs`` table."""
  lines = []
  header = ["method", "L_adv", "L_dis", "L_rec^avg", "L_rec^cen", "L_tv", "steps"]
  header += [*columns, "mean"]
  for name, value in (
    (f"{title} accuracy [%] [95 % interval, bootstrap over folds] (Table 1 analog)", percent),
    (
      "EER over all video pairs [%] (lower is better) [95 % interval, bootstrap over identities]",
      eer_percent,
    ),
  ):
    rows = []
    for method, row in table.items():
      values = [value(row[c]) for c in columns]
      trained = (
        str(settings_lib.variant_config(config, method).num_train_steps)
        if method in VARIANTS
        else ""
      )
      if value is percent:
        cells = [accuracy_cell(row[c]) for c in columns] + [mean_accuracy_cell(row, columns)]
      else:
        cells = [eer_cell(row[c]) for c in columns] + [f"{np.mean(values):.2f}"]
      rows.append([method, *loss_flags(method), trained, *cells])
    lines += [f"## {name}", "", *_table(header, rows), ""]
  return lines


def blur_lines(table: dict, settings: Mapping) -> list[str]:
  """The Table 4 analog of a blurred ``video_pairs`` table."""
  (n, n_avg) = settings["set_configs"][0]
  sizes = [str(k) for k in settings["blur_kernel_sizes"]]
  rows = []
  for label, value in (("accuracy [%]", accuracy_cell), ("EER all pairs [%]", eer_cell)):
    for method, row in table.items():
      rows.append([f"{method}, {label}", *(_cell_text(value(row[k])) for k in sizes)])
  return [
    f"## Motion blur, {n - settings['blur_sharp_frames']} of {n} frames blurred, "
    f"n_avg = {n_avg} (Table 4 analog; accuracy [95 % interval, bootstrap over folds]; EER "
    "[95 % interval, bootstrap over identities])",
    "",
    *_table(["filter size", *sizes], rows),
  ]


def _cell_text(value) -> str:
  return value if isinstance(value, str) else f"{value:.2f}"


def _ci_cell(value: float, ci) -> str:
  """Percent with its interval (fractions in, ``None`` interval: just the value)."""
  return intervals.format_interval(100 * value, None if ci is None else [100 * v for v in ci], _two)


def identification_lines(table: dict, settings: Mapping, methods: Sequence[str]) -> list[str]:
  """The Table 3 analog of a ``mixed_media`` table."""
  fp = [f"{f:g}" for f in settings["fpirs"]]
  cost = table["extraction_cost"]
  rows = []
  for method in methods:
    mean = table[method]["mean"]
    ci = table[method].get("mean_ci95", {})
    n = cost["extractions_avg"] if method.startswith("avg") else cost["extractions_aggregated"]
    rows.append(
      [method]
      + [_ci_cell(mean[f"rank{r}"], ci.get(f"rank{r}")) for r in settings["ranks"]]
      + [_ci_cell(mean["tpir_at_fpir"][f], ci.get("tpir_at_fpir", {}).get(f)) for f in fp]
      + [str(n)]
    )
  header = ["method", *(f"rank-{r}" for r in settings["ranks"])]
  header += [*(f"TPIR@FPIR={f}" for f in fp), "feature extractions"]
  return [
    "",
    "## IJB-like 1:N mixed media, mean of two galleries [%] [95 % interval, bootstrap over "
    "the probes' subjects] (Table 3 analog)",
    "",
    *_table(header, rows),
    "",
    "avg: mean of every still's and frame's feature (the paper's baseline); "
    "avg_media: every video part's mean frame feature counts as one item next to "
    "each still (as the aggregated image does).",
    "",
    f"Aggregation saves {100 * cost['saved_fraction']:.1f}% of the feature "
    f"extractions ({cost['extractions_aggregated']} instead of "
    f"{cost['extractions_avg']}).",
    "",
  ]


def header_lines(dataset: str, features: dict) -> list[str]:
  """Title and the measured feature scale (the units of beta)."""
  return [
    "# Face Aggregation Network on " + dataset,
    "",
    f"Feature scale: mean ||f||^2 = {features['mean_squared_norm']:.1f}, mean squared "
    f"distance between identity means = "
    f"{features['mean_squared_distance_between_class_means']:.1f}, beta = "
    f"{features['beta']}.",
    "",
  ]


def aggregation_grid(sets: np.ndarray, outputs: np.ndarray, title: str) -> Figure:
  """One row per set: its N input frames, a blank, then the aggregated face.

  Args:
    sets: ``[K, N, H, W, 3]`` float images in [-1, 1].
    outputs: ``[K, H, W, 3]`` aggregated images in [-1, 1] (clipped for display).
    title: the figure's title.
  """
  if sets.ndim != 5 or outputs.shape != (sets.shape[0],) + sets.shape[2:]:
    raise ValueError(
      f"sets [K, N, H, W, 3] and outputs [K, H, W, 3] do not match: {sets.shape}, {outputs.shape}"
    )
  n = sets.shape[1]
  rows = [[*sets[k], None, outputs[k]] for k in range(sets.shape[0])]
  labels = [f"frame {i + 1}" for i in range(n)] + ["", "aggregated"]
  return figures_lib.image_grid(rows, col_labels=labels, title=title)


def aggregation_figures(
  frames: np.ndarray,
  lengths: np.ndarray,
  aggregators: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]],
  *,
  num_sets: int,
  set_size: int,
  blur_kernel: int,
  sharp_frames: int,
  seed: int,
) -> dict[str, Figure]:
  """Grids (:func:`aggregation_grid`) of ``num_sets`` videos (evenly picked) resampled to
  ``set_size`` frames, clean and with all but ``sharp_frames`` frames blurred by a
  ``blur_kernel`` px motion kernel, for every aggregator (float sets in [-1, 1] -> images).
  Keys ``aggregation_<name>_clean`` and ``aggregation_<name>_blur<kernel>``."""
  picks = np.unique(np.linspace(0, lengths.size - 1, num_sets).astype(int))
  groups = vp.resampled_groups(frames[picks], lengths[picks], set_size, 1)
  blurred, _, _ = vp.blur_groups(groups, blur_kernel, num_sharp=sharp_frames, seed=seed)
  out = {}
  for name, aggregate in aggregators.items():
    mask = np.ones(groups.shape[:2], bool)
    for tag, sets in (("clean", groups), (f"blur{blur_kernel}", blurred)):
      out[f"aggregation_{name}_{tag}"] = aggregation_grid(
        sets, aggregate(sets, mask), f"{name}: {tag} sets -> aggregated face"
      )
  return out


def blur_figure(table: dict, settings: Mapping) -> Figure:
  """Verification accuracy against the motion-blur kernel size, one line per row."""
  curves = {
    m: ([int(k) for k in row], [row[k]["accuracy"] for k in row]) for m, row in table.items()
  }
  (n, _) = settings["set_configs"][0]
  return figures_lib.curves_figure(
    curves,
    "motion blur kernel size (px)",
    "verification accuracy",
    f"{settings['blur_sharp_frames']} of {n} frames sharp",
  )
