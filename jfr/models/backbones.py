"""Backbones by name: ``config.model.name`` -> a Flax module (the registry every method uses).

``build_backbone(model_cfg, axis_name)`` reads ``config.model``: ``name`` (a key of
:data:`BACKBONES`), and that backbone's fields (for ``resnet``: ``stage_sizes``, ``block``
('basic' | 'bottleneck'), ``num_filters``, ``embedding_dim``, ``pooling`` ('flatten_fc' |
'gap' | 'gmp'), ``dropout_rate``). Every backbone maps images ``[B, H, W, 3]`` in [-1, 1] to
embeddings ``[B, D]`` with ``module.apply(variables, images, train=bool)``.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import ml_collections

from jfr.models import iresnet
from jfr.models import resnet

BLOCKS = {"basic": resnet.BasicBlock, "bottleneck": resnet.BottleneckBlock}


def _resnet(model_cfg: ml_collections.ConfigDict, axis_name: str | None) -> nn.Module:
  if model_cfg.block not in BLOCKS:
    raise ValueError(f"model.block={model_cfg.block!r}; known: {sorted(BLOCKS)}")
  return resnet.ResNet(
    stage_sizes=tuple(model_cfg.stage_sizes),
    block_cls=BLOCKS[model_cfg.block],
    num_filters=model_cfg.num_filters,
    embedding_dim=model_cfg.embedding_dim,
    pooling=model_cfg.pooling,
    dropout_rate=model_cfg.dropout_rate,
    axis_name=axis_name,
  )


# name -> builder(model_cfg, axis_name) -> module
BACKBONES: dict[str, Callable[[ml_collections.ConfigDict, str | None], nn.Module]] = {
  "resnet": _resnet,
  "iresnet": iresnet.from_config,
}


def build_backbone(model_cfg: ml_collections.ConfigDict, axis_name: str | None) -> nn.Module:
  """The backbone ``model_cfg`` describes, with BatchNorm synced over ``axis_name``."""
  if model_cfg.name not in BACKBONES:
    raise ValueError(f"model.name={model_cfg.name!r}; known: {sorted(BACKBONES)}")
  return BACKBONES[model_cfg.name](model_cfg, axis_name)
