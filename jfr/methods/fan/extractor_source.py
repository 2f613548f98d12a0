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

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import ml_collections

from jfr import workdir as workdir_lib
from jfr.methods.fan import settings

SOURCE_FILE = "extractor_source.json"


@dataclasses.dataclass(frozen=True)
class ExtractorSource:
  """Where a FAN's extractor comes from.

  Attributes:
    checkpoints: the directory whose checkpoints hold the extractor (a recognition run's
      workdir, or a FAN run's ``extractor`` folder).
    config: the recognition config those checkpoints were written with.
    num_classes: the width of the recorded classifier head (restore target only).
    image_size: the extractor's input side S (from the run's ``data_facts.json``).
    kind: 'recognition' (a baseline or converted run) or 'fan' (a FAN run's stage 1).
    run: the run directory that records the config (equal to ``checkpoints`` for
      'recognition').
  """

  checkpoints: str
  config: ml_collections.ConfigDict
  num_classes: int
  image_size: int
  kind: str
  run: str


def _source(run: Path, checkpoints: Path, config, kind: str) -> ExtractorSource:
  facts = workdir_lib.read_data_facts(run)
  return ExtractorSource(
    checkpoints=os.fspath(checkpoints.absolute()),
    config=config,
    num_classes=int(facts["num_classes"]),
    image_size=int(facts["image_size"]),
    kind=kind,
    run=os.fspath(run.absolute()),
  )


def locate(
  path: str | os.PathLike, field: str = "config.extractor.workdir", _depth: int = 0
) -> ExtractorSource:
  """The :class:`ExtractorSource` of the run in ``path`` (module docstring); ``field`` names
  the config field that gave ``path`` in error messages (the templates' descriptor network
  is located the same way, from ``config.descriptors.workdir``).

  Raises:
    ValueError: ``path`` is not a directory, records no jfr run, records a method other than
      recognition/fan, or a chain of FAN runs longer than 8.
  """
  run = Path(path)
  if _depth > 8:
    raise ValueError(f"{field}: FAN runs name each other in a loop at {path}")
  if not run.is_dir():
    raise ValueError(f"{field}: {os.fspath(path)!r} is not a directory")
  record = run / workdir_lib.CONFIG_FILE
  if not record.exists():
    parent = run.parent / workdir_lib.CONFIG_FILE
    if run.name == "extractor" and parent.exists():
      return locate(run.parent, field, _depth + 1)
    raise ValueError(
      f"{field}: {os.fspath(path)!r} records no jfr run (no config.json; "
      "give a recognition run, a jfr.convert run, or a FAN run)"
    )
  config = workdir_lib.load_run_config_dict(run)
  method = config.get("method")
  if method == "recognition":
    return _source(run, run, config, "recognition")
  if method == "fan":
    upstream = config.extractor.get("workdir")
    if upstream:
      return locate(upstream, field, _depth + 1)
    return _source(run, run / "extractor", settings.extractor_config(config), "fan")
  raise ValueError(
    f"{field}: {os.fspath(path)!r} is a {method!r} run; expected a "
    "recognition run (configs/baseline.py or jfr.convert) or a FAN run"
  )


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
  from jfr.methods.recognition import trainer as recognition_trainer

  source = locate(config.extractor.workdir)
  check_image_size(source, image_size)
  variables, info = recognition_trainer.restore(
    source.config,
    source.checkpoints,
    source.num_classes,
    source.image_size,
    allow_older=bool(config.allow_older_checkpoint),
  )
  return source, variables, info


def record(
  workdir: str | os.PathLike, source: ExtractorSource, info: dict, filename: str = SOURCE_FILE
) -> Path:
  """Writes ``<workdir>/<filename>`` (default ``extractor_source.json``): the source's run, checkpoint directory,
  kind, input size, model and head blocks, checkpoint info and (converted runs) the
  ``converted.json`` provenance."""
  payload: dict[str, Any] = {
    "run": source.run,
    "checkpoints": source.checkpoints,
    "kind": source.kind,
    "image_size": source.image_size,
    "model": source.config.model.to_dict(),
    "head": source.config.head.to_dict(),
    "checkpoint": info,
  }
  converted = Path(source.run) / "converted.json"
  if converted.exists():
    payload["converted"] = json.loads(converted.read_text())
  path = Path(workdir) / filename
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
  return path
