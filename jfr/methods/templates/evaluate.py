"""The template experiment: Tables I and II (min-mean matching of original, top-m masked and
random-m masked descriptors; binary masks) over the IJB-A(-like) splits of :mod:`jfr.eval.ijb`,
and the paper's qualitative claims checked on the results."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from jfr import templates
from jfr.eval import ijb
from jfr.methods.templates import report
from jfr.report import PhaseTimer
from jfr.report import intervals
from jfr.report import write_results


def _min_mean(block_size: int, a: tuple, b: tuple) -> np.ndarray:
  return np.asarray(templates.min_mean_distance(*a, *b, block_size=block_size))


def descriptor_matcher(block_size: int, m: int | None = None, random: bool = False) -> ijb.Matcher:
  """Min-mean matching of the original (m None), top-m masked (Eq. 1) or random-m
  masked descriptors."""

  def represent(desc, ids, num, key):
    if m is None:
      return desc, ids, num
    if random:
      masks = templates.random_masks(key, num, desc.shape[1], m)
    else:
      masks = templates.activation_masks(desc, ids, num, m)
    return templates.mask_descriptors(desc, ids, masks), ids, num

  return ijb.Matcher(represent, functools.partial(_min_mean, block_size))


def binary_mask_matcher(m: int) -> ijb.Matcher:
  """One binary mask of the m most active bins per template, cosine distance (Table II)."""
  return ijb.Matcher(
    lambda desc, ids, num, key: templates.activation_masks(desc, ids, num, m),
    templates.mask_distance,
  )


def clipped_ms(ms: Any, k: int, name: str) -> list[int]:
  """The distinct ``min(m, k)`` of a config's list of m, ascending (m >= 1 required)."""
  values = list(ms)
  if not values or any(
    isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1 for m in values
  ):
    raise ValueError(f"{name} must be a non-empty list of integers >= 1, got {ms!r}")
  return sorted({min(int(m), k) for m in values})


def experiment_rows(
  config: ml_collections.ConfigDict, k: int
) -> list[tuple[str, str, int, ijb.Matcher]]:
  """``(table, method, m, matcher)`` for every row of Tables I and II (``k``: bins)."""
  e = config.experiment
  rows = [("I", "original", k, descriptor_matcher(e.block_size))]
  masked = clipped_ms(e.masked_ms, k, "config.experiment.masked_ms")
  rows += [("I", "masked", m, descriptor_matcher(e.block_size, m)) for m in masked]
  rows += [("I", "random", m, descriptor_matcher(e.block_size, m, random=True)) for m in masked]
  rows += [
    ("II", "binary", m, binary_mask_matcher(m))
    for m in clipped_ms(e.binary_ms, k, "config.experiment.binary_ms")
  ]
  return rows


def targets_of(config: ml_collections.ConfigDict) -> ijb.Targets:
  p = config.protocol
  return ijb.Targets(
    tuple(p.fpirs), tuple(p.identification_fars), tuple(p.ranks), tuple(p.verification_fars)
  )


def _one_to_n(names: list[str]) -> list[str]:
  return [n for n in names if not n.startswith("1:1")]


def _gain(row: dict, base: dict, names: list[str]) -> np.ndarray:
  """Per-split mean over ``names`` of ``row - base``: ``[splits]``."""
  return np.array(
    [np.mean([a[n] - b[n] for n in names]) for a, b in zip(row["per_split"], base["per_split"])]
  )


def paper_effects(rows: list[dict], names: list[str]) -> list[dict]:
  """The paper's qualitative claims, checked on these results.

  Each entry: the claim, the measured difference (mean over splits of the per-split
  difference, averaged over the named metric group), in how many splits it has the
  claimed sign, and a verdict: "yes" (the mean has the claimed sign and so do most
  splits), "mixed" (the mean does, most splits do not) or "no". "Best m" is the m with
  the highest mean 1:N figure. Rows with m = k (clipped) are left out: masking all bins
  is the original by construction.
  """
  one_n = _one_to_n(names)
  one_one = [n for n in names if n.startswith("1:1")]
  by = {(r["method"], r["m"]): r for r in rows}
  original = next(r for r in rows if r["method"] == "original")
  score = lambda r: np.mean([r["mean"][n] for n in one_n])
  masked = [r for r in rows if r["method"] == "masked" and r["m"] < original["m"]]
  binary = [r for r in rows if r["method"] == "binary" and r["m"] < original["m"]]
  effects = []

  def add(claim, diff, sign=1.0):
    agree = int(np.sum(sign * diff > 0))
    verdict = "no" if sign * diff.mean() <= 0 else ("yes" if 2 * agree > diff.size else "mixed")
    effects.append(
      {
        "claim": claim,
        "difference": float(diff.mean()),
        "splits_with_claimed_sign": agree,
        "splits": int(diff.size),
        "verdict": verdict,
      }
    )

  if masked:
    best = max(masked, key=score)
    add(
      f"Table I: top-m masking (best m = {best['m']}) beats the original descriptors on 1:N",
      _gain(best, original, one_n),
    )
    add(
      f"Table I: the 1:N gain of masking (m = {best['m']}) exceeds its 1:1 gain",
      _gain(best, original, one_n) - _gain(best, original, one_one),
    )
    random = [(by[("random", r["m"])], r) for r in masked if ("random", r["m"]) in by]
    diff = np.mean([_gain(rnd, top, names) for rnd, top in random], axis=0)
    add(
      "Table I: random masks are worse than top-m masks of the same m (all metrics)",
      diff,
      sign=-1.0,
    )
  if binary:
    best_binary = max(binary, key=score)
    add(
      f"Table II: binary masks (best m = {best_binary['m']}) beat the original descriptors on 1:N",
      _gain(best_binary, original, one_n),
    )
    if masked:
      add(
        f"Table II vs I: binary masks (m = {best_binary['m']}) beat the best masked "
        f"descriptors (m = {best['m']}) on 1:N",
        _gain(best_binary, best, one_n),
      )
  return effects


def _split_values(row: dict, names: list[str]) -> np.ndarray:
  """``[splits]``: per split, the mean over ``names`` of the row's figures."""
  return np.array([np.mean([v[n] for n in names]) for v in row["per_split"]])


def add_intervals(rows: list[dict], names: list[str], seed: int = 0) -> None:
  """Sets ``row['mean_ci95'] = {metric: [lo, hi]}`` on every row (in place): the 95 %
  bootstrap interval of the mean over the protocol's splits, resampling splits."""
  for row in rows:
    if len(row["per_split"]) < 2:
      continue
    row["mean_ci95"] = {
      n: intervals.mean_interval(_split_values(row, [n]), seed=seed).as_list() for n in names
    }


def claim_metrics(names: list[str]) -> list[str]:
  """The 1:N figures the paper's claims are about: TPIR@FPIR, identification TAR@FAR, rank-1."""
  return [n for n in _one_to_n(names) if not n.startswith("Rank-") or n == "Rank-1"]


def comparisons(rows: list[dict], names: list[str], seed: int = 0) -> dict:
  """The paper's comparisons (contract of :mod:`jfr.report.intervals`), paired over splits:

  * ``masked_m<m>_vs_original/<metric>``: top-m masked (Eq. 1) vs original descriptors, each
    :func:`claim_metrics` figure and their mean (``1:N mean``), every m < k (Table I);
  * ``binary_m<m>_vs_original`` and ``binary_m<m>_vs_masked_m<m>`` on the 1:N mean (Table II;
    the masked row of the same m, when Table I has one);
  * ``masked_m<m>_vs_random_m<m>``: the negative control, top-m vs random-m masks of the
    same m, mean over all figures (the paper: random masks lose accuracy).
  Rows with m = k are left out (masking all bins is the original by construction).
  """
  original = next(r for r in rows if r["method"] == "original")
  if len(original["per_split"]) < 2:
    return {}
  k = original["m"]
  by = {(r["method"], r["m"]): r for r in rows}
  metrics = claim_metrics(names)
  resamples = intervals.DEFAULT_RESAMPLES
  out = {}

  def add(name, claim, metric, a_label, a, b_label, b, figures):
    paired = intervals.paired_mean_difference(
      _split_values(a, figures), _split_values(b, figures), seed=seed
    )
    out[name] = intervals.comparison(
      paper="templates",
      claim=claim,
      metric=metric,
      a=a_label,
      b=b_label,
      paired=paired,
      resampled="splits",
      num_resamples=resamples,
    )

  for (method, m), row in by.items():
    if m >= k or method == "original":
      continue
    if method == "masked":
      for metric in [*metrics, "1:N mean"]:
        figures = metrics if metric == "1:N mean" else [metric]
        add(
          f"masked_m{m}_vs_original/{metric}",
          f"Table I: top-m masked descriptors (m = {m}) beat the original ones on 1:N",
          metric,
          f"masked m={m}",
          row,
          "original",
          original,
          figures,
        )
      if ("random", m) in by:
        add(
          f"masked_m{m}_vs_random_m{m}",
          f"Table I (control): top-m masks beat random masks of the same m (m = {m})",
          "mean of all figures",
          f"masked m={m}",
          row,
          f"random m={m}",
          by[("random", m)],
          names,
        )
    elif method == "binary":
      claim = f"Table II: binary masks (m = {m}) in place of the descriptors beat the original"
      add(
        f"binary_m{m}_vs_original",
        claim,
        "1:N mean",
        f"binary m={m}",
        row,
        "original",
        original,
        metrics,
      )
      if ("masked", m) in by:
        add(
          f"binary_m{m}_vs_masked_m{m}",
          f"Table II vs I: binary masks beat the masked descriptors (m = {m})",
          "1:N mean",
          f"binary m={m}",
          row,
          f"masked m={m}",
          by[("masked", m)],
          metrics,
        )
  return out


def run_experiment(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  descriptors: np.ndarray,
  splits: list[ijb.ProtocolSplit],
  source: str,
  checkpoint: dict | None = None,
) -> dict:
  """Tables I and II on ``descriptors`` ``[N, k]`` over ``splits``; writes the outputs.

  Args:
    config: the experiment config (``experiment``, ``protocol``'s operating points).
    workdir: outputs go to ``<workdir>/eval/`` and ``<workdir>/figures/``.
    descriptors: ``[N, k]`` float, finite.
    splits: the protocol, rows indexing ``descriptors``.
    source: a description of where descriptors and splits come from, for the report.
    checkpoint: the descriptor network's checkpoint record (None for user descriptors).

  Returns:
    The results written to ``templates.json`` (plus ``plots``: the figure paths).
  """
  workdir = Path(workdir)
  descriptors = ijb.check_descriptors(descriptors, splits)
  k = descriptors.shape[1]
  targets = targets_of(config)
  names = targets.names()
  for metric in config.experiment.plot_metrics:
    if metric not in names:
      raise ValueError(
        f"config.experiment.plot_metrics: {metric!r} is not a metric; known: {names}"
      )
  base_key = jax.random.PRNGKey(config.experiment.random_seed)
  rows, notes = [], []
  timer = PhaseTimer()
  for table, method, m, matcher in experiment_rows(config, k):
    key = jax.random.fold_in(base_key, m)
    with timer.phase(f"{method} m={m}"):
      result = ijb.evaluate_splits(matcher, descriptors, splits, key, targets)
    notes += [n for n in result.pop("notes") if n not in notes]
    rows.append({"table": table, "method": method, "m": m, **result})
    logging.info("%s m=%d: %s", method, m, ", ".join(f"{n} {result['mean'][n]:.3f}" for n in names))
  if any(r["method"] == "binary" and r["m"] == k for r in rows):
    notes.append(
      f"binary masks with m = k = {k} select every bin: all templates tie "
      "(distance 0), so every figure is at its pessimistic tie value"
    )
  summary = ijb.protocol_summary(splits)
  effects = paper_effects(rows, names)
  add_intervals(rows, names)
  compared = comparisons(rows, names)
  markdown = report.markdown(source, k, summary, rows, names, effects, notes, compared)
  logging.info("\n%s", markdown)
  title = f"{source}: {{}} vs m"
  figures = {
    report.slug(metric): report.accuracy_vs_m(rows, metric, k, title.format(metric))
    for metric in config.experiment.plot_metrics
  }
  results = {
    "source": source,
    "k": k,
    "num_descriptors": int(descriptors.shape[0]),
    "protocol": summary,
    "metrics": names,
    "rows": rows,
    "effects": effects,
    "comparisons": compared,
    "notes": notes,
  }
  written = write_results(
    workdir, "templates", results, markdown=markdown, figures=figures, checkpoint=checkpoint
  )
  results["plots"] = [str(p) for key, p in written.items() if key.startswith("figure:")]
  return results
