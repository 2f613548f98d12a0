"""``explain A B``: why an explain run (Xu, Lu, Ebrahimi) scores two faces as it does.

Maps (:func:`jfr.explain.suite.saliency_maps`, each explaining one face with respect to the
other, both directions): Algorithm 1's ``S`` (discriminative), ``S+`` (similarity) and
``S-`` (dissimilarity) for ``ours``, and the baselines ``gradient``, ``grad_cam``,
``grad_cam_pp`` (and ``stylianou``, the max-pool decomposition, on request).

Threshold: Algorithm 1's ``T = tau / c`` (``c`` channels of the last conv map), ``tau`` the
verification threshold on the cosine score, in this order: ``--threshold`` (tau), the
``threshold.tau`` the run's ``--mode=explain`` stored in ``eval/explain.json``, the
``verification.best_accuracy`` of ``eval/thresholds.json``; none of them -> ``ValueError``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from jfr.data import pipelines
from jfr.explain import suite
from jfr.infer import inputs as inputs_lib
from jfr.infer import thresholds as thresholds_lib
from jfr.infer.loading import Run
from jfr.report import figures as figures_lib

METHODS = {
  "ours": ("ours_s", "ours_s_pos", "ours_s_neg"),
  "gradient": ("gradient",),
  "grad_cam": ("grad_cam",),
  "grad_cam_pp": ("grad_cam_pp",),
  "stylianou": ("stylianou",),
}
DEFAULT_METHODS = ("ours", "gradient", "grad_cam", "grad_cam_pp")


def model_functions(run: Run) -> suite.ModelFunctions:
  """The run's networks as :class:`jfr.explain.suite.ModelFunctions` (from its extras)."""
  x = run.model.extras
  return suite.ModelFunctions(
    embed=x["features"], conv=x["conv_map"], head=x["pool"], decode=x["decode"]
  )


def stored_tau(workdir: str) -> tuple[float, str]:
  """``(tau, where it came from)`` (module docstring); ``ValueError`` when none is stored."""
  explain_json = Path(workdir) / "eval" / "explain.json"
  if explain_json.exists():
    threshold = json.loads(explain_json.read_text()).get("threshold", {})
    if "tau" in threshold:
      return float(threshold["tau"]), f"eval/explain.json ({threshold.get('source')})"
  try:
    stored = thresholds_lib.read_thresholds(workdir)
  except ValueError as e:
    raise ValueError(
      f"explain: no verification threshold tau stored for the run in {workdir!r} (neither "
      "eval/explain.json from --mode=explain nor eval/thresholds.json from --mode=eval); "
      "run one of them or pass --threshold=TAU"
    ) from e
  tau = thresholds_lib.lookup(stored, "verification", "best_accuracy", None)
  return tau, f"{thresholds_lib.THRESHOLDS_FILE} best_accuracy ({stored['source'].get('dataset')})"


def explain(
  run: Run,
  image_a: str,
  image_b: str,
  *,
  methods: tuple[str, ...] = DEFAULT_METHODS,
  threshold: float | None = None,
  landmarks: str | None = None,
  seed: int = 0,
) -> dict:
  """Maps of both faces (module docstring). Returns ``maps`` ``{name: float32 [2, S, S]}``
  (row 0 explains A w.r.t. B, row 1 B w.r.t. A), ``score``, ``tau``, ``T`` and ``_faces``."""
  unknown = sorted(set(methods) - set(METHODS))
  if unknown or not methods:
    raise ValueError(f"methods: expected some of {sorted(METHODS)}, got {list(methods)}")
  source = "given (--threshold)"
  if threshold is None:
    threshold, source = stored_tau(run.workdir)
  faces = inputs_lib.read_faces([image_a, image_b], run.model.input_size, landmarks)
  fns = model_functions(run)
  x = pipelines.to_model_range_np(faces.images)
  channels = int(np.asarray(suite.call(fns.conv, x[:1])).shape[-1])
  t = float(threshold) / channels
  cfg = run.config.explain
  all_maps = suite.saliency_maps(
    fns, x, x[::-1].copy(), t, cfg.chunk_size, 2, np.random.default_rng(seed)
  )
  keep = [name for m in methods for name in METHODS[m]]
  score = float(np.asarray(run.model.extras["verify"](x[:1], x[1:]))[0])
  return {
    "images": [image_a, image_b],
    "score": score,
    "same_identity": bool(score > threshold),
    "tau": float(threshold),
    "T": t,
    "channels": channels,
    "threshold_source": source,
    "methods": list(methods),
    "maps": {name: all_maps[name] for name in keep},
    "aligned": faces.aligned.tolist(),
    "warnings": faces.warnings,
    "_faces": faces.images,
  }


def write_maps(result: dict, out: str) -> list[str]:
  """One ``<name>.npy`` ``[2, S, S]`` per map in ``out``; returns the paths."""
  os.makedirs(out, exist_ok=True)
  paths = []
  for name, value in result["maps"].items():
    paths.append(os.path.join(out, f"{name}.npy"))
    np.save(paths[-1], value)
  return paths


def explain_figure(result: dict):
  """Rows A and B: the face, then each map as an overlay (every map scaled to its own max),
  titled with the score and decision."""
  names = list(result["maps"])
  fig = figures_lib.new_figure(1.45 * (len(names) + 1) + 0.2, 3.6)
  axes = fig.subplots(2, len(names) + 1, squeeze=False)
  for r in range(2):
    face = result["_faces"][r]
    other = os.path.basename(result["images"][1 - r])
    figures_lib.show_image(axes[r, 0], face, f"{os.path.basename(result['images'][r])}", 7)
    for c, name in enumerate(names):
      title = suite.MAP_NAMES[name].replace(" (", "\n(") if r == 0 else None
      figures_lib.saliency_overlay(axes[r, c + 1], face, result["maps"][name][r], title=title)
    axes[r, 0].text(
      -0.08,
      0.5,
      f"vs {other}",
      transform=axes[r, 0].transAxes,
      rotation=90,
      ha="right",
      va="center",
      fontsize=7,
    )
  verdict = "same identity" if result["same_identity"] else "different identities"
  fig.suptitle(
    f"cosine {result['score']:.3f} ({verdict} at tau = {result['tau']:.3f}; T = tau/c = "
    f"{result['T']:.4f})",
    fontsize=9,
  )
  fig.tight_layout()
  return fig
