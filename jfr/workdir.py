"""Self-describing workdirs: a run records its resolved config and command line.

A training run writes ``<workdir>/config.json`` (the resolved ``ConfigDict``) and appends its
command line to ``<workdir>/command.txt``; a method records the facts of its training data
that shape its model (``data_facts.json``: number of training identities, image side, data
set name) so that the model can be rebuilt and restored without the training data. Evaluation and inference read the model settings
from there (:func:`load_run_config`), and a later run on the same workdir with a config whose
model differs from the recorded one is refused (:func:`check_same_model`), naming the field.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import ml_collections

CONFIG_FILE = "config.json"
COMMAND_FILE = "command.txt"
DATA_FACTS_FILE = "data_facts.json"
# Top-level config blocks that define a trained model: they must match to reuse checkpoints.
MODEL_KEYS = (
  "method",
  "model",
  "head",
  "decoder",
  "aggregator",
  "discriminator",
  "extractor",
  "attributes",
)


def config_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON data (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def write_run_record(
  workdir: str | os.PathLike,
  config: ml_collections.ConfigDict,
  argv: Sequence[str] | None = None,
) -> Path:
  """Writes ``config.json`` and appends ``argv`` (default ``sys.argv``) to ``command.txt``."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / CONFIG_FILE
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(config_dict(config), indent=2, sort_keys=True) + "\n")
  os.replace(tmp, path)
  argv = list(sys.argv if argv is None else argv)
  stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  with open(workdir / COMMAND_FILE, "a", encoding="utf-8") as f:
    f.write(f"# {stamp}\n{shlex.join([sys.executable, *argv])}\n")
  return path


def load_run_config(workdir: str | os.PathLike) -> dict:
  """The recorded config of the run in ``workdir`` (plain dict)."""
  path = Path(workdir) / CONFIG_FILE
  if not path.exists():
    raise ValueError(
      f"workdir {os.fspath(workdir)!r} has no {CONFIG_FILE}: it was not written by a jfr run "
      "(train it with jfr.main, or convert a model with jfr.convert)"
    )
  return json.loads(path.read_text())


def load_run_config_dict(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The recorded config as a locked ``ConfigDict`` (lists as tuples)."""
  return ml_collections.ConfigDict(_tuples(load_run_config(workdir))).lock()


def _tuples(obj: Any) -> Any:
  if isinstance(obj, dict):
    return {k: _tuples(v) for k, v in obj.items()}
  if isinstance(obj, list):
    return tuple(_tuples(v) for v in obj)
  return obj


def _diff(a: Any, b: Any, prefix: str) -> Iterable[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    for k in sorted(set(a) | set(b)):
      if k not in a or k not in b:
        if (a[k] if k in a else b[k]) is not None:  # a field added later and unset: same model
          yield f"{prefix}{k}"
      else:
        yield from _diff(a[k], b[k], f"{prefix}{k}.")
  elif a != b:
    yield prefix.rstrip(".")


def model_differences(recorded: dict, config: ml_collections.ConfigDict) -> list[str]:
  """Dotted names of model-defining fields (:data:`MODEL_KEYS`) that differ."""
  current = config_dict(config)
  out = []
  for key in MODEL_KEYS:
    if key in recorded or key in current:
      out.extend(_diff(recorded.get(key), current.get(key), f"{key}."))
  return out


def check_same_model(workdir: str | os.PathLike, config: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` when ``workdir`` records a run whose model differs from ``config``'s.

  A workdir without a record passes (a new run, or one made before records existed).
  """
  if not (Path(workdir) / CONFIG_FILE).exists():
    return
  diffs = model_differences(load_run_config(workdir), config)
  if diffs:
    raise ValueError(
      f"workdir {os.fspath(workdir)!r} holds a run whose model differs from the given config "
      f"in: {', '.join(diffs[:8])}{' ...' if len(diffs) > 8 else ''}. Use another --workdir, "
      f"or the recorded config ({CONFIG_FILE} in the workdir)."
    )


def write_data_facts(workdir: str | os.PathLike, facts: dict) -> Path:
  """Writes ``data_facts.json`` (``num_classes``, ``image_size``, ``dataset_name``, ...)."""
  for key in ("num_classes", "image_size", "dataset_name"):
    if key not in facts:
      raise ValueError(f"facts: missing {key!r}")
  path = Path(workdir) / DATA_FACTS_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
  return path


def read_data_facts(workdir: str | os.PathLike) -> dict:
  """The ``data_facts.json`` of a trained run (ValueError naming the file when absent)."""
  path = Path(workdir) / DATA_FACTS_FILE
  if not path.exists():
    raise ValueError(
      f"workdir {os.fspath(workdir)!r} has no {DATA_FACTS_FILE}: train the run with this "
      "version of jfr (or run --mode=eval once with the training data present)"
    )
  return json.loads(path.read_text())
