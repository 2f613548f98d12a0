"""Results on disk, one way for every method and evaluator.

``write_results(workdir, name, results, markdown, figures, checkpoint)`` writes

* ``<workdir>/eval/<name>.json``: ``results`` (keys starting with ``_`` are in-memory only
  and not written) plus ``checkpoint`` (the step and path the numbers come from, see
  :func:`jfr.train.checkpoint.restore_with_info`) when given;
* ``<workdir>/eval/<name>.md``: the Markdown report, when given;
* ``<workdir>/figures/<name>_<key>.png`` for each ``key -> Figure`` of ``figures``, also
  written to TensorBoard (``<workdir>/tb``) as image summaries next to the training scalars,
  at the checkpoint's step (0 without one).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from matplotlib.figure import Figure

from jfr.report import figures as figures_lib

PathLike = str | os.PathLike
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


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


def write_json(obj: Any, path: PathLike) -> Path:
  """Writes ``obj`` as indented, strict JSON, creating parent directories.

  NumPy scalars and arrays become Python numbers and (nested) lists, tuples become lists,
  paths become strings, and non-finite floats (NaN, +-inf, e.g. an undefined TAR) become
  ``null`` so that the file is standard JSON. Other non-JSON types raise ``TypeError``.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(_jsonable(obj), f, indent=2, allow_nan=False)
    f.write("\n")
  return path


def _check_name(name: str, what: str) -> None:
  if not isinstance(name, str) or not _NAME.match(name):
    raise ValueError(f"{what}: expected a file-name-safe string ([A-Za-z0-9_.-]+), got {name!r}")


def figure_path(workdir: PathLike, name: str, key: str) -> Path:
  """``<workdir>/figures/<name>_<key>.png``."""
  return Path(workdir) / "figures" / f"{name}_{key}.png"


def _image_metadata():
  from tensorflow.core.framework import summary_pb2

  metadata = summary_pb2.SummaryMetadata()
  metadata.plugin_data.plugin_name = "images"
  return metadata


def write_image_summaries(logdir: PathLike, step: int, images: Mapping[str, np.ndarray]) -> None:
  """Writes uint8 RGB images ``[H, W, 3]`` as TensorBoard image summaries in ``logdir``.

  Written with the core ``tf.summary.write`` in the images plugin's tensor layout
  (``[width, height, png]`` strings), since ``tf.summary.image`` needs the ``tensorboard``
  package, which tensorflow-cpu does not install.
  """
  import tensorflow as tf

  metadata = _image_metadata()
  writer = tf.summary.create_file_writer(os.fspath(logdir))
  with writer.as_default():
    for tag, pixels in images.items():
      png = tf.io.encode_png(tf.constant(pixels, tf.uint8))
      h, w = int(pixels.shape[0]), int(pixels.shape[1])
      tensor = tf.stack([tf.constant(str(w)), tf.constant(str(h)), png])
      tf.summary.write(tag, tensor, step=step, metadata=metadata)
  writer.flush()
  writer.close()


def write_results(
  workdir: PathLike,
  name: str,
  results: Mapping[str, Any],
  markdown: str | None = None,
  figures: Mapping[str, Figure] | None = None,
  checkpoint: Mapping[str, Any] | None = None,
  *,
  tensorboard: bool = True,
) -> dict[str, Path]:
  """Writes one evaluation's results, report and figures (see the module docstring).

  Args:
    workdir: the run's directory.
    name: the results' name (file-name safe), e.g. ``'recognition'``.
    results: a nest of dicts/lists/numbers; ``_``-prefixed top-level keys are not written.
    markdown: the Markdown report (``eval/<name>.md``), or None.
    figures: key -> figure (``figures/<name>_<key>.png``), or None.
    checkpoint: where the numbers come from (``step``, ``path``, ...), recorded under the
      ``checkpoint`` key of the JSON.
    tensorboard: also write the figures as TensorBoard image summaries.

  Returns:
    kind -> path of everything written (``json``, ``markdown``, ``figure:<key>``).
  """
  _check_name(name, "name")
  if not isinstance(results, Mapping):
    raise ValueError(f"results: expected a dict, got {type(results).__name__}")
  workdir = Path(workdir)
  payload = {k: v for k, v in results.items() if not str(k).startswith("_")}
  if checkpoint is not None:
    if "checkpoint" in payload:
      raise ValueError("results: the key 'checkpoint' is reserved for the checkpoint record")
    payload["checkpoint"] = dict(checkpoint)
  written = {"json": write_json(payload, workdir / "eval" / f"{name}.json")}
  if markdown is not None:
    path = workdir / "eval" / f"{name}.md"
    path.write_text(markdown if markdown.endswith("\n") else markdown + "\n", encoding="utf-8")
    written["markdown"] = path
  pixels = {}
  for key, fig in (figures or {}).items():
    _check_name(key, f"figures key of {name}")
    written[f"figure:{key}"] = figures_lib.save_figure(fig, figure_path(workdir, name, key))
    if tensorboard:
      pixels[f"{name}/{key}"] = figures_lib.figure_pixels(fig)
  if pixels:
    step = int(checkpoint["step"]) if checkpoint and "step" in checkpoint else 0
    write_image_summaries(workdir / "tb", step, pixels)
  return written
