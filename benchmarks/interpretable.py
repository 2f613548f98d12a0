"""Throughput of the interpretable-FR Siamese training step, and the cost of LMF.

Builds the step :mod:`jfr.methods.interpretable.trainer` trains (variant ``sad_fad``: both branches
through the hypercolumn CASIA-Net, softmax on f(I) and on τ ⊙ f(Î), SAD filter and
response losses on g_σ * LMF(ψ), FAD with the batch's τ, one SGD/Adam update with the
non-finite guard) from ``configs/interpretable.py[:variant]`` on random pairs, compiles it
with :func:`jfr.train.steps.jit_step` on the default device and prints

* Siamese steps/s and pairs/s (one cached, device-resident batch: compute only);
* the step's FLOPs (XLA ``cost_analysis``), the achieved GFLOP/s, the device's matmul
  peak (``benchmarks.matmul_peak``) and the fraction of it;
* the large magnitude filter on the step's Ψ shape ``[2B, h, w, K]``: the time of
  :func:`jfr.models.layers.large_magnitude_filter`, whether XLA compiled it with a full
  sort of the maps, and, for comparison, the time of the same threshold read as the
  last of the top-k values (``top_k(...)[0][..., -1]``, which XLA:CPU lowers to a full
  sort) and of a plain full sort of the maps.

Usage::

  python -m benchmarks.interpretable --config=paper --batch_size=8 --steps=2   # 96 px, CPU
  python -m benchmarks.interpretable --config=default --batch_size=16 --steps=5
  python -m benchmarks.interpretable --config=paper --batch_size=64 --steps=20   # GPU
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.matmul_peak import compiled_flops, matmul_peak_gflops
from configs import interpretable as interpretable_config
from jfr.models import layers
from jfr.methods.interpretable import trainer as interpretable
from jfr.train import steps

FLAGS = flags.FLAGS
flags.DEFINE_enum(
  "config", "paper", ["default", "paper", "tiny", "gaud"], "Variant of configs/interpretable.py."
)
flags.DEFINE_string("variant", "sad_fad", "Trained variant (base, sad, fad, sad_fad).")
flags.DEFINE_integer("batch_size", 8, "Pairs per step (2x images through the network).")
flags.DEFINE_integer("num_classes", 1000, "Classes of the shared classifier.")
flags.DEFINE_integer("steps", 2, "Timed steps (after one warm-up step).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Computation dtype.")
flags.DEFINE_integer("matmul_n", 1024, "Matrix side of the matmul peak measurement.")


def load_config(variant: str):
  """``configs/interpretable.py:<variant>``."""
  return interpretable_config.get_config(variant)


def random_pairs(batch_size: int, size: int, num_classes: int) -> dict[str, np.ndarray]:
  """Clean faces, the same with one shared black band, labels."""
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32)
  occluded = image.copy()
  occluded[:, size // 4 : size // 4 + size // 8, size // 6 : -size // 6] = -1.0
  return {
    "image": image,
    "occluded": occluded,
    "label": rng.integers(0, num_classes, batch_size).astype(np.int32),
  }


def seconds_per_call(fn, *args, repeats: int) -> float:
  """Mean wall time of ``repeats`` calls after one warm-up call."""
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def lmf_from_last_topk_value(responses: jax.Array, keep: int) -> jax.Array:
  """LMF with the threshold read as the last of the top-k values (same result)."""
  b, h, w, k = responses.shape
  magnitude = jnp.abs(jax.lax.stop_gradient(responses))
  flat = magnitude.transpose(0, 3, 1, 2).reshape(b, k, h * w)
  threshold = jax.lax.top_k(flat, keep)[0][..., -1]
  return jnp.where(magnitude >= threshold[:, None, None, :], responses, 0.0)


def lmf_report(shape: tuple[int, ...], keep: int, repeats: int) -> dict[str, float | bool]:
  """Times of LMF as implemented, LMF from the last top-k value, and a full sort of the maps."""
  x = jax.random.normal(jax.random.PRNGKey(0), shape, jnp.float32)
  as_implemented = jax.jit(lambda r: layers.large_magnitude_filter(r, keep))
  last_value = jax.jit(lambda r: lmf_from_last_topk_value(r, keep))
  full_sort = jax.jit(lambda r: jnp.sort(jnp.abs(r).reshape(shape[0], -1, shape[-1]), axis=1))
  np.testing.assert_array_equal(np.asarray(as_implemented(x)), np.asarray(last_value(x)))
  hlo = as_implemented.lower(x).compile().as_text()
  return {
    "lmf_ms": 1e3 * seconds_per_call(as_implemented, x, repeats=repeats),
    "lmf_sorts": " sort(" in hlo,
    "lmf_last_topk_value_ms": 1e3 * seconds_per_call(last_value, x, repeats=repeats),
    "full_sort_ms": 1e3 * seconds_per_call(full_sort, x, repeats=repeats),
  }


def main(argv):
  del argv
  tf.config.set_visible_devices([], "GPU")
  config = load_config(FLAGS.config)
  config.parallelism = "none"
  config.model.dtype = FLAGS.dtype
  size, k = config.model.image_size, config.model.feature_dim
  state = interpretable.create_state(config, FLAGS.variant, FLAGS.num_classes)
  batch = jax.device_put(random_pairs(FLAGS.batch_size, size, FLAGS.num_classes))
  step = steps.jit_step(
    interpretable.make_train_step(config, FLAGS.variant, state.apply_fn), donate=False
  )
  compiled = step.lower(state, batch).compile()
  flops = compiled_flops(compiled)
  seconds = seconds_per_call(lambda s: compiled(s, batch), state, repeats=FLAGS.steps)
  peak = matmul_peak_gflops(FLAGS.matmul_n, jnp.dtype(FLAGS.dtype))
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
  print(
    f"config {FLAGS.config}: {size}x{size} px, K = {k}, keep {config.model.keep}, "
    f"variant {FLAGS.variant}, {FLAGS.batch_size} pairs/step, {FLAGS.dtype}"
  )
  print(
    f"Siamese train step: {1 / seconds:.3f} steps/s, {FLAGS.batch_size / seconds:.1f} "
    f"pairs/s ({1e3 * seconds:.0f} ms/step)"
  )
  if flops:
    achieved = flops / seconds / 1e9
    print(
      f"step FLOPs {flops / 1e9:.2f} G -> {achieved:.1f} GFLOP/s; matmul peak "
      f"{peak:.1f} GFLOP/s; fraction of peak {achieved / peak:.3f}"
    )
  else:
    print(f"step FLOPs unavailable on this backend; matmul peak {peak:.1f} GFLOP/s")
  hc = size // 4
  lmf = lmf_report((2 * FLAGS.batch_size, hc, hc, k), config.model.keep, repeats=5)
  print(
    f"LMF on [{2 * FLAGS.batch_size}, {hc}, {hc}, {k}] keep {config.model.keep}: "
    f"{lmf['lmf_ms']:.2f} ms as implemented (full sort in HLO: {lmf['lmf_sorts']}), "
    f"{lmf['lmf_last_topk_value_ms']:.2f} ms with the threshold = the last top-k "
    f"value, {lmf['full_sort_ms']:.2f} ms for a full sort"
  )


if __name__ == "__main__":
  app.run(main)
