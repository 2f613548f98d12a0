"""Tests of jfr.eval.video_protocols (FAN paper Sec. 4.2-4.4 protocols)."""

import numpy as np
import pytest

from jfr.data import augment
from jfr.eval import protocols
from jfr.eval import video_protocols as vp


def _linear_embed(dim_in, dim_out=6, seed=0):
  w = np.random.default_rng(seed).normal(size=(dim_in, dim_out))
  return lambda images: images.reshape(images.shape[0], -1) @ w


def _videos(num_videos=5, max_len=7, size=4, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(2, max_len + 1, num_videos)
  frames = rng.uniform(-1, 1, (num_videos, max_len, size, size, 3)).astype(np.float32)
  return frames, lengths


# ----------------------------------------------------------------------- video_pairs


def test_video_pairs_uses_every_genuine_pair_once_and_balances_folds():
  labels = np.array([0, 0, 1, 1, 1, 2, 2, 3, 4, 4])
  a, b, same = vp.video_pairs(labels, folds=3, seed=0)
  genuine = {(i, j) for i in range(10) for j in range(i + 1, 10) if labels[i] == labels[j]}
  got = {(min(x, y), max(x, y)) for x, y, s in zip(a, b, same) if s}
  assert got == genuine and same.sum() == len(genuine) == 6
  assert (~same).sum() == 6
  np.testing.assert_array_equal(labels[a] == labels[b], same)
  impostors = {(min(x, y), max(x, y)) for x, y, s in zip(a, b, same) if not s}
  assert len(impostors) == 6  # no repeated impostor pair
  # contiguous folds (np.array_split sizes 4, 4, 4), each with 2 genuine + 2 impostor
  for fold in np.array_split(np.arange(12), 3):
    assert same[fold].sum() == 2


def test_video_pairs_is_seeded():
  labels = np.repeat(np.arange(6), 2)
  first = vp.video_pairs(labels, folds=2, seed=3)
  again = vp.video_pairs(labels, folds=2, seed=3)
  other = vp.video_pairs(labels, folds=2, seed=4)
  assert all(np.array_equal(x, y) for x, y in zip(first, again))
  assert not all(np.array_equal(x, y) for x, y in zip(first, other))


@pytest.mark.parametrize(
  "labels,folds,match",
  [
    (np.arange(5), 2, "genuine"),
    (np.array([0, 0, 1, 1]), 3, "folds"),
    (np.zeros((2, 2)), 2, r"\[V\]"),
  ],
)
def test_video_pairs_rejects_bad_input(labels, folds, match):
  with pytest.raises(ValueError, match=match):
    vp.video_pairs(labels, folds=folds, seed=0)


# --------------------------------------------------------------- YTF representations


@pytest.mark.parametrize("set_size,n_avg", [(1, 2), (3, 2), (5, 3)])
def test_average_representations_match_the_one_shot_protocol(set_size, n_avg):
  frames, lengths = _videos()
  embed = _linear_embed(4 * 4 * 3)
  feats = embed(frames.reshape((-1,) + frames.shape[2:])).reshape(frames.shape[:2] + (-1,))
  ours = vp.average_representations(feats, lengths, set_size, n_avg)
  ref, _ = protocols.video_representations(
    frames, lengths, embed_fn=embed, set_size=set_size, n_avg=n_avg, batch_size=4
  )
  np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_group_representations_match_the_one_shot_protocol_with_an_aggregator():
  frames, lengths = _videos()
  embed = _linear_embed(4 * 4 * 3)

  def mean_aggregate(sets, mask):  # a stand-in aggregator: the mean of the real members
    return (sets * mask[..., None, None, None]).sum(1) / mask.sum(1)[:, None, None, None]

  groups = vp.resampled_groups(frames, lengths, 3, 2)
  ours, cost = vp.group_representations(
    groups, 2, embed_fn=embed, aggregate_fn=mean_aggregate, batch_size=4
  )
  ref, ref_cost = protocols.video_representations(
    frames, lengths, embed_fn=embed, set_size=3, n_avg=2, aggregate_fn=mean_aggregate, batch_size=4
  )
  np.testing.assert_allclose(ours, ref, atol=1e-6)
  assert cost == {"embedded_images": 10, "aggregated_sets": 10}
  assert ref_cost["embedded_images"] == 10
  plain, plain_cost = vp.group_representations(groups, 2, embed_fn=embed, batch_size=4)
  np.testing.assert_allclose(
    plain,
    vp.average_representations(
      embed(frames.reshape((-1,) + frames.shape[2:])).reshape(5, 7, -1), lengths, 3, 2
    ),
    atol=1e-10,
  )
  assert plain_cost == {"embedded_images": 30, "aggregated_sets": 0}


def test_resampled_groups_cut_the_resampled_video_into_consecutive_groups():
  frames = np.arange(2 * 6).reshape(2, 6, 1, 1, 1).astype(np.float32)
  groups = vp.resampled_groups(np.broadcast_to(frames, (2, 6, 1, 1, 3)), np.array([6, 3]), 2, 3)
  assert groups.shape == (6, 2, 1, 1, 3)
  np.testing.assert_array_equal(groups[:3, :, 0, 0, 0].ravel(), np.arange(6))
  np.testing.assert_array_equal(groups[3:, :, 0, 0, 0].ravel(), [6, 6, 7, 7, 8, 8])


def test_resampled_groups_reject_lengths_beyond_the_frames():
  frames, _ = _videos()
  with pytest.raises(ValueError, match="lengths"):
    vp.resampled_groups(frames, np.full(5, 8), 2, 1)


# ------------------------------------------------------------------------ motion blur


def test_blur_groups_keep_sharp_frames_and_blur_the_others_like_apply_motion_blur():
  rng = np.random.default_rng(0)
  groups = rng.uniform(-1, 1, (3, 4, 12, 12, 3)).astype(np.float32)
  blurred, sharp, angles = vp.blur_groups(groups, 5, num_sharp=1, seed=7)
  assert sharp.shape == (3, 4) and np.all(sharp.sum(1) == 1)
  np.testing.assert_array_equal(blurred[sharp], groups[sharp])
  for g, n in zip(*np.nonzero(~sharp)):
    ref = augment.apply_motion_blur(groups[g, n], 5, float(angles[g, n])).numpy()
    np.testing.assert_allclose(blurred[g, n], ref, atol=1e-5)
    assert np.abs(blurred[g, n] - groups[g, n]).mean() > 0.05
  again = vp.blur_groups(groups, 5, num_sharp=1, seed=7)
  np.testing.assert_array_equal(again[0], blurred)


def test_blur_groups_reject_too_many_sharp_frames():
  with pytest.raises(ValueError, match="num_sharp"):
    vp.blur_groups(np.zeros((1, 2, 8, 8, 3), np.float32), 3, num_sharp=3, seed=0)


# ------------------------------------------------------------------ IJB-like templates


def _ijb_world():
  still_labels = np.repeat([10, 11, 12, 13], 6)
  video_labels = np.array([10, 10, 11, 11, 12, 12, 12, 13, 13])
  video_lengths = np.array([5, 6, 4, 8, 3, 2, 2, 7, 5])
  return still_labels, video_labels, video_lengths


def test_mixed_media_templates_partition_each_subjects_media():
  still_labels, video_labels, video_lengths = _ijb_world()
  gallery, probes = vp.mixed_media_templates(
    still_labels, video_labels, video_lengths, gallery_stills=2, probes_per_subject=3, seed=0
  )
  assert [t.label for t in gallery] == [10, 11, 12, 13]
  assert len(probes) == 12
  for g in gallery:
    mine = [p for p in probes if p.label == g.label]
    stills = np.concatenate([g.stills] + [p.stills for p in mine])
    np.testing.assert_array_equal(np.sort(stills), np.flatnonzero(still_labels == g.label))
    assert g.stills.size == 2
    videos = np.flatnonzero(video_labels == g.label)
    ((v0, f0),) = g.videos
    assert v0 == videos[0]
    np.testing.assert_array_equal(f0, np.arange(video_lengths[v0]))
    probe_frames = sorted((v, int(t)) for p in mine for v, fr in p.videos for t in fr)
    assert probe_frames == [(v, t) for v in videos[1:] for t in range(video_lengths[v])]
    assert all(p.videos for p in mine)


def test_mixed_media_templates_name_a_subject_that_lacks_media():
  still_labels, video_labels, video_lengths = _ijb_world()
  with pytest.raises(ValueError, match="subject 10"):
    vp.mixed_media_templates(
      still_labels, video_labels, video_lengths, gallery_stills=5, probes_per_subject=3, seed=0
    )
  with pytest.raises(ValueError, match="subject 14"):
    vp.mixed_media_templates(
      np.append(still_labels, [14] * 6),
      np.append(video_labels, 14),
      np.append(video_lengths, 9),
      gallery_stills=1,
      probes_per_subject=1,
      seed=0,
    )


def test_template_frame_sets_split_long_videos():
  template = vp.MixedTemplate(3, np.array([0]), ((4, np.arange(20)), (5, np.arange(3))))
  sets = vp.template_frame_sets([template], max_members=8)
  assert [(t, v, len(f)) for t, v, f in sets] == [(0, 4, 7), (0, 4, 7), (0, 4, 6), (0, 5, 3)]
  np.testing.assert_array_equal(np.concatenate([f for _, v, f in sets if v == 4]), np.arange(20))


def test_template_representations_and_cost():
  rng = np.random.default_rng(1)
  still_feats = rng.normal(size=(6, 4))
  frame_feats = rng.normal(size=(2, 5, 4))
  templates = [
    vp.MixedTemplate(0, np.array([0, 2]), ((1, np.array([0, 3, 4])),)),
    vp.MixedTemplate(1, np.array([5]), ((0, np.arange(5)), (1, np.array([1])))),
  ]
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
  avg = vp.template_representations(templates, still_feats, frame_feats)
  ref0 = unit(unit(still_feats[[0, 2]]).sum(0) + unit(frame_feats[1, [0, 3, 4]]).sum(0))
  np.testing.assert_allclose(avg[0], ref0, atol=1e-10)
  sets = vp.template_frame_sets(templates, max_members=3)
  set_feats = rng.normal(size=(len(sets), 4))
  ours = vp.template_representations(templates, still_feats, sets=sets, set_features=set_feats)
  owners = np.array([t for t, _, _ in sets])
  ref1 = unit(unit(still_feats[[5]]).sum(0) + unit(set_feats[owners == 1]).sum(0))
  np.testing.assert_allclose(ours[1], ref1, atol=1e-10)
  cost = vp.extraction_cost(templates, sets)
  assert cost["extractions_avg"] == 3 + 9 and cost["sets"] == 4
  assert cost["extractions_aggregated"] == 3 + 4
  assert cost["saved_fraction"] == pytest.approx(1 - 7 / 12)
  with pytest.raises(ValueError, match="either"):
    vp.template_representations(
      templates, still_feats, frame_feats, sets=sets, set_features=set_feats
    )


def test_two_gallery_identification_averages_the_galleries():
  rng = np.random.default_rng(2)
  subjects = np.arange(8)
  centres = rng.normal(size=(8, 16))
  g_feats = centres + 0.05 * rng.normal(size=(8, 16))
  p_labels = np.repeat(subjects, 3)
  p_feats = centres[p_labels] + 0.05 * rng.normal(size=(24, 16))
  halves = vp.split_subjects(subjects, seed=0)
  assert set(halves[0]).isdisjoint(halves[1])
  assert set(halves[0]) | set(halves[1]) == set(subjects)
  out = vp.two_gallery_identification(
    g_feats, subjects, p_feats, p_labels, halves, ranks=(1,), fpirs=(0.1,)
  )
  assert out["mean"]["rank1"] == 1.0
  assert out["mean"]["tpir_at_fpir"]["0.1"] == 1.0
  # a probe set with swapped identities in the second half lowers that gallery only
  swapped = p_feats.copy()
  second = np.isin(p_labels, halves[1])
  swapped[second] = p_feats[second][::-1]
  out = vp.two_gallery_identification(
    g_feats, subjects, swapped, p_labels, halves, ranks=(1,), fpirs=(0.1,)
  )
  per = [r["cmc"]["rank1"] for r in out["galleries"]]
  assert per[0] == 1.0 and per[1] < 1.0
  assert out["mean"]["rank1"] == pytest.approx(np.mean(per))
