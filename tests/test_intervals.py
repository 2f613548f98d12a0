"""Tests of jfr.report.intervals against independent NumPy renderings."""

import numpy as np
import pytest

from jfr.report import intervals


def _numpy_cluster_bootstrap(values, groups, num_resamples, seed):
  """An independent loop: draw G group labels, concatenate their items, take the mean."""
  labels = np.unique(groups)
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, labels.size, size=(num_resamples, labels.size))
  means = []
  for row in draws:
    picked = np.concatenate([values[groups == labels[g]] for g in row])
    means.append(picked.mean())
  return np.quantile(means, [0.025, 0.975])


def test_mean_matches_normal_approximation_on_large_n():
  rng = np.random.default_rng(1)
  x = rng.normal(3.0, 2.0, size=4000)
  iv = intervals.mean_interval(x, num_resamples=2000, seed=3)
  half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)
  assert iv.value == pytest.approx(x.mean())
  assert iv.lo == pytest.approx(x.mean() - half, abs=0.15 * half)
  assert iv.hi == pytest.approx(x.mean() + half, abs=0.15 * half)


def test_vectorized_and_loop_statistics_agree_with_numpy_cluster_bootstrap():
  rng = np.random.default_rng(2)
  groups = rng.integers(0, 30, size=500)
  values = rng.normal(size=500) + 0.3 * groups / 30
  expected = _numpy_cluster_bootstrap(values, groups, 300, seed=5)
  vec = intervals.mean_interval(values, groups, num_resamples=300, seed=5)
  loop = intervals.bootstrap(lambda idx: values[idx].mean(), groups, num_resamples=300, seed=5)
  np.testing.assert_allclose([vec.lo, vec.hi], expected, rtol=1e-9)
  np.testing.assert_allclose([loop.lo, loop.hi], expected, rtol=1e-9)
  assert vec.value == pytest.approx(values.mean()) and loop.value == pytest.approx(values.mean())


def test_cluster_interval_is_wider_than_item_interval_for_correlated_groups():
  rng = np.random.default_rng(3)
  groups = np.repeat(np.arange(20), 50)
  values = rng.normal(size=20)[groups] + 0.1 * rng.normal(size=1000)
  by_group = intervals.mean_interval(values, groups, seed=0)
  by_item = intervals.mean_interval(values, seed=0)
  assert (by_group.hi - by_group.lo) > 3 * (by_item.hi - by_item.lo)


def test_paired_known_difference_excludes_zero_and_no_difference_spans_zero():
  rng = np.random.default_rng(4)
  groups = np.repeat(np.arange(40), 10)
  base = rng.normal(size=400) + rng.normal(size=40)[groups]
  better = base + 0.2 + 0.1 * rng.normal(size=400)
  p = intervals.paired_mean_difference(better, base, groups, seed=0)
  assert p.diff.lo > 0 and p.diff.value == pytest.approx(better.mean() - base.mean())
  # pairing: the shared group effect cancels, so the diff's interval is much narrower than a's
  assert (p.diff.hi - p.diff.lo) < 0.3 * (p.a.hi - p.a.lo)
  same = base + 0.1 * rng.normal(size=400)
  q = intervals.paired_mean_difference(same, base, groups, seed=0)
  assert q.diff.lo < 0 < q.diff.hi


def test_paired_loop_statistics_use_the_same_resamples():
  x = np.arange(50, dtype=float)
  p = intervals.paired_difference(
    lambda i: x[i].mean() + 1.0, lambda i: x[i].mean(), 50, num_resamples=200
  )
  assert p.diff.lo == pytest.approx(1.0) and p.diff.hi == pytest.approx(1.0)


def test_deterministic_by_seed():
  x = np.random.default_rng(0).normal(size=100)
  a = intervals.mean_interval(x, seed=7)
  assert a == intervals.mean_interval(x, seed=7)
  assert a != intervals.mean_interval(x, seed=8)
  np.testing.assert_array_equal(
    intervals.resample_counts(9, 5, 1), intervals.resample_counts(9, 5, 1)
  )
  assert intervals.resample_counts(9, 5, 1).sum(axis=1).tolist() == [9.0] * 5


def test_nan_resamples_are_ignored_and_all_nan_gives_nan():
  iv = intervals.bootstrap(lambda i: np.nan, 10, num_resamples=20)
  assert np.isnan(iv.lo) and np.isnan(iv.hi)


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"num_resamples": 1}, "num_resamples"),
    ({"level": 1.0}, "level"),
    ({"level": 0.0}, "level"),
  ],
)
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    intervals.bootstrap(lambda i: 0.0, 10, **kwargs)


def test_bad_groups_and_values():
  with pytest.raises(ValueError, match="groups"):
    intervals.bootstrap(lambda i: 0.0, [1, 1, 1])
  with pytest.raises(ValueError, match="groups"):
    intervals.bootstrap(lambda i: 0.0, np.zeros((2, 2)))
  with pytest.raises(ValueError, match="values_b"):
    intervals.paired_mean_difference(np.zeros(3), np.zeros(4))
  with pytest.raises(ValueError, match="statistic"):
    intervals.bootstrap(lambda c: np.zeros(3), 5, vectorized=True, num_resamples=10)
  with pytest.raises(ValueError, match="paper"):
    intervals.comparison(
      paper="x", claim="", metric="", a="", b="", paired=None, resampled="", num_resamples=1
    )


def test_comparison_orientation_and_contract_fields():
  p = intervals.Paired(
    intervals.Interval(0.2, 0.1, 0.3),
    intervals.Interval(0.5, 0.4, 0.6),
    intervals.Interval(-0.3, -0.4, -0.2),
  )
  c = intervals.comparison(
    paper="interpretable",
    claim="lower spread",
    metric="d",
    a="ours",
    b="base",
    paired=p,
    resampled="identities",
    num_resamples=1000,
    higher_is_better=False,
    scale=100,
  )
  assert c["diff"] == pytest.approx(30.0) and c["ci95"] == pytest.approx([20.0, 40.0])
  assert c["value_a"] == pytest.approx(20.0) and intervals.verdict(c) == "reproduced"
  assert set(c) == {
    "paper",
    "claim",
    "metric",
    "a",
    "b",
    "value_a",
    "value_b",
    "diff",
    "ci95",
    "resampled",
    "num_resamples",
  }
  table = intervals.comparisons_table({"x": c})
  assert "30.00 [20.00, 40.00]" in table and "reproduced" in table


def test_with_ci95_and_formatting():
  row = intervals.with_ci95({"acc": 0.955}, "acc", intervals.Interval(0.955, 0.93, 0.975))
  assert row == {"acc": 0.955, "acc_ci95": [0.93, 0.975]}
  assert intervals.cell(row, "acc", lambda x: f"{100 * x:.1f}") == "95.5 [93.0, 97.5]"
  assert intervals.format_interval(0.5, None) == "0.5000"
  assert intervals.format_interval(None, [0, 1]) == ""
  assert intervals.verdict({"ci95": [-1, 1]}) == "inconclusive"
  assert intervals.verdict({"ci95": [-2, -1]}) == "not reproduced"


def test_vectorized_rank1_of_many_probes_is_fast():
  import time

  rng = np.random.default_rng(0)
  groups = rng.integers(0, 1000, size=100_000)
  correct = rng.random(100_000) < 0.8
  t = time.perf_counter()
  iv = intervals.mean_interval(correct, groups, num_resamples=1000)
  assert time.perf_counter() - t < 5.0
  assert iv.lo < iv.value < iv.hi


def test_vector_replicates_share_resamples_and_match_bootstrap():
  rng = np.random.default_rng(5)
  groups = rng.integers(0, 12, size=60)
  x = rng.normal(size=60)
  value, reps = intervals.replicates(
    lambda i: [x[i].mean(), x[i].max()], groups, num_resamples=100, seed=2
  )
  assert value.shape == (2,) and reps.shape == (100, 2)
  single = intervals.bootstrap(lambda i: x[i].mean(), groups, num_resamples=100, seed=2)
  got = intervals.interval_from(value[0], reps[:, 0])
  assert got == single
  p = intervals.paired_from(value[1], reps[:, 1], value[0], reps[:, 0])
  assert p.diff.lo >= 0  # the max is never below the mean on the same resample
  with pytest.raises(ValueError, match="reps_b"):
    intervals.paired_from(0.0, np.zeros(3), 0.0, np.zeros(4))
