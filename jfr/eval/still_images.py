"""Still-image verification and open-set identification on a split of the run's data set.

Evaluator ``still_images`` (:func:`verification_identification`), settings (the
``config.evals`` block, see :func:`jfr.train.config_blocks.evaluation`): ``split``,
``batch_size``, ``pairs_per_fold``, ``folds``, ``fars``, ``ranks``, ``fpirs``,
``unknown_fraction``, ``gallery_per_identity``, ``flip`` (flip-averaged features).

Verification: ``folds`` folds of ``pairs_per_fold`` balanced pairs (k-fold accuracy, EER,
AUC, TAR@FAR). Identification: ``gallery_per_identity`` gallery items per enrolled identity,
the rest probes; ``unknown_fraction`` of the identities are not enrolled (open set):
closed-set CMC over mated probes, TPIR@FPIR.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from tqdm import auto as tqdm

from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval import metrics
from jfr.eval import protocols
from jfr.report import figures

NEEDS = ("embed",)
SETTINGS = (
  "split",
  "batch_size",
  "pairs_per_fold",
  "folds",
  "fars",
  "ranks",
  "fpirs",
  "unknown_fraction",
  "gallery_per_identity",
  "flip",
)


def extract_split(
  embed: embedding.EmbedFn,
  builder: tfds.core.DatasetBuilder,
  split: str,
  batch_size: int,
  features: Sequence[str] = ("image", "label"),
) -> dict[str, np.ndarray]:
  """Embeds a whole split in stored order (uint8 batches of ``batch_size`` through ``embed``).

  Returns ``embedding`` [n, D] plus the other requested features (``image`` is not returned).
  """
  out: dict[str, list] = {}
  total = -(-builder.info.splits[split].num_examples // batch_size)
  ds = pipelines.eval_batches(builder, split, batch_size, features=features, model_range=False)
  for batch in tqdm.tqdm(
    tfds.as_numpy(ds), total=total, desc=f"embedding {split}", unit="batch", leave=False
  ):
    valid = batch["valid"]
    out.setdefault("embedding", []).append(embed(batch["image"])[valid])
    for k in features:
      if k != "image":
        out.setdefault(k, []).append(batch[k][valid])
  return {k: np.concatenate(v) for k, v in out.items()}


def check_settings(settings: Mapping[str, Any], known: Sequence[str], evaluator: str) -> None:
  """Raises ``ValueError`` naming settings that ``evaluator`` does not know or lacks."""
  unknown = sorted(set(settings) - set(known))
  missing = sorted(set(known) - set(settings))
  if unknown or missing:
    raise ValueError(
      f"config.evals settings of {evaluator!r}: unknown {unknown}, missing {missing} "
      f"(expected exactly {list(known)})"
    )


def evaluate_features(
  embeddings: np.ndarray, labels: np.ndarray, settings: Mapping[str, Any], seed: int
) -> dict:
  """The still-image protocol (module docstring) on given features ``[n, D]`` / labels ``[n]``.

  Returns ``verification`` and ``identification`` reports plus in-memory ``_roc``
  (scores, same) and ``_similarity`` (probe x gallery, probe labels, gallery labels).
  """
  folds = settings["folds"]
  a, b, same = protocols.verification_pairs(
    labels, settings["pairs_per_fold"], seed=seed, folds=folds
  )
  scores = protocols.pair_scores(embeddings, a, b)
  verification = protocols.verification_report(scores, same, settings["fars"], folds)
  g, p = protocols.gallery_probe_split(
    labels,
    seed=seed,
    gallery_per_identity=settings["gallery_per_identity"],
    unknown_fraction=settings["unknown_fraction"],
  )
  sim = protocols.cosine_similarity_matrix(embeddings[p], embeddings[g])
  identification = protocols.identification_report(
    sim, labels[p], labels[g], settings["ranks"], settings["fpirs"]
  )
  return {
    "verification": verification,
    "identification": identification,
    "_roc": (scores, same),
    "_similarity": (sim, labels[p], labels[g]),
  }


def curves(results: dict, label: str, title: str) -> dict:
  """``{'roc': Figure, 'cmc': Figure}`` of a :func:`evaluate_features` result."""
  scores, same = results["_roc"]
  sim, probe_labels, gallery_labels = results["_similarity"]
  fpr, tpr, _ = metrics.roc(scores, same)
  mated = np.isin(probe_labels, gallery_labels)
  ranks = np.arange(1, min(20, len(gallery_labels)) + 1)
  rates = metrics.cmc(sim[mated], probe_labels[mated], gallery_labels, ranks)
  return {
    "roc": figures.roc_figure({label: (fpr, tpr)}, f"verification ROC: {title}"),
    "cmc": figures.cmc_figure({label: (ranks, rates)}, f"closed-set CMC: {title}"),
  }


def verification_identification(
  model: embedding.EvalModel, context: Any, settings: Mapping[str, Any], *, seed: int
) -> dict:
  """Evaluator ``still_images``: embeds ``settings['split']`` of the run's data set and runs
  the still-image protocol (module docstring). Needs ``embed``."""
  check_settings(settings, SETTINGS, "still_images")
  embed = embedding.flip_average(model.embed) if settings["flip"] else model.embed
  feats = extract_split(embed, context.builder, settings["split"], settings["batch_size"])
  results = evaluate_features(feats["embedding"], feats["label"], settings, seed)
  results["split"] = settings["split"]
  results["flip"] = bool(settings["flip"])
  return results
