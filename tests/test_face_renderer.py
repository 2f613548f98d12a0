"""Tests for jfr.data.face_renderer: determinism, attributes, geometry, occluders, video."""

import numpy as np
import pytest

from jfr.data import face_renderer as fr

EYES = fr.PART_NAMES.index("eyes")
NOSE = fr.PART_NAMES.index("nose")
MOUTH = fr.PART_NAMES.index("mouth")
BROWS = fr.PART_NAMES.index("brows")


def _frontal_batch(ids, n_per, rng, max_yaw=20.0):
  """Moderate-pose, unoccluded, eyes-open nuisances for each identity."""
  lat = fr.identity_latents(0, np.repeat(np.asarray(ids), n_per))
  nui = fr.sample_nuisances(rng, len(ids) * n_per, eyeglasses_prob=0.0, max_yaw=max_yaw)
  nui["eye_open"][:] = 1.0
  return lat, nui


def _near_part(seg, point, part, radius=1):
  x, y = int(round(float(point[0]))), int(round(float(point[1])))
  window = seg[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
  return bool((window == part).any())


def test_shapes_and_dtypes():
  lat = fr.identity_latents(3, np.arange(5))
  nui = fr.sample_nuisances(np.random.default_rng(0), 5, occluder_prob=0.3)
  out = fr.render(lat, nui, 40, seed_or_rng=1)
  assert out["image"].shape == (5, 40, 40, 3) and out["image"].dtype == np.uint8
  assert out["landmarks"].shape == (5, 68, 2) and out["landmarks"].dtype == np.float32
  assert out["segmentation"].shape == (5, 40, 40)
  assert out["segmentation"].dtype == np.uint8
  assert out["segmentation"].max() < len(fr.PART_NAMES)
  assert out["occluder_mask"].shape == (5, 40, 40) and out["occluder_mask"].dtype == bool
  assert out["attributes"].shape == (5, len(fr.ATTRIBUTE_NAMES))
  assert out["attributes"].dtype == bool
  assert fr.ATTRIBUTE_NAMES[:10] == fr.IDENTITY_ATTRIBUTES
  assert fr.ATTRIBUTE_NAMES[10:13] == ("Eyeglasses", "Smiling", "Mouth_Slightly_Open")
  assert fr.PART_NAMES[:7] == ("background", "skin", "hair", "brows", "eyes", "nose", "mouth")
  assert fr.frontal_landmarks(64).shape == (68, 2)


def test_render_is_deterministic_and_batch_independent():
  lat = fr.identity_latents(0, np.arange(6))
  nui = fr.sample_nuisances(np.random.default_rng(5), 6, occluder_prob=0.3)
  a = fr.render(lat, nui, 48, seed_or_rng=7)
  b = fr.render(lat, nui, 48, seed_or_rng=7)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  part = fr.render(
    {k: v[2:4] for k, v in lat.items()}, {k: v[2:4] for k, v in nui.items()}, 48, seed_or_rng=7
  )
  for k in a:
    np.testing.assert_array_equal(a[k][2:4], part[k])
  other = fr.render(lat, nui, 48, seed_or_rng=8)
  assert not np.array_equal(a["image"], other["image"])  # different sensor noise


def test_identity_latent_independent_of_other_ids():
  alone = fr.identity_latents(11, np.array([42]))
  mixed = fr.identity_latents(11, np.array([7, 42, 3, 1000]))
  for k in alone:
    np.testing.assert_array_equal(alone[k][0], mixed[k][1])
  other_seed = fr.identity_latents(12, np.array([42]))
  assert not np.allclose(alone["eye_spacing"], other_seed["eye_spacing"])
  assert not np.allclose(mixed["eye_spacing"][0], mixed["eye_spacing"][1])


def test_identity_attribute_rates():
  attrs = fr.identity_attributes(fr.identity_latents(0, np.arange(400)))
  assert attrs.shape == (400, 10) and attrs.dtype == bool
  rates = attrs.mean(0)
  for name, rate in zip(fr.IDENTITY_ATTRIBUTES, rates):
    assert 0.05 <= rate <= 0.95, (name, rate)


def test_attributes_constant_within_identity():
  lat = fr.identity_latents(0, np.repeat(np.arange(4), 5))
  nui = fr.sample_nuisances(np.random.default_rng(1), 20, occluder_prob=0.2)
  attrs = fr.render(lat, nui, 32, seed_or_rng=0)["attributes"].reshape(4, 5, -1)
  ident = attrs[..., :10]
  assert (ident == ident[:, :1]).all()
  np.testing.assert_array_equal(attrs[:, :, 10].ravel(), nui["occluder"] == 1)
  np.testing.assert_array_equal(attrs[:, :, 11].ravel(), nui["smile"] > 0.5)


def test_images_differ_across_identities_and_nuisances():
  lat = fr.identity_latents(0, np.array([0, 1]))
  nui = fr.neutral_nuisances(2)
  img = fr.render(lat, nui, 64, seed_or_rng=0)["image"].astype(float)
  assert np.abs(img[0] - img[1]).mean() > 8
  lat1 = fr.identity_latents(0, np.array([0, 0]))
  nui2 = fr.sample_nuisances(np.random.default_rng(2), 2)
  img2 = fr.render(lat1, nui2, 64, seed_or_rng=0)["image"].astype(float)
  assert np.abs(img2[0] - img2[1]).mean() > 5


def test_landmarks_fall_on_their_parts():
  lat, nui = _frontal_batch(np.arange(8), 2, np.random.default_rng(3))
  size = 112
  out = fr.render(lat, nui, size, seed_or_rng=0)
  lm, seg = out["landmarks"], out["segmentation"]
  eye_hits = nose_hits = mouth_hits = brow_hits = 0
  for i in range(len(lm)):
    eye_hits += _near_part(seg[i], lm[i, 36:42].mean(0), EYES, 0)
    eye_hits += _near_part(seg[i], lm[i, 42:48].mean(0), EYES, 0)
    nose_hits += _near_part(seg[i], lm[i, 30], NOSE, 0)
    mouth_hits += _near_part(seg[i], lm[i, 62], MOUTH, 1)
    mouth_hits += _near_part(seg[i], lm[i, 57], MOUTH, 1)
    brow_hits += _near_part(seg[i], lm[i, 19], BROWS, 1)
    brow_hits += _near_part(seg[i], lm[i, 24], BROWS, 1)
  n = len(lm)
  assert eye_hits >= 0.9 * 2 * n
  assert nose_hits >= 0.9 * n
  assert mouth_hits >= 0.9 * 2 * n
  assert brow_hits >= 0.9 * 2 * n
  # jaw points lie on the face outline: inside the image and ordered left to right
  assert (lm[:, 0, 0] < lm[:, 8, 0]).all() and (lm[:, 8, 0] < lm[:, 16, 0]).all()
  # mouth below nose below eyes (image y grows downward) for these moderate poses
  assert (lm[:, 33, 1] > lm[:, 39, 1]).all() and (lm[:, 51, 1] > lm[:, 33, 1]).all()


def test_landmarks_inside_image_for_random_poses():
  lat = fr.identity_latents(1, np.arange(64))
  nui = fr.sample_nuisances(np.random.default_rng(4), 64, occluder_prob=0.2)
  lm = fr.render(lat, nui, 64, seed_or_rng=0)["landmarks"]
  assert (lm >= 0).all() and (lm <= 63).all()


def test_yaw_is_a_3d_rotation():
  yaws = np.array([0.0, 20.0, 40.0, -40.0])
  lat = fr.mean_latents(4)
  nui = fr.neutral_nuisances(4)
  nui["yaw"][:] = yaws
  lm = fr.render(lat, nui, 112, seed_or_rng=0)["landmarks"]
  right_eye, left_eye = lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)
  iod = np.linalg.norm(left_eye - right_eye, axis=-1)
  assert iod[0] > iod[1] > iod[2]
  assert iod[2] < 0.9 * iod[0]
  np.testing.assert_allclose(iod[2], iod[3], rtol=1e-3)
  offset = lm[:, 30, 0] - 0.5 * (right_eye[:, 0] + left_eye[:, 0])
  assert abs(offset[0]) < 0.5
  assert 0 < offset[1] < offset[2]  # positive yaw: nose moves to image right
  assert offset[3] < 0
  # the far side compresses: eye widths differ under yaw, not frontally
  width_r = lm[:, 39, 0] - lm[:, 36, 0]
  width_l = lm[:, 45, 0] - lm[:, 42, 0]
  assert abs(width_r[0] - width_l[0]) < 0.1
  assert width_l[2] < 0.8 * width_r[2]


def test_frontal_template_is_the_mean_neutral_face():
  tpl = fr.frontal_landmarks(96)
  out = fr.render(fr.mean_latents(1), fr.neutral_nuisances(1), 96, seed_or_rng=0)
  np.testing.assert_allclose(tpl, out["landmarks"][0], atol=1e-4)
  mirror = np.r_[
    16:-1:-1,
    26:21:-1,
    21:16:-1,
    27:31,
    35:30:-1,
    45:41:-1,
    47:45:-1,
    39:35:-1,
    41:39:-1,
    54:47:-1,
    59:54:-1,
    64:59:-1,
    67:64:-1,
  ]
  np.testing.assert_allclose(tpl[:, 0] + tpl[mirror, 0], 95.0, atol=1e-3)
  np.testing.assert_allclose(tpl[:, 1], tpl[mirror, 1], atol=1e-3)


def test_occluder_masks():
  lat = fr.identity_latents(0, np.arange(6))
  nui = fr.neutral_nuisances(6)
  nui["occluder"][:] = np.array([0, 0, 1, 1, 2, 2], np.int8)
  nui["glasses_tint"][:] = np.array([0, 0, 0.0, 0.9, 0, 0], np.float32)
  out = fr.render(lat, nui, 64, seed_or_rng=0)
  mask, lm, seg = out["occluder_mask"], out["landmarks"], out["segmentation"]
  assert not mask[:2].any()
  assert mask[2:].reshape(4, -1).any(1).all()
  for i in (2, 3):  # eyeglasses cover the eyes, not the mouth
    pts = np.rint(lm[i, 36:48]).astype(int)
    assert mask[i, pts[:, 1], pts[:, 0]].mean() >= 0.9
    pts = np.rint(lm[i, 48:60]).astype(int)
    assert mask[i, pts[:, 1], pts[:, 0]].mean() <= 0.1
    assert (seg[i] == EYES).any()  # amodal segmentation keeps the eyes
  for i in (4, 5):  # the scarf covers the mouth and chin, not the eyes
    pts = np.rint(lm[i, np.r_[7:10, 48:68]]).astype(int)
    assert mask[i, pts[:, 1], pts[:, 0]].mean() >= 0.9
    pts = np.rint(lm[i, 36:48]).astype(int)
    assert not mask[i, pts[:, 1], pts[:, 0]].any()
  # the scarf changes the image where the mask is, and (almost) only there
  clean = fr.render(
    {k: v[4:5] for k, v in lat.items()},
    {k: (np.zeros_like(v[4:5]) if k == "occluder" else v[4:5]) for k, v in nui.items()},
    64,
    seed_or_rng=0,
  )["image"][0]
  diff = np.abs(clean.astype(int) - out["image"][4].astype(int)).sum(-1) > 30
  assert diff[mask[4]].mean() > 0.8 and diff[~mask[4]].mean() < 0.05


def test_occluder_probabilities():
  rng = np.random.default_rng(0)
  kinds = fr.sample_nuisances(rng, 2000, occluder_prob=0.3, eyeglasses_prob=0.2)["occluder"]
  assert abs((kinds == 2).mean() - 0.3) < 0.04
  assert abs((kinds == 1).mean() - 0.2) < 0.04
  assert (
    fr.sample_nuisances(rng, 50, occluder_prob=0.0, eyeglasses_prob=0.0)["occluder"] == 0
  ).all()


def test_video_drifts_smoothly():
  rng = np.random.default_rng(9)
  frames = 20
  clip = fr.video_nuisances(rng, frames, motion_blur_prob=1.0)
  assert all(len(v) == frames for v in clip.values())
  assert (clip["background_seed"] == clip["background_seed"][0]).all()
  assert (clip["occluder"] == clip["occluder"][0]).all()
  assert len(np.unique(clip["noise_seed"])) == frames
  assert (clip["motion_blur"] > 0).all()
  lm = fr.render(fr.identity_latents(0, np.zeros(frames, int)), clip, 64, seed_or_rng=0)[
    "landmarks"
  ]
  step = np.linalg.norm(lm[1:] - lm[:-1], axis=-1).mean()
  pairs = np.random.default_rng(0).integers(0, frames, (200, 2))
  pairs = pairs[pairs[:, 0] != pairs[:, 1]]
  far = np.linalg.norm(lm[pairs[:, 0]] - lm[pairs[:, 1]], axis=-1).mean()
  assert step < 0.5 * far
  still = fr.video_nuisances(np.random.default_rng(9), 5, motion_blur_prob=0.0)
  assert (still["motion_blur"] == 0).all()


def test_motion_blur_blurs():
  lat = fr.identity_latents(0, np.zeros(2, int))
  nui = fr.neutral_nuisances(2)
  nui["motion_blur"][:] = [0.0, 8.0]
  nui["motion_angle"][:] = 0.0  # horizontal
  img = fr.render(lat, nui, 64, seed_or_rng=0)["image"].astype(float)
  sharpness = [(np.diff(im, axis=1) ** 2).mean() for im in img]  # gradient energy
  assert sharpness[1] < 0.5 * sharpness[0]


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(image_size=8),
    dict(image_size=64.0),
    dict(seed_or_rng=-1),
    dict(drop="yaw"),
    dict(mismatch=True),
  ],
)
def test_render_rejects_bad_input(kwargs):
  lat = fr.identity_latents(0, np.arange(2))
  nui = fr.sample_nuisances(np.random.default_rng(0), 2)
  if kwargs.get("drop"):
    del nui[kwargs["drop"]]
  if kwargs.get("mismatch"):
    nui = fr.sample_nuisances(np.random.default_rng(0), 3)
  with pytest.raises(ValueError):
    fr.render(lat, nui, kwargs.get("image_size", 32), seed_or_rng=kwargs.get("seed_or_rng", 0))


def test_samplers_reject_bad_input():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="occluder_prob"):
    fr.sample_nuisances(rng, 2, occluder_prob=1.5)
  with pytest.raises(ValueError, match="eyeglasses_prob"):
    fr.sample_nuisances(rng, 2, occluder_prob=0.6, eyeglasses_prob=0.6)
  with pytest.raises(ValueError, match="num_frames"):
    fr.video_nuisances(rng, 0)
  with pytest.raises(ValueError, match="identity_ids"):
    fr.identity_latents(0, np.array([-1]))


# ------------------------------------------------------------------ pinned renders
# Fingerprints of a few renders made before the module was split into a package
# (stills with no occluder / eyeglasses / scarf / defocus, a motion-blurred video clip).
# Any change to the renderer's geometry, colours, occluders, blur or noise moves them. The
# tolerances only absorb last-ulp differences of NumPy's float32 maths across CPUs and
# NumPy builds (a few uint8 values one level apart); on one machine the renderer is exact
# (test_render_is_deterministic_and_batch_independent).

PINNED_RGB_SUMS = (
  (211954, 206194, 185530),
  (302622, 234224, 200352),
  (204825, 190590, 196348),
  (311201, 264949, 227658),
  (271251, 226084, 226992),
  (268256, 226412, 231085),
  (239894, 201997, 209605),
)
PINNED_PART_COUNTS = (
  (713, 964, 566, 9, 15, 22, 15),
  (788, 1028, 414, 17, 13, 30, 14),
  (872, 822, 576, 4, 8, 15, 7),
  (859, 781, 632, 4, 2, 15, 11),
  (981, 886, 389, 10, 12, 20, 6),
  (1069, 844, 349, 6, 12, 19, 5),
  (958, 815, 490, 8, 8, 21, 4),
)
PINNED_OCCLUDED = (0, 68, 513, 0, 0, 0, 0)
PINNED_LANDMARKS = (  # points 8 (chin), 30 (nose tip), 36, 45 (eye corners), 48, 54 (mouth)
  (
    (24.085, 43.684),
    (18.542, 27.254),
    (10.191, 19.102),
    (28.554, 17.321),
    (15.461, 33.209),
    (24.916, 32.292),
  ),
  (
    (20.556, 41.849),
    (22.486, 29.204),
    (14.704, 17.075),
    (32.889, 19.444),
    (17.395, 34.191),
    (25.968, 35.308),
  ),
  (
    (22.810, 40.539),
    (26.209, 25.360),
    (16.881, 17.230),
    (33.034, 17.299),
    (21.032, 31.397),
    (29.460, 31.433),
  ),
  (
    (23.618, 39.890),
    (27.438, 25.574),
    (18.977, 17.218),
    (34.970, 18.352),
    (21.827, 30.299),
    (30.966, 30.948),
  ),
  (
    (27.578, 39.275),
    (29.887, 25.271),
    (19.823, 17.408),
    (35.006, 15.710),
    (25.395, 32.091),
    (33.479, 31.187),
  ),
  (
    (25.175, 38.273),
    (24.806, 25.217),
    (16.883, 17.026),
    (31.791, 16.354),
    (20.873, 31.173),
    (29.127, 30.801),
  ),
  (
    (25.405, 38.592),
    (37.039, 25.499),
    (26.847, 16.859),
    (38.355, 16.911),
    (30.246, 31.116),
    (36.789, 31.146),
  ),
)
PINNED_ATTRIBUTES = (
  "0001100011000100100000",
  "1110011000100100011010",
  "1010010000000000010000",
  "1000000000000100010100",
  "0000010000000101000001",
  "0000010000000101000001",
  "0000010000010101000001",
)
PINNED_FRONTAL_96 = (  # points 0, 8, 16, 30, 36, 45, 48, 54
  (16.4860, 39.4360),
  (47.5000, 80.6968),
  (78.5140, 39.4360),
  (47.5000, 54.4120),
  (31.1800, 37.1320),
  (63.8200, 37.1320),
  (39.0520, 65.9320),
  (55.9480, 65.9320),
)


def _pinned_renders():
  lat = fr.identity_latents(2024, np.array([0, 1, 2, 3]))
  nui = fr.sample_nuisances(np.random.default_rng(2024), 4, occluder_prob=0.4, eyeglasses_prob=0.4)
  nui["occluder"][:] = [0, 1, 2, 0]
  nui["defocus_sigma"][3] = 1.0
  stills = fr.render(lat, nui, 48, seed_or_rng=5)
  clip = fr.video_nuisances(np.random.default_rng(7), 3, motion_blur_prob=1.0)
  video = fr.render(fr.identity_latents(2024, np.full(3, 9)), clip, 48, seed_or_rng=1)
  return {k: np.concatenate([stills[k], video[k]]) for k in stills}


def test_pinned_renders():
  out = _pinned_renders()
  rgb = out["image"].reshape(7, -1, 3).sum(1, dtype=np.int64)
  np.testing.assert_allclose(rgb, PINNED_RGB_SUMS, rtol=0, atol=24)
  counts = np.stack(
    [np.bincount(s.ravel(), minlength=len(fr.PART_NAMES)) for s in out["segmentation"]]
  )
  np.testing.assert_allclose(counts, PINNED_PART_COUNTS, rtol=0, atol=2)
  np.testing.assert_allclose(out["occluder_mask"].sum((1, 2)), PINNED_OCCLUDED, rtol=0, atol=2)
  np.testing.assert_allclose(
    out["landmarks"][:, [8, 30, 36, 45, 48, 54]], PINNED_LANDMARKS, rtol=0, atol=2e-3
  )
  bits = ["".join(str(int(v)) for v in row) for row in out["attributes"]]
  assert tuple(bits) == PINNED_ATTRIBUTES


def test_pinned_frontal_template():
  template = fr.frontal_landmarks(96)[[0, 8, 16, 30, 36, 45, 48, 54]]
  np.testing.assert_allclose(template, PINNED_FRONTAL_96, rtol=0, atol=2e-4)


def test_package_exports_the_public_names():
  for name in (
    "ATTRIBUTE_NAMES",
    "IDENTITY_ATTRIBUTES",
    "NUM_LANDMARKS",
    "NUM_MARKS",
    "OCCLUDER_KINDS",
    "PART_NAMES",
    "frontal_landmarks",
    "identity_attributes",
    "identity_latents",
    "mean_latents",
    "neutral_nuisances",
    "render",
    "sample_nuisances",
    "video_nuisances",
  ):
    assert name in fr.__all__ and getattr(fr, name) is not None
  assert callable(fr.render) and fr.NUM_LANDMARKS == 68
