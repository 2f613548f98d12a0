"""Each ``python -m jfr.infer`` command as a function: load the run, compute, write the
outputs into ``out``; returns ``{'outputs': [paths], 'summary': one line, **results}``.

Every command checks that the run's method supports it before reading the checkpoint
(:func:`jfr.infer.loading.load_run`). JSON files hold the results without arrays; arrays go
to ``.npz``/``.npy``; figures to ``.png`` (:func:`jfr.report.save_figure`).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from jfr.infer import inputs as inputs_lib
from jfr.infer import loading
from jfr.report import figures as figures_lib
from jfr.report import results as results_lib


def _public(result: dict) -> dict:
  return {k: v for k, v in result.items() if not k.startswith("_")}


def _finish(out: str, name: str, result: dict, figures: dict, arrays: list[str], summary: str):
  os.makedirs(out, exist_ok=True)
  paths = list(arrays)
  for key, fig in figures.items():
    paths.append(os.fspath(figures_lib.save_figure(fig, os.path.join(out, f"{key}.png"))))
  body = _public(result)
  json_path = os.path.join(out, f"{name}.json")
  results_lib.write_json({**body, "outputs": paths + [json_path]}, json_path)
  return {**body, "outputs": paths + [json_path], "summary": summary, "_result": result}


def _load(workdir: str, command: str, allow_older: bool, batch_size: int = 64) -> loading.Run:
  return loading.load_run(workdir, command, batch_size=batch_size, allow_older=allow_older)


def embed(
  *,
  workdir: str,
  out: str,
  images: Sequence[str],
  landmarks: str | None = None,
  batch_size: int = 64,
  allow_older: bool = False,
) -> dict:
  """``embed``: ``embeddings.npz`` (``embeddings`` [N, D], ``names``, ``aligned``)."""
  from jfr.infer import recognize

  run = _load(workdir, "embed", allow_older, batch_size)
  paths = inputs_lib.expand_inputs(images)
  marks = inputs_lib.read_landmarks(landmarks, paths) if landmarks else None
  res = recognize.embed_paths(
    run.model.embed, paths, run.model.input_size, batch_size=batch_size, landmarks=marks
  )
  npz = out if out.endswith(".npz") else os.path.join(out, "embeddings.npz")
  folder = os.path.dirname(os.path.abspath(npz))
  recognize.write_embeddings(res, npz)
  body = {
    "num_images": len(paths),
    "feature_size": int(res["embeddings"].shape[1]),
    "normalised": False,
    "aligned": int(res["aligned"].sum()),
    "warnings": res["warnings"],
    "checkpoint": run.checkpoint,
  }
  summary = f"{len(paths)} faces -> {npz} ({body['feature_size']}-d features)"
  return _finish(folder, "embed", body, {}, [npz], summary)


def verify(
  *, workdir, out, pair, far=1e-3, threshold=None, landmarks=None, flip=None, allow_older=False
):
  """``verify``: ``verify.json`` (score, threshold, decision) and ``verify.png``."""
  from jfr.infer import recognize

  run = _load(workdir, "verify", allow_older, 2)
  res = recognize.verify(
    run, pair[0], pair[1], far=far, threshold=threshold, landmarks=landmarks, flip=flip
  )
  fig = recognize.verify_figure(res)
  verdict = "same" if res["same_identity"] else "different"
  summary = f"cosine {res['score']:.4f} vs {res['threshold']:.4f}: {verdict} identity"
  return _finish(out, "verify", res, {"verify": fig}, [], summary)


def search(
  *,
  workdir,
  out,
  gallery,
  probes,
  top_k=5,
  fpir=0.1,
  threshold=None,
  landmarks=None,
  batch_size=64,
  allow_older=False,
):
  """``search``: ``search.json`` (ranked lists), ``scores.npy`` [P, G] and ``search.png``."""
  from jfr.infer import recognize

  run = _load(workdir, "search", allow_older, batch_size)
  res = recognize.search(
    run,
    gallery,
    probes,
    top_k=top_k,
    fpir=fpir,
    threshold=threshold,
    landmarks=landmarks,
    batch_size=batch_size,
  )
  os.makedirs(out, exist_ok=True)
  scores = os.path.join(out, "scores.npy")
  np.save(scores, res["_scores"])
  fig = recognize.search_figure(res, run.model.input_size)
  known = sum(r["decision"] != "unknown" for r in res["results"])
  summary = f"{len(res['results'])} probes vs {len(res['gallery'])} identities: {known} identified"
  return _finish(out, "search", res, {"search": fig}, [scores], summary)


def explain(*, workdir, out, pair, methods, threshold=None, landmarks=None, allow_older=False):
  """``explain``: ``<map>.npy`` [2, S, S] per map, ``explain.json`` and ``explain.png``."""
  from jfr.infer import explain as explain_lib

  run = _load(workdir, "explain", allow_older, 2)
  res = explain_lib.explain(
    run, pair[0], pair[1], methods=methods, threshold=threshold, landmarks=landmarks
  )
  arrays = explain_lib.write_maps(res, out)
  fig = explain_lib.explain_figure(res)
  summary = f"cosine {res['score']:.4f}; T = {res['T']:.5f}; maps: {', '.join(res['maps'])}"
  res = {k: v for k, v in res.items() if k != "maps"} | {"maps": sorted(res["maps"])}
  return _finish(out, "explain", res, {"explain": fig}, arrays, summary)


def aggregate(
  *, workdir, out, frames, variant=None, reference=None, landmarks=None, allow_older=False
):
  """``aggregate``: ``aggregated_<i>.png``, ``aggregate.npz`` (features), ``aggregate.json``
  and the figure ``aggregate_overview.png``."""
  from jfr.infer import aggregate as aggregate_lib

  run = _load(workdir, "aggregate", allow_older)
  res = aggregate_lib.aggregate(
    run, frames, variant=variant, reference=reference, landmarks=landmarks
  )
  arrays = aggregate_lib.write_faces(res, out)
  npz = os.path.join(out, "aggregate.npz")
  r = res["_result"]
  np.savez(
    npz,
    feature=r["feature"],
    mean_feature=r["mean_feature"],
    chunk_features=r["chunk_features"],
    faces=aggregate_lib.aggregated_pixels(res),
  )
  fig = aggregate_lib.aggregate_figure(res)
  summary = (
    f"{len(res['frames'])} frames -> {len(res['chunks'])} aggregated face(s); "
    f"cos(FAN, mean feature) {res['cosine_fan_vs_mean_feature']:.4f}"
  )
  return _finish(out, "aggregate", res, {"aggregate_overview": fig}, arrays + [npz], summary)


def attributes(*, workdir, out, images, landmarks=None, allow_older=False):
  """``attributes``: probabilities (``attributes.json``), maps (``attribute_maps.npy``) and
  overlays (``attributes.png``)."""
  from jfr.infer import face_maps

  run = _load(workdir, "attributes", allow_older)
  res = face_maps.attributes(run, images, landmarks=landmarks)
  os.makedirs(out, exist_ok=True)
  maps = os.path.join(out, "attribute_maps.npy")
  np.save(maps, res["_maps"])
  fig = face_maps.attributes_figure(res)
  summary = f"{len(res['images'])} faces x {len(res['attributes'])} attributes"
  return _finish(out, "attributes", res, {"attributes": fig}, [maps], summary)


def filters(*, workdir, out, images, landmarks=None, allow_older=False):
  """``filters``: peaks (``filters.json``), response maps (``response_maps.npy``) and the
  Fig. 1-style picture (``filters.png``)."""
  from jfr.infer import face_maps

  run = _load(workdir, "filters", allow_older)
  res = face_maps.filters(run, images, landmarks=landmarks)
  os.makedirs(out, exist_ok=True)
  maps = os.path.join(out, "response_maps.npy")
  np.save(maps, res["_maps"])
  fig = face_maps.filters_figure(res)
  summary = f"{len(res['images'])} faces, {res['num_filters']} filters"
  return _finish(out, "filters", res, {"filters": fig}, [maps], summary)


def templates(*, workdir, out, folder, bins=None, allow_older=False):
  """``templates``: ``templates.json`` (scores), ``templates.npz`` (masks, masked
  descriptors) and ``templates.png``."""
  from jfr.infer import templates as templates_lib

  run = _load(workdir, "templates", allow_older) if workdir else None
  res = templates_lib.run_templates(run, folder, bins)
  os.makedirs(out, exist_ok=True)
  npz = os.path.join(out, "templates.npz")
  arrays = ("masks", "masked_descriptors", "descriptors", "template_ids")
  np.savez(npz, **{k: res[k] for k in arrays})
  fig = templates_lib.templates_figure(res)
  body = {k: v for k, v in res.items() if k not in arrays}
  summary = f"{len(res['templates'])} templates, k = {res['k']}, m = {res['m']}"
  return _finish(out, "templates", body, {"templates": fig}, [npz], summary)


def export(*, workdir, out, formats=("jax", "saved_model"), allow_older=False):
  """``export``: the serialized embedder(s) and ``export.json``."""
  from jfr.infer import export as export_lib

  run = _load(workdir, "export", allow_older, 1)
  info = export_lib.export(run, out, tuple(formats))
  summary = f"exported {', '.join(info['files'])} to {out}"
  return {**info, "outputs": list(info["files"].values()), "summary": summary}
