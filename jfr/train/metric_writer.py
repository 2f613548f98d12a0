"""Scalar metric writers for training: TensorBoard event files, and the console summary line.

* :class:`MetricWriter` writes scalars to TensorBoard event files in a log
  directory (``<workdir>/tb`` for :func:`jfr.train.loop.run_training`) with
  ``tf.summary``; view them with ``tensorboard --logdir <workdir>/tb``.
* :class:`ScalarWriter` is the protocol the training loop needs
  (``write_scalars`` and ``close``); tests or callers that want no TensorFlow can
  pass any object that has these two methods.
* :func:`summary_line` formats the one-line console summary the loop logs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from typing import Protocol


class ScalarWriter(Protocol):
  """What the training loop writes metrics to."""

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None: ...

  def close(self) -> None: ...


class MetricWriter:
  """Writes scalars to TensorBoard event files in ``logdir`` (created if needed).

  Each scalar is a float32 summary tagged for TensorBoard's scalars plugin, the
  format ``tf.summary.scalar`` writes; it is written with the core
  ``tf.summary.write`` because ``tf.summary.scalar`` needs the ``tensorboard``
  package, which tensorflow-cpu does not install.

  TensorFlow is imported when the first writer is made, not with this module, so
  that runs that pass their own :class:`ScalarWriter` do not pay for the import.
  """

  def __init__(self, logdir: str | os.PathLike):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    self._tf = tf
    self._metadata = tf.compat.v1.SummaryMetadata(
      plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"), data_class=1
    )  # DATA_CLASS_SCALAR
    self.logdir = os.fspath(logdir)
    self._writer = tf.summary.create_file_writer(self.logdir)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Writes each ``name: value`` of ``scalars`` at ``step``."""
    with self._writer.as_default():
      for name, value in scalars.items():
        self._tf.summary.write(
          name,
          self._tf.constant(float(value), self._tf.float32),
          step=int(step),
          metadata=self._metadata,
        )

  def close(self) -> None:
    """Flushes and closes the event file."""
    self._writer.close()


def summary_line(
  step: int,
  num_steps: int,
  scalars: Mapping[str, float],
  steps_per_sec: float | None,
) -> str:
  """``'step 100/1000 | loss 1.234, nonfinite 0 | 12.3 steps/s, ETA 0:01:13'``.

  ``steps_per_sec`` None (no timing yet, e.g. the first step, which also compiles)
  leaves out the rate and the ETA.
  """
  values = ", ".join(f"{name} {value:.4g}" for name, value in sorted(scalars.items()))
  line = f"step {step}/{num_steps} | {values}"
  if steps_per_sec:
    eta = datetime.timedelta(seconds=round((num_steps - step) / steps_per_sec))
    line += f" | {steps_per_sec:.3g} steps/s, ETA {eta}"
  return line
