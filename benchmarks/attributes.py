"""Speed of the attribute-enhanced identification network's training step (Taherkhani et al.).

Builds exactly the step :mod:`jfr.methods.attributes.trainer` trains with (``create_state`` +
``make_train_step``: VGG-19 + GAP trunk, attribute and identity branches, Kronecker
fusion, L1 + L2, Adam, non-finite guard) for each fusion variant and each preset, on
the default device with :func:`jfr.train.steps.jit_step` and one cached device batch,
and prints:

* compile time, steps/s and images/s;
* the step's FLOPs (XLA ``cost_analysis``), the achieved GFLOP/s and the fraction of the
  device's matmul peak (``benchmarks.matmul_peak``, same dtype);
* the fusion check: the fused vector's shape ``[B, n·m]`` and the largest intermediate
  that :func:`jfr.models.layers.kronecker_fusion` materialises (must equal ``B·n·m``).

Presets: ``default`` = ``configs/attributes.py`` (64 px, batch 64, small widths);
``paper`` = ``configs/attributes.py:paper`` (112 px, batch 128, VGG-19 widths, FC 4096).
``--batch_size`` / ``--image_size`` override a preset's values.

Usage::

  python -m benchmarks.attributes                                   # default preset, CPU
  python -m benchmarks.attributes --presets=paper --modes=joint --steps=1 --warmup_steps=0  # CPU
  python -m benchmarks.attributes --presets=default,paper --steps=20        # GPU

Timings on a shared CPU are indicative.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.matmul_peak import compiled_flops, matmul_peak_gflops
from configs import attributes as attributes_config
from jfr.methods.attributes import trainer as attributes
from jfr.models import layers
from jfr.train import state as state_lib
from jfr.train import steps

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["default"], "Config variants of configs/attributes.py.")
flags.DEFINE_list("modes", ["joint", "separate", "concat"], "Fusion variants to time.")
flags.DEFINE_integer("batch_size", 0, "Global batch size (0: the preset's).")
flags.DEFINE_integer("image_size", 0, "Image side (0: the preset's data set's size).")
flags.DEFINE_integer("num_classes", 0, "Identities C (0: the preset's training identities).")
flags.DEFINE_integer("steps", 3, "Timed steps (after the warm-up steps).")
flags.DEFINE_integer("warmup_steps", 1, "Untimed steps after compiling (0 for very long steps).")
flags.DEFINE_integer("matmul_n", 2048, "Matrix side of the matmul peak measurement.")

_PRESET_SIZES = {
  "synthetic_faces/small": (64, 400),
  "synthetic_faces/default": (112, 2000),
  "synthetic_faces/tiny": (32, 14),
}


def _fusion_check(batch: int, n: int, m: int) -> int:
  """Largest intermediate (elements) of the Kronecker fusion of ``[B, n]`` and ``[B, m]``."""
  jaxpr = jax.make_jaxpr(layers.kronecker_fusion)(jnp.zeros((batch, n)), jnp.zeros((batch, m)))
  return max(int(np.prod(v.aval.shape)) for eqn in jaxpr.eqns for v in eqn.outvars)


def time_step(
  config,
  mode: str,
  batch_size: int,
  size: int,
  num_classes: int,
  num_steps: int,
  warmup_steps: int = 1,
) -> dict[str, float]:
  """Compile time, seconds per step and FLOPs of one train step of variant ``mode``."""
  config.parallelism = "none"
  num_attributes = len(config.attributes.names)
  state = attributes.create_state(config, mode, num_attributes, num_classes, size)
  rng = np.random.default_rng(0)
  batch = jax.device_put(
    {
      "image": rng.uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32),
      "label": rng.integers(0, num_classes, batch_size).astype(np.int32),
      "attributes": (rng.random((batch_size, num_attributes)) < 0.3).astype(np.float32),
    }
  )
  step = steps.jit_step(
    attributes.make_train_step(config.loss.attribute_weight, config.loss.identity_weight)
  )
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  state = jax.device_put(state)
  for _ in range(warmup_steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(num_steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  seconds = (time.perf_counter() - start) / num_steps
  return {
    "compile_s": compile_s,
    "step_s": seconds,
    "flops": compiled_flops(compiled),
    "params": state_lib.num_params(state.params["net"]),
    "loss": float(np.asarray(metrics["loss"])),
  }


def main(argv):
  del argv
  device = jax.devices()[0]
  print(f"device: {device.device_kind} ({jax.default_backend()})")
  peak = matmul_peak_gflops(FLAGS.matmul_n, jnp.float32)
  print(f"matmul peak: {peak:.1f} GFLOP/s ({FLAGS.matmul_n}^2 float32)")
  for preset in FLAGS.presets:
    config = attributes_config.get_config(preset)
    size, classes = _PRESET_SIZES[config.dataset.name]
    size = FLAGS.image_size or size
    classes = FLAGS.num_classes or classes
    batch = FLAGS.batch_size or config.batch_size
    widths = tuple(config.model.widths)
    t = len(config.attributes.names)
    print(
      f"\n[{preset}] {size}x{size}, batch {batch}, widths {widths}, FC "
      f"{config.model.attribute_hidden}/{config.model.identity_hidden}, T={t}, C={classes}, "
      f"{config.model.dtype}"
    )
    largest = _fusion_check(batch, widths[-1], t)
    print(
      f"  fusion: fused [B, n*m] = [{batch}, {widths[-1] * t}]; largest intermediate of "
      f"kronecker_fusion {largest} elements "
      f"({'= B*n*m, ok' if largest == batch * widths[-1] * t else 'LARGER than B*n*m'})"
    )
    for mode in FLAGS.modes:
      r = time_step(config, mode, batch, size, classes, FLAGS.steps, FLAGS.warmup_steps)
      line = (
        f"  {mode:8s}: {r['params'] / 1e6:6.2f}M params, compile {r['compile_s']:5.1f} s, "
        f"{1 / r['step_s']:7.3f} steps/s ({batch / r['step_s']:7.1f} images/s, "
        f"{r['step_s'] * 1e3:8.1f} ms/step)"
      )
      if r["flops"]:
        achieved = r["flops"] / r["step_s"] / 1e9
        line += (
          f", {r['flops'] / 1e9:8.1f} GFLOP/step -> {achieved:7.1f} GFLOP/s = "
          f"{100 * achieved / peak:5.1f}% of matmul peak"
        )
      print(line)


if __name__ == "__main__":
  app.run(main)
