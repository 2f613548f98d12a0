"""Joint training of the recognition and explanation flows (Sec. III-C, Fig. 1, Eq. 2 of
Xu, Lu, Ebrahimi), and the plain ArcFace model of Table I.

Model: the recognition flow is a ResNet whose last fully connected layer is replaced by
global max pooling of its last conv map ``C`` ``[B, h, w, c]``, giving the feature ``F``
``[B, c]``, trained with the ArcFace loss ``L_id``; the explanation flow is a decoder of four
transposed convolutions rebuilding the input from ``C``
(:class:`jfr.models.decoder.ReconstructionDecoder`). Both are trained jointly on Eq. 2,
``L = L_id + lambda * L_rec`` (:mod:`jfr.losses.reconstruction`): the recognition network
(backbone + ArcFace head) with SGD, the decoder with Adam (Sec. IV-A), two optimizers in one
:class:`jfr.train.state.TrainState`.

Readings of the paper:

* Gradient of ``L_rec`` into the backbone (``config.decoder_backprop_to_backbone``,
  default True): the paper "jointly trains" the two flows "by optimizing both" losses
  through one objective (Eq. 2) with a trade-off weight, which only has a meaning when
  ``L_rec`` also shapes the shared conv map (the decoder alone would not need lambda:
  Adam is invariant to a constant gradient scale). False trains the decoder on a
  stopped-gradient map, i.e. a post-hoc decoder of a plain max-pool ArcFace model.
* lambda is not given in the paper; the configs use 1.
* The plain ArcFace model of Table I is trained by :mod:`jfr.methods.recognition.trainer`
  with ``config.baseline.pooling`` ('flatten_fc' = ArcFace's BN-Dropout-FC-BN output layer,
  the layer the paper removes) and an embedding of the same size ``c``, with the same data,
  steps and recognition optimizer, in ``<workdir>/baseline`` (:func:`baseline_config`).
* ``config.backbone_init`` (default None) names a recognition run (e.g. an IResNet converted
  by ``jfr.convert``) whose conv trunk starts ours (:func:`effective_config`,
  :func:`init_backbone_from_run`): its model with ``pooling='gmp'`` replaces
  ``config.model``, its trunk variables are copied (its output layer, BN -> FC -> BN, has no
  counterpart under GMP and is dropped), the ArcFace head and the decoder start fresh and
  Eq. 2 trains all of them. The result is a new model initialised from the converted one,
  not an explanation of the converted recognizer itself: ``F = GMP(C)`` is not the feature
  it was trained to compare (its FC mixes positions and channels).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

from jfr.context import RunContext
from jfr.explain import suite
from jfr.losses.reconstruction import joint_loss
from jfr.losses.reconstruction import reconstruction_loss
from jfr.methods.explain.constants import THRESHOLD_SOURCES
from jfr.methods.recognition import trainer as recognition
from jfr.models import resnet
from jfr.models.decoder import ReconstructionDecoder
from jfr.train import checkpoint
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import state as state_lib
from jfr.train import steps


def check_model_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` for a model the method cannot explain."""
  if config.model.pooling != "gmp":
    raise ValueError(
      f"config.model.pooling: the explanation method replaces the last FC "
      f"layer by global max pooling, expected 'gmp', got "
      f"{config.model.pooling!r}"
    )
  if config.explain.threshold_source not in THRESHOLD_SOURCES:
    raise ValueError(
      f"config.explain.threshold_source: expected one of "
      f"{THRESHOLD_SOURCES}, got {config.explain.threshold_source!r}"
    )


def build_decoder(config: ml_collections.ConfigDict, size: int) -> ReconstructionDecoder:
  """The reconstruction decoder of ``config.decoder`` producing ``size`` x ``size`` images."""
  return ReconstructionDecoder(widths=tuple(config.decoder.widths), output_size=(size, size))


def init_decoder(decoder: ReconstructionDecoder, rng: jax.Array, conv_maps: jax.Array) -> dict:
  """The decoder's initial variables: each kernel drawn from flax's default for
  ``ConvTranspose`` (LeCun normal: truncated normal, variance 1 / fan-in with fan-in
  ``kh * kw * c_in``), biases zero.

  The kernels are drawn on their 2-D view with :func:`jfr.models.resnet.conv_kernel_init`
  (the same distribution): XLA:CPU compiles the rank-4 draws of ``decoder.init`` several
  times slower.

  Args:
    decoder: the module.
    rng: a ``jax.random`` key.
    conv_maps: an example input ``[B, h, w, c]``.
  """
  shapes = jax.eval_shape(decoder.init, rng, conv_maps)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  keys = jax.random.split(rng, len(leaves))
  kernel_init = resnet.conv_kernel_init(1.0)
  values = [
    kernel_init(key, leaf.shape, leaf.dtype)
    if jax.tree_util.keystr(path).endswith("['kernel']")
    else jnp.zeros(leaf.shape, leaf.dtype)
    for key, (path, leaf) in zip(keys, leaves)
  ]
  return jax.tree_util.tree_unflatten(treedef, values)


def feature_shape(config: ml_collections.ConfigDict, size: int) -> tuple[int, int, int]:
  """``(h, w, c)`` of the backbone's last conv map for ``size`` x ``size`` inputs."""
  backbone = recognition.inference_backbone(config)
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  _, fmap = jax.eval_shape(
    lambda x: backbone.apply(
      backbone.init(jax.random.PRNGKey(0), x, train=False), x, train=False, return_feature_map=True
    ),
    images,
  )
  return tuple(fmap.shape[1:])


def effective_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config``, or (``backbone_init`` set) a copy whose ``model`` is that run's with
  ``pooling='gmp'``."""
  if not config.get("backbone_init"):
    return config
  from jfr import recognizer_source

  source = recognizer_source.locate(config.backbone_init, "config.backbone_init")
  derived = config.copy_and_resolve_references()
  with derived.unlocked():
    derived.model = ml_collections.ConfigDict(source.config.model.to_dict())
    derived.model.pooling = "gmp"
  return derived.lock()


def init_backbone_from_run(
  config: ml_collections.ConfigDict, state: state_lib.TrainState, size: int
) -> state_lib.TrainState:
  """``state`` with its backbone's variables copied from ``config.backbone_init``'s newest
  checkpoint: every variable of ours (the GMP trunk) must exist there with the same shape;
  the source's extra ones (its output layer) are dropped. ValueError names a mismatch and an
  input side other than ``size``."""
  from jfr import recognizer_source

  source = recognizer_source.locate(config.backbone_init, "config.backbone_init")
  if source.image_size != size:
    raise ValueError(
      f"config.backbone_init: {source.run} takes {source.image_size} px images, but "
      f"config.dataset has {size} px images"
    )
  variables, _ = recognizer_source.restore_variables(
    source, allow_older=bool(config.allow_older_checkpoint)
  )
  ours = {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}
  flat_source = dict(jax.tree_util.tree_flatten_with_path(variables)[0])
  leaves, treedef = jax.tree_util.tree_flatten_with_path(ours)
  copied = []
  for path, leaf in leaves:
    if path not in flat_source or flat_source[path].shape != leaf.shape:
      raise ValueError(
        f"config.backbone_init: {jax.tree_util.keystr(path)} {leaf.shape} has no counterpart "
        f"of that shape in {source.checkpoints}"
      )
    copied.append(jnp.asarray(flat_source[path], leaf.dtype))
  new = jax.tree_util.tree_unflatten(treedef, copied)
  return state.replace(
    params={**state.params, "backbone": new["params"]},
    batch_stats={**state.batch_stats, "backbone": new["batch_stats"]},
  )


def create_state(
  config: ml_collections.ConfigDict, num_classes: int, size: int
) -> state_lib.TrainState:
  """Initial state: 'backbone' and 'head' (recognition, ``config.optimizer``) and
  'decoder' (explanation, ``config.decoder_optimizer``)."""
  check_model_config(config)
  backbone, head = recognition.build_models(
    config, num_classes, steps.bn_axis_name(config.parallelism)
  )
  decoder = build_decoder(config, size)
  h, w, c = feature_shape(config, size)
  images = jnp.zeros((2, size, size, 3), jnp.float32)
  recognition_tx = optimizers.make_optimizer(config.optimizer, config.num_train_steps)
  decoder_tx = optimizers.make_optimizer(config.decoder_optimizer, config.num_train_steps)
  return state_lib.create_train_state(
    jax.random.PRNGKey(config.seed),
    {
      "backbone": (backbone, lambda rng: backbone.init(rng, images, train=False)),
      "head": (head, lambda rng: head.init(rng, jnp.zeros((2, c)))),
      "decoder": (decoder, lambda rng: init_decoder(decoder, rng, jnp.zeros((2, h, w, c)))),
    },
    {"backbone": recognition_tx, "head": recognition_tx, "decoder": decoder_tx},
  )


def joint_objective(
  config: ml_collections.ConfigDict,
  apply_fn: Mapping[str, Callable],
  params: dict,
  batch_stats: dict,
  batch: dict,
  rng: jax.Array,
) -> tuple[jax.Array, tuple[Any, dict]]:
  """Eq. 2 averaged over a batch, as a function of the trainable ``params``.

  ``L = mean_b(L_id + lambda * L_rec)``: the ArcFace loss of the head's logits of the max
  pooled feature ``F`` and the MSE between the images and ``Recon(C)``. The decoder reads
  ``C`` through ``stop_gradient`` unless ``config.decoder_backprop_to_backbone``.

  Args:
    config: reads ``head``, ``rec_weight``, ``decoder_backprop_to_backbone``.
    apply_fn: ``{'backbone', 'head', 'decoder'}`` module apply functions.
    params: ``{'backbone', 'head', 'decoder'}`` parameters.
    batch_stats: the backbone's BatchNorm statistics.
    batch: ``image`` ``[B, H, W, 3]`` (model range), ``label`` ``[B]`` int.
    rng: dropout key.

  Returns:
    ``(loss, (new backbone batch_stats, {'id_loss', 'rec_loss', 'accuracy'}))``.
  """
  (features, conv_map), updates = apply_fn["backbone"](
    {"params": params["backbone"], "batch_stats": batch_stats},
    batch["image"],
    train=True,
    return_feature_map=True,
    mutable=["batch_stats"],
    rngs={"dropout": rng},
  )
  logits = apply_fn["head"]({"params": params["head"]}, features)
  id_loss = recognition.head_loss(config.head, logits, batch["label"])
  if not config.decoder_backprop_to_backbone:
    conv_map = jax.lax.stop_gradient(conv_map)
  recon = apply_fn["decoder"]({"params": params["decoder"]}, conv_map)
  rec_loss = reconstruction_loss(batch["image"], recon)
  loss = joint_loss(id_loss, rec_loss, config.rec_weight).mean()
  aux = {
    "id_loss": id_loss.mean(),
    "rec_loss": rec_loss.mean(),
    "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
  }
  return loss, (updates["batch_stats"], aux)


def make_train_step(config: ml_collections.ConfigDict):
  """The pure joint train step of Eq. 2: one update of every sub-model with its own
  optimizer (SGD on backbone + head, Adam on the decoder)."""

  def train_step(state, batch, rng):
    objective = functools.partial(
      joint_objective,
      config,
      state.apply_fn,
      batch_stats=state.batch_stats["backbone"],
      batch=batch,
      rng=rng,
    )
    (loss, (new_bs, aux)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    grads, loss, aux = steps.cross_replica_mean((grads, loss, aux))
    new_state = state_lib.apply_gradients(state, grads, batch_stats={"backbone": new_bs})
    state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
    return state, {"loss": loss, **aux, "nonfinite": nonfinite}

  return train_step


def model_variables(state: state_lib.TrainState) -> dict:
  """``{'backbone': flax variables, 'decoder': flax variables}`` of a (host) state."""
  return {
    "backbone": recognition.backbone_variables(state),
    "decoder": {"params": state.params["decoder"]},
  }


def train(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> dict:
  """Trains (or resumes) ours jointly on Eq. 2; returns :func:`model_variables`. A fresh
  run with ``backbone_init`` starts from that run's trunk (:func:`init_backbone_from_run`)."""
  state = create_state(config, context.num_classes, context.image_size)
  if config.get("backbone_init"):
    state = init_backbone_from_run(config, state, context.image_size)
  logging.info(
    "backbone parameters: %d, decoder parameters: %d",
    state_lib.num_params(state.params["backbone"]),
    state_lib.num_params(state.params["decoder"]),
  )
  final = loop.run_training(
    config,
    workdir,
    state,
    make_train_step(config),
    recognition.labelled_image_batches(config, context),
  )
  return model_variables(final)


def restore(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> tuple[dict, dict]:
  """``(model_variables, checkpoint info)`` of the newest complete checkpoint of ours."""
  target = create_state(config, context.num_classes, context.image_size)
  state, info = checkpoint.restore_with_info(
    workdir, target, config.keep_checkpoints, allow_older=config.allow_older_checkpoint
  )
  return model_variables(state), info


def baseline_config(config: ml_collections.ConfigDict, size: int) -> ml_collections.ConfigDict:
  """The plain ArcFace model's config: ours with ``baseline.pooling`` and a ``c``-dim
  embedding, for :mod:`jfr.methods.recognition.trainer` (same data, steps, optimizer, seed)."""
  derived = config.copy_and_resolve_references()
  derived.method = "recognition"
  derived.model.pooling = config.baseline.pooling
  derived.model.embedding_dim = feature_shape(config, size)[2]
  return derived


def baseline_workdir(workdir: str | os.PathLike) -> Path:
  """Where the plain ArcFace model of the run lives (``<workdir>/baseline``)."""
  return Path(workdir) / "baseline"


def train_baseline(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> dict:
  """Trains (or resumes) the plain ArcFace model; returns its backbone variables."""
  return recognition.train(
    baseline_config(config, context.image_size), baseline_workdir(workdir), context
  )


def restore_baseline(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> tuple[dict, dict]:
  """``(backbone variables, checkpoint info)`` of the plain ArcFace model."""
  return recognition.restore(
    baseline_config(config, context.image_size),
    baseline_workdir(workdir),
    context.num_classes,
    context.image_size,
  )


def model_functions(
  config: ml_collections.ConfigDict, variables: dict, size: int
) -> suite.ModelFunctions:
  """:class:`jfr.explain.suite.ModelFunctions` of ours (``variables`` from
  :func:`model_variables`) for ``size`` x ``size`` images."""
  return suite.model_functions(
    recognition.inference_backbone(config),
    variables["backbone"],
    build_decoder(config, size),
    variables["decoder"],
  )
