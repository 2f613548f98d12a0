"""Template descriptors: from the trained network (stills + video frames of the test
identities) or from a user's ``.npy`` with the real IJB-A split files.

Descriptor reading (``descriptors.kind``). The paper's descriptors are VGG-Face fc7
activations: un-normalised, post-ReLU (>= 0), a few bins highly active; "most active
bins" presumes that. The closest activations of our ResNet are its last conv map (the
output of a ReLU): ``'conv_flat'`` flattens it (k = h w c; the input of the embedding
layer under ``'flatten_fc'`` pooling) and ``'conv_gap'`` averages it over positions
(k = c). ``'embedding'`` is the trained embedding itself (signed after the final
BatchNorm; "most active" then means largest signed value).

``descriptors.layer`` names another layer (a Flax module path, ``/``-separated, e.g.
``layer4_1`` or ``layer4_1/prelu`` of an IResNet r18, ``bn2``, ``fc``); its output
(captured with ``capture_intermediates``) is reduced by ``'conv_flat'`` / ``'conv_gap'``.
``descriptors.rectify`` takes ``max(0, a)`` of the activations before the reduction. With an
IResNet (a converted arcface_torch / insightface model, ``descriptors.workdir``) the last
conv map (``layer=''``) is the last block's output ``bn3(conv2(...)) + shortcut``, which no
activation follows: signed, unlike the post-ReLU activations the paper's masking presumes;
``rectify=True`` makes it non-negative.
"""

from __future__ import annotations

import functools
import os

import jax.numpy as jnp
import ml_collections
import numpy as np

from jfr.context import RunContext
from jfr.data.adapters import ijb as ijb_files
from jfr.eval import embedding
from jfr.eval import ijb
from jfr.eval import ijb_splits
from jfr.eval import still_images
from jfr.methods.recognition import trainer as recognition

DESCRIPTOR_KINDS = ("conv_flat", "conv_gap", "embedding")
_CONV_REDUCTIONS = {
  "conv_flat": lambda fmap: fmap.reshape(fmap.shape[0], -1),
  "conv_gap": lambda fmap: fmap.mean(axis=(1, 2)),
}


def layer_output(module, layer: str, variables: dict, images):
  """The activations ``[B, h, w, c]`` (or ``[B, k]``) of submodule ``layer`` (``/``-separated
  module path; ``''``: the backbone's last conv map, ``return_feature_map=True``)."""
  if not layer:
    return module.apply(variables, images, train=False, return_feature_map=True)[1]
  _, state = module.apply(
    variables, images, train=False, capture_intermediates=True, mutable=["intermediates"]
  )
  node = state["intermediates"]
  for name in layer.split("/"):
    if name not in node:
      known = sorted(k for k in node if k != "__call__")
      raise ValueError(f"config.descriptors.layer={layer!r}: no module {name!r}; known: {known}")
    node = node[name]
  return node["__call__"][0]


def _conv_descriptors(module, reduce, layer, rectify, variables, images):
  activations = layer_output(module, layer, variables, images)
  if rectify:
    activations = jnp.maximum(activations, 0.0)
  if activations.ndim != 4 and reduce is _CONV_REDUCTIONS["conv_gap"]:
    raise ValueError(
      f"config.descriptors.layer={layer!r}: 'conv_gap' needs a conv map [B, h, w, c], got "
      f"shape {activations.shape}"
    )
  return reduce(activations)


def _rectified(apply, variables, images):
  return jnp.maximum(apply(variables, images), 0.0)


def descriptor_function(
  config: ml_collections.ConfigDict, variables: dict, input_size: int
) -> embedding.EmbedFn:
  """uint8 images ``[b, H, W, 3]`` -> descriptors ``[b, k]`` of ``descriptors.kind`` (an
  :data:`~jfr.eval.embedding.EmbedFn`, batches of ``descriptors.batch_size``)."""
  kind = config.descriptors.kind
  if kind not in DESCRIPTOR_KINDS:
    raise ValueError(f"config.descriptors.kind={kind!r}; known: {DESCRIPTOR_KINDS}")
  backbone = recognition.inference_backbone(config)
  layer = config.descriptors.get("layer", "")  # absent in older recorded configs
  rectify = bool(config.descriptors.get("rectify", False))
  if kind == "embedding":
    if layer:
      raise ValueError(
        f"config.descriptors.layer={layer!r}: set kind 'conv_flat' or 'conv_gap' with a layer"
      )
    apply = functools.partial(backbone.apply, train=False)
    if rectify:
      apply = functools.partial(_rectified, apply)
  else:
    apply = functools.partial(_conv_descriptors, backbone, _CONV_REDUCTIONS[kind], layer, rectify)
  return embedding.model_embedder(
    apply, variables, input_size=input_size, batch_size=config.descriptors.batch_size
  )


def synthetic_descriptors(
  config: ml_collections.ConfigDict,
  context: RunContext,
  variables: dict,
  input_size: int | None = None,
) -> dict[str, np.ndarray]:
  """Descriptors of the test identities' stills and video frames (resized to ``input_size``,
  the network's input side, when it is not the data's; default: the data's).

  Returns ``descriptors`` ``[N, k]`` float32 and ``label``, ``video_id`` (-1 for
  stills), ``frame_index`` ``[N]``: the stills of ``dataset.test_split`` followed by the
  frames of ``dataset.video_split``.
  """
  describe = descriptor_function(config, variables, input_size or context.image_size)
  features = ("image", "label", "video_id", "frame_index")
  parts = [
    still_images.extract_split(
      describe, context.builder, split, config.descriptors.batch_size, features
    )
    for split in (config.dataset.test_split, config.dataset.video_split)
  ]
  out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  out["descriptors"] = out.pop("embedding").astype(np.float32)
  return out


def synthetic_protocol(
  config: ml_collections.ConfigDict, data: dict[str, np.ndarray]
) -> list[ijb.ProtocolSplit]:
  """``config.protocol``'s IJB-A-like splits over :func:`synthetic_descriptors`' rows."""
  p = config.protocol
  return ijb_splits.synthetic_splits(
    data["label"],
    data["video_id"],
    data["frame_index"],
    num_splits=p.num_splits,
    seed=p.seed,
    out_of_gallery_fraction=p.out_of_gallery_fraction,
    probe_templates_per_subject=p.probe_templates_per_subject,
    verify_templates_per_subject=p.verify_templates_per_subject,
    verify_subjects=p.verify_subjects,
    frames_per_video=p.frames_per_video,
  )


def npy_inputs(config: ml_collections.ConfigDict) -> tuple[np.ndarray, list[ijb.ProtocolSplit]]:
  """A user's descriptors and the real IJB-A splits (``config.descriptors``, ``config.ijba``)."""
  d = config.descriptors
  for field in ("npy_path", "keys_path"):
    if not d[field]:
      raise ValueError(f"config.descriptors.{field}: set it for --mode=npy")
  if not os.path.isfile(d.npy_path):
    raise ValueError(f"config.descriptors.npy_path: {d.npy_path!r} does not exist")
  descriptors = np.load(d.npy_path)
  filenames, subjects = ijb_splits.read_descriptor_keys(d.keys_path)
  if descriptors.ndim != 2 or descriptors.shape[0] != filenames.size:
    raise ValueError(
      f"config.descriptors.npy_path: expected [n, k] descriptors with one "
      f"row per key of {d.keys_path} (n = {filenames.size}), got shape "
      f"{descriptors.shape}"
    )
  if not config.ijba.splits:
    raise ValueError("config.ijba.splits: expected at least one split number")
  splits = []
  for s in config.ijba.splits:
    path = lambda pattern: os.path.join(config.ijba.root, pattern.format(split=s))
    search = ijb_files.read_search_protocol(
      path(config.ijba.search_gallery), path(config.ijba.search_probe)
    )
    splits.append(
      ijb_splits.ijba_split(
        search,
        ijb_files.read_template_metadata(path(config.ijba.verify_metadata)),
        ijb_files.read_template_pairs(path(config.ijba.verify_comparisons)),
        filenames,
        subjects,
      )
    )
  return descriptors, splits
