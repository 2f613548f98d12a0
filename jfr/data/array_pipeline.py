"""In-memory stills as a tf.data training stream (e.g. a fine-tuning set drawn from a split).

:func:`array_batches` turns uint8 arrays that are already in memory (a few thousand stills
chosen by an evaluation protocol, see :mod:`jfr.eval.identity_protocol`) into the same kind
of infinite, shuffled, augmented and resumable stream that
:func:`jfr.data.pipelines.image_batches` makes from a tfds split.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from jfr.data import pipelines


def array_batches(
  images: np.ndarray,
  labels: np.ndarray,
  batch_size: int,
  *,
  seed: int,
  start_batch: int = 0,
  augment_options: Mapping[str, Any] | None = None,
  process_index: int | None = None,
  process_count: int | None = None,
) -> tf.data.Dataset:
  """Infinite shuffled batches from in-memory stills.

  Deterministic in ``(seed, start_batch)`` like :func:`jfr.data.pipelines.image_batches`:
  a seeded shuffle, stateless augmentation seeded by ``(seed, example index)``, and a
  resume that skips the ``start_batch`` batches already consumed.

  Args:
    images: uint8 ``[N, H, W, 3]``.
    labels: int ``[N]``.
    batch_size: the global batch size (each process yields its share).
    seed: shuffle and augmentation seed.
    start_batch: batches already consumed.
    augment_options: see :func:`jfr.data.pipelines.augment_image`; None: no augmentation.
    process_index, process_count: which rows of each global batch this process yields
      (default: JAX's); every process shuffles the whole set alike and keeps its rows
      (:func:`jfr.data.pipelines.keep_process_rows`), so the global batches do not depend on
      the number of processes.

  Returns:
    Dataset of ``{'image': float32 [b, H, W, 3] in [-1, 1], 'label': int32 [b]}``.

  Raises:
    ValueError: ``images``/``labels`` of mismatching or empty shapes.
  """
  images = np.asarray(images)
  if images.ndim != 4 or len(images) != len(labels) or not len(images):
    raise ValueError(
      f"images/labels: expected [N, H, W, 3] and [N] with N >= 1, got "
      f"{images.shape} and {np.shape(labels)}"
    )
  index, count = pipelines.process_slot(process_index, process_count)
  b = pipelines.host_batch_size(batch_size, count)
  ds = tf.data.Dataset.from_tensor_slices(
    {"image": images, "label": np.asarray(labels).astype(np.int32)}
  )
  ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
  ds = ds.enumerate().skip(start_batch * batch_size)  # global example indices
  ds = pipelines.keep_process_rows(ds, batch_size, index, count)

  def prepare(index, ex):
    image = pipelines.to_model_range(ex["image"])
    if augment_options:
      image = pipelines.augment_image(
        image, tf.stack([tf.constant(seed, tf.int64), index]), augment_options
      )
    return {"image": image, "label": ex["label"]}

  ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(b, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
