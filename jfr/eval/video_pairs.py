"""YTF-like video-pair verification, on clean or motion-blurred frames (FAN paper Sec. 4.2-4.3,
Tables 1 and 4), as the evaluator ``video_pairs``.

Settings (one ``config.evals`` block): ``split`` (a video split of the run's data set),
``folds``, ``fars``, ``set_configs`` (``(N, n_avg)`` pairs), ``blur_kernel_sizes`` (``()``:
clean frames), ``blur_sharp_frames``.

Every video is resampled to ``N * n_avg`` frames cut into ``n_avg`` groups of N
(:func:`jfr.eval.video_protocols.resampled_groups`); balanced same/different video pairs in
``folds`` folds (:func:`~jfr.eval.video_protocols.video_pairs`) give the k-fold accuracy,
EER, AUC and TAR@FAR; ``all_pairs`` adds EER/AUC/TAR over every pair of videos. Rows:

* ``avg``: the paper's baseline, the mean of the L2-normalised features of all
  ``N * n_avg`` frames (:func:`~jfr.eval.video_protocols.average_representations`; note that
  :func:`jfr.eval.embedding.mean_feature_sets` averages un-normalised features instead, so it
  is not this baseline);
* one row per set embedder (the model's ``embed_sets`` as ``aggregated``, or the named
  models given to :func:`evaluate_videos`, e.g. the FAN's variants): each group becomes one
  feature, the ``n_avg`` features of a video are pooled.

Clean frames: one column ``N=<N>,n_avg=<n_avg>`` per set config (with the feature
extractions each row needed). With ``blur_kernel_sizes``, exactly one set config: all but
``blur_sharp_frames`` frames of every group are motion blurred
(:func:`~jfr.eval.video_protocols.blur_groups`, seed ``seed + kernel size``), one column per
kernel size. Blurring happens on the frames in the model's range [-1, 1], so this setting
needs the model's ``extras['embed_model_range']`` (and ``extras['embed_sets_model_range']``
for set rows): float ``[B, H, W, 3]`` in [-1, 1] -> ``[B, D]``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval import protocols
from jfr.eval import video_protocols as vp
from jfr.eval.still_images import check_settings

NEEDS = ("embed",)
SETTINGS = ("split", "folds", "fars", "set_configs", "blur_kernel_sizes", "blur_sharp_frames")
MODEL_RANGE_EMBED = "embed_model_range"
MODEL_RANGE_EMBED_SETS = "embed_sets_model_range"


def column(set_size: int, n_avg: int) -> str:
  """The column name of a clean set config."""
  return f"N={set_size},n_avg={n_avg}"


def pair_verifier(labels: np.ndarray, folds: int, fars, seed: int) -> Callable[[np.ndarray], dict]:
  """``reps [V, D] -> report``: k-fold verification over the balanced video pairs of
  :func:`~jfr.eval.video_protocols.video_pairs` plus ``all_pairs`` (every pair of videos)."""
  a, b, same = vp.video_pairs(labels, folds=folds, seed=seed)

  def verify(reps: np.ndarray) -> dict:
    report = protocols.verification_report(protocols.pair_scores(reps, a, b), same, fars, folds)
    return {**report, "all_pairs": vp.all_pairs_report(reps, labels, fars)}

  return verify


def _set_models(
  model: embedding.EvalModel, set_models: Mapping[str, embedding.EvalModel] | None
) -> Mapping[str, embedding.EvalModel]:
  if set_models is not None:
    return set_models
  return {"aggregated": model} if model.embed_sets is not None else {}


def clean_table(
  videos: Mapping[str, np.ndarray],
  model: embedding.EvalModel,
  set_models: Mapping[str, embedding.EvalModel],
  settings: Mapping[str, Any],
  seed: int,
) -> dict:
  """Rows ``avg`` and one per set model; columns :func:`column` of ``set_configs``."""
  frames, lengths = videos["frames"], videos["lengths"]
  verify = pair_verifier(videos["labels"], settings["folds"], settings["fars"], seed)
  v, t = frames.shape[:2]
  frame_feats = model.embed(frames.reshape((v * t,) + frames.shape[2:])).reshape(v, t, -1)
  table: dict[str, dict] = {"avg": {}}
  for n, n_avg in settings["set_configs"]:
    col = column(n, n_avg)
    reps = vp.average_representations(frame_feats, lengths, n, n_avg)
    table["avg"][col] = {**verify(reps), "embedded_images": int(lengths.size * n * n_avg)}
    groups = vp.resampled_groups(frames, lengths, n, n_avg)
    for name, set_model in set_models.items():
      reps, cost = vp.set_representations(groups, n_avg, set_model.embed_sets)
      table.setdefault(name, {})[col] = {**verify(reps), **cost}
  return table


def blur_table(
  videos: Mapping[str, np.ndarray],
  model: embedding.EvalModel,
  set_models: Mapping[str, embedding.EvalModel],
  settings: Mapping[str, Any],
  seed: int,
) -> dict:
  """Rows ``avg`` and one per set model; columns the blur kernel sizes (module docstring)."""
  if len(settings["set_configs"]) != 1:
    raise ValueError(
      f"set_configs: blur takes exactly one (N, n_avg), got {settings['set_configs']}"
    )
  model.require((MODEL_RANGE_EMBED,), "video_pairs (blur)")
  for set_model in set_models.values():
    set_model.require((MODEL_RANGE_EMBED_SETS,), "video_pairs (blur)")
  (n, n_avg) = settings["set_configs"][0]
  verify = pair_verifier(videos["labels"], settings["folds"], settings["fars"], seed)
  frames = pipelines.to_model_range_np(videos["frames"])
  groups = vp.resampled_groups(frames, videos["lengths"], n, n_avg)
  table: dict[str, dict] = {"avg": {}}
  for size in settings["blur_kernel_sizes"]:
    blurred, _, _ = vp.blur_groups(
      groups, size, num_sharp=settings["blur_sharp_frames"], seed=seed + size
    )
    reps, _ = vp.group_representations(
      blurred,
      n_avg,
      embed_fn=model.extras[MODEL_RANGE_EMBED],
      batch_size=blurred.shape[0] * blurred.shape[1],
    )
    table["avg"][str(size)] = verify(reps)
    for name, set_model in set_models.items():
      reps, _ = vp.set_representations(blurred, n_avg, set_model.extras[MODEL_RANGE_EMBED_SETS])
      table.setdefault(name, {})[str(size)] = verify(reps)
  return table


def evaluate_videos(
  videos: Mapping[str, np.ndarray],
  model: embedding.EvalModel,
  settings: Mapping[str, Any],
  *,
  seed: int,
  set_models: Mapping[str, embedding.EvalModel] | None = None,
) -> dict:
  """The protocol of the module docstring on grouped ``videos``
  (:func:`jfr.eval.video_protocols.load_videos`).

  Args:
    videos: ``frames`` uint8 ``[V, T, H, W, 3]``, ``lengths`` ``[V]``, ``labels`` ``[V]``.
    model: gives the ``avg`` row (``embed``; blur: ``extras['embed_model_range']``).
    settings: the evaluator's settings.
    seed: pair sampling (and blur: ``seed + kernel size``).
    set_models: name -> model whose ``embed_sets`` gives that row (default: ``model``'s
      own ``embed_sets`` as ``aggregated``, if it has one).

  Returns:
    ``{row: {column: report}}``.
  """
  check_settings(settings, SETTINGS, "video_pairs")
  set_models = _set_models(model, set_models)
  if settings["blur_kernel_sizes"]:
    return blur_table(videos, model, set_models, settings, seed)
  return clean_table(videos, model, set_models, settings, seed)


def video_pairs(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """Evaluator ``video_pairs``: :func:`evaluate_videos` on ``settings['split']`` of the run's
  data set. Needs ``embed`` (blur: see the module docstring)."""
  check_settings(settings, SETTINGS, "video_pairs")
  return evaluate_videos(
    vp.load_videos(context.builder, settings["split"]), model, settings, seed=seed
  )
