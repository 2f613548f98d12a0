"""What a data set holds, for configs: class count, image size, which features are real.

Works for the ``synthetic_faces`` builders (everything is real ground truth) and for data
sets written by ``python -m jfr.prepare`` (whose metadata records what is present; the
rest holds sentinel values, see :mod:`jfr.data.formats.writer`). Trainers call
:func:`require_features` at start so that a config needing e.g. part masks refuses a
data set without them instead of training on sentinels.

No paper equation lives here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import tensorflow_datasets as tfds

FEATURE_KINDS = (
  "label",
  "attributes",
  "landmarks",
  "landmarks5",
  "segmentation",
  "occluder_mask",
  "videos",
)
PREPARED_VERSION = "1.0.0"
PREPARED_MARKER = "prepare_report.json"


@dataclasses.dataclass(frozen=True)
class DatasetFacts:
  """Facts of one data set.

  Attributes:
    name: the builder's full name.
    num_train_classes: identities of the ``train`` split (labels ``0..n-1``; -1: unknown).
    num_classes: size of the label space (train + test identities).
    image_size: side of the square images.
    splits: split names.
    present: {kind: bool} for :data:`FEATURE_KINDS`: False where the feature holds
      sentinel values (or, for ``videos``, the video splits are missing).
    prepared: whether ``jfr.prepare`` wrote the data set.
  """

  name: str
  num_train_classes: int
  num_classes: int
  image_size: int
  splits: tuple[str, ...]
  present: dict
  prepared: bool

  def missing(self, needed: Sequence[str]) -> list[str]:
    unknown = [k for k in needed if k not in FEATURE_KINDS]
    if unknown:
      raise ValueError(f"needed: unknown feature kinds {unknown}; known: {FEATURE_KINDS}")
    return [k for k in needed if not self.present.get(k, False)]


def prepared_dataset_dir(data_dir: Optional[str], name: str) -> Optional[str]:
  """``<data_dir>/<name>/1.0.0`` when ``jfr.prepare`` wrote a data set there, else None."""
  if not data_dir or "/" in name:
    return None
  root = os.path.join(os.fspath(data_dir), name)
  version_dir = os.path.join(root, PREPARED_VERSION)
  if os.path.isfile(os.path.join(root, PREPARED_MARKER)) and os.path.isfile(
    os.path.join(version_dir, "dataset_info.json")
  ):
    return version_dir
  return None


def dataset_facts(builder: tfds.core.DatasetBuilder) -> DatasetFacts:
  """The :class:`DatasetFacts` of a (prepared) tfds builder."""
  info = builder.info
  shape = info.features["image"].shape
  if shape[0] != shape[1]:
    raise ValueError(f"{info.full_name}: images must be square, got {shape}")
  splits = tuple(sorted(info.splits))
  metadata = info.metadata or {}
  label = info.features["label"] if "label" in info.features else None
  num_classes = int(label.num_classes) if label is not None else 0
  config = getattr(builder, "builder_config", None)
  if metadata.get("jfr_prepared"):
    present = {k: bool(metadata["present"].get(k, False)) for k in FEATURE_KINDS}
    num_train = int(metadata["num_train_identities"]) if present["label"] else -1
    prepared = True
  elif config is not None and hasattr(config, "num_train_identities"):  # synthetic_faces
    present = {k: k != "landmarks5" for k in FEATURE_KINDS}
    num_train = int(config.num_train_identities)
    prepared = False
  elif info.name == "synthetic_faces" and "num_train_identities" in metadata:
    # An older synthetic_faces version (e.g. 1.0.0 next to 1.1.0) loads through tfds'
    # read-only builder, whose config lacks our fields; its metadata carries them.
    present = {k: k != "landmarks5" for k in FEATURE_KINDS}
    num_train = int(metadata["num_train_identities"])
    prepared = False
  else:
    features = info.features
    present = {k: k in features for k in FEATURE_KINDS if k != "videos"}
    present["videos"] = False
    num_train = -1
    prepared = False
  present["videos"] = present["videos"] and {"train_video", "video"} <= set(splits)
  return DatasetFacts(
    name=info.full_name,
    num_train_classes=num_train,
    num_classes=num_classes,
    image_size=int(shape[0]),
    splits=splits,
    present=present,
    prepared=prepared,
  )


def require_features(builder_or_facts, needed: Sequence[str], what: str) -> DatasetFacts:
  """Raises ValueError naming the features ``what`` needs that the data set lacks.

  Args:
    builder_or_facts: a tfds builder or its :class:`DatasetFacts`.
    needed: kinds of :data:`FEATURE_KINDS`, e.g. ``('label', 'segmentation')``.
    what: who needs them (e.g. ``'configs/interpretable.py'``), for the message.
  """
  facts = (
    builder_or_facts
    if isinstance(builder_or_facts, DatasetFacts)
    else dataset_facts(builder_or_facts)
  )
  missing = facts.missing(needed)
  if missing:
    raise ValueError(
      f"{what} needs {', '.join(missing)}, which data set {facts.name} does not have "
      f"(present: {sorted(k for k, v in facts.present.items() if v)}); its values there "
      "are sentinels, not ground truth"
    )
  return facts
