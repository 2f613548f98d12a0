"""``embed``, ``verify`` and ``search``: a trained run's face embeddings on a user's images.

* :func:`embed_paths`: images -> features ``[N, D]`` (raw, not normalised), read and aligned
  on worker threads one batch ahead of the model (:func:`face_batches`), with a progress bar.
* :func:`verify`: two images -> the cosine score ``<f_A, f_B> / (|f_A| |f_B|)`` and the
  decision ``score > t_FAR`` with the threshold the run's evaluation stored
  (:mod:`jfr.infer.thresholds`).
* :func:`search`: a gallery of one sub-folder per identity -> one template per identity,
  **pooled as the L2-normalised mean of the L2-normalised image features**; probes ranked
  against the templates by cosine score (top-k) and rejected as unknown (open set) when their
  best score is not above the threshold stored for the chosen FPIR.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Iterator, Sequence

import numpy as np
from tqdm import auto as tqdm

from jfr.data import image_files
from jfr.eval import embedding
from jfr.infer import inputs as inputs_lib
from jfr.infer import thresholds as thresholds_lib
from jfr.infer.loading import Run
from jfr.report import figures as figures_lib


def l2_normalize(x: np.ndarray) -> np.ndarray:
  """Rows of ``x`` ``[N, D]`` divided by their norm."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def face_batches(
  paths: Sequence[str],
  input_size: int,
  batch_size: int,
  landmarks: np.ndarray | None = None,
  workers: int = 4,
) -> Iterator[inputs_lib.Faces]:
  """:func:`jfr.infer.inputs.load_faces` of consecutive ``batch_size`` chunks of ``paths``,
  each chunk read on ``workers`` threads while the caller uses the previous one."""
  chunks = [range(s, min(s + batch_size, len(paths))) for s in range(0, len(paths), batch_size)]
  if not chunks:
    return

  def read(chunk: range) -> inputs_lib.Faces:
    parts = [
      inputs_lib.load_faces(
        [paths[i]], input_size, None if landmarks is None else landmarks[i : i + 1]
      )
      for i in chunk
    ]
    return inputs_lib.Faces(
      np.concatenate([p.images for p in parts]),
      [n for p in parts for n in p.names],
      np.concatenate([p.aligned for p in parts]),
      {k: v for p in parts for k, v in p.warnings.items()},
    )

  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    # each chunk is split over the workers; the next chunk is queued before yielding
    def submit(chunk: range):
      pieces = np.array_split(np.asarray(chunk), min(workers, len(chunk)))
      return [pool.submit(read, range(p[0], p[-1] + 1)) for p in pieces if len(p)]

    pending = submit(chunks[0])
    for k in range(len(chunks)):
      current = pending
      if k + 1 < len(chunks):
        pending = submit(chunks[k + 1])
      parts = [f.result() for f in current]
      yield inputs_lib.Faces(
        np.concatenate([p.images for p in parts]),
        [n for p in parts for n in p.names],
        np.concatenate([p.aligned for p in parts]),
        {k2: v for p in parts for k2, v in p.warnings.items()},
      )


def embed_paths(
  embed: embedding.EmbedFn,
  paths: Sequence[str],
  input_size: int,
  *,
  batch_size: int = 64,
  landmarks: np.ndarray | None = None,
  flip: bool = False,
  progress: bool = True,
) -> dict:
  """``{'embeddings': float32 [N, D], 'names': [N], 'aligned': bool [N], 'warnings': {}}`` of
  the images at ``paths`` (``flip``: features of the image plus its mirror image,
  :func:`jfr.eval.embedding.flip_average`)."""
  fn = embedding.flip_average(embed) if flip else embed
  feats, names, aligned, notes = [], [], [], {}
  total = -(-len(paths) // batch_size)
  for faces in tqdm.tqdm(
    face_batches(paths, input_size, batch_size, landmarks),
    total=total,
    desc="embedding",
    unit="batch",
    disable=not progress,
  ):
    feats.append(np.asarray(fn(faces.images), np.float32))
    names.extend(faces.names)
    aligned.append(faces.aligned)
    notes.update(faces.warnings)
  return {
    "embeddings": np.concatenate(feats),
    "names": names,
    "aligned": np.concatenate(aligned),
    "warnings": notes,
  }


def write_embeddings(result: dict, out: str) -> str:
  """Writes an :func:`embed_paths` result as ``.npz`` (``embeddings``, ``names``,
  ``aligned``); returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.savez(
    out,
    embeddings=result["embeddings"],
    names=np.asarray(result["names"]),
    aligned=result["aligned"],
  )
  return out


def _flip_of(stored: dict | None, flip: bool | None) -> bool:
  if flip is not None:
    return flip
  return bool((stored or {}).get("source", {}).get("flip", False))


def verify(
  run: Run,
  image_a: str,
  image_b: str,
  *,
  far: float = 1e-3,
  threshold: float | None = None,
  landmarks: str | None = None,
  flip: bool | None = None,
) -> dict:
  """Cosine score of two faces and the decision at ``far`` (module docstring); an explicit
  ``threshold`` replaces the stored one. Also returns the two face crops (``_faces``)."""
  stored = None
  if threshold is None:
    stored = thresholds_lib.read_thresholds(run.workdir)
    threshold = thresholds_lib.lookup(stored, "verification", "far", far)
  faces = inputs_lib.read_faces([image_a, image_b], run.model.input_size, landmarks)
  fn = embedding.flip_average(run.model.embed) if _flip_of(stored, flip) else run.model.embed
  f = l2_normalize(fn(faces.images))
  score = float(np.dot(f[0], f[1]))
  return {
    "images": [image_a, image_b],
    "score": score,
    "threshold": float(threshold),
    "far": far if stored is not None else None,
    "same_identity": bool(score > threshold),
    "rule": thresholds_lib.RULE,
    "threshold_source": stored["source"] if stored is not None else "given (--threshold)",
    "flip": _flip_of(stored, flip),
    "aligned": faces.aligned.tolist(),
    "warnings": faces.warnings,
    "_faces": faces.images,
  }


def verify_figure(result: dict):
  """The two faces side by side, titled with the score, threshold and decision."""
  fig = figures_lib.new_figure(4.0, 2.5)
  axes = fig.subplots(1, 2)
  for ax, image, name in zip(axes, result["_faces"], result["images"]):
    figures_lib.show_image(ax, image, os.path.basename(name), fontsize=8)
  verdict = "SAME identity" if result["same_identity"] else "DIFFERENT identities"
  far = f" (FAR {result['far']:g})" if result["far"] is not None else ""
  fig.suptitle(
    f"{verdict}\ncosine {result['score']:.3f} vs threshold {result['threshold']:.3f}{far}",
    fontsize=9,
    color="tab:green" if result["same_identity"] else "tab:red",
  )
  fig.tight_layout()
  return fig


def gallery_paths(gallery: str) -> dict[str, list[str]]:
  """``{identity: [image paths]}`` of a gallery folder of one sub-folder per identity."""
  skipped = image_files.SkipLog()
  identities, _ = image_files.list_folder(gallery, skipped)
  out = {}
  for name in identities:
    _, files = image_files.list_folder(os.path.join(gallery, name), skipped)
    if files:
      out[name] = [os.path.join(gallery, name, f) for f in files]
  if not out:
    raise ValueError(f"gallery: {gallery!r} holds no sub-folder with images (one per identity)")
  return out


def search(
  run: Run,
  gallery: str,
  probes: Sequence[str] | str,
  *,
  top_k: int = 5,
  fpir: float | None = 0.1,
  threshold: float | None = None,
  landmarks: str | None = None,
  batch_size: int = 64,
) -> dict:
  """1:N search of ``probes`` in ``gallery`` (module docstring). ``fpir`` picks the stored
  open-set threshold (None with no ``threshold``: closed set, nothing rejected)."""
  if top_k < 1:
    raise ValueError(f"top_k: expected >= 1, got {top_k}")
  source = "given (--threshold)" if threshold is not None else None
  if threshold is None and fpir is not None:
    stored = thresholds_lib.read_thresholds(run.workdir)
    threshold = thresholds_lib.lookup(stored, "identification", "fpir", fpir)
    source = stored["source"]
  size = run.model.input_size
  ids = gallery_paths(gallery)
  all_paths = [p for paths in ids.values() for p in paths]
  g = embed_paths(run.model.embed, all_paths, size, batch_size=batch_size, progress=False)
  owner = np.repeat(np.arange(len(ids)), [len(v) for v in ids.values()])
  unit = l2_normalize(g["embeddings"])
  templates = l2_normalize(np.stack([unit[owner == i].mean(0) for i in range(len(ids))]))
  probe_paths = inputs_lib.expand_inputs(probes)
  marks = inputs_lib.read_landmarks(landmarks, probe_paths) if landmarks else None
  p = embed_paths(
    run.model.embed, probe_paths, size, batch_size=batch_size, landmarks=marks, progress=False
  )
  scores = l2_normalize(p["embeddings"]) @ templates.T
  names = list(ids)
  k = min(top_k, len(names))
  results = []
  for i, path in enumerate(probe_paths):
    order = np.argsort(-scores[i])[:k]
    best = float(scores[i, order[0]])
    known = threshold is None or best > threshold
    results.append(
      {
        "probe": path,
        "ranked": [{"identity": names[j], "score": float(scores[i, j])} for j in order],
        "decision": names[order[0]] if known else "unknown",
      }
    )
  return {
    "gallery": {name: len(v) for name, v in ids.items()},
    "pooling": "template = L2-normalised mean of the L2-normalised image features",
    "threshold": threshold,
    "fpir": fpir if isinstance(source, dict) else None,
    "threshold_source": source,
    "results": results,
    "warnings": {**g["warnings"], **p["warnings"]},
    "_scores": scores,
    "_gallery_first": {n: v[0] for n, v in ids.items()},
  }


def search_figure(result: dict, input_size: int, max_probes: int = 8):
  """One row per probe: the probe, then its top-k identities (first gallery image) with
  scores; the decision in the row label (red: rejected as unknown)."""
  rows = result["results"][:max_probes]
  k = len(rows[0]["ranked"])
  fig = figures_lib.new_figure(1.5 * (k + 1) + 0.3, 1.75 * len(rows) + 0.4)
  axes = fig.subplots(len(rows), k + 1, squeeze=False)
  cache: dict[str, np.ndarray] = {}

  def face(path: str) -> np.ndarray:
    if path not in cache:
      cache[path] = inputs_lib.load_faces([path], input_size).images[0]
    return cache[path]

  for r, row in enumerate(rows):
    decided = row["decision"]
    figures_lib.show_image(
      axes[r, 0], face(row["probe"]), f"probe {os.path.basename(row['probe'])}", 7
    )
    axes[r, 0].set_title(
      f"{os.path.basename(row['probe'])}\n-> {decided}",
      fontsize=7,
      color="tab:red" if decided == "unknown" else "black",
    )
    for c, hit in enumerate(row["ranked"]):
      ax = axes[r, c + 1]
      figures_lib.show_image(ax, face(result["_gallery_first"][hit["identity"]]))
      accepted = result["threshold"] is None or hit["score"] > result["threshold"]
      ax.set_title(
        f"#{c + 1} {hit['identity']}\n{hit['score']:.3f}",
        fontsize=7,
        color="black" if accepted else "grey",
      )
  thr = result["threshold"]
  fig.suptitle(
    "1:N search, top-k gallery identities"
    + (f" (unknown if best <= {thr:.3f})" if thr is not None else "")
    + (f", FPIR {result['fpir']:g}" if result["fpir"] is not None else ""),
    fontsize=9,
  )
  fig.tight_layout()
  return fig
