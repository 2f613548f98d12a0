"""Interpretable-FR training: the Siamese objective of a variant, its train step, the input
of clean / occluded pairs, fit and restore (Yin et al., ICCV 2019, Sec. 3, Fig. 2).

A hypercolumn CASIA-Net is trained on a clean face I and its synthetically occluded version
Î (the same weights on both, one classifier shared by both branches) with

* the identity losses, softmax on f(I) (Eq. 3) and on τ ⊙ f(Î) (Eq. 5);
* the SAD losses (Sec. 3.1): filter orthogonality of the Ψ kernel (Eq. 1) and response
  decorrelation of ψ' = g_σ * LMF(ψ(I)) (Eq. 2), :func:`jfr.losses.diversity.sad_losses`;
* the FAD loss (Eq. 4) on the ``t`` feature elements least changed by the occlusion; the
  mask τ is computed from the whole batch, whose pairs share one semantically equivalent
  occluder (Sec. 3.3), and carries no gradient (:func:`jfr.losses.diversity.batch_fad_mask`).

Design choices (the paper does not fix them; see also ``configs/interpretable.py``):

* The two branches run as one batch ``[I; Î]`` through the network, so BatchNorm
  statistics are shared by clean and occluded faces.
* Loss weights: the paper gives none. SAD terms are divided by K(K−1), the number of
  ordered filter pairs, so ``loss.sad_*_weight`` weigh the mean over pairs; Eq. 4 is used
  as written (a sum over the masked elements, mean over the batch).
* SAD's response loss acts on the clean branch; Eq. 1 on the Ψ kernel.
* Variants without FAD train the occluded branch with a plain softmax on f(Î) (τ ≡ 1: the
  paper's occlusion-augmented base "CASIA-Net agu.") when
  ``loss.occluded_branch_without_fad``; otherwise they see clean faces only.
* ``head.kind='cosine'`` gives logits ``scale · cos(f, w_c)`` for training from scratch on
  a CPU budget, together with ``loss.fad_on_unit_features`` (τ and Eq. 4 on
  ``√K f / ‖f‖``, :func:`jfr.losses.diversity.unit_features`).
* ``dataset.train_identities`` > 0 trains on the first n identities of the train split
  (:class:`jfr.data.subsets.IdentitySubset`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import tensorflow as tf
from absl import logging
from jax import lax

from jfr.context import RunContext
from jfr.data import pipelines
from jfr.data import resize
from jfr.data import subsets
from jfr.losses import diversity
from jfr.losses import margin
from jfr.methods.interpretable import networks
from jfr.models import casia_net
from jfr.train import checkpoint
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import state as state_lib
from jfr.train import steps


def create_state(
  config: ml_collections.ConfigDict, name: str, num_classes: int
) -> state_lib.TrainState:
  """Initial state of variant ``name``: sub-models 'net' and 'classifier', one optimizer.

  Every variant starts from the same parameters (same seed, same shapes).
  """
  net = networks.build_network(config, name, steps.bn_axis_name(config.parallelism))
  classifier = networks.build_classifier(config, num_classes)
  size = config.model.image_size
  images = jnp.zeros((2, size, size, 3), jnp.float32)
  tx = optimizers.make_optimizer(config.optimizer, config.num_train_steps)
  return state_lib.create_train_state(
    jax.random.PRNGKey(config.seed),
    {
      "net": (net, lambda rng: net.init(rng, images, train=False)),
      "classifier": (classifier, jnp.zeros((2, config.model.feature_dim))),
    },
    {"net": tx, "classifier": tx},
  )


def fad_threshold(config: ml_collections.ConfigDict) -> int | float:
  """τ's threshold: ``loss.fad_t`` (elements kept) in count mode, else
  ``loss.fad_value_threshold`` (largest change kept)."""
  if config.loss.fad_mode == "count":
    return int(config.loss.fad_t)
  return float(config.loss.fad_value_threshold)


def make_loss_fn(
  config: ml_collections.ConfigDict, name: str, apply_fn: Any
) -> Callable[..., tuple[jax.Array, tuple[dict, dict]]]:
  """The Siamese objective of variant ``name``.

  Returns ``loss_fn(params, batch_stats, batch, tau=None) -> (loss, (new_batch_stats,
  metrics))`` where ``params = {'net': ..., 'classifier': ...}``, ``batch`` holds ``image``
  and ``occluded`` ``[B, H, W, 3]`` and ``label`` ``[B]``, and ``tau`` fixes the FAD mask
  (None: :func:`jfr.losses.diversity.batch_fad_mask` of the batch). The loss is

  ``w_id L_id(f(I)) + w_occ L_id(τ ⊙ f(Î)) + w_F L_SAD^filter / K(K−1)
  + w_ψ mean_B L_SAD^response(g_σ * LMF(ψ(I))) / K(K−1) + w_FAD mean_B L_FAD``

  with the terms a variant does not use left out (τ ≡ 1 without FAD).
  """
  flags = networks.variant_flags(config, name)
  scale = config.head.scale if config.head.kind == "cosine" else 1.0
  cfg = config.loss
  occluded_branch = networks.uses_occluded_branch(config, name)

  def loss_fn(params, batch_stats, batch, tau=None):
    clean = batch["image"]
    images = jnp.concatenate([clean, batch["occluded"]]) if occluded_branch else clean
    out, updates = apply_fn["net"](
      {"params": params["net"], "batch_stats": batch_stats},
      images,
      train=True,
      mutable=["batch_stats"],
    )
    b = clean.shape[0]
    f_clean = out["f"][:b]
    features = [f_clean]
    metrics = {}
    if occluded_branch:
      f_occluded = out["f"][b:]
      if flags.fad:
        fad_clean, fad_occluded = (
          (diversity.unit_features(f_clean), diversity.unit_features(f_occluded))
          if cfg.fad_on_unit_features
          else (f_clean, f_occluded)
        )
        tau = (
          diversity.batch_fad_mask(
            fad_clean,
            fad_occluded,
            fad_threshold(config),
            cfg.fad_mode,
            replica_mean=steps.cross_replica_mean,
          )
          if tau is None
          else lax.stop_gradient(tau)
        )
        metrics["tau_fraction"] = jnp.mean(tau)
        features.append(diversity.masked_features(f_occluded, tau))
      else:
        features.append(f_occluded)
    logits = scale * apply_fn["classifier"](
      {"params": params["classifier"]}, jnp.concatenate(features)
    )
    labels = jnp.concatenate([batch["label"]] * len(features))
    per_example = margin.softmax_cross_entropy(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    metrics["id"] = per_example[:b].mean()
    metrics["accuracy"] = correct[:b].mean()
    total = cfg.identity_weight * metrics["id"]
    if occluded_branch:
      metrics["id_occluded"] = per_example[b:].mean()
      metrics["accuracy_occluded"] = correct[b:].mean()
      total += cfg.occluded_identity_weight * metrics["id_occluded"]
    if flags.sad:
      metrics["sad_filter"], metrics["sad_response"] = diversity.sad_losses(
        casia_net.psi_kernel(params["net"]), out["filtered"][:b], cfg.sigma
      )
      total += (
        cfg.sad_filter_weight * metrics["sad_filter"]
        + cfg.sad_response_weight * metrics["sad_response"]
      )
    if flags.fad:
      metrics["fad"] = diversity.fad_loss(fad_clean, fad_occluded, tau).mean()
      total += cfg.fad_weight * metrics["fad"]
    metrics["loss"] = total
    return total, (updates["batch_stats"], metrics)

  return loss_fn


def make_train_step(
  config: ml_collections.ConfigDict, name: str, apply_fn: Any
) -> steps.TrainStepFn:
  """The pure train step of variant ``name``: both branches, all its losses, one update."""
  loss_fn = make_loss_fn(config, name, apply_fn)

  def train_step(state, batch, rng):
    del rng  # the step is deterministic given the batch
    (loss, (new_bs, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, state.batch_stats["net"], batch
    )
    grads, metrics = steps.cross_replica_mean((grads, metrics))
    new_state = state_lib.apply_gradients(state, grads, batch_stats={"net": new_bs})
    state, nonfinite = state_lib.guarded_update(state, new_state, metrics["loss"], grads)
    return state, {**metrics, "nonfinite": nonfinite}

  return train_step


def num_classes(config: ml_collections.ConfigDict, context: RunContext) -> int:
  """Classes of the softmax: ``dataset.train_identities`` if > 0, else the whole train split."""
  available = context.num_classes
  wanted = config.dataset.train_identities
  if wanted > available:
    raise ValueError(
      f"config.dataset.train_identities: {wanted} exceeds the {available} "
      "identities of the train split"
    )
  return wanted if wanted > 0 else available


def pair_batches(
  config: ml_collections.ConfigDict, context: RunContext
) -> Callable[[int], Iterator[dict]]:
  """``start -> iterator`` of host batches ``image``, ``occluded``, ``label`` (Siamese pairs,
  resized to ``model.image_size``), from the first ``dataset.train_identities`` identities
  (all if <= 0); deterministic in ``(config.seed, start)``."""
  builder = context.builder
  if config.dataset.train_identities > 0:
    builder = subsets.IdentitySubset(builder, config.dataset.train_identities)

  def batches(start: int):
    ds = pipelines.occlusion_pair_batches(
      builder,
      context.train_split,
      config.batch_size,
      seed=config.seed,
      start_batch=start,
      mode=config.occlusion.mode,
      fill=config.occlusion.fill,
      augment_options=config.augment.to_dict(),
    )

    def select(batch):
      return {
        "image": resize.resize_faces(batch["image"], config.model.image_size),
        "occluded": resize.resize_faces(batch["occluded"], config.model.image_size),
        "label": batch["label"],
      }

    return pipelines.numpy_batches(ds.map(select, num_parallel_calls=tf.data.AUTOTUNE))

  return batches


def variant_workdir(workdir: str | os.PathLike, name: str) -> Path:
  """``<workdir>/<name>``: variant ``name``'s checkpoints, TensorBoard and results."""
  return Path(workdir) / name


def train_variant(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, name: str, context: RunContext
) -> dict:
  """Trains (or resumes) variant ``name`` in ``<workdir>/<name>``; returns its net variables."""
  state = create_state(config, name, num_classes(config, context))
  logging.info(
    "variant %s (%s): %d network parameters",
    name,
    dict(networks.variant_flags(config, name)),
    state_lib.num_params(state.params["net"]),
  )
  final = loop.run_training(
    config,
    variant_workdir(workdir, name),
    state,
    make_train_step(config, name, state.apply_fn),
    pair_batches(config, context),
  )
  return net_variables(final)


def net_variables(state: state_lib.TrainState) -> dict:
  """The network's flax variables from a (host) train state."""
  return {"params": state.params["net"], "batch_stats": state.batch_stats["net"]}


def restore_variant(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, name: str, context: RunContext
) -> tuple[dict, dict]:
  """``(net variables, checkpoint info)`` of the newest complete checkpoint of variant
  ``name`` (:func:`jfr.train.checkpoint.restore_with_info`)."""
  target = create_state(config, name, num_classes(config, context))
  state, info = checkpoint.restore_with_info(
    variant_workdir(workdir, name),
    target,
    config.keep_checkpoints,
    allow_older=config.allow_older_checkpoint,
  )
  return net_variables(state), info
