"""Result figures and JSON files (kept for compatibility; the report layer is :mod:`jfr.report`).

``plot_curves`` / ``plot_roc`` / ``plot_cmc`` draw with :mod:`jfr.report.figures` and write
the figure to ``path``; ``write_json`` is :func:`jfr.report.results.write_json`.
"""

from __future__ import annotations

import os
from typing import Mapping

from jfr.report import figures
from jfr.report.results import write_json  # noqa: F401

PathLike = str | os.PathLike


def plot_curves(
  curves: Mapping[str, tuple],
  path: PathLike,
  xlabel: str,
  ylabel: str,
  title: str,
  logx: bool = False,
) -> None:
  """Draws one line per entry of ``curves`` (label -> ``(x [M], y [M])``) and writes it."""
  figures.save_figure(figures.curves_figure(curves, xlabel, ylabel, title, logx), path)


def plot_roc(curves: Mapping[str, tuple], path: PathLike, title: str) -> None:
  """ROC curves (label -> ``(fpr, tpr)``), TAR against FAR on a log axis, written to ``path``."""
  figures.save_figure(figures.roc_figure(curves, title), path)


def plot_cmc(curves: Mapping[str, tuple], path: PathLike, title: str) -> None:
  """CMC curves (label -> ``(ranks, rates)``), written to ``path``."""
  figures.save_figure(figures.cmc_figure(curves, title), path)
