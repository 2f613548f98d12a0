"""A pointing game on synthetic pairs that differ in one face part (ground truth that the
explanation papers did not have).

Evaluator ``pointing_game`` (:func:`evaluate`): for each part of ``settings['parts']``,
``pairs_per_part`` pairs of test identities rendered by :mod:`jfr.data.part_pairs` (face B
is face A with one part taken from a donor; same nuisances), each method's map of A with
respect to B, and per method the share of the map's mass inside the (dilated) part
(:func:`jfr.explain.hiding_game.pointing_game`) and how often its peak falls inside. The
part's area share is the level of a uniform map. ``dissimilarity_mean``: mean
``1 - verify(A, B)`` per part (how different the model finds the pairs).

Settings: ``split`` (whose identities are used), ``parts``, ``pairs_per_part``, ``max_yaw``
(degrees), ``region_dilation`` (pixels), ``methods`` (names of the maps to score). The data
set must be ``synthetic_faces`` (its builder config's ``seed`` is the face world).

Model extras it needs: ``verify`` and ``saliency``, as in :mod:`jfr.eval.hiding_protocol`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from jfr.data import part_pairs as part_pairs_lib
from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval.still_images import check_settings
from jfr.explain import hiding_game as hiding
from jfr.report import intervals

NEEDS = ("verify", "saliency")
SETTINGS = ("split", "parts", "pairs_per_part", "max_yaw", "region_dilation", "methods")


def pointing_games(
  maps_by_part: Mapping[str, Mapping[str, np.ndarray]],
  regions: Mapping[str, np.ndarray],
  methods: Sequence[str],
) -> dict[str, Any]:
  """Share of each map's mass inside the differing part, and the hit rate of its peak.

  Args:
    maps_by_part: part -> name -> ``[n, H, W]`` non-negative maps.
    regions: part -> ``[n, H, W]`` bool ground-truth regions.
    methods: the map names to score.

  Returns:
    ``area_share`` (part -> region's mean area), ``methods`` (name -> ``parts`` (part ->
    ``share_mean``, ``share_std``, ``hit_rate``, ``num_pairs``), ``share_mean``,
    ``hit_rate``), each ``share_mean`` / ``hit_rate`` with its 95 % bootstrap interval over
    the pairs (``*_ci95``; the overall ones pool the parts' pairs, seed 0); in memory
    ``_pair_shares`` (name -> ``[n_total]``, parts concatenated) and ``_pair_area``
    (``[n_total]``, each pair's region area share) for paired comparisons.
  """
  out: dict[str, Any] = {"area_share": {}, "methods": {}, "_pair_shares": {}}
  for part, region in regions.items():
    out["area_share"][part] = float(region.mean())
  out["_pair_area"] = np.concatenate(
    [r.reshape(len(r), -1).mean(axis=1, dtype=np.float64) for r in regions.values()]
  )
  for name in methods:
    per_part, all_shares, all_hits = {}, [], []
    for part, region in regions.items():
      sal = maps_by_part[part][name].astype(np.float64)
      share = hiding.pointing_game(sal, region)
      peak = sal.reshape(len(sal), -1).argmax(axis=1)
      hit = region.reshape(len(region), -1)[np.arange(len(sal)), peak]
      per_part[part] = {
        "share_mean": float(share.mean()),
        "share_std": float(share.std()),
        "hit_rate": float(hit.mean()),
        "num_pairs": int(len(sal)),
      }
      if len(sal) >= 2:
        per_part[part]["share_mean_ci95"] = intervals.mean_interval(share).as_list()
        per_part[part]["hit_rate_ci95"] = intervals.mean_interval(hit).as_list()
      all_shares.append(share)
      all_hits.append(hit.astype(np.float64))
    shares = [v["share_mean"] for v in per_part.values()]
    hits = [v["hit_rate"] for v in per_part.values()]
    out["methods"][name] = {
      "parts": per_part,
      "share_mean": float(np.mean(shares)),
      "hit_rate": float(np.mean(hits)),
    }
    pooled = np.concatenate(all_shares)
    out["_pair_shares"][name] = pooled
    if pooled.size >= 2:
      out["methods"][name]["share_mean_ci95"] = intervals.mean_interval(pooled).as_list()
      out["methods"][name]["hit_rate_ci95"] = intervals.mean_interval(
        np.concatenate(all_hits)
      ).as_list()
  return out


def evaluate(
  model: embedding.EvalModel,
  context: Any,
  settings: Mapping[str, Any],
  *,
  seed: int,
  rng: np.random.Generator | None = None,
) -> dict[str, Any]:
  """Evaluator ``pointing_game`` (module docstring).

  ``rng`` (default ``np.random.default_rng(seed + 1)``) draws the (identity, donor) pairs
  and is passed to the model's ``saliency``; part ``k`` is rendered with seed
  ``seed * 1000 + k``. Returns :func:`pointing_games`' results, ``dissimilarity_mean`` and
  in memory ``_part_pairs`` (part -> ``images_a``, ``images_b``, ``region``,
  ``similarity``) and ``_part_maps`` (part -> name -> maps) for figures.
  """
  check_settings(settings, SETTINGS, "pointing_game")
  model.require(NEEDS, "pointing_game")
  rng = np.random.default_rng(seed + 1) if rng is None else rng
  builder = context.builder
  world_seed = getattr(builder.builder_config, "seed", None)
  if world_seed is None:
    raise ValueError(
      f"config.dataset.name: part pairs are rendered from the synthetic "
      f"face world; {builder.info.full_name} is not synthetic_faces"
    )
  test_ids = np.unique(pipelines.load_arrays(builder, settings["split"], ("label",))["label"])
  verify, saliency_fn = model.extras["verify"], model.extras["saliency"]
  part_pairs, part_maps = {}, {}
  for index, part in enumerate(settings["parts"]):
    ids, donors = part_pairs_lib.part_pair_ids(test_ids, settings["pairs_per_part"], rng)
    pairs = part_pairs_lib.render_part_pairs(
      world_seed,
      ids,
      donors,
      part,
      context.image_size,
      seed=seed * 1000 + index,
      max_yaw=settings["max_yaw"],
      region_dilation=settings["region_dilation"],
    )
    pa = pipelines.to_model_range_np(pairs["images_a"])
    pb = pipelines.to_model_range_np(pairs["images_b"])
    part_pairs[part] = {**pairs, "similarity": verify(pa, pb)}
    part_maps[part] = saliency_fn(pairs["images_a"], pairs["images_b"], rng)
  results = pointing_games(
    part_maps, {p: v["region"] for p, v in part_pairs.items()}, settings["methods"]
  )
  results["dissimilarity_mean"] = {
    p: float(np.mean(1.0 - v["similarity"])) for p, v in part_pairs.items()
  }
  results["_part_pairs"] = part_pairs
  results["_part_maps"] = part_maps
  return results
