"""Writers of the published benchmark layouts (independent of jfr's readers) and a fake model.

* insightface ``.bin``: ``pickle.dump((bins, issame_list), f, protocol=...)`` as insightface's
  ``lfw2pack.py`` writes it (a list of JPEG bytes, a list of bools, pairs consecutive).
* LFW: ``lfw/Name/Name_%04d.jpg`` (250x250) and ``pairs.txt`` (``10\\t300`` header; per fold
  matched ``Name\\tn1\\tn2`` then mismatched ``Name1\\tn1\\tName2\\tn2`` lines) or the View 1
  files (single-count header).
* YTF: ``splits.txt`` (header, then ``split, pair, first, second, is same`` with comma + space)
  and ``aligned_images_DB/Name/v/aligned_detect_v.frame.jpg``.
* IJB-B/C: insightface's ``meta/*.txt`` (space separated) and 1:N CSVs, ``loose_crop/``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
from PIL import Image

from jfr.eval.embedding import EvalModel

COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30), (30, 220, 220)]


def pooled_features(images: np.ndarray) -> np.ndarray:
  """A fake embedding: 4x4 average pooling of the pixels in [-0.5, 0.5] -> [B, 48]."""
  x = np.asarray(images, np.float32) / 255.0 - 0.5
  b, h, w, c = x.shape
  return x.reshape(b, 4, h // 4, 4, w // 4, c).mean(axis=(2, 4)).reshape(b, -1)


def fake_model(input_size: int = 16, embed_sets=None) -> EvalModel:
  def embed(images):
    images = np.asarray(images)
    assert images.dtype == np.uint8 and images.shape[1] == images.shape[2] == input_size
    return pooled_features(images)

  return EvalModel(input_size=input_size, embed=embed, embed_sets=embed_sets)


def save_jpeg(path: str, image: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path, quality=95)


def encode_jpeg(image: np.ndarray) -> bytes:
  import io

  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="JPEG", quality=95)
  return buf.getvalue()


# ---------------------------------------------------------------------------- .bin


def write_bin(path: str, first, second, issame, protocol: int = 4) -> None:
  """``(bins, issame_list)`` with bins = [a0, b0, a1, b1, ...] JPEG bytes."""
  bins = []
  for a, b in zip(first, second):
    bins += [encode_jpeg(a), encode_jpeg(b)]
  with open(path, "wb") as f:
    pickle.dump((bins, [bool(s) for s in issame]), f, protocol=protocol)


# ---------------------------------------------------------------------------- LFW


def lfw_canvas(face: np.ndarray) -> np.ndarray:
  """A 250x250 LFW-like image: the face in the central 150x150 on a grey background."""
  canvas = np.full((250, 250, 3), 90, np.uint8)
  canvas[50:200, 50:200] = np.asarray(Image.fromarray(face).resize((150, 150), Image.BILINEAR))
  return canvas


def write_lfw(root: str, faces: dict, same: list, different: list, *, header: str) -> None:
  """``faces``: {(name, n): image}; ``same``: [(name, n1, n2)], ``different``: [(a, n1, b, n2)]
  listed fold by fold as the caller orders them (lines written in the given order)."""
  for (name, n), face in faces.items():
    save_jpeg(os.path.join(root, "lfw", name, f"{name}_{n:04d}.jpg"), lfw_canvas(face))


def write_pairs_file(path: str, header: str, blocks: list) -> None:
  """``blocks``: per fold (same lines, different lines) tuples."""
  lines = [header]
  for same, different in blocks:
    lines += [f"{a}\t{n1}\t{n2}" for a, n1, n2 in same]
    lines += [f"{a}\t{n1}\t{b}\t{n2}" for a, n1, b, n2 in different]
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------- YTF


def write_ytf(root: str, videos: dict, pairs: list) -> None:
  """``videos``: {'Name/v': frames [T, S, S, 3]} written as aligned_images_DB frames on a
  frame twice the face's side (the face centred); ``pairs``: [(split, first, second, same)]."""
  for video, frames in videos.items():
    name, v = video.split("/")
    for t, frame in enumerate(frames):
      s = frame.shape[0]
      canvas = np.full((2 * s, 2 * s, 3), 60, np.uint8)
      canvas[s // 2 : s // 2 + s, s // 2 : s // 2 + s] = frame
      save_jpeg(
        os.path.join(root, "aligned_images_DB", name, v, f"aligned_detect_{v}.{t + 1}.jpg"), canvas
      )
  lines = ["split number, pair number, first name, second name, is same"]
  for i, (split, a, b, same) in enumerate(pairs):
    lines.append(f"{split}, {i + 1}, {a}, {b}, {int(same)}")
  with open(os.path.join(root, "splits.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------- IJB


def write_ijb(root: str, target: str, crops: list, pairs: list, galleries=None, probe=None) -> None:
  """``crops``: [(name, image, landmarks [5, 2], score, template, media)];
  ``pairs``: [(t1, t2, label)]; ``galleries``: {suffix: [(template, subject)]}; ``probe``:
  [(template, subject)] (the CSVs list one row per crop of each template)."""
  meta = os.path.join(root, "meta")
  os.makedirs(meta, exist_ok=True)
  for name, image, *_ in crops:
    save_jpeg(os.path.join(root, "loose_crop", name), image)
  with open(os.path.join(meta, f"{target}_face_tid_mid.txt"), "w") as f:
    f.writelines(f"{n} {t} {m}\n" for n, _, _, _, t, m in crops)
  with open(os.path.join(meta, f"{target}_name_5pts_score.txt"), "w") as f:
    for n, _, lm, score, _, _ in crops:
      f.write(" ".join([n, *(f"{v:.3f}" for v in np.asarray(lm).ravel()), f"{score:.6f}"]) + "\n")
  with open(os.path.join(meta, f"{target}_template_pair_label.txt"), "w") as f:
    f.writelines(f"{a} {b} {int(y)}\n" for a, b, y in pairs)

  def csv(path, rows):
    with open(path, "w") as f:
      f.write("TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID\n")
      for template, subject in rows:
        for n, *_, t, m in crops:
          if t == template:
            f.write(f"{template},{subject},img/{n},{m}\n")

  for suffix, rows in (galleries or {}).items():
    csv(os.path.join(meta, f"{target}_1N_gallery_{suffix}.csv"), rows)
  if probe is not None:
    csv(os.path.join(meta, f"{target}_1N_probe_mixed.csv"), probe)
