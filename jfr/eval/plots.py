"""Result figures (ROC, CMC, generic curves) and JSON result files.

Figures are drawn on a standalone ``matplotlib.figure.Figure`` rendered by the
Agg canvas: no pyplot, no global backend switch, safe in headless jobs and
threads. Every writer creates the parent directories of ``path``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PathLike = str | os.PathLike


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
        f"{name}[{label!r}] must hold two non-empty 1-D "
        f"arrays of equal length, got shapes {x.shape} "
        f"and {y.shape}"
      )
    out.append((str(label), x, y))
  return out


def _save(fig: Figure, path: PathLike) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  FigureCanvasAgg(fig)
  fig.savefig(path, dpi=120)


def plot_curves(
  curves: Mapping[str, tuple],
  path: PathLike,
  xlabel: str,
  ylabel: str,
  title: str,
  logx: bool = False,
) -> None:
  """Draws one line per entry of ``curves`` and writes the figure.

  Args:
    curves: label -> ``(x [M], y [M])``.
    path: output file; the extension picks the format (``.png``, ``.pdf``).
    xlabel, ylabel, title: axis labels and figure title.
    logx: log-scale x axis; points with ``x <= 0`` are left out (they have
      no position on it).
  """
  fig = Figure(figsize=(5.0, 4.0))
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
  _save(fig, path)


def plot_roc(curves: Mapping[str, tuple], path: PathLike, title: str) -> None:
  """ROC curves, true accept rate against false accept rate on a log axis.

  Args:
    curves: label -> ``(fpr [M], tpr [M])`` (e.g. the first two outputs of
      ``jfr.eval.metrics.roc``); points with ``fpr = 0`` are not drawn.
    path: output image file.
    title: figure title.
  """
  plot_curves(curves, path, "False accept rate (FAR)", "True accept rate (TAR)", title, logx=True)


def plot_cmc(curves: Mapping[str, tuple], path: PathLike, title: str) -> None:
  """CMC curves, identification rate against rank.

  Args:
    curves: label -> ``(ranks [K], rates [K])`` (``rates`` from
      ``jfr.eval.metrics.cmc``).
    path: output image file.
    title: figure title.
  """
  plot_curves(curves, path, "Rank", "Identification rate", title)


def _jsonable(obj: Any) -> Any:
  """Recursively converts numpy values, tuples and paths to JSON types."""
  if isinstance(obj, Mapping):
    return {
      (_jsonable(k) if isinstance(k, np.generic) else k): _jsonable(v) for k, v in obj.items()
    }
  if isinstance(obj, (list, tuple, np.ndarray)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, np.generic):
    return _jsonable(obj.item())
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, os.PathLike):
    return os.fspath(obj)
  return obj


def write_json(obj: Any, path: PathLike) -> None:
  """Writes ``obj`` as indented, strict JSON, creating parent directories.

  NumPy scalars and arrays become Python numbers and (nested) lists, tuples
  become lists, paths become strings, and non-finite floats (NaN, +-inf,
  e.g. an undefined TAR) become ``null`` so that the file is standard JSON.
  Other non-JSON types raise ``TypeError``.

  Args:
    obj: a nest of dicts / lists / tuples / numbers / strings / arrays.
    path: output ``.json`` file.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(_jsonable(obj), f, indent=2, allow_nan=False)
    f.write("\n")
