"""Tests for jfr.convert: .pth without torch, arcface_torch and ONNX mapping, converted runs.

References come from the source frameworks, never from jfr: the committed fixture
``fixtures/iresnet_r18_narrow.pth`` + its embeddings were written by PyTorch
(``fixtures/make_iresnet_pth.py``), and the ONNX graphs are written below by a small writer
that follows the published graph layouts (torch.onnx's unfused export; insightface's
releases with BatchNorm folded into Conv/Gemm and Sub/Mul input normalisation) and are run by
onnxruntime.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jfr.convert import arcface_torch, onnx_graph, torch_pickle

FIXTURES = Path(__file__).parent / "fixtures"
PTH = FIXTURES / "iresnet_r18_narrow.pth"
REFERENCE = FIXTURES / "iresnet_r18_narrow_reference.npz"
DEPTHS, F, D, SIZE = (2, 2, 2, 2), 4, 16, 32


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)))


def embed(model, images_uint8: np.ndarray) -> np.ndarray:
  x = jnp.asarray((images_uint8 / 255.0 - 0.5) / 0.5, jnp.float32)
  return np.asarray(model.module().apply(model.variables, x, train=False))


# ---------------------------------------------------------------- .pth reading


def test_pth_fixture_equals_pytorch_embeddings():
  state = torch_pickle.load_state_dict(PTH)
  assert state["conv1.weight"].shape == (F, 3, 3, 3) and state["conv1.weight"].dtype == np.float32
  model = arcface_torch.convert_state_dict(state, "r18")
  assert (model.arch, model.num_filters, model.embedding_dim, model.image_size) == ("r18", F, D, 32)
  ref = np.load(REFERENCE)
  assert relative_error(embed(model, ref["images"]), ref["embeddings"]) < 1e-4


def _zip_with_pickle(payload: bytes, storages: dict[str, bytes] | None = None) -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as z:
    z.writestr("archive/data.pkl", payload)
    for key, raw in (storages or {}).items():
      z.writestr(f"archive/data/{key}", raw)
  return buffer.getvalue()


class _Exploit:
  def __reduce__(self):
    return (os.system, ("echo should-never-run",))


def test_pth_refuses_other_globals_before_calling_them(tmp_path):
  path = tmp_path / "evil.pth"
  path.write_bytes(_zip_with_pickle(pickle.dumps({"w": _Exploit()}, protocol=2)))
  with pytest.raises(torch_pickle.UnsafePickleError, match="system"):
    torch_pickle.load_state_dict(path)


def test_pth_truncated_storage_and_non_zip_are_clear_errors(tmp_path):
  # A state dict {'w': float32 tensor of 4} whose storage holds only 2 floats.
  with zipfile.ZipFile(PTH) as z:
    pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
    items = {n: z.read(n) for n in z.namelist()}
  prefix = pkl[: -len("data.pkl")]
  key = next(n for n in items if n.startswith(prefix + "data/"))
  broken = tmp_path / "truncated.pth"
  with zipfile.ZipFile(broken, "w") as z:
    for name, raw in items.items():
      z.writestr(name, raw[:4] if name == key else raw)
  with pytest.raises(ValueError, match="storage .* holds 4 bytes"):
    torch_pickle.load_state_dict(broken)
  text = tmp_path / "not_a_zip.pth"
  text.write_bytes(b"\x80\x02legacy pickle")
  with pytest.raises(ValueError, match="not a zip-format torch.save"):
    torch_pickle.load_state_dict(text)


# ---------------------------------------------------------------- arcface_torch mapping


def random_state(rng: np.random.Generator) -> dict[str, np.ndarray]:
  """A narrow arcface_torch iresnet18 state dict (its key names and shapes) of random values."""
  s: dict[str, np.ndarray] = {}

  def bn(name, c, weight=None):
    s[f"{name}.weight"] = rng.normal(1.0, 0.2, c) if weight is None else weight
    s[f"{name}.bias"] = rng.normal(0.0, 0.2, c)
    s[f"{name}.running_mean"] = rng.normal(0.0, 0.2, c)
    s[f"{name}.running_var"] = rng.uniform(0.5, 2.0, c)
    s[f"{name}.num_batches_tracked"] = np.array(7)

  def conv(name, c_out, c_in, k):
    s[name] = rng.normal(0, np.sqrt(2.0 / (c_in * k * k)), (c_out, c_in, k, k))

  conv("conv1.weight", F, 3, 3)
  bn("bn1", F)
  s["prelu.weight"] = rng.uniform(0.05, 0.5, F)
  c_in = F
  for st, depth in enumerate(DEPTHS):
    c = F * 2**st
    for i in range(depth):
      p = f"layer{st + 1}.{i}"
      bn(f"{p}.bn1", c_in)
      conv(f"{p}.conv1.weight", c, c_in, 3)
      bn(f"{p}.bn2", c)
      s[f"{p}.prelu.weight"] = rng.uniform(0.05, 0.5, c)
      conv(f"{p}.conv2.weight", c, c, 3)
      bn(f"{p}.bn3", c)
      if i == 0:
        conv(f"{p}.downsample.0.weight", c, c_in, 1)
        bn(f"{p}.downsample.1", c)
      c_in = c
  bn("bn2", c_in)
  side = SIZE // 16
  s["fc.weight"] = rng.normal(0, 1 / np.sqrt(c_in * side * side), (D, c_in * side * side))
  s["fc.bias"] = rng.normal(0, 0.1, D)
  bn("features", D, weight=np.ones(D))
  return {k: np.asarray(v, np.float32 if v.dtype.kind == "f" else v.dtype) for k, v in s.items()}


def test_state_dict_errors_name_the_tensor():
  state = random_state(np.random.default_rng(0))
  missing = {k: v for k, v in state.items() if k != "layer3.1.conv2.weight"}
  with pytest.raises(ValueError, match="'layer3.1.conv2.weight'"):
    arcface_torch.convert_state_dict(missing)
  wrong = dict(state, **{"layer2.0.bn2.running_var": np.ones(5, np.float32)})
  with pytest.raises(ValueError, match=r"'layer2.0.bn2.running_var'.*\(5,\).*\(8,\)"):
    arcface_torch.convert_state_dict(wrong)
  with pytest.raises(ValueError, match=r"arch='r50'.*\(3, 4, 14, 3\).*\(2, 2, 2, 2\).*'r18'"):
    arcface_torch.convert_state_dict(state, "r50")
  extra = dict(state, **{"head.weight": np.ones(3, np.float32)})
  with pytest.raises(ValueError, match="head.weight"):
    arcface_torch.convert_state_dict(extra)
  ddp = {f"module.{k}": v for k, v in state.items()}
  assert arcface_torch.convert_state_dict(ddp).arch == "r18"


# ---------------------------------------------------------------- ONNX


def onnx_graph_of(state: dict[str, np.ndarray], fused: bool) -> bytes:
  """Writes the IResNet of ``state`` as an ONNX graph (NCHW).

  ``fused=False``: as ``torch.onnx.export`` without optimisation: Conv (no bias) +
  BatchNormalization nodes, Flatten, an Identity, Gemm(transB) + BatchNormalization.
  ``fused=True``: as insightface's releases: input pixels in [0, 255] normalised by
  Sub(127.5) and Mul(1/128) nodes, BatchNorm folded into every Conv that precedes it and
  into the Gemm (pre-conv BatchNorms stay, with MXNet's eps 2e-5), a Reshape flatten and an
  Identity before the output.
  """
  from onnx import TensorProto, helper, numpy_helper

  nodes, inits = [], []
  count = [0]

  def name(kind):
    count[0] += 1
    return f"{kind}_{count[0]}"

  def const(value):
    n = name("const")
    inits.append(numpy_helper.from_array(np.asarray(value, np.float32), n))
    return n

  def node(op, inputs, **attrs):
    out = name(op.lower())
    nodes.append(helper.make_node(op, inputs, [out], name=name(op), **attrs))
    return out

  def bn(x, p, eps=1e-5):
    var = state[f"{p}.running_var"] + 1e-5 - eps  # same function with another eps
    args = [state[f"{p}.weight"], state[f"{p}.bias"], state[f"{p}.running_mean"], var]
    return node("BatchNormalization", [x] + [const(a) for a in args], epsilon=eps)

  def conv_bn(x, w, p, stride, pad):
    w = state[w]
    if not fused:
      conv = node("Conv", [x, const(w)], strides=[stride] * 2, pads=[pad] * 4)
      return bn(conv, p)
    k = state[f"{p}.weight"] / np.sqrt(state[f"{p}.running_var"] + 1e-5)
    b = state[f"{p}.bias"] - state[f"{p}.running_mean"] * k
    return node(
      "Conv", [x, const(w * k[:, None, None, None]), const(b)], strides=[stride] * 2, pads=[pad] * 4
    )

  def prelu(x, p):
    return node("PRelu", [x, const(state[p].reshape(-1, 1, 1))])

  x = "images"
  if fused:
    x = node("Mul", [node("Sub", [x, const(127.5)]), const(0.0078125)])
  x = prelu(conv_bn(x, "conv1.weight", "bn1", 1, 1), "prelu.weight")
  pre_eps = 2e-5 if fused else 1e-5
  for st, depth in enumerate(DEPTHS):
    for i in range(depth):
      p = f"layer{st + 1}.{i}"
      y = conv_bn(bn(x, f"{p}.bn1", pre_eps), f"{p}.conv1.weight", f"{p}.bn2", 1, 1)
      y = conv_bn(
        prelu(y, f"{p}.prelu.weight"), f"{p}.conv2.weight", f"{p}.bn3", 2 if i == 0 else 1, 1
      )
      short = x
      if i == 0:
        short = conv_bn(x, f"{p}.downsample.0.weight", f"{p}.downsample.1", 2, 0)
      x = node("Add", [y, short])
  x = bn(x, "bn2", pre_eps)
  if fused:
    x = node("Reshape", [x, numpy_const_int(inits, name("shape"), [0, -1])])
  else:
    x = node("Identity", [node("Flatten", [x], axis=1)])
  w, b = state["fc.weight"], state["fc.bias"]
  if fused:
    k = state["features.weight"] / np.sqrt(state["features.running_var"] + 1e-5)
    w, b = w * k[:, None], (b - state["features.running_mean"]) * k + state["features.bias"]
  x = node("Gemm", [x, const(w), const(b)], transB=1)
  x = node("Identity", [x]) if fused else bn(x, "features")
  graph = helper.make_graph(
    nodes,
    "iresnet",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
    [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", D])],
    inits,
  )
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
  model.ir_version = 8
  return model.SerializeToString()


def numpy_const_int(inits, n, values):
  from onnx import numpy_helper

  inits.append(numpy_helper.from_array(np.asarray(values, np.int64), n))
  return n


def run_onnxruntime(graph: bytes, x_nchw: np.ndarray) -> np.ndarray:
  import onnxruntime

  session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
  return session.run(None, {"images": x_nchw.astype(np.float32)})[0]


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "bn_folded_sub_mul"])
def test_onnx_equals_onnxruntime(tmp_path, fused):
  pytest.importorskip("onnxruntime")
  state = random_state(np.random.default_rng(1))
  path = tmp_path / "model.onnx"
  path.write_bytes(onnx_graph_of(state, fused))
  images = np.random.default_rng(2).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
  nchw = images.transpose(0, 3, 1, 2).astype(np.float32)
  ref = run_onnxruntime(path.read_bytes(), nchw if fused else (nchw / 255.0 - 0.5) / 0.5)
  model = onnx_graph.convert_onnx(path)
  assert (model.arch, model.num_filters, model.embedding_dim, model.image_size) == ("r18", F, D, 32)
  assert relative_error(embed(model, images), ref) < 1e-4
  if not fused:  # the arcface_torch mapping of the same weights agrees with onnxruntime too
    assert relative_error(embed(arcface_torch.convert_state_dict(state), images), ref) < 1e-4


def test_onnx_errors_name_the_node(tmp_path):
  import onnx

  state = random_state(np.random.default_rng(3))
  model = onnx.load_from_string(onnx_graph_of(state, fused=False))
  prelu = next(n for n in model.graph.node if n.op_type == "PRelu" and n is not model.graph.node[2])
  prelu.op_type = "Relu"
  del prelu.input[1]
  path = tmp_path / "relu.onnx"
  onnx.save(model, path)
  with pytest.raises(ValueError, match="PRelu"):
    onnx_graph.convert_onnx(path)
  offset = onnx.load_from_string(onnx_graph_of(state, fused=True))
  sub = next(n for n in offset.graph.node if n.op_type == "Sub")
  init = next(i for i in offset.graph.initializer if i.name == sub.input[1])
  init.CopyFrom(onnx.numpy_helper.from_array(np.asarray(100.0, np.float32), init.name))
  onnx.save(offset, tmp_path / "offset.onnx")
  with pytest.raises(ValueError, match="non-zero offset"):
    onnx_graph.convert_onnx(tmp_path / "offset.onnx")
  (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
  with pytest.raises(ValueError, match="junk.onnx"):
    onnx_graph.convert_onnx(tmp_path / "junk.onnx")


# ---------------------------------------------------------------- converted runs


@pytest.mark.slow
def test_converted_run_loads_like_a_trained_baseline(tmp_path):
  from configs import baseline

  from jfr import convert, workdir
  from jfr.methods import registry

  base = baseline.get_config("tiny")  # 32 px synthetic_faces/tiny (not rendered: only its facts)
  run = tmp_path / "run"
  convert.convert("arcface_torch", PTH, run, arch="r18", base_config=base, argv=["convert"])
  with pytest.raises(ValueError, match="already holds checkpoints"):
    convert.convert("arcface_torch", PTH, run, base_config=base)
  config = workdir.load_run_config_dict(run)
  assert config.model.name == "iresnet" and config.model.arch == "r18"
  assert workdir.read_data_facts(run)["image_size"] == 32
  model, _ = registry.load_eval_model(str(run), batch_size=4)  # what jfr.infer / evaluators use
  ref = np.load(REFERENCE)
  assert relative_error(model.embed(ref["images"]), ref["embeddings"]) < 1e-4
  # an insightface-style ONNX graph goes the same way
  state = random_state(np.random.default_rng(4))
  graph = tmp_path / "model.onnx"
  graph.write_bytes(onnx_graph_of(state, fused=True))
  convert.convert("onnx", graph, tmp_path / "onnx_run", base_config=base, argv=["convert"])
  model, _ = registry.load_eval_model(str(tmp_path / "onnx_run"), batch_size=4)
  pixels = ref["images"].transpose(0, 3, 1, 2).astype(np.float32)
  assert (
    relative_error(model.embed(ref["images"]), run_onnxruntime(graph.read_bytes(), pixels)) < 1e-4
  )
  big = baseline.get_config("paper")  # 112 px data: the 32 px model does not fit
  with pytest.raises(ValueError, match="112 px images, but the converted model takes 32 px"):
    convert.convert("arcface_torch", PTH, tmp_path / "other", base_config=big)
