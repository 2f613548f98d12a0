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
