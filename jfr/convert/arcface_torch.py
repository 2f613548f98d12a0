"""arcface_torch ``backbone.pth`` (an ``iresnet*`` state dict) -> jfr IResNet variables.

arcface_torch (insightface/recognition/arcface_torch) saves ``backbone.state_dict()``
with keys ``conv1.weight``, ``bn1.*``, ``prelu.weight``, ``layer{s}.{i}.{bn1,conv1,bn2,
prelu,conv2,bn3}.*``, ``layer{s}.{i}.downsample.{0,1}.*`` (1x1 conv, BN), ``bn2.*``,
``fc.{weight,bias}``, ``features.*`` (BatchNorm1d, weight frozen at 1); ``module.``
prefixes of DistributedDataParallel are stripped. Each tensor maps to one Flax variable
(layouts: :mod:`jfr.convert.layout`); every expected tensor must be present with the
shape the architecture needs, and no other tensor may be left over, else ``ValueError``
names it. ``num_batches_tracked`` counters are ignored.
"""

from __future__ import annotations

import re

import numpy as np

from jfr.convert import layout
from jfr.models import iresnet


def _strip_prefixes(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  out = {}
  for name, value in state.items():
    while name.startswith("module."):
      name = name[len("module.") :]
    if not name.endswith("num_batches_tracked"):
      out[name] = value
  return out


def stage_depths(state: dict[str, np.ndarray]) -> tuple[int, ...]:
  """Blocks per stage found in the state dict (``layer{s}.{i}.conv1.weight`` keys)."""
  depths = [0, 0, 0, 0]
  for name in state:
    match = re.fullmatch(r"layer([1-4])\.(\d+)\.conv1\.weight", name)
    if match:
      stage, index = int(match.group(1)) - 1, int(match.group(2))
      depths[stage] = max(depths[stage], index + 1)
  return tuple(depths)


def arch_of_depths(depths: tuple[int, ...]) -> str | None:
  """The arcface_torch arch name with these blocks per stage, or None."""
  return next((name for name, d in iresnet.ARCHS.items() if d == tuple(depths)), None)


class _Tensors:
  """Takes named tensors out of a state dict, checking each one's shape."""

  def __init__(self, state: dict[str, np.ndarray], arch: str, source: str):
    self._state, self._arch, self._source = dict(state), arch, source

  def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in self._state:
      raise ValueError(
        f"input: {self._source} has no tensor {name!r} (needed by iresnet {self._arch})"
      )
    value = self._state.pop(name)
    if tuple(value.shape) != tuple(shape):
      raise ValueError(
        f"input: tensor {name!r} of {self._source} has shape {tuple(value.shape)}, "
        f"iresnet {self._arch} needs {tuple(shape)}"
      )
    return np.asarray(value, np.float32)

  def batch_norm(self, name: str, channels: int) -> tuple[dict, dict]:
    return layout.batch_norm(
      *(
        self.take(f"{name}.{k}", (channels,))
        for k in ("weight", "bias", "running_mean", "running_var")
      )
    )

  def leftover(self) -> list[str]:
    return sorted(self._state)


def convert_state_dict(
  state: dict[str, np.ndarray], arch: str | None = None, source: str = "the state dict"
) -> layout.ConvertedModel:
  """Maps an arcface_torch iresnet state dict to jfr IResNet variables.

  Args:
    state: ``{name: array}`` (e.g. from :func:`jfr.convert.torch_pickle.load_state_dict`).
    arch: 'r18' ... 'r200', checked against the blocks per stage found; None infers it.
    source: what to call the input in error messages (its path).

  Returns:
    The :class:`~jfr.convert.layout.ConvertedModel` (input side from the FC's size).

  Raises:
    ValueError: unknown/mismatched ``arch``, a missing, mis-shaped or unexpected tensor.
  """
  state = _strip_prefixes(state)
  if "conv1.weight" not in state:
    raise ValueError(f"input: {source} has no tensor 'conv1.weight': not an arcface_torch backbone")
  depths = stage_depths(state)
  found = arch_of_depths(depths)
  if arch is not None and arch not in iresnet.ARCHS:
    raise ValueError(f"arch: expected one of {sorted(iresnet.ARCHS)}, got {arch!r}")
  if arch is not None and iresnet.ARCHS[arch] != depths:
    raise ValueError(
      f"arch={arch!r} has blocks per stage {iresnet.ARCHS[arch]}, but {source} has {depths}"
      + (f" (that is {found!r})" if found else "")
    )
  if found is None:
    raise ValueError(f"input: {source} has blocks per stage {depths}: no arcface_torch iresnet")
  arch = found
  f = int(state["conv1.weight"].shape[0])
  if "fc.weight" not in state or np.ndim(state["fc.weight"]) != 2:
    raise ValueError(f"input: {source} has no 2-D tensor 'fc.weight'")
  d, fc_inputs = (int(n) for n in state["fc.weight"].shape)
  side = layout.final_map_side(fc_inputs, 8 * f)
  t = _Tensors(state, arch, source)
  params: dict = {"conv1": {"kernel": layout.conv_kernel(t.take("conv1.weight", (f, 3, 3, 3)))}}
  stats: dict = {}
  params["bn1"], stats["bn1"] = t.batch_norm("bn1", f)
  params["prelu"] = {"negative_slope": t.take("prelu.weight", (f,))}
  c_in = f
  for s, num_blocks in enumerate(depths):
    c = f * 2**s
    for i in range(num_blocks):
      name, flax_name = f"layer{s + 1}.{i}", f"layer{s + 1}_{i}"
      p, b = {}, {}
      p["bn1"], b["bn1"] = t.batch_norm(f"{name}.bn1", c_in)
      p["conv1"] = {"kernel": layout.conv_kernel(t.take(f"{name}.conv1.weight", (c, c_in, 3, 3)))}
      p["bn2"], b["bn2"] = t.batch_norm(f"{name}.bn2", c)
      p["prelu"] = {"negative_slope": t.take(f"{name}.prelu.weight", (c,))}
      p["conv2"] = {"kernel": layout.conv_kernel(t.take(f"{name}.conv2.weight", (c, c, 3, 3)))}
      p["bn3"], b["bn3"] = t.batch_norm(f"{name}.bn3", c)
      if i == 0:  # stride 2: arcface_torch projects the shortcut in every stage's first block
        kernel = t.take(f"{name}.downsample.0.weight", (c, c_in, 1, 1))
        p["downsample_conv"] = {"kernel": layout.conv_kernel(kernel)}
        p["downsample_bn"], b["downsample_bn"] = t.batch_norm(f"{name}.downsample.1", c)
      params[flax_name], stats[flax_name] = p, b
      c_in = c
  params["bn2"], stats["bn2"] = t.batch_norm("bn2", c_in)
  fc_w = t.take("fc.weight", (d, fc_inputs))
  fc_b = t.take("fc.bias", (d,))
  gamma = t.take("features.weight", (d,))
  features, features_stats = layout.batch_norm(
    gamma, *(t.take(f"features.{k}", (d,)) for k in ("bias", "running_mean", "running_var"))
  )
  del features["scale"]
  notes = []
  if not np.allclose(gamma, 1.0, rtol=0, atol=1e-6):
    # jfr's features BN has no scale; fold gamma exactly into the FC and the running mean:
    # (gamma*(Wx+b) - gamma*m) / sqrt(v + eps) + beta.
    fc_w, fc_b = fc_w * gamma[:, None], fc_b * gamma
    features_stats["mean"] = features_stats["mean"] * gamma
    notes.append("features.weight != 1: folded into fc and features.running_mean")
  params["fc"] = {"kernel": layout.fc_kernel(fc_w, c_in), "bias": fc_b}
  params["features"], stats["features"] = features, features_stats
  if t.leftover():
    raise ValueError(
      f"input: {source} has tensors that iresnet {arch} does not have (another model?): "
      f"{t.leftover()[:10]}"
    )
  model = layout.ConvertedModel(
    arch=arch,
    num_filters=f,
    embedding_dim=d,
    image_size=16 * side,
    variables={"params": params, "batch_stats": stats},
    notes=notes,
  )
  layout.check_variables(model)
  return model
