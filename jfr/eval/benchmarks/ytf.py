"""The ``ytf`` evaluator: YouTube Faces video-pair verification (``splits.txt``).

``settings['data']``: a folder holding ``splits.txt`` and ``aligned_images_DB/``. Each
video's frames (all of them, or ``frames_per_video`` evenly spaced ones) are cropped by the
policy of :mod:`jfr.data.benchmarks.ytf` and embedded; a video is represented by

* ``mean``: the mean of its frames' features (feature averaging), and, when the run's
  model offers ``embed_sets`` (a set aggregator such as the FAN),
* ``aggregator``: long-video policy: the frames are cut into ``ceil(T / max_set_size)``
  contiguous chunks of near-equal length (each at most ``max_set_size`` frames, the
  aggregator's ``max_members``; default 32), each chunk is one set given to
  ``embed_sets``, and the video's feature is the mean of the chunk features weighted by
  the chunk lengths.

Pairs are scored and classified as in :mod:`jfr.eval.benchmarks.verification` (squared L2
of normalised features, thresholds 0:4:0.01), with the 10 splits of the file as folds.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jfr.data.benchmarks import ytf as ytf_files
from jfr.eval.benchmarks import streaming
from jfr.eval.benchmarks import verification
from jfr.eval.embedding import EvalModel
from jfr.report import tables

NEEDS = ("embed",)


def subsample(paths: list, count: int | None) -> list:
  """``count`` evenly spaced items of ``paths`` (centres of ``count`` equal bins), or all."""
  if count is None or len(paths) <= count:
    return list(paths)
  index = np.floor((np.arange(count) + 0.5) * len(paths) / count).astype(int)
  return [paths[i] for i in index]


def chunks(n: int, max_size: int) -> list[np.ndarray]:
  """Contiguous near-equal chunks of ``range(n)``, each of at most ``max_size`` items."""
  if max_size < 1:
    raise ValueError(f"max_set_size: expected a positive integer, got {max_size}")
  return np.array_split(np.arange(n), -(-n // max_size))


def _aggregated(model, frames_of, videos, settings, load) -> np.ndarray:
  """[V, D] video features by the chunk policy of the module docstring."""
  max_size = int(streaming.setting(settings, "max_set_size", 32))
  sets_per_call = max(1, int(streaming.setting(settings, "batch_size", 256)) // max_size)
  jobs = [(v, c) for v, video in enumerate(videos) for c in chunks(len(frames_of[video]), max_size)]
  bar = settings.get("progress")
  bar = bar(len(jobs), "ytf sets") if bar is not None else None
  sums, weights = None, np.zeros(len(videos))
  s = model.input_size
  for start in range(0, len(jobs), sets_per_call):
    part = jobs[start : start + sets_per_call]
    frames = np.zeros((len(part), max_size, s, s, 3), np.uint8)
    mask = np.zeros((len(part), max_size), bool)
    for b, (v, chunk) in enumerate(part):
      paths = frames_of[videos[v]]
      frames[b, : len(chunk)] = np.stack([load(paths[i]) for i in chunk])
      mask[b, : len(chunk)] = True
    feats = np.asarray(model.embed_sets(frames, mask), np.float64)
    if sums is None:
      sums = np.zeros((len(videos), feats.shape[-1]))
    for b, (v, chunk) in enumerate(part):
      sums[v] += len(chunk) * feats[b]
      weights[v] += len(chunk)
    if bar is not None:
      bar.update(len(part))
  if bar is not None:
    bar.close()
  return (sums / weights[:, None]).astype(np.float32)


def ytf(model: EvalModel, context: Any, settings: dict, *, seed: int) -> dict:
  """YTF verification (module docstring). Settings: ``data``, ``flip`` (False, the mean
  representation only), ``frames_per_video`` (None = all), ``aggregate`` ('auto': mean,
  plus the aggregator when the model has one; 'mean'; 'aggregator'), ``max_set_size``
  (32), ``crop_fraction`` (0.5), ``batch_size``, ``cache``, ``progress``."""
  del context, seed
  data = settings["data"]
  root = os.path.join(data, "aligned_images_DB")
  if not os.path.isdir(root):
    raise ValueError(f"data: {data!r} has no aligned_images_DB/ folder")
  pairs = ytf_files.read_splits(os.path.join(data, "splits.txt"))
  flip = bool(streaming.setting(settings, "flip", False))
  per_video = settings.get("frames_per_video")
  crop = float(streaming.setting(settings, "crop_fraction", ytf_files.DEFAULT_CROP_FRACTION))
  mode = streaming.setting(settings, "aggregate", "auto")
  if mode not in ("auto", "mean", "aggregator"):
    raise ValueError(f"aggregate: expected 'auto', 'mean' or 'aggregator', got {mode!r}")
  if mode == "aggregator" and model.embed_sets is None:
    raise ValueError("aggregate='aggregator': this run's model offers no embed_sets")
  kinds = ["mean"] if mode == "mean" else ["aggregator"] if mode == "aggregator" else ["mean"]
  if mode == "auto" and model.embed_sets is not None:
    kinds.append("aggregator")
  videos = sorted(set(pairs.first) | set(pairs.second))
  frames_of = {
    v: subsample(ytf_files.video_frames(root, v), per_video and int(per_video)) for v in videos
  }

  def load(path: str) -> np.ndarray:
    return ytf_files.load_frame(path, model.input_size, crop)

  features = {}
  common = dict(input_size=model.input_size, crop=crop, per_video=per_video)
  if "mean" in kinds:
    flat = [p for v in videos for p in frames_of[v]]
    owner = np.repeat(np.arange(len(videos)), [len(frames_of[v]) for v in videos])
    digest = streaming.fingerprint(
      kind="ytf", keys=streaming.keys_digest(flat), flip=flip, **common
    )
    feats = streaming.cached(
      settings.get("cache"),
      "frames",
      digest,
      lambda: streaming.embed_items(
        model.embed, lambda i: load(flat[i]), len(flat),
        batch_size=int(streaming.setting(settings, "batch_size", 256)), flip=flip,
        progress=settings.get("progress"), description="ytf frames",
      ),
    )  # fmt: skip
    frame_feats = streaming.flip_sum(feats, flip).astype(np.float64)
    sums = np.zeros((len(videos), frame_feats.shape[1]))
    np.add.at(sums, owner, frame_feats)
    features["mean"] = sums / np.bincount(owner)[:, None]
  if "aggregator" in kinds:
    max_size = int(streaming.setting(settings, "max_set_size", 32))
    digest = streaming.fingerprint(
      kind="ytf_sets", keys=streaming.keys_digest([p for v in videos for p in frames_of[v]]),
      max_size=max_size, **common,
    )  # fmt: skip
    features["aggregator"] = streaming.cached(
      settings.get("cache"),
      "sets",
      digest,
      lambda: {"features": _aggregated(model, frames_of, videos, settings, load)},
    )["features"]
  index = {v: i for i, v in enumerate(videos)}
  first = [index[v] for v in pairs.first]
  second = [index[v] for v in pairs.second]
  results, rows, curves = {}, [], {}
  for kind, f in features.items():
    r = verification.pair_report(f[first], f[second], pairs.same, fold_ids=pairs.split)
    curves[kind] = r.pop("_roc")
    results[kind] = r
    rows.append(
      {"video feature": kind, "accuracy": r["accuracy"], "std": r["std"], "eer": r["eer"]}
    )
  lengths = [len(frames_of[v]) for v in videos]
  markdown = (
    "# YouTube Faces\n\n"
    + tables.markdown_table(rows, ["video feature", "accuracy", "std", "eer"])
    + f"\n\n{pairs.same.size} pairs, {len(videos)} videos, {sum(lengths)} frames "
    f"(frames_per_video={per_video}); folds = the {len(np.unique(pairs.split))} splits. "
    "Squared L2 distance of normalised video features, thresholds 0:4:0.01. "
    "aggregator: chunks of <= max_set_size frames, chunk features averaged by length.\n"
  )
  return {
    "pairs": int(pairs.same.size),
    "videos": len(videos),
    "frames": int(sum(lengths)),
    "flip": flip,
    **results,
    "_markdown": markdown,
    "_roc": curves,
  }
