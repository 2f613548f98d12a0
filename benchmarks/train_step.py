"""Throughput of one training step of a ResNet-18 face backbone with a softmax head.

Builds the step the recognition trainer runs (ResNet-18, 'face' stem, ArcFace-style
'flatten_fc' 512-d embedding, softmax head, SGD with momentum, non-finite guard) at
112x112 on the default device with :func:`jfr.train.steps.jit_step`, and prints:

* steps/s and images/s with one cached, device-resident batch (compute only);
* the step's FLOPs (XLA's ``cost_analysis`` of the compiled step), the achieved
  GFLOP/s, the matmul peak of the device (``benchmarks.matmul_peak``) and the
  fraction of that peak;
* steps/s when every batch comes from a tf.data pipeline (uint8 images ->
  ``jfr.data.pipelines.to_model_range``, a random flip, batch, prefetch, NumPy
  iterator, host -> device copy), and the pipeline's own batches/s, to show
  whether the input is the bottleneck.

Usage::

  python -m benchmarks.train_step --batch_size=32 --steps=3            # CPU
  python -m benchmarks.train_step --batch_size=256 --dtype=bfloat16 --steps=20   # GPU
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow as tf
from absl import app, flags

from benchmarks.matmul_peak import compiled_flops, matmul_peak_gflops
from jfr.data.pipelines import to_model_range
from jfr.losses.margin import softmax_cross_entropy
from jfr.models import heads, resnet
from jfr.train import state as state_lib
from jfr.train import steps

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_integer("image_size", 112, "Image side.")
flags.DEFINE_integer("num_classes", 1000, "Classes of the softmax head.")
flags.DEFINE_integer("steps", 3, "Timed steps per measurement (after one warm-up step).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Computation dtype.")
flags.DEFINE_integer("pipeline_images", 512, "Distinct images in the tf.data source.")
flags.DEFINE_integer("matmul_n", 2048, "Matrix side of the matmul peak measurement.")


def make_state(image_size: int, num_classes: int, dtype: jnp.dtype) -> state_lib.TrainState:
  """Backbone + head state with SGD (momentum 0.9) on both."""
  backbone = resnet.ResNet18(pooling="flatten_fc", dtype=dtype)
  head = heads.SoftmaxHead(num_classes)
  images = jnp.zeros((1, image_size, image_size, 3))
  tx = optax.sgd(0.1, momentum=0.9)
  return state_lib.create_train_state(
    jax.random.PRNGKey(0),
    {
      "backbone": (backbone, lambda rng: backbone.init(rng, images, train=False)),
      "head": (head, jnp.zeros((1, backbone.embedding_dim))),
    },
    {"backbone": tx, "head": tx},
  )


def train_step(state, batch, rng):
  """Softmax cross-entropy on the backbone's embeddings; one guarded SGD update."""

  def loss_fn(params):
    emb, updates = state.apply_fn["backbone"](
      {"params": params["backbone"], "batch_stats": state.batch_stats["backbone"]},
      batch["image"],
      train=True,
      mutable=["batch_stats"],
      rngs={"dropout": rng},
    )
    logits = state.apply_fn["head"]({"params": params["head"]}, emb)
    return softmax_cross_entropy(logits, batch["label"]).mean(), updates["batch_stats"]

  (loss, new_bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads, loss = steps.cross_replica_mean((grads, loss))
  new_state = state_lib.apply_gradients(state, grads, batch_stats={"backbone": new_bs})
  state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
  return state, {"loss": loss, "nonfinite": nonfinite}


def pipeline(
  batch_size: int, image_size: int, num_classes: int, num_images: int
) -> Iterator[dict[str, np.ndarray]]:
  """Endless NumPy batches from a tf.data pipeline over random uint8 images."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (num_images, image_size, image_size, 3), dtype=np.uint8)
  labels = rng.integers(0, num_classes, num_images).astype(np.int32)

  def prepare(index, image, label):
    image = to_model_range(image)
    flip = tf.random.stateless_uniform([], seed=tf.stack([index, 0])) < 0.5
    image = tf.where(flip, tf.reverse(image, axis=[1]), image)
    return {"image": image, "label": label}

  ds = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().enumerate()
  ds = ds.map(lambda i, ex: prepare(i, *ex), num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  return ds.as_numpy_iterator()


def seconds_per_step(compiled, state, next_batch, num_steps: int):
  """Mean wall time of ``num_steps`` steps; ``next_batch()`` gives each step's device batch."""
  state, metrics = compiled(state, next_batch())  # warm-up (caches, allocator)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(num_steps):
    state, metrics = compiled(state, next_batch())
  jax.block_until_ready((state, metrics))
  return (time.perf_counter() - start) / num_steps, state


def main(argv):
  del argv
  tf.config.set_visible_devices([], "GPU")
  dtype = jnp.dtype(FLAGS.dtype)
  state = make_state(FLAGS.image_size, FLAGS.num_classes, dtype)
  batches = pipeline(FLAGS.batch_size, FLAGS.image_size, FLAGS.num_classes, FLAGS.pipeline_images)
  cached = jax.device_put(next(batches))

  start = time.perf_counter()
  compiled = steps.jit_step(train_step).lower(state, cached).compile()
  compile_s = time.perf_counter() - start
  flops = compiled_flops(compiled)

  state = jax.device_put(state)
  cached_s, state = seconds_per_step(compiled, state, lambda: cached, FLAGS.steps)
  fed_s, state = seconds_per_step(
    compiled, state, lambda: jax.device_put(next(batches)), FLAGS.steps
  )
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    next(batches)
  pipeline_s = (time.perf_counter() - start) / FLAGS.steps
  peak = matmul_peak_gflops(FLAGS.matmul_n, dtype)

  device = jax.devices()[0]
  print(
    f"device: {device.device_kind} ({jax.default_backend()}); ResNet-18 flatten_fc + "
    f"softmax({FLAGS.num_classes}), {FLAGS.image_size}x{FLAGS.image_size}, "
    f"batch {FLAGS.batch_size}, {FLAGS.dtype}, "
    f"{state_lib.num_params(state.params['backbone']) / 1e6:.2f}M backbone params"
  )
  print(f"compile: {compile_s:.1f} s")
  print(
    f"cached batch : {1 / cached_s:.3f} steps/s ({FLAGS.batch_size / cached_s:.1f} images/s, "
    f"{cached_s * 1e3:.1f} ms/step)"
  )
  if flops is not None:
    achieved = flops / cached_s / 1e9
    print(f"step FLOPs   : {flops / 1e9:.1f} GFLOP (XLA cost analysis) -> {achieved:.1f} GFLOP/s")
    print(
      f"matmul peak  : {peak:.1f} GFLOP/s ({FLAGS.matmul_n}^2 {FLAGS.dtype}) -> "
      f"{100 * achieved / peak:.1f}% of peak"
    )
  else:
    print(f"step FLOPs   : not reported by this backend; matmul peak {peak:.1f} GFLOP/s")
  print(
    f"tf.data fed  : {1 / fed_s:.3f} steps/s ({fed_s * 1e3:.1f} ms/step, "
    f"{100 * (fed_s / cached_s - 1):+.1f}% vs cached)"
  )
  print(f"pipeline only: {1 / pipeline_s:.1f} batches/s ({pipeline_s * 1e3:.1f} ms/batch)")


if __name__ == "__main__":
  app.run(main)
