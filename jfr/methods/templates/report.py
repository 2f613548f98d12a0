"""The template experiment's report: Tables I and II in Markdown, the claims table and the
accuracy-vs-m figures (through :mod:`jfr.report`)."""

from __future__ import annotations

import re

from matplotlib.figure import Figure

from jfr.report import curves_figure
from jfr.report import intervals
from jfr.report import markdown_table


def _label(row: dict, k: int) -> str:
  if row["method"] == "original":
    return f"Original (m = k = {k})"
  name = {"masked": "Top-m masked", "random": "Random m", "binary": "Binary mask"}
  return f"{name[row['method']]}, m = {row['m']}" + (" (= k)" if row["m"] == k else "")


def _cell(row: dict, name: str) -> str:
  """``mean [lo, hi]`` (95 % bootstrap over splits) when the row has intervals, else
  ``mean ± std``."""
  if "mean_ci95" in row:
    return intervals.format_interval(
      row["mean"][name], row["mean_ci95"][name], lambda x: f"{x:.3f}"
    )
  return f"{row['mean'][name]:.3f} ± {row['std'][name]:.3f}"


def _table(rows: list[dict], names: list[str], k: int) -> str:
  cells = [{"method": _label(r, k), **{n: _cell(r, n) for n in names}} for r in rows]
  return markdown_table(cells, ["method"] + names)


def _effects_table(effects: list[dict]) -> str:
  cells = [
    {
      "claim": e["claim"],
      "difference": f"{e['difference']:+.4f}",
      "splits": f"{e['splits_with_claimed_sign']}/{e['splits']}",
      "reproduced": e["verdict"],
    }
    for e in effects
  ]
  return markdown_table(cells, ["claim", "difference", "splits", "reproduced"])


_SPREAD = "mean over splits [95 % interval, bootstrap over splits]"


def markdown(
  source: str,
  k: int,
  summary: dict,
  rows: list[dict],
  names: list[str],
  effects: list[dict],
  notes: list[str],
  comparisons: dict | None = None,
) -> str:
  """The report: protocol sizes, Tables I and II, the paper's effects, the paired comparisons
  with their 95 % intervals, metric notes."""
  original = [r for r in rows if r["method"] == "original"]
  sections = [
    f"# Identity-specific activation patterns ({source}; k = {k})",
    "Protocol (means over splits): "
    + ", ".join(f"{key} {value:.1f}" for key, value in summary.items()),
    f"## Table I: masked descriptors ({_SPREAD})",
    _table([r for r in rows if r["table"] == "I"], names, k),
    f"## Table II: binary masks in place of the descriptors ({_SPREAD})",
    _table(original + [r for r in rows if r["table"] == "II"], names, k),
    "## The paper's effects on these descriptors",
    _effects_table(effects),
  ]
  if comparisons:
    sections += [
      "## Paired comparisons (difference over the same splits, 95 % bootstrap over splits)",
      intervals.comparisons_table(comparisons, digits=3),
    ]
  if notes:
    sections += ["## Metric notes", "\n".join(f"- {n}" for n in notes)]
  return "\n\n".join(sections) + "\n"


def slug(name: str) -> str:
  return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def accuracy_vs_m(rows: list[dict], metric: str, k: int, title: str) -> Figure:
  """Accuracy vs m for the masked, random and binary rows (original as a flat line)."""
  curves = {}
  for method, label in (
    ("masked", "top-m masked (Table I)"),
    ("random", "random m"),
    ("binary", "binary masks (Table II)"),
  ):
    chosen = [r for r in rows if r["method"] == method]
    if chosen:
      curves[label] = ([r["m"] for r in chosen], [r["mean"][metric] for r in chosen])
  ms = [r["m"] for r in rows if r["method"] != "original"] or [k]
  original = next(r for r in rows if r["method"] == "original")["mean"][metric]
  curves[f"original (k = {k})"] = ([min(ms), k], [original, original])
  return curves_figure(curves, "m (bins kept)", metric, title, logx=True)
