"""Tests for jfr.data.benchmarks.verification_bin (restricted unpickler) and
jfr.eval.benchmarks.verification (arcface_torch's k-fold accuracy, the insightface_bin evaluator)."""

import os
import pickle

import numpy as np
import pytest

from benchmark_layouts import fake_model, pooled_features, write_bin
from face_layouts import render_faces
from jfr.data.benchmarks import verification_bin
from jfr.eval import registry
from jfr.eval.benchmarks import verification


class _CallsSystem:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_pickle_that_calls_a_function_is_refused_before_running(tmp_path):
  marker = tmp_path / "ran"
  path = tmp_path / "evil.bin"
  path.write_bytes(pickle.dumps(([_CallsSystem(marker), b"x"], [True]), protocol=2))
  with pytest.raises(verification_bin.UnsafePickleError, match=r"system"):
    verification_bin.read_bin(str(path))
  assert not marker.exists()
  # the same with another callable and protocol
  path.write_bytes(pickle.dumps((eval, [True]), protocol=4))
  with pytest.raises(verification_bin.UnsafePickleError, match="builtins.eval"):
    verification_bin.read_bin(str(path))


def test_protocol2_bytes_and_python2_strings_are_read(tmp_path):
  # Python 3, protocol 2: bytes are pickled as _codecs.encode(<latin-1 str>, 'latin1').
  data = pickle.dumps(([b"\xff\xd8a", b"\x00b"], [True]), protocol=2)
  assert b"_codecs" in data
  (tmp_path / "p2.bin").write_bytes(data)
  got = verification_bin.read_bin(str(tmp_path / "p2.bin"))
  assert got.images == [b"\xff\xd8a", b"\x00b"] and got.issame.tolist() == [True]
  # Python 2 str: SHORT_BINSTRING opcodes (hand-written protocol-2 stream)
  py2 = b"\x80\x02]q\x00(U\x03\xff\xd8aq\x01U\x02\x00bq\x02e]q\x03\x89a\x86q\x04."
  (tmp_path / "py2.bin").write_bytes(py2)
  got = verification_bin.read_bin(str(tmp_path / "py2.bin"))
  assert got.images == [b"\xff\xd8a", b"\x00b"] and got.issame.tolist() == [False]


@pytest.mark.parametrize(
  "obj, match",
  [
    (([b"a"], [True]), "two images per pair"),
    (([b"a", "b"], [True]), "expected bytes"),
    ((b"a", b"b", [True]), "pair"),
  ],
)
def test_malformed_bins_are_value_errors(tmp_path, obj, match):
  path = tmp_path / "bad.bin"
  path.write_bytes(pickle.dumps(obj, protocol=2))
  with pytest.raises(ValueError, match=match):
    verification_bin.read_bin(str(path))
  path.write_bytes(b"not a pickle")
  with pytest.raises(ValueError, match="not a readable"):
    verification_bin.read_bin(str(path))


def _arcface_torch_reference(embeddings, issame, nfolds=10):
  """arcface_torch eval/verification.py evaluate() (accuracy part), written with loops."""
  thresholds = np.arange(0, 4, 0.01)
  e1, e2 = embeddings[0::2], embeddings[1::2]
  dist = np.sum(np.square(e1 - e2), 1)
  n = len(issame)
  sizes = [n // nfolds + (1 if i < n % nfolds else 0) for i in range(nfolds)]
  bounds = np.cumsum([0] + sizes)
  acc = []
  for k in range(nfolds):
    test = np.arange(bounds[k], bounds[k + 1])
    train = np.setdiff1d(np.arange(n), test)

    def accuracy(t, idx):
      predict = np.less(dist[idx], t)
      actual = issame[idx]
      tp = np.sum(predict & actual)
      tn = np.sum(~predict & ~actual)
      return (tp + tn) / idx.size

    train_acc = [accuracy(t, train) for t in thresholds]
    acc.append(accuracy(thresholds[int(np.argmax(train_acc))], test))
  return np.mean(acc), np.std(acc)


def test_kfold_accuracy_matches_arcface_torch_rendering():
  rng = np.random.default_rng(0)
  p = 203  # not a multiple of 10: unequal contiguous folds
  same = rng.random(p) < 0.5
  a = rng.normal(size=(p, 8))
  b = np.where(same[:, None], a + rng.normal(scale=0.9, size=(p, 8)), rng.normal(size=(p, 8)))
  emb = np.empty((2 * p, 8))
  emb[0::2], emb[1::2] = a, b
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  mean, std = _arcface_torch_reference(emb, same)
  got = verification.arcface_kfold_accuracy(
    verification.squared_distances(emb[0::2], emb[1::2]), same
  )
  assert 0.6 < mean < 1.0
  np.testing.assert_allclose([got["accuracy"], got["std"]], [mean, std], atol=1e-12)
  assert verification.contiguous_folds(23, 10).tolist()[:6] == [0, 0, 0, 1, 1, 1]


@pytest.fixture(scope="module")
def bin_file(tmp_path_factory):
  faces, _, _, _ = render_faces(12, 1, 16, seed=1)
  same = [True, False] * 6  # alternate, so that every fold holds both kinds
  first = [faces[i // 2] for i in range(12)]
  second = [faces[i // 2] if s else faces[6 + i // 2] for i, s in enumerate(same)]
  path = tmp_path_factory.mktemp("bins") / "synthetic.bin"
  write_bin(str(path), first, second, same, protocol=2)
  return str(path)


def test_identical_pairs_verify_at_accuracy_one(bin_file, tmp_path):
  calls = []
  model = fake_model(16)
  counting = model.__class__(input_size=16, embed=lambda x: calls.append(len(x)) or model.embed(x))
  settings = {"data": bin_file, "folds": 3, "batch_size": 5, "cache": str(tmp_path / "c")}
  out = registry.evaluate("insightface_bin", counting, None, settings, seed=0)
  r = out["sets"]["synthetic"]
  assert r["pairs"] == 12 and r["accuracy"] == 1.0 and r["flip"]["accuracy"] == 1.0
  # xnorm: mean feature norm over plain and mirrored images (decoded JPEGs)
  data = verification_bin.read_bin(bin_file)
  from jfr.data import image_files

  images = np.stack([image_files.decode_image(b) for b in data.images])
  norms = np.linalg.norm(
    np.concatenate([pooled_features(images), pooled_features(images[:, :, ::-1])]), axis=1
  )
  assert r["xnorm"] == pytest.approx(norms.mean(), rel=1e-5)
  assert "synthetic/flip" in out["_roc"] and "| synthetic | 12 |" in out["_markdown"]
  assert sum(calls) == 2 * 24  # plain + mirrored images, in batches of 2 x 5
  # the cache is reused: no further embedding
  again = registry.evaluate("insightface_bin", counting, None, settings, seed=0)
  assert sum(calls) == 48 and again["sets"] == out["sets"]
  assert os.path.isfile(str(tmp_path / "c") + "_synthetic.npz")


def test_flip_off_reports_the_plain_accuracy_only(bin_file):
  out = registry.evaluate(
    "insightface_bin", fake_model(16), None, {"data": bin_file, "folds": 2, "flip": False}, seed=0
  )
  assert "flip" not in out["sets"]["synthetic"] and out["sets"]["synthetic"]["accuracy"] == 1.0
