"""The ``ijba`` evaluator: IJB-A's ten splits (1:N search and 1:1 verification) on a run.

``settings['data']``: the IJB-A folder as released::

  IJB-A_11_sets/split<k>/verify_metadata_<k>.csv, verify_comparisons_<k>.csv
  IJB-A_1N_sets/split<k>/search_gallery_<k>.csv, search_probe_<k>.csv
  images/<FILE>            (FILE as in the metadata, e.g. img/1.jpg, frame/30000_00000.png)

The metadata files are read by :mod:`jfr.data.adapters.ijb` (face boxes ``FACE_X, FACE_Y,
FACE_WIDTH, FACE_HEIGHT`` required). Each distinct (file, box) is cropped to a square of
side ``max(w, h) * (1 + box_margin)`` around the box (:func:`jfr.data.align.box_transforms`,
default margin 0.2) and embedded once. A template is the mean of its members' L2-normalised
features (renormalised); templates are compared by cosine similarity. The figures are those
of :func:`jfr.eval.ijb.evaluate_splits` (open-set TPIR@FPIR, closed-set TAR@FAR and Rank-k,
1:1 TAR@FAR), mean and std over the splits.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

import jax
import numpy as np

from jfr.data import align
from jfr.data import image_files
from jfr.data.adapters import ijb as ijb_files
from jfr.eval import ijb
from jfr.eval import ijb_splits
from jfr.eval.benchmarks import streaming
from jfr.eval.embedding import EvalModel
from jfr.report import tables

NEEDS = ("embed",)


def cosine_mean_matcher() -> ijb.Matcher:
  """Templates = renormalised mean of normalised member features; distance = 1 - cosine."""

  def represent(descriptors, template_ids, num_templates, key):
    del key
    sums = np.zeros((num_templates, descriptors.shape[1]))
    np.add.at(sums, template_ids, streaming.l2_normalize(np.asarray(descriptors, np.float64)))
    return streaming.l2_normalize(sums)

  return ijb.Matcher(represent, lambda a, b: 1.0 - a @ b.T)


def split_files(root: str) -> list[dict[str, str]]:
  """The four protocol files of every split present, in split order."""
  folders = glob.glob(os.path.join(root, "IJB-A_11_sets", "split*"))
  numbers = sorted(int(m.group(1)) for f in folders if (m := re.search(r"split(\d+)$", f)))
  if not numbers:
    raise ValueError(f"data: no IJB-A_11_sets/split<k>/ folders under {root!r}")
  out = []
  for k in numbers:
    files = {
      "verify": os.path.join(root, "IJB-A_11_sets", f"split{k}", f"verify_metadata_{k}.csv"),
      "pairs": os.path.join(root, "IJB-A_11_sets", f"split{k}", f"verify_comparisons_{k}.csv"),
      "gallery": os.path.join(root, "IJB-A_1N_sets", f"split{k}", f"search_gallery_{k}.csv"),
      "probe": os.path.join(root, "IJB-A_1N_sets", f"split{k}", f"search_probe_{k}.csv"),
    }
    missing = [p for p in files.values() if not os.path.isfile(p)]
    if missing:
      raise ValueError(f"data: split {k} lacks {missing[0]!r}")
    out.append(files)
  return out


def _keys(metadata: ijb_files.TemplateMetadata) -> list[tuple]:
  if metadata.boxes is None:
    raise ValueError(f"{metadata.path}: needs the FACE_X, FACE_Y, FACE_WIDTH, FACE_HEIGHT columns")
  return [(f, *map(float, b)) for f, b in zip(metadata.filenames.tolist(), metadata.boxes)]


def ijba(model: EvalModel, context: Any, settings: dict, *, seed: int) -> dict:
  """IJB-A (module docstring). Settings: ``data``, ``flip`` (False), ``box_margin`` (0.2),
  ``batch_size``, ``cache``, ``progress``."""
  del context
  root = settings["data"]
  flip = bool(streaming.setting(settings, "flip", False))
  margin = float(streaming.setting(settings, "box_margin", 0.2))
  images_root = (
    os.path.join(root, "images") if os.path.isdir(os.path.join(root, "images")) else root
  )
  protocol = []
  for files in split_files(root):
    search = ijb_files.read_search_protocol(files["gallery"], files["probe"])
    verify = ijb_files.read_template_metadata(files["verify"])
    comparisons = ijb_files.read_template_pairs(files["pairs"])
    protocol.append((search, verify, comparisons))
  keys = sorted({k for s, v, _ in protocol for m in (s.gallery, s.probe, v) for k in _keys(m)})
  row = {k: i for i, k in enumerate(keys)}

  def load(i: int) -> np.ndarray:
    file, x, y, w, h = keys[i]
    image = image_files.decode_image(os.path.join(images_root, file))
    matrix = align.box_transforms(np.array([x, y, w, h]), model.input_size, margin)
    return align.warp(image, matrix, model.input_size)

  digest = streaming.fingerprint(
    kind="ijba", keys=streaming.keys_digest([repr(k) for k in keys]), margin=margin,
    input_size=model.input_size, flip=flip,
  )  # fmt: skip
  feats = streaming.cached(
    settings.get("cache"),
    "faces",
    digest,
    lambda: streaming.embed_items(
      model.embed, load, len(keys), batch_size=int(streaming.setting(settings, "batch_size", 256)),
      flip=flip, progress=settings.get("progress"), description="ijba",
    ),
  )  # fmt: skip
  descriptors = streaming.flip_sum(feats, flip).astype(np.float64)
  splits = []
  for search, verify, comparisons in protocol:
    ijb_files.pair_labels(comparisons, verify)  # checks ids and labels
    pairs = np.stack(
      [verify.indices_of(comparisons.template_ids1), verify.indices_of(comparisons.template_ids2)],
      axis=1,
    )
    sides = [
      ijb_splits.templates_from_metadata(m, np.asarray([row[k] for k in _keys(m)], np.int64))
      for m in (search.gallery, search.probe, verify)
    ]
    splits.append(ijb.ProtocolSplit(*sides, pairs))
  targets = ijb.Targets()
  out = ijb.evaluate_splits(
    cosine_mean_matcher(), descriptors, splits, jax.random.PRNGKey(seed), targets
  )
  rows = [{"metric": n, "mean": out["mean"][n], "std": out["std"][n]} for n in targets.names()]
  out.update(
    splits=len(splits),
    faces=len(keys),
    flip=flip,
    box_margin=margin,
    protocol=ijb.protocol_summary(splits),
    _markdown="# IJB-A\n\n"
    + tables.markdown_table(rows, ["metric", "mean", "std"])
    + f"\n\n{len(splits)} splits; templates = mean of normalised features, cosine similarity; "
    f"faces cropped from the metadata boxes with margin {margin}.\n",
  )
  return out
