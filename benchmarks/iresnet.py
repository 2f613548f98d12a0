"""Training-step throughput of jfr's IResNet-18/-50 next to arcface_torch's layout in PyTorch.

One step = forward + backward of the backbone at 112 px (default batch 32), a softmax
head over ``--num_classes`` identities, cross-entropy and an SGD-with-momentum update of
both, in float32 on the CPU. For each architecture it prints steps/s, the step's FLOPs
(XLA's ``cost_analysis`` of jfr's compiled step; the same count is used for the PyTorch
step, whose network is the same) and GFLOP/s, and when ``torch`` is importable the same
step in PyTorch with the model built below from arcface_torch's published layout
(``backbones/iresnet.py``: IBasicBlock, PReLU, BN-dropout-FC-BN1d output), and the speed
ratio jfr / PyTorch. The two frameworks' steps alternate (jfr, torch, jfr, ...) and the
medians are compared, so that the load of a shared machine affects both alike. torch is
optional: without it only jfr's figures are printed.

Usage::

  python -m benchmarks.iresnet                       # r18 and r50, batch 32, 5 timed steps
  python -m benchmarks.iresnet --archs=r18 --steps=5 --torch_threads=2

:func:`torch_iresnet` is also used by ``tests/fixtures/make_iresnet_pth.py`` to write the
committed arcface_torch-format test fixture.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np


def torch_iresnet(
  stage_sizes: Sequence[int], num_filters: int = 64, embedding_dim: int = 512, fc_side: int = 7
):
  """arcface_torch's ``IResNet`` layout in PyTorch (same parameter names), for references.

  ``fc_side`` is the final map's side (7 at 112 px; arcface_torch fixes ``fc_scale = 7*7``).
  """
  import torch
  from torch import nn

  def conv3x3(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)

  class IBasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, downsample):
      super().__init__()
      self.bn1 = nn.BatchNorm2d(c_in, eps=1e-5)
      self.conv1 = conv3x3(c_in, c_out)
      self.bn2 = nn.BatchNorm2d(c_out, eps=1e-5)
      self.prelu = nn.PReLU(c_out)
      self.conv2 = conv3x3(c_out, c_out, stride)
      self.bn3 = nn.BatchNorm2d(c_out, eps=1e-5)
      self.downsample = downsample

    def forward(self, x):
      y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
      return y + (x if self.downsample is None else self.downsample(x))

  class IResNet(nn.Module):
    def __init__(self):
      super().__init__()
      f = num_filters
      self.conv1 = nn.Conv2d(3, f, 3, stride=1, padding=1, bias=False)
      self.bn1 = nn.BatchNorm2d(f, eps=1e-5)
      self.prelu = nn.PReLU(f)
      c_in = f
      for s, depth in enumerate(stage_sizes):
        c = f * 2**s
        blocks = []
        for i in range(depth):
          down = None
          if i == 0:
            down = nn.Sequential(
              nn.Conv2d(c_in, c, 1, stride=2, bias=False), nn.BatchNorm2d(c, eps=1e-5)
            )
          blocks.append(IBasicBlock(c_in, c, 2 if i == 0 else 1, down))
          c_in = c
        setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
      self.bn2 = nn.BatchNorm2d(c_in, eps=1e-5)
      self.dropout = nn.Dropout(p=0.0)
      self.fc = nn.Linear(c_in * fc_side * fc_side, embedding_dim)
      self.features = nn.BatchNorm1d(embedding_dim, eps=1e-5)
      nn.init.constant_(self.features.weight, 1.0)
      self.features.weight.requires_grad = False
      for m in self.modules():
        if isinstance(m, nn.Conv2d):
          nn.init.normal_(m.weight, 0, 0.1)

    def forward(self, x):
      x = self.prelu(self.bn1(self.conv1(x)))
      for s in range(len(stage_sizes)):
        x = getattr(self, f"layer{s + 1}")(x)
      x = self.dropout(torch.flatten(self.bn2(x), 1))
      return self.features(self.fc(x))

  return IResNet()


def jfr_step(arch: str, batch: int, size: int, classes: int, dtype: str):
  """``(step, GFLOP per step or None, compile seconds)``: ``step()`` runs one blocking
  training step of jfr's IResNet (state carried between calls)."""
  import jax
  import jax.numpy as jnp
  import optax

  from benchmarks.matmul_peak import compiled_flops
  from jfr.losses.margin import softmax_cross_entropy
  from jfr.models import heads, iresnet
  from jfr.train import state as state_lib
  from jfr.train import steps as steps_lib

  backbone = iresnet.iresnet(arch, dtype=jnp.dtype(dtype))
  head = heads.SoftmaxHead(classes)
  images = jnp.zeros((1, size, size, 3))
  tx = optax.sgd(0.1, momentum=0.9)
  state = state_lib.create_train_state(
    jax.random.PRNGKey(0),
    {
      "backbone": (backbone, lambda rng: backbone.init(rng, images, train=False)),
      "head": (head, jnp.zeros((1, backbone.embedding_dim))),
    },
    {"backbone": tx, "head": tx},
  )

  def train_step(state, batch, rng):
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
    state = state_lib.apply_gradients(state, grads, batch_stats={"backbone": new_bs})
    return state, {"loss": loss}

  rng = np.random.default_rng(0)
  data = {
    "image": jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 3)), jnp.float32),
    "label": jnp.asarray(rng.integers(0, classes, batch), jnp.int32),
  }
  start = time.perf_counter()
  compiled = steps_lib.jit_step(train_step).lower(state, data).compile()
  compile_s = time.perf_counter() - start
  flops = compiled_flops(compiled)
  box = [state]

  def step():
    box[0], metrics = compiled(box[0], data)
    jax.block_until_ready((box[0], metrics))

  return step, (None if flops is None else flops / 1e9), compile_s


def torch_step(arch: str, batch: int, size: int, classes: int):
  """``step()``: one training step of the same network in PyTorch (arcface_torch's layout,
  eager, float32, train mode)."""
  import torch

  from jfr.models import iresnet

  torch.manual_seed(0)
  model = torch_iresnet(iresnet.ARCHS[arch], fc_side=size // 16)
  head = torch.nn.Linear(512, classes, bias=False)
  params = [p for p in list(model.parameters()) + list(head.parameters()) if p.requires_grad]
  opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
  model.train()
  x = torch.rand(batch, 3, size, size) * 2 - 1
  y = torch.randint(0, classes, (batch,))

  def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(head(model(x)), y).backward()
    opt.step()

  return step


def timed(step) -> float:
  start = time.perf_counter()
  step()
  return time.perf_counter() - start


def main(argv):
  del argv
  from absl import flags

  args = flags.FLAGS
  import jax

  try:
    import torch
  except ImportError:
    torch = None
  if torch is not None and args.torch_threads > 0:
    torch.set_num_threads(args.torch_threads)
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
  print(
    f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} CPUs, "
    f"load average {load:.1f}; batch {args.batch_size}, {args.image_size} px, softmax "
    f"({args.num_classes}), SGD momentum 0.9, {args.dtype}, {args.steps} timed steps each"
  )
  if torch is not None:
    print(
      f"torch {torch.__version__}, {torch.get_num_threads()} threads; steps alternate "
      "jfr/torch so that a shared machine's load hits both alike; medians reported"
    )
  for arch in args.archs:
    a = (arch, args.batch_size, args.image_size, args.num_classes)
    jfr, gflop, compile_s = jfr_step(*a, args.dtype)
    other = torch_step(*a) if torch is not None else None
    jfr()  # warm-up
    if other is not None:
      other()
    jfr_times, torch_times = [], []
    for _ in range(args.steps):
      jfr_times.append(timed(jfr))
      if other is not None:
        torch_times.append(timed(other))
    jfr_s = float(np.median(jfr_times))
    rate = f"{gflop / jfr_s:.1f} GFLOP/s, {gflop:.0f} GFLOP/step" if gflop else "FLOPs n/a"
    print(
      f"{arch}: jfr   {1 / jfr_s:.3f} steps/s ({jfr_s:.2f} s/step, {rate}; "
      f"compile {compile_s:.0f} s; steps {', '.join(f'{t:.1f}' for t in jfr_times)} s)",
      flush=True,
    )
    if other is None:
      print(f"{arch}: torch not importable; no side-by-side figure")
      continue
    torch_s = float(np.median(torch_times))
    rate = f", {gflop / torch_s:.1f} GFLOP/s (same FLOP count)" if gflop else ""
    print(
      f"{arch}: torch {1 / torch_s:.3f} steps/s ({torch_s:.2f} s/step{rate}; steps "
      f"{', '.join(f'{t:.1f}' for t in torch_times)} s) -> jfr/torch speed {torch_s / jfr_s:.2f}x "
      f"(load average now {os.getloadavg()[0]:.1f})",
      flush=True,
    )


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_list("archs", ["r18", "r50"], "IResNet depths to time.")
  flags.DEFINE_integer("batch_size", 32, "Batch size.")
  flags.DEFINE_integer("image_size", 112, "Image side (the FC size follows).")
  flags.DEFINE_integer("num_classes", 1000, "Classes of the softmax head.")
  flags.DEFINE_integer("steps", 5, "Timed steps of each (after one warm-up step each).")
  flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "jfr's computation dtype.")
  flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads (0: torch's default).")
  app.run(main)
