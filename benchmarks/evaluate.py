"""Embedding throughput during a benchmark against the bare compiled forward pass.

The benchmark path is what ``python -m jfr.evaluate --benchmark=insightface_bin`` runs: JPEG
bytes of a ``.bin`` decoded on a thread pool one batch ahead
(:func:`jfr.eval.benchmarks.streaming.embed_items`), converted to [-1, 1] and pushed through
the run's :data:`~jfr.eval.embedding.EmbedFn` (``model_embedder``: jitted apply, fixed batch).
The bare figure is the same jitted apply called on a ready float batch already in memory.
Both use the same backbone, input size and batch size; the ratio is the target (>= 0.8).

Usage::

  python -m benchmarks.evaluate                         # baseline ResNet, 112 px, batch 64
  python -m benchmarks.evaluate --image_size=64 --batch_size=128 --batches=8
"""

from __future__ import annotations

import functools
import io
import time

import jax
import numpy as np
from absl import app, flags
from PIL import Image

_SIZE = flags.DEFINE_integer("image_size", 112, "Input side.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images per forward pass.")
_BATCHES = flags.DEFINE_integer("batches", 6, "Timed batches.")
_VARIANT = flags.DEFINE_string("config", "default", "configs/baseline.py variant.")


def _jpegs(n: int, size: int, seed: int = 0) -> list[bytes]:
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95)
    out.append(buf.getvalue())
  return out


def main(argv):
  del argv
  from configs import baseline
  from jfr.data import image_files
  from jfr.eval import embedding
  from jfr.eval.benchmarks import streaming
  from jfr.methods.recognition import trainer

  size, batch, batches = _SIZE.value, _BATCH.value, _BATCHES.value
  config = baseline.get_config(None if _VARIANT.value == "default" else _VARIANT.value)
  module = trainer.inference_backbone(config)
  x = np.random.default_rng(1).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  variables = module.init(jax.random.PRNGKey(0), x[:1], train=False)
  apply = functools.partial(module.apply, train=False)
  fn = jax.jit(apply)
  jax.block_until_ready(fn(variables, x))  # compile
  start = time.perf_counter()
  for _ in range(batches):
    out = fn(variables, x)
  jax.block_until_ready(out)
  bare = batches * batch / (time.perf_counter() - start)

  n = batches * batch
  jpegs = _jpegs(n, size)
  embed = embedding.model_embedder(apply, variables, input_size=size, batch_size=batch)
  embed(np.zeros((batch, size, size, 3), np.uint8))  # same compiled function, warm

  def load(i):
    return image_files.decode_image(jpegs[i])

  start = time.perf_counter()
  streaming.embed_items(embed, load, n, batch_size=batch)
  during = n / (time.perf_counter() - start)
  print(
    f"backbone {config.model.name} {size}px batch {batch}, {n} images on "
    f"{jax.devices()[0].platform}: bare forward {bare:.1f} img/s, during the benchmark "
    f"{during:.1f} img/s, ratio {during / bare:.2f}"
  )


if __name__ == "__main__":
  app.run(main)
