"""Tests for jfr.prepare: each real layout -> a tfds data set whose labels, counts and
pixels round-trip; resume after a kill; unreadable files; configs train on the result."""

import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from face_layouts import (
  render_faces,
  write_celeba,
  write_recordio,
  write_vggface2,
  write_ytf_frames,
)
from jfr import prepare
from jfr.data import align, dataset_facts, pipelines


@pytest.fixture(scope="module")
def faces():
  return render_faces(8, 4, 32)


def _write_folders(root, images, labels):
  hashes = {}
  for k, (image, c) in enumerate(zip(images, labels)):
    os.makedirs(root / f"{int(c):07d}", exist_ok=True)
    Image.fromarray(image).save(root / f"{int(c):07d}" / f"{k:03d}.png")
    hashes[hashlib.sha1(image.tobytes()).hexdigest()] = f"{int(c):07d}"
  return hashes


def _arrays(data_dir, name, split, features=("image", "label")):
  builder = pipelines.prepare_builder(name, str(data_dir))
  return builder, pipelines.load_arrays(builder, split, features)


def test_folders_round_trip_labels_counts_pixels(tmp_path, faces):
  images, labels, _, _ = faces
  hashes = _write_folders(tmp_path / "in", images, labels)
  (tmp_path / "in" / "0000000" / ".DS_Store").write_bytes(b"x")
  report = prepare.prepare(
    "folders",
    str(tmp_path / "in"),
    str(tmp_path / "tfds"),
    "faces",
    image_size=32,
    test_identities="2",
    shard_size=5,
  )
  assert report["identities"] == {"train": 6, "test": 2}
  assert report["images"] == {"train": 24, "test": 8}
  assert report["skipped"]["system_file"]["count"] == 1
  assert json.loads((tmp_path / "tfds" / "faces" / "prepare_report.json").read_text()) == report
  seen = set()
  for split in ("train", "test"):
    builder, arrays = _arrays(tmp_path / "tfds", "faces", split)
    label_feature = builder.info.features["label"]
    for image, label in zip(arrays["image"], arrays["label"]):
      # Same size, no alignment: the pixels come back exactly, under the right identity.
      assert hashes[hashlib.sha1(image.tobytes()).hexdigest()] == label_feature.int2str(label)
      seen.add(label_feature.int2str(label))
    if split == "train":
      assert set(arrays["label"]) == set(range(6))
    else:
      assert set(arrays["label"]) == {6, 7}
  assert len(seen) == 8
  facts = dataset_facts.dataset_facts(builder)
  assert facts.prepared and facts.num_train_classes == 6 and facts.image_size == 32
  assert facts.missing(["label", "attributes", "segmentation"]) == ["attributes", "segmentation"]
  with pytest.raises(ValueError, match="segmentation"):
    dataset_facts.require_features(builder, ["label", "segmentation"], "configs/interpretable.py")
  example = next(iter(tfds.as_numpy(builder.as_dataset(split="train"))))
  assert np.isnan(example["landmarks"]).all() and (example["segmentation"] == 255).all()
  assert example["video_id"] == -1 and not example["attributes"].any()


def test_recordio_keeps_jpeg_bytes(tmp_path, faces):
  images, labels, _, _ = faces
  written = write_recordio(str(tmp_path / "rec"), images, labels)
  report = prepare.prepare(
    "recordio", str(tmp_path / "rec"), str(tmp_path / "tfds"), "emore", image_size=32
  )
  assert sum(report["images"].values()) == len(images)
  assert report["alignment"]["train"] == {"kept": report["images"]["train"]}
  builder = pipelines.prepare_builder("emore", str(tmp_path / "tfds"))
  stored = set()
  for split in builder.info.splits:
    ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    stored |= {ex["image"] for ex in tfds.as_numpy(ds)}
  assert stored == set(written["jpegs"])


def test_vggface2_five_point_alignment(tmp_path, faces):
  images, labels, five, _ = faces
  write_vggface2(str(tmp_path), images, labels, five)
  report = prepare.prepare(
    "vggface2",
    str(tmp_path / "train"),
    str(tmp_path / "tfds"),
    "vgg",
    image_size=32,
    test_identities="0.25",
  )
  assert report["alignment"]["train"] == {"five_point": report["images"]["train"]}
  _, arrays = _arrays(tmp_path / "tfds", "vgg", "train", ("image", "landmarks5"))
  residual = np.abs(arrays["landmarks5"] - align.arcface_template(32)).max()
  assert residual < 3.0  # the rendered faces' points fit the template to a few pixels
  # Aligning the source crop directly gives a similar image as from the placed photo.
  direct = align.warp(images[0], align.five_point_transforms(five[0], 32), 32)
  assert direct.shape == arrays["image"][0].shape


@pytest.mark.parametrize("variant", ["original", "png", "csv"])
def test_celeba_own_split_attributes_landmarks(tmp_path, faces, variant):
  images, labels, five, attributes = faces
  partition = np.where(labels < 5, 0, np.where(labels < 6, 1, 2))
  write_celeba(
    str(tmp_path / "celeba"), images, labels, five, attributes, partition, variant=variant
  )
  report = prepare.prepare(
    "celeba", str(tmp_path / "celeba"), str(tmp_path / "tfds"), "celeb", image_size=32
  )
  assert report["images"] == {"train": 20, "validation": 4, "test": 8}
  builder, arrays = _arrays(
    tmp_path / "tfds", "celeb", "train", ("label", "attributes", "landmarks5")
  )
  facts = dataset_facts.dataset_facts(builder)
  assert facts.present["attributes"] and facts.present["landmarks5"]
  assert np.abs(arrays["landmarks5"] - align.arcface_template(32)).max() < 3.0
  assert arrays["attributes"].any()
  if variant == "csv":
    assert not facts.present["label"] and (arrays["label"] == -1).all()
  else:
    assert facts.num_train_classes == 5 and set(arrays["label"]) == set(range(5))


def test_ytf_frames_become_videos_and_stills(tmp_path, faces):
  images, labels, _, _ = faces
  clips = {f"Person_{c}": [images[labels == c][:3], images[labels == c][1:]] for c in range(4)}
  write_ytf_frames(str(tmp_path / "frames"), clips)
  report = prepare.prepare(
    "ytf",
    str(tmp_path / "frames"),
    str(tmp_path / "tfds"),
    "ytf",
    image_size=32,
    test_identities="1",
    stills_per_video=2,
    margin=0.0,
  )
  assert report["images"] == {"train": 12, "test": 4, "train_video": 18, "video": 6}
  assert report["alignment"]["video"] == {"box": 6}
  builder, frames = _arrays(
    tmp_path / "tfds", "ytf", "video", ("image", "label", "video_id", "frame_index")
  )
  assert dataset_facts.dataset_facts(builder).present["videos"]
  grouped = pipelines.group_videos(frames)
  assert grouped["lengths"].tolist() == [3, 3]
  # The box crop (no margin) recovers the rendered face (up to JPEG and resampling).
  person = int(builder.info.features["label"].int2str(grouped["labels"][0]).split("_")[1])
  original = images[labels == person][0].astype(float)
  assert np.abs(grouped["frames"][0, 0].astype(float) - original).mean() < 12


def test_resume_after_kill_and_refusals(tmp_path, faces, monkeypatch):
  images, labels, _, _ = faces
  _write_folders(tmp_path / "in", images, labels)
  args = ("folders", str(tmp_path / "in"), str(tmp_path / "tfds"), "res")
  from jfr.data.formats import writer

  real, calls = writer._write_shard, []

  def dying(*a, **k):
    calls.append(1)
    if len(calls) == 3:
      raise KeyboardInterrupt  # killed while writing the third shard
    return real(*a, **k)

  monkeypatch.setattr(writer, "_write_shard", dying)
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare(*args, image_size=32, shard_size=6)
  out = tmp_path / "tfds" / "res" / "1.0.0"
  assert len(os.listdir(out / "_shards")) == 2 and not list(out.glob("*.tmp"))
  monkeypatch.setattr(writer, "_write_shard", lambda *a, **k: calls.append(2) or real(*a, **k))
  report = prepare.prepare(*args, image_size=32, shard_size=6)
  assert calls.count(2) == 4  # 4 + 2 shards in all: only the 4 missing ones written now
  assert sum(report["images"].values()) == len(images)
  again = prepare.prepare(*args, image_size=32, shard_size=6)
  assert again == report
  with pytest.raises(ValueError, match="other arguments"):
    prepare.prepare(*args, image_size=24, shard_size=6)
  with pytest.raises(ValueError, match="name"):
    prepare.prepare("folders", str(tmp_path / "in"), str(tmp_path / "tfds"), "Bad-Name")


def test_unreadable_images_fail_or_are_reported(tmp_path, faces):
  images, labels, _, _ = faces
  _write_folders(tmp_path / "in", images, labels)
  buf = io.BytesIO()
  Image.fromarray(images[0]).save(buf, format="JPEG")
  bad = tmp_path / "in" / "0000003" / "zz_truncated.jpg"
  bad.write_bytes(buf.getvalue()[:300])
  # A phone photo (EXIF orientation 6) and an RGBA PNG are read, not rejected.
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(np.rot90(images[1])).save(tmp_path / "in" / "0000003" / "phone.jpg", exif=exif)
  rgba = np.concatenate([images[2], np.full((32, 32, 1), 255, np.uint8)], -1)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "in" / "0000003" / "alpha.png")
  with pytest.raises(ValueError, match="zz_truncated.jpg"):
    prepare.prepare("folders", str(tmp_path / "in"), str(tmp_path / "t1"), "bad", image_size=32)
  report = prepare.prepare(
    "folders",
    str(tmp_path / "in"),
    str(tmp_path / "t2"),
    "bad",
    image_size=32,
    skip_unreadable=True,
  )
  assert report["skipped"]["unreadable"]["count"] == 1
  assert "zz_truncated.jpg" in report["skipped"]["unreadable"]["paths"][0]
  assert sum(report["images"].values()) == len(images) + 2


def test_cli_help_lists_formats():
  out = subprocess.run(
    [sys.executable, "-m", "jfr.prepare", "--helpfull"], capture_output=True, text=True, timeout=120
  )
  for name in ("recordio", "celeba", "vggface2", "ytf", "video_folders", "folders"):
    assert name in out.stdout


@pytest.mark.slow
def test_prepared_folders_train_tiny_baseline_beats_chance(tmp_path):
  from configs import baseline
  from jfr.methods import registry

  images, labels, _, _ = render_faces(16, 8, 32, seed=3)
  _write_folders(tmp_path / "in", images, labels)
  subprocess.run(
    [
      sys.executable,
      "-m",
      "jfr.prepare",
      "--format=folders",
      f"--input={tmp_path / 'in'}",
      f"--data_dir={tmp_path / 'tfds'}",
      "--name=mine",
      "--image_size=32",
      "--test_identities=6",
    ],
    check=True,
    timeout=120,
    capture_output=True,
  )
  config = baseline.get_config("tiny")
  config.dataset.name = "mine"
  config.dataset.data_dir = str(tmp_path / "tfds")
  config.num_train_steps = 30
  config.batch_size = 32
  config.evals.recognition.pairs_per_fold = 50  # 100 test pairs: chance is 0.5 +- 0.05
  results = registry.run(config, str(tmp_path / "run"), "all")
  (verification,) = [r["verification"] for r in results.values() if "verification" in r]
  assert verification["accuracy"] > 0.65, verification  # chance: 0.5 on balanced pairs
