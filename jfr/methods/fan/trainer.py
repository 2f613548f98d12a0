"""FAN training: stage 1 (the feature extractor) and stage 2 (one aggregator per variant).

1. **Feature extractor** (Sec. 3.1.3): a ResNet with an ArcFace head trained on the identity
   stills (``dataset.train_split``) by :func:`jfr.methods.recognition.trainer.train` in
   ``<workdir>/extractor`` (its own checkpoints and resume), from the derived config
   :func:`jfr.methods.fan.settings.extractor_config`. It is then frozen (inference mode).
   With ``config.extractor.workdir`` set, stage 1 is skipped and the extractor is restored
   from that run instead (a converted or trained recognizer, or another FAN run's stage 1;
   :mod:`jfr.methods.fan.extractor_source`, recorded in ``extractor_source.json``).
2. **Face aggregator** (Secs. 3.1.1-3.2, 4.1): for every name in ``config.variants`` (a key of
   :data:`~jfr.methods.fan.constants.VARIANTS`, the loss combinations of Table 1), a
   :class:`~jfr.models.set_unet.SetUNet` generator and a
   :class:`~jfr.models.discriminator.Discriminator` are trained in
   ``<workdir>/aggregator_<name>`` on sets of N frames of the ``train_video`` clips
   (:func:`jfr.data.pipelines.set_batches`: positive = a still of the same identity,
   negative = a still of another one) with :func:`jfr.methods.fan.step.make_train_step`;
   Adam for both (one optimizer each, ``config.optimizer``).

Design choices (the paper does not fix them):

* Features for the losses are the extractor's un-normalised embeddings (the paper's beta = 32
  is for un-normalised ArcFace features); ``config.loss.beta`` is in those units (see
  ``configs/fan.py``; ``eval/fan_features.json`` reports the measured scale).
* The identity centres c^j of L_rec^cen (Eq. 9) start at the class means of the extractor's
  features of the train stills (:func:`identity_centers`; the ArcFace weights only give
  directions, not the un-normalised scale) and are then moved by Eq. 10.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jfr.context import RunContext
from jfr.data import pipelines
from jfr.eval import protocols
from jfr.methods.fan import aggregator
from jfr.methods.fan import extractor_source
from jfr.methods.fan import settings
from jfr.methods.fan import step
from jfr.eval.video_protocols import VIDEO_FEATURES
from jfr.methods.recognition import trainer as recognition_trainer
from jfr.report import results as results_lib
from jfr.report.timer import PhaseTimer
from jfr.train import checkpoint
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import state as state_lib


def identity_centers(
  config: ml_collections.ConfigDict, stills: dict, extractor_variables: Any, num_classes: int
) -> tuple[np.ndarray, dict]:
  """Initial centres c^j (Eq. 9): class means of the features of the train stills.

  Args:
    config: the FAN config.
    stills: ``image`` uint8 ``[M, H, W, 3]`` and ``label`` ``[M]`` of the train stills.
    extractor_variables: the stage-1 backbone's variables.
    num_classes: C, the number of train identities (labels ``0..C-1``).

  Returns:
    ``(centers [C, D] float32, statistics)``: the mean squared feature norm, the mean
    squared distance of a feature to its class mean and between class means (the scale
    that ``config.loss.beta`` must match).
  """
  embed = aggregator.model_range_embedder(config, extractor_variables)
  emb = protocols.batched_apply(
    lambda x: embed(pipelines.to_model_range_np(x)),
    stills["image"],
    batch_size=config.inference.batch_size,
  )
  emb = emb.astype(np.float64)
  labels = np.asarray(stills["label"])
  counts = np.bincount(labels, minlength=num_classes)
  if counts.size != num_classes or np.any(counts == 0):
    raise ValueError(
      f"dataset.train_split: labels must cover 0..{num_classes - 1}; "
      f"missing {np.flatnonzero(counts == 0)[:10].tolist()}"
    )
  centers = np.zeros((num_classes, emb.shape[1]))
  np.add.at(centers, labels, emb)
  centers /= counts[:, None]
  between = np.sum((centers[:, None] - centers[None]) ** 2, -1)
  stats = {
    "feature_dim": int(emb.shape[1]),
    "mean_squared_norm": float(np.mean(np.sum(emb**2, 1))),
    "mean_squared_distance_to_class_mean": float(np.mean(np.sum((emb - centers[labels]) ** 2, 1))),
    "mean_squared_distance_between_class_means": float(
      between.sum() / (num_classes * (num_classes - 1))
    ),
    "beta": float(config.loss.beta),
  }
  return centers.astype(np.float32), stats


def initial_variables(
  config: ml_collections.ConfigDict, image_size: int, shapes_only: bool = False
) -> dict[str, Any]:
  """Initial flax variables of the generator and the discriminator.

  Drawn once from ``config.seed`` and shared by every variant (so the ablations start
  from the same weights, and XLA compiles the initialisers once). ``shapes_only``
  gives zeros of the right shapes (a restore target; no random draw to compile).
  """
  n = config.aggregator.set_size
  frames = jnp.zeros((1, n, image_size, image_size, 3), jnp.float32)
  mask = jnp.ones((1, n), bool)
  images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  rng_g, rng_d = jax.random.split(jax.random.PRNGKey(config.seed))
  inits = {
    "generator": (aggregator.build_generator(config).init, rng_g, (frames, mask)),
    "discriminator": (aggregator.build_discriminator(config).init, rng_d, (images,)),
  }
  out = {}
  for name, (init, rng, inputs) in inits.items():
    if shapes_only:
      shapes = jax.eval_shape(init, rng, *inputs)
      out[name] = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    else:
      out[name] = jax.device_get(jax.jit(init)(rng, *inputs))
  return out


def create_aggregator_state(
  config: ml_collections.ConfigDict,
  extractor_variables: Any,
  centers: np.ndarray,
  initial: dict[str, Any],
  num_steps: int,
) -> state_lib.TrainState:
  """Stage-2 state: trainable 'generator' and 'discriminator' (Adam each, starting from
  ``initial`` of :func:`initial_variables`), frozen 'extractor', extras
  ``{'centers': [C, D]}``."""
  txs = {
    name: optimizers.make_optimizer(config.optimizer, num_steps)
    for name in ("generator", "discriminator")
  }
  return state_lib.create_train_state(
    jax.random.PRNGKey(config.seed),
    {
      "generator": (aggregator.build_generator(config), lambda rng: initial["generator"]),
      "discriminator": (
        aggregator.build_discriminator(config),
        lambda rng: initial["discriminator"],
      ),
    },
    txs,
    frozen={"extractor": (aggregator.extractor_module(config), extractor_variables)},
    extras={"centers": jnp.asarray(centers, jnp.float32)},
  )


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """Stage-2 input held in memory: grouped ``train_video`` clips and the stills pool."""

  videos: dict
  stills: dict
  image_size: int


def load_training_data(config: ml_collections.ConfigDict, context: RunContext) -> TrainingData:
  """Loads the clips of ``dataset.train_video_split`` and the stills of ``train_split``."""
  videos = pipelines.group_videos(
    pipelines.load_arrays(context.builder, config.dataset.train_video_split, VIDEO_FEATURES)
  )
  stills = pipelines.load_arrays(context.builder, context.train_split, ("image", "label"))
  return TrainingData(videos, stills, context.image_size)


def set_batch_iterator(
  config: ml_collections.ConfigDict, data: TrainingData
) -> Callable[[int], Iterator[dict]]:
  """``start -> iterator`` of validated host batches of training sets (for run_training)."""
  keys = ("frames", "mask", "label", "positive", "negative")

  def batches(start: int) -> Iterator[dict]:
    ds = pipelines.set_batches(
      data.videos,
      data.stills,
      config.batch_size,
      config.aggregator.set_size,
      seed=config.seed,
      start_batch=start,
      min_set_size=config.aggregator.min_set_size,
      augment_options=config.augment.to_dict(),
    )
    for batch in pipelines.numpy_batches(ds):
      aggregator.validate_face_sets(
        batch["frames"], batch["mask"], config.aggregator.max_members, data.image_size
      )
      yield {k: batch[k] for k in keys}

  return batches


def train_aggregator(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  variant: str,
  extractor_variables: Any,
  centers: np.ndarray,
  initial: dict[str, Any],
  data: TrainingData,
) -> Any:
  """Trains (or resumes) variant ``variant`` in ``<workdir>/aggregator_<variant>`` from
  the ``initial`` variables; returns the generator's parameters (host copy)."""
  cfg = settings.variant_config(config, variant)
  state = create_aggregator_state(cfg, extractor_variables, centers, initial, cfg.num_train_steps)
  logging.info(
    "aggregator %s: generator %d, discriminator %d parameters; %d steps",
    variant,
    state_lib.num_params(state.params["generator"]),
    state_lib.num_params(state.params["discriminator"]),
    cfg.num_train_steps,
  )
  final = loop.run_training(
    cfg,
    Path(workdir) / f"aggregator_{variant}",
    state,
    step.make_train_step(cfg, variant),
    set_batch_iterator(cfg, data),
  )
  return final.params["generator"]


def restore_aggregator(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  variant: str,
  extractor_variables: Any,
  context: RunContext,
) -> tuple[Any, dict]:
  """``(generator parameters, checkpoint info)`` of the newest checkpoint of ``variant``."""
  cfg = settings.variant_config(config, variant)
  dim = config.extractor.model.embedding_dim
  target = create_aggregator_state(
    cfg,
    extractor_variables,
    np.zeros((context.num_classes, dim), np.float32),
    initial_variables(cfg, context.image_size, shapes_only=True),
    cfg.num_train_steps,
  )
  state, info = checkpoint.restore_with_info(
    Path(workdir) / f"aggregator_{variant}",
    target,
    cfg.keep_checkpoints,
    allow_older=config.allow_older_checkpoint,
  )
  return state.params["generator"], info


def train(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  context: RunContext,
  timer: PhaseTimer,
) -> dict:
  """Stages 1 and 2 (module docstring), resuming each from its checkpoints; writes and
  returns the feature statistics of :func:`identity_centers` (``eval/fan_features.json``)."""
  if config.extractor.get("workdir"):  # a pretrained extractor: stage 1 is skipped
    with timer.phase("extractor_restore"):
      source, extractor, info = extractor_source.restore(config, context.image_size)
      extractor_source.record(workdir, source, info)
  else:
    ext_cfg = settings.extractor_config(config)
    with timer.phase("stage1_extractor"):
      extractor = recognition_trainer.train(ext_cfg, Path(workdir) / "extractor", context)
  with timer.phase("load_training_data"):
    data = load_training_data(config, context)
    initial = initial_variables(config, context.image_size)
  with timer.phase("centers"):
    centers, features = identity_centers(config, data.stills, extractor, context.num_classes)
  logging.info("extractor features: %s", features)
  results_lib.write_results(workdir, "fan_features", {"features": features})
  for name in config.variants:
    with timer.phase(f"stage2_{name}"):
      train_aggregator(config, workdir, name, extractor, centers, initial, data)
  return features


def restore(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, context: RunContext
) -> tuple[Any, dict[str, Any], dict[str, dict]]:
  """``(extractor variables, {variant: generator params}, {stage: checkpoint info})`` of the
  newest checkpoints (stages ``extractor`` and ``aggregator_<variant>``); the extractor comes
  from ``config.extractor.workdir`` when set (:mod:`jfr.methods.fan.extractor_source`)."""
  if config.extractor.get("workdir"):
    _, extractor, info = extractor_source.restore(config, context.image_size)
  else:
    extractor, info = recognition_trainer.restore(
      settings.extractor_config(config),
      Path(workdir) / "extractor",
      context.num_classes,
      context.image_size,
    )
  infos = {"extractor": info}
  generators = {}
  for name in config.variants:
    generators[name], infos[f"aggregator_{name}"] = restore_aggregator(
      config, workdir, name, extractor, context
    )
  return extractor, generators, infos
