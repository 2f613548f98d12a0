"""The hiding game as an evaluator (Sec. IV-B, Fig. 4, Table II of Xu, Lu, Ebrahimi,
"Discriminative Deep Feature Visualization for Explainable Face Recognition").

Evaluator ``hiding_game`` (:func:`evaluate`): ``num_pairs`` test pairs of
``settings['split']`` (half genuine, half impostor; drawn with ``seed + 1``, one fold),
each method's map of image A with respect to B, then for every method the
least important pixels of A are blurred (:func:`jfr.explain.hiding_game.hiding_game`) on all
pairs, and per pair kind at the all-pairs threshold.

Settings: ``split``, ``num_pairs``, ``fractions``, ``blur_sigma`` (pixels), ``methods``
(names of the maps to play, keys of what the model's ``saliency`` returns).

Model extras it needs (:class:`jfr.eval.embedding.EvalModel`):

* ``verify(images_a, images_b) -> scores [P]``: float32 ``[P, H, W, 3]`` in [-1, 1] (the
  hidden images are blurred, so not uint8), higher = more alike;
* ``saliency(images_a, images_b, rng) -> {name: [P, H, W] float32}``: uint8 pairs, an
  ``np.random.Generator`` for maps that draw randomness (a random control).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval import protocols
from jfr.eval.still_images import check_settings
from jfr.explain import hiding_game as hiding
from jfr.report import figures
from jfr.report import intervals

NEEDS = ("verify", "saliency")
SETTINGS = ("split", "num_pairs", "fractions", "blur_sigma", "methods")


def hiding_games(
  verify: Callable[[np.ndarray, np.ndarray], np.ndarray],
  images_a: np.ndarray,
  images_b: np.ndarray,
  same: np.ndarray,
  maps: Mapping[str, np.ndarray],
  methods: Sequence[str],
  fractions: Sequence[float],
  blur_sigma: float,
) -> dict[str, dict]:
  """The hiding game of each of ``methods`` on all pairs, then per pair kind
  (``genuine``/``impostor``) at the all-pairs threshold.

  Args:
    verify: see the module docstring.
    images_a, images_b: ``[P, H, W, 3]`` float32 pairs (model range).
    same: ``[P]`` bool, True for genuine pairs.
    maps: name -> ``[P, H, W]`` saliency of A.
    methods: the names of ``maps`` to play.
    fractions, blur_sigma: see :func:`jfr.explain.hiding_game.hiding_game`.

  Returns:
    name -> the game's results plus ``genuine``/``impostor`` ``{accuracy, auc}``, each
    ``auc`` with ``auc_ci95`` (95 % bootstrap over the pairs of each pair's area under its
    correct(p) curve, seed 0); ``accuracy_ci95`` ``[F][lo, hi]``: the interval of the
    accuracy at each fraction (the same bootstrap over the pairs, of each pair's correct(p));
    in memory ``_pair_auc`` (name -> ``[P]``) and ``_same``
    ``[P]`` for paired comparisons of methods (same pairs).
  """
  missing = [m for m in methods if m not in maps]
  if missing:
    raise ValueError(f"methods: {missing} are not maps of the model; maps: {sorted(maps)}")
  results, pair_auc = {}, {}
  for name in methods:
    res = hiding.hiding_game(
      verify,
      images_a,
      images_b,
      same,
      maps[name],
      fractions=fractions,
      blur_sigma=blur_sigma,
      per_pair=True,
    )
    pair_auc[name] = res.pop("pair_auc")
    pair_correct = res.pop("pair_correct")
    if len(pair_auc[name]) >= 2:
      res["auc_ci95"] = intervals.mean_interval(pair_auc[name]).as_list()
      res["accuracy_ci95"] = [intervals.mean_interval(c).as_list() for c in pair_correct]
    for kind, sel in (("genuine", same), ("impostor", ~same)):
      sub = hiding.hiding_game(
        verify,
        images_a[sel],
        images_b[sel],
        same[sel],
        maps[name][sel],
        fractions=fractions,
        blur_sigma=blur_sigma,
        threshold=res["threshold"],
      )
      res[kind] = {"accuracy": sub["accuracy"], "auc": sub["auc"]}
      if sel.sum() >= 2:
        res[kind]["auc_ci95"] = intervals.mean_interval(pair_auc[name][sel]).as_list()
    results[name] = res
  results["_pair_auc"] = pair_auc
  results["_same"] = np.asarray(same, bool)
  return results


def curves(results: Mapping[str, dict], names: Mapping[str, str], title: str):
  """Accuracy against the hidden fraction, one line per method (``names``: display names)."""
  return figures.curves_figure(
    {
      names.get(k, k): (r["fractions"], r["accuracy"])
      for k, r in results.items()
      if not k.startswith("_")
    },
    "fraction of pixels of A blurred (least important first)",
    "verification accuracy",
    title,
  )


def evaluate(
  model: embedding.EvalModel,
  context: Any,
  settings: Mapping[str, Any],
  *,
  seed: int,
  rng: np.random.Generator | None = None,
) -> dict[str, dict]:
  """Evaluator ``hiding_game`` (module docstring); returns :func:`hiding_games`' results.

  ``rng`` (default ``np.random.default_rng(seed + 1)``) is passed to the model's
  ``saliency``; a method that runs several saliency experiments may thread one generator
  through them.
  """
  check_settings(settings, SETTINGS, "hiding_game")
  model.require(NEEDS, "hiding_game")
  rng = np.random.default_rng(seed + 1) if rng is None else rng
  test = pipelines.load_arrays(context.builder, settings["split"], ("image", "label"))
  a, b, same = protocols.verification_pairs(
    test["label"], settings["num_pairs"], seed=seed + 1, folds=1
  )
  maps = model.extras["saliency"](test["image"][a], test["image"][b], rng)
  return hiding_games(
    model.extras["verify"],
    pipelines.to_model_range_np(test["image"][a]),
    pipelines.to_model_range_np(test["image"][b]),
    same,
    maps,
    settings["methods"],
    settings["fractions"],
    settings["blur_sigma"],
  )
