"""A FAN's frozen feature extractor taken from another run (``config.extractor.workdir``).

When ``config.extractor.workdir`` names a run, stage 1 is not trained: the extractor is
restored from that run's newest checkpoint, with the model its recorded config describes,
and stays frozen. Accepted runs (:func:`locate`):

* a recognition run: ``configs/baseline.py`` trained by ``jfr.main``, or a pretrained
  recognizer converted by ``jfr.convert`` (an IResNet; its ``config.json`` is a recognition
  config);
* a FAN run (its stage 1 in ``<run>/extractor``; that folder itself may be given too), or a
  FAN run that itself took its extractor from another run (followed to that run).

Input size: the FAN trains and evaluates on its data set's S-px images and the aggregated
faces are S px; the extractor must take S-px images. A run whose recorded input size differs
is refused with a ``ValueError`` naming both sizes, not resized: a resize would sit inside
the FAN's loss path (the generator's output is embedded in every train step) and change what
the aggregator is trained for. Point ``config.dataset`` at data of the extractor's size
(``configs/fan.py:pretrained112`` uses 112 px data for arcface_torch/insightface models).

:func:`effective_config` gives the FAN config with ``extractor.model`` / ``extractor.head``
replaced by the source run's, so every consumer of ``config.extractor.model`` (the frozen
module, the feature width D) builds the source's network. :func:`record` writes
``<workdir>/extractor_source.json`` (where the extractor came from, its model, checkpoint
step and, for a converted model, ``converted.json``).
"""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections

from jfr import recognizer_source
from jfr.recognizer_source import ExtractorSource, locate

SOURCE_FILE = "extractor_source.json"

__all__ = [
  "SOURCE_FILE",
  "ExtractorSource",
  "locate",
  "check_image_size",
  "effective_config",
  "restore",
  "record",
]


def check_image_size(source: ExtractorSource, image_size: int) -> None:
  """Raises ``ValueError`` unless the extractor takes the FAN data's ``image_size``."""
  if source.image_size != image_size:
    raise ValueError(
      f"config.extractor.workdir: the extractor in {source.run} takes {source.image_size} px "
      f"images, but config.dataset has {image_size} px images; the FAN does not resize inside "
      "its loss, so use data of the extractor's size (e.g. configs/fan.py:pretrained112 for "
      "112 px recognizers)"
    )


def effective_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` unchanged without ``extractor.workdir``; else a copy whose
  ``extractor.model`` and ``extractor.head`` are the source run's."""
  if not config.extractor.get("workdir"):
    return config
  source = locate(config.extractor.workdir)
  derived = config.copy_and_resolve_references()
  with derived.unlocked():
    derived.extractor.model = ml_collections.ConfigDict(source.config.model.to_dict())
    derived.extractor.head = ml_collections.ConfigDict(source.config.head.to_dict())
  return derived.lock()


def restore(
  config: ml_collections.ConfigDict, image_size: int
) -> tuple[ExtractorSource, dict, dict]:
  """``(source, backbone variables, checkpoint info)`` of ``config.extractor.workdir``'s
  newest checkpoint, after :func:`check_image_size` (``allow_older`` from
  ``config.allow_older_checkpoint``)."""
  source = locate(config.extractor.workdir)
  check_image_size(source, image_size)
  variables, info = recognizer_source.restore_variables(
    source, allow_older=bool(config.allow_older_checkpoint)
  )
  return source, variables, info


def record(
  workdir: str | os.PathLike, source: ExtractorSource, info: dict, filename: str = SOURCE_FILE
) -> Path:
  """:func:`jfr.recognizer_source.record` into ``<workdir>/extractor_source.json``."""
  return recognizer_source.record(workdir, source, info, filename)
