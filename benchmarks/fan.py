"""Speed of the Face Aggregation Network's models: set U-Net + discriminator.

Prints, for each image size (default 112 and 64) with N = 10 frames per set and 6
sets per batch (the paper's training setting):

* training steps/s of a realistic GAN step: the aggregator (``SetUNet``) on the
  sets, the discriminator on the fakes and on real faces, gradients of a stand-in
  generator loss (non-saturating adversarial + 1e-4 * total variation + squared L2
  between a frozen random linear "feature extractor" of the aggregated face and the
  mean feature of the real members, i.e. Eq. 8 with a linear extractor) and of the
  discriminator loss, and Adam updates of both networks;
* the step's FLOPs (XLA ``cost_analysis`` of the compiled step), the achieved
  GFLOP/s and its fraction of the device's float32 matmul peak
  (``benchmarks.matmul_peak``);
* the same for ``SetUNet(transposed_conv='flax')`` (``nn.ConvTranspose``, an
  input-dilated convolution) against the default ``SubpixelConvTranspose``;
* optionally the same step in PyTorch (same layout, same losses, Adam), when
  ``torch`` is importable; jfr itself never imports torch;
* inference: FLOPs and time of aggregating the B sets and embedding the B aggregated
  faces with ``jfr.models.resnet.ResNet18`` (the FAN pipeline), against embedding all
  B·N frames with the same backbone (the feature-averaging baseline).

Parameters are initialised with ``rbg`` PRNG keys: flax's default threefry
initialisers take seconds of XLA compile time per parameter tensor on a small CPU;
the random values do not matter for speed.

Usage::

  python -m benchmarks.fan                       # 112 and 64 px, N = 10, batch 6
  python -m benchmarks.fan --sizes=64 --steps=2 --torch=false   # quicker
  PYTHONPATH=/path/to/torch python -m benchmarks.fan            # with PyTorch

Timings on a shared CPU are indicative.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from benchmarks.matmul_peak import compiled_flops, matmul_peak_gflops
from jfr.models.discriminator import Discriminator
from jfr.models.resnet import ResNet18
from jfr.models.set_unet import SetUNet

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["112", "64"], "Image sizes (multiples of 16).")
flags.DEFINE_integer("members", 10, "Frames per set (N).")
flags.DEFINE_integer("batch", 6, "Sets per batch.")
flags.DEFINE_integer("base_features", 32, "SetUNet.base_features.")
flags.DEFINE_integer("steps", 3, "Timed steps per configuration (after one warm-up).")
flags.DEFINE_integer("feature_dim", 128, "Output size of the frozen random extractor.")
flags.DEFINE_list("transposed_convs", ["subpixel", "flax"], "SetUNet.transposed_conv values.")
flags.DEFINE_bool("torch", True, "Also time a PyTorch rendering if torch is importable.")
flags.DEFINE_bool("inference", True, "Also compare aggregator inference with ResNet-18.")

TV_WEIGHT = 1e-4
LEARNING_RATE = 5e-5  # the paper's Adam learning rate


def _time(fn: Callable[[], Any], steps: int) -> tuple[float, float]:
  """(fastest, median) seconds of ``fn`` (which must block) over ``steps`` calls.

  One untimed warm-up call comes first. On a shared machine the fastest call is the
  least disturbed one; the median shows the spread.
  """
  fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times), statistics.median(times)


def _inputs(size: int, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  batch, members = FLAGS.batch, FLAGS.members
  return {
    "frames": rng.uniform(-1, 1, (batch, members, size, size, 3)).astype(np.float32),
    "mask": np.ones((batch, members), bool),
    "real": rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32),
    "projection": (rng.normal(size=(size * size * 3, FLAGS.feature_dim)) / size).astype(np.float32),
  }


def _total_variation(images: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B]: sum of squared neighbour differences."""
  dh = jnp.sum((images[:, 1:] - images[:, :-1]) ** 2, axis=(1, 2, 3))
  dw = jnp.sum((images[:, :, 1:] - images[:, :, :-1]) ** 2, axis=(1, 2, 3))
  return dh + dw


def _jax_step_fn(generator: nn.Module, discriminator: nn.Module, tx: optax.GradientTransformation):
  """The GAN training step described in the module docstring."""

  def step(state, frames, mask, real, projection):
    params_g, params_d, opt_g, opt_d = state
    batch = frames.shape[0]

    def features(images):
      return images.reshape(images.shape[0], -1) @ projection

    def generator_loss(pg):
      fake = generator.apply(pg, frames, mask)
      adv = jax.nn.softplus(-discriminator.apply(params_d, fake))
      member_feats = features(frames.reshape((-1,) + frames.shape[2:]))
      target = member_feats.reshape(batch, -1, member_feats.shape[-1]).mean(axis=1)
      rec = jnp.sum((features(fake) - target) ** 2, axis=-1)
      return jnp.mean(adv + TV_WEIGHT * _total_variation(fake) + rec), fake

    (loss_g, fake), grads_g = jax.value_and_grad(generator_loss, has_aux=True)(params_g)
    fake = jax.lax.stop_gradient(fake)

    def discriminator_loss(pd):
      return jnp.mean(
        jax.nn.softplus(-discriminator.apply(pd, real))
        + jax.nn.softplus(discriminator.apply(pd, fake))
      )

    loss_d, grads_d = jax.value_and_grad(discriminator_loss)(params_d)
    updates_g, opt_g = tx.update(grads_g, opt_g, params_g)
    updates_d, opt_d = tx.update(grads_d, opt_d, params_d)
    state = (
      optax.apply_updates(params_g, updates_g),
      optax.apply_updates(params_d, updates_d),
      opt_g,
      opt_d,
    )
    return state, (loss_g, loss_d)

  return step


def _rbg_key(seed: int) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


def bench_jax_train(size: int, transposed_conv: str) -> dict[str, float]:
  """Steps/s and FLOPs of the jitted GAN step for one image size."""
  data = _inputs(size)
  generator = SetUNet(
    base_features=FLAGS.base_features, max_members=FLAGS.members, transposed_conv=transposed_conv
  )
  discriminator = Discriminator()
  params_g = jax.jit(generator.init)(_rbg_key(0), data["frames"], data["mask"])
  params_d = jax.jit(discriminator.init)(_rbg_key(1), data["real"])
  tx = optax.adam(LEARNING_RATE)
  state = (params_g, params_d, tx.init(params_g), tx.init(params_d))
  args = (data["frames"], data["mask"], data["real"], data["projection"])
  step = jax.jit(_jax_step_fn(generator, discriminator, tx), donate_argnums=0)
  start = time.perf_counter()
  compiled = step.lower(state, *args).compile()
  compile_s = time.perf_counter() - start
  holder = [state]

  def run():
    holder[0], losses = compiled(holder[0], *args)
    jax.block_until_ready(losses)

  seconds, median = _time(run, FLAGS.steps)
  return {
    "seconds": seconds,
    "median": median,
    "flops": compiled_flops(compiled) or 0.0,
    "compile_s": compile_s,
  }


def bench_jax_inference(size: int) -> dict[str, float]:
  """FLOPs and seconds: aggregate + embed B faces vs embed all B·N frames."""
  data = _inputs(size)
  frames, mask = data["frames"], data["mask"]
  generator = SetUNet(base_features=FLAGS.base_features, max_members=FLAGS.members)
  backbone = ResNet18(embedding_dim=512)
  params_g = jax.jit(generator.init)(_rbg_key(0), frames, mask)
  flat = frames.reshape((-1,) + frames.shape[2:])
  variables_b = jax.jit(lambda k, x: backbone.init(k, x, train=False))(_rbg_key(1), flat)

  def embed(x):
    return backbone.apply(variables_b, x, train=False)

  def aggregate(f, m):
    return generator.apply(params_g, f, m)

  def pipeline(f, m):
    return embed(aggregate(f, m))

  results = {}
  for name, fn, args in (
    ("aggregate", aggregate, (frames, mask)),
    ("aggregate+embed", pipeline, (frames, mask)),
    ("embed B·N frames", embed, (flat,)),
    ("embed B faces", embed, (flat[: FLAGS.batch],)),
  ):
    compiled = jax.jit(fn).lower(*args).compile()
    seconds, median = _time(lambda: jax.block_until_ready(compiled(*args)), FLAGS.steps)
    results[name] = {"seconds": seconds, "median": median, "flops": compiled_flops(compiled) or 0.0}
  return results


def bench_torch_train(size: int) -> tuple[float, float] | None:
  """(fastest, median) seconds per step of the PyTorch rendering; None without torch."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  from torch import nn as tnn  # pylint: disable=import-outside-toplevel

  def global_concat(x, batch, members):
    sets = x.reshape((batch, members) + x.shape[1:])
    pooled = sets.amax(dim=1, keepdim=True).expand_as(sets).reshape(x.shape)
    return torch.cat([x, pooled], dim=1)

  class TorchSetUNet(tnn.Module):
    """The SetUNet layout (all masks True, so the set max needs no masking)."""

    def __init__(self, c):
      super().__init__()
      conv = lambda i, o, k, s=1: tnn.Conv2d(i, o, k, s, padding=(k - 1) // 2 if s == 1 else 1)
      self.stem = conv(3, c, 3)
      widths = (c, 2 * c, 4 * c, 8 * c)
      self.enc = tnn.ModuleList()
      prev = c
      for w in widths:
        self.enc.append(tnn.ModuleList([conv(2 * prev, w, 1), conv(w, w, 3, 2)]))
        prev = w
      self.dec = tnn.ModuleList()
      skips = (4 * c, 2 * c, c, c)
      for w, skip in zip((4 * c, 2 * c, c, c), skips):
        self.dec.append(
          tnn.ModuleList(
            [tnn.ConvTranspose2d(prev, w, 4, 2, 1), conv(2 * w + skip, w, 1), conv(w, w, 3)]
          )
        )
        prev = w
      self.head = tnn.ModuleList([conv(c, c, 3), conv(c, 3, 3)])

    def forward(self, frames):
      batch, members = frames.shape[:2]
      elu = tnn.functional.elu
      x = elu(self.stem(frames.flatten(0, 1)))
      skips = [x]
      for merge, down in self.enc:
        x = elu(down(elu(merge(global_concat(x, batch, members)))))
        skips.append(x)
      skips.pop()
      for up, merge, conv in self.dec:
        x = elu(up(x))
        x = torch.cat([global_concat(x, batch, members), skips.pop()], dim=1)
        x = elu(conv(elu(merge(x))))
      x = x.reshape((batch, members) + x.shape[1:]).amax(dim=1)
      return self.head[1](elu(self.head[0](x)))

  class TorchDiscriminator(tnn.Module):
    def __init__(self, size, features=(32, 64, 64, 32)):
      super().__init__()
      f = features
      self.convs = tnn.Sequential(
        tnn.Conv2d(3, f[0], 4, 2, 1),
        tnn.LeakyReLU(0.2),
        tnn.Conv2d(f[0], f[1], 4, 2, 1),
        tnn.LeakyReLU(0.2),
        tnn.Conv2d(f[1], f[2], 3, 1, 1),
        tnn.LeakyReLU(0.2),
        tnn.Conv2d(f[2], f[3], 3, 1, 1),
        tnn.LeakyReLU(0.2),
      )
      self.logit = tnn.Linear(f[3] * (size // 4) ** 2, 1)

    def forward(self, x):
      return self.logit(self.convs(x).flatten(1))[:, 0]

  data = _inputs(size)
  frames = torch.from_numpy(data["frames"]).permute(0, 1, 4, 2, 3).contiguous()
  real = torch.from_numpy(data["real"]).permute(0, 3, 1, 2).contiguous()
  projection = torch.from_numpy(data["projection"])
  generator, discriminator = TorchSetUNet(FLAGS.base_features), TorchDiscriminator(size)
  opt_g = torch.optim.Adam(generator.parameters(), LEARNING_RATE)
  opt_d = torch.optim.Adam(discriminator.parameters(), LEARNING_RATE)
  softplus = tnn.functional.softplus

  def features(images):  # NCHW -> the NHWC flattening the projection was drawn for
    return images.permute(0, 2, 3, 1).flatten(1) @ projection

  def run():
    batch = frames.shape[0]
    for p in discriminator.parameters():
      p.requires_grad_(False)
    fake = generator(frames)
    adv = softplus(-discriminator(fake))
    target = features(frames.flatten(0, 1)).reshape(batch, -1, projection.shape[1]).mean(1)
    rec = ((features(fake) - target) ** 2).sum(-1)
    tv = ((fake[:, :, 1:] - fake[:, :, :-1]) ** 2).sum((1, 2, 3)) + (
      (fake[:, :, :, 1:] - fake[:, :, :, :-1]) ** 2
    ).sum((1, 2, 3))
    opt_g.zero_grad(set_to_none=True)
    (adv + TV_WEIGHT * tv + rec).mean().backward()
    opt_g.step()
    for p in discriminator.parameters():
      p.requires_grad_(True)
    fake = fake.detach()
    loss_d = (softplus(-discriminator(real)) + softplus(discriminator(fake))).mean()
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

  return _time(run, FLAGS.steps)


def _torch_version() -> str:
  import torch  # pylint: disable=import-outside-toplevel

  return torch.__version__


def main(argv):
  del argv
  peak = matmul_peak_gflops()
  print(
    f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); "
    f"float32 matmul peak {peak:.1f} GFLOP/s"
  )
  print(
    f"N = {FLAGS.members} frames per set, batch {FLAGS.batch}, "
    f"base_features {FLAGS.base_features}, Discriminator widths {Discriminator.features}"
  )
  for size in (int(s) for s in FLAGS.sizes):
    print(f"\n== {size}x{size} ==")
    for transposed_conv in FLAGS.transposed_convs:
      r = bench_jax_train(size, transposed_conv)
      gflops = r["flops"] / r["seconds"] / 1e9
      print(
        f"jax train step, transposed_conv={transposed_conv:8s}: "
        f"{1 / r['seconds']:.3f} steps/s ({r['seconds']:.2f} s/step, "
        f"median {r['median']:.2f}), "
        f"{r['flops'] / 1e9:.1f} GFLOP/step, {gflops:.1f} GFLOP/s = "
        f"{100 * gflops / peak:.0f}% of matmul peak (compile {r['compile_s']:.0f} s)"
      )
    if FLAGS.torch:
      timing = bench_torch_train(size)
      if timing is None:
        print("torch train step: skipped (torch is not importable)")
      else:
        print(
          f"torch train step (same layout, torch {_torch_version()}): "
          f"{1 / timing[0]:.3f} steps/s ({timing[0]:.2f} s/step, median {timing[1]:.2f})"
        )
    if FLAGS.inference:
      for name, r in bench_jax_inference(size).items():
        print(
          f"inference {name:17s}: {r['flops'] / 1e9:7.1f} GFLOP, {r['seconds']:.3f} s "
          f"(median {r['median']:.3f} s)"
        )


if __name__ == "__main__":
  app.run(main)
