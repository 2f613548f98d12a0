"""Identification with a growing set of distractors in the gallery (MegaFace-like CMC).

Evaluator ``cmc_with_distractors`` (:func:`identification_with_distractors`). The stills of
``split`` are divided by :func:`jfr.eval.identity_protocol.identity_protocol`: a share
``probe_identity_fraction`` of the identities is enrolled (``gallery_per_identity`` gallery
stills each; ``finetune_per_identity`` stills each are held out, for methods that fine-tune
on the enrolled identities; the rest are probes) and the other identities are distractors:
all their stills plus every ``video_frame_stride``-th frame of their clips in
``video_split`` (0: no frames). Probes are ranked by cosine similarity of ``embed``
features against the gallery plus ``distractor_counts`` distractors (-1 = all; nested
seeded subsets, :func:`jfr.eval.protocols.cmc_with_distractors`); results: the CMC up to
``max_rank`` and rank-1 for each count, rank-1 with its 95 % interval
(``rank1_by_distractors_ci95``, and ``cmc_by_distractors_ci95`` for every rank: bootstrap
over the probes' identities, seed 0; in memory
``_rank1_hits`` count -> ``[P]`` 0/1 and ``_probe_labels`` ``[P]`` for paired comparisons
of models scored on the same protocol).

Settings: ``split``, ``video_split``, ``probe_identity_fraction``, ``finetune_per_identity``,
``gallery_per_identity``, ``distractor_counts``, ``video_frame_stride``, ``max_rank``,
``batch_size`` (rows per ``embed`` call) and ``seed`` (the split and the distractor subsets;
a fixed protocol seed, since a fine-tuned model must be scored on the split it was tuned
for; the evaluator's ``seed`` argument is not used).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from jfr.data import pipelines
from jfr.eval import embedding, protocols
from jfr.eval.identity_protocol import IdentityProtocol, identity_protocol
from jfr.eval.still_images import check_settings
from jfr.report import intervals

NEEDS = ("embed",)
SETTINGS = (
  "split",
  "video_split",
  "probe_identity_fraction",
  "finetune_per_identity",
  "gallery_per_identity",
  "distractor_counts",
  "video_frame_stride",
  "max_rank",
  "batch_size",
  "seed",
)


def protocol_of(labels: np.ndarray, settings: Mapping[str, Any]) -> IdentityProtocol:
  """The identity protocol that ``settings`` describe, on stills with ``labels`` [N]."""
  return identity_protocol(
    labels,
    probe_identity_fraction=settings["probe_identity_fraction"],
    finetune_per_identity=settings["finetune_per_identity"],
    gallery_per_identity=settings["gallery_per_identity"],
    seed=settings["seed"],
  )


def distractor_frames(
  builder: Any, split: str, identities: np.ndarray, stride: int, batch_size: int, size: int
) -> np.ndarray:
  """uint8 ``[M, size, size, 3]`` frames of ``identities``' clips in ``split`` (every
  ``stride``-th frame by ``frame_index``; none for ``stride == 0``), in stored order."""
  if stride < 0:
    raise ValueError(f"video_frame_stride: expected >= 0, got {stride}")
  if stride == 0:
    return np.zeros((0, size, size, 3), np.uint8)
  chosen = []
  ds = pipelines.eval_batches(
    builder, split, batch_size, features=("image", "label", "frame_index"), model_range=False
  )
  for batch in pipelines.numpy_batches(ds):
    keep = (
      batch["valid"] & np.isin(batch["label"], identities) & (batch["frame_index"] % stride == 0)
    )
    chosen.append(batch["image"][keep])
  return np.concatenate(chosen) if chosen else np.zeros((0, size, size, 3), np.uint8)


def identification(
  features: np.ndarray,
  labels: np.ndarray,
  protocol: IdentityProtocol,
  distractors: np.ndarray,
  distractor_counts: Sequence[int],
  max_rank: int,
  seed: int,
) -> dict:
  """Rank-k identification of the protocol's probes with distractors in the gallery.

  Args:
    features: ``[N, D]`` descriptors of the stills; labels ``[N]``.
    protocol: the split of the stills.
    distractors: ``[M, D]`` descriptors of the distractor stills and frames.
    distractor_counts: distractors joining the gallery (-1 = all M), one curve each.
    max_rank: the CMC's last rank (at most the smallest gallery).
    seed: seed of the distractor subsets.
  """
  counts = [len(distractors) if c == -1 else int(c) for c in distractor_counts]
  bad = [c for c in counts if not 0 <= c <= len(distractors)]
  if bad or not counts:
    raise ValueError(
      f"distractor_counts: each must be -1 or in [0, {len(distractors)}] (distractors "
      f"available), got {tuple(distractor_counts)}"
    )
  gallery_size = len(protocol.gallery) + min(counts)
  if not 1 <= max_rank <= gallery_size:
    raise ValueError(f"max_rank: expected 1..{gallery_size} (the smallest gallery), got {max_rank}")
  ranks = list(range(1, max_rank + 1))
  result = protocols.cmc_with_distractors(
    features[protocol.probe],
    labels[protocol.probe],
    features[protocol.gallery],
    labels[protocol.gallery],
    distractors,
    counts,
    ranks,
    seed=seed,
  )
  curves = result["cmc_by_distractors"]
  probe_labels = labels[protocol.probe]
  hits = {k: (r == 1).astype(np.float64) for k, r in result["_probe_ranks"].items()}
  ci, cmc_ci = {}, {}
  if np.unique(probe_labels).size >= 2:
    ci = {k: intervals.mean_interval(h, probe_labels).as_list() for k, h in hits.items()}
    cmc_ci = {
      k: [intervals.mean_interval(r <= rank, probe_labels).as_list() for rank in ranks]
      for k, r in result["_probe_ranks"].items()
    }
  return {
    "num_probes": int(len(protocol.probe)),
    "num_gallery": int(len(protocol.gallery)),
    "num_distractors": int(len(distractors)),
    "ranks": ranks,
    "rank1_by_distractors": {k: v[0] for k, v in curves.items()},
    "rank1_by_distractors_ci95": ci,
    "cmc_by_distractors": curves,
    "cmc_by_distractors_ci95": cmc_ci,
    "_rank1_hits": hits,
    "_probe_labels": probe_labels,
  }


def identification_with_distractors(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """The ``cmc_with_distractors`` evaluator (module docstring) on ``context``'s data set.

  Returns :func:`identification`'s report plus ``protocol`` (the split's sizes, including
  ``distractor_frames``).
  """
  del seed  # the protocol has its own fixed seed (module docstring)
  check_settings(settings, SETTINGS, "cmc_with_distractors")
  stills = pipelines.load_arrays(context.builder, settings["split"], ("image", "label"))
  protocol = protocol_of(stills["label"], settings)
  frames = distractor_frames(
    context.builder,
    settings["video_split"],
    protocol.distractor_identities,
    settings["video_frame_stride"],
    settings["batch_size"],
    stills["image"].shape[1],
  )
  features = model.embed(stills["image"])
  frame_features = model.embed(frames) if len(frames) else np.zeros((0, features.shape[1]))
  distractors = np.concatenate([features[protocol.distractor_stills], frame_features])
  out = identification(
    features,
    stills["label"],
    protocol,
    distractors,
    settings["distractor_counts"],
    settings["max_rank"],
    settings["seed"],
  )
  out["protocol"] = {**protocol.counts(), "distractor_frames": int(len(frames))}
  return out
