"""CelebA as jfr feature dicts: through tfds ``celeb_a`` or from the original files.

* :func:`celeb_a_dataset` / :func:`celeb_a_example_to_features`: the tfds builder
  ``celeb_a`` (>= 2.1.0 carries ``identity/Identity_No``; the Google-Drive download often
  fails, see tfds' manual download instructions and ``manual_dir``).
* :func:`celeb_a_folder_dataset`: the original release files (``img_align_celeba/``,
  ``list_attr_celeba.txt``, ``list_eval_partition.txt``, ``identity_CelebA.txt``) joined
  by file name. Use it when the identities are not in the tfds data (tfds ``celeb_a``
  before 2.1.0 has no identity feature, and its examples carry no file name to join on).

Mapping (both paths): ``label = Identity_No - 1`` (CelebA numbers identities 1..10177,
so labels are 0..10176 and a split uses a subset of them); ``attributes`` are the
CelebA attributes named by ``attribute_names`` (default: the synthetic_faces list, all
of which are CelebA attributes), True where CelebA has +1; the 218x178 image is centre
cropped to the aspect ratio of ``image_size`` (178x178 for a square) and resized
(bilinear, antialiased). CelebA's five landmarks are not iBUG-68 points, so
``landmarks`` are NaN; segmentation and occluder mask are sentinels
(:mod:`jfr.data.adapters.common`).

No paper equation lives here.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from jfr.data.adapters import common

CELEB_A_ATTRIBUTE_NAMES: tuple[str, ...] = (
  "5_o_Clock_Shadow",
  "Arched_Eyebrows",
  "Attractive",
  "Bags_Under_Eyes",
  "Bald",
  "Bangs",
  "Big_Lips",
  "Big_Nose",
  "Black_Hair",
  "Blond_Hair",
  "Blurry",
  "Brown_Hair",
  "Bushy_Eyebrows",
  "Chubby",
  "Double_Chin",
  "Eyeglasses",
  "Goatee",
  "Gray_Hair",
  "Heavy_Makeup",
  "High_Cheekbones",
  "Male",
  "Mouth_Slightly_Open",
  "Mustache",
  "Narrow_Eyes",
  "No_Beard",
  "Oval_Face",
  "Pale_Skin",
  "Pointy_Nose",
  "Receding_Hairline",
  "Rosy_Cheeks",
  "Sideburns",
  "Smiling",
  "Straight_Hair",
  "Wavy_Hair",
  "Wearing_Earrings",
  "Wearing_Hat",
  "Wearing_Lipstick",
  "Wearing_Necklace",
  "Wearing_Necktie",
  "Young",
)
CELEB_A_NUM_IDENTITIES = 10177
CELEB_A_SPLITS = {"train": 0, "validation": 1, "test": 2}  # list_eval_partition codes


def _check_attribute_names(attribute_names: Sequence[str]) -> tuple[str, ...]:
  unknown = [n for n in attribute_names if n not in CELEB_A_ATTRIBUTE_NAMES]
  if unknown:
    raise ValueError(
      f"attribute_names {unknown} are not CelebA attributes (known: {CELEB_A_ATTRIBUTE_NAMES})"
    )
  return tuple(attribute_names)


def center_crop_resize(image: tf.Tensor, hw: tuple[int, int]) -> tf.Tensor:
  """Centre crop of ``image`` [h, w, 3] to the aspect ratio H:W, resized to (H, W)."""
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  ratio = hw[0] / hw[1]
  crop_h = tf.cast(tf.minimum(h, tf.round(w * ratio)), tf.int32)
  crop_w = tf.cast(tf.minimum(w, tf.round(h / ratio)), tf.int32)
  top = (shape[0] - crop_h) // 2
  left = (shape[1] - crop_w) // 2
  crop = tf.image.crop_to_bounding_box(image, top, left, crop_h, crop_w)
  return common.resize_uint8(crop, hw)


def _info(
  name: str, hw, num_examples: int, num_identities: int, attribute_names, has_labels: bool
) -> common.AdapterInfo:
  info = common.AdapterInfo(
    name=name,
    image_size=hw,
    num_examples=num_examples,
    class_names=tuple(str(i) for i in range(1, num_identities + 1)) if has_labels else (),
    attribute_names=tuple(attribute_names),
    has_labels=has_labels,
    has_attributes=True,
  )
  common.log_missing(info)
  return info


# ------------------------------------------------------------------------------ tfds


def celeb_a_example_to_features(
  example: Mapping[str, Any],
  image_size: common.ImageSize,
  attribute_names: Sequence[str] = common.JFR_ATTRIBUTE_NAMES,
) -> dict[str, tf.Tensor]:
  """Maps one tfds ``celeb_a`` example to the jfr feature dict (usable in ``Dataset.map``).

  Args:
    example: ``{'image': uint8 [218, 178, 3], 'attributes': {name: bool},
      'identity': {'Identity_No': int64}, 'landmarks': {...}}`` (landmarks unused).
    image_size: int or (H, W) of the output image.
    attribute_names: CelebA attribute names, in output order.

  Returns:
    The jfr feature dict (``video_id = frame_index = -1``, landmarks NaN, segmentation
    255, occluder mask False).
  """
  hw = common.image_hw(image_size)
  names = _check_attribute_names(attribute_names)
  for key in ("image", "attributes"):
    if key not in example:
      raise ValueError(f"celeb_a example lacks {key!r} (keys: {sorted(example)})")
  if "identity" not in example or "Identity_No" not in example["identity"]:
    raise ValueError(
      "celeb_a example has no 'identity/Identity_No' feature (tfds celeb_a before "
      "2.1.0); prepare celeb_a >= 2.1.0, or read the original files with "
      "celeb_a_folder_dataset(..., identity_file='identity_CelebA.txt')"
    )
  missing = [n for n in names if n not in example["attributes"]]
  if missing:
    raise ValueError(f"celeb_a example lacks attributes {missing}")
  attributes = tf.stack([tf.cast(example["attributes"][n], tf.bool) for n in names])
  label = tf.cast(example["identity"]["Identity_No"], tf.int64) - 1
  image = center_crop_resize(tf.convert_to_tensor(example["image"], tf.uint8), hw)
  return common.make_features(image, label, attributes, common.STILL, common.STILL)


def celeb_a_dataset(
  split: str,
  image_size: common.ImageSize,
  *,
  data_dir: Optional[str] = None,
  download: bool = False,
  manual_dir: Optional[str] = None,
  attribute_names: Sequence[str] = common.JFR_ATTRIBUTE_NAMES,
) -> tuple[tf.data.Dataset, common.AdapterInfo]:
  """tfds ``celeb_a`` mapped to jfr feature dicts.

  Args:
    split: a tfds split ('train', 'validation', 'test', slices like 'train[:10%]').
    image_size: int or (H, W).
    data_dir: tfds data directory.
    download: let tfds download and prepare (False: the data must be prepared).
    manual_dir: tfds ``DownloadConfig.manual_dir`` for manually downloaded archives.
    attribute_names: CelebA attribute names, in output order.

  Returns:
    ``(dataset, info)``; ``info.class_names`` are the 10177 CelebA identity numbers.
  """
  hw = common.image_hw(image_size)
  names = _check_attribute_names(attribute_names)
  kwargs = {}
  if manual_dir is not None:
    kwargs["download_config"] = tfds.download.DownloadConfig(manual_dir=manual_dir)
  ds, builder_info = tfds.load(
    "celeb_a",
    split=split,
    data_dir=data_dir,
    download=download,
    download_and_prepare_kwargs=kwargs or None,
    with_info=True,
  )
  if "identity" not in builder_info.features:
    raise ValueError(
      f"tfds celeb_a {builder_info.version} has no identity feature; prepare celeb_a "
      ">= 2.1.0 or use celeb_a_folder_dataset(..., identity_file=...)"
    )
  num_examples = max(int(ds.cardinality()), -1)  # tfds knows it; -1 = unknown
  info = _info(f"celeb_a:{split}", hw, num_examples, CELEB_A_NUM_IDENTITIES, names, True)
  ds = ds.map(
    lambda ex: celeb_a_example_to_features(ex, hw, names),
    num_parallel_calls=tf.data.AUTOTUNE,
    deterministic=True,
  )
  return ds, info


# ------------------------------------------------------------------ original files


def _read_lines(path: str) -> list[str]:
  if not os.path.isfile(path):
    raise ValueError(f"file {path!r} does not exist")
  with open(path, encoding="utf-8") as f:
    return f.read().splitlines()


def _filename_int_table(path: str, what: str) -> dict[str, int]:
  """'<file name> <int>' per line (blank lines ignored) -> dict; errors name file:line."""
  table = {}
  for number, line in enumerate(_read_lines(path), start=1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 2:
      raise ValueError(f"{path}:{number}: expected '<file name> <{what}>', got {line!r}")
    try:
      value = int(fields[1])
    except ValueError as e:
      raise ValueError(
        f"{path}:{number}: column 2 ({what}): expected an integer, got {fields[1]!r}"
      ) from e
    if fields[0] in table:
      raise ValueError(f"{path}:{number}: file name {fields[0]!r} listed twice")
    table[fields[0]] = value
  if not table:
    raise ValueError(f"{path}: no entries")
  return table


def read_celeb_a_identities(path: str) -> dict[str, int]:
  """``identity_CelebA.txt`` ('000001.jpg 2880' per line) -> {file name: Identity_No}."""
  table = _filename_int_table(path, "identity")
  bad = [(k, v) for k, v in table.items() if v < 1]
  if bad:
    raise ValueError(f"{path}: identity numbers must be >= 1, got {bad[:3]}")
  return table


def read_celeb_a_partition(path: str) -> dict[str, int]:
  """``list_eval_partition.txt`` ('000001.jpg 0' per line) -> {file name: 0|1|2}."""
  table = _filename_int_table(path, "partition")
  bad = [(k, v) for k, v in table.items() if v not in (0, 1, 2)]
  if bad:
    raise ValueError(f"{path}: partition codes must be 0, 1 or 2, got {bad[:3]}")
  return table


def read_celeb_a_attributes(path: str) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
  """``list_attr_celeba.txt`` -> (attribute names, {file name: bool [40]}).

  Format: line 1 the number of images, line 2 the attribute names, then
  '<file name> <+1|-1> x 40' per image. Errors name the file, line and column.
  """
  lines = _read_lines(path)
  if len(lines) < 2:
    raise ValueError(f"{path}: expected a count line and a header line")
  try:
    count = int(lines[0].strip())
  except ValueError as e:
    raise ValueError(f"{path}:1: expected the number of images, got {lines[0]!r}") from e
  names = tuple(lines[1].split())
  table = {}
  for number, line in enumerate(lines[2:], start=3):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != len(names) + 1:
      raise ValueError(
        f"{path}:{number}: expected {len(names) + 1} fields (file name and "
        f"{len(names)} attributes), got {len(fields)}"
      )
    values = np.zeros(len(names), bool)
    for col, value in enumerate(fields[1:], start=2):
      if value not in ("1", "-1"):
        raise ValueError(
          f"{path}:{number}: column {col} ({names[col - 2]}): expected 1 or -1, got {value!r}"
        )
      values[col - 2] = value == "1"
    table[fields[0]] = values
  if len(table) != count:
    raise ValueError(f"{path}: line 1 announces {count} images but {len(table)} are listed")
  return names, table


def celeb_a_folder_dataset(
  images_dir: str,
  attributes_file: str,
  partition_file: str,
  split: str,
  image_size: common.ImageSize,
  *,
  identity_file: Optional[str] = None,
  attribute_names: Sequence[str] = common.JFR_ATTRIBUTE_NAMES,
  check: str = "header",
  num_workers: Optional[int] = None,
) -> tuple[tf.data.Dataset, common.AdapterInfo]:
  """CelebA from the original release files, joined by file name.

  Args:
    images_dir: folder of the aligned images (``img_align_celeba``).
    attributes_file: ``list_attr_celeba.txt``.
    partition_file: ``list_eval_partition.txt``.
    split: 'train', 'validation' or 'test'.
    image_size: int or (H, W).
    identity_file: ``identity_CelebA.txt``; None -> labels are -1 (logged,
      ``info.has_labels`` False).
    attribute_names: CelebA attribute names, in output order.
    check: image validation, 'header' or 'decode' (unreadable or missing image ->
      ValueError naming the path).
    num_workers: threads for validation.

  Returns:
    ``(dataset, info)`` in file-name order; ValueError if a file of the split has no
    attributes or (with ``identity_file``) no identity, naming the files.
  """
  hw = common.image_hw(image_size)
  names = _check_attribute_names(attribute_names)
  if split not in CELEB_A_SPLITS:
    raise ValueError(f"split must be one of {tuple(CELEB_A_SPLITS)}, got {split!r}")
  if not os.path.isdir(images_dir):
    raise ValueError(f"images_dir {images_dir!r} does not exist or is not a directory")
  partition = read_celeb_a_partition(partition_file)
  files = sorted(f for f, code in partition.items() if code == CELEB_A_SPLITS[split])
  if not files:
    raise ValueError(f"{partition_file}: split {split!r} lists no images")
  file_names, attr_table = read_celeb_a_attributes(attributes_file)
  unknown = [n for n in names if n not in file_names]
  if unknown:
    raise ValueError(f"{attributes_file}: header lacks attributes {unknown}")
  missing = [f for f in files if f not in attr_table]
  if missing:
    raise ValueError(
      f"{attributes_file}: no attributes for {len(missing)} image(s) of "
      f"split {split!r}, e.g. {missing[:5]}"
    )
  columns = [file_names.index(n) for n in names]
  attributes = np.stack([attr_table[f][columns] for f in files])
  if identity_file is None:
    logging.warning("celeb_a_folder_dataset: identity_file not given; labels are -1")
    labels = np.full(len(files), common.NO_LABEL, np.int64)
    num_identities = 0
  else:
    identities = read_celeb_a_identities(identity_file)
    missing = [f for f in files if f not in identities]
    if missing:
      raise ValueError(
        f"{identity_file}: no identity for {len(missing)} image(s) of "
        f"split {split!r}, e.g. {missing[:5]}"
      )
    labels = np.asarray([identities[f] - 1 for f in files], np.int64)
    num_identities = max(identities.values())
  paths = [os.path.join(images_dir, f) for f in files]
  common.check_images(paths, hw=None, check=check, skip_unreadable=False, num_workers=num_workers)
  info = _info(
    f"celeb_a_folder:{split}", hw, len(files), num_identities, names, identity_file is not None
  )
  ds = tf.data.Dataset.from_tensor_slices((paths, labels, attributes))

  def load(path, label, attrs):
    image = tf.io.decode_image(
      tf.io.read_file(path), channels=3, dtype=tf.uint8, expand_animations=False
    )
    return common.make_features(
      center_crop_resize(image, hw), label, attrs, common.STILL, common.STILL
    )

  return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), info
