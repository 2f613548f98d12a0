"""Tests for the ijba evaluator (jfr.eval.benchmarks.ijba) on IJB-A's released layout."""

import os

import numpy as np

from benchmark_layouts import COLOURS, fake_model, save_jpeg
from jfr.eval import registry

HEADER = (
  "TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID,SIGHTING_ID,FRAME,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT"
)


def _write(root, name, rows):
  os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
  with open(os.path.join(root, name), "w") as f:
    f.write(HEADER + "\n")
    for t, s, file in rows:
      f.write(f"{t},{s},{file},{t},0,,10,10,20,20\n")


def test_ijba_splits_on_separable_subjects(tmp_path):
  root = str(tmp_path)
  # images: subject s shown as a flat colour square inside a 40x40 photo
  for s in range(4):
    for k in range(3):
      image = np.full((40, 40, 3), 128, np.uint8)
      image[10:30, 10:30] = COLOURS[s]
      save_jpeg(os.path.join(root, "images", "img", f"{s}_{k}.jpg"), image)
  for split in (1, 2):
    enrolled = [0, 1, 2] if split == 1 else [1, 2, 3]
    gallery = [(100 + s, s, f"img/{s}_0.jpg") for s in enrolled]
    probe = [(200 + s, s, f"img/{s}_1.jpg") for s in range(4)]
    verify = [(300 + 2 * s + j, s, f"img/{s}_{1 + j}.jpg") for s in range(4) for j in range(2)]
    _write(root, f"IJB-A_1N_sets/split{split}/search_gallery_{split}.csv", gallery)
    _write(root, f"IJB-A_1N_sets/split{split}/search_probe_{split}.csv", probe)
    _write(root, f"IJB-A_11_sets/split{split}/verify_metadata_{split}.csv", verify)
    ids = [t for t, _, _ in verify]
    with open(
      os.path.join(root, f"IJB-A_11_sets/split{split}/verify_comparisons_{split}.csv"), "w"
    ) as f:
      f.writelines(f"{a},{b}\n" for i, a in enumerate(ids) for b in ids[i + 1 :])
  out = registry.evaluate("ijba", fake_model(16), None, {"data": root, "batch_size": 4}, seed=0)
  assert out["splits"] == 2 and out["faces"] == 12
  assert out["mean"]["Rank-1"] == 1.0 and out["mean"]["1:1 TAR@FAR=0.1"] == 1.0
  assert out["mean"]["TPIR@FPIR=0.1"] == 1.0 and out["protocol"]["out_of_gallery_probes"] == 1.0
  assert "| Rank-1 |" in out["_markdown"]
