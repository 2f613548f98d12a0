"""How much of each attribute's activation map falls inside the attribute's face region.

Evaluator ``cam_region_mass`` (:func:`cam_region_mass`), for models that predict facial
attributes and offer the extra ``attribute_maps``: ``images uint8 [B, H, W, 3] ->
{'maps': float [B, H, W, T] (non-negative, at image resolution), 'logits': [B, T]}`` over
the T attributes named in the settings, in that order (e.g. CAM / Grad-CAM of an attribute
branch, the attribute paper's Fig. 4).

On the first ``num_images`` stills of ``split`` (in chunks of ``batch_size``), for each
attribute with a region (:data:`jfr.eval.face_regions.ATTRIBUTE_REGIONS`) and over the images
where the attribute is present (the data set's labels): the mean share of map mass inside
the region (:func:`jfr.eval.face_regions.map_mass_shares`), the mean area share of the region
(what a uniform map would get) and their ratio (``lift``), each with its 95 % interval
(``share_ci95``, ``area_ci95``, ``lift_ci95``: a bootstrap over the images' identities, seed
0, when the data set has ``label`` and the scored images hold two identities or more; the
lift's replicate is the ratio of the resample's mean share and mean area). Needs a data set with
``segmentation`` and ``landmarks`` features and ``part_names`` metadata; without them only
``num_images`` and ``skipped`` are reported.

Settings: ``split``, ``attributes`` (names of the model's T outputs, in the data set's
``attribute_names``), ``num_images``, ``batch_size``, ``keep_maps`` (attribute names whose
maps are returned in memory under ``_figure`` for a figure, with the images, logits, targets
and, when present, segmentation and landmarks).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval.face_regions import ATTRIBUTE_REGIONS, map_mass_shares, region_masks
from jfr.eval.still_images import check_settings
from jfr.report import intervals

NEEDS = ("attribute_maps",)
SETTINGS = ("split", "attributes", "num_images", "batch_size", "keep_maps")
SEGMENT_FEATURES = ("segmentation", "landmarks")


def attribute_columns(names: Sequence[str], available: Sequence[str] | None) -> tuple[int, ...]:
  """Positions of ``names`` in the data set's attribute vector (``available``).

  Raises:
    ValueError: no names, duplicates, a name the data set does not have, or no metadata.
  """
  names = tuple(names)
  if not names:
    raise ValueError("attributes: expected at least one attribute (T >= 1), got none")
  if available is None:
    raise ValueError(
      "dataset: it has no 'attribute_names' metadata; attribute models need "
      "an attribute-annotated data set"
    )
  available = tuple(available)
  unknown = [n for n in names if n not in available]
  if unknown:
    raise ValueError(
      f"attributes: {unknown} are not attributes of the data set; available: {available}"
    )
  if len(set(names)) != len(names):
    raise ValueError(f"attributes: duplicate names in {names}")
  return tuple(available.index(n) for n in names)


def kept_rows(keep_maps: Sequence[str], names: Sequence[str]) -> list[int]:
  """Rows (attribute positions) of ``keep_maps``; ValueError for a name not in ``names``."""
  missing = [a for a in keep_maps if a not in names]
  if missing:
    raise ValueError(f"keep_maps: {missing} are not in the model's attributes {tuple(names)}")
  return [tuple(names).index(a) for a in keep_maps]


def per_attribute_report(
  names: Sequence[str],
  share: np.ndarray,
  area: np.ndarray,
  targets: np.ndarray,
  labels: np.ndarray | None = None,
) -> dict:
  """Per attribute: region, images scored (present, finite share), mean share, mean area,
  lift = share / area. ``share``/``area``/``targets``: ``[n, T]``; ``labels``: ``[n]``
  identities, for the intervals (module docstring; None: no intervals)."""
  per = {}
  for t, name in enumerate(names):
    region = ATTRIBUTE_REGIONS.get(name)
    if region is None:
      per[name] = {"region": None}
      continue
    rows = (targets[:, t] > 0) & np.isfinite(share[:, t])
    mean_share = float(share[rows, t].mean()) if rows.any() else float("nan")
    mean_area = float(area[rows, t].mean()) if rows.any() else float("nan")
    per[name] = {
      "region": region,
      "num_images": int(rows.sum()),
      "share": mean_share,
      "area": mean_area,
      "lift": mean_share / mean_area if mean_area else float("nan"),
    }
    if labels is not None and np.unique(labels[rows]).size >= 2:
      per[name].update(_intervals(share[rows, t], area[rows, t], labels[rows]))
  return per


def _intervals(share: np.ndarray, area: np.ndarray, labels: np.ndarray) -> dict:
  """``share_ci95``, ``area_ci95``, ``lift_ci95`` of ``[m]`` images over their identities
  (same resamples for the three)."""
  sums_share = intervals.group_sums(share, labels)
  sums_area = intervals.group_sums(area, labels)

  def lift(counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
      return (counts @ sums_share) / (counts @ sums_area)

  return {
    "share_ci95": intervals.mean_interval(share, labels).as_list(),
    "area_ci95": intervals.mean_interval(area, labels).as_list(),
    "lift_ci95": intervals.bootstrap(lift, labels, vectorized=True).as_list(),
  }


def cam_region_mass(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """The ``cam_region_mass`` evaluator (module docstring) on ``context``'s data set."""
  del seed  # deterministic: the first num_images stills
  check_settings(settings, SETTINGS, "cam_region_mass")
  builder = context.builder
  metadata = builder.info.metadata or {}
  names = tuple(settings["attributes"])
  columns = attribute_columns(names, metadata.get("attribute_names"))
  rows_kept = kept_rows(settings["keep_maps"], names)
  part_names = metadata.get("part_names")
  features = ["image", "attributes"] + (["label"] if "label" in builder.info.features else [])
  has_parts = part_names is not None and all(f in builder.info.features for f in SEGMENT_FEATURES)
  if has_parts:
    features += list(SEGMENT_FEATURES)
  data = pipelines.load_arrays(builder, settings["split"], tuple(features))
  n = min(int(settings["num_images"]), len(data["image"]))
  images = data["image"][:n]
  targets = data["attributes"][:n][:, np.asarray(columns)]
  regions = [ATTRIBUTE_REGIONS.get(name) for name in names]
  shares, areas, maps_kept, logits = [], [], [], []
  batch = int(settings["batch_size"])
  for start in range(0, n, batch):
    out = model.extras["attribute_maps"](images[start : start + batch])
    maps = np.asarray(out["maps"])
    logits.append(np.asarray(out["logits"]))
    maps_kept.append(maps[..., rows_kept])
    if has_parts:
      sl = slice(start, start + len(maps))
      masks = np.stack(
        [
          region_masks(data["segmentation"][sl], data["landmarks"][sl], r, part_names)
          if r is not None
          else np.zeros(maps.shape[:3], bool)
          for r in regions
        ],
        -1,
      )
      share, area = map_mass_shares(maps, masks)
      shares.append(share)
      areas.append(area)
  report: dict[str, Any] = {"num_images": n}
  if not has_parts:
    report["skipped"] = "the data set has no part segmentation / landmarks"
  else:
    report["per_attribute"] = per_attribute_report(
      names,
      np.concatenate(shares),
      np.concatenate(areas),
      targets,
      data["label"][:n] if "label" in data else None,
    )
  figure = {
    "images": images,
    "maps": np.concatenate(maps_kept),
    "logits": np.concatenate(logits),
    "targets": targets,
    "rows": rows_kept,
    "part_names": part_names,
  }
  if has_parts:
    figure["segmentation"], figure["landmarks"] = data["segmentation"][:n], data["landmarks"][:n]
  report["_figure"] = figure
  return report
