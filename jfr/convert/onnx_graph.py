"""An IResNet ONNX graph (insightface's releases, torch.onnx exports) -> jfr IResNet variables.

The graph is mapped by its topology, not its node names: starting from the graph input
the walk follows the data path and expects, in order,

1. optional input normalisation: ``Sub``/``Add``/``Mul``/``Div`` nodes with a constant
   operand (insightface's MXNet-converted models carry ``(x - 127.5) * 0.0078125`` and take
   pixels in [0, 255]; graphs without them take ``(x / 255 - 0.5) / 0.5``, i.e. jfr's [-1, 1]);
2. the stem: ``Conv`` 3x3 [-> ``BatchNormalization``] -> ``PRelu``;
3. blocks: ``BatchNormalization`` -> ``Conv`` [-> BN] -> ``PRelu`` -> ``Conv`` [-> BN]
   -> ``Add`` with the block input or with ``Conv`` 1x1 [-> BN] of it; a block whose second
   conv has stride 2 starts a new stage;
4. the output: ``BatchNormalization`` -> ``Flatten``/``Reshape`` -> ``Gemm`` (or ``MatMul``
   [+ ``Add``]) [-> ``BatchNormalization``].

``Identity`` and ``Dropout`` nodes are skipped. A BatchNormalization folded into the
preceding Conv/Gemm (a bias on the conv, as ``torch.onnx.export`` and insightface's
releases do) becomes jfr's BN set to the identity plus that bias (:mod:`jfr.convert.layout`),
so the converted model equals the graph in inference mode; fine-tuning it starts from those
identity BNs. The input normalisation ``x_graph = a * x_pixels + b`` is rewritten for jfr's
input ``x = pixels / 127.5 - 1`` as ``A * x + B`` and ``A`` (per channel) is folded into the
stem's kernel; a non-zero ``B`` cannot be folded exactly into a zero-padded conv and is refused.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jfr.convert import layout
from jfr.convert.arcface_torch import arch_of_depths

SKIPPED = ("Identity", "Dropout")
NORMALISATION = ("Sub", "Add", "Mul", "Div")


class _Graph:
  """Constants, producers and consumers of an ONNX graph's tensors."""

  def __init__(self, model: Any, source: str):
    from onnx import numpy_helper

    graph = model.graph
    self.source = source
    self.consts: dict[str, np.ndarray] = {
      t.name: numpy_helper.to_array(t) for t in graph.initializer
    }
    self.consumers: dict[str, list] = {}
    for node in graph.node:
      if node.op_type == "Constant":
        value = next((a for a in node.attribute if a.name == "value"), None)
        if value is None:
          raise ValueError(f"input: {source}: Constant node {node.name!r} without a tensor value")
        self.consts[node.output[0]] = numpy_helper.to_array(value.t)
        continue
      for name in node.input:
        self.consumers.setdefault(name, []).append(node)
    inputs = [i.name for i in graph.input if i.name not in self.consts]
    if len(inputs) != 1:
      raise ValueError(f"input: {source} has {len(inputs)} data inputs {inputs}, expected 1")
    self.input = inputs[0]
    self.outputs = [o.name for o in graph.output]

  def describe(self, node: Any) -> str:
    return f"{node.op_type} node {node.name!r}"

  def users(self, tensor: str) -> list:
    """Consumers of ``tensor``, looking through Identity/Dropout nodes."""
    out = []
    for node in self.consumers.get(tensor, []):
      if node.op_type in SKIPPED:
        out.extend(self.users(node.output[0]))
      else:
        out.append(node)
    return out

  def only_user(self, tensor: str, ops: tuple[str, ...], where: str) -> Any:
    users = self.users(tensor)
    if len(users) != 1 or users[0].op_type not in ops:
      found = [f"{n.op_type}({n.name})" for n in users] or ["graph output"]
      raise ValueError(
        f"input: {self.source}: unsupported graph at {where}: tensor {tensor!r} should feed one "
        f"{'/'.join(ops)} node, it feeds {found}"
      )
    return users[0]

  def maybe_user(self, tensor: str, op: str) -> Any | None:
    users = self.users(tensor)
    return users[0] if len(users) == 1 and users[0].op_type == op else None

  def const(self, name: str, node: Any, what: str) -> np.ndarray:
    if name not in self.consts:
      raise ValueError(
        f"input: {self.source}: {what} of {self.describe(node)} ({name!r}) is not a constant"
      )
    return np.asarray(self.consts[name], np.float64)


def _attrs(node: Any) -> dict[str, Any]:
  from onnx import helper

  return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _ConvBN:
  """A Conv (OIHW weight, optional bias) and the BatchNormalization after it, if any."""

  def __init__(self, g: _Graph, node: Any, kernel: int):
    a = _attrs(node)
    self.name = node.name
    self.weight = g.const(node.input[1], node, "the weight")
    self.bias = g.const(node.input[2], node, "the bias") if len(node.input) > 2 else None
    self.stride = int(a.get("strides", [1, 1])[0])
    pad = (kernel - 1) // 2
    if self.weight.ndim != 4 or self.weight.shape[2:] != (kernel, kernel):
      raise ValueError(
        f"input: {g.source}: {g.describe(node)} has weight shape {self.weight.shape}, "
        f"expected a {kernel}x{kernel} kernel"
      )
    if (
      a.get("group", 1) != 1
      or list(a.get("dilations", [1, 1])) != [1, 1]
      or list(a.get("pads", [0] * 4)) != [pad] * 4
      or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
      or len(set(a.get("strides", [1, 1]))) != 1
    ):
      raise ValueError(
        f"input: {g.source}: {g.describe(node)} has attributes {a}; IResNet needs group 1, "
        f"no dilation, equal strides and symmetric padding {pad}"
      )
    self.output = node.output[0]
    self.bn = None
    bn = g.maybe_user(self.output, "BatchNormalization")
    if bn is not None:
      self.bn = _bn(g, bn)
      self.output = bn.output[0]

  def flax(self) -> tuple[dict, dict, dict]:
    """``(conv params, bn params, bn stats)`` equal to this conv (+ BN) in inference."""
    c = self.weight.shape[0]
    bias = np.zeros(c) if self.bias is None else self.bias
    if self.bn is None:
      bn_params, bn_stats = layout.identity_batch_norm(bias)
    else:
      scale, beta, mean, var, eps = self.bn
      # BN(conv(x) + bias) = BN'(conv(x)) with mean' = mean - bias.
      bn_params, bn_stats = layout.batch_norm(scale, beta, mean - bias, var, eps)
    return {"kernel": layout.conv_kernel(self.weight)}, bn_params, bn_stats


def _bn(g: _Graph, node: Any) -> tuple[np.ndarray, ...]:
  eps = float(_attrs(node).get("epsilon", 1e-5))
  return tuple(
    g.const(n, node, k) for n, k in zip(node.input[1:5], ("scale", "B", "mean", "var"))
  ) + (eps,)


def _prelu(g: _Graph, tensor: str, channels: int, where: str) -> tuple[np.ndarray, str]:
  node = g.only_user(tensor, ("PRelu",), where)
  slope = g.const(node.input[1], node, "the slope").reshape(-1)
  if slope.size == 1:
    slope = np.full(channels, slope[0])
  if slope.size != channels:
    raise ValueError(
      f"input: {g.source}: {g.describe(node)} has {slope.size} slopes, expected {channels}"
    )
  return slope.astype(np.float32), node.output[0]


def _input_normalisation(g: _Graph) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
  """``(a, b, tensor, ops)``: the graph computes ``a * x_input + b`` (per channel) up to ``tensor``."""
  a, b, tensor, ops = np.ones(3), np.zeros(3), g.input, []
  while True:
    node = g.maybe_user(tensor, "Conv")
    if node is not None:
      return a, b, tensor, ops
    users = g.users(tensor)
    if len(users) != 1 or users[0].op_type not in NORMALISATION:
      found = [f"{n.op_type}({n.name})" for n in users]
      raise ValueError(
        f"input: {g.source}: unsupported graph: the input {g.input!r} should reach the stem Conv "
        f"through Sub/Add/Mul/Div with constants, found {found}"
      )
    node = users[0]
    first = node.input[0] == tensor
    other = node.input[1] if first else node.input[0]
    c = g.const(other, node, "the constant operand").reshape(-1)
    if c.size not in (1, 3):
      raise ValueError(f"input: {g.source}: {g.describe(node)}: constant of {c.size} values")
    if node.op_type == "Add":
      b = b + c
    elif node.op_type == "Sub":
      a, b = (a, b - c) if first else (-a, c - b)
    elif node.op_type == "Mul":
      a, b = a * c, b * c
    elif first:  # Div by a constant
      a, b = a / c, b / c
    else:
      raise ValueError(f"input: {g.source}: {g.describe(node)} divides a constant by the input")
    ops.append(node.op_type)
    tensor = node.output[0]


def _fc(g: _Graph, tensor: str, channels: int) -> tuple[np.ndarray, np.ndarray, str]:
  """``(weight [D, C*h*w], bias [D], output)`` of the Gemm/MatMul after the flatten."""
  node = g.only_user(tensor, ("Gemm", "MatMul"), "the output FC")
  w = g.const(node.input[1], node, "the weight")
  if node.op_type == "Gemm":
    a = _attrs(node)
    if a.get("transA", 0):
      raise ValueError(f"input: {g.source}: {g.describe(node)} has transA=1")
    w = (w if a.get("transB", 0) else w.T) * a.get("alpha", 1.0)
    bias = np.zeros(w.shape[0])
    if len(node.input) > 2:
      bias = np.broadcast_to(g.const(node.input[2], node, "C") * a.get("beta", 1.0), w.shape[:1])
    return w, bias, node.output[0]
  w, out, bias = w.T, node.output[0], np.zeros(w.shape[1])
  add = g.maybe_user(out, "Add")
  if add is not None:
    other = add.input[1] if add.input[0] == out else add.input[0]
    bias, out = g.const(other, add, "the bias").reshape(-1), add.output[0]
  return w, bias, out


def convert_onnx(path: str | os.PathLike) -> layout.ConvertedModel:
  """Maps an IResNet ONNX file to jfr IResNet variables (see the module docstring).

  Raises:
    ValueError: the file cannot be read, or the graph departs from the IResNet layout
      (the message names the node or tensor where it does).
  """
  import onnx

  source = os.fspath(path)
  try:
    model = onnx.load(source)
  except Exception as error:
    raise ValueError(f"input: {source} is not a readable ONNX model ({error})") from error
  g = _Graph(model, source)
  notes: list[str] = []
  a, b, tensor, norm_ops = _input_normalisation(g)
  if norm_ops:  # the graph takes pixels p in [0, 255]; jfr's x = p / 127.5 - 1
    a, b = 127.5 * a, 127.5 * a + b
    notes.append(f"input normalisation {'/'.join(norm_ops)} folded into the stem: x -> {a} x")
  if not np.allclose(b, 0.0, atol=1e-6):
    raise ValueError(
      f"input: {source}: the input normalisation maps jfr's [-1, 1] images to {a} x + {b}; "
      "a non-zero offset cannot be folded exactly into the zero-padded stem conv"
    )
  stem = _ConvBN(g, g.only_user(tensor, ("Conv",), "the stem"), 3)
  stem.weight = stem.weight * a[None, :, None, None]
  f = stem.weight.shape[0]
  params: dict = {}
  stats: dict = {}
  params["conv1"], params["bn1"], stats["bn1"] = stem.flax()
  slope, x = _prelu(g, stem.output, f, "the stem")
  params["prelu"] = {"negative_slope": slope}
  depths, stage, c_in = [], -1, f
  while True:
    bn_node = next((n for n in g.users(x) if n.op_type == "BatchNormalization"), None)
    if bn_node is None:
      raise ValueError(
        f"input: {source}: tensor {x!r} feeds no BatchNormalization (block or output)"
      )
    if g.maybe_user(bn_node.output[0], "Conv") is None:
      break  # the output BN
    conv1 = _ConvBN(g, g.only_user(bn_node.output[0], ("Conv",), f"block after {x!r}"), 3)
    c = conv1.weight.shape[0]
    slope, y = _prelu(g, conv1.output, c, f"block after {x!r}")
    conv2 = _ConvBN(g, g.only_user(y, ("Conv",), f"block after {x!r}"), 3)
    add = g.only_user(conv2.output, ("Add",), f"block after {x!r}")
    other = add.input[1] if add.input[0] == conv2.output else add.input[0]
    if conv2.stride == 2:
      stage += 1
      depths.append(0)
    if stage < 0 or c != f * 2**stage:
      raise ValueError(
        f"input: {source}: block at {conv1.name!r} has {c} filters with stride {conv2.stride}; "
        f"IResNet stage {stage + 1} starts with stride 2 and has {f * 2 ** max(stage, 0)}"
      )
    p, s = {}, {}
    p["bn1"], s["bn1"] = layout.batch_norm(*_bn(g, bn_node))
    p["conv1"], p["bn2"], s["bn2"] = conv1.flax()
    p["prelu"] = {"negative_slope": slope}
    p["conv2"], p["bn3"], s["bn3"] = conv2.flax()
    shortcut = [n for n in g.users(x) if n.op_type == "Conv"]
    if depths[-1] == 0:
      if len(shortcut) != 1:
        raise ValueError(f"input: {source}: first block of stage {stage + 1} has no 1x1 shortcut")
      down = _ConvBN(g, shortcut[0], 1)
      if down.output != other or down.stride != 2:
        raise ValueError(f"input: {source}: shortcut {down.name!r} does not feed {add.name!r}")
      p["downsample_conv"], p["downsample_bn"], s["downsample_bn"] = down.flax()
    elif shortcut or other != x:
      raise ValueError(f"input: {source}: block at {conv1.name!r} should add its input {x!r}")
    name = f"layer{stage + 1}_{depths[-1]}"
    params[name], stats[name] = p, s
    depths[-1] += 1
    c_in, x = c, add.output[0]
  arch = arch_of_depths(tuple(depths))
  if arch is None:
    raise ValueError(
      f"input: {source}: blocks per stage {tuple(depths)} are no arcface_torch iresnet"
    )
  params["bn2"], stats["bn2"] = layout.batch_norm(*_bn(g, bn_node))
  flat = g.only_user(bn_node.output[0], ("Flatten", "Reshape"), "the output flatten")
  w, bias, out = _fc(g, flat.output[0], c_in)
  side = layout.final_map_side(w.shape[1], c_in)
  feat = g.maybe_user(out, "BatchNormalization")
  if feat is not None:
    scale, beta, mean, var, eps = _bn(g, feat)
    if np.allclose(scale, 1.0, atol=1e-6):
      features, features_stats = layout.batch_norm(scale, beta, mean, var, eps)  # bias: in fc
      del features["scale"]
    else:  # fold the BN into the FC: scale*(Wx + bias - mean)/sqrt(var + eps) + beta
      k = scale / np.sqrt(var + eps)
      w, bias = w * k[:, None], (bias - mean) * k + beta
      features, features_stats = layout.identity_batch_norm(np.zeros_like(bias), use_scale=False)
      notes.append("output BatchNormalization with scale != 1 folded into the FC")
    out = feat.output[0]
  else:  # folded into the Gemm already
    features, features_stats = layout.identity_batch_norm(np.zeros_like(bias), use_scale=False)
  params["fc"] = {"kernel": layout.fc_kernel(w, c_in), "bias": layout.f32(bias)}
  params["features"], stats["features"] = features, features_stats
  while out not in g.outputs and [n.op_type for n in g.consumers.get(out, [])] in (
    ["Identity"],
    ["Dropout"],
  ):
    out = g.consumers[out][0].output[0]
  if out not in g.outputs:
    raise ValueError(f"input: {source}: the embedding {out!r} is not a graph output ({g.outputs})")
  converted = layout.ConvertedModel(
    arch=arch,
    num_filters=f,
    embedding_dim=w.shape[0],
    image_size=16 * side,
    variables={"params": params, "batch_stats": stats},
    notes=notes,
  )
  layout.check_variables(converted)
  return converted
