"""Tests for jfr.data.benchmarks.ijb (insightface's IJB-B/C files) and jfr.eval.benchmarks.ijb."""

import numpy as np
import pytest

from benchmark_layouts import COLOURS, fake_model, write_ijb
from jfr.data.benchmarks import ijb as ijb_files
from jfr.eval import registry
from jfr.eval.benchmarks import ijb


def _insightface_roc_reference(labels, scores):
  """sklearn.metrics.roc_curve(drop_intermediate=True) written with loops."""
  order = sorted(range(len(scores)), key=lambda i: -scores[i])
  thresholds, tps, fps = [], [], []
  tp = fp = 0
  for k, i in enumerate(order):
    tp += labels[i]
    fp += 1 - labels[i]
    if k == len(order) - 1 or scores[order[k + 1]] != scores[i]:
      tps.append(tp)
      fps.append(fp)
  keep = [0]
  for j in range(1, len(fps) - 1):
    if fps[j - 1] - 2 * fps[j] + fps[j + 1] != 0 or tps[j - 1] - 2 * tps[j] + tps[j + 1] != 0:
      keep.append(j)
  keep.append(len(fps) - 1)
  fps = [0] + [fps[j] for j in keep]
  tps = [0] + [tps[j] for j in keep]
  return [f / fps[-1] for f in fps], [t / tps[-1] for t in tps]


def _insightface_tar_reference(labels, scores, x_labels):
  fpr, tpr = _insightface_roc_reference(labels, scores)
  fpr, tpr = fpr[::-1], tpr[::-1]
  out = []
  for x in x_labels:
    _, index = min(zip([abs(f - x) for f in fpr], range(len(fpr))))
    out.append(tpr[index])
  return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tar_at_far_matches_insightface_rendering(seed):
  rng = np.random.default_rng(seed)
  labels = (rng.random(3000) < 0.2).astype(int)
  scores = np.round(rng.normal(size=3000) + 1.5 * labels, 1)  # many ties, collinear runs
  fars = (1e-4, 1e-3, 1e-2, 1e-1, 0.3)
  want = _insightface_tar_reference(labels.tolist(), scores.tolist(), fars)
  np.testing.assert_allclose(ijb.insightface_tar_at_far(scores, labels, fars), want)


def test_template_features_match_insightface_rendering():
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(40, 6))
  templates = rng.integers(10, 16, 40)
  medias = rng.integers(0, 4, 40)
  ids, got = ijb.template_features(feats, templates, medias)
  # insightface image2template_feature
  unique = np.unique(templates)
  want = np.zeros((len(unique), 6))
  for c, t in enumerate(unique):
    (it,) = np.where(templates == t)
    media_feats = []
    for m in np.unique(medias[it]):
      media_feats.append(feats[it][medias[it] == m].mean(axis=0))
    want[c] = np.sum(media_feats, axis=0)
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  np.testing.assert_array_equal(ids, unique)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pair_file_is_space_separated_and_parsed_in_blocks(tmp_path):
  path = tmp_path / "ijbc_template_pair_label.txt"
  rows = [(1, 11065, 1), (1, 11066, 0), (3, 4, 1), (7, 9, 0), (5, 6, 1)]
  path.write_text("".join(f"{a} {b} {y}\n" for a, b, y in rows))
  t1, t2, same = ijb_files.read_template_pairs(str(path), block_lines=2)
  assert t1.tolist() == [1, 1, 3, 7, 5] and t2.tolist() == [11065, 11066, 4, 9, 6]
  assert same.tolist() == [True, False, True, False, True]
  path.write_text("1 2 1\n3,4,0\n")
  with pytest.raises(ValueError, match=":2: expected"):
    ijb_files.read_template_pairs(str(path))
  path.write_text("1 2 2\n")
  with pytest.raises(ValueError, match="label must be 0 or 1"):
    ijb_files.read_template_pairs(str(path))


def _flat(colour, size=24):
  return np.broadcast_to(np.asarray(colour, np.uint8), (size, size, 3)).copy()


LANDMARKS = np.array([[8.0, 9.0], [16.0, 9.0], [12.0, 13.0], [9.0, 17.0], [15.0, 17.0]])


def _fixture(root, target="ijbc"):
  """4 subjects (one flat colour each); per subject a gallery template (2 crops, 1 media) and
  two probe templates (a still + 2 frames of one video)."""
  crops, gallery = [], {}
  probe = []
  k = 0
  for s in range(4):
    g = 100 + s
    for j in range(2):
      crops.append((f"{k}.jpg", _flat(COLOURS[s]), LANDMARKS, 0.9, g, 1000 + k))
      k += 1
    gallery.setdefault("G1" if s < 2 else "G2", []).append((g, s))
    for p in range(2):
      t = 200 + 10 * s + p
      probe.append((t, s))
      crops.append((f"{k}.jpg", _flat(COLOURS[s]), LANDMARKS, 0.5 + 0.1 * p, t, 2000 + k))
      video = 3000 + k
      k += 1
      for _ in range(2):
        crops.append((f"{k}.jpg", _flat(COLOURS[s]), LANDMARKS, 0.7, t, video))
        k += 1
  subject = {
    t: s
    for _, _, _, _, t, _ in crops
    for t2, s in [*gallery["G1"], *gallery["G2"], *probe]
    if t == t2
  }
  ids = sorted(subject)
  pairs = [(a, b, int(subject[a] == subject[b])) for i, a in enumerate(ids) for b in ids[i + 1 :]]
  write_ijb(str(root), target, crops, pairs, galleries=gallery, probe=probe)
  return crops, pairs


def test_ijb_evaluator_on_separable_templates(tmp_path):
  crops, pairs = _fixture(tmp_path)
  layout = ijb_files.find_layout(str(tmp_path))
  assert layout.target == "ijbc" and layout.has_1n()
  out = registry.evaluate(
    "ijb", fake_model(16), None, {"data": str(tmp_path), "batch_size": 7, "flip": True}, seed=0
  )
  v = out["verification"]
  assert out["crops"] == len(crops) and out["templates"] == 12
  assert v["pairs"] == len(pairs) and v["genuine"] == sum(p[2] for p in pairs)
  # identical colours within a subject: every genuine pair scores 1, impostors less
  assert all(t == 1.0 for t in v["tar_at_far"].values())
  assert v["auc"] == 1.0
  ident = out["identification"]
  for gallery in ("G1", "G2"):
    g = ident["galleries"][gallery]
    assert g["rank1"] == 1.0 and g["mated_probes"] == 4 and g["nonmated_probes"] == 4
    assert g["tpir@fpir=0.1"] == 1.0
  assert ident["union"]["rank1"] == 1.0 and ident["union"]["nonmated_probes"] == 0
  assert "## 1:N identification" in out["_markdown"]


def test_ijbb_names_and_crop_order_mismatch(tmp_path):
  _fixture(tmp_path, "ijbb")
  layout = ijb_files.find_layout(str(tmp_path))
  assert layout.gallery_names == ("S1", "S2") and layout.galleries[0].endswith(
    "ijbb_1N_gallery_S1.csv"
  )
  lines = open(layout.five_points).read().splitlines()
  lines[0], lines[1] = lines[1], lines[0]
  open(layout.five_points, "w").write("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match="same order"):
    registry.evaluate("ijb", fake_model(16), None, {"data": str(tmp_path)}, seed=0)


def test_missing_meta_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="meta/"):
    ijb_files.find_layout(str(tmp_path))
