"""Figures in one style: curves (ROC, CMC), image grids and saliency overlays.

Figures are standalone ``matplotlib.figure.Figure`` objects rendered by the Agg canvas (no
pyplot, no global backend switch: safe in headless jobs and threads). Every figure of jfr
is written by :func:`save_figure` (PNG at :data:`DPI`), usually through
:func:`jfr.report.results.write_results`, which also sends it to TensorBoard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PathLike = str | os.PathLike
DPI = 110
SALIENCY_CMAP = "jet"


def new_figure(width: float, height: float) -> Figure:
  """An empty figure of ``width`` x ``height`` inches on the Agg canvas."""
  fig = Figure(figsize=(width, height))
  FigureCanvasAgg(fig)
  return fig


def save_figure(fig: Figure, path: PathLike) -> Path:
  """Writes ``fig`` (the extension picks the format) at :data:`DPI`, creating parent dirs."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  FigureCanvasAgg(fig)
  fig.savefig(path, dpi=DPI)
  return path


def figure_pixels(fig: Figure) -> np.ndarray:
  """The rendered figure as uint8 RGB ``[H, W, 3]`` (for image summaries)."""
  canvas = FigureCanvasAgg(fig)
  fig.set_dpi(DPI)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _validated_curves(curves: Mapping[str, tuple], name: str):
  """Returns ``[(label, x, y)]`` with float 1-D ``x``, ``y`` of equal length."""
  if not isinstance(curves, Mapping) or not curves:
    raise ValueError(f"{name} must be a non-empty dict label -> (x, y)")
  out = []
  for label, pair in curves.items():
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
      raise ValueError(f"{name}[{label!r}] must be an (x, y) pair")
    x = np.asarray(pair[0], dtype=np.float64)
    y = np.asarray(pair[1], dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or x.shape != y.shape:
      raise ValueError(
        f"{name}[{label!r}] must hold two non-empty 1-D arrays of equal length, got shapes "
        f"{x.shape} and {y.shape}"
      )
    out.append((str(label), x, y))
  return out


def curves_figure(
  curves: Mapping[str, tuple], xlabel: str, ylabel: str, title: str, logx: bool = False
) -> Figure:
  """One line per entry of ``curves`` (label -> ``(x [M], y [M])``); with ``logx`` points
  with ``x <= 0`` are left out (they have no position on a log axis)."""
  fig = new_figure(5.0, 4.0)
  ax = fig.add_subplot()
  for label, x, y in _validated_curves(curves, "curves"):
    if logx:
      keep = x > 0
      x, y = x[keep], y[keep]
    ax.plot(x, y, label=label, linewidth=1.5)
  if logx:
    ax.set_xscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(loc="best", fontsize="small")
  fig.tight_layout()
  return fig


def roc_figure(curves: Mapping[str, tuple], title: str) -> Figure:
  """ROC curves: label -> ``(fpr [M], tpr [M])``, TAR against FAR on a log axis."""
  return curves_figure(
    curves, "False accept rate (FAR)", "True accept rate (TAR)", title, logx=True
  )


def cmc_figure(curves: Mapping[str, tuple], title: str) -> Figure:
  """CMC curves: label -> ``(ranks [K], rates [K])``."""
  return curves_figure(curves, "Rank", "Identification rate", title)


def to_display(image: np.ndarray) -> np.ndarray:
  """An image in [-1, 1] (float) or uint8 as float RGB in [0, 1] for ``imshow``."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 255.0
  return np.clip((image.astype(np.float32) + 1.0) / 2.0, 0.0, 1.0)


def show_image(ax, image: np.ndarray, title: str | None = None, fontsize: float = 7) -> None:
  """Draws ``image`` ([H, W, 3], [-1, 1] float or uint8) on ``ax`` without axes."""
  ax.imshow(to_display(image))
  ax.set_axis_off()
  if title is not None:
    ax.set_title(title, fontsize=fontsize)


def saliency_overlay(
  ax,
  image: np.ndarray,
  saliency_map: np.ndarray | None,
  *,
  scale: float | None = None,
  alpha: float = 0.5,
  title: str | None = None,
  fontsize: float = 7,
) -> None:
  """Draws ``image`` with ``saliency_map`` ``[H, W]`` on top (colour map
  :data:`SALIENCY_CMAP`, values divided by ``scale`` — default the map's max |value|)."""
  show_image(ax, image, title, fontsize)
  if saliency_map is None:
    return
  saliency_map = np.asarray(saliency_map, np.float32)
  if scale is None:
    scale = float(np.max(np.abs(saliency_map))) or 1.0
  ax.imshow(saliency_map / scale, cmap=SALIENCY_CMAP, alpha=alpha, vmin=0.0, vmax=1.0)


def image_grid(
  rows: Sequence[Sequence[np.ndarray]],
  *,
  row_labels: Sequence[str] | None = None,
  col_labels: Sequence[str] | None = None,
  cell: float = 1.2,
  title: str | None = None,
) -> Figure:
  """A grid of images (``rows[i][j]``: ``[H, W, 3]`` in [-1, 1] or uint8; ``None`` leaves a
  blank cell), with optional row labels (left) and column labels (top)."""
  num_rows = len(rows)
  num_cols = max((len(r) for r in rows), default=0)
  if num_rows == 0 or num_cols == 0:
    raise ValueError("image_grid: rows must hold at least one image")
  fig = new_figure(cell * num_cols + (1.0 if row_labels else 0.0), cell * num_rows + 0.3)
  axes = fig.subplots(num_rows, num_cols, squeeze=False)
  for i in range(num_rows):
    for j in range(num_cols):
      ax = axes[i, j]
      ax.set_axis_off()
      if j < len(rows[i]) and rows[i][j] is not None:
        show_image(ax, rows[i][j])
      if col_labels is not None and i == 0 and j < len(col_labels):
        ax.set_title(col_labels[j], fontsize=7)
    if row_labels is not None and i < len(row_labels):
      axes[i, 0].text(
        -0.05,
        0.5,
        row_labels[i],
        transform=axes[i, 0].transAxes,
        ha="right",
        va="center",
        fontsize=7,
      )
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig
