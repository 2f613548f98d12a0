"""``aggregate --frames=DIR``: a FAN run's aggregated face of a video (or any set of frames).

Any number ``N`` of frames (read as face crops, or aligned with ``--landmarks``). Policy:

* ``N <= max_members`` (``config.aggregator.max_members``): one set; the aggregator makes one
  face, the extractor embeds it.
* ``N > max_members``: the frames, in order, are cut into ``ceil(N / max_members)``
  consecutive chunks of near-equal size (each ``<= max_members``, sizes differing by at most
  one); each chunk gives one aggregated face and its feature; the video's feature is the
  **L2-normalised mean of the L2-normalised chunk features** (nothing is dropped).

Baseline beside it: the mean of the frames' extractor features (feature averaging, the
FAN paper's baseline). Reported: the cosine of the two video features and, with
``--reference`` images, each one's cosine to the reference's feature.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from jfr.data import pipelines
from jfr.infer import inputs as inputs_lib
from jfr.infer.loading import Run
from jfr.infer.recognize import l2_normalize
from jfr.report import figures as figures_lib


def chunk_bounds(num_frames: int, max_members: int) -> list[tuple[int, int]]:
  """``[(start, stop)]`` of the near-equal consecutive chunks of the module docstring."""
  if num_frames < 1 or max_members < 1:
    raise ValueError(f"num_frames/max_members: expected >= 1, got {num_frames}, {max_members}")
  chunks = -(-num_frames // max_members)
  edges = np.linspace(0, num_frames, chunks + 1).round().astype(int)
  return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def aggregate_frames(run: Run, frames: np.ndarray, variant: str) -> dict:
  """``frames`` uint8 ``[N, S, S, 3]`` -> ``faces`` float ``[C, S, S, 3]`` in [-1, 1] (one per
  chunk), ``chunk_features`` ``[C, D]``, ``feature`` ``[D]`` (unit), ``mean_feature`` ``[D]``
  (unit, the baseline), ``chunks`` bounds."""
  x = run.model.extras
  key = f"aggregate_{variant}"
  if key not in x:
    variants = sorted(k[len("aggregate_") :] for k in x if k.startswith("aggregate_"))
    raise ValueError(f"variant: expected one of {variants}, got {variant!r}")
  max_members = int(run.config.aggregator.max_members)
  bounds = chunk_bounds(len(frames), max_members)
  size = max(b - a for a, b in bounds)
  sets = np.zeros((len(bounds), size) + frames.shape[1:], np.float32)
  mask = np.zeros((len(bounds), size), bool)
  model_range = pipelines.to_model_range_np(frames)
  for i, (a, b) in enumerate(bounds):
    sets[i, : b - a], mask[i, : b - a] = model_range[a:b], True
  faces = np.asarray(x[key](sets, mask), np.float32)
  chunk_features = np.asarray(x["embed_model_range"](faces), np.float32)
  frame_features = np.asarray(x["embed_model_range"](model_range), np.float32)
  return {
    "faces": faces,
    "chunks": bounds,
    "chunk_features": chunk_features,
    "feature": l2_normalize(l2_normalize(chunk_features).mean(0, keepdims=True))[0],
    "mean_feature": l2_normalize(frame_features.mean(0, keepdims=True))[0],
  }


def aggregate(
  run: Run,
  frames: Sequence[str] | str,
  *,
  variant: str | None = None,
  reference: Sequence[str] | str | None = None,
  landmarks: str | None = None,
) -> dict:
  """Reads the frames and runs :func:`aggregate_frames` (module docstring)."""
  variant = variant or run.config.variants[0]
  faces = inputs_lib.read_faces(frames, run.model.input_size, landmarks)
  res = aggregate_frames(run, faces.images, variant)
  out = {
    "frames": faces.names,
    "variant": variant,
    "max_members": int(run.config.aggregator.max_members),
    "chunks": res["chunks"],
    "policy": (
      "<= max_members frames: one set; more: consecutive near-equal chunks, one aggregated "
      "face each, video feature = L2-normalised mean of the L2-normalised chunk features"
    ),
    "cosine_fan_vs_mean_feature": float(res["feature"] @ res["mean_feature"]),
    "warnings": faces.warnings,
    "_result": res,
    "_frames": faces.images,
  }
  if reference:
    ref = inputs_lib.read_faces(reference, run.model.input_size)
    f = l2_normalize(l2_normalize(run.model.embed(ref.images)).mean(0, keepdims=True))[0]
    out["reference"] = ref.names
    out["cosine_to_reference"] = {
      "fan": float(res["feature"] @ f),
      "mean_feature": float(res["mean_feature"] @ f),
    }
  return out


def aggregated_pixels(result: dict) -> np.ndarray:
  """The aggregated faces as uint8 ``[C, S, S, 3]`` (clipped to the image range)."""
  return pipelines.from_model_range(result["_result"]["faces"])


def aggregate_figure(result: dict, max_frames: int = 16, per_row: int = 8):
  """Rows of up to ``max_frames`` input frames (evenly spaced, ``per_row`` a row), then a
  row of the aggregated faces (one per chunk); the title gives the scores."""
  frames = result["_frames"]
  shown = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
  rows, labels = [], []
  for start in range(0, len(shown), per_row):
    part = shown[start : start + per_row]
    rows.append([frames[i] for i in part])
    labels.append(f"frames {part[0]}..{part[-1]}" if len(part) > 1 else f"frame {part[0]}")
  rows.append(list(aggregated_pixels(result)))
  labels.append(f"FAN face(s)\n{len(result['chunks'])} chunk(s)")
  text = (
    f"{result['variant']}: {len(frames)} frames in {len(result['chunks'])} set(s) of <= "
    f"{result['max_members']}; cos(FAN, mean feature) = "
    f"{result['cosine_fan_vs_mean_feature']:.3f}"
  )
  if "cosine_to_reference" in result:
    c = result["cosine_to_reference"]
    text += f"\nvs reference: FAN {c['fan']:.3f}, mean feature {c['mean_feature']:.3f}"
  return figures_lib.image_grid(rows, row_labels=labels, cell=1.0, title=text)


def write_faces(result: dict, out: str) -> list[str]:
  """``aggregated_<i>.png`` per chunk in ``out``."""
  from PIL import Image

  os.makedirs(out, exist_ok=True)
  paths = []
  for i, face in enumerate(aggregated_pixels(result)):
    paths.append(os.path.join(out, f"aggregated_{i}.png"))
    Image.fromarray(face).save(paths[-1])
  return paths
