"""The ``ijb`` evaluator: IJB-B / IJB-C 1:1 verification and 1:N identification as insightface
evaluates them (``recognition/_evaluation_/ijb/ijb_11.py``, ``ijb_1n.py``).

Pipeline (``settings['data']``: insightface's ``IJBB`` or ``IJBC`` folder,
:mod:`jfr.data.benchmarks.ijb`):

1. every crop of ``loose_crop/`` is aligned with its five landmarks to the ArcFace template
   at the model's input side (:func:`jfr.data.align.five_point_transforms`) and embedded
   (with ``flip``: ``f(x) + f(flip(x))``);
2. image features keep their norm (insightface's TestMode N1) unless
   ``normalize_images``; with ``detector_score`` (default, TestMode D1) each is multiplied
   by its detector score;
3. :func:`template_features`: a template's feature is the sum over its media of the mean
   feature of the media's crops (a still is its own media; a video's frames are averaged),
   L2-normalised;
4. 1:1: the cosine of the two templates of each listed pair, scored ``pair_block`` pairs
   at a time; TAR at FAR in {1e-6, ..., 1e-1} read by :func:`insightface_tar_at_far`
   (the ROC point nearest each FAR), next to jfr's threshold convention
   (:func:`jfr.eval.metrics.tar_at_far`: lowest threshold with FAR <= target);
5. 1:N (when the CSVs are present): probes ``*_1N_probe_mixed.csv`` against each gallery
   (IJB-C G1, G2; IJB-B S1, S2) separately: closed-set CMC over the probes whose subject
   is enrolled, open-set TPIR at FPIR (probes of the other gallery are the non-mated
   searches), and their mean over the two galleries; plus insightface's figure, rank-k on
   the union of the two galleries (every probe is mated there).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jfr.data import align
from jfr.data import image_files
from jfr.data.benchmarks import ijb as ijb_files
from jfr.eval import metrics
from jfr.eval.benchmarks import streaming
from jfr.eval.embedding import EvalModel
from jfr.report import tables

NEEDS = ("embed",)
FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def template_features(
  features: np.ndarray, templates: np.ndarray, medias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """Template features as insightface's ``image2template_feature`` (step 3 above).

  Args:
    features: float ``[N, D]`` crop features (after norm / score weighting).
    templates, medias: int ``[N]`` template and media id of each crop.

  Returns:
    ``(template ids int64 [T] ascending, float32 [T, D] L2-normalised features)``.
  """
  f = np.asarray(features, np.float64)
  t = np.asarray(templates, np.int64)
  m = np.asarray(medias, np.int64)
  if f.ndim != 2 or t.shape != (f.shape[0],) or m.shape != t.shape:
    raise ValueError(f"features/templates/medias: expected [N, D], [N], [N]; got {f.shape}, "
                     f"{t.shape}, {m.shape}")  # fmt: skip
  order = np.lexsort((m, t))
  t, m, f = t[order], m[order], f[order]
  starts = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (m[1:] != m[:-1])])
  counts = np.diff(np.r_[starts, t.size])
  media_means = np.add.reduceat(f, starts, axis=0) / counts[:, None]
  media_templates = t[starts]
  template_starts = np.flatnonzero(np.r_[True, media_templates[1:] != media_templates[:-1]])
  sums = np.add.reduceat(media_means, template_starts, axis=0)
  return media_templates[template_starts], streaming.l2_normalize(sums).astype(np.float32)


def rows_of(template_ids: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
  """Row of each ``wanted`` id in the sorted ``template_ids`` (ValueError naming unknowns)."""
  wanted = np.asarray(wanted, np.int64)
  pos = np.clip(np.searchsorted(template_ids, wanted), 0, template_ids.size - 1)
  unknown = wanted[template_ids[pos] != wanted]
  if unknown.size:
    raise ValueError(f"{what}: template ids {np.unique(unknown)[:5].tolist()} have no crops")
  return pos


def pair_scores(
  feats: np.ndarray, rows1: np.ndarray, rows2: np.ndarray, block: int = 1_000_000
) -> np.ndarray:
  """float32 ``[P]`` cosines ``<feats[rows1[p]], feats[rows2[p]]>``, ``block`` pairs at a time."""
  out = np.empty(rows1.size, np.float32)
  for s in range(0, rows1.size, block):
    a, b = feats[rows1[s : s + block]], feats[rows2[s : s + block]]
    out[s : s + block] = np.einsum("ij,ij->i", a, b)
  return out


def sklearn_roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(fpr, tpr)`` as ``sklearn.metrics.roc_curve`` with its default
  ``drop_intermediate=True``: one point per distinct score (descending), collinear
  interior points dropped, then the point (0, 0) prepended."""
  s = np.asarray(scores, np.float64)
  y = np.asarray(labels, bool)
  order = np.argsort(-s, kind="stable")
  s, y = s[order], y[order]
  last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
  tps = np.cumsum(y)[last].astype(np.float64)
  fps = 1 + last - tps
  if fps.size > 2:
    keep = np.flatnonzero(
      np.r_[True, np.diff(fps, 2) != 0, True] | np.r_[True, np.diff(tps, 2) != 0, True]
    )
    fps, tps = fps[keep], tps[keep]
  fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
  return fps / fps[-1], tps / tps[-1]


def insightface_tar_at_far(scores, labels, fars=FARS) -> np.ndarray:
  """TAR at each FAR read as insightface's ``ijb_11.py`` reads it: on :func:`sklearn_roc`'s
  points, the point whose FPR is nearest the target (ties: the largest TPR)."""
  fpr, tpr = sklearn_roc(scores, labels)
  fpr, tpr = fpr[::-1], tpr[::-1]
  return np.asarray([tpr[int(np.argmin(np.abs(fpr - f)))] for f in fars])


def _plot_curve(fpr: np.ndarray, tpr: np.ndarray, points: int = 2000):
  grid = np.logspace(-7, 0, points)
  index = np.unique(np.clip(np.searchsorted(fpr, grid), 0, fpr.size - 1))
  return fpr[index], tpr[index]


def identification(
  probe: np.ndarray, probe_subjects, gallery: np.ndarray, gallery_subjects, ranks, fpirs
) -> dict:
  """CMC (mated probes) and TPIR@FPIR (all probes) of normalised template features."""
  sim = probe.astype(np.float64) @ gallery.astype(np.float64).T
  mated = np.isin(probe_subjects, gallery_subjects)
  ranks = [r for r in ranks if r <= gallery.shape[0]]
  cmc = metrics.cmc(sim[mated], probe_subjects[mated], gallery_subjects, ranks)
  out = {f"rank{r}": float(v) for r, v in zip(ranks, cmc)}
  if (~mated).any():
    tpir = metrics.tpir_at_fpir(sim, probe_subjects, gallery_subjects, fpirs)
    out.update({f"tpir@fpir={f:g}": float(v) for f, v in zip(fpirs, tpir)})
  out.update(mated_probes=int(mated.sum()), nonmated_probes=int((~mated).sum()))
  return out


def _crop_features(model, layout, names, landmarks, settings, flip) -> dict:
  def load(i: int) -> np.ndarray:
    image = image_files.decode_image(os.path.join(layout.crops, names[i]))
    matrix = align.five_point_transforms(landmarks[i].astype(np.float64), model.input_size)
    return align.warp(image, matrix, model.input_size)

  digest = streaming.fingerprint(
    kind="ijb", keys=streaming.keys_digest(names), landmarks=float(landmarks.sum()),
    input_size=model.input_size, flip=flip,
  )  # fmt: skip
  return streaming.cached(
    settings.get("cache"),
    layout.target,
    digest,
    lambda: streaming.embed_items(
      model.embed, load, len(names), batch_size=int(streaming.setting(settings, "batch_size", 256)),
      flip=flip, progress=settings.get("progress"), description=layout.target,
    ),
  )  # fmt: skip


def ijb(model: EvalModel, context: Any, settings: dict, *, seed: int) -> dict:
  """IJB-B / IJB-C (module docstring). Settings: ``data``, ``flip`` (False),
  ``detector_score`` (True), ``normalize_images`` (False), ``fars``, ``ranks`` (1, 5, 10),
  ``fpirs`` (0.01, 0.1), ``pair_block`` (1e6), ``batch_size``, ``cache``, ``progress``."""
  del context, seed
  layout = ijb_files.find_layout(settings["data"])
  flip = bool(streaming.setting(settings, "flip", False))
  use_score = bool(streaming.setting(settings, "detector_score", True))
  normalize = bool(streaming.setting(settings, "normalize_images", False))
  fars = tuple(streaming.setting(settings, "fars", FARS))
  ranks = tuple(streaming.setting(settings, "ranks", (1, 5, 10)))
  fpirs = tuple(streaming.setting(settings, "fpirs", (0.01, 0.1)))
  names, templates, medias = ijb_files.read_face_tid_mid(layout.face_tid_mid)
  names5, landmarks, scores = ijb_files.read_five_points(layout.five_points)
  if names5 != names:
    bad = (
      next(i for i, (a, b) in enumerate(zip(names, names5)) if a != b)
      if len(names) == len(names5)
      else min(len(names), len(names5))
    )
    raise ValueError(
      f"{layout.five_points} and {layout.face_tid_mid} must list the same crops in the same "
      f"order; they differ at row {bad + 1}"
    )
  feats = streaming.flip_sum(_crop_features(model, layout, names, landmarks, settings, flip), flip)
  if normalize:
    feats = streaming.l2_normalize(feats)
  if use_score:
    feats = feats * scores[:, None]
  ids, tfeats = template_features(feats, templates, medias)
  t1, t2, same = ijb_files.read_template_pairs(layout.pairs)
  block = int(streaming.setting(settings, "pair_block", 1_000_000))
  s = pair_scores(tfeats, rows_of(ids, t1, layout.pairs), rows_of(ids, t2, layout.pairs), block)
  tar = insightface_tar_at_far(s, same, fars)
  tar_threshold = metrics.tar_at_far(s, same, fars)
  fpr, tpr = sklearn_roc(s, same)
  verification = {
    "pairs": int(same.size),
    "genuine": int(same.sum()),
    "tar_at_far": {f"{f:g}": float(v) for f, v in zip(fars, tar)},
    "tar_at_far_threshold": {f"{f:g}": float(v) for f, v in zip(fars, tar_threshold)},
    "auc": metrics.auc(fpr, tpr),
  }
  result = {
    "target": layout.target,
    "crops": len(names),
    "templates": int(ids.size),
    "flip": flip,
    "detector_score": use_score,
    "normalize_images": normalize,
    "verification": verification,
    "_roc": {f"{layout.target} 1:1": _plot_curve(fpr, tpr)},
  }
  rows = [{"FAR": f"{f:g}", "TAR (insightface)": tar[i], "TAR (threshold)": tar_threshold[i]}
          for i, f in enumerate(fars)]  # fmt: skip
  markdown = [
    f"# {layout.target.upper()}\n",
    f"{len(names)} crops, {ids.size} templates, {same.size} pairs; flip={flip}, "
    f"detector_score={use_score}, normalize_images={normalize}.\n",
    "## 1:1 verification\n",
    tables.markdown_table(rows, ["FAR", "TAR (insightface)", "TAR (threshold)"]),
    "\nTAR (insightface): TPR at the ROC point nearest the FAR (sklearn roc_curve points); "
    "TAR (threshold): lowest threshold whose FAR <= the target.\n",
  ]
  if layout.has_1n():
    probe_t, probe_s = ijb_files.read_1n_csv(layout.probe)
    probe = tfeats[rows_of(ids, probe_t, layout.probe)]
    per_gallery, all_feats, all_subjects = {}, [], []
    for name, path in zip(layout.gallery_names, layout.galleries):
      g_t, g_s = ijb_files.read_1n_csv(path)
      gallery = tfeats[rows_of(ids, g_t, path)]
      per_gallery[name] = identification(probe, probe_s, gallery, g_s, ranks, fpirs)
      all_feats.append(gallery)
      all_subjects.append(g_s)
    keys = [k for k in per_gallery[layout.gallery_names[0]] if "@" in k or k.startswith("rank")]
    mean = {k: float(np.mean([g[k] for g in per_gallery.values()])) for k in keys}
    union = identification(
      probe, probe_s, np.concatenate(all_feats), np.concatenate(all_subjects), ranks, ()
    )
    result["identification"] = {"galleries": per_gallery, "mean": mean, "union": union}
    table = [{"gallery": n, **g} for n, g in per_gallery.items()]
    table += [{"gallery": "mean", **mean}, {"gallery": "union (insightface)", **union}]
    markdown += ["## 1:N identification\n", tables.markdown_table(table, ["gallery", *keys]), ""]
  result["_markdown"] = "\n".join(markdown) + "\n"
  return result
