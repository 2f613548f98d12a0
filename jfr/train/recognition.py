"""Plain face recognition: a ResNet backbone trained with a softmax or ArcFace head.

This is the baseline of every method (``configs/baseline.py``), the FAN's stage-1
feature extractor and the descriptor source of the template experiment. Modes:

* ``train``: trains on ``dataset.train_split`` with :func:`jfr.train.loop.run_training`
  (checkpoints and resume in ``<workdir>/checkpoints``);
* ``eval``: restores the final checkpoint and evaluates on ``dataset.test_split``
  (verification and open-set identification; JSON in ``<workdir>/eval/``, ROC PNG);
* ``all``: both.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jfr.eval import metrics
from jfr.eval import plots
from jfr.losses import margin
from jfr.models import heads
from jfr.train import common
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import state as state_lib
from jfr.train import steps
from jfr.train.checkpoint import restore_trained

MODES = ("all", "train", "eval")
HEADS = {"softmax": heads.SoftmaxHead, "arcface": heads.ArcFaceHead, "cosface": heads.ArcFaceHead}


def build_models(config: ml_collections.ConfigDict, num_classes: int, axis_name: str | None):
  """(backbone, head) modules of ``config.model`` / ``config.head``."""
  if config.head.kind not in HEADS:
    raise ValueError(f"head.kind={config.head.kind!r}; known: {sorted(HEADS)}")
  return common.build_backbone(config.model, axis_name), HEADS[config.head.kind](num_classes)


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


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains (or resumes) and returns the backbone's variables (host copies)."""
  builder = common.dataset_builder(config)
  num_classes = common.num_train_classes(config, builder)
  state = create_state(config, num_classes, common.image_size(builder))
  logging.info("backbone parameters: %d", state_lib.num_params(state.params["backbone"]))

  final = loop.run_training(
    config, workdir, state, make_train_step(config), common.labelled_image_batches(config, builder)
  )
  return backbone_variables(final)


def backbone_variables(state: state_lib.TrainState) -> dict:
  """The backbone's flax variables from a (host) train state."""
  return {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}


def restore_backbone(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """The backbone variables of the newest complete checkpoint in ``workdir``."""
  builder = common.dataset_builder(config)
  target = create_state(
    config, common.num_train_classes(config, builder), common.image_size(builder)
  )
  return backbone_variables(restore_trained(workdir, target, config.keep_checkpoints))


def inference_backbone(config: ml_collections.ConfigDict):
  """The backbone module for inference (no cross-replica BatchNorm)."""
  return common.build_backbone(config.model, axis_name=None)


def evaluate(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  variables: dict,
  name: str = "recognition",
) -> dict:
  """Verification + identification on the test split; writes JSON and a ROC PNG."""
  builder = common.dataset_builder(config)
  embed = common.embed_function(inference_backbone(config), variables)
  feats = common.extract_split_features(
    embed, builder, config.dataset.test_split, config.eval.batch_size
  )
  results = common.evaluate_features(
    feats["embedding"], feats["label"], config.eval, seed=config.seed
  )
  scores, same = results.pop("_roc")
  sim, probe_labels, gallery_labels = results.pop("_similarity")
  fpr, tpr, _ = metrics.roc(scores, same)
  title = f"{name} ({config.dataset.name} {config.dataset.test_split})"
  plots.plot_roc(
    {name: (fpr, tpr)}, Path(workdir) / "eval" / f"{name}_roc.png", f"verification ROC: {title}"
  )
  mated = np.isin(probe_labels, gallery_labels)
  ranks = np.arange(1, min(20, len(gallery_labels)) + 1)
  plots.plot_cmc(
    {name: (ranks, metrics.cmc(sim[mated], probe_labels[mated], gallery_labels, ranks))},
    Path(workdir) / "eval" / f"{name}_cmc.png",
    f"closed-set CMC: {title}",
  )
  common.write_results(workdir, name, results)
  v, i = results["verification"], results["identification"]
  logging.info(
    "%s: verification acc %.4f ± %.4f, EER %.4f, TAR@FAR %s; rank-1 %.4f, TPIR@FPIR %s",
    name,
    v["accuracy"],
    v["accuracy_std"],
    v["eer"],
    v["tar_at_far"],
    i.get("cmc", {}).get("rank1", float("nan")),
    i.get("tpir_at_fpir"),
  )
  return results


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring)."""
  common.check_mode(mode, MODES)
  variables = None
  if mode in ("all", "train"):
    variables = train(config, workdir)
  if mode in ("all", "eval"):
    if variables is None:
      variables = restore_backbone(config, workdir)
    return evaluate(config, workdir, variables)
  return {}
