"""Tests for jfr.eval.metrics.

Every metric is compared with a brute-force reference written here from the
definition (Python loops over every candidate threshold / every probe), on
random data with and without ties, plus hand-worked cases and every
degenerate input.
"""

import math

import numpy as np
import pytest

from jfr.eval import metrics
from jfr.eval.metrics import MetricWarning

SEEDS = [0, 1, 2]
DECIMALS = [None, 1]  # None: continuous scores; 1: heavy ties.
FARS = [0.0, 1e-3, 0.01, 0.05, 0.1, 0.29, 0.5, 0.9, 1.0]


def _pairs(seed, decimals, n=160):
  rng = np.random.default_rng(seed)
  labels = rng.random(n) < 0.4
  scores = rng.normal(size=n) + 1.2 * labels
  if decimals is not None:
    scores = np.round(scores, decimals)
  return scores, labels


def _identification(seed, decimals, multi_entry=False):
  """Similarity [P, G]; probes 0..24, gallery ids 0..14 (some non-mated)."""
  rng = np.random.default_rng(100 + seed)
  gallery = np.repeat(np.arange(15), 2) if multi_entry else np.arange(15)
  probes = rng.integers(0, 25, size=70)
  sim = rng.normal(size=(probes.size, gallery.size))
  sim += 1.5 * (probes[:, None] == gallery[None, :])
  if decimals is not None:
    sim = np.round(sim, decimals)
  return sim, probes, gallery


# ----------------------------------------------------------------------------
# Brute-force references (loops, written from the definitions)
# ----------------------------------------------------------------------------


def ref_roc(scores, labels):
  pos = [s for s, l in zip(scores, labels) if l]
  neg = [s for s, l in zip(scores, labels) if not l]
  fpr, tpr, thr = [0.0], [0.0], [math.inf]
  for t in sorted(set(scores.tolist()), reverse=True):
    fpr.append(sum(s >= t for s in neg) / len(neg))
    tpr.append(sum(s >= t for s in pos) / len(pos))
    thr.append(t)
  return np.array(fpr), np.array(tpr), np.array(thr)


def ref_tar_at_far(scores, labels, far):
  """Best TAR over all thresholds t (accept s >= t) with FAR(t) <= far."""
  scores, labels = np.asarray(scores), np.asarray(labels, dtype=bool)
  pos, neg = scores[labels], scores[~labels]
  best = 0.0
  for t in list(scores) + [math.inf]:
    if np.mean(neg >= t) <= far:
      best = max(best, np.mean(pos >= t))
  return best


def ref_tar_at_far_strict(scores, labels, far):
  """Same figure in the 'strictly above an impostor score tau' form."""
  pos = [s for s, l in zip(scores, labels) if l]
  neg = [s for s, l in zip(scores, labels) if not l]
  best = 0.0
  for tau in neg + [-math.inf]:
    if sum(s > tau for s in neg) / len(neg) <= far:
      best = max(best, sum(s > tau for s in pos) / len(pos))
  return best


def ref_eer(scores, labels):
  fpr, tpr, _ = ref_roc(scores, labels)
  fnr = [1.0 - t for t in tpr]
  for i in range(len(fpr)):
    if fnr[i] == fpr[i]:
      return fpr[i]
    if fnr[i] < fpr[i]:
      # Intersection of segment (fpr, fnr)[i-1] -> [i] with fnr = fpr.
      x0, y0, x1, y1 = fpr[i - 1], fnr[i - 1], fpr[i], fnr[i]
      a = (y0 - x0) / ((y0 - x0) - (y1 - x1))
      return x0 + a * (x1 - x0)
  raise AssertionError("no crossing")


def ref_mann_whitney(scores, labels):
  pos = [s for s, l in zip(scores, labels) if l]
  neg = [s for s, l in zip(scores, labels) if not l]
  wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
  return wins / (len(pos) * len(neg))


def ref_kfold(scores, labels, fold):
  accuracies = []
  for k in sorted(set(fold.tolist())):
    train = [(s, l) for s, l, f in zip(scores, labels, fold) if f != k]
    test = [(s, l) for s, l, f in zip(scores, labels, fold) if f == k]
    values = sorted(set(s for s, _ in train))
    candidates = [-math.inf] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [math.inf]
    best_t, best_acc = None, -1.0
    for t in candidates:
      acc = sum((s >= t) == bool(l) for s, l in train) / len(train)
      if acc > best_acc:
        best_t, best_acc = t, acc
    accuracies.append(sum((s >= best_t) == bool(l) for s, l in test) / len(test))
  return float(np.mean(accuracies)), float(np.std(accuracies))


def ref_probe_ranks(sim, probes, gallery):
  """Per mated probe: (best mated score, pessimistic rank); None if unmated."""
  out = []
  for i, p in enumerate(probes):
    mated = [j for j, g in enumerate(gallery) if g == p]
    if not mated:
      out.append(None)
      continue
    # Sort gallery by score, non-mated entries first among ties.
    order = sorted(range(len(gallery)), key=lambda j: (-sim[i, j], gallery[j] == p))
    rank = next(r for r, j in enumerate(order, 1) if gallery[j] == p)
    out.append((max(sim[i, j] for j in mated), rank))
  return out


def ref_cmc(sim, probes, gallery, ranks):
  info = [x for x in ref_probe_ranks(sim, probes, gallery) if x is not None]
  return np.array([sum(r <= k for _, r in info) / len(info) for k in ranks])


def ref_tpir(sim, probes, gallery, fpir, rank):
  info = ref_probe_ranks(sim, probes, gallery)
  nonmated = [max(sim[i]) for i, x in enumerate(info) if x is None]
  mated = [x for x in info if x is not None]
  best = 0.0
  for t in nonmated + [s for s, _ in mated] + [math.inf]:
    if sum(s >= t for s in nonmated) / len(nonmated) <= fpir:
      hits = sum(s >= t and r <= rank for s, r in mated)
      best = max(best, hits / len(mated))
  return best


# ----------------------------------------------------------------------------
# roc / tar_at_far / eer / auc
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", DECIMALS)
def test_roc_matches_reference(seed, decimals):
  scores, labels = _pairs(seed, decimals)
  fpr, tpr, thr = metrics.roc(scores, labels)
  rfpr, rtpr, rthr = ref_roc(scores, labels)
  np.testing.assert_allclose(fpr, rfpr, rtol=0, atol=1e-12)
  np.testing.assert_allclose(tpr, rtpr, rtol=0, atol=1e-12)
  np.testing.assert_array_equal(thr, rthr)
  assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)


def test_roc_hand_case_with_ties():
  fpr, tpr, thr = metrics.roc([0.5, 0.9, 0.5, 0.1], [1, 1, 0, 0])
  np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
  np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])  # tie: one diagonal step
  np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.5, 0.1])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", DECIMALS)
def test_tar_at_far_matches_reference(seed, decimals):
  scores, labels = _pairs(seed, decimals)
  with pytest.warns(MetricWarning, match="resolution"):  # FAR 0 and 1e-3
    got = metrics.tar_at_far(scores, labels, FARS)
  want = [ref_tar_at_far(scores, labels, f) for f in FARS]
  strict = [ref_tar_at_far_strict(scores, labels, f) for f in FARS]
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
  np.testing.assert_allclose(got, strict, rtol=0, atol=1e-12)


def test_four_pair_hand_case():
  scores, labels = [0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]
  # ROC: (0,0) (0,.5) (.5,.5) (.5,1) (1,1).
  np.testing.assert_allclose(metrics.tar_at_far(scores, labels, [0.5, 0.99]), [1.0, 1.0])
  assert metrics.eer(scores, labels) == pytest.approx(0.5)
  assert metrics.auc(*metrics.roc(scores, labels)[:2]) == pytest.approx(0.75)


def test_tar_at_far_never_splits_ties():
  # All scores tied: the only operating points are (0,0) and (1,1).
  scores, labels = [0.5] * 4, [1, 1, 0, 0]
  np.testing.assert_allclose(metrics.tar_at_far(scores, labels, [0.5, 1.0]), [0.0, 1.0])


def test_tar_at_far_scalar_target():
  got = metrics.tar_at_far([0.9, 0.1, 0.2], [1, 0, 0], 0.5)
  np.testing.assert_allclose(got, [1.0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", DECIMALS)
def test_eer_matches_reference(seed, decimals):
  scores, labels = _pairs(seed, decimals)
  assert metrics.eer(scores, labels) == pytest.approx(ref_eer(scores, labels), abs=1e-12)


def test_eer_hand_cases():
  assert metrics.eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
  assert metrics.eer([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 1.0
  # Interpolated: (fpr, fnr) goes (0, .5) -> (.5, 0) through a tie.
  assert metrics.eer([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", DECIMALS)
def test_auc_of_roc_is_mann_whitney(seed, decimals):
  scores, labels = _pairs(seed, decimals)
  fpr, tpr, _ = metrics.roc(scores, labels)
  assert metrics.auc(fpr, tpr) == pytest.approx(ref_mann_whitney(scores, labels), abs=1e-12)


def test_auc_hand_cases():
  fpr, tpr, _ = metrics.roc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
  assert metrics.auc(fpr, tpr) == 1.0
  assert metrics.auc([0, 1, 3], [1, 1, 3]) == pytest.approx(1 + 4)
  assert metrics.auc([3, 1, 0], [3, 1, 1]) == pytest.approx(5)  # decreasing


# ----------------------------------------------------------------------------
# k-fold accuracy
# ----------------------------------------------------------------------------


def test_kfold_hand_case():
  # Fold 0 tested with t = 0.35 (train acc 2/3, first of the two maxima):
  # all 3 right. Fold 1 tested with t = 0.3: 0.7 (impostor) accepted -> 2/3.
  scores = [0.9, 0.4, 0.2, 0.6, 0.7, 0.1]
  labels = [1, 1, 0, 1, 0, 0]
  mean, std = metrics.verification_accuracy_kfold(scores, labels, folds=2)
  assert mean == pytest.approx(5 / 6)
  assert std == pytest.approx(1 / 6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", DECIMALS)
def test_kfold_matches_reference(seed, decimals):
  scores, labels = _pairs(seed, decimals, n=123)  # uneven fold sizes
  fold = np.repeat(np.arange(10), [13, 13, 13] + [12] * 7)
  got = metrics.verification_accuracy_kfold(scores, labels, folds=10)
  np.testing.assert_allclose(got, ref_kfold(scores, labels, fold), atol=1e-12)


def test_kfold_explicit_fold_ids_equal_reordering():
  scores, labels = _pairs(3, 1, n=100)
  fold_ids = np.random.default_rng(0).integers(0, 5, size=100)
  order = np.argsort(fold_ids, kind="stable")
  # fold sizes must match contiguous blocks for the reordering to agree.
  sizes = np.bincount(fold_ids)
  explicit = metrics.verification_accuracy_kfold(scores, labels, folds=5, fold_ids=fold_ids)
  blocks = metrics.verification_accuracy_kfold(
    scores[order], labels[order], folds=5, fold_ids=np.repeat(np.arange(5), sizes)
  )
  np.testing.assert_allclose(explicit, blocks)
  np.testing.assert_allclose(explicit, ref_kfold(scores, labels, fold_ids))


# ----------------------------------------------------------------------------
# Identification
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", DECIMALS)
@pytest.mark.parametrize("multi_entry", [False, True])
def test_cmc_matches_reference(seed, decimals, multi_entry):
  sim, probes, gallery = _identification(seed, decimals, multi_entry)
  ranks = [1, 2, 5, gallery.size]
  with pytest.warns(MetricWarning, match="no mated gallery entry"):
    got = metrics.cmc(sim, probes, gallery, ranks)
  np.testing.assert_allclose(got, ref_cmc(sim, probes, gallery, ranks), atol=1e-12)
  assert got[-1] == 1.0


def test_cmc_hand_case_pessimistic_ties():
  sim = np.array(
    [
      [0.9, 0.1, 0.3],  # mate first -> rank 1
      [0.2, 0.5, 0.5],  # tie with a non-mate -> rank 2
      [0.7, 0.8, 0.1],
    ]
  )  # two non-mates above -> rank 3
  got = metrics.cmc(sim, [0, 1, 2], [0, 1, 2], [1, 2, 3])
  np.testing.assert_allclose(got, [1 / 3, 2 / 3, 1.0])


def test_string_identity_labels():
  sim = np.array([[0.9, 0.1], [0.8, 0.7]])
  got = metrics.cmc(sim, ["ann", "bob"], ["ann", "bob"], [1, 2])
  np.testing.assert_allclose(got, [0.5, 1.0])


def test_cmc_multi_entry_gallery_ranks_entries():
  sim = np.array([[0.9, 0.8, 0.5, 0.4]])
  gallery = [7, 7, 3, 4]
  # Probe 7: its best mated entry (0.9) is first.
  np.testing.assert_allclose(metrics.cmc(sim, [7], gallery, 1), [1.0])
  # Probe 3: both entries of identity 7 are ahead, counted separately.
  np.testing.assert_allclose(metrics.cmc(sim, [3], gallery, [1, 2, 3]), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", DECIMALS)
@pytest.mark.parametrize("rank", [1, 3])
def test_tpir_matches_reference(seed, decimals, rank):
  sim, probes, gallery = _identification(seed, decimals)
  fpirs = [0.0, 0.01, 0.1, 0.3, 1.0]
  with pytest.warns(MetricWarning, match="resolution"):
    got = metrics.tpir_at_fpir(sim, probes, gallery, fpirs, rank=rank)
  want = [ref_tpir(sim, probes, gallery, f, rank) for f in fpirs]
  np.testing.assert_allclose(got, want, atol=1e-12)


def test_tpir_hand_case():
  sim = np.array(
    [
      [0.9, 0.1, 0.3],  # mated, rank 1, score 0.9
      [0.2, 0.6, 0.5],  # mated, rank 1, score 0.6
      [0.7, 0.8, 0.1],  # mated, rank 3
      [0.3, 0.2, 0.1],  # non-mated, max 0.3
      [0.1, 0.7, 0.2],
    ]
  )  # non-mated, max 0.7
  probes, gallery = [0, 1, 2, 8, 9], [0, 1, 2]
  # FPIR 0.5: threshold just above 0.3 -> hits 0.9 and 0.6.
  # FPIR 0.49: threshold above 0.7 -> only 0.9.
  np.testing.assert_allclose(
    metrics.tpir_at_fpir(sim, probes, gallery, [0.5, 0.6, 1.0]), [2 / 3, 2 / 3, 2 / 3]
  )
  with pytest.warns(MetricWarning, match="resolution"):
    np.testing.assert_allclose(metrics.tpir_at_fpir(sim, probes, gallery, 0.49), [1 / 3])
  np.testing.assert_allclose(metrics.tpir_at_fpir(sim, probes, gallery, 1.0, rank=3), [1.0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", DECIMALS)
def test_identification_tar_at_far_matches_reference(seed, decimals):
  sim, probes, gallery = _identification(seed, decimals, multi_entry=True)
  scores, labels = [], []
  for i, p in enumerate(probes):
    for j, g in enumerate(gallery):
      scores.append(sim[i, j])
      labels.append(p == g)
  fars = [1e-3, 0.01, 0.1]
  got = metrics.identification_tar_at_far(sim, probes, gallery, fars)
  want = [ref_tar_at_far(np.array(scores), labels, f) for f in fars]
  np.testing.assert_allclose(got, want, atol=1e-12)


# ----------------------------------------------------------------------------
# Degenerate inputs: a warning and the documented value
# ----------------------------------------------------------------------------


def test_one_class_only():
  scores = [0.3, 0.2, 0.9]
  with pytest.warns(MetricWarning, match="no genuine"):
    fpr, tpr, _ = metrics.roc(scores, [0, 0, 0])
  assert np.isnan(tpr).all() and fpr[-1] == 1.0
  with pytest.warns(MetricWarning, match="no impostor"):
    fpr, tpr, _ = metrics.roc(scores, [1, 1, 1])
  assert np.isnan(fpr).all() and tpr[-1] == 1.0
  for labels in ([0, 0, 0], [1, 1, 1]):
    with pytest.warns(MetricWarning, match="undefined"):
      assert np.isnan(metrics.tar_at_far(scores, labels, [0.1])).all()
    with pytest.warns(MetricWarning, match="undefined"):
      assert math.isnan(metrics.eer(scores, labels))
  with pytest.warns(MetricWarning, match="NaN"):
    assert math.isnan(metrics.auc([0.0, np.nan], [0.0, 1.0]))


def test_far_below_resolution_gives_zero_false_accept_point():
  scores = [0.95, 0.9, 0.8, 0.7, 0.85, 0.1]
  labels = [1, 1, 1, 1, 0, 0]
  # 2 impostors: FAR 0.1 < 1/2 -> threshold above 0.85 -> TAR 2/4.
  with pytest.warns(MetricWarning, match="resolution 1/2"):
    np.testing.assert_allclose(metrics.tar_at_far(scores, labels, [0.0, 0.1]), [0.5, 0.5])


def test_nan_scores_are_lowest_with_warning():
  scores, labels = _pairs(4, 1, n=60)
  with_nan = scores.copy()
  with_nan[[3, 10, 20]] = np.nan
  lowest = np.where(np.isnan(with_nan), scores.min() - 10, with_nan)
  with pytest.warns(MetricWarning, match="3 of 60 scores are NaN"):
    got_roc = metrics.roc(with_nan, labels)
  want_roc = metrics.roc(lowest, labels)
  for got, want in zip(got_roc[:2], want_roc[:2]):
    np.testing.assert_allclose(got, want)
  assert got_roc[2][-1] == -np.inf
  with pytest.warns(MetricWarning, match="NaN"):
    got = metrics.tar_at_far(with_nan, labels, [0.1, 0.5])
  np.testing.assert_allclose(got, metrics.tar_at_far(lowest, labels, [0.1, 0.5]))
  with pytest.warns(MetricWarning, match="NaN"):
    assert metrics.eer(with_nan, labels) == metrics.eer(lowest, labels)


def test_kfold_nan_scores_never_accepted():
  # Training folds put the threshold at -inf (accept all) for fold 0;
  # the NaN genuine pair there must still be rejected.
  scores = [np.nan, 0.5, 0.6, 0.7]
  labels = [1, 1, 1, 1]
  with pytest.warns(MetricWarning, match="NaN"):
    mean, _ = metrics.verification_accuracy_kfold(scores, labels, folds=2)
  assert mean == pytest.approx(0.75)


def test_identification_degenerate():
  sim = np.array([[0.9, 0.1], [0.2, 0.8]])
  with pytest.warns(MetricWarning, match="no probe has a mated"):
    assert np.isnan(metrics.cmc(sim, [5, 6], [0, 1], [1])).all()
  with pytest.warns(MetricWarning, match="0 non-mated"):
    assert np.isnan(metrics.tpir_at_fpir(sim, [0, 1], [0, 1], 0.1)).all()
  with pytest.warns(MetricWarning, match="0 mated"):
    assert np.isnan(metrics.tpir_at_fpir(sim, [5, 6], [0, 1], 0.1)).all()
  with pytest.warns(MetricWarning, match="undefined"):
    assert np.isnan(metrics.identification_tar_at_far(sim, [5, 6], [0, 1], 0.1)).all()
  with pytest.warns(MetricWarning, match="1 of 2 scores are NaN|NaN"):
    got = metrics.cmc(np.array([[np.nan, 0.3]]), [0], [0, 1], [1, 2])
  np.testing.assert_allclose(got, [0.0, 1.0])


# ----------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
  "call, name",
  [
    (lambda: metrics.roc([0.1, 0.2], [1]), "labels"),
    (lambda: metrics.roc([], []), "scores"),
    (lambda: metrics.roc([[0.1, 0.2]], [1, 0]), "scores"),
    (lambda: metrics.roc([0.1, np.inf], [1, 0]), "finite"),
    (lambda: metrics.roc([0.1, 0.2], [1, 2]), "labels"),
    (lambda: metrics.tar_at_far([0.1, 0.2], [1, 0], [1.5]), "fars"),
    (lambda: metrics.tar_at_far([0.1, 0.2], [1, 0], []), "fars"),
    (lambda: metrics.tar_at_far([0.1, 0.2], [1, 0], [[0.1]]), "fars"),
    (lambda: metrics.eer([0.1, 0.2], [1, 0, 1]), "labels"),
    (lambda: metrics.auc([0.0], [1.0]), "x"),
    (lambda: metrics.auc([0.0, 1.0], [1.0]), "y"),
    (lambda: metrics.auc([0.0, 1.0, 0.5], [1.0, 1.0, 1.0]), "monotone"),
    (lambda: metrics.verification_accuracy_kfold([0.1] * 4, [1, 0] * 2, folds=1), "folds"),
    (lambda: metrics.verification_accuracy_kfold([0.1] * 4, [1, 0] * 2, folds=5), "folds"),
    (
      lambda: metrics.verification_accuracy_kfold(
        [0.1] * 4, [1, 0] * 2, folds=2, fold_ids=[0, 1, 2, 2]
      ),
      "fold_ids",
    ),
    (
      lambda: metrics.verification_accuracy_kfold([0.1] * 4, [1, 0] * 2, folds=2, fold_ids=[0, 1]),
      "fold_ids",
    ),
    (lambda: metrics.cmc(np.zeros((2, 3)), [0, 1], [0, 1, 2], [0]), "ranks"),
    (lambda: metrics.cmc(np.zeros((2, 3)), [0, 1], [0, 1, 2], [4]), "ranks"),
    (lambda: metrics.cmc(np.zeros((2, 3)), [0, 1], [0, 1, 2], [1.5]), "ranks"),
    (lambda: metrics.cmc(np.zeros((2, 3)), [0], [0, 1, 2], [1]), "probe_labels"),
    (lambda: metrics.cmc(np.zeros((2, 3)), [0, 1], [0, 1], [1]), "gallery_labels"),
    (lambda: metrics.cmc(np.zeros(3), [0, 1, 2], [0], [1]), "similarity"),
    (lambda: metrics.cmc(np.zeros((2, 2)), ["a", "b"], [1, 2], [1]), "gallery_labels"),
    (lambda: metrics.cmc(np.zeros((0, 3)), [], [0, 1, 2], [1]), "similarity"),
    (lambda: metrics.tpir_at_fpir(np.zeros((2, 3)), [0, 9], [0, 1, 2], 0.1, rank=0), "rank"),
    (lambda: metrics.tpir_at_fpir(np.zeros((2, 3)), [0, 9], [0, 1, 2], 0.1, rank=[1, 2]), "rank"),
    (lambda: metrics.tpir_at_fpir(np.zeros((2, 3)), [0, 9], [0, 1, 2], -0.1), "fpirs"),
    (lambda: metrics.identification_tar_at_far(np.zeros((2, 3)), [0, 1], [0, 1, 2], 2.0), "fars"),
  ],
)
def test_bad_input_raises_value_error_naming_argument(call, name):
  with pytest.raises(ValueError, match=name):
    call()
