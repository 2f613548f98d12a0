"""The descriptor network of the template experiment: a recognition backbone trained by
:mod:`jfr.methods.recognition.trainer` in ``<workdir>/backbone``."""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections

from jfr.context import RunContext
from jfr.methods.recognition import trainer as recognition


def backbone_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The descriptor network's config for :mod:`jfr.methods.recognition.trainer` (same fields)."""
  derived = config.copy_and_resolve_references()
  derived.method = "recognition"
  return derived


def backbone_workdir(workdir: str | os.PathLike) -> Path:
  return Path(workdir) / "backbone"


def train(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> dict:
  """Trains (or resumes; nothing to do when finished) the descriptor network."""
  return recognition.train(backbone_config(config), backbone_workdir(workdir), context)


def restore(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> tuple[dict, dict]:
  """``(backbone variables, checkpoint info)`` of the trained descriptor network."""
  return recognition.restore(
    backbone_config(config), backbone_workdir(workdir), context.num_classes, context.image_size
  )
