"""Pieces every method's trainer shares: data from config, backbones from config, feature
extraction over a split, and the standard verification/identification evaluation.

Config blocks read here (declared by every config that uses them):

* ``config.dataset``: ``name`` (tfds name incl. builder config, e.g.
  ``'synthetic_faces/small'``), ``data_dir`` (None = tfds default), ``train_split``,
  ``test_split``, ``num_classes`` (identities of the train split; -1 = read the
  ``synthetic_faces`` builder config, required for other data).
* ``config.model``: ``name`` (a key of :data:`BACKBONES`), ``stage_sizes``, ``block``
  ('basic' | 'bottleneck'), ``num_filters``, ``embedding_dim``, ``pooling``
  ('flatten_fc' | 'gap' | 'gmp'), ``dropout_rate``.
* ``config.eval``: ``batch_size``, ``pairs_per_fold``, ``folds``, ``fars``, ``ranks``,
  ``fpirs``, ``unknown_fraction``, ``gallery_per_identity``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from tqdm import auto as tqdm

from jfr.data import pipelines
from jfr.eval import plots
from jfr.eval import protocols
from jfr.models import backbones

PyTree = Any


def dataset_builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The prepared builder of ``config.dataset`` (renders synthetic_faces on first use)."""
  return pipelines.prepare_builder(config.dataset.name, config.dataset.data_dir)


def num_train_classes(config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder) -> int:
  """Identities in the train split: ``dataset.num_classes`` or the synthetic builder's count."""
  if config.dataset.num_classes > 0:
    return int(config.dataset.num_classes)
  from jfr.data import dataset_facts  # pylint: disable=g-import-not-at-top

  count = dataset_facts.dataset_facts(builder).num_train_classes  # synthetic or jfr.prepare
  if count <= 0:
    raise ValueError(
      f"config.dataset.num_classes: set it for {builder.info.full_name} "
      "(only synthetic_faces knows its own identity count)"
    )
  return int(count)


def image_size(builder: tfds.core.DatasetBuilder) -> int:
  """Side of the (square) images of ``builder``."""
  shape = builder.info.features["image"].shape
  if shape[0] != shape[1]:
    raise ValueError(f"dataset images must be square, got {shape}")
  return int(shape[0])


BLOCKS = backbones.BLOCKS
BACKBONES = backbones.BACKBONES
build_backbone = backbones.build_backbone


def numpy_batches(ds) -> Any:
  """A tf.data dataset as an iterator of NumPy pytrees."""
  return iter(tfds.as_numpy(ds))


def labelled_image_batches(config: ml_collections.ConfigDict, builder: Any) -> Callable[[int], Any]:
  """``start -> iterator`` of augmented ``image``/``label`` host batches of
  ``config.dataset.train_split`` (deterministic in ``(config.seed, start)``, for
  :func:`jfr.train.loop.run_training`)."""

  def batches(start: int):
    ds = pipelines.image_batches(
      builder,
      config.dataset.train_split,
      config.batch_size,
      seed=config.seed,
      start_batch=start,
      features=("image", "label"),
      augment_options=config.augment.to_dict(),
    )
    return numpy_batches(ds)

  return batches


def check_mode(mode: str, modes: tuple[str, ...]) -> None:
  """Raises ``ValueError`` unless ``mode`` is one of the trainer's ``modes``."""
  if mode not in modes:
    raise ValueError(f"mode: expected one of {modes}, got {mode!r}")


@functools.lru_cache(maxsize=8)
def _jitted(apply_fn: Callable) -> Callable:
  return jax.jit(apply_fn)


def embed_function(module: nn.Module, variables: PyTree) -> Callable[[np.ndarray], np.ndarray]:
  """images [b, H, W, 3] in [-1, 1] -> embeddings [b, D] (inference mode, jitted once)."""
  apply = _jitted(functools.partial(module.apply, train=False))
  return lambda images: np.asarray(apply(variables, images))


def extract_split_features(
  embed: Callable[[np.ndarray], np.ndarray],
  builder: tfds.core.DatasetBuilder,
  split: str,
  batch_size: int,
  features: tuple[str, ...] = ("image", "label"),
) -> dict[str, np.ndarray]:
  """Embeds a whole split in stored order; returns ``embedding`` [n, D] plus the other
  requested features as NumPy arrays (``image`` is not returned)."""
  out: dict[str, list] = {}
  total = -(-builder.info.splits[split].num_examples // batch_size)
  batches = numpy_batches(pipelines.eval_batches(builder, split, batch_size, features=features))
  for batch in tqdm.tqdm(
    batches, total=total, desc=f"embedding {split}", unit="batch", leave=False
  ):
    valid = batch["valid"]
    out.setdefault("embedding", []).append(embed(batch["image"])[valid])
    for k in features:
      if k != "image":
        out.setdefault(k, []).append(batch[k][valid])
  return {k: np.concatenate(v) for k, v in out.items()}


def evaluate_features(
  embeddings: np.ndarray, labels: np.ndarray, eval_cfg: ml_collections.ConfigDict, seed: int
) -> dict:
  """The standard still-image evaluation of one set of features.

  Verification: ``eval.folds`` folds of ``eval.pairs_per_fold`` balanced pairs (k-fold
  accuracy, EER, AUC, TAR@FAR). Identification: one gallery item per enrolled identity
  (``eval.gallery_per_identity``), the rest probes; ``eval.unknown_fraction`` of the
  identities are not enrolled (open set): closed-set CMC over mated probes, TPIR@FPIR.
  """
  a, b, same = protocols.verification_pairs(
    labels, eval_cfg.pairs_per_fold, seed=seed, folds=eval_cfg.folds
  )
  scores = protocols.pair_scores(embeddings, a, b)
  verification = protocols.verification_report(scores, same, eval_cfg.fars, eval_cfg.folds)
  g, p = protocols.gallery_probe_split(
    labels,
    seed=seed,
    gallery_per_identity=eval_cfg.gallery_per_identity,
    unknown_fraction=eval_cfg.unknown_fraction,
  )
  sim = protocols.cosine_similarity_matrix(embeddings[p], embeddings[g])
  identification = protocols.identification_report(
    sim, labels[p], labels[g], eval_cfg.ranks, eval_cfg.fpirs
  )
  return {
    "verification": verification,
    "identification": identification,
    "_roc": (scores, same),
    "_similarity": (sim, labels[p], labels[g]),
  }


def write_results(workdir: str | os.PathLike, name: str, results: dict) -> Path:
  """Writes ``<workdir>/eval/<name>.json`` (keys starting with '_' are not written)."""
  path = Path(workdir) / "eval" / f"{name}.json"
  plots.write_json({k: v for k, v in results.items() if not k.startswith("_")}, path)
  return path


def markdown_table(rows: list[dict], columns: list[str]) -> str:
  """A Markdown table of ``rows`` (dicts) with the given column keys."""

  def fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)

  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
  return "\n".join(lines)
