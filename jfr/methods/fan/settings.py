"""The FAN config's consistency check and the configs it derives: the stage-1 recognition
config (:func:`extractor_config`) and each variant's stage-2 schedule (:func:`variant_config`)."""

from __future__ import annotations

import ml_collections

from jfr.methods.fan.constants import VARIANTS


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError for unknown or missing variants, inconsistent set sizes and a config
  without stage 1 (``extractor.num_train_steps <= 0``) that names no ``extractor.workdir``."""
  names = tuple(config.variants)
  if not names:
    raise ValueError("config.variants: expected at least one variant")
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    raise ValueError(f"config.variants: unknown {unknown}; known: {sorted(VARIANTS)}")
  if len(set(names)) != len(names):
    raise ValueError(f"config.variants: duplicates in {names}")
  for field, chosen in config.eval_variants.items():
    if field not in config.evals:
      raise ValueError(f"config.eval_variants.{field}: no config.evals entry {field!r}")
    missing = [n for n in chosen if n not in names]
    if missing:
      raise ValueError(
        f"config.eval_variants.{field}: {missing} are not in config.variants {names}"
      )
  if config.extractor.num_train_steps <= 0 and not config.extractor.get("workdir"):
    raise ValueError(
      f"config.extractor.workdir: required when extractor.num_train_steps="
      f"{config.extractor.num_train_steps} (no stage 1; e.g. configs/fan.py:pretrained112 takes "
      "a converted recognizer: --config.extractor.workdir=RUN)"
    )
  agg = config.aggregator
  if not 1 <= agg.min_set_size <= agg.set_size <= agg.max_members:
    raise ValueError(
      "config.aggregator: expected 1 <= min_set_size <= set_size <= "
      f"max_members, got {agg.min_set_size}, {agg.set_size}, {agg.max_members}"
    )
  sizes = [
    n for block in config.evals.values() if "set_configs" in block for n, _ in block.set_configs
  ]
  if sizes and max(sizes) > agg.max_members:
    raise ValueError(
      f"config.evals: set sizes {sizes} exceed aggregator.max_members {agg.max_members}"
    )
  for name, block in config.evals.items():
    if "max_set_size" in block and block.max_set_size > agg.max_members:
      raise ValueError(
        f"config.evals.{name}.max_set_size={block.max_set_size} exceeds aggregator.max_members "
        f"{agg.max_members}"
      )


def extractor_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The recognition config of stage 1: ``config.extractor`` plus the FAN's dataset, seed,
  parallelism and checkpoint policy (see :mod:`jfr.methods.recognition.trainer`)."""
  derived = ml_collections.ConfigDict(config.extractor.to_dict())
  derived.method = "recognition"
  derived.seed = config.seed
  derived.parallelism = config.parallelism
  derived.allow_older_checkpoint = config.allow_older_checkpoint
  derived.dataset = ml_collections.ConfigDict(config.dataset.to_dict())
  return derived


def variant_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """``config`` with the stage-2 schedule of variant ``name``: the first variant trains
  ``num_train_steps`` steps, the others ``ablation_num_train_steps`` (-1: the same)."""
  derived = config.copy_and_resolve_references()
  if name != config.variants[0] and config.ablation_num_train_steps > 0:
    with derived.unlocked():
      derived.num_train_steps = config.ablation_num_train_steps
  return derived
