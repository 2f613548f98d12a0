"""Tests for jfr.eval.identity_protocol (enrolled / distractor split of labelled stills)."""

import numpy as np
import pytest

from jfr.eval.identity_protocol import identity_protocol


def _split(labels, **kwargs):
  settings = dict(
    probe_identity_fraction=0.4, finetune_per_identity=2, gallery_per_identity=1, seed=3
  )
  settings.update(kwargs)
  return identity_protocol(labels, **settings)


def test_identity_protocol_partitions_the_stills():
  labels = np.repeat(np.arange(100, 110), 6)
  p = _split(labels)
  assert len(p.probe_identities) == 4 and len(p.distractor_identities) == 6
  assert not set(p.probe_identities) & set(p.distractor_identities)
  assert (len(p.finetune), len(p.gallery), len(p.probe)) == (8, 4, 12)
  used = np.concatenate([p.finetune, p.gallery, p.probe, p.distractor_stills])
  assert np.array_equal(np.sort(used), np.arange(60))  # a partition of the stills
  assert set(labels[p.gallery]) == set(p.probe_identities) == set(labels[p.probe])
  assert set(labels[p.finetune]) == set(p.probe_identities)
  assert set(labels[p.distractor_stills]) == set(p.distractor_identities)
  for identity in p.probe_identities:  # per identity: 2 fine-tuning, 1 gallery, 3 probes
    assert np.sum(labels[p.finetune] == identity) == 2
    assert np.sum(labels[p.gallery] == identity) == 1
  assert p.counts() == {
    "probe_identities": 4,
    "distractor_identities": 6,
    "finetune_images": 8,
    "gallery": 4,
    "probes": 12,
    "distractor_stills": 36,
  }


def test_identity_protocol_is_seeded():
  labels = np.repeat(np.arange(10), 6)
  a, b, c = _split(labels), _split(labels), _split(labels, seed=4)
  assert np.array_equal(a.probe, b.probe) and np.array_equal(a.finetune, b.finetune)
  assert not (np.array_equal(a.probe, c.probe) and np.array_equal(a.gallery, c.gallery))


def test_bad_protocols_are_errors():
  labels = np.repeat(np.arange(10), 6)
  with pytest.raises(ValueError, match="stills"):
    _split(labels, finetune_per_identity=5)
  with pytest.raises(ValueError, match="probe_identity_fraction"):
    _split(labels, probe_identity_fraction=1.0)
  with pytest.raises(ValueError, match="gallery_per_identity"):
    _split(labels, gallery_per_identity=0)
  with pytest.raises(ValueError, match="labels"):
    _split(labels.reshape(6, 10))
