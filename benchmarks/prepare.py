"""Throughput of ``jfr.prepare`` and of the training pipeline on a prepared set.

1. Writes ``--num_images`` rendered faces as LFW-like 250x250 JPEG photos into identity
   folders (a temporary directory).
2. Bare loop: one thread decodes each file (PIL), centre-crops and resizes it to
   ``--image_size`` (bilinear) and encodes it as PNG: the work preparation cannot avoid.
3. ``jfr.prepare.prepare(format='folders', ...)`` on the same files (threads = usable
   CPUs): images/s including indexing, full decode, warp, encode, serialization, shards.
4. The prepared set through ``jfr.data.pipelines.image_batches`` (decode, [-1, 1],
   flip/colour augmentation, batch) in examples/s, against the train step of
   ``benchmarks.train_step`` (ResNet-18, softmax head) in images/s at the same batch size.

Usage::

  python -m benchmarks.prepare --num_images=2000 --batch_size=64 --steps=5
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from benchmarks import train_step as step_bench
from jfr import prepare as prepare_lib
from jfr.data import image_files, pipelines
from jfr.train import steps

flags.DEFINE_integer("num_images", 2000, "Images to write and prepare.")
# --image_size, --batch_size, --steps: the flags of benchmarks.train_step.
FLAGS = flags.FLAGS


def write_photos(root: str, num_images: int) -> list[str]:
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
  from face_layouts import place_face, render_faces  # pylint: disable=g-import-not-at-top

  per = 10
  images, labels, _, _ = render_faces(-(-num_images // per), per, 128)
  paths = []
  for k, (image, c) in enumerate(zip(images[:num_images], labels)):
    folder = os.path.join(root, f"person_{int(c):05d}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{k:06d}.jpg")
    Image.fromarray(place_face(image, (250, 250), (61, 61), 128)).save(path, quality=90)
    paths.append(path)
  return paths


def bare_loop(paths: list[str], size: int) -> float:
  start = time.perf_counter()
  for path in paths:
    with Image.open(path) as im:
      im = im.convert("RGB")
      side = min(im.size)
      left, top = (im.width - side) // 2, (im.height - side) // 2
      im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
      image_files.encode_image(np.asarray(im), "png")
  return len(paths) / (time.perf_counter() - start)


def main(argv):
  del argv

  tmp = tempfile.mkdtemp(prefix="jfr_prepare_bench_")
  paths = write_photos(os.path.join(tmp, "in"), FLAGS.num_images)
  bare = bare_loop(paths, FLAGS.image_size)
  start = time.perf_counter()
  report = prepare_lib.prepare(
    "folders",
    os.path.join(tmp, "in"),
    os.path.join(tmp, "tfds"),
    "bench",
    image_size=FLAGS.image_size,
  )
  prepared = len(paths) / (time.perf_counter() - start)
  print(f"CPUs usable: {len(os.sched_getaffinity(0))}")
  print(f"bare decode+crop+resize+PNG loop (1 thread): {bare:.0f} images/s")
  print(
    f"jfr.prepare (folders, align=none, PNG):      {prepared:.0f} images/s "
    f"({prepared / bare:.2f}x the bare loop); report: {report['images']}"
  )

  builder = pipelines.prepare_builder("bench", os.path.join(tmp, "tfds"))
  ds = pipelines.image_batches(
    builder,
    "train",
    FLAGS.batch_size,
    seed=0,
    features=("image", "label"),
    augment_options=dict(flip=True, brightness=0.2, contrast=0.2, saturation=0.2),
  )
  it = ds.as_numpy_iterator()
  next(it)
  start, n = time.perf_counter(), 30
  for _ in range(n):
    next(it)
  pipe = n * FLAGS.batch_size / (time.perf_counter() - start)
  state = step_bench.make_state(
    FLAGS.image_size, builder.info.features["label"].num_classes, jnp.float32
  )
  compiled = steps.jit_step(step_bench.train_step)
  batch = jax.device_put(next(it))
  seconds, _ = step_bench.seconds_per_step(compiled, state, lambda: batch, FLAGS.steps)
  step_rate = FLAGS.batch_size / seconds
  print(
    f"pipeline on the prepared set: {pipe:.0f} examples/s; "
    f"train step (ResNet-18, {jax.devices()[0].platform}): {step_rate:.0f} images/s "
    f"-> the pipeline is {pipe / step_rate:.1f}x the step's consumption"
  )


if __name__ == "__main__":
  app.run(main)
