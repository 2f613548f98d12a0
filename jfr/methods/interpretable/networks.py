"""Config checks and the networks of the interpretable-FR method: the hypercolumn CASIA-Net
(:class:`jfr.models.casia_net.CasiaNetHC`, Table 1) of a variant and the K-way classifier
shared by the clean and occluded branches."""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from jfr.losses import diversity
from jfr.methods.interpretable.constants import DTYPES, HEAD_KINDS, VARIANT_FIELDS
from jfr.models import casia_net
from jfr.models import heads


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError for unknown variants or inconsistent model / loss fields."""
  names = tuple(config.run_variants)
  if not names or len(set(names)) != len(names):
    raise ValueError(f"config.run_variants: expected distinct variant names, got {names}")
  unknown = [n for n in names if n not in config.variants]
  if unknown:
    raise ValueError(
      f"config.run_variants: {unknown} not in config.variants {sorted(config.variants)}"
    )
  for name in config.variants:
    fields = set(config.variants[name])
    if fields != set(VARIANT_FIELDS):
      raise ValueError(
        f"config.variants.{name}: expected the bool fields {VARIANT_FIELDS}, got {sorted(fields)}"
      )
  if config.head.kind not in HEAD_KINDS:
    raise ValueError(f"config.head.kind: expected one of {HEAD_KINDS}, got {config.head.kind!r}")
  if config.model.dtype not in DTYPES:
    raise ValueError(
      f"config.model.dtype: expected one of {sorted(DTYPES)}, got {config.model.dtype!r}"
    )
  if config.model.image_size % 16:
    raise ValueError(
      f"config.model.image_size: expected a multiple of 16 (CasiaNetHC), "
      f"got {config.model.image_size}"
    )
  hc = config.model.image_size // 4
  if not 1 <= config.model.keep <= hc * hc:
    raise ValueError(
      f"config.model.keep: expected 1 <= keep <= {hc * hc} (the {hc}x{hc} "
      f"response map), got {config.model.keep}"
    )
  loss = config.loss
  if loss.fad_mode not in diversity.FAD_MODES:
    raise ValueError(
      f"config.loss.fad_mode: expected one of {diversity.FAD_MODES}, got {loss.fad_mode!r}"
    )
  if loss.fad_mode == "count" and not 0 <= loss.fad_t <= config.model.feature_dim:
    raise ValueError(
      f"config.loss.fad_t: expected an int in [0, K={config.model.feature_dim}]"
      f" for fad_mode='count', got {loss.fad_t}"
    )
  if loss.fad_mode == "value" and not loss.fad_value_threshold >= 0:
    raise ValueError(
      f"config.loss.fad_value_threshold: expected >= 0 for fad_mode='value', "
      f"got {loss.fad_value_threshold}"
    )
  if config.occlusion.mode not in ("static", "dynamic"):
    raise ValueError(
      f"config.occlusion.mode: expected 'static' or 'dynamic', got {config.occlusion.mode!r}"
    )
  if config.occlusion.fill not in ("black", "noise"):
    raise ValueError(
      f"config.occlusion.fill: expected 'black' or 'noise', got {config.occlusion.fill!r}"
    )


def variant_flags(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """The (lmf, sad, fad) switches of variant ``name``."""
  if name not in config.variants:
    raise ValueError(f"variant: {name!r} not in config.variants {sorted(config.variants)}")
  return config.variants[name]


def uses_occluded_branch(config: ml_collections.ConfigDict, name: str) -> bool:
  """Whether variant ``name`` runs the occluded branch (always with FAD)."""
  return bool(variant_flags(config, name).fad or config.loss.occluded_branch_without_fad)


def build_network(
  config: ml_collections.ConfigDict, name: str, axis_name: str | None = None
) -> casia_net.CasiaNetHC:
  """The CasiaNetHC of ``config.model`` for variant ``name`` (LMF on or off)."""
  m = config.model
  return casia_net.CasiaNetHC(
    feature_dim=m.feature_dim,
    keep=m.keep if variant_flags(config, name).lmf else None,
    trunk_widths=tuple(m.trunk_widths),
    hc_features=m.hc_features,
    phi_features=m.phi_features if m.phi_features > 0 else None,
    upsample=m.upsample,
    axis_name=axis_name,
    dtype=DTYPES[m.dtype],
  )


def build_classifier(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
  """The K-way classifier shared by both branches (``config.head.kind``).

  'softmax': a dense layer, logits ``W f + b`` (Eq. 3; truncated normal std 0.02);
  'cosine': cosine logits ``cos(f, w_c)`` (:class:`jfr.models.heads.ArcFaceHead`),
  multiplied by ``head.scale`` in the loss.
  """
  if config.head.kind == "softmax":
    return nn.Dense(num_classes, kernel_init=casia_net.new_weight_init())
  return heads.ArcFaceHead(num_classes)
