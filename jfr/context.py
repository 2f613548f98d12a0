"""The run context: what every stage of a method needs to know about its data, built once.

``RunContext.from_config(config)`` opens ``config.dataset`` (rendering ``synthetic_faces`` on
first use) and reads the facts that the stages of a method used to re-derive each time: the
builder, the number of training identities, the image side and the split names. Methods
build it once in ``run`` and pass it down.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
import tensorflow_datasets as tfds

from jfr.data import dataset_facts
from jfr.data import pipelines


def num_train_classes(config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder) -> int:
  """Identities in the train split: ``dataset.num_classes`` or what the data set records."""
  if config.dataset.num_classes > 0:
    return int(config.dataset.num_classes)
  count = dataset_facts.dataset_facts(builder).num_train_classes  # synthetic or jfr.prepare
  if count <= 0:
    raise ValueError(
      f"config.dataset.num_classes: set it for {builder.info.full_name} "
      "(the data set does not record its number of training identities)"
    )
  return int(count)


def image_size(builder: tfds.core.DatasetBuilder) -> int:
  """Side of the (square) images of ``builder``."""
  shape = builder.info.features["image"].shape
  if shape[0] != shape[1]:
    raise ValueError(f"dataset images must be square, got {shape}")
  return int(shape[0])


# What each method reads from its data set beyond images (:data:`jfr.data.dataset_facts.FEATURE_KINDS`);
# RunContext.from_config refuses a data set where one of them holds only sentinel values
# (e.g. a jfr.prepare'd folder of photos has no attributes, part masks or videos).
METHOD_FEATURES = {
  "recognition": ("label",),
  "templates": ("label", "videos"),
  "fan": ("label", "videos"),
  "attributes": ("label", "attributes", "segmentation", "landmarks", "videos"),
  "interpretable": ("label", "landmarks", "occluder_mask"),
  "explain": ("label", "occluder_mask"),
}


@dataclasses.dataclass(frozen=True)
class RunContext:
  """Data facts of one run.

  Attributes:
    builder: the prepared tfds builder of ``config.dataset``.
    num_classes: identities of the train split (the classifier width).
    image_size: side of the stored square images.
    train_split, test_split: split names from ``config.dataset``.
    dataset_name: ``config.dataset.name``.
  """

  builder: Any
  num_classes: int
  image_size: int
  train_split: str
  test_split: str
  dataset_name: str

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "RunContext":
    """Opens ``config.dataset`` and checks it holds what ``config.method`` reads
    (:data:`METHOD_FEATURES`; ``ValueError`` naming the missing feature)."""
    builder = pipelines.prepare_builder(config.dataset.name, config.dataset.data_dir)
    needed = METHOD_FEATURES.get(config.method, ("label",))
    dataset_facts.require_features(builder, needed, f"config.method={config.method!r}")
    return cls(
      builder=builder,
      num_classes=num_train_classes(config, builder),
      image_size=image_size(builder),
      train_split=config.dataset.train_split,
      test_split=config.dataset.test_split,
      dataset_name=config.dataset.name,
    )

  def facts(self) -> dict:
    """What shapes a model trained on this data (for :func:`jfr.workdir.write_data_facts`)."""
    return {
      "num_classes": self.num_classes,
      "image_size": self.image_size,
      "dataset_name": self.dataset_name,
      "train_split": self.train_split,
    }

  def split_size(self, split: str) -> int:
    """Examples in ``split``."""
    return int(pipelines.split_info(self.builder, split).num_examples)
