"""Tests for jfr.data.benchmarks.ytf (splits.txt, frames) and the ytf evaluator."""

import numpy as np
import pytest

from benchmark_layouts import fake_model, pooled_features, write_ytf
from face_layouts import render_faces
from jfr.data.benchmarks import ytf as ytf_files
from jfr.eval import registry
from jfr.eval.benchmarks import ytf


@pytest.fixture(scope="module")
def ytf_root(tmp_path_factory):
  """Six people, two videos each; a person's two videos hold the same frames (5 and 3)."""
  root = tmp_path_factory.mktemp("ytf_data")
  faces, _, _, _ = render_faces(6, 5, 16, seed=4)
  names = ["Aaron_Eckhart", "Abdullah", "Adam_Sandler", "Al_Gore", "Alan_Ball", "Bill_Gates"]
  videos = {}
  for i, name in enumerate(names):
    frames = faces[5 * i : 5 * i + 5]
    videos[f"{name}/0"] = frames
    videos[f"{name}/1"] = frames
  pairs = []
  for split in (1, 2):
    for k in range(3):
      i = 3 * (split - 1) + k
      pairs.append((split, f"{names[i]}/0", f"{names[i]}/1", True))
      pairs.append((split, f"{names[i]}/0", f"{names[(i + 1) % 6]}/1", False))
  write_ytf(str(root), videos, pairs)
  return root


def test_read_splits_comma_space_with_header(ytf_root):
  text = (ytf_root / "splits.txt").read_text().splitlines()
  assert text[0] == "split number, pair number, first name, second name, is same"
  assert text[1] == "1, 1, Aaron_Eckhart/0, Aaron_Eckhart/1, 1"
  pairs = ytf_files.read_splits(str(ytf_root / "splits.txt"))
  assert pairs.first[0] == "Aaron_Eckhart/0" and pairs.split.tolist() == [1] * 6 + [2] * 6
  assert pairs.same.tolist() == [True, False] * 6
  frames = ytf_files.video_frames(str(ytf_root / "aligned_images_DB"), "Al_Gore/1")
  assert [f.rsplit("/", 1)[1] for f in frames][:2] == [
    "aligned_detect_1.1.jpg",
    "aligned_detect_1.2.jpg",
  ]


def test_read_splits_errors(tmp_path):
  (tmp_path / "s.txt").write_text("1, 1, A/0, B/0, 2\n")
  with pytest.raises(ValueError, match="0 or 1"):
    ytf_files.read_splits(str(tmp_path / "s.txt"))
  (tmp_path / "s.txt").write_text("1, 1, A, B/0, 1\n")
  with pytest.raises(ValueError, match="Name/number"):
    ytf_files.read_splits(str(tmp_path / "s.txt"))


def test_chunks_and_subsample():
  assert [len(c) for c in ytf.chunks(70, 32)] == [24, 23, 23]
  assert [len(c) for c in ytf.chunks(5, 32)] == [5]
  assert ytf.subsample(list(range(10)), 4) == [1, 3, 6, 8]
  assert ytf.subsample(list(range(3)), 4) == [0, 1, 2]


def test_same_videos_verify_at_accuracy_one_mean_and_aggregator(ytf_root):
  sizes = []

  def embed_sets(frames, mask):
    sizes.extend(mask.sum(axis=1).tolist())
    assert frames.shape[1] == 2 and frames.dtype == np.uint8  # padded to max_set_size
    feats = pooled_features(frames.reshape(-1, *frames.shape[2:])).reshape(*mask.shape, -1)
    return (feats * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)

  model = fake_model(16, embed_sets=embed_sets)
  settings = {"data": str(ytf_root), "max_set_size": 2, "batch_size": 4}
  out = registry.evaluate("ytf", model, None, settings, seed=0)
  assert out["mean"]["accuracy"] == 1.0 and out["aggregator"]["accuracy"] == 1.0
  assert out["videos"] == 12 and out["frames"] == 60
  assert sorted(set(sizes)) == [1, 2] and sum(sizes) == 60  # 5 frames -> chunks of 2, 2, 1
  # with a mean aggregator, the length-weighted chunk mean equals the feature average
  assert out["aggregator"]["eer"] == pytest.approx(out["mean"]["eer"])
  sub = registry.evaluate(
    "ytf", fake_model(16), None, {"data": str(ytf_root), "frames_per_video": 2}, seed=0
  )
  assert sub["frames"] == 24 and "aggregator" not in sub and sub["mean"]["accuracy"] == 1.0
  with pytest.raises(ValueError, match="embed_sets"):
    registry.evaluate(
      "ytf", fake_model(16), None, {"data": str(ytf_root), "aggregate": "aggregator"}, seed=0
    )
