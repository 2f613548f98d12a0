"""PyTorch/ONNX (NCHW) tensors -> the Flax variables of :class:`jfr.models.iresnet.IResNet`.

Conventions mapped here, shared by the arcface_torch and ONNX converters:

* conv weights ``[C_out, C_in, kh, kw]`` (OIHW) -> Flax kernels ``[kh, kw, C_in, C_out]`` (HWIO);
* the FC after the flatten: PyTorch flattens the ``[C, h, w]`` map in (c, h, w) order,
  Flax the ``[h, w, C]`` map in (h, w, c) order, so the weight ``[D, C*h*w]`` becomes
  ``[h*w*C, D]`` by ``reshape(D, C, h, w).transpose(2, 3, 1, 0)``;
* BatchNorm ``(weight, bias, running_mean, running_var, eps)`` -> params
  ``{scale, bias}`` and batch_stats ``{mean, var}``; a source ``eps`` other than jfr's
  1e-5 is absorbed exactly into the variance: ``var' = var + eps - 1e-5``;
* a BatchNorm that was folded away (into a conv or FC bias) becomes the exact identity
  plus that bias: ``mean = 0``, ``var = 1 - 1e-5``, ``scale = 1``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jfr.models import iresnet

EPS = iresnet.BN_EPSILON


@dataclasses.dataclass
class ConvertedModel:
  """A converted recognizer: Flax variables and what the model config needs.

  Attributes:
    arch: 'r18' ... 'r200' (see :data:`jfr.models.iresnet.ARCHS`).
    num_filters: filters of the first stage (64 in released models).
    embedding_dim: D.
    image_size: input side in pixels, fixed by the FC (16 x the final map's side).
    variables: ``{'params': ..., 'batch_stats': ...}`` of float32 NumPy arrays.
    notes: what the conversion did that a user may want to know (folded layers, ...).
  """

  arch: str
  num_filters: int
  embedding_dim: int
  image_size: int
  variables: dict[str, Any]
  notes: list[str] = dataclasses.field(default_factory=list)

  def model_config(self) -> ml_collections.ConfigDict:
    """The ``config.model`` block of this recognizer."""
    from jfr.train import config_blocks

    return config_blocks.iresnet(self.arch, self.num_filters, self.embedding_dim)

  def module(self, axis_name: str | None = None) -> iresnet.IResNet:
    """The Flax module the variables belong to."""
    return iresnet.from_config(self.model_config(), axis_name)


def f32(x: np.ndarray) -> np.ndarray:
  return np.asarray(x, np.float32)


def conv_kernel(weight: np.ndarray) -> np.ndarray:
  """OIHW ``[C_out, C_in, kh, kw]`` -> HWIO ``[kh, kw, C_in, C_out]``."""
  return f32(weight).transpose(2, 3, 1, 0)


def batch_norm(
  scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float = EPS
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """``(params, batch_stats)`` of a Flax BatchNorm equal to the source one (eps absorbed)."""
  return (
    {"scale": f32(scale), "bias": f32(bias)},
    {"mean": f32(mean), "var": f32(np.asarray(var, np.float64) + eps - EPS)},
  )


def identity_batch_norm(
  bias: np.ndarray, use_scale: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """A Flax BatchNorm (inference) computing ``y = x + bias``: mean 0, var 1 - eps, scale 1."""
  n = bias.shape[0]
  params = {"bias": f32(bias)}
  if use_scale:
    params["scale"] = np.ones(n, np.float32)
  return params, {"mean": np.zeros(n, np.float32), "var": np.full(n, 1.0 - EPS, np.float32)}


def fc_kernel(weight: np.ndarray, channels: int) -> np.ndarray:
  """``[D, C*h*w]`` (PyTorch flatten order c, h, w) -> Flax ``[h*w*C, D]`` (order h, w, c)."""
  d, n = weight.shape
  side = final_map_side(n, channels)
  return f32(weight).reshape(d, channels, side, side).transpose(2, 3, 1, 0).reshape(n, d)


def final_map_side(fc_inputs: int, channels: int) -> int:
  """Side of the final feature map from the FC's input count (``C * side**2``)."""
  side = int(round(np.sqrt(fc_inputs / channels)))
  if side < 1 or side * side * channels != fc_inputs:
    raise ValueError(
      f"fc: {fc_inputs} inputs are not {channels} channels times a square feature map"
    )
  return side


def check_variables(model: ConvertedModel) -> None:
  """Raises ``ValueError`` naming every array whose path or shape differs from the module's."""
  module = model.module()
  size = model.image_size
  expected = jax.eval_shape(
    lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False)
  )
  want = {jax.tree_util.keystr(p): tuple(v.shape) for p, v in _leaves(expected)}
  have = {jax.tree_util.keystr(p): tuple(np.shape(v)) for p, v in _leaves(model.variables)}
  problems = [f"{k} is missing (expected shape {want[k]})" for k in sorted(set(want) - set(have))]
  problems += [f"{k} is not a parameter of the model" for k in sorted(set(have) - set(want))]
  problems += [
    f"{k} has shape {have[k]}, expected {want[k]}"
    for k in sorted(set(want) & set(have))
    if want[k] != have[k]
  ]
  if problems:
    raise ValueError(
      f"converted variables do not fit iresnet {model.arch} (F={model.num_filters}, "
      f"D={model.embedding_dim}, {size} px):\n  " + "\n  ".join(problems[:20])
    )


def _leaves(tree: Any) -> list:
  return jax.tree_util.tree_flatten_with_path(tree)[0]
