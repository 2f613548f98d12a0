"""Tests for jfr.eval.protocols."""

import numpy as np
import pytest

from jfr.eval import protocols


def test_pooled_features_is_mean_of_unit_vectors():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(7, 5))
  ids = np.array([0, 0, 1, 2, 2, 2, 1])
  got = protocols.pooled_features(f, ids, 3)
  for t in range(3):
    u = f[ids == t] / np.linalg.norm(f[ids == t], axis=1, keepdims=True)
    m = u.mean(0)
    np.testing.assert_allclose(got[t], m / np.linalg.norm(m), rtol=1e-10)


def test_pooled_features_rejects_empty_group():
  with pytest.raises(ValueError, match="group_ids"):
    protocols.pooled_features(np.ones((2, 3)), np.array([0, 2]), 3)


def test_batched_apply_pads_and_unpads():
  calls = []

  def fn(x, y):
    calls.append(x.shape)
    return x * 2 + y

  x = np.arange(10.0)
  out = protocols.batched_apply(fn, x, np.ones(10), batch_size=4)
  np.testing.assert_allclose(out, x * 2 + 1)
  assert calls == [(4,)] * 3


def test_verification_pairs_balanced_and_valid():
  labels = np.repeat(np.arange(20), 3)
  a, b, same = protocols.verification_pairs(labels, 10, seed=0, folds=4)
  assert len(a) == 40
  np.testing.assert_array_equal(same, (labels[a] == labels[b]))
  for fold in range(4):
    assert same[fold * 10 : (fold + 1) * 10].sum() == 5
  assert np.all(a[same] != b[same])


def test_gallery_probe_split_open_set():
  labels = np.repeat(np.arange(10), 4)
  g, p = protocols.gallery_probe_split(labels, seed=1, gallery_per_identity=1, unknown_fraction=0.3)
  assert set(g).isdisjoint(p) and len(g) + len(p) == 40
  assert len(g) == 7 and len(np.unique(labels[g])) == 7
  unknown = set(labels[p]) - set(labels[g])
  assert len(unknown) == 3


def test_identification_report_perfect_features():
  labels = np.repeat(np.arange(6), 3)
  feats = np.eye(6)[labels] + 0.01 * np.random.default_rng(0).normal(size=(18, 6))
  g, p = protocols.gallery_probe_split(labels, seed=0, unknown_fraction=0.34)
  sim = protocols.cosine_similarity_matrix(feats[p], feats[g])
  rep = protocols.identification_report(sim, labels[p], labels[g], ranks=(1,), fpirs=(0.5,))
  assert rep["cmc"]["rank1"] == 1.0
  assert rep["num_mated"] < rep["num_probes"]


def test_resample_indices_even_spread():
  np.testing.assert_array_equal(protocols.resample_indices(10, 5), [1, 3, 5, 7, 9])
  np.testing.assert_array_equal(protocols.resample_indices(2, 4), [0, 0, 1, 1])


def test_video_representations_avg_and_aggregated():
  rng = np.random.default_rng(0)
  frames = rng.uniform(-1, 1, size=(3, 6, 4, 4, 3)).astype(np.float32)
  lengths = np.array([6, 4, 5])
  embed = lambda x: x.reshape(x.shape[0], -1)[:, :8]
  feats, info = protocols.video_representations(
    frames, lengths, embed_fn=embed, set_size=2, n_avg=2, batch_size=4
  )
  assert info["embedded_images"] == 12
  idx = protocols.resample_indices(4, 4)
  ref = embed(frames[1][idx])
  ref = (ref / np.linalg.norm(ref, axis=1, keepdims=True)).mean(0)
  np.testing.assert_allclose(feats[1], ref / np.linalg.norm(ref), atol=1e-6)
  first = lambda sets, mask: sets[:, 0]
  feats2, info2 = protocols.video_representations(
    frames, lengths, embed_fn=embed, set_size=2, n_avg=2, aggregate_fn=first, batch_size=4
  )
  assert info2["embedded_images"] == 6
  ref2 = embed(frames[1][idx[::2]])
  ref2 = (ref2 / np.linalg.norm(ref2, axis=1, keepdims=True)).mean(0)
  np.testing.assert_allclose(feats2[1], ref2 / np.linalg.norm(ref2), atol=1e-6)


def test_cmc_with_distractors_never_improves():
  rng = np.random.default_rng(0)
  g = rng.normal(size=(10, 8))
  probes = g + 0.8 * rng.normal(size=(10, 8))
  out = protocols.cmc_with_distractors(
    probes,
    np.arange(10),
    g,
    np.arange(10),
    rng.normal(size=(50, 8)),
    [0, 10, -1],
    ranks=(1,),
    seed=0,
  )
  r = [out["cmc_by_distractors"][k][0] for k in ("0", "10", "50")]
  assert r[0] >= r[1] >= r[2]
  with pytest.raises(ValueError, match="distractor"):
    protocols.cmc_with_distractors(
      probes, np.arange(10), g, np.arange(10), rng.normal(size=(5, 8)), [6], seed=0
    )
