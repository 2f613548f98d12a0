"""jfr.infer's model-free parts: reading inputs (files, folders, lists, landmarks, crop
policy, unreadable files), the thresholds contract, the FAN chunk policy and command checks."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from jfr.data import align
from jfr.infer import aggregate
from jfr.infer import inputs
from jfr.infer import loading
from jfr.infer import thresholds


def _write(path, h, w, seed=0):
  rng = np.random.default_rng(seed)
  Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
  return str(path)


def test_expand_inputs_folders_lists_and_hidden_files(tmp_path):
  folder = tmp_path / "faces"
  folder.mkdir()
  for name in ("f10.png", "f2.png", ".hidden.png", "notes.txt"):
    (folder / name).write_bytes(b"x")
  single = _write(tmp_path / "one.png", 8, 8)
  (tmp_path / "list.txt").write_text("# a comment\nfaces/f2.png\n\none.png\n")
  paths = inputs.expand_inputs([str(folder), single, str(tmp_path / "list.txt")])
  names = [os.path.relpath(p, tmp_path) for p in paths]
  assert names == ["faces/f2.png", "faces/f10.png", "one.png", "faces/f2.png", "one.png"]
  with pytest.raises(ValueError, match="missing.png"):
    inputs.expand_inputs([str(tmp_path / "missing.png")])


def test_read_landmarks_insightface_text_and_npy(tmp_path):
  images = [str(tmp_path / "a" / "1.jpg"), str(tmp_path / "b" / "2.jpg"), str(tmp_path / "3.jpg")]
  pts = np.arange(20, dtype=np.float32).reshape(2, 5, 2)
  # insightface's five-point text: '<image> x1 y1 ... x5 y5 <score>' (IJB-B/C meta files)
  lines = [
    "a/1.jpg " + " ".join(f"{v:.1f}" for v in pts[0].ravel()) + " 0.99",
    "2.jpg " + " ".join(f"{v:.1f}" for v in pts[1].ravel()),
  ]
  (tmp_path / "lm.txt").write_text("\n".join(lines) + "\n")
  got = inputs.read_landmarks(str(tmp_path / "lm.txt"), images)
  np.testing.assert_array_equal(got[:2], pts)
  assert np.isnan(got[2]).all()  # not named: taken as a crop
  np.save(tmp_path / "lm.npy", np.zeros((3, 5, 2)))
  assert inputs.read_landmarks(str(tmp_path / "lm.npy"), images).shape == (3, 5, 2)
  with pytest.raises(ValueError, match=r"\[3, 5, 2\]"):
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 2)))
    inputs.read_landmarks(str(tmp_path / "bad.npy"), images)
  (tmp_path / "short.txt").write_text("a/1.jpg 1 2 3\n")
  with pytest.raises(ValueError, match="short.txt:1"):
    inputs.read_landmarks(str(tmp_path / "short.txt"), images)


def test_landmarks_align_to_the_arcface_template(tmp_path):
  path = _write(tmp_path / "photo.png", 200, 300)
  size = 32
  # landmarks of a face that is the template scaled by 3 and moved by (40, 20)
  points = (align.arcface_template(size) * 3 + np.array([40.0, 20.0])).astype(np.float32)
  faces = inputs.load_faces([path], size, points[None])
  image = np.asarray(Image.open(path).convert("RGB"))
  expected = align.warp(image, align.five_point_transforms(points[None], size)[0], size)
  np.testing.assert_array_equal(faces.images[0], expected)
  assert faces.aligned.tolist() == [True] and not faces.warnings


def test_crop_policy_warns_refuses_and_names_files(tmp_path):
  ok = _write(tmp_path / "ok.png", 64, 64)
  wide = _write(tmp_path / "wide.png", 64, 80)  # aspect 1.25: not a face crop -> warning
  huge = _write(tmp_path / "huge.png", 400, 400)  # far above the model's side -> warning
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    faces = inputs.load_faces([ok, wide, huge], 32)
  assert faces.images.shape == (3, 32, 32, 3) and faces.images.dtype == np.uint8
  assert sorted(faces.warnings) == sorted([wide, huge])
  assert sum(issubclass(w.category, inputs.NotAFaceCropWarning) for w in caught) == 2
  strip = _write(tmp_path / "strip.png", 32, 96)
  with pytest.raises(ValueError, match="strip.png"):
    inputs.load_faces([strip], 32)
  tiny = _write(tmp_path / "tiny.png", 4, 4)
  with pytest.raises(ValueError, match="tiny.png"):
    inputs.load_faces([tiny], 32)
  broken = tmp_path / "broken.jpg"
  Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(broken, quality=90)
  broken.write_bytes(broken.read_bytes()[:200])
  with pytest.raises(ValueError, match="broken.jpg"):
    inputs.load_faces([str(broken)], 32)


def test_quantile_and_accuracy_thresholds_match_brute_force():
  rng = np.random.default_rng(0)
  scores = np.concatenate([rng.normal(0.6, 0.1, 300), rng.normal(0.2, 0.1, 1000)])
  same = np.arange(1300) < 300
  for far in (0.1, 0.01, 0.001):
    t = thresholds.quantile_threshold(scores[~same], far)
    assert (scores[~same] > t).mean() <= far
    # the next lower impostor score would exceed the rate (the threshold is tight)
    lower = np.sort(scores[~same])[np.sort(scores[~same]) < t]
    if len(lower):
      assert (scores[~same] > lower[-1]).mean() > far
  t = thresholds.best_accuracy_threshold(scores, same)
  grid = np.unique(scores)
  best = max(((scores > g) == same).mean() for g in np.concatenate([grid, grid - 1e-7]))
  assert ((scores > t) == same).mean() == pytest.approx(best)
  # below the resolution: the zero-false-accept threshold, flagged
  block = thresholds.verification_thresholds(scores[:310], same[:310], (1e-3,))
  assert block["far"]["0.001"] == pytest.approx(scores[300:310].max())
  assert block["far_resolution"] == pytest.approx(0.1)
  with pytest.warns(UserWarning, match="below what"):
    thresholds.lookup({"verification": block}, "verification", "far", 1e-3)
  with pytest.raises(ValueError, match="far=0.05"):
    thresholds.lookup({"verification": block}, "verification", "far", 0.05)


def test_missing_thresholds_file_is_named(tmp_path):
  with pytest.raises(ValueError, match="thresholds.json"):
    thresholds.read_thresholds(tmp_path)


@pytest.mark.parametrize("n,max_members", [(1, 8), (8, 8), (9, 8), (20, 8), (64, 7)])
def test_chunk_policy_covers_every_frame_in_near_equal_chunks(n, max_members):
  bounds = aggregate.chunk_bounds(n, max_members)
  sizes = [b - a for a, b in bounds]
  assert bounds[0][0] == 0 and bounds[-1][1] == n
  assert all(b0[1] == b1[0] for b0, b1 in zip(bounds, bounds[1:]))
  assert max(sizes) <= max_members and max(sizes) - min(sizes) <= 1
  assert len(bounds) == -(-n // max_members)


def test_commands_refuse_runs_of_other_methods():
  with pytest.raises(ValueError, match="aggregate.*fan.*recognition"):
    loading.check_command("aggregate", "recognition")
  with pytest.raises(ValueError, match="explain"):
    loading.check_command("explain", "fan")
  with pytest.raises(ValueError, match="attribute_maps"):
    loading.check_command("attributes", "attributes", {"embed"})
  loading.check_command("embed", "templates", {"embed"})
