"""Tests for the readers in jfr.data.formats on files written in the published layouts."""

import os
import struct

import numpy as np
import pytest
from PIL import Image

from face_layouts import (
  MXNET_MAGIC,
  dmlc_write_record,
  mx_pack,
  render_faces,
  write_celeba,
  write_recordio,
  write_vggface2,
  write_ytf_frames,
)
from jfr.data import formats
from jfr.data.formats import recordio, videos


@pytest.fixture(scope="module")
def faces():
  return render_faces(6, 4, 40)


def test_recordio_multi_part_records_and_identity_ranges(tmp_path, faces):
  images, labels, _, _ = faces
  written = write_recordio(str(tmp_path), images, labels)
  assert written["multi_part"] >= 5  # the writer really split records
  source = formats.read_source("recordio", str(tmp_path))
  np.testing.assert_array_equal(source.labels, labels)
  assert len(source.class_names) == 6 and source.notes["property"] == [6, 40, 40]
  for i in range(len(source)):
    assert source.reader(i) == written["jpegs"][i]
  assert "record 1" in source.describe(0)


def test_recordio_header_labels_without_record_zero(tmp_path):
  with open(tmp_path / "train.rec", "wb") as rec, open(tmp_path / "train.idx", "w") as idx:
    for i, label in enumerate([7.0, 3.0, 7.0]):
      idx.write(f"{i}\t{rec.tell()}\n")
      payload = MXNET_MAGIC * 3 + bytes([i])  # three aligned magic words: 4 parts
      dmlc_write_record(rec, mx_pack(0, label, i, 0, payload))
  source = recordio.index_recordio(str(tmp_path / "train.rec"))
  np.testing.assert_array_equal(source.labels, [1, 0, 1])
  assert source.class_names == ("3", "7")
  assert source.reader(2) == MXNET_MAGIC * 3 + bytes([2])
  flag, labels, id1, _, payload = recordio.unpack(mx_pack(3, [1, 2, 3], 5, 0, b"x"))
  assert flag == 3 and labels.tolist() == [1, 2, 3] and id1 == 5 and payload == b"x"


def test_recordio_errors_name_the_file(tmp_path):
  (tmp_path / "train.rec").write_bytes(struct.pack("<II", 0x12345678, 4) + b"abcd")
  (tmp_path / "train.idx").write_text("0\t0\n")
  with pytest.raises(ValueError, match="magic"):
    recordio.index_recordio(str(tmp_path))
  with pytest.raises(ValueError, match="does not exist"):
    recordio.index_recordio(str(tmp_path / "missing"))


def test_folders_casia_and_lfw_layouts(tmp_path, faces):
  images, labels, _, _ = faces
  for root, name_of in (
    (tmp_path / "casia", lambda c, k: (f"{c:07d}", f"{k + 1:03d}.jpg")),
    (tmp_path / "lfw-deepfunneled", lambda c, k: (f"Name_{c}", f"Name_{c}_{k + 1:04d}.jpg")),
  ):
    for k, (image, c) in enumerate(zip(images, labels)):
      folder, file = name_of(int(c), k)
      os.makedirs(root / folder, exist_ok=True)
      Image.fromarray(image).save(root / folder / file)
    os.makedirs(root / "empty_person")
    (root / "Thumbs.db").write_bytes(b"x")
    source = formats.read_source("folders", str(root))
    assert len(source) == len(images) and len(source.class_names) == 6
    assert source.skipped.counts() == {"empty_identity_folder": 1, "system_file": 1}
    np.testing.assert_array_equal(np.bincount(source.labels), [4] * 6)


def test_vggface2_reads_landmarks_and_boxes(tmp_path, faces):
  images, labels, five, _ = faces
  write_vggface2(str(tmp_path), images, labels, five)
  source = formats.read_source("vggface2", str(tmp_path / "train"))
  assert source.default_align == "five_point"
  assert source.landmarks5.shape == (len(images), 5, 2) and np.isfinite(source.landmarks5).all()
  assert source.class_names[0] == "n000002"
  assert np.isfinite(source.boxes).all()
  os.makedirs(tmp_path / "val" / "n000009")
  Image.fromarray(images[0]).save(tmp_path / "val" / "n000009" / "0001_01.jpg")
  with pytest.raises(ValueError, match="loose_landmark_val.csv"):
    formats.read_source("vggface2", str(tmp_path / "val"))


@pytest.mark.parametrize("variant", ["original", "png", "csv"])
def test_celeba_variants(tmp_path, faces, variant):
  images, labels, five, attributes = faces
  partition = np.where(labels < 4, 0, np.where(labels < 5, 1, 2))
  names = write_celeba(str(tmp_path), images, labels, five, attributes, partition, variant=variant)
  source = formats.read_source("celeba", str(tmp_path))
  assert len(source) == len(names)
  np.testing.assert_array_equal(source.own_split, partition)
  assert source.landmarks5.shape == (len(names), 5, 2)
  assert source.default_align == "five_point"
  if variant == "csv":  # the mirror has no identity file
    assert (source.labels == -1).all()
  else:
    np.testing.assert_array_equal(source.labels, labels)
  names_of = dict(zip(source.attribute_names, source.attributes[3].tolist()))
  assert names_of["Male"] == bool(attributes[3][list(source.attribute_names).index("Male")])
  if variant == "png":
    assert source.describe(0).endswith("000001.png")


def test_ytf_frame_images_boxes_and_order(tmp_path, faces):
  images, _, _, _ = faces
  clips = {"Aaron_Eckhart": [images[:3], images[3:4]], "Zoe_Ball": [images[8:12]]}
  write_ytf_frames(str(tmp_path), clips)
  os.makedirs(tmp_path / "Aaron_Eckhart" / "1" / ".hidden")
  source = formats.read_source("ytf", str(tmp_path))
  assert source.notes["layout"] == "frame_images_DB" and source.default_align == "box"
  assert source.video_names == ("Aaron_Eckhart/1", "Aaron_Eckhart/2", "Zoe_Ball/1")
  np.testing.assert_array_equal(source.video_ids, [0, 0, 0, 1, 2, 2, 2, 2])
  np.testing.assert_array_equal(source.frame_indices, [0, 1, 2, 0, 0, 1, 2, 3])
  assert np.isfinite(source.boxes).all() and source.notes["frames_without_box"] == 0
  table = videos.read_labeled_faces(str(tmp_path / "Zoe_Ball.labeled_faces.txt"))
  key = "Zoe_Ball/1/1.100.jpg"
  cx_cy_w = table[key][0] + table[key][2] / 2
  assert cx_cy_w > 0
  with pytest.raises(ValueError, match="frame_images_DB"):
    os.makedirs(tmp_path / "outer" / "frame_images_DB")
    formats.read_source("ytf", str(tmp_path / "outer"))


def test_unknown_format():
  with pytest.raises(ValueError, match="format"):
    formats.read_source("mxnet", "/tmp")
