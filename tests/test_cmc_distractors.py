"""Tests for jfr.eval.cmc_distractors (identification with distractors in the gallery)."""

import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

import jfr.data  # noqa: F401  (registers synthetic_faces)
from jfr.eval import embedding, registry
from jfr.eval.cmc_distractors import identification
from jfr.eval.identity_protocol import identity_protocol

SETTINGS = dict(
  split="test",
  video_split="video",
  probe_identity_fraction=0.5,
  finetune_per_identity=1,
  gallery_per_identity=1,
  distractor_counts=(0, 10, -1),
  video_frame_stride=2,
  max_rank=3,
  batch_size=8,
  seed=0,
)


def test_identification_with_distractors():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(6, 16))
  labels = np.repeat(np.arange(6), 4)
  features = centres[labels] + 0.05 * rng.normal(size=(24, 16))
  p = identity_protocol(
    labels, probe_identity_fraction=0.5, finetune_per_identity=1, gallery_per_identity=1, seed=0
  )
  distractors = features[p.distractor_stills]
  out = identification(features, labels, p, distractors, (0, -1), 3, seed=0)
  assert out["rank1_by_distractors"] == {"0": 1.0, "12": 1.0}
  assert out["ranks"] == [1, 2, 3] and out["num_probes"] == 6 and out["num_distractors"] == 12
  # Distractors that copy the probes' own features push the true match down to rank 2.
  copies = features[p.probe]
  out = identification(features, labels, p, copies * 2.0, (0, 6), 3, seed=0)
  assert out["cmc_by_distractors"]["0"][0] == 1.0
  assert out["cmc_by_distractors"]["6"][0] < 1.0 and out["cmc_by_distractors"]["6"][-1] == 1.0
  with pytest.raises(ValueError, match="distractor_counts"):
    identification(features, labels, p, distractors, (13,), 3, seed=0)
  with pytest.raises(ValueError, match="max_rank"):
    identification(features, labels, p, distractors, (0,), 4, seed=0)


def _oracle(builder, split, dim):
  """An embed function that knows each stored still's identity (one-hot); other images
  (video frames) get the all -1 vector, least similar to every still."""
  known = {
    ex["image"].tobytes(): ex["label"] for ex in tfds.as_numpy(builder.as_dataset(split=split))
  }

  def embed(images):
    out = -np.ones((len(images), dim), np.float32)
    for i, image in enumerate(embedding.check_images(images)):
      if image.tobytes() in known:
        out[i] = np.eye(dim, dtype=np.float32)[known[image.tobytes()]]
    return out

  return embed


def test_evaluator_on_tiny_data_with_an_oracle(tiny_data_dir):
  builder = tfds.builder("synthetic_faces/tiny", data_dir=tiny_data_dir)
  context = types.SimpleNamespace(builder=builder)
  num_labels = builder.info.features["label"].num_classes
  model = embedding.EvalModel(input_size=32, embed=_oracle(builder, "test", num_labels))
  out = registry.evaluate("cmc_with_distractors", model, context, SETTINGS, seed=123)
  test = tfds.as_numpy(builder.as_dataset(split="video"))
  protocol = out["protocol"]
  assert protocol["probe_identities"] == 3 and protocol["distractor_identities"] == 3
  assert protocol["distractor_stills"] == 12 and protocol["finetune_images"] == 3
  frames = sum(1 for ex in test if ex["frame_index"] % 2 == 0)
  assert 0 < protocol["distractor_frames"] < frames  # only the distractor identities' frames
  assert out["num_distractors"] == 12 + protocol["distractor_frames"]
  assert set(out["rank1_by_distractors"]) == {"0", "10", str(out["num_distractors"])}
  assert all(v == 1.0 for v in out["rank1_by_distractors"].values())
  without_frames = registry.evaluate(
    "cmc_with_distractors", model, context, {**SETTINGS, "video_frame_stride": 0}, seed=0
  )
  assert without_frames["num_distractors"] == 12
  with pytest.raises(ValueError, match="unknown"):
    registry.evaluate("cmc_with_distractors", model, context, {**SETTINGS, "flip": True}, seed=0)
  with pytest.raises(ValueError, match="needs"):
    registry.evaluate("cmc_with_distractors", embedding.EvalModel(32), context, SETTINGS, seed=0)
