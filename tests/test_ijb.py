"""Tests for jfr.eval.ijb: IJB-A-like splits, real IJB-A files, the 1:N / 1:1 evaluation."""

import os

import jax
import numpy as np
import pytest

from jfr.data.adapters import ijb as ijb_files
from jfr.eval import ijb
from jfr.eval import ijb_splits


def _media(subjects=6, stills=4, videos=2, frames=5, seed=0):
  """Rows of `subjects` identities: stills (video -1) then frames, shuffled."""
  labels, video_ids, frame_index = [], [], []
  for s in range(subjects):
    labels += [10 + s] * stills
    video_ids += [-1] * stills
    frame_index += [-1] * stills
    for v in range(videos):
      labels += [10 + s] * frames
      video_ids += [s * videos + v] * frames
      frame_index += list(range(frames))
  order = np.random.default_rng(seed).permutation(len(labels))
  return (np.array(labels)[order], np.array(video_ids)[order], np.array(frame_index)[order])


def _splits(**kw):
  labels, video_ids, frame_index = _media()
  args = dict(
    num_splits=3,
    seed=1,
    out_of_gallery_fraction=1 / 3,
    probe_templates_per_subject=2,
    verify_templates_per_subject=4,
  )
  args.update(kw)
  return (
    labels,
    video_ids,
    frame_index,
    ijb_splits.synthetic_splits(labels, video_ids, frame_index, **args),
  )


# ----------------------------------------------------------------- synthetic splits


def test_templates_hold_one_subject_and_mix_stills_and_frames():
  labels, video_ids, _, splits = _splits()
  for split in splits:
    for t in (split.gallery, split.probe, split.verify):
      for i in range(t.num_templates):
        rows = t.rows[t.template_ids == i]
        assert np.all(labels[rows] == t.subjects[i])
        assert np.any(video_ids[rows] < 0) and np.any(video_ids[rows] >= 0)


def test_out_of_gallery_probes_and_disjoint_gallery_probe_media():
  labels, _, _, splits = _splits()
  for split in splits:
    probe_subjects = split.probe.subjects
    # Every subject has 2 probe templates; 2 of the 6 subjects (round(6 / 3)) are out.
    np.testing.assert_array_equal(np.unique(probe_subjects, return_counts=True)[1], [2] * 6)
    out = ~np.isin(probe_subjects, split.gallery.subjects)
    assert out.sum() == 2 * 2
    assert len(set(split.gallery.subjects)) == split.gallery.num_templates == 4
    # An enrolled subject's gallery and probe templates share no image and use all.
    for s in split.gallery.subjects:
      g = split.gallery.rows[
        np.isin(split.gallery.template_ids, np.flatnonzero(split.gallery.subjects == s))
      ]
      p = split.probe.rows[np.isin(split.probe.template_ids, np.flatnonzero(probe_subjects == s))]
      assert not set(g) & set(p)
      assert sorted(np.concatenate([g, p])) == sorted(np.flatnonzero(labels == s))
      assert g.size == 2 + 5  # half the stills, one whole video
  assert any(
    not np.array_equal(a.gallery.subjects, b.gallery.subjects) for a, b in zip(splits, splits[1:])
  )  # splits differ


def test_verification_templates_partition_media_and_pairs_are_all_pairs():
  labels, _, _, splits = _splits()
  split = splits[0]
  v = split.verify
  assert v.num_templates == 6 * 4
  for s in np.unique(labels):
    rows = v.rows[np.isin(v.template_ids, np.flatnonzero(v.subjects == s))]
    assert sorted(rows) == sorted(np.flatnonzero(labels == s))  # a partition
  assert split.pairs.shape == (24 * 23 // 2, 2)
  assert np.all(split.pairs[:, 0] < split.pairs[:, 1])
  assert split.pair_labels().sum() == 6 * (4 * 3 // 2)


def test_verify_subjects_draws_a_subset():
  labels, _, _, splits = _splits(verify_subjects=3)
  for split in splits:
    assert split.verify.num_templates == 3 * 4
    assert len(set(split.verify.subjects)) == 3
  assert len({tuple(np.unique(s.verify.subjects)) for s in splits}) > 1


def test_frames_per_video_keeps_evenly_spaced_frames():
  labels, video_ids, frame_index, splits = _splits(frames_per_video=2)
  used = np.concatenate([splits[0].gallery.rows, splits[0].probe.rows])
  frames = used[video_ids[used] >= 0]
  assert sorted(set(frame_index[frames])) == [1, 3]  # floor((i + .5) * 5 / 2)


def test_synthetic_splits_are_deterministic():
  *_, a = _splits()
  *_, b = _splits()
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x.probe.rows, y.probe.rows)
    np.testing.assert_array_equal(x.verify.template_ids, y.verify.template_ids)


@pytest.mark.parametrize(
  "kw, match",
  [
    (dict(out_of_gallery_fraction=0.0), "out_of_gallery_fraction"),
    (dict(out_of_gallery_fraction=0.01), "out_of_gallery_fraction"),
    (dict(verify_templates_per_subject=1), "verify_templates_per_subject"),
    (dict(verify_templates_per_subject=5), "labels"),  # 4 stills cannot fill 5
    (dict(probe_templates_per_subject=3), "labels"),  # 2 probe stills cannot fill 3
    (dict(probe_templates_per_subject=0), "probe_templates_per_subject"),
    (dict(verify_subjects=7), "verify_subjects"),
    (dict(verify_subjects=1), "verify_subjects"),
    (dict(num_splits=0), "num_splits"),
    (dict(frames_per_video=0), "frames_per_video"),
  ],
)
def test_synthetic_splits_bad_arguments(kw, match):
  with pytest.raises(ValueError, match=match):
    _splits(**kw)


def test_synthetic_splits_mismatched_lengths():
  labels, video_ids, frame_index = _media()
  with pytest.raises(ValueError, match="video_ids"):
    ijb_splits.synthetic_splits(
      labels,
      video_ids[:-1],
      frame_index,
      num_splits=1,
      seed=0,
      out_of_gallery_fraction=0.3,
      probe_templates_per_subject=1,
      verify_templates_per_subject=2,
    )


def test_templates_reject_empty_template_and_mismatched_lengths():
  with pytest.raises(ValueError, match="template_ids.*no descriptors"):
    ijb.Templates(np.array([0, 1]), np.array([0, 2]), np.array([5, 6, 7]))
  with pytest.raises(ValueError, match="template_ids"):
    ijb.Templates(np.array([0, 1, 2]), np.array([0, 1]), np.array([5, 6]))
  with pytest.raises(ValueError, match="template_ids"):
    ijb.Templates(np.array([0, 1]), np.array([0, 2]), np.array([5, 6]))
  with pytest.raises(ValueError, match="rows"):
    ijb.Templates(np.array([0.0, 1.0]), np.array([0, 1]), np.array([5, 6]))


# ------------------------------------------------------------- evaluation by hand


def _mean_matcher():
  """Templates = mean of their 1-d descriptors, distance = |a - b|."""

  def represent(d, ids, num, key):
    return np.array([d[ids == t, 0].mean() for t in range(num)])

  return ijb.Matcher(represent, lambda a, b: np.abs(a[:, None] - b[None, :]))


def _hand_split():
  # rows:   0    1    2     3    4    5     6
  values = [0.0, 2.0, 10.0, 2.0, 5.0, 1.5, 20.0]
  gallery = ijb.Templates([0, 1, 2], [0, 0, 1], [1, 2])  # A: mean 1, B: 10
  probe = ijb.Templates([3, 4, 5, 6], [0, 1, 2, 3], [1, 2, 3, 4])  # C, D out of gallery
  verify = ijb.Templates([0, 3, 2, 4], [0, 1, 2, 3], [1, 1, 2, 2])  # values 0, 2, 10, 5
  pairs = np.array([[0, 1], [2, 3], [0, 2], [1, 3], [0, 3]])
  return np.array(values, np.float32)[:, None], ijb.ProtocolSplit(gallery, probe, verify, pairs)


def test_evaluate_split_matches_hand_computation():
  # Similarities (-distance), probes x gallery [A, B]:
  #   A-probe (2):   [-1, -8]     mated, rank 1
  #   B-probe (5):   [-4, -5]     mated, rank 2
  #   C (1.5):       [-0.5, -8.5] non-mated, max -0.5
  #   D (20):        [-19, -10]   non-mated, max -10
  # TPIR@FPIR=0.5: at most 1 of 2 non-mated maxima >= t -> lowest t = -5; only the
  #   A-probe is a rank-1 hit with score >= -5 -> 1/2.
  # Closed-set TAR@FAR=0.4 (mated probes only): impostors -8, -4; zero allowed -> t = -1
  #   -> TAR 1/2 (with C and D's trials it would be 1: t = -5 allows -0.5 and -4).
  # Rank-1 1/2, rank-2 1, rank-5 (clipped to the gallery size 2) 1.
  # 1:1: genuine -2 (0,1), -5 (2,3); impostors -10, -3, -5; FAR=0.5 -> at most one
  #   impostor >= t -> t = -3 -> TAR 1/2.
  descriptors, split = _hand_split()
  targets = ijb.Targets(
    fpirs=(0.5,), identification_fars=(0.4,), ranks=(1, 2, 5), verification_fars=(0.5,)
  )
  values, notes = ijb.evaluate_split(
    _mean_matcher(), descriptors, split, jax.random.PRNGKey(0), targets
  )
  assert values == {
    "TPIR@FPIR=0.5": 0.5,
    "TAR@FAR=0.4": 0.5,
    "Rank-1": 0.5,
    "Rank-2": 1.0,
    "Rank-5": 1.0,
    "1:1 TAR@FAR=0.5": 0.5,
  }
  assert len(notes) == 1 and "FAR [0.4] below the resolution 1/2" in notes[0]


def test_evaluate_split_records_resolution_notes():
  descriptors, split = _hand_split()
  values, notes = ijb.evaluate_split(_mean_matcher(), descriptors, split, jax.random.PRNGKey(0))
  assert list(values) == ijb.Targets().names()
  assert any("below the resolution" in n for n in notes)


def test_evaluate_splits_mean_std_over_splits_and_keys():
  labels, video_ids, frame_index, splits = _splits()
  rng = np.random.default_rng(0)
  centers = rng.normal(size=(20, 8))
  descriptors = (centers[labels] + 0.8 * rng.normal(size=(labels.size, 8))).astype(np.float32)
  seen_keys = []

  def represent(d, ids, num, key):
    seen_keys.append(tuple(np.asarray(key).tolist()))
    return np.stack([d[ids == t].mean(0) for t in range(num)])

  matcher = ijb.Matcher(represent, lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1))
  key = jax.random.PRNGKey(3)
  out = ijb.evaluate_splits(matcher, descriptors, splits, key)
  table = np.array([[v[n] for n in ijb.Targets().names()] for v in out["per_split"]])
  assert len(out["per_split"]) == 3
  np.testing.assert_allclose(list(out["mean"].values()), table.mean(0))
  np.testing.assert_allclose(list(out["std"].values()), table.std(0))
  first, _ = ijb.evaluate_split(matcher, descriptors, splits[0], jax.random.fold_in(key, 0))
  assert first == out["per_split"][0]
  # One key per (split, side); gallery, probe and verify keys all differ.
  assert len(seen_keys) == 3 * 3 + 3 and len(set(seen_keys)) == 3 * 3


def test_check_descriptors_bad_inputs():
  descriptors, split = _hand_split()
  bad = descriptors.copy()
  bad[2, 0] = np.nan
  with pytest.raises(ValueError, match="descriptors must be finite"):
    ijb.check_descriptors(bad, [split])
  with pytest.raises(ValueError, match="mismatched lengths"):
    ijb.check_descriptors(descriptors[:5], [split])
  with pytest.raises(ValueError, match="descriptors must have shape"):
    ijb.check_descriptors(descriptors[:, 0], [split])
  with pytest.raises(ValueError, match="floating"):
    ijb.check_descriptors(descriptors.astype(np.int32), [split])


def test_protocol_split_rejects_bad_pairs():
  _, split = _hand_split()
  with pytest.raises(ValueError, match="pairs"):
    ijb.ProtocolSplit(split.gallery, split.probe, split.verify, np.array([[0, 4]]))
  with pytest.raises(ValueError, match="pairs"):
    ijb.ProtocolSplit(split.gallery, split.probe, split.verify, np.array([0, 1]))


# --------------------------------------------------------------------- real IJB-A


def _write(path, lines):
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return str(path)


HEADER = "TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID,SIGHTING_ID,FRAME"


def test_ijba_split_maps_files_and_subjects_to_descriptor_rows(tmp_path):
  # img/2.jpg shows subjects 7 and 8 (two faces): the keys disambiguate by subject.
  keys = _write(
    tmp_path / "keys.csv",
    [
      "FILE,SUBJECT_ID",
      "img/1.jpg,7",
      "img/2.jpg,7",
      "img/2.jpg,8",
      "frame/3_1.png,8",
      "img/4.jpg,9",
    ],
  )
  gallery = _write(
    tmp_path / "g.csv",
    [HEADER, "100,7,img/1.jpg,1,1,", "100,7,img/2.jpg,2,2,", "200,8,frame/3_1.png,3,3,1"],
  )
  probe = _write(tmp_path / "p.csv", [HEADER, "300,8,img/2.jpg,2,2,", "400,9,img/4.jpg,4,4,"])
  verify = _write(
    tmp_path / "v.csv",
    [HEADER, "11,7,img/1.jpg,1,1,", "12,7,img/2.jpg,2,2,", "13,8,img/2.jpg,2,2,"],
  )
  comparisons = _write(tmp_path / "c.csv", ["11,12", "12,13"])
  filenames, subjects = ijb_splits.read_descriptor_keys(keys)
  split = ijb_splits.ijba_split(
    ijb_files.read_search_protocol(gallery, probe),
    ijb_files.read_template_metadata(verify),
    ijb_files.read_template_pairs(comparisons),
    filenames,
    subjects,
  )
  np.testing.assert_array_equal(split.gallery.rows, [0, 1, 3])
  np.testing.assert_array_equal(split.gallery.template_ids, [0, 0, 1])
  np.testing.assert_array_equal(split.gallery.subjects, [7, 8])
  np.testing.assert_array_equal(split.probe.rows, [2, 4])
  np.testing.assert_array_equal(split.verify.rows, [0, 1, 2])
  np.testing.assert_array_equal(split.pairs, [[0, 1], [1, 2]])
  np.testing.assert_array_equal(split.pair_labels(), [True, False])
  # Without subjects the file name alone is ambiguous.
  with pytest.raises(ValueError, match="filenames: key 'img/2.jpg'"):
    ijb_splits.metadata_rows(ijb_files.read_template_metadata(verify), filenames)


def test_metadata_rows_missing_descriptor(tmp_path):
  verify = _write(tmp_path / "v.csv", [HEADER, "11,7,img/1.jpg,1,1,", "12,7,img/5.jpg,2,2,"])
  with pytest.raises(ValueError, match="no descriptor.*img/5.jpg"):
    ijb_splits.metadata_rows(ijb_files.read_template_metadata(verify), np.array(["img/1.jpg"]))
  with pytest.raises(ValueError, match="subject_ids"):
    ijb_splits.metadata_rows(
      ijb_files.read_template_metadata(verify), np.array(["img/1.jpg", "img/5.jpg"]), np.array([7])
    )


def test_read_descriptor_keys_bad_files(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    ijb_splits.read_descriptor_keys(os.path.join(tmp_path, "none.csv"))
  with pytest.raises(ValueError, match="header"):
    ijb_splits.read_descriptor_keys(_write(tmp_path / "a.csv", ["NAME", "x.jpg"]))
  with pytest.raises(ValueError, match="SUBJECT_ID"):
    ijb_splits.read_descriptor_keys(_write(tmp_path / "b.csv", ["FILENAME,SUBJECT_ID", "x.jpg,a"]))
  names, subjects = ijb_splits.read_descriptor_keys(
    _write(tmp_path / "c.csv", ["filename", "x.jpg"])
  )
  assert names.tolist() == ["x.jpg"] and subjects is None
