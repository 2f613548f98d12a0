"""A trained recognizer taken from another run: the frozen extractor of a FAN
(``config.extractor.workdir``), the descriptor network of templates (``config.descriptors.workdir``)
and the trunk an explain model starts from (``config.backbone_init``).

Accepted runs (:func:`locate`):

* a recognition run: ``configs/baseline.py`` trained by ``jfr.main``, or a pretrained
  recognizer converted by ``jfr.convert`` (an IResNet; its ``config.json`` is a recognition
  config);
* a FAN run (its stage 1 in ``<run>/extractor``; that folder itself may be given too), or a
  FAN run that itself took its extractor from another run (followed to that run).

This module sits outside ``jfr.methods`` because it reads the run layouts of two methods
(recognition and FAN) for three; the methods import it, not each other.
:func:`restore_variables` restores a source's newest checkpoint; :func:`record` writes where
a run's network came from (run, checkpoint directory, kind, input size, model and head,
checkpoint info and, for a converted model, its ``converted.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import ml_collections

from jfr import workdir as workdir_lib


@dataclasses.dataclass(frozen=True)
class ExtractorSource:
  """Where a trained recognizer comes from.

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
    from jfr.methods.fan import settings as fan_settings

    return _source(run, run / "extractor", fan_settings.extractor_config(config), "fan")
  raise ValueError(
    f"{field}: {os.fspath(path)!r} is a {method!r} run; expected a "
    "recognition run (configs/baseline.py or jfr.convert) or a FAN run"
  )


def restore_variables(source: ExtractorSource, *, allow_older: bool = False) -> tuple[dict, dict]:
  """``(variables, checkpoint info)`` of ``source``'s newest checkpoint (its recorded model)."""
  from jfr.methods.recognition import trainer as recognition_trainer

  return recognition_trainer.restore(
    source.config,
    source.checkpoints,
    source.num_classes,
    source.image_size,
    allow_older=allow_older,
  )


def record(workdir: str | os.PathLike, source: ExtractorSource, info: dict, filename: str) -> Path:
  """Writes ``<workdir>/<filename>``: the source's run, checkpoint directory,
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
