"""Tests for canonical faces: the renderer function and the synthetic_faces 1.1.0 features."""

import numpy as np
import pytest

from jfr.data import face_renderer as fr
from jfr.data.face_renderer import canonical

SIZE = 48


def _latents(ids=(0, 1, 2)):
  return fr.identity_latents(3, np.array(ids))


def test_shapes_dtypes_and_flat_background():
  out = fr.canonical_face(_latents(), SIZE)
  assert out["image"].shape == (3, SIZE, SIZE, 3) and out["image"].dtype == np.uint8
  assert out["mask"].shape == (3, SIZE, SIZE) and out["mask"].dtype == bool
  assert out["segmentation"].shape == (3, SIZE, SIZE)
  assert out["landmarks"].shape == (3, 68, 2)
  background = out["segmentation"] == fr.PART_NAMES.index("background")
  assert background.any()
  # flat grey, no noise (away from antialiased edges, which are labelled background too)
  inner = background.copy()
  for axis in (1, 2):
    for step in (1, -1):
      inner &= np.roll(background, step, axis)
  np.testing.assert_array_equal(out["image"][inner], 128)
  np.testing.assert_array_equal(out["image"][:, 0, 0], 128)


def test_deterministic_batch_independent_and_reads_no_stream():
  a = fr.canonical_face(_latents(), SIZE)
  b = fr.canonical_face(_latents((2,)), SIZE)
  np.testing.assert_array_equal(a["image"][2], b["image"][0])
  np.testing.assert_array_equal(a["mask"][2], b["mask"][0])
  # The global NumPy stream and a stills' stream are not touched.
  np.random.seed(5)
  expected = np.random.random(3)
  np.random.seed(5)
  fr.canonical_face(_latents(), SIZE)
  np.testing.assert_array_equal(np.random.random(3), expected)


def test_canonical_face_removes_nuisances_and_keeps_identity():
  lat = _latents((4, 4))
  nui = canonical.canonical_nuisances(2)
  assert (nui["yaw"] == 0).all() and (nui["occluder"] == 0).all()
  assert (nui["noise_std"] == 0).all() and (nui["motion_blur"] == 0).all()
  assert (nui["smile"] == 0).all() and (nui["light_azimuth"] == 0).all()
  out = fr.canonical_face(lat, SIZE)
  np.testing.assert_array_equal(out["image"][0], out["image"][1])
  other = fr.canonical_face(_latents((5,)), SIZE)
  assert np.abs(other["image"][0].astype(int) - out["image"][0]).mean() > 3
  # the neutral still of the same identity (same light, no clutter) has the same face pixels
  one = {k: v[:1] for k, v in nui.items()}
  still = fr.render(_latents((4,)), one, SIZE, seed_or_rng=0, background=0.5)
  np.testing.assert_array_equal(still["image"][0], out["image"][0])


def test_canonical_light_is_as_bright_as_the_stills_on_average():
  ids = np.arange(100, 140)
  lat = fr.identity_latents(0, np.repeat(ids, 4))
  nui = fr.sample_nuisances(np.random.default_rng(3), len(ids) * 4)
  stills = fr.render(lat, nui, 32, seed_or_rng=0)
  canon = fr.canonical_face(fr.identity_latents(0, ids), 32)
  parts = [fr.PART_NAMES.index(p) for p in fr.FACE_REGION_PARTS]

  def face_mean(out):
    m = np.isin(out["segmentation"], parts)
    if "occluder_mask" in out:
      m &= ~out["occluder_mask"]
    return np.mean([im[k].mean() for im, k in zip(out["image"], m)])

  assert 0.92 < face_mean(canon) / face_mean(stills) < 1.08


def test_mask_covers_the_face_region():
  out = fr.canonical_face(_latents(), SIZE)
  seg, mask, lm = out["segmentation"], out["mask"], out["landmarks"]
  face_parts = [fr.PART_NAMES.index(p) for p in fr.FACE_REGION_PARTS]
  assert not (mask & ~np.isin(seg, face_parts)).any()  # never hair or background
  for i in range(3):
    # the inner landmarks (brows, nose, eyes, mouth: 17-67) fall in the mask
    pts = np.rint(lm[i, 17:]).astype(int)
    assert mask[i, pts[:, 1], pts[:, 0]].mean() > 0.95
    # the neck below the chin is not face: nothing below the chin landmark + 1 px
    chin_row = int(np.ceil(lm[i, 8, 1])) + 2
    assert not mask[i, chin_row:].any()
    assert 0.15 < mask[i].mean() < 0.6


def test_mask_leaves_out_a_bald_scalp():
  lat = fr.identity_latents(3, np.array([1]))  # a bald identity
  assert lat["hair_style"][0] == 0
  out = fr.canonical_face(lat, 64)
  skin_rows = np.flatnonzero((out["segmentation"][0] == fr.PART_NAMES.index("skin")).any(1))
  mask_rows = np.flatnonzero(out["mask"][0].any(1))
  brow_top = out["landmarks"][0, 17:27, 1].min()
  assert skin_rows[0] < mask_rows[0] - 5  # the scalp is skin but not face
  assert mask_rows[0] < brow_top - 5  # the forehead is face


def test_framing_follows_the_clip_mean():
  clip = fr.video_nuisances(np.random.default_rng(1), 10)
  framing = fr.clip_framing(clip)
  np.testing.assert_allclose(framing["scale"], [clip["scale"].mean()], rtol=1e-6)
  np.testing.assert_allclose(framing["shift"], clip["shift"].mean(0, keepdims=True), atol=1e-7)
  np.testing.assert_allclose(framing["roll"], [clip["roll"].mean()], atol=1e-5)
  shifted = {"scale": np.array([1.0]), "shift": np.array([[0.125, 0.0]]), "roll": np.zeros(1)}
  lat = _latents((7,))
  base = fr.canonical_face(lat, 64)
  moved = fr.canonical_face(lat, 64, framing=shifted)
  # shift 0.125 of 64 px = 8 px to the right: landmarks and mask move by 8 columns
  delta = moved["landmarks"] - base["landmarks"]
  np.testing.assert_allclose(delta, np.broadcast_to([8.0, 0.0], delta.shape), atol=1e-3)
  np.testing.assert_array_equal(moved["mask"][0, :, 8:], base["mask"][0, :, :-8])
  rolled = fr.canonical_face(lat, 64, framing={**framing, "roll": np.array([20.0])})
  eyes = rolled["landmarks"][0, [36, 45]]
  angle = np.degrees(np.arctan2(eyes[1, 1] - eyes[0, 1], eyes[1, 0] - eyes[0, 0]))
  assert abs(abs(angle) - 20) < 4  # the eye line turns by the roll
  still = fr.sample_nuisances(np.random.default_rng(2), 2)
  per_image = fr.image_framing(still)
  np.testing.assert_array_equal(per_image["scale"], still["scale"])
  assert fr.canonical_face(_latents((1, 2)), 32, framing=per_image)["image"].shape[0] == 2


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(image_size=8), "image_size"),
    (dict(image_size=48.0), "image_size"),
    (dict(framing={"scale": np.ones(3)}), "framing"),
    (dict(framing={"scale": np.ones(2), "shift": np.zeros((2, 2)), "roll": np.zeros(2)}), "n=3"),
    (dict(framing={"scale": -np.ones(3), "shift": np.zeros((3, 2)), "roll": np.zeros(3)}), "scale"),
    (dict(framing={"scale": np.ones(3), "shift": np.zeros(3), "roll": np.zeros(3)}), "shift"),
  ],
)
def test_bad_arguments_raise(kwargs, match):
  args = {"image_size": SIZE, **kwargs}
  with pytest.raises(ValueError, match=match):
    fr.canonical_face(_latents(), args.pop("image_size"), **args)


def test_bad_latents_and_background_raise():
  with pytest.raises(ValueError, match="latents"):
    fr.canonical_face({"age": np.zeros(2)}, SIZE)
  with pytest.raises(ValueError, match="nuisances"):
    fr.clip_framing({"scale": np.ones(2)})
  nui = fr.neutral_nuisances(1)
  with pytest.raises(ValueError, match="background"):
    fr.render(_latents((0,)), nui, SIZE, seed_or_rng=0, background=2.0)


def test_existing_renders_are_unchanged_by_canonical_faces():
  """Rendering canonical faces between two renders changes neither (no shared stream)."""
  lat = _latents((0, 1))
  rng = np.random.default_rng(11)
  nui = fr.sample_nuisances(rng, 2, occluder_prob=0.3)
  state = rng.bit_generator.state
  before = fr.render(lat, nui, SIZE, seed_or_rng=4)
  fr.canonical_face(lat, SIZE, framing=fr.image_framing(nui))
  after = fr.render(lat, nui, SIZE, seed_or_rng=4)
  assert rng.bit_generator.state == state
  for key in before:
    np.testing.assert_array_equal(before[key], after[key])


# ------------------------------------------------------------- synthetic_faces 1.1.0

EXISTING_FEATURES = (
  "image",
  "label",
  "attributes",
  "landmarks",
  "segmentation",
  "occluder_mask",
  "video_id",
  "frame_index",
)


def _generated(version, split):
  """{key: example} of synthetic_faces/tiny at ``version``, straight from its generator."""
  import tempfile

  from jfr.data import synthetic_faces

  builder = synthetic_faces.SyntheticFaces(
    config="tiny", version=version, data_dir=tempfile.mkdtemp()
  )
  return dict(builder._generate_examples(split))


def _sort_key(ex):
  return (int(ex["label"]), int(ex["video_id"]), int(ex["frame_index"]), ex["image"].tobytes())


@pytest.mark.parametrize("split", ["train", "test", "train_video", "video"])
def test_version_1_1_keeps_every_existing_feature_byte_identical(split, tiny_data_dir):
  import tensorflow_datasets as tfds

  old, new = _generated("1.0.0", split), _generated("1.1.0", split)
  assert sorted(old) == sorted(new) and old
  for key, ex in old.items():
    assert set(ex) == set(EXISTING_FEATURES)
    assert set(new[key]) == set(EXISTING_FEATURES) | {"canonical_face", "canonical_mask"}
    for name in EXISTING_FEATURES:
      a, b = np.asarray(ex[name]), np.asarray(new[key][name])
      assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
  # ... and after the tfds round trip of the prepared 1.1.0 data (the session's tiny data)
  builder = tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir)
  assert str(builder.version) == "1.1.0"
  loaded = sorted(tfds.as_numpy(builder.as_dataset(split=split)), key=_sort_key)
  expected = sorted(
    ({k: np.asarray(v) for k, v in ex.items()} for ex in old.values()), key=_sort_key
  )
  assert len(loaded) == len(expected)
  for ex, want in zip(loaded, expected):
    for name in EXISTING_FEATURES:
      assert np.asarray(ex[name]).tobytes() == want[name].astype(ex[name].dtype).tobytes(), name


def test_dataset_canonical_faces(tiny_data_dir):
  import collections

  import tensorflow_datasets as tfds

  from jfr.data import synthetic_faces

  builder = tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir)
  c = builder.builder_config
  s = c.image_size
  assert builder.info.features["canonical_face"].shape == (s, s, 3)
  for split in ("train", "train_video"):  # never a training target: zeros
    for ex in tfds.as_numpy(builder.as_dataset(split=split)):
      assert not ex["canonical_face"].any() and not ex["canonical_mask"].any()
  lat = fr.identity_latents(c.seed, np.arange(c.num_train_identities + c.num_test_identities))
  one = lambda i: {k: v[i : i + 1] for k, v in lat.items()}  # noqa: E731
  stills = list(tfds.as_numpy(builder.as_dataset(split="test")))
  assert {int(e["label"]) for e in stills} == set(
    range(c.num_train_identities, c.num_train_identities + c.num_test_identities)
  )
  jobs = {}  # the still's own framing: found by its image among the renderer's jobs
  for job_key, ex in synthetic_faces._render_jobs(
    c, "test", list(synthetic_faces._jobs(c, "test", np.arange(14, 20))), canonical=True
  ):
    jobs[ex["image"].tobytes()] = ex
  for ex in stills:
    want = jobs[ex["image"].tobytes()]
    np.testing.assert_array_equal(ex["canonical_face"], want["canonical_face"])
    np.testing.assert_array_equal(ex["canonical_mask"], want["canonical_mask"])
    assert ex["canonical_mask"].mean() > 0.1
  frames = collections.defaultdict(list)
  for ex in tfds.as_numpy(builder.as_dataset(split="video")):
    frames[int(ex["video_id"])].append(ex)
  assert len(frames) == c.num_test_identities * c.videos_per_identity
  for video_id, clip in frames.items():
    for ex in clip[1:]:  # one canonical face per clip
      np.testing.assert_array_equal(ex["canonical_face"], clip[0]["canonical_face"])
    ident, k = divmod(video_id, c.videos_per_identity)
    rng = np.random.default_rng(
      np.random.SeedSequence([c.seed, synthetic_faces.SPLIT_CODES["video"], ident, 1000 + k])
    )
    nui = fr.video_nuisances(
      rng,
      c.frames_per_video,
      eyeglasses_prob=synthetic_faces.EYEGLASSES_PROB,
      motion_blur_prob=c.video_motion_blur_prob,
    )
    want = fr.canonical_face(one(ident), s, framing=fr.clip_framing(nui))
    np.testing.assert_array_equal(clip[0]["canonical_face"], want["image"][0])
    np.testing.assert_array_equal(clip[0]["canonical_mask"], want["mask"][0])


def test_clip_canonical_faces_equal_the_stored_ones(tiny_data_dir):
  """The public renderer of clip canonical faces (for validation on train identities) gives,
  on the video split, exactly what the data set stores; train clips get faces too."""
  import tensorflow_datasets as tfds

  from jfr.data import synthetic_faces

  builder = tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir)
  c = builder.builder_config
  stored = {}
  for ex in tfds.as_numpy(builder.as_dataset(split="video")):
    stored.setdefault(int(ex["video_id"]), ex)
  idents = np.array(sorted({int(e["label"]) for e in stored.values()})[:2])
  got = synthetic_faces.clip_canonical_faces(c, "video", idents)
  want_ids = sorted(v for v, e in stored.items() if int(e["label"]) in idents)
  assert got["video_ids"].tolist() == want_ids
  for v, image, mask in zip(got["video_ids"], got["image"], got["mask"]):
    np.testing.assert_array_equal(image, stored[int(v)]["canonical_face"])
    np.testing.assert_array_equal(mask, stored[int(v)]["canonical_mask"])
  train = synthetic_faces.clip_canonical_faces(c, "train_video", np.array([0]))
  assert len(train["video_ids"]) == c.videos_per_identity and train["mask"].mean() > 0.1
  with pytest.raises(ValueError, match="video split"):
    synthetic_faces.clip_canonical_faces(c, "train", idents)


def test_version_1_0_data_still_loads(tmp_path, monkeypatch):
  """A data_dir prepared at 1.0.0 (as before this version) loads as ``tiny:1.0.0``."""
  import tensorflow_datasets as tfds

  from jfr.data import pipelines
  from jfr.data import synthetic_faces

  with monkeypatch.context() as m:  # generate 1.0.0 as the code before 1.1.0 did
    m.setattr(synthetic_faces.SyntheticFaces, "VERSION", tfds.core.Version("1.0.0"))
    m.setattr(synthetic_faces.SyntheticFaces, "SUPPORTED_VERSIONS", [])
    tfds.builder("synthetic_faces/tiny", data_dir=str(tmp_path)).download_and_prepare()
  assert (tmp_path / "synthetic_faces" / "tiny" / "1.0.0").is_dir()
  builder = pipelines.prepare_builder("synthetic_faces/tiny:1.0.0", str(tmp_path))
  assert str(builder.version) == "1.0.0"
  # An older version loads through tfds' read-only builder; its facts still say "videos".
  from jfr.data import dataset_facts

  facts = dataset_facts.dataset_facts(builder)
  assert facts.present["videos"] and facts.present["segmentation"]
  assert facts.num_train_classes == builder.info.metadata["num_train_identities"] > 0
  assert set(builder.info.features) == set(EXISTING_FEATURES)
  assert set(builder.info.splits) == {"train", "test", "train_video", "video"}
  assert not (tmp_path / "synthetic_faces" / "tiny" / "1.1.0").exists()
  batch = pipelines.load_arrays(builder, "test")
  assert batch["image"].shape[0] == 24


def test_video_extra_continues_the_clips_of_the_test_identities(tiny_data_dir):
  import collections
  import dataclasses

  import tensorflow_datasets as tfds

  from jfr.data import synthetic_faces

  builder = tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir)
  c = builder.builder_config
  vpi, extra = c.videos_per_identity, c.extra_test_videos_per_identity
  assert extra == 2 and builder.info.metadata["extra_test_videos_per_identity"] == extra
  clips = collections.defaultdict(list)
  for ex in tfds.as_numpy(builder.as_dataset(split="video_extra")):
    clips[int(ex["video_id"])].append(ex)
  assert len(clips) == c.num_test_identities * extra
  others = {
    int(ex["video_id"])
    for split in ("video", "train_video")
    for ex in tfds.as_numpy(builder.as_dataset(split=split))
  }
  assert not set(clips) & others
  test_ids = set(range(c.num_train_identities, c.num_train_identities + c.num_test_identities))
  assert {int(clip[0]["label"]) for clip in clips.values()} == test_ids
  for clip in clips.values():
    assert sorted(int(e["frame_index"]) for e in clip) == list(range(c.frames_per_video))
    assert clip[0]["canonical_mask"].any()
  # clip `vpi` of the first test identity is the clip that `video` would hold as clip `vpi`
  # with vpi + extra clips per identity
  more = dataclasses.replace(c, videos_per_identity=vpi + extra)
  ident = c.num_train_identities
  jobs = [
    j
    for j in synthetic_faces._jobs(more, "video", np.array([ident]))
    if j[1] % (vpi + extra) == vpi
  ]
  want = dict(synthetic_faces._render_jobs(more, "video", jobs))
  first = (c.num_train_identities + c.num_test_identities) * vpi
  got = sorted(clips[first], key=lambda e: int(e["frame_index"]))
  want = sorted(want.values(), key=lambda e: int(e["frame_index"]))
  for a, b in zip(got, want):
    for name in ("landmarks", "segmentation", "occluder_mask", "canonical_face"):
      np.testing.assert_array_equal(a[name], b[name])
    # blur pads by the largest kernel of its render batch, and the batches differ here
    diff = np.abs(a["image"].astype(int) - b["image"])
    assert diff.mean() < 0.3 and diff.max() <= 8
  # ... exactly: the same nuisances
  mine = [j for j in synthetic_faces._jobs(c, "video_extra", np.array([ident])) if j[1] == first]
  assert len(mine) == len(jobs) == c.frames_per_video
  for a, b in zip(mine, jobs):
    for name in a[3]:
      np.testing.assert_array_equal(a[3][name], b[3][name])
    for name in a[4]:
      np.testing.assert_array_equal(a[4][name], b[4][name])
