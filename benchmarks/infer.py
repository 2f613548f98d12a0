"""``python -m jfr.infer embed`` throughput against the bare compiled forward pass.

The inference path (:func:`jfr.infer.recognize.embed_paths`): image files on disk read,
decoded (PIL, EXIF/alpha handling) and cropped or five-point aligned on worker threads one
batch ahead (:func:`jfr.infer.recognize.face_batches`), then the run's
:data:`~jfr.eval.embedding.EmbedFn` (``model_embedder``: [-1, 1] conversion, jitted apply at a
fixed batch). The bare figure is the same jitted apply called on a float batch already in
memory. Same backbone, input size and batch size; the target ratio is >= 0.8 (reading and
alignment must not be the bottleneck).

Usage::

  python -m benchmarks.infer                                   # configs/baseline.py, 112 px
  python -m benchmarks.infer --config=tiny --image_size=32     # seconds on a laptop CPU
  python -m benchmarks.infer --landmarks                       # five-point alignment too
"""

from __future__ import annotations

import functools
import os
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from PIL import Image

_SIZE = flags.DEFINE_integer("image_size", 112, "Model input side.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images per forward pass.")
_BATCHES = flags.DEFINE_integer("batches", 6, "Timed batches.")
_VARIANT = flags.DEFINE_string("config", "default", "configs/baseline.py variant.")
_LANDMARKS = flags.DEFINE_bool("landmarks", False, "Align with five-point landmarks.")
_SOURCE = flags.DEFINE_integer("source_size", 0, "Side of the files (0 = the model's).")


def _write_files(folder: str, n: int, side: int, seed: int = 0) -> list[str]:
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(n):
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    path = os.path.join(folder, f"{i:05d}.jpg")
    Image.fromarray(small).resize((side, side), Image.BILINEAR).save(path, quality=95)
    paths.append(path)
  return paths


def main(argv):
  del argv
  from configs import baseline
  from jfr.data import align
  from jfr.eval import embedding
  from jfr.infer import recognize
  from jfr.methods.recognition import trainer

  size, batch, batches = _SIZE.value, _BATCH.value, _BATCHES.value
  side = _SOURCE.value or size
  config = baseline.get_config(None if _VARIANT.value == "default" else _VARIANT.value)
  module = trainer.inference_backbone(config)
  x = np.random.default_rng(1).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  variables = module.init(jax.random.PRNGKey(0), x[:1], train=False)
  apply = functools.partial(module.apply, train=False)
  fn = jax.jit(apply)
  jax.block_until_ready(fn(variables, x))
  start = time.perf_counter()
  for _ in range(batches):
    out = fn(variables, x)
  jax.block_until_ready(out)
  bare = batch * batches / (time.perf_counter() - start)

  embed = embedding.model_embedder(apply, variables, input_size=size, batch_size=batch)
  with tempfile.TemporaryDirectory() as folder:
    paths = _write_files(folder, batch * (batches + 1), side)
    landmarks = None
    if _LANDMARKS.value:
      # the template of a face filling 80% of the file, slightly rotated
      t = align.arcface_template(side) * 0.8 + side * 0.1
      c = t.mean(0)
      rot = np.array([[np.cos(0.1), -np.sin(0.1)], [np.sin(0.1), np.cos(0.1)]])
      landmarks = np.repeat(((t - c) @ rot.T + c)[None], len(paths), 0).astype(np.float32)
    warm = recognize.embed_paths(
      embed,
      paths[:batch],
      size,
      batch_size=batch,
      progress=False,
      landmarks=None if landmarks is None else landmarks[:batch],
    )
    start = time.perf_counter()
    res = recognize.embed_paths(
      embed,
      paths[batch:],
      size,
      batch_size=batch,
      progress=False,
      landmarks=None if landmarks is None else landmarks[batch:],
    )
    elapsed = time.perf_counter() - start
  assert res["embeddings"].shape[0] == batch * batches and warm["embeddings"].shape[0] == batch
  infer = batch * batches / elapsed
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), cpus {os.cpu_count()}")
  print(
    f"model: configs/baseline.py:{_VARIANT.value} backbone, input {size}x{size}, batch {batch}; "
    f"files {side}x{side} JPEG, {'five-point aligned' if landmarks is not None else 'crops'}"
  )
  print(f"bare compiled forward: {bare:9.1f} images/s")
  print(f"jfr.infer embed:       {infer:9.1f} images/s (read + decode + align + embed)")
  print(f"ratio: {infer / bare:.3f} (target >= 0.8)")


if __name__ == "__main__":
  app.run(main)
