"""Views of a tfds builder restricted to a subset of its identities."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


class IdentitySubset:
  """A view of a tfds builder whose datasets hold only the labels ``< num_identities``.

  Duck-types the two members :mod:`jfr.data.pipelines` reads (``info``, ``as_dataset``),
  so that its pipelines (shuffling, resume, the shared warped occluder) run unchanged on
  the first identities of a split (e.g. ``dataset.train_identities`` of the
  interpretable-FR config). ``info`` is the full builder's: split sizes are not filtered.
  """

  def __init__(self, builder: Any, num_identities: int):
    if num_identities < 2:
      raise ValueError(f"num_identities: expected >= 2, got {num_identities}")
    self._builder = builder
    self.num_identities = num_identities

  @property
  def info(self) -> Any:
    return self._builder.info

  def as_dataset(self, **kwargs) -> tf.data.Dataset:
    """``builder.as_dataset(**kwargs)`` keeping examples with ``label < num_identities``."""
    limit = tf.constant(self.num_identities, tf.int64)
    return self._builder.as_dataset(**kwargs).filter(
      lambda ex: tf.cast(ex["label"], tf.int64) < limit
    )
