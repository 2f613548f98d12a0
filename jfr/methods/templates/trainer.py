"""The descriptor network of the template experiment: a recognition backbone trained by
:mod:`jfr.methods.recognition.trainer` in ``<workdir>/backbone``, or, with
``config.descriptors.workdir`` set, the network of that run (a ``jfr.convert`` run, a trained
baseline or a FAN run's extractor; located by :func:`jfr.recognizer_source.locate`),
not trained here. :func:`effective_config` then puts that run's ``model`` / ``head`` into the
config, :func:`input_size` is that run's input side (the faces are resized to it by
:func:`jfr.eval.embedding.model_embedder`) and ``<workdir>/descriptor_source.json`` records
it."""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections

from jfr import recognizer_source
from jfr.context import RunContext
from jfr.methods.recognition import trainer as recognition

SOURCE_FILE = "descriptor_source.json"
FIELD = "config.descriptors.workdir"


def pretrained(config: ml_collections.ConfigDict) -> str | None:
  """``config.descriptors.workdir`` (None when unset or absent from an older record)."""
  return config.descriptors.get("workdir") or None


def effective_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config``, or (``descriptors.workdir`` set) a copy with that run's ``model``/``head``."""
  if not pretrained(config):
    return config
  source = recognizer_source.locate(pretrained(config), FIELD)
  derived = config.copy_and_resolve_references()
  with derived.unlocked():
    derived.model = ml_collections.ConfigDict(source.config.model.to_dict())
    derived.head = ml_collections.ConfigDict(source.config.head.to_dict())
  return derived.lock()


def input_size(config: ml_collections.ConfigDict, image_size: int) -> int:
  """The descriptor network's input side: ``image_size`` (the data's) or the pretrained
  run's."""
  if not pretrained(config):
    return image_size
  return recognizer_source.locate(pretrained(config), FIELD).image_size


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
  """Trains (or resumes; nothing to do when finished) the descriptor network; with
  ``descriptors.workdir`` nothing is trained (returns None)."""
  if pretrained(config):
    return None
  if config.num_train_steps <= 0:
    raise ValueError(
      f"{FIELD}: required when num_train_steps={config.num_train_steps} (nothing to train; "
      "configs/templates.py:pretrained112 takes a converted recognizer)"
    )
  return recognition.train(backbone_config(config), backbone_workdir(workdir), context)


def restore(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> tuple[dict, dict]:
  """``(backbone variables, checkpoint info)`` of the trained descriptor network (that of
  ``descriptors.workdir`` when set, recorded in ``<workdir>/descriptor_source.json``)."""
  if pretrained(config):
    source = recognizer_source.locate(pretrained(config), FIELD)
    variables, info = recognizer_source.restore_variables(
      source, allow_older=bool(config.allow_older_checkpoint)
    )
    recognizer_source.record(workdir, source, info, SOURCE_FILE)
    return variables, info
  return recognition.restore(
    backbone_config(config), backbone_workdir(workdir), context.num_classes, context.image_size
  )
