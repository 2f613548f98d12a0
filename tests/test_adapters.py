"""Tests for jfr.data.adapters on tiny on-disk fixtures written by the tests themselves."""

import logging as py_logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from jfr.data import adapters
from jfr.data.adapters import celeb_a, common, ijb

FEATURES = {
  "image": (np.uint8, None),
  "label": (np.int64, ()),
  "attributes": (bool, None),
  "landmarks": (np.float32, (68, 2)),
  "segmentation": (np.uint8, None),
  "occluder_mask": (bool, None),
  "video_id": (np.int64, ()),
  "frame_index": (np.int64, ()),
}
A = len(adapters.JFR_ATTRIBUTE_NAMES)


def _write(path, array, fmt=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.asarray(array, np.uint8)).save(path, format=fmt)
  return path


def _const(h, w, value):
  return np.full((h, w, 3), value, np.uint8)


def _check_features(ex, hw):
  assert set(ex) == set(FEATURES)
  for key, (dtype, shape) in FEATURES.items():
    assert ex[key].dtype == dtype, key
    if shape is not None:
      assert ex[key].shape == shape, key
  assert ex["image"].shape == (*hw, 3)
  assert ex["segmentation"].shape == hw and ex["occluder_mask"].shape == hw
  assert np.all(np.isnan(ex["landmarks"]))
  assert np.all(ex["segmentation"] == adapters.SEGMENTATION_UNKNOWN)
  assert not ex["occluder_mask"].any()


# ----------------------------------------------------------------------- image folder


@pytest.fixture
def identity_root(tmp_path):
  root = tmp_path / "faces"
  _write(root / "alice" / "1.png", _const(20, 24, 10))
  _write(root / "alice" / "2.jpg", _const(30, 30, 20), "JPEG")
  _write(root / "alice" / "10.png", _const(12, 12, 30))
  _write(root / "bob" / "a.png", _const(16, 16, 200))
  _write(root / "carol" / "x.jpeg", _const(16, 16, 120), "JPEG")
  return str(root)


def test_image_folder_dataset_labels_order_and_features(identity_root, caplog):
  with caplog.at_level(py_logging.WARNING):
    ds, info = adapters.image_folder_dataset(identity_root, 16)
  assert "attributes" in caplog.text and "landmarks" in caplog.text
  examples = list(ds.as_numpy_iterator())
  assert info.class_names == ("alice", "bob", "carol") and info.num_classes == 3
  assert info.num_examples == 5 and info.image_size == (16, 16)
  assert info.missing() == ("attributes", "landmarks", "segmentation", "occluder_mask")
  assert [int(e["label"]) for e in examples] == [0, 0, 0, 1, 2]
  # natural file order inside an identity: 1, 2, 10
  assert [int(np.median(e["image"])) for e in examples[:3]] == [10, 20, 30]
  for e in examples:
    _check_features(e, (16, 16))
    assert e["attributes"].shape == (A,) and not e["attributes"].any()
    assert e["video_id"] == -1 and e["frame_index"] == -1
  np.testing.assert_array_equal(examples[3]["image"], _const(16, 16, 200))


def test_image_folder_without_resize(identity_root, tmp_path):
  root = tmp_path / "exact"
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (8, 10, 3))
  _write(root / "p1" / "a.png", pixels)
  _write(root / "p2" / "b.png", _const(8, 10, 5))
  ds, _ = adapters.image_folder_dataset(str(root), (8, 10), resize=False)
  first = next(ds.as_numpy_iterator())
  np.testing.assert_array_equal(first["image"], pixels)
  with pytest.raises(ValueError, match=r"1\.png.*20x24.*resize=False"):
    adapters.image_folder_dataset(identity_root, 16, resize=False)


def test_image_folder_shuffle_seed(identity_root):
  ds, _ = adapters.image_folder_dataset(identity_root, 8, shuffle_seed=3)
  labels = [int(e["label"]) for e in ds.as_numpy_iterator()]
  again = [
    int(e["label"])
    for e in adapters.image_folder_dataset(identity_root, 8, shuffle_seed=3)[0].as_numpy_iterator()
  ]
  assert labels == again and sorted(labels) == [0, 0, 0, 1, 2]


def test_image_folder_structure_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    adapters.image_folder_dataset(str(tmp_path / "nope"), 8)
  empty_root = tmp_path / "empty_root"
  empty_root.mkdir()
  with pytest.raises(ValueError, match="holds no folders"):
    adapters.image_folder_dataset(str(empty_root), 8)
  root = tmp_path / "r1"
  _write(root / "a" / "1.png", _const(4, 4, 1))
  (root / "b").mkdir()
  with pytest.raises(ValueError, match=r"identity folder .*b.* holds no images"):
    adapters.image_folder_dataset(str(root), 8)
  root = tmp_path / "r2"
  _write(root / "a" / "1.png", _const(4, 4, 1))
  (root / "a" / "notes.txt").write_text("x")
  with pytest.raises(ValueError, match=r"notes\.txt"):
    adapters.image_folder_dataset(str(root), 8)
  root = tmp_path / "r3"
  _write(root / "a" / "sub" / "1.png", _const(4, 4, 1))
  with pytest.raises(ValueError, match=r"unexpected folder .*sub"):
    adapters.image_folder_dataset(str(root), 8)
  root = tmp_path / "r4"
  _write(root / "a" / "1.png", _const(4, 4, 1))
  (root / "stray.png").write_bytes(b"")
  with pytest.raises(ValueError, match=r"stray\.png"):
    adapters.image_folder_dataset(str(root), 8)


def test_image_folder_unreadable_images(tmp_path, caplog):
  root = tmp_path / "bad"
  _write(root / "a" / "ok.png", _const(6, 6, 9))
  (root / "a" / "garbage.jpg").write_bytes(b"this is not a jpeg")
  with pytest.raises(ValueError, match=r"unreadable image .*garbage\.jpg"):
    adapters.image_folder_dataset(str(root), 6)
  with caplog.at_level(py_logging.WARNING):
    ds, info = adapters.image_folder_dataset(str(root), 6, skip_unreadable=True)
  assert "skipped 1 unreadable" in caplog.text and "garbage.jpg" in caplog.text
  assert info.num_examples == 1 and len(list(ds)) == 1
  # A truncated JPEG passes the header check; check='decode' catches it.
  root2 = tmp_path / "trunc"
  full = _write(
    root2 / "a" / "t.jpg", np.random.default_rng(1).integers(0, 256, (64, 64, 3)), "JPEG"
  )
  data = open(full, "rb").read()
  open(full, "wb").write(data[: len(data) // 2])
  adapters.image_folder_dataset(str(root2), 8, check="header")
  with pytest.raises(ValueError, match=r"unreadable image .*t\.jpg"):
    adapters.image_folder_dataset(str(root2), 8, check="decode")
  with pytest.raises(ValueError, match="check"):
    adapters.image_folder_dataset(str(root2), 8, check="none")


# ----------------------------------------------------------------------- video folder


def test_video_folder_dataset(tmp_path, caplog):
  root = tmp_path / "videos"
  for identity, video, frames in (
    ("id_b", "v2", (1, 2, 10)),
    ("id_b", "v1", (5,)),
    ("id_a", "clip", (0, 1)),
  ):
    for f in frames:
      _write(root / identity / video / f"frame_{f}.png", _const(10, 10, f * 10))
  with caplog.at_level(py_logging.WARNING):
    ds, info = adapters.video_folder_dataset(str(root), 10, resize=False)
  assert "landmarks" in caplog.text
  ex = list(ds.as_numpy_iterator())
  assert info.num_videos == 3 and info.num_examples == 6
  assert info.class_names == ("id_a", "id_b")
  assert [int(e["video_id"]) for e in ex] == [0, 0, 1, 2, 2, 2]
  assert [int(e["frame_index"]) for e in ex] == [0, 1, 0, 0, 1, 2]
  assert [int(e["label"]) for e in ex] == [0, 0, 1, 1, 1, 1]
  assert [int(e["image"][0, 0, 0]) for e in ex] == [0, 10, 50, 10, 20, 100]
  for e in ex:
    _check_features(e, (10, 10))
  index = adapters.index_video_folder(str(root))
  assert index.video_names == (("id_a", "clip"), ("id_b", "v1"), ("id_b", "v2"))


def test_video_folder_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    adapters.video_folder_dataset(str(tmp_path / "missing"), 8)
  root = tmp_path / "v1"
  _write(root / "p" / "vid" / "1.png", _const(4, 4, 1))
  (root / "p" / "empty_video").mkdir()
  with pytest.raises(ValueError, match=r"empty_video.* holds no frames"):
    adapters.video_folder_dataset(str(root), 8)
  root = tmp_path / "v2"
  _write(root / "p" / "1.png", _const(4, 4, 1))  # frame where a video folder belongs
  with pytest.raises(ValueError, match=r"unexpected file .*1\.png.*video"):
    adapters.video_folder_dataset(str(root), 8)
  root = tmp_path / "v3"
  (root / "p").mkdir(parents=True)
  with pytest.raises(ValueError, match="holds no folders"):
    adapters.video_folder_dataset(str(root), 8)
  root = tmp_path / "v4"
  _write(root / "p" / "vid" / "1.png", _const(4, 4, 1))
  (root / "p" / "vid" / "2.png").write_bytes(b"broken")
  with pytest.raises(ValueError, match=r"unreadable image .*2\.png"):
    adapters.video_folder_dataset(str(root), 8)


# ----------------------------------------------------------------------------- CelebA


def _celeba_image(value_inside=(0, 0, 255), value_outside=(255, 0, 0)):
  """218x178: the centred 178x178 square has one colour, the 20-row bands another."""
  image = np.empty((218, 178, 3), np.uint8)
  image[:] = value_outside
  image[20:198] = value_inside
  return image


def _fake_celeba_example(identity, attributes_true):
  return {
    "image": _celeba_image(),
    "attributes": {n: n in attributes_true for n in celeb_a.CELEB_A_ATTRIBUTE_NAMES},
    "identity": {"Identity_No": np.int64(identity)},
    "landmarks": {"lefteye_x": np.int64(69)},
  }


def test_celeb_a_example_to_features():
  names = ("Male", "Smiling", "Eyeglasses")
  ex = celeb_a.celeb_a_example_to_features(
    _fake_celeba_example(7, {"Male", "Eyeglasses"}), 24, names
  )
  ex = {k: v.numpy() for k, v in ex.items()}
  _check_features(ex, (24, 24))
  assert ex["label"] == 6  # Identity_No 7 -> label 6
  np.testing.assert_array_equal(ex["attributes"], [True, False, True])
  np.testing.assert_array_equal(ex["image"], np.broadcast_to([0, 0, 255], (24, 24, 3)))
  default = celeb_a.celeb_a_example_to_features(_fake_celeba_example(1, {"Young"}), 8)
  assert default["attributes"].shape == (A,)
  assert bool(default["attributes"][adapters.JFR_ATTRIBUTE_NAMES.index("Young")])
  assert int(tf.reduce_sum(tf.cast(default["attributes"], tf.int32))) == 1


def test_celeb_a_example_in_a_tf_data_map_and_errors():
  examples = [_fake_celeba_example(i + 1, {"Male"} if i else set()) for i in range(3)]
  stacked = tf.nest.map_structure(lambda *xs: np.stack(xs), *examples)
  ds = tf.data.Dataset.from_tensor_slices(stacked).map(
    lambda e: celeb_a.celeb_a_example_to_features(e, (16, 12), ("Male",))
  )
  out = list(ds.as_numpy_iterator())
  assert [int(e["label"]) for e in out] == [0, 1, 2]
  assert [bool(e["attributes"][0]) for e in out] == [False, True, True]
  assert out[0]["image"].shape == (16, 12, 3)
  no_identity = dict(examples[0])
  del no_identity["identity"]
  with pytest.raises(ValueError, match="identity"):
    celeb_a.celeb_a_example_to_features(no_identity, 8)
  with pytest.raises(ValueError, match="Wearing_Cape"):
    celeb_a.celeb_a_example_to_features(examples[0], 8, ("Male", "Wearing_Cape"))


def test_celeb_a_dataset_through_tfds_mock():
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=2):
    ds, info = adapters.celeb_a_dataset("train", 16, attribute_names=("Male", "Young"))
    out = list(ds.as_numpy_iterator())
  assert len(out) == 2 and info.num_examples == 2 and info.num_classes == 10177
  assert info.missing() == ("landmarks", "segmentation", "occluder_mask")
  for e in out:
    _check_features(e, (16, 16))
    assert e["attributes"].shape == (2,) and e["label"] >= -1


def _write_celeba_files(root, files, partition, identities, attr_rows=None):
  images = root / "img_align_celeba"
  for i, f in enumerate(files):
    _write(images / f, _celeba_image(value_inside=(i * 40, 0, 0)), "JPEG")
  names = celeb_a.CELEB_A_ATTRIBUTE_NAMES
  if attr_rows is None:
    attr_rows = []
    for i, f in enumerate(files):
      values = [
        "1" if (n == "Male" and i % 2) or (n == "Smiling" and i == 0) else "-1" for n in names
      ]
      attr_rows.append(" ".join([f] + values))
  (root / "list_attr_celeba.txt").write_text(
    f"{len(attr_rows)}\n" + " ".join(names) + "\n" + "\n".join(attr_rows) + "\n"
  )
  (root / "list_eval_partition.txt").write_text(
    "".join(f"{f} {p}\n" for f, p in zip(files, partition))
  )
  (root / "identity_CelebA.txt").write_text("".join(f"{f} {i}\n" for f, i in identities.items()))
  return (
    str(images),
    str(root / "list_attr_celeba.txt"),
    str(root / "list_eval_partition.txt"),
    str(root / "identity_CelebA.txt"),
  )


def test_celeb_a_folder_joins_identities_by_file_name(tmp_path, caplog):
  files = ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"]
  identities = {"000003.jpg": 5, "000001.jpg": 2, "000004.jpg": 9, "000002.jpg": 2}
  images, attrs, part, ident = _write_celeba_files(tmp_path, files, [0, 0, 1, 0], identities)
  ds, info = adapters.celeb_a_folder_dataset(
    images, attrs, part, "train", 8, identity_file=ident, attribute_names=("Smiling", "Male")
  )
  out = list(ds.as_numpy_iterator())
  assert info.num_examples == 3 and info.has_labels and info.num_classes == 9
  assert [int(e["label"]) for e in out] == [1, 1, 8]  # 000001, 000002, 000004
  np.testing.assert_array_equal(
    [e["attributes"] for e in out], [[True, False], [False, True], [False, True]]
  )
  assert [int(np.median(e["image"][..., 0])) for e in out] == pytest.approx([0, 40, 120], abs=3)
  for e in out:
    _check_features(e, (8, 8))
  val, _ = adapters.celeb_a_folder_dataset(
    images, attrs, part, "validation", 8, identity_file=ident
  )
  assert [int(e["label"]) for e in val.as_numpy_iterator()] == [4]
  with caplog.at_level(py_logging.WARNING):
    unlabelled, info = adapters.celeb_a_folder_dataset(images, attrs, part, "train", 8)
  assert "identity_file not given" in caplog.text and "label -1" in caplog.text
  assert not info.has_labels and info.class_names == ()
  assert all(int(e["label"]) == -1 for e in unlabelled.as_numpy_iterator())


def test_celeb_a_folder_errors(tmp_path):
  files = ["000001.jpg", "000002.jpg"]
  images, attrs, part, ident = _write_celeba_files(tmp_path, files, [0, 0], {"000001.jpg": 1})
  with pytest.raises(ValueError, match=r"identity_CelebA\.txt.*000002\.jpg"):
    adapters.celeb_a_folder_dataset(images, attrs, part, "train", 8, identity_file=ident)
  with pytest.raises(ValueError, match="split"):
    adapters.celeb_a_folder_dataset(images, attrs, part, "dev", 8)
  os.remove(os.path.join(images, "000002.jpg"))
  with pytest.raises(ValueError, match=r"unreadable image .*000002\.jpg"):
    adapters.celeb_a_folder_dataset(images, attrs, part, "train", 8)
  bad = tmp_path / "bad"
  bad.mkdir()
  row = "000001.jpg " + " ".join(["1"] * 39 + ["0"])
  _, attrs2, _, _ = _write_celeba_files(bad, ["000001.jpg"], [0], {"000001.jpg": 1}, [row])
  with pytest.raises(ValueError, match=r"list_attr_celeba\.txt:3: column 41 \(Young\)"):
    celeb_a.read_celeb_a_attributes(attrs2)
  (bad / "ids.txt").write_text("000001.jpg 3\n000002.jpg x\n")
  with pytest.raises(ValueError, match=r"ids\.txt:2: column 2"):
    celeb_a.read_celeb_a_identities(str(bad / "ids.txt"))


# --------------------------------------------------------------------------------- IJB


def _csv(path, text):
  path.write_text(text)
  return str(path)


def test_read_template_metadata(tmp_path):
  path = _csv(
    tmp_path / "meta.csv",
    "Template_ID,subject_id,FILE,Media_ID,SIGHTING_ID,FACE_X,FACE_Y,FACE_WIDTH,"
    "FACE_HEIGHT\n"
    "101,7,img/1.jpg,11,0,1,2,30,40\n"
    "\n"
    "55,9,frame/2.png,12,0,3.5,4,50,60\n"
    "101,7,img/3.jpg,11,0,5,6,70,80\n",
  )
  meta = ijb.read_template_metadata(path)
  np.testing.assert_array_equal(meta.template_ids, [55, 101])
  np.testing.assert_array_equal(meta.template_index, [1, 0, 1])
  np.testing.assert_array_equal(meta.template_ids[meta.template_index], [101, 55, 101])
  np.testing.assert_array_equal(meta.subject_ids, [7, 9, 7])
  np.testing.assert_array_equal(meta.template_subject_ids, [9, 7])
  assert list(meta.filenames) == ["img/1.jpg", "frame/2.png", "img/3.jpg"]
  np.testing.assert_array_equal(meta.media_ids, [11, 12, 11])
  np.testing.assert_allclose(meta.boxes[1], [3.5, 4, 50, 60])
  assert meta.splits is None and meta.num_templates == 2
  np.testing.assert_array_equal(meta.indices_of([101, 55]), [1, 0])
  with pytest.raises(ValueError, match=r"\[77\]"):
    meta.indices_of([77])
  minimal = ijb.read_template_metadata(
    _csv(tmp_path / "min.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,2,a.jpg\n")
  )
  assert minimal.media_ids is None and minimal.boxes is None


def test_template_metadata_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    ijb.read_template_metadata(str(tmp_path / "none.csv"))
  with pytest.raises(ValueError, match="empty"):
    ijb.read_template_metadata(_csv(tmp_path / "e.csv", "\n\n"))
  with pytest.raises(ValueError, match=r"m1\.csv:1: .*SUBJECT_ID"):
    ijb.read_template_metadata(_csv(tmp_path / "m1.csv", "TEMPLATE_ID,FILENAME\n1,a\n"))
  with pytest.raises(ValueError, match=r"m2\.csv:3: column SUBJECT_ID: expected an integer"):
    ijb.read_template_metadata(
      _csv(tmp_path / "m2.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,2,a\n1,x,b\n")
    )
  with pytest.raises(ValueError, match=r"m3\.csv:2: expected 3 fields"):
    ijb.read_template_metadata(_csv(tmp_path / "m3.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,2\n"))
  with pytest.raises(ValueError, match=r"m4\.csv:4: column SUBJECT_ID: template 1 .* line 2"):
    ijb.read_template_metadata(
      _csv(tmp_path / "m4.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,2,a\n3,4,b\n1,5,c\n")
    )
  with pytest.raises(ValueError, match=r"m5\.csv:2: column FACE_Y: expected a number"):
    ijb.read_template_metadata(
      _csv(
        tmp_path / "m5.csv",
        "TEMPLATE_ID,SUBJECT_ID,FILENAME,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT\n1,2,a,1,?,3,4\n",
      )
    )


def test_template_metadata_splits(tmp_path):
  path = _csv(
    tmp_path / "s.csv",
    "TEMPLATE_ID,SUBJECT_ID,FILENAME,SPLIT\n5,1,a,1\n6,2,b,2\n5,1,c,1\n9,3,d,2\n",
  )
  meta = ijb.read_template_metadata(path)
  two = meta.select_split(2)
  np.testing.assert_array_equal(two.template_ids, [6, 9])
  np.testing.assert_array_equal(two.template_index, [0, 1])
  assert list(two.filenames) == ["b", "d"]
  with pytest.raises(ValueError, match="SPLIT 3"):
    meta.select_split(3)
  paths = []
  for k in (1, 2):
    (tmp_path / f"split{k}").mkdir()
    paths.append(
      _csv(
        tmp_path / f"split{k}" / f"verify_metadata_{k}.csv",
        f"TEMPLATE_ID,SUBJECT_ID,FILENAME\n{k},{k},x{k}.jpg\n",
      )
    )
  splits = ijb.read_template_metadata_splits(paths)
  assert [s.template_ids.tolist() for s in splits] == [[1], [2]]
  with pytest.raises(ValueError, match="list"):
    ijb.read_template_metadata_splits(paths[0])


def test_template_pairs_and_labels(tmp_path):
  meta = ijb.read_template_metadata(
    _csv(tmp_path / "meta.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,10,a\n2,10,b\n3,20,c\n")
  )
  pairs = ijb.read_template_pairs(_csv(tmp_path / "p.csv", "1,2\n1,3\n\n3,2\n"))
  assert pairs.labels is None
  np.testing.assert_array_equal(pairs.template_ids1, [1, 1, 3])
  np.testing.assert_array_equal(ijb.pair_labels(pairs, meta), [True, False, False])
  labelled = ijb.read_template_pairs(
    _csv(tmp_path / "pl.csv", "template_id1,Template_ID2,label\n1,2,1\n1,3,0\n")
  )
  np.testing.assert_array_equal(labelled.labels, [True, False])
  np.testing.assert_array_equal(ijb.pair_labels(labelled, meta), [True, False])
  wrong = ijb.read_template_pairs(_csv(tmp_path / "pw.csv", "1,2,0\n"))
  with pytest.raises(ValueError, match="LABEL 0"):
    ijb.pair_labels(wrong, meta)
  unknown = ijb.read_template_pairs(_csv(tmp_path / "pu.csv", "1,42\n"))
  with pytest.raises(ValueError, match="42"):
    ijb.pair_labels(unknown, meta)
  with pytest.raises(ValueError, match=r"pb\.csv:2: column TEMPLATE_ID2"):
    ijb.read_template_pairs(_csv(tmp_path / "pb.csv", "1,2\n1,b\n"))
  with pytest.raises(ValueError, match=r"pc\.csv:1: header"):
    ijb.read_template_pairs(_csv(tmp_path / "pc.csv", "A,B\n1,2\n"))
  with pytest.raises(ValueError, match=r"pd\.csv:1: column LABEL: expected 0 or 1"):
    ijb.read_template_pairs(_csv(tmp_path / "pd.csv", "1,2,7\n"))
  with pytest.raises(ValueError, match=r"pe\.csv:2: expected 2 fields"):
    ijb.read_template_pairs(_csv(tmp_path / "pe.csv", "1,2\n1,2,1\n"))


def test_search_protocol(tmp_path):
  header = "TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA_ID\n"
  g1 = _csv(tmp_path / "g1.csv", header + "1,10,a,1\n2,11,b,2\n")
  g2 = _csv(tmp_path / "g2.csv", header + "3,12,c,3\n")
  probe = _csv(tmp_path / "probe.csv", header + "7,10,p,4\n8,99,q,5\n")
  proto = ijb.read_search_protocol([g1, g2], probe)
  np.testing.assert_array_equal(proto.gallery.template_ids, [1, 2, 3])
  np.testing.assert_array_equal(proto.gallery.template_subject_ids, [10, 11, 12])
  np.testing.assert_array_equal(proto.gallery.media_ids, [1, 2, 3])
  np.testing.assert_array_equal(proto.probe.template_subject_ids, [10, 99])
  assert ijb.read_search_protocol(g1, probe).gallery.num_templates == 2
  with pytest.raises(ValueError, match="template id 1 is in both"):
    ijb.read_search_protocol([g1, g1], probe)
  overlap = _csv(tmp_path / "overlap.csv", header + "3,12,z,9\n")
  with pytest.raises(ValueError, match=r"\[3\] are in both the gallery"):
    ijb.read_search_protocol([g1, g2], overlap)


def test_common_validation():
  with pytest.raises(ValueError, match="image_size"):
    common.image_hw((3, 0))
  with pytest.raises(ValueError, match="image_size"):
    common.image_hw("big")
  assert common.natural_key("f2.jpg") < common.natural_key("f10.jpg")
