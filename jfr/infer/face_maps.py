"""``attributes`` and ``filters``: what an attributes run predicts, and where an interpretable
run's filters fire, on a user's faces.

* :func:`attributes`: the probabilities ``sigmoid(logit)`` of the attributes the run was
  trained on (``config.attributes.names``; "present" when > 0.5) and each attribute's
  activation map (the run's ``attribute_maps`` extra: bilinearly upsampled, rectified) shown
  as an overlay.
* :func:`filters`: the positive peak (location of the maximum, model-input pixels) and its
  strength of every filter's response map (the maps the features pool: LMF(psi), or psi
  without LMF; :func:`jfr.eval.interpretability.response_peaks`), and the maps of the
  ``shown`` strongest filters as overlays (the paper's Fig. 1-style picture: each filter
  answers one face part).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfr.infer import inputs as inputs_lib
from jfr.infer.loading import Run
from jfr.report import figures as figures_lib


def attributes(run: Run, images: Sequence[str] | str, *, landmarks: str | None = None) -> dict:
  """Probabilities ``[N, T]`` and maps ``[N, S, S, T]`` (``_maps``) of the faces."""
  faces = inputs_lib.read_faces(images, run.model.input_size, landmarks)
  names = list(run.config.attributes.names)
  logits = np.asarray(run.model.extras["attribute_logits"](faces.images), np.float32)
  maps = run.model.extras["attribute_maps"](faces.images)["maps"]
  probs = 1.0 / (1.0 + np.exp(-logits))
  return {
    "images": faces.names,
    "attributes": names,
    "probabilities": {
      img: {n: float(p) for n, p in zip(names, row)} for img, row in zip(faces.names, probs)
    },
    "present": {
      img: [n for n, p in zip(names, row) if p > 0.5] for img, row in zip(faces.names, probs)
    },
    "warnings": faces.warnings,
    "_probs": probs,
    "_maps": np.asarray(maps, np.float32),
    "_faces": faces.images,
  }


def attributes_figure(result: dict, max_faces: int = 6):
  """One row per face: the face, then each attribute's map overlaid, titled with its
  probability (bold when present)."""
  names, faces = result["attributes"], result["_faces"][:max_faces]
  fig = figures_lib.new_figure(1.15 * (len(names) + 1) + 0.2, 1.35 * len(faces) + 0.4)
  axes = fig.subplots(len(faces), len(names) + 1, squeeze=False)
  for r, face in enumerate(faces):
    figures_lib.show_image(axes[r, 0], face, result["images"][r].split("/")[-1], 6)
    for c, name in enumerate(names):
      p = result["_probs"][r, c]
      figures_lib.saliency_overlay(axes[r, c + 1], face, result["_maps"][r, :, :, c])
      axes[r, c + 1].set_title(
        f"{name.replace('_', ' ')}\np={p:.2f}", fontsize=6, fontweight="bold" if p > 0.5 else None
      )
  fig.suptitle("Attribute probabilities and activation maps", fontsize=9)
  fig.tight_layout()
  return fig


def filters(
  run: Run, images: Sequence[str] | str, *, landmarks: str | None = None, shown: int = 6
) -> dict:
  """Peaks of every filter and the response maps ``[N, h, w, K]`` (``_maps``)."""
  faces = inputs_lib.read_faces(images, run.model.input_size, landmarks)
  peaks = {k: np.asarray(v) for k, v in run.model.extras["response_peaks"](faces.images).items()}
  maps = np.asarray(run.model.extras["response_maps"](faces.images), np.float32)
  strongest = np.argsort(-peaks["pos_weight"].mean(0))[:shown]
  return {
    "images": faces.names,
    "num_filters": int(maps.shape[-1]),
    "map_size": list(maps.shape[1:3]),
    "peaks": {
      img: {
        "pos_xy": peaks["pos_xy"][i].round(2).tolist(),
        "pos_weight": peaks["pos_weight"][i].round(4).tolist(),
      }
      for i, img in enumerate(faces.names)
    },
    "shown_filters": strongest.tolist(),
    "warnings": faces.warnings,
    "_maps": maps,
    "_peaks": peaks,
    "_faces": faces.images,
  }


def _upsample(maps: np.ndarray, size: int) -> np.ndarray:
  return np.asarray(jax.image.resize(jnp.asarray(maps), (size, size), "bilinear"))


def filters_figure(result: dict, max_faces: int = 4):
  """One row per face: the face with every filter's peak (dot size ~ strength; the shown
  filters numbered), then the shown filters' response maps (rectified) overlaid."""
  faces, shown = result["_faces"][:max_faces], result["shown_filters"]
  size = faces.shape[1]
  colors = [f"C{i % 10}" for i in range(len(shown))]
  fig = figures_lib.new_figure(1.4 * (len(shown) + 1) + 0.2, 1.55 * len(faces) + 0.4)
  axes = fig.subplots(len(faces), len(shown) + 1, squeeze=False)
  for r, face in enumerate(faces):
    xy, weight = result["_peaks"]["pos_xy"][r], result["_peaks"]["pos_weight"][r]
    ax = axes[r, 0]
    figures_lib.show_image(ax, face, result["images"][r].split("/")[-1], 6)
    scale = 25.0 / max(float(weight.max()), 1e-6)
    ax.scatter(xy[:, 0], xy[:, 1], s=weight * scale, c="white", alpha=0.5, linewidths=0)
    for c, k in enumerate(shown):
      ax.scatter(xy[k, 0], xy[k, 1], s=30, c=colors[c], edgecolors="black", linewidths=0.5)
      response = np.maximum(_upsample(result["_maps"][r, :, :, k], size), 0.0)
      figures_lib.saliency_overlay(axes[r, c + 1], face, response)
      axes[r, c + 1].scatter(xy[k, 0], xy[k, 1], s=30, c=colors[c], edgecolors="black")
      axes[r, c + 1].set_title(f"filter {k}", fontsize=6, color=colors[c])
  fig.suptitle(
    f"Filter peaks ({result['num_filters']} filters; coloured = the {len(shown)} strongest) "
    "and their response maps",
    fontsize=8,
  )
  fig.tight_layout()
  return fig
