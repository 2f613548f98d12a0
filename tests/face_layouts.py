"""Writers of rendered synthetic faces in the published layouts of real face data sets.

Independent of jfr's readers: each follows the data set's documentation (MXNet / dmlc-core
RecordIO and insightface's record-0 convention, the CelebA release and its Kaggle CSV
mirror, VGGFace2's bb_landmark CSVs, the YouTube Faces README). Used by
tests/test_formats.py, tests/test_prepare.py and benchmarks/prepare.py.
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np
from PIL import Image

from jfr.data import face_renderer

MXNET_MAGIC = b"\x0a\x23\xd7\xce"  # 0xced7230a, little endian


def render_faces(num_identities: int, per_identity: int, size: int, seed: int = 0):
  """-> images uint8 [N, S, S, 3], labels [N], five points [N, 5, 2], attributes [N, A]."""
  labels = np.repeat(np.arange(num_identities), per_identity)
  nui = face_renderer.sample_nuisances(
    np.random.default_rng(seed), len(labels), occluder_prob=0.0, eyeglasses_prob=0.0
  )
  out = face_renderer.render(
    face_renderer.identity_latents(seed, labels), nui, size, seed_or_rng=seed
  )
  lm = out["landmarks"]
  five = np.stack(
    [lm[:, 36:42].mean(1), lm[:, 42:48].mean(1), lm[:, 30], lm[:, 48], lm[:, 54]], axis=1
  )
  return out["image"], labels, five, out["attributes"]


def jpeg_bytes(image: np.ndarray, quality: int = 95) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="JPEG", quality=quality)
  return buf.getvalue()


# --------------------------------------------------------------------------- RecordIO


def mx_pack(flag: int, label, id1: int, id2: int, payload: bytes) -> bytes:
  """MXNet ``recordio.pack``: IRHeader 'IfQQ' (+ ``flag`` float32 labels) + payload."""
  if flag > 0:
    labels = np.asarray(label, np.float32)
    assert labels.size == flag
    return struct.pack("IfQQ", flag, 0.0, id1, id2) + labels.tobytes() + payload
  return struct.pack("IfQQ", 0, float(label), id1, id2) + payload


def dmlc_write_record(f, data: bytes) -> int:
  """dmlc-core ``RecordIOWriter::WriteRecord``: split at 4-aligned magic words."""
  lower = len(data) // 4 * 4
  dptr, parts = 0, 0
  for i in range(0, lower, 4):
    if data[i : i + 4] == MXNET_MAGIC:
      cflag = 1 if dptr == 0 else 2
      f.write(MXNET_MAGIC + struct.pack("<I", (cflag << 29) | (i - dptr)) + data[dptr:i])
      dptr = i + 4
      parts += 1
  cflag = 3 if dptr else 0
  f.write(MXNET_MAGIC + struct.pack("<I", (cflag << 29) | (len(data) - dptr)) + data[dptr:])
  f.write(b"\0" * ((-len(data)) % 4))
  return parts + 1


def write_recordio(folder: str, images, labels, *, split_every: int = 3) -> dict:
  """insightface layout: record 0 = (image_end, identity_end), images 1..n, identity records.

  Every ``split_every``-th image record carries the magic word in its header ids, so it
  is written as a multi-part record (cflags 1, 2, 3). Returns {'multi_part': count, ...}.
  """
  os.makedirs(folder, exist_ok=True)
  n = len(images)
  identities = np.unique(labels)
  records = []
  magic_id = struct.unpack("<Q", MXNET_MAGIC + MXNET_MAGIC)[0]
  for k, (image, label) in enumerate(zip(images, labels)):
    id1 = magic_id if k % split_every == 0 else k + 1
    records.append(mx_pack(0, float(label), id1, 0, jpeg_bytes(image)))
  starts = {int(c): 1 + int(np.flatnonzero(labels == c)[0]) for c in identities}
  ends = {int(c): 1 + int(np.flatnonzero(labels == c)[-1]) + 1 for c in identities}
  for c in identities:
    records.append(mx_pack(2, [starts[int(c)], ends[int(c)]], 0, 0, b""))
  header = mx_pack(2, [n + 1, n + 1 + len(identities)], 0, 0, b"")
  multi = 0
  with (
    open(os.path.join(folder, "train.rec"), "wb") as rec,
    open(os.path.join(folder, "train.idx"), "w") as idx,
  ):
    for i, record in enumerate([header] + records):
      idx.write(f"{i}\t{rec.tell()}\n")
      multi += dmlc_write_record(rec, record) > 1
  with open(os.path.join(folder, "property"), "w") as f:
    f.write(f"{len(identities)},{images.shape[1]},{images.shape[2]}")
  return {"multi_part": multi, "jpegs": [r[24:] for r in records[:n]]}


# ----------------------------------------------------------------------------- CelebA

CELEBA_LANDMARK_COLUMNS = (
  "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
  "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
).split()


def celeba_canvas(image: np.ndarray, five: np.ndarray):
  """A square face pasted into CelebA's 178 x 218 aligned frame (resized to width 178)."""
  face = np.asarray(Image.fromarray(image).resize((178, 178), Image.BILINEAR))
  canvas = np.full((218, 178, 3), 90, np.uint8)
  canvas[20:198] = face
  scale = 178 / image.shape[1]
  return canvas, (five + 0.5) * scale - 0.5 + np.array([0.0, 20.0])


def write_celeba(root, images, labels, five, attributes, partition, *, variant: str):
  """variant: 'original' (.txt lists, jpg), 'png' (PNG release), 'csv' (Kaggle mirror)."""
  from jfr.data.adapters.celeb_a import CELEB_A_ATTRIBUTE_NAMES
  from jfr.data.synthetic_faces import ATTRIBUTE_NAMES

  image_dir = {
    "original": "img_align_celeba",
    "png": "img_align_celeba_png",
    "csv": "img_align_celeba/img_align_celeba",
  }[variant]
  os.makedirs(os.path.join(root, image_dir), exist_ok=True)
  names = [f"{k + 1:06d}.jpg" for k in range(len(images))]
  rows_lm, rows_attr = [], []
  for name, image, points, attrs in zip(names, images, five, attributes):
    canvas, pts = celeba_canvas(image, points)
    if variant == "png":
      Image.fromarray(canvas).save(os.path.join(root, image_dir, name[:-4] + ".png"))
    else:
      Image.fromarray(canvas).save(os.path.join(root, image_dir, name), quality=95)
    rows_lm.append([str(int(round(v))) for v in pts.reshape(-1)])
    by_name = dict(zip(ATTRIBUTE_NAMES, attrs))
    rows_attr.append(["1" if by_name.get(a, False) else "-1" for a in CELEB_A_ATTRIBUTE_NAMES])
  if variant == "csv":
    _csv(
      root,
      "list_eval_partition.csv",
      ["image_id", "partition"],
      names,
      [[str(p)] for p in partition],
    )
    _csv(root, "list_attr_celeba.csv", ["image_id", *CELEB_A_ATTRIBUTE_NAMES], names, rows_attr)
    _csv(
      root,
      "list_landmarks_align_celeba.csv",
      ["image_id", *CELEBA_LANDMARK_COLUMNS],
      names,
      rows_lm,
    )
    _csv(
      root,
      "list_bbox_celeba.csv",
      ["image_id", "x_1", "y_1", "width", "height"],
      names,
      [["0", "0", "9", "9"]] * len(names),
    )
    return names
  os.makedirs(os.path.join(root, "Anno"), exist_ok=True)
  os.makedirs(os.path.join(root, "Eval"), exist_ok=True)
  with open(os.path.join(root, "Eval", "list_eval_partition.txt"), "w") as f:
    f.writelines(f"{n} {p}\n" for n, p in zip(names, partition))
  with open(os.path.join(root, "Anno", "identity_CelebA.txt"), "w") as f:
    f.writelines(f"{n} {int(c) + 1}\n" for n, c in zip(names, labels))
  with open(os.path.join(root, "Anno", "list_attr_celeba.txt"), "w") as f:
    f.write(f"{len(names)}\n{' '.join(CELEB_A_ATTRIBUTE_NAMES)} \n")
    f.writelines(f"{n} {' '.join(r)}\n" for n, r in zip(names, rows_attr))
  with open(os.path.join(root, "Anno", "list_landmarks_align_celeba.txt"), "w") as f:
    f.write(f"{len(names)}\n{' '.join(CELEBA_LANDMARK_COLUMNS)}\n")
    f.writelines(f"{n} {' '.join(r)}\n" for n, r in zip(names, rows_lm))
  return names


def _csv(root, name, header, names, rows):
  with open(os.path.join(root, name), "w") as f:
    f.write(",".join(header) + "\n")
    f.writelines(",".join([n, *r]) + "\n" for n, r in zip(names, rows))


# -------------------------------------------------------------------- photos with boxes


def place_face(image: np.ndarray, canvas_hw, top_left, side, background=40) -> np.ndarray:
  """The face resized to ``side`` and pasted at ``top_left`` (x, y) into a larger frame."""
  canvas = np.full(tuple(canvas_hw) + (3,), background, np.uint8)
  face = np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR))
  x, y = top_left
  canvas[y : y + side, x : x + side] = face
  return canvas


def write_vggface2(root, images, labels, five, seed=0):
  """``root/train/n00000k/0001_01.jpg`` + ``root/bb_landmark/loose_{bb,landmark}_train.csv``."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "bb_landmark"), exist_ok=True)
  lm_rows, bb_rows, boxes = [], [], []
  for k, (image, label, points) in enumerate(zip(images, labels, five)):
    side = int(rng.integers(70, 110))
    x, y = (int(v) for v in rng.integers(0, 40, 2))
    photo = place_face(image, (160, 150), (x, y), side)
    name_id = f"n{int(label) + 2:06d}/{k:04d}_01"
    os.makedirs(os.path.join(root, "train", name_id.split("/")[0]), exist_ok=True)
    Image.fromarray(photo).save(os.path.join(root, "train", name_id + ".jpg"), quality=95)
    scale = side / image.shape[0]
    pts = (points + 0.5) * scale - 0.5 + np.array([x, y])
    lm_rows.append(f'"{name_id}",' + ",".join(f"{v:.3f}" for v in pts.reshape(-1)))
    bb_rows.append(f'"{name_id}",{x},{y},{side},{side}')
    boxes.append((x, y, side))
  with open(os.path.join(root, "bb_landmark", "loose_landmark_train.csv"), "w") as f:
    f.write("NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y\n" + "\n".join(lm_rows) + "\n")
  with open(os.path.join(root, "bb_landmark", "loose_bb_train.csv"), "w") as f:
    f.write("NAME_ID,X,Y,W,H\n" + "\n".join(bb_rows) + "\n")
  return boxes


def write_ytf_frames(root, videos, seed=0):
  """frame_images_DB: ``<Name>/<v>/<v>.<frame>.jpg`` + ``<Name>.labeled_faces.txt``.

  ``videos``: {name: [frames uint8 [T, S, S, 3], ...]}; the face of each frame is put at
  a random place; the file gives the box centre and size (YTF README).
  """
  rng = np.random.default_rng(seed)
  for name, clips in videos.items():
    lines = []
    for v, clip in enumerate(clips, start=1):
      os.makedirs(os.path.join(root, name, str(v)), exist_ok=True)
      for t, frame in enumerate(clip):
        side = int(rng.integers(60, 90))
        x, y = (int(v_) for v_ in rng.integers(0, 60, 2))
        file = f"{v}.{t + 100}.jpg"
        Image.fromarray(place_face(frame, (150, 160), (x, y), side)).save(
          os.path.join(root, name, str(v), file), quality=95
        )
        lines.append(f"{name}\\{v}\\{file},0,{x + side / 2},{y + side / 2},{side},{side},0.0,1")
    with open(os.path.join(root, f"{name}.labeled_faces.txt"), "w") as f:
      f.write("\r\n".join(lines) + "\r\n")
