"""Joint facial-attribute prediction and face identification (Taherkhani et al.).

"A Deep Face Identification Network Enhanced by Facial Attributes Prediction",
Sec. 2-4 and Eq. 1-3:

* :class:`VGG19GAP` (net@1): VGG-19's 16 3x3/1 convs (padding 1), BN before each
  ReLU (Sec. 5: "batch normalization after each convolutional and fully connected
  layer before performing non-linearity"), 2x2/2 max pools after the 2nd, 4th, 8th
  and 12th conv, global average pooling (GAP) after the 16th: ``u [B, c]``.
* :class:`MLPHead` (the two branches of net@2): FC(hidden) + BN + ReLU, then FC to
  the logits (4096 hidden units in the paper; ``hidden=0``: one linear layer).
* :class:`AttributeIdentityNet`: net@1 + net@2. The attribute branch (W_{2,1})
  maps u to T attribute logits v (one logit per attribute; the two-way softmax f'
  of Eq. 2 is the sigmoid of that logit, see :mod:`jfr.losses.attributes`). The
  identity branch (W_{2,2}) maps the fused vector to C identity logits (Eq. 3).
  ``mode`` picks the fusion:

  - 'joint' (the paper, "Ours-J" / "PM-Jointly"): ``u ⊗ v`` (Eq. 1,
    :func:`jfr.models.layers.kronecker_fusion`) with v the attribute logits
    *before* the softmax and not detached: Eq. 3 makes g a function of
    W_1, W_{2,2} and f(x; W_1, W_{2,1}), so the identity loss also trains the
    attribute branch and the shared trunk.
  - 'separate' ("Ours-S" / "PM-Separately", "trained ... separately in isolation"):
    two trunks, one per task, no fusion; the identity branch sees only the GAP
    features of its own trunk. Separate networks (rather than one trunk with a
    ``stop_gradient``) are the paper's reading of "in isolation": neither task's
    loss reaches any weight of the other, the trunk included.
  - 'concat' (ablation): ``[u, v]`` instead of ``u ⊗ v``, v not detached.

* Class activation maps of the attribute branch (Fig. 4, after Zhou et al.'s CAM):
  :func:`attribute_cam`, :func:`attribute_gradient_weights` and
  :func:`attribute_maps`. The branch is GAP -> FC -> BN -> ReLU -> FC, so Zhou's
  CAM (which needs the logit to be linear in the GAP features) is exact only with
  ``attribute_hidden=0``. In general we use Grad-CAM weights: the weight of channel
  k for attribute t is ``∂z_t/∂u_k`` (Grad-CAM's ``α = mean_ij ∂z_t/∂A_ijk`` equals
  ``∂z_t/∂u_k / (h·w)``; the constant ``1/(h·w)`` is dropped). For a linear branch
  ``∂z_t/∂u_k = W_kt``, so the same code gives Zhou's CAM exactly:
  ``mean_ij M_t = z_t - b_t``.

``axis_name`` is the BatchNorm cross-device axis ('batch' under pmap, else None);
``dtype`` the computation dtype (parameters and outputs stay float32).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jfr.models import layers, resnet

MODES = ("joint", "separate", "concat")
PAPER_WIDTHS = (64, 128, 256, 512, 512)
# Convs per VGG-19 group; a 2x2/2 max pool follows groups 1-4 (after convs 2, 4, 8, 12).
VGG19_GROUPS = (2, 2, 4, 4, 4)


def _check_widths(widths: Sequence[int]) -> None:
  if len(widths) != len(VGG19_GROUPS) or min(widths) < 1:
    raise ValueError(f"widths: expected 5 positive ints (the VGG-19 groups), got {widths}")


def _norm(train: bool, axis_name: str | None, dtype: Any, name: str) -> nn.Module:
  return nn.BatchNorm(
    use_running_average=not train,
    momentum=0.9,
    epsilon=1e-5,
    dtype=dtype,
    axis_name=axis_name,
    name=name,
  )


class VGG19GAP(nn.Module):
  """net@1: VGG-19 convs with BN and a final GAP, ``[B, H, W, 3] -> u [B, widths[-1]]``.

  Param paths ``conv{g}_{i}`` / ``bn{g}_{i}`` (group g = 1..5, conv i within it).

  Attributes:
    widths: output channels of the 5 groups (paper, VGG-19: 64, 128, 256, 512, 512).
    axis_name: BatchNorm cross-device axis ('batch' under pmap, else None).
    dtype: computation dtype.
  """

  widths: Sequence[int] = (16, 32, 64, 128, 128)
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    _check_widths(self.widths)
    super().__post_init__()

  @nn.compact
  def __call__(
    self, images: jax.Array, train: bool = True, return_conv_map: bool = False
  ) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Computes the GAP features u.

    Args:
      images: ``[B, H, W, 3]`` in [-1, 1]; H and W multiples of 16 (four 2x2 pools).
      train: batch statistics (True) or running averages (False) in BatchNorm.
      return_conv_map: also return the 16th conv's activation map.

    Returns:
      ``u [B, c]`` float32, or ``(u, conv_map [B, H/16, W/16, c])``.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"images: expected [B, H, W, 3], got shape {images.shape}")
    if images.shape[1] % 16 or images.shape[2] % 16:
      raise ValueError(
        f"images: H and W must be multiples of 16; got {images.shape[1]}x{images.shape[2]}"
      )
    x = images.astype(self.dtype)
    for group, (num_convs, width) in enumerate(zip(VGG19_GROUPS, self.widths), start=1):
      for i in range(1, num_convs + 1):
        x = nn.Conv(
          width,
          (3, 3),
          padding=1,
          use_bias=False,
          dtype=self.dtype,
          kernel_init=resnet.conv_kernel_init(),
          name=f"conv{group}_{i}",
        )(x)
        x = nn.relu(_norm(train, self.axis_name, self.dtype, f"bn{group}_{i}")(x))
      if group < len(VGG19_GROUPS):
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    conv_map = x.astype(jnp.float32)
    features = conv_map.mean(axis=(1, 2))
    return (features, conv_map) if return_conv_map else features


class MLPHead(nn.Module):
  """One branch of net@2: FC(hidden) -> BN -> ReLU -> FC(outputs); hidden=0: FC(outputs).

  Param paths ``hidden``, ``hidden_bn`` (absent when hidden=0) and ``logits``.

  Attributes:
    hidden: units of the first FC layer (4096 in the paper); 0 for a linear head.
    outputs: number of logits.
    axis_name: BatchNorm cross-device axis.
    dtype: computation dtype.
  """

  hidden: int
  outputs: int
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
    """``x [B, D]`` -> ``(logits [B, outputs], pre-classifier features)``, float32.

    The features are the hidden activations ``[B, hidden]``, or ``x`` itself when
    ``hidden=0``.
    """
    if self.hidden:
      x = nn.Dense(self.hidden, use_bias=False, dtype=self.dtype, name="hidden")(x)
      x = nn.relu(_norm(train, self.axis_name, self.dtype, "hidden_bn")(x))
    logits = nn.Dense(self.outputs, dtype=self.dtype, name="logits")(x)
    return logits.astype(jnp.float32), x.astype(jnp.float32)


class AttributeIdentityNet(nn.Module):
  """net@1 + net@2 with attribute-identity fusion (see the module docstring).

  Param paths: ``trunk`` (net@1, W_1; in 'separate' mode the attribute network's
  trunk), ``identity_trunk`` ('separate' only), ``attribute_head`` (W_{2,1}),
  ``identity_head`` (W_{2,2}).

  Attributes:
    num_attributes: T >= 1.
    num_classes: C >= 1 identities.
    mode: 'joint', 'separate' or 'concat'.
    widths: VGG19GAP group widths (paper: :data:`PAPER_WIDTHS`).
    attribute_hidden: units of the attribute branch's first FC (4096; 0: linear).
    identity_hidden: units of the identity branch's first FC (4096; 0: linear).
    axis_name: BatchNorm cross-device axis ('batch' under pmap, else None).
    dtype: computation dtype.
  """

  num_attributes: int
  num_classes: int
  mode: str = "joint"
  widths: Sequence[int] = (16, 32, 64, 128, 128)
  attribute_hidden: int = 256
  identity_hidden: int = 256
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    for name in ("num_attributes", "num_classes"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    if self.mode not in MODES:
      raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
    for name in ("attribute_hidden", "identity_hidden"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")
    _check_widths(self.widths)
    super().__post_init__()

  def setup(self) -> None:
    trunk = functools.partial(
      VGG19GAP, widths=self.widths, axis_name=self.axis_name, dtype=self.dtype
    )
    self.trunk = trunk()
    if self.mode == "separate":
      self.identity_trunk = trunk()
    self.attribute_head = MLPHead(
      self.attribute_hidden, self.num_attributes, axis_name=self.axis_name, dtype=self.dtype
    )
    self.identity_head = MLPHead(
      self.identity_hidden, self.num_classes, axis_name=self.axis_name, dtype=self.dtype
    )

  def __call__(
    self, images: jax.Array, train: bool = True, return_conv_map: bool = False
  ) -> dict[str, jax.Array]:
    """Predicts attributes (Eq. 2's f) and identities (Eq. 3's g).

    Args:
      images: ``[B, H, W, 3]`` in [-1, 1]; H and W multiples of 16.
      train: batch statistics (True) or running averages (False) in BatchNorm.
      return_conv_map: also return ``conv_map``, the last conv map of ``trunk``.

    Returns:
      A dict of float32 arrays: ``attribute_logits [B, T]``, ``identity_logits [B, C]``,
      ``features`` (identity branch's pre-classifier features: ``[B, identity_hidden]``,
      or the fused vector when identity_hidden=0), ``attribute_features`` (u fed to
      the attribute branch, ``[B, c]``), ``fused`` (the identity branch's input:
      ``[B, c·T]`` joint, ``[B, c + T]`` concat, ``[B, c]`` separate) and, on
      request, ``conv_map [B, H/16, W/16, c]`` (``mean_ij conv_map = attribute_features``).
    """
    face, conv_map = self.trunk(images, train, return_conv_map=True)
    attribute_logits, _ = self.attribute_head(face, train)
    if self.mode == "joint":
      fused = layers.kronecker_fusion(face, attribute_logits)
    elif self.mode == "concat":
      fused = jnp.concatenate([face, attribute_logits], axis=-1)
    else:
      fused = self.identity_trunk(images, train)
    identity_logits, features = self.identity_head(fused, train)
    outputs = {
      "attribute_logits": attribute_logits,
      "identity_logits": identity_logits,
      "features": features,
      "attribute_features": face,
      "fused": fused,
    }
    if return_conv_map:
      outputs["conv_map"] = conv_map
    return outputs

  def attribute_logits_from_features(self, features: jax.Array, train: bool = False) -> jax.Array:
    """The attribute branch alone: GAP features u ``[B, c]`` -> logits ``[B, T]``.

    Use with ``model.apply(variables, u, method='attribute_logits_from_features')``.
    """
    return self.attribute_head(features, train)[0]


def attribute_cam(
  conv_map: jax.Array, attribute_weights: jax.Array, rectify: bool = True
) -> jax.Array:
  """Class activation maps of the attributes: ``M_t(i, j) = Σ_k w_kt A_ijk``.

  Zhou et al.'s CAM when ``attribute_weights`` is the kernel ``[c, T]`` of a linear
  attribute branch on GAP features; Grad-CAM-style maps when it is the per-example
  gradient ``∂z_t/∂u_k`` ``[B, c, T]`` from :func:`attribute_gradient_weights`.

  Args:
    conv_map: A, the last conv map ``[B, h, w, c]`` (GAP of it is u).
    attribute_weights: ``[c, T]`` (shared) or ``[B, c, T]`` (per example).
    rectify: apply ReLU (keep the positive evidence for each attribute, as Grad-CAM).

  Returns:
    ``[B, h, w, T]`` maps at the conv map's resolution (not normalised).
  """
  if conv_map.ndim != 4:
    raise ValueError(f"conv_map: expected [B, h, w, c], got shape {conv_map.shape}")
  batch, channels = conv_map.shape[0], conv_map.shape[-1]
  if attribute_weights.ndim == 2:
    attribute_weights = jnp.broadcast_to(attribute_weights, (batch, *attribute_weights.shape))
  if attribute_weights.ndim != 3 or attribute_weights.shape[:2] != (batch, channels):
    raise ValueError(
      f"attribute_weights: expected [c, T] or [B, c, T] with B = {batch}, "
      f"c = {channels}; got shape {attribute_weights.shape}"
    )
  maps = jnp.einsum("bhwc,bct->bhwt", conv_map, attribute_weights)
  return nn.relu(maps) if rectify else maps


def attribute_gradient_weights(
  head_fn: Callable[[jax.Array], jax.Array], features: jax.Array
) -> jax.Array:
  """Per-example Jacobian ``∂z_t/∂u_k`` of the attribute logits w.r.t. the GAP features.

  Args:
    head_fn: ``u [B, c] -> logits [B, T]``, acting on each example independently
      (BatchNorm in inference mode).
    features: u, ``[B, c]``.

  Returns:
    ``[B, c, T]``; equal to the branch's kernel for a linear branch.
  """
  if features.ndim != 2:
    raise ValueError(f"features: expected [B, c], got shape {features.shape}")
  jacobian = jax.vmap(jax.jacrev(lambda u: head_fn(u[None])[0]))(features)  # [B, T, c]
  return jnp.swapaxes(jacobian, 1, 2)


def attribute_maps(
  model: AttributeIdentityNet, variables: Mapping[str, Any], images: jax.Array, rectify: bool = True
) -> jax.Array:
  """Attribute activation maps of a trained model, ``[B, h, w, T]`` (inference mode).

  Runs the model with ``return_conv_map=True`` and combines the conv map with the
  gradient weights of the attribute branch (:func:`attribute_cam`); exact CAM when
  ``model.attribute_hidden == 0``.

  Args:
    model: the network.
    variables: its ``{'params', 'batch_stats'}``.
    images: ``[B, H, W, 3]`` in [-1, 1].
    rectify: apply ReLU to the maps.

  Returns:
    ``[B, H/16, W/16, T]`` maps (upsample to the image for display or part masks).
  """
  outputs = model.apply(variables, images, train=False, return_conv_map=True)
  head_fn = functools.partial(
    model.apply, variables, train=False, method="attribute_logits_from_features"
  )
  weights = attribute_gradient_weights(head_fn, outputs["attribute_features"])
  return attribute_cam(outputs["conv_map"], weights, rectify)
