"""Confidence intervals by the bootstrap over groups, and the paired comparisons of the papers.

A figure of a table (an accuracy, a rank-1 rate, a TPIR, an AUC) is a statistic of items
(pairs, probes, images) that belong to groups (identities, or a protocol's splits / folds).
The groups, not the items, are the independent units, so the interval resamples groups with
replacement (the cluster bootstrap, Efron & Tibshirani 1993, ch. 8): a resample draws ``G``
groups uniformly from the ``G`` groups, every item of a drawn group enters once per draw, the
statistic is recomputed, and the 95 % interval is the 2.5th and 97.5th percentile of the
``num_resamples`` recomputed values (the percentile interval, their Eq. 13.5).

A paired difference (``paired_difference``) recomputes both statistics on the SAME resample
each time, so its interval is that of ``statistic_a - statistic_b`` under the shared variation
(two models scored on the same pairs are compared, not two independent samples).

Two ways to give a statistic:

* ``vectorized=False`` (default): ``statistic(items) -> float`` takes the int index array
  ``[m]`` of the resample's items (an item repeated as often as its group was drawn) and is
  called once per resample; general (TPIR at an FPIR, an AUC, a k-fold accuracy).
* ``vectorized=True``: ``statistic(counts) -> [R]`` takes the float draw counts ``[R, G]`` of
  each group (column order: ``np.unique(groups)``) for all resamples at once; a mean of items
  is ``counts @ group_sums / counts @ group_sizes`` (see ``group_mean_statistic``): 1000
  resamples of a rank-1 rate in milliseconds.

Results follow the contract of the results JSON: next to a figure ``m`` its interval
``m_ci95: [lo, hi]`` (``with_ci95``), and a top-level ``comparisons`` dict of
``comparison(...)`` entries oriented so that ``diff > 0`` means the paper's claim holds.
Everything is seeded (``seed``) and pure: the same call gives the same interval.

Why one module a little over 400 lines: the resampling core, its vector-valued form
(``replicates``) and the contract helpers share one resample scheme and one seed rule; the
evaluators import them together as ``jfr.report.intervals``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

DEFAULT_RESAMPLES = 1000
PAPERS = ("fan", "templates", "attributes", "explain", "interpretable")


@dataclasses.dataclass(frozen=True)
class Interval:
  """A point estimate ``value`` with its interval ``[lo, hi]`` (NaN where undefined)."""

  value: float
  lo: float
  hi: float

  def as_list(self) -> list[float]:
    """``[lo, hi]``, the JSON form of the contract (``m_ci95``)."""
    return [float(self.lo), float(self.hi)]

  def contains(self, x: float, tol: float = 1e-9) -> bool:
    """Whether ``lo - tol <= x <= hi + tol``."""
    return bool(self.lo - tol <= x <= self.hi + tol)


class Paired(NamedTuple):
  """Intervals of ``a``, ``b`` and ``diff = a - b`` from the same resamples."""

  a: Interval
  b: Interval
  diff: Interval


def _check_common(num_resamples: int, level: float) -> None:
  if not isinstance(num_resamples, (int, np.integer)) or num_resamples < 2:
    raise ValueError(f"num_resamples: expected an int >= 2, got {num_resamples!r}")
  if not 0.0 < float(level) < 1.0:
    raise ValueError(f"level: expected a float in (0, 1), got {level!r}")


def group_index(groups: Sequence[Any] | np.ndarray | int) -> tuple[np.ndarray, int]:
  """``(inverse [n], G)``: each item's group number (order of ``np.unique``) and the count.

  Args:
    groups: ``[n]`` group labels of the items (identities, split numbers), or an int ``G``:
      ``G`` items, each its own group (the items are the groups: splits, folds).
  """
  if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool):
    if groups < 2:
      raise ValueError(f"groups: expected at least 2 groups, got {groups}")
    return np.arange(int(groups)), int(groups)
  labels = np.asarray(groups)
  if labels.ndim != 1 or labels.size == 0:
    raise ValueError(f"groups: expected a non-empty 1-D array of labels, got shape {labels.shape}")
  _, inverse = np.unique(labels, return_inverse=True)
  num = int(inverse.max()) + 1
  if num < 2:
    raise ValueError("groups: expected at least 2 distinct groups, got 1")
  return inverse.reshape(-1), num


def resample_counts(num_groups: int, num_resamples: int, seed: int) -> np.ndarray:
  """``[R, G]`` float draw counts: row r counts how often each group is drawn in resample r
  (``G`` uniform draws with replacement; each row sums to ``G``). Seeded by ``seed``."""
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, num_groups, size=(num_resamples, num_groups))
  offsets = np.arange(num_resamples)[:, None] * num_groups
  counts = np.bincount((draws + offsets).ravel(), minlength=num_resamples * num_groups)
  return counts.reshape(num_resamples, num_groups).astype(np.float64)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
  """``(lo, hi)``: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the finite
  ``samples`` (NaN, NaN when none is finite)."""
  samples = np.asarray(samples, np.float64).reshape(-1)
  finite = samples[np.isfinite(samples)]
  if finite.size == 0:
    return float("nan"), float("nan")
  alpha = (1.0 - level) / 2.0
  lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
  return float(lo), float(hi)


def _replicates(
  statistic: Callable, inverse: np.ndarray, counts: np.ndarray, vectorized: bool
) -> tuple[float, np.ndarray]:
  """The statistic on all items and on each resample (``[R]``)."""
  num_groups = counts.shape[1]
  if vectorized:
    value = np.asarray(statistic(np.ones((1, num_groups))), np.float64).reshape(-1)
    reps = np.asarray(statistic(counts), np.float64).reshape(-1)
    if value.shape != (1,) or reps.shape != (counts.shape[0],):
      raise ValueError(
        f"statistic: a vectorized statistic must map counts [R, G] to [R], got "
        f"{value.shape} for R=1 and {reps.shape} for R={counts.shape[0]}"
      )
    return float(value[0]), reps
  items = np.arange(inverse.size)
  value = float(statistic(items))
  reps = np.empty(counts.shape[0])
  for r in range(counts.shape[0]):
    reps[r] = float(statistic(np.repeat(items, counts[r, inverse].astype(np.int64))))
  return value, reps


def bootstrap(
  statistic: Callable,
  groups: Sequence[Any] | np.ndarray | int,
  *,
  num_resamples: int = DEFAULT_RESAMPLES,
  seed: int = 0,
  level: float = 0.95,
  vectorized: bool = False,
) -> Interval:
  """The percentile bootstrap interval of ``statistic`` resampling ``groups``.

  Args:
    statistic: ``items [m] -> float`` (or, with ``vectorized``, ``counts [R, G] -> [R]``);
      see the module docstring.
    groups: ``[n]`` the group label of each item, or an int ``G`` (each item its own group).
    num_resamples: ``R`` resamples.
    seed: the resampling seed.
    level: the interval's coverage (0.95).
    vectorized: the statistic's form.

  Returns:
    ``Interval(value, lo, hi)`` with ``value`` the statistic on all items.
  """
  _check_common(num_resamples, level)
  inverse, num_groups = group_index(groups)
  counts = resample_counts(num_groups, num_resamples, seed)
  value, reps = _replicates(statistic, inverse, counts, vectorized)
  return Interval(value, *percentile_interval(reps, level))


def paired_difference(
  statistic_a: Callable,
  statistic_b: Callable,
  groups: Sequence[Any] | np.ndarray | int,
  *,
  num_resamples: int = DEFAULT_RESAMPLES,
  seed: int = 0,
  level: float = 0.95,
  vectorized: bool = False,
) -> Paired:
  """Intervals of ``a``, ``b`` and of the paired difference ``a - b``, both statistics
  recomputed on the same resample of ``groups`` each time (arguments as in :func:`bootstrap`;
  both statistics read the same items)."""
  _check_common(num_resamples, level)
  inverse, num_groups = group_index(groups)
  counts = resample_counts(num_groups, num_resamples, seed)
  value_a, reps_a = _replicates(statistic_a, inverse, counts, vectorized)
  value_b, reps_b = _replicates(statistic_b, inverse, counts, vectorized)
  return Paired(
    Interval(value_a, *percentile_interval(reps_a, level)),
    Interval(value_b, *percentile_interval(reps_b, level)),
    Interval(value_a - value_b, *percentile_interval(reps_a - reps_b, level)),
  )


def replicates(
  statistic: Callable,
  groups: Sequence[Any] | np.ndarray | int,
  *,
  num_resamples: int = DEFAULT_RESAMPLES,
  seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
  """``(value [M], reps [R, M])``: a vector-valued loop statistic (``items [m] -> [M]``, e.g.
  rank-1 and each TPIR of one row) on all items and on each resample. Rows of two calls with
  the same ``groups``, ``num_resamples`` and ``seed`` share their resamples, so
  :func:`paired_from` of them is a paired difference."""
  _check_common(num_resamples, 0.5)
  inverse, num_groups = group_index(groups)
  counts = resample_counts(num_groups, num_resamples, seed)
  items = np.arange(inverse.size)
  value = np.asarray(statistic(items), np.float64).reshape(-1)
  reps = np.empty((num_resamples, value.size))
  for r in range(num_resamples):
    reps[r] = np.asarray(
      statistic(np.repeat(items, counts[r, inverse].astype(np.int64))), np.float64
    ).reshape(-1)
  return value, reps


def interval_from(value: float, reps: np.ndarray, level: float = 0.95) -> Interval:
  """``Interval(value, percentile interval of reps [R])``."""
  return Interval(float(value), *percentile_interval(reps, level))


def paired_from(
  value_a: float, reps_a: np.ndarray, value_b: float, reps_b: np.ndarray, level: float = 0.95
) -> Paired:
  """:class:`Paired` of two statistics' replicates ``[R]`` from the same resamples."""
  reps_a, reps_b = np.asarray(reps_a, np.float64), np.asarray(reps_b, np.float64)
  if reps_a.shape != reps_b.shape:
    raise ValueError(f"reps_b: expected shape {reps_a.shape} like reps_a, got {reps_b.shape}")
  return Paired(
    interval_from(value_a, reps_a, level),
    interval_from(value_b, reps_b, level),
    interval_from(value_a - value_b, reps_a - reps_b, level),
  )


def group_sums(values: np.ndarray, groups: Sequence[Any] | np.ndarray) -> np.ndarray:
  """``[G]`` the sum of ``values [n]`` in each group (order of ``np.unique(groups)``)."""
  inverse, num_groups = group_index(groups)
  values = np.asarray(values, np.float64)
  if values.shape != inverse.shape:
    raise ValueError(f"values: expected shape {inverse.shape} (one per item), got {values.shape}")
  return np.bincount(inverse, weights=values, minlength=num_groups)


def group_mean_statistic(
  values: np.ndarray, groups: Sequence[Any] | np.ndarray | int
) -> Callable[[np.ndarray], np.ndarray]:
  """A vectorized statistic ``counts [R, G] -> [R]``: the mean of the resample's items,
  ``sum_g c_g S_g / sum_g c_g n_g`` with ``S_g`` the sum and ``n_g`` the size of group g."""
  values = np.asarray(values, np.float64).reshape(-1)
  if isinstance(groups, (int, np.integer)):
    sums, sizes = values, np.ones_like(values)
    if values.size != groups:
      raise ValueError(f"values: expected {groups} values (one per group), got {values.size}")
  else:
    sums = group_sums(values, groups)
    sizes = group_sums(np.ones_like(values), groups)

  def statistic(counts: np.ndarray) -> np.ndarray:
    return (counts @ sums) / (counts @ sizes)

  return statistic


def mean_interval(
  values: np.ndarray,
  groups: Sequence[Any] | np.ndarray | None = None,
  *,
  num_resamples: int = DEFAULT_RESAMPLES,
  seed: int = 0,
  level: float = 0.95,
) -> Interval:
  """The bootstrap interval of the mean of ``values [n]`` resampling ``groups`` (default:
  each value its own group, e.g. one value per split or per fold)."""
  values = np.asarray(values, np.float64).reshape(-1)
  groups = values.size if groups is None else groups
  return bootstrap(
    group_mean_statistic(values, groups),
    groups,
    num_resamples=num_resamples,
    seed=seed,
    level=level,
    vectorized=True,
  )


def paired_mean_difference(
  values_a: np.ndarray,
  values_b: np.ndarray,
  groups: Sequence[Any] | np.ndarray | None = None,
  *,
  num_resamples: int = DEFAULT_RESAMPLES,
  seed: int = 0,
  level: float = 0.95,
) -> Paired:
  """:func:`paired_difference` of the means of two ``[n]`` arrays over the same items."""
  values_a = np.asarray(values_a, np.float64).reshape(-1)
  values_b = np.asarray(values_b, np.float64).reshape(-1)
  if values_a.shape != values_b.shape:
    raise ValueError(
      f"values_b: expected shape {values_a.shape} like values_a, got {values_b.shape}"
    )
  groups = values_a.size if groups is None else groups
  return paired_difference(
    group_mean_statistic(values_a, groups),
    group_mean_statistic(values_b, groups),
    groups,
    num_resamples=num_resamples,
    seed=seed,
    level=level,
    vectorized=True,
  )


# ------------------------------------------------------------------ results and tables


def ci95_key(key: str) -> str:
  """``'m' -> 'm_ci95'``, the contract's key of ``m``'s interval."""
  return f"{key}_ci95"


def with_ci95(row: dict, key: str, interval: Interval | Sequence[float] | None) -> dict:
  """Sets ``row[key + '_ci95'] = [lo, hi]`` (in place; also returns ``row``). ``None`` sets
  nothing. The figure ``row[key]`` itself is left as it is."""
  if interval is None:
    return row
  lo, hi = interval.as_list() if isinstance(interval, Interval) else [float(v) for v in interval]
  row[ci95_key(key)] = [lo, hi]
  return row


def comparison(
  *,
  paper: str,
  claim: str,
  metric: str,
  a: str,
  b: str,
  paired: Paired,
  resampled: str,
  num_resamples: int,
  higher_is_better: bool = True,
  scale: float = 1.0,
) -> dict:
  """One entry of the results' ``comparisons`` dict (the contract's fields).

  Args:
    paper: which paper makes the claim (one of ``PAPERS``).
    claim: one line: the paper's claim.
    metric: the figure compared, with its unit (e.g. ``'YTF-like accuracy %'``).
    a: the label of the side the paper claims better; b: the other side.
    paired: the intervals of ``a``, ``b`` and ``a - b`` (:func:`paired_difference`).
    resampled: what the bootstrap resampled (``'identities'``, ``'splits'`` ...).
    num_resamples: how many resamples.
    higher_is_better: False when the claim is that ``a`` is LOWER (an error, a spread):
      then ``diff = b - a`` and its interval flips, so ``diff > 0`` still means the claim holds.
    scale: multiplies values, diff and interval (``100`` for percent).
  """
  if paper not in PAPERS:
    raise ValueError(f"paper: expected one of {PAPERS}, got {paper!r}")
  sign = 1.0 if higher_is_better else -1.0
  lo, hi = sign * paired.diff.lo, sign * paired.diff.hi
  lo, hi = min(lo, hi), max(lo, hi)
  return {
    "paper": paper,
    "claim": claim,
    "metric": metric,
    "a": a,
    "b": b,
    "value_a": scale * float(paired.a.value),
    "value_b": scale * float(paired.b.value),
    "diff": scale * sign * float(paired.diff.value),
    "ci95": [scale * lo, scale * hi],
    "resampled": resampled,
    "num_resamples": int(num_resamples),
  }


def format_interval(
  value: float | None,
  interval: Interval | Sequence[float] | None,
  fmt: Callable[[float], str] = lambda x: f"{x:.4f}",
) -> str:
  """``'95.5 [93.0, 97.5]'``: ``fmt`` of the value and of the interval's ends (just the value
  without an interval; empty for ``None``)."""
  if value is None:
    return ""
  if interval is None:
    return fmt(value)
  lo, hi = interval.as_list() if isinstance(interval, Interval) else list(interval)
  if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
    return fmt(value)
  return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


def cell(row: Mapping[str, Any], key: str, fmt: Callable[[float], str] = lambda x: f"{x:.4f}"):
  """``format_interval(row[key], row[key + '_ci95'], fmt)`` for a results row."""
  return format_interval(row.get(key), row.get(ci95_key(key)), fmt)


def verdict(entry: Mapping[str, Any]) -> str:
  """``'reproduced'`` (lo > 0), ``'not reproduced'`` (hi < 0) or ``'inconclusive'``."""
  lo, hi = entry["ci95"]
  if lo is None or hi is None:
    return "inconclusive"
  if lo > 0:
    return "reproduced"
  if hi < 0:
    return "not reproduced"
  return "inconclusive"


def comparisons_table(comparisons: Mapping[str, Mapping[str, Any]], digits: int = 2) -> str:
  """A Markdown table of a ``comparisons`` dict: claim, metric, a, b, the oriented diff with
  its 95 % interval, and the verdict (:func:`verdict`)."""
  fmt = lambda x: f"{x:.{digits}f}"
  lines = [
    "| comparison | claim | metric | a | b | diff [95 % CI] (> 0: claim holds) | verdict |",
    "|---|---|---|---|---|---|---|",
  ]
  for name, e in comparisons.items():
    lines.append(
      f"| {name} | {e['claim']} | {e['metric']} | {e['a']} {fmt(e['value_a'])} | "
      f"{e['b']} {fmt(e['value_b'])} | {format_interval(e['diff'], e['ci95'], fmt)} | "
      f"{verdict(e)} |"
    )
  return "\n".join(lines)
