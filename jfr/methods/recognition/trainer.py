"""Plain face recognition training: a backbone (``config.model``) with a softmax / ArcFace /
CosFace head (``config.head``), one optimizer over both.

Public functions other methods build on (the FAN's stage-1 extractor, the explanation
baseline, the templates' descriptor network): :func:`create_state`, :func:`make_train_step`,
:func:`train`, :func:`restore`, :func:`backbone_variables`, :func:`inference_backbone`.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

from jfr.context import RunContext
from jfr.data import pipelines
from jfr.losses import margin
from jfr.models import backbones
from jfr.models import heads
from jfr.train import checkpoint
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import state as state_lib
from jfr.train import steps

HEADS = {"softmax": heads.SoftmaxHead, "arcface": heads.ArcFaceHead, "cosface": heads.ArcFaceHead}


def build_models(config: ml_collections.ConfigDict, num_classes: int, axis_name: str | None):
  """(backbone, head) modules of ``config.model`` / ``config.head``."""
  if config.head.kind not in HEADS:
    raise ValueError(f"head.kind={config.head.kind!r}; known: {sorted(HEADS)}")
  return backbones.build_backbone(config.model, axis_name), HEADS[config.head.kind](num_classes)


def head_loss(
  head_cfg: ml_collections.ConfigDict, logits: jax.Array, labels: jax.Array
) -> jax.Array:
  """Per-example loss [B] of the configured head's logits."""
  if head_cfg.kind == "arcface":
    return margin.arcface_loss(logits, labels, scale=head_cfg.scale, margin=head_cfg.margin)
  if head_cfg.kind == "cosface":
    return margin.cosface_loss(logits, labels, scale=head_cfg.scale, margin=head_cfg.margin)
  return margin.softmax_cross_entropy(logits, labels)


def create_state(
  config: ml_collections.ConfigDict, num_classes: int, size: int
) -> state_lib.TrainState:
  """Initial state: sub-models 'backbone' and 'head', one optimizer over both."""
  backbone, head = build_models(config, num_classes, steps.bn_axis_name(config.parallelism))
  images = jnp.zeros((2, size, size, 3), jnp.float32)
  init_backbone = lambda rng: backbone.init(rng, images, train=False)
  width = jax.eval_shape(
    lambda: backbone.apply(init_backbone(jax.random.PRNGKey(0)), images, train=False)
  ).shape[-1]
  tx = optimizers.make_optimizer(config.optimizer, config.num_train_steps)
  return state_lib.create_train_state(
    jax.random.PRNGKey(config.seed),
    {
      "backbone": (backbone, init_backbone),
      "head": (head, lambda rng: head.init(rng, jnp.zeros((2, width)))),
    },
    {"backbone": tx, "head": tx},
  )


def make_train_step(config: ml_collections.ConfigDict):
  """The pure train step: embeddings, head logits, loss, one SGD/Adam update."""

  def train_step(state, batch, rng):
    def loss_fn(params):
      emb, updates = state.apply_fn["backbone"](
        {"params": params["backbone"], "batch_stats": state.batch_stats["backbone"]},
        batch["image"],
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": rng},
      )
      logits = state.apply_fn["head"]({"params": params["head"]}, emb)
      loss = head_loss(config.head, logits, batch["label"]).mean()
      accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
      return loss, (updates["batch_stats"], accuracy)

    params = {"backbone": state.params["backbone"], "head": state.params["head"]}
    (loss, (new_bs, accuracy)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    grads, loss, accuracy = steps.cross_replica_mean((grads, loss, accuracy))
    new_state = state_lib.apply_gradients(state, grads, batch_stats={"backbone": new_bs})
    state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
    return state, {"loss": loss, "accuracy": accuracy, "nonfinite": nonfinite}

  return train_step


def labelled_image_batches(config: ml_collections.ConfigDict, context: RunContext):
  """``start -> iterator`` of augmented ``image``/``label`` host batches of the train split
  (deterministic in ``(config.seed, start)``, for :func:`jfr.train.loop.run_training`)."""

  def batches(start: int):
    ds = pipelines.image_batches(
      context.builder,
      context.train_split,
      config.batch_size,
      seed=config.seed,
      start_batch=start,
      features=("image", "label"),
      augment_options=config.augment.to_dict(),
    )
    return pipelines.numpy_batches(ds)

  return batches


def train(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> dict:
  """Trains (or resumes) and returns the backbone's variables (host copies)."""
  state = create_state(config, context.num_classes, context.image_size)
  logging.info("backbone parameters: %d", state_lib.num_params(state.params["backbone"]))
  final = loop.run_training(
    config, workdir, state, make_train_step(config), labelled_image_batches(config, context)
  )
  return backbone_variables(final)


def backbone_variables(state: state_lib.TrainState) -> dict:
  """The backbone's flax variables from a (host) train state."""
  return {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}


def restore(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  num_classes: int,
  image_size: int,
  *,
  allow_older: bool | None = None,
) -> tuple[dict, dict]:
  """``(backbone variables, checkpoint info)`` of the newest complete checkpoint in
  ``workdir`` (see :func:`jfr.train.checkpoint.restore_with_info`; ``allow_older`` defaults
  to ``config.allow_older_checkpoint``)."""
  target = create_state(config, num_classes, image_size)
  if allow_older is None:
    allow_older = config.allow_older_checkpoint
  state, info = checkpoint.restore_with_info(
    workdir, target, config.keep_checkpoints, allow_older=allow_older
  )
  return backbone_variables(state), info


def inference_backbone(config: ml_collections.ConfigDict):
  """The backbone module for inference (no cross-replica BatchNorm)."""
  return backbones.build_backbone(config.model, axis_name=None)
