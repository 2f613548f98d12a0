"""Tests for jfr.data.benchmarks.lfw (pair lists, crops) and the lfw evaluator."""

import numpy as np
import pytest

from benchmark_layouts import fake_model, write_lfw, write_pairs_file
from face_layouts import render_faces
from jfr.data.benchmarks import lfw as lfw_files
from jfr.eval import registry

NAMES = ["Aaron_Peirsol", "Abel_Pacheco", "Adam_Sandler", "Al_Gore", "Ana_Guevara", "Bill_Gates"]


@pytest.fixture(scope="module")
def lfw_root(tmp_path_factory):
  """Two folds of 2 same + 2 different pairs (pairs.txt) and View 1 files; a same pair shows
  the same picture twice."""
  root = tmp_path_factory.mktemp("lfw_data")
  faces_, _, five, _ = render_faces(6, 1, 40, seed=3)
  faces = {}
  for i, name in enumerate(NAMES):
    faces[(name, 1)] = faces_[i]
    faces[(name, 2)] = faces_[i]
  write_lfw(str(root), faces, [], [], header="")
  fold1 = (
    [(NAMES[0], 1, 2), (NAMES[1], 1, 2)],
    [(NAMES[0], 1, NAMES[2], 1), (NAMES[3], 2, NAMES[4], 1)],
  )
  fold2 = (
    [(NAMES[2], 1, 2), (NAMES[3], 1, 2)],
    [(NAMES[1], 2, NAMES[5], 1), (NAMES[4], 1, NAMES[0], 2)],
  )
  write_pairs_file(str(root / "pairs.txt"), "2\t2", [fold1, fold2])
  write_pairs_file(str(root / "pairsDevTrain.txt"), "2", [fold1])
  write_pairs_file(str(root / "pairsDevTest.txt"), "2", [fold2])
  return root


def test_read_pairs_forms_and_folds(lfw_root):
  pairs = lfw_files.read_pairs(str(lfw_root / "pairs.txt"))
  assert pairs.num_folds == 2 and pairs.fold.tolist() == [0] * 4 + [1] * 4
  assert pairs.same.tolist() == [True, True, False, False] * 2
  assert pairs.first[0] == "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
  assert pairs.second[2] == "Adam_Sandler/Adam_Sandler_0001.jpg"
  dev = lfw_files.read_pairs(str(lfw_root / "pairsDevTest.txt"))
  assert dev.num_folds == 1 and dev.same.sum() == 2


@pytest.mark.parametrize(
  "text, match",
  [
    ("1\t1\nA\t1\t2\nA\t1\tB\t1\tC\n", "expected 'Name n1 n2'"),
    ("1\t2\nA\t1\t2\nA\t1\tB\t1\n", "= 4 pairs, found 2"),
    ("1\t1\nA\tx\t2\nA\t1\tB\t1\n", "image number"),
    ("1\t1\tx\n", "header"),
    ("1\t1\nA\t1\tB\t1\nA\t1\tB\t2\n", "matched pairs"),
  ],
)
def test_read_pairs_errors(tmp_path, text, match):
  (tmp_path / "pairs.txt").write_text(text)
  with pytest.raises(ValueError, match=match):
    lfw_files.read_pairs(str(tmp_path / "pairs.txt"))


def test_centre_crop_and_five_point_policies(lfw_root):
  path = str(lfw_root / "lfw" / NAMES[0] / f"{NAMES[0]}_0001.jpg")
  face = lfw_files.load_face(path, 30)
  assert face.shape == (30, 30, 3)
  # the central 150x150 holds the face, no grey border
  assert np.abs(face.astype(int) - 90).max() > 30
  lm = np.array([[100, 110], [150, 110], [125, 135], [105, 160], [145, 160]], float)
  aligned = lfw_files.load_face(path, 28, landmarks=lm)
  assert aligned.shape == (28, 28, 3) and not np.array_equal(aligned[:, :, 0], face[:28, :28, 0])


def test_view2_identical_pairs_verify_at_accuracy_one(lfw_root):
  out = registry.evaluate(
    "lfw", fake_model(16), None, {"data": str(lfw_root), "batch_size": 3}, seed=0
  )
  assert out["accuracy"] == 1.0 and out["pairs"] == 8 and out["view"] == 2
  assert len(out["fold_accuracies"]) == 2 and out["alignment"] == "centre_crop"
  # unique images the lists name: 4 people x 2 (same pairs) + Ana_Guevara_1, Bill_Gates_1
  assert out["images"] == 10


def test_view1_and_landmark_file(lfw_root, tmp_path):
  lines = []
  for name in NAMES:
    for n in (1, 2):
      lines.append(f"lfw/{name}/{name}_{n:04d}.jpg 100 110 150 110 125 135 105 160 145 160")
  (tmp_path / "lfw_5pts.txt").write_text("\n".join(lines) + "\n")
  settings = {"data": str(lfw_root), "view": 1, "landmarks": str(tmp_path / "lfw_5pts.txt")}
  out = registry.evaluate("lfw", fake_model(16), None, settings, seed=0)
  assert (
    out["accuracy"] == 1.0 and out["train_accuracy"] == 1.0 and out["alignment"] == "five_point"
  )
  assert 0.0 < out["threshold"] <= 4.0
