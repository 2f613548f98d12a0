"""Training-step throughput of jfr's IResNet-18/-50 next to arcface_torch's layout in PyTorch.

One step = forward + backward of the backbone at 112 px (default batch 32), a softmax
head over ``--num_classes`` identities, cross-entropy and an SGD-with-momentum update of
both, in float32 on the CPU. For each architecture it prints steps/s, the step's FLOPs
(XLA's ``cost_analysis`` of jfr's compiled step; the same count is used for the PyTorch
step, whose network is the same) and GFLOP/s, and when ``torch`` is importable the same
step in PyTorch with the model built below from arcface_torch's published layout
(``backbones/iresnet.py``: IBasicBlock, PReLU, BN-dropout-FC-BN1d output), and the ratio
jfr / PyTorch. torch is optional: without it only jfr's figures are printed.

Usage::

  python -m benchmarks.iresnet                       # r18 and r50, batch 32, 3 timed steps
  python -m benchmarks.iresnet --archs=r18 --steps=5 --torch_threads=2

:func:`torch_iresnet` is also used by ``tests/fixtures/make_iresnet_pth.py`` to write the
committed arcface_torch-format test fixture.
"""

from __future__ import annotations

from collections.abc import Sequence

# (stage depths of arcface_torch's iresnet18/34/50/100/200 live in jfr.models.iresnet.ARCHS)


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
