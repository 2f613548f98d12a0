"""IJB-B/C-like mixed-media 1:N and 1:1 on templates of stills and video frames (FAN paper
Sec. 4.4, Table 3), as the evaluator ``mixed_media``.

Settings (one ``config.evals`` block): ``still_split``, ``video_split`` (held-out identities
of the run's data set), ``gallery_stills``, ``probes_per_subject``, ``ranks``, ``fpirs``,
``fars``, ``max_set_size``.

Templates (:func:`jfr.eval.mixed_media_templates.mixed_media_templates`): per subject one
gallery template (``gallery_stills`` stills + its first clip) and ``probes_per_subject``
probe templates (the other stills and the frames of the other clips). Each video part of a
template is cut into sets of at most ``max_set_size`` frames
(:func:`~jfr.eval.mixed_media_templates.template_frame_sets`; for an aggregator this must not
exceed its largest set). 1:N: two galleries, each with half of the subjects, every probe
searched in both (rank-k, TPIR@FPIR, and their mean); 1:1 (``verification``): every
(probe, gallery) template pair, EER/AUC/TAR@FAR. Rows:

* ``avg``: the mean of the normalised features of every still and frame (the paper's
  baseline);
* ``avg_media``: every set's mean frame feature counts as one item next to each still;
* one row per set embedder (``embed_sets``: one feature per set, e.g. the FAN's aggregated
  image), named ``aggregated`` or as given to :func:`evaluate_templates`.

Also ``extraction_cost`` (feature extractions of ``avg`` vs one per set) and ``templates``
(gallery/probe counts). Each row's ``mean`` has its 95 % interval ``mean_ci95`` (same nest),
a bootstrap over the probes' subjects (:func:`identification_replicates`, galleries fixed);
the replicates stay in memory under ``_bootstrap`` (row -> (names, value, reps)) for paired
comparisons of rows (same resamples in every row).
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval import metrics
from jfr.eval import protocols
from jfr.eval import mixed_media_templates as mm
from jfr.eval import video_protocols as vp
from jfr.eval.still_images import check_settings
from jfr.report import intervals

NEEDS = ("embed",)
SETTINGS = (
  "still_split",
  "video_split",
  "gallery_stills",
  "probes_per_subject",
  "ranks",
  "fpirs",
  "fars",
  "max_set_size",
)


def metric_names(ranks: Sequence[int], fpirs: Sequence[float]) -> list[str]:
  """The bootstrapped figures of a row's ``mean``: ``rank<k>`` and ``tpir_at_fpir/<f>``."""
  return [f"rank{r}" for r in ranks] + [f"tpir_at_fpir/{f:g}" for f in fpirs]


def identification_replicates(
  gallery_features: np.ndarray,
  gallery_labels: np.ndarray,
  probe_features: np.ndarray,
  probe_labels: np.ndarray,
  subject_halves: Sequence[np.ndarray],
  *,
  ranks: Sequence[int],
  fpirs: Sequence[float],
  num_resamples: int = intervals.DEFAULT_RESAMPLES,
  seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
  """``(value [M], reps [R, M])`` of the two-gallery mean of :func:`metric_names`: the probe
  templates are resampled by subject (every template of a drawn subject, once per draw),
  the galleries stay fixed (:func:`jfr.report.intervals.replicates`). A resample without
  mated or non-mated probes gives NaN for the figures it cannot define (left out of the
  percentiles)."""
  gallery_labels, probe_labels = np.asarray(gallery_labels), np.asarray(probe_labels)
  sims, labels = [], []
  for half in subject_halves:
    keep = np.isin(gallery_labels, half)
    sims.append(protocols.cosine_similarity_matrix(probe_features, gallery_features[keep]))
    labels.append(gallery_labels[keep])
  ranks = [r for r in ranks if all(r <= g.size for g in labels)]

  def statistic(items: np.ndarray) -> np.ndarray:
    out = []
    for sim, g in zip(sims, labels):
      s, p = sim[items], probe_labels[items]
      out.append(
        np.concatenate([metrics.cmc(s, p, g, ranks), metrics.tpir_at_fpir(s, p, g, fpirs)])
      )
    return np.mean(out, axis=0)

  with warnings.catch_warnings():
    warnings.simplefilter("ignore", metrics.MetricWarning)
    return intervals.replicates(statistic, probe_labels, num_resamples=num_resamples, seed=seed)


def _mean_ci95(names: list[str], reps: np.ndarray) -> dict:
  """``mean_ci95`` in the nest of a row's ``mean``."""
  out: dict = {}
  for name, column in zip(names, reps.T):
    lo_hi = list(intervals.percentile_interval(column))
    if name.startswith("tpir_at_fpir/"):
      out.setdefault("tpir_at_fpir", {})[name.split("/", 1)[1]] = lo_hi
    else:
      out[name] = lo_hi
  return out


def evaluate_templates(
  stills: Mapping[str, np.ndarray],
  videos: Mapping[str, np.ndarray],
  model: embedding.EvalModel,
  settings: Mapping[str, Any],
  *,
  seed: int,
  set_models: Mapping[str, embedding.EvalModel] | None = None,
) -> dict:
  """The protocol of the module docstring.

  Args:
    stills: ``image`` uint8 ``[M, H, W, 3]``, ``label`` ``[M]``.
    videos: ``frames`` uint8 ``[V, T, H, W, 3]``, ``lengths``, ``labels`` ``[V]``.
    model: gives the ``avg`` and ``avg_media`` rows (``embed``).
    settings: the evaluator's settings.
    seed: the still order of the templates and the split of the subjects.
    set_models: name -> model whose ``embed_sets`` gives that row (default: ``model``'s
      own ``embed_sets`` as ``aggregated``, if it has one).
  """
  check_settings(settings, SETTINGS, "mixed_media")
  if set_models is None:
    set_models = {"aggregated": model} if model.embed_sets is not None else {}
  frames = videos["frames"]
  still_feats = model.embed(stills["image"])
  v, t = frames.shape[:2]
  frame_feats = model.embed(frames.reshape((v * t,) + frames.shape[2:])).reshape(v, t, -1)
  gallery, probes = mm.mixed_media_templates(
    stills["label"],
    videos["labels"],
    videos["lengths"],
    gallery_stills=settings["gallery_stills"],
    probes_per_subject=settings["probes_per_subject"],
    seed=seed,
  )
  g_labels = np.array([t.label for t in gallery])
  p_labels = np.array([t.label for t in probes])
  halves = mm.split_subjects(g_labels, seed=seed)

  def compare(g_feats: np.ndarray, p_feats: np.ndarray) -> dict:
    report = mm.two_gallery_identification(
      g_feats,
      g_labels,
      p_feats,
      p_labels,
      halves,
      ranks=settings["ranks"],
      fpirs=settings["fpirs"],
    )
    report["verification"] = mm.template_verification(
      g_feats, g_labels, p_feats, p_labels, fars=settings["fars"]
    )
    if np.unique(p_labels).size >= 2:
      value, reps = identification_replicates(
        g_feats,
        g_labels,
        p_feats,
        p_labels,
        halves,
        ranks=settings["ranks"],
        fpirs=settings["fpirs"],
      )
      report["mean_ci95"] = _mean_ci95(names, reps)
      report["_bootstrap"] = (names, value, reps)
    return report

  names = metric_names(
    [r for r in settings["ranks"] if r <= min(np.isin(g_labels, h).sum() for h in halves)],
    settings["fpirs"],
  )

  g_sets = mm.template_frame_sets(gallery, settings["max_set_size"])
  p_sets = mm.template_frame_sets(probes, settings["max_set_size"])
  media = [
    mm.template_representations(
      templates, still_feats, sets=sets, set_features=mm.set_mean_features(frame_feats, sets)
    )
    for templates, sets in ((gallery, g_sets), (probes, p_sets))
  ]
  table = {
    "avg": compare(
      mm.template_representations(gallery, still_feats, frame_feats),
      mm.template_representations(probes, still_feats, frame_feats),
    ),
    "avg_media": compare(*media),
    "extraction_cost": mm.extraction_cost(list(gallery) + list(probes), g_sets + p_sets),
    "templates": {"gallery": len(gallery), "probe": len(probes)},
  }
  for name, set_model in set_models.items():
    feats = [
      mm.template_representations(
        templates,
        still_feats,
        sets=sets,
        set_features=mm.template_set_features(set_model.embed_sets, frames, sets),
      )
      for templates, sets in ((gallery, g_sets), (probes, p_sets))
    ]
    table[name] = compare(*feats)
  table["_bootstrap"] = {
    row: table[row].pop("_bootstrap") for row in list(table) if "_bootstrap" in table[row]
  }
  return table


def mixed_media(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """Evaluator ``mixed_media``: :func:`evaluate_templates` on the run's data set (stills of
  ``still_split``, clips of ``video_split``). Needs ``embed``."""
  check_settings(settings, SETTINGS, "mixed_media")
  stills = pipelines.load_arrays(context.builder, settings["still_split"], ("image", "label"))
  videos = vp.load_videos(context.builder, settings["video_split"])
  return evaluate_templates(stills, videos, model, settings, seed=seed)
