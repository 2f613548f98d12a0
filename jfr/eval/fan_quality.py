"""Quality of aggregated faces against each clip's canonical face (issue 17 item 2), as the
evaluator ``fan_quality``.

For every clip of ``settings['split']`` (a video split with the ``canonical_face`` /
``canonical_mask`` features: the clip's identity drawn without nuisances at the clip's mean
framing, and its face region), ``set_size`` frames are taken as the FAN's video protocols
take them (:func:`jfr.eval.video_protocols.resampled_groups`, ``n_avg = 1``: evenly spread
over the clip). Each set becomes one image by every method:

* baselines: ``pixel_mean`` (the mean of the frames), ``sharpest_frame`` (the frame of largest
  gradient energy on the face region, :func:`jfr.eval.image_quality.sharpest_frame`),
  ``middle_frame`` (frame ``set_size // 2`` of the set);
* ``extra_baselines`` given by the caller (e.g. the FAN's fixed shading-symmetry prior on the
  pixel mean): rows and figure columns, but no comparisons;
* one row per aggregator given (the FAN's variants: float sets in [-1, 1] -> images).

Metrics per clip (:mod:`jfr.eval.image_quality`; region = the canonical face region):
``psnr`` (dB, capped at ``max_db``) and ``ssim`` against the canonical face, ``identity``
(cosine between the extractor's feature of the image and the identity's centre: the mean of
the L2-normalised features of its stills in ``still_split``), ``sharpness`` (gradient energy
relative to the sharpest input frame) and ``checkerboard`` (Nyquist-energy share relative to
the input frames'). PSNR, SSIM, sharpness and checkerboard read the image clipped to [-1, 1]
(what is shown or saved); the identity feature reads the aggregator's raw output, as the
FAN's recognition protocols do. With ``flip`` every feature (stills and images) is the sum
of the image's and its mirror's.

Each figure is the mean over identities of the per-identity mean over its clips, with a 95 %
percentile bootstrap interval over identities (:func:`jfr.report.intervals.mean_interval`,
``num_resamples``, the evaluator's seed); ``comparisons`` holds every aggregator against
``pixel_mean`` per metric, paired over the same identity resamples
(:func:`jfr.report.intervals.paired_mean_difference`), oriented so that ``diff > 0`` means
the aggregator is better (higher); ``checkerboard`` is compared with the inputs' level
(score 1; lower is better), since averaging frames removes their Nyquist energy and the
pixel mean is no bar for it.

Settings: ``split``, ``still_split``, ``set_size``, ``flip``, ``num_resamples``,
``figure_clips`` (clips shown in the figure), ``max_db`` (PSNR cap). Needs the model's
``extras['embed_model_range']`` (float ``[B, H, W, 3]`` in [-1, 1] -> ``[B, D]``); the
aggregators come from ``extras['aggregate_<variant>']`` (:func:`jfr.methods.fan.run.eval_model`)
or ``extras['aggregate_model_range']``, or are passed to :func:`evaluate_quality`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jfr.data import pipelines
from jfr.eval import image_quality as iq
from jfr.eval import video_protocols as vp
from jfr.eval.still_images import check_settings
from jfr.report import figures as figures_lib
from jfr.report import intervals, tables

NEEDS = ("embed_model_range",)
SETTINGS = (
  "split",
  "still_split",
  "set_size",
  "flip",
  "num_resamples",
  "figure_clips",
  "max_db",
)
CANONICAL_FEATURES = ("canonical_face", "canonical_mask")
BASELINES = ("pixel_mean", "sharpest_frame", "middle_frame")
# metric -> (label with unit, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
  "psnr": ("PSNR vs canonical face [dB]", True),
  "ssim": ("SSIM vs canonical face", True),
  "identity": ("cosine to identity centre", True),
  "sharpness": ("gradient energy / sharpest input", True),
  "checkerboard": ("Nyquist energy share / inputs'", False),
}
AggregateFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def load_canonical(builder: Any, split: str, video_ids: np.ndarray) -> dict[str, np.ndarray]:
  """``canonical_face`` uint8 ``[V, H, W, 3]`` and ``canonical_mask`` bool ``[V, H, W]`` of
  each video of ``video_ids`` (the first frame's; every frame of a clip carries the same).

  Raises:
    ValueError: the data set has no canonical faces (names the missing features).
  """
  missing = [f for f in CANONICAL_FEATURES if f not in builder.info.features]
  if missing:
    raise ValueError(
      f"fan_quality: the data set {builder.info.full_name} has no feature(s) {missing} "
      "(canonical faces of the evaluation clips); rebuild synthetic_faces at a version that "
      "stores them, or give real data these features"
    )
  data = pipelines.load_arrays(builder, split, (*CANONICAL_FEATURES, "video_id"))
  ids, first = np.unique(np.asarray(data["video_id"]), return_index=True)
  where = np.searchsorted(ids, video_ids)
  if np.any(where >= ids.size) or np.any(ids[np.minimum(where, ids.size - 1)] != video_ids):
    raise ValueError(f"split {split!r}: videos without canonical faces")
  return {
    "face": data["canonical_face"][first[where]],
    "mask": data["canonical_mask"][first[where]].astype(bool),
  }


def identity_centres(
  embed: Callable[[np.ndarray], np.ndarray], stills: Mapping[str, np.ndarray], flip: bool
) -> dict[int, np.ndarray]:
  """label -> mean of the L2-normalised features of its stills (uint8 ``image`` ``[M, ...]``,
  ``label`` ``[M]``), features by ``embed`` on the model range (flip: plus the mirror's)."""
  feats = _features(embed, pipelines.to_model_range_np(stills["image"]), flip)
  feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  labels = np.asarray(stills["label"])
  return {int(c): feats[labels == c].mean(0) for c in np.unique(labels)}


def _features(embed: Callable, images: np.ndarray, flip: bool) -> np.ndarray:
  images = np.asarray(images, np.float32)
  feats = np.asarray(embed(images), np.float64)
  if flip:
    feats = feats + np.asarray(embed(np.ascontiguousarray(images[:, :, ::-1])), np.float64)
  return feats


def method_images(
  sets: np.ndarray, region: np.ndarray, aggregators: Mapping[str, AggregateFn]
) -> dict[str, np.ndarray]:
  """method -> ``[V, H, W, 3]`` float images: the baselines of the module docstring and
  every aggregator's raw output, from sets ``[V, N, H, W, 3]`` in [-1, 1] (all real)."""
  v, n = sets.shape[:2]
  mask = np.ones((v, n), bool)
  sharpest = iq.sharpest_frame(sets, mask, region)
  out = {
    "pixel_mean": sets.astype(np.float64).mean(1).astype(np.float32),
    "sharpest_frame": sets[np.arange(v), sharpest],
    "middle_frame": sets[:, n // 2],
  }
  overlap = set(out) & set(aggregators)
  if overlap:
    raise ValueError(f"aggregators: names {sorted(overlap)} are taken by the baselines")
  for name, aggregate in aggregators.items():
    out[name] = np.asarray(aggregate(sets, mask), np.float32)
  return out


def clip_metrics(
  image: np.ndarray,
  sets: np.ndarray,
  reference: np.ndarray,
  region: np.ndarray,
  features: np.ndarray,
  centres: np.ndarray,
  max_db: float,
) -> dict[str, np.ndarray]:
  """metric -> ``[V]`` for one method's images ``[V, H, W, 3]`` (raw), its input sets
  ``[V, N, H, W, 3]``, canonical faces ``[V, H, W, 3]`` and regions ``[V, H, W]`` (all in
  [-1, 1]), the images' features and their identities' centres ``[V, D]``."""
  shown = np.clip(image, -1.0, 1.0)
  mask = np.ones(sets.shape[:2], bool)
  return {
    "psnr": iq.psnr(shown, reference, region, max_db=max_db),
    "ssim": iq.ssim(shown, reference, region),
    "identity": iq.identity_cosine(features, centres),
    "sharpness": iq.relative_sharpness(shown, sets, mask, region),
    "checkerboard": iq.checkerboard_score(shown, sets, mask),
  }


def per_identity(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """``[I]`` mean of ``values [V]`` over each identity's clips (order of ``np.unique``)."""
  labels = np.asarray(labels)
  _, inverse = np.unique(labels, return_inverse=True)
  return np.bincount(inverse, weights=values) / np.bincount(inverse)


def evaluate_quality(
  videos: Mapping[str, np.ndarray],
  canonical: Mapping[str, np.ndarray],
  centres: Mapping[int, np.ndarray],
  embed: Callable[[np.ndarray], np.ndarray],
  aggregators: Mapping[str, AggregateFn],
  settings: Mapping[str, Any],
  *,
  seed: int,
  extra_baselines: Mapping[str, AggregateFn] | None = None,
) -> dict:
  """The protocol of the module docstring.

  Args:
    videos: ``frames`` uint8 ``[V, T, H, W, 3]``, ``lengths`` ``[V]``, ``labels`` ``[V]``
      (:func:`jfr.eval.video_protocols.load_videos`).
    canonical: ``face`` uint8 ``[V, H, W, 3]``, ``mask`` bool ``[V, H, W]`` (:func:`load_canonical`).
    centres: label -> ``[D]`` identity centre (:func:`identity_centres`).
    embed: float ``[B, H, W, 3]`` in [-1, 1] -> ``[B, D]``.
    aggregators: name -> float sets ``[V, N, H, W, 3]``, mask ``[V, N]`` -> ``[V, H, W, 3]``.
    settings: the evaluator's settings.
    seed: the bootstrap's seed.
    extra_baselines: more baselines (same signature as ``aggregators``): rows of the table
      and the figure, after the built-in ones, but no comparisons (they are not a paper's
      claim).

  Returns:
    ``methods`` (method -> metric -> mean over identities, ``<metric>_ci95``),
    ``comparisons`` (contract of :mod:`jfr.report.intervals`), counts and settings;
    in memory ``_figure`` (:func:`figure`'s inputs).
  """
  check_settings(settings, SETTINGS, "fan_quality")
  labels = np.asarray(videos["labels"])
  missing = sorted({int(c) for c in labels} - set(centres))
  if missing:
    raise ValueError(f"still_split: no stills of the clips' identities {missing[:10]}")
  n = int(settings["set_size"])
  sets = vp.resampled_groups(pipelines.to_model_range_np(videos["frames"]), videos["lengths"], n, 1)
  reference = pipelines.to_model_range_np(canonical["face"])
  region = np.asarray(canonical["mask"], bool)
  if reference.shape != sets.shape[:1] + sets.shape[2:] or region.shape != reference.shape[:3]:
    raise ValueError(
      f"canonical: expected face [V, H, W, 3] and mask [V, H, W] matching the sets "
      f"{sets.shape}, got {reference.shape} and {region.shape}"
    )
  extra_baselines = dict(extra_baselines or {})
  overlap = set(extra_baselines) & set(aggregators)
  if overlap:
    raise ValueError(f"extra_baselines: names {sorted(overlap)} are also aggregators")
  images = method_images(sets, region, {**extra_baselines, **aggregators})
  centre_rows = np.stack([centres[int(c)] for c in labels])
  flip, num_resamples = bool(settings["flip"]), int(settings["num_resamples"])
  per_clip, per_ident = {}, {}
  for name, image in images.items():
    feats = _features(embed, image, flip)
    per_clip[name] = clip_metrics(
      image, sets, reference, region, feats, centre_rows, settings["max_db"]
    )
    per_ident[name] = {m: per_identity(v, labels) for m, v in per_clip[name].items()}
  methods = {}
  for name, metrics in per_ident.items():
    row: dict[str, Any] = {}
    for m, values in metrics.items():
      ci = intervals.mean_interval(values, num_resamples=num_resamples, seed=seed)
      row[m] = float(ci.value)
      intervals.with_ci95(row, m, ci)
    methods[name] = row
  comparisons = {}
  for name in aggregators:
    for m, (label, higher) in METRICS.items():
      # The checkerboard score is relative to the inputs' already: the claim is "no more than
      # the inputs" (score <= 1), not "less than the pixel mean" (which averages it away).
      base = "inputs" if m == "checkerboard" else "pixel_mean"
      base_values = (
        np.ones_like(per_ident[name][m]) if base == "inputs" else per_ident["pixel_mean"][m]
      )
      paired = intervals.paired_mean_difference(
        per_ident[name][m], base_values, num_resamples=num_resamples, seed=seed
      )
      comparisons[f"fan_quality_{name}_vs_{base}_{m}"] = intervals.comparison(
        paper="fan",
        claim=(
          f"{name}'s aggregated face has no more checkerboard (Nyquist) energy than its input "
          "frames"
          if base == "inputs"
          else f"{name}'s aggregated face beats the pixel mean of the frames"
        ),
        metric=label,
        a=name,
        b=base,
        paired=paired,
        resampled="identities",
        num_resamples=num_resamples,
        higher_is_better=higher,
      )
  picks = np.unique(np.linspace(0, len(labels) - 1, settings["figure_clips"]).astype(int))
  return {
    "split": settings["split"],
    "still_split": settings["still_split"],
    "set_size": n,
    "flip": flip,
    "max_db": settings["max_db"],
    "num_clips": len(labels),
    "num_identities": int(np.unique(labels).size),
    "num_resamples": num_resamples,
    "psnr_capped_clips": {
      k: int(np.sum(v["psnr"] >= settings["max_db"])) for k, v in per_clip.items()
    },
    "methods": methods,
    "comparisons": comparisons,
    "_figure": {
      "sets": sets[picks],
      "images": {k: v[picks] for k, v in images.items()},
      "canonical": reference[picks],
    },
  }


def fan_quality(
  model: Any,
  context: Any,
  settings: Mapping[str, Any],
  *,
  seed: int,
  aggregators: Mapping[str, AggregateFn] | None = None,
  videos: Mapping[str, np.ndarray] | None = None,
  extra_baselines: Mapping[str, AggregateFn] | None = None,
) -> dict:
  """Evaluator ``fan_quality``: :func:`evaluate_quality` on the run's data set (module
  docstring). ``aggregators`` default: the model's ``extras['aggregate_<variant>']``, else
  ``extras['aggregate_model_range']`` as ``aggregated``; ``videos``: the split already
  loaded by :func:`jfr.eval.video_protocols.load_videos` (default: load it);
  ``extra_baselines``: as :func:`evaluate_quality`."""
  check_settings(settings, SETTINGS, "fan_quality")
  model.require(NEEDS, "fan_quality")
  if aggregators is None:
    aggregators = {
      k[len("aggregate_") :]: f
      for k, f in model.extras.items()
      if k.startswith("aggregate_") and k != "aggregate_model_range"
    }
    if not aggregators and "aggregate_model_range" in model.extras:
      aggregators = {"aggregated": model.extras["aggregate_model_range"]}
  builder = context.builder
  if videos is None:
    videos = vp.load_videos(builder, settings["split"])
  canonical = load_canonical(builder, settings["split"], videos["video_ids"])
  embed = model.extras["embed_model_range"]
  stills = pipelines.load_arrays(builder, settings["still_split"], ("image", "label"))
  centres = identity_centres(embed, stills, bool(settings["flip"]))
  return evaluate_quality(
    videos,
    canonical,
    centres,
    embed,
    aggregators,
    settings,
    seed=seed,
    extra_baselines=extra_baselines,
  )


# ----------------------------------------------------------------------------- report


def markdown(results: Mapping[str, Any], title: str = "Aggregated-face quality") -> str:
  """The table (one row per method, ``value [95 % CI]`` per metric) and the comparisons."""
  columns = list(METRICS)
  rows = [
    {"method": name, **{m: intervals.cell(row, m, lambda x: f"{x:.3f}") for m in columns}}
    for name, row in results["methods"].items()
  ]
  headers = ["method", *(f"{m}: {METRICS[m][0]}" for m in columns)]
  return "\n".join(
    [
      f"## {title}",
      "",
      f"{results['num_clips']} clips of {results['num_identities']} identities "
      f"({results['split']}), {results['set_size']} frames each; mean over identities "
      f"[95 % bootstrap interval over identities, {results['num_resamples']} resamples]. "
      f"PSNR capped at {results['max_db']:g} dB; checkerboard: lower is better.",
      "",
      tables.markdown_table(rows, ["method", *columns], headers=headers),
      "",
      "### Each aggregator against the pixel mean (paired over identities)",
      "",
      intervals.comparisons_table(results["comparisons"], digits=3),
      "",
    ]
  )


def figure(results: Mapping[str, Any]) -> Figure:
  """One row per shown clip: its frames | a blank | every method's image | the canonical
  face (from the in-memory ``_figure`` of :func:`evaluate_quality`)."""
  data = results["_figure"]
  sets, images, canonical = data["sets"], data["images"], data["canonical"]
  n = sets.shape[1]
  rows = [[*sets[k], None, *(images[m][k] for m in images), canonical[k]] for k in range(len(sets))]
  labels = [f"frame {i + 1}" for i in range(n)] + ["", *images, "canonical"]
  return figures_lib.image_grid(
    rows, col_labels=labels, title="Aggregated faces, baselines and canonical faces"
  )
