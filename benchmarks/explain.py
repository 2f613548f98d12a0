"""Seconds per explained pair for Algorithm 1 (jfr.explain.saliency.explain_pair).

Compares, on random ReLU-like conv maps and a random-weight ReconstructionDecoder:

* the batched implementation (``explain_pair`` / ``explain_pairs``): the perturbed maps
  of the active channels decoded ``chunk_size`` at a time inside one compiled call;
* the per-channel loop of the paper's listing: one decoder call per channel plus one for
  the unperturbed map (c + 1 calls of batch 1);
* the decoder-bound limits: (c + 1) decodes, and the decodes actually needed
  (``ceil((n + 1) / chunk) * chunk``, n = active channels), at the decoder's batched
  throughput.

Usage::

  python -m benchmarks.explain --preset=paper   # C = 7x7x512 -> 112x112 (ResNet-50-like)
  python -m benchmarks.explain --preset=tiny    # seconds, for a smoke run

Timings on a shared CPU are indicative; the ratios are what matters.
"""

from __future__ import annotations

import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax.tree_util import Partial

from jfr.explain import saliency
from jfr.models.decoder import ReconstructionDecoder

PRESETS = {
  # name: (h = w of the conv map, channels, decoder widths)
  "paper": (7, 512, (256, 128, 64)),
  "tiny": (4, 64, (32, 16, 8)),
}

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "paper", list(PRESETS), "Sizes of C and of the decoder.")
flags.DEFINE_integer("chunk_size", 64, "Perturbed maps decoded per batch.")
flags.DEFINE_float(
  "dead_fraction", 0.25, "Share of channels that are all zero (maximum 0: skipped)."
)
flags.DEFINE_float("zero_fraction", 0.5, "Share of zero elements in live channels.")
flags.DEFINE_integer("pairs", 2, "Pairs timed for the batched implementation.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions of the decoder throughput.")
flags.DEFINE_bool("loop", True, "Also time the per-channel loop (one pair).")


def _conv_maps(rng, pairs, size, channels):
  """ReLU-like maps: a share of dead channels, the rest half zeros."""
  maps = np.abs(rng.normal(size=(pairs, 2, size, size, channels))).astype(np.float32)
  maps *= rng.uniform(size=maps.shape) >= FLAGS.zero_fraction
  dead = rng.uniform(size=(pairs, 2, 1, 1, channels)) < FLAGS.dead_fraction
  return np.where(dead, 0.0, maps).astype(np.float32)


def _timed(fn, *args):
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


@jax.jit
def _decode_one(decode, conv_map):
  return decode(conv_map[None])[0]


@jax.jit
def _zero_max(conv_map, channel):
  flat = conv_map.reshape(-1, conv_map.shape[-1])
  return flat.at[jnp.argmax(flat[:, channel]), channel].set(0).reshape(conv_map.shape)


@jax.jit
def _add_residual(heat, weight, base, image):
  residual = jnp.mean(jnp.abs(base - image), axis=-1)
  peak = residual.max()
  return heat + weight * jnp.where(peak > 0, residual / jnp.where(peak > 0, peak, 1), 0)


def _per_channel_loop(decode, conv_a, conv_b, threshold):
  """The paper's listing: c + 1 decoder calls of batch 1 (each piece jitted)."""
  f_a = jnp.max(conv_a, axis=(0, 1))
  f_b = jnp.max(conv_b, axis=(0, 1))
  weights = f_a / jnp.linalg.norm(f_a) * f_b / jnp.linalg.norm(f_b) - threshold
  base = _decode_one(decode, conv_a)
  heat = jnp.zeros(base.shape[:2])
  for i in range(conv_a.shape[-1]):
    channel = jnp.int32(i)
    image = _decode_one(decode, _zero_max(conv_a, channel))
    heat = _add_residual(heat, weights[channel], base, image)
  return heat


def main(argv):
  del argv
  size, channels, widths = PRESETS[FLAGS.preset]
  image = 16 * size
  chunk = min(FLAGS.chunk_size, channels + 1)
  model = ReconstructionDecoder(widths=widths)
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, size, size, channels)))
  decode = Partial(model.apply, params)
  threshold = 0.3 / channels
  maps = _conv_maps(np.random.default_rng(0), FLAGS.pairs, size, channels)

  # Decoder throughput at batch `chunk`.
  batch = jnp.asarray(maps[0, 0][None].repeat(chunk, 0))
  decode_jit = jax.jit(lambda d, x: d(x))
  _timed(decode_jit, decode, batch)
  decode_s = min(_timed(decode_jit, decode, batch) for _ in range(FLAGS.repeats))
  images_per_s = chunk / decode_s

  # Batched Algorithm 1, one pair at a time and all pairs at once.
  _timed(lambda: saliency.explain_pair(decode, maps[0, 0], maps[0, 1], threshold, chunk))
  pair_s, needed = [], []
  for p in range(FLAGS.pairs):
    pair_s.append(
      _timed(lambda: saliency.explain_pair(decode, maps[p, 0], maps[p, 1], threshold, chunk))
    )
    active = int(np.sum(maps[p, 0].max(axis=(0, 1)) != 0))
    needed.append(math.ceil((active + 1) / chunk) * chunk)
  many = lambda: saliency.explain_pairs(decode, maps[:, 0], maps[:, 1], threshold, chunk)
  _timed(many)
  pairs_s = _timed(many) / FLAGS.pairs

  result = {
    "preset": FLAGS.preset,
    "conv_map": [size, size, channels],
    "image": [image, image, 3],
    "chunk_size": chunk,
    "device": str(jax.devices()[0].platform),
    "decoder_images_per_s": images_per_s,
    "decoder_bound_all_channels_s": (channels + 1) / images_per_s,
    "mean_decodes_needed": float(np.mean(needed)),
    "decoder_bound_needed_s": float(np.mean(needed)) / images_per_s,
    "explain_pair_s": float(np.median(pair_s)),
    "explain_pairs_s_per_pair": pairs_s,
  }
  result["ratio_to_bound_needed"] = result["explain_pair_s"] / result["decoder_bound_needed_s"]
  result["ratio_to_bound_all_channels"] = (
    result["explain_pair_s"] / result["decoder_bound_all_channels_s"]
  )
  if FLAGS.loop:
    args = (decode, jnp.asarray(maps[0, 0]), jnp.asarray(maps[0, 1]), threshold)
    _add_residual(
      jnp.zeros((image, image)),
      jnp.float32(1),
      *[_decode_one(decode, _zero_max(args[1], jnp.int32(0)))] * 2,
    )
    result["per_channel_loop_s"] = _timed(_per_channel_loop, *args)
    result["loop_over_batched"] = result["per_channel_loop_s"] / result["explain_pair_s"]
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
