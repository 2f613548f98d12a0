"""Face Aggregation Network trainer and experiment (Hörmann et al., ICIP 2021).

The main job of jfr (``configs/fan.py``). Stages:

1. **Feature extractor** (Sec. 3.1.3): a ResNet with an ArcFace head trained on the
   identity stills (``dataset.train_split``) by :func:`jfr.train.recognition.train`
   in ``<workdir>/extractor`` (its own checkpoints and resume), from the derived
   config :func:`extractor_config`. It is then frozen (inference mode).
2. **Face aggregator** (Secs. 3.1.1-3.2, 4.1): for every name in ``config.variants``
   (a key of :data:`VARIANTS`, the loss combinations of Table 1), a
   :class:`~jfr.models.set_unet.SetUNet` generator and a
   :class:`~jfr.models.discriminator.Discriminator` are trained in
   ``<workdir>/aggregator_<name>`` on sets of N frames of the ``train_video`` clips
   (:func:`jfr.data.pipelines.set_batches`: positive = a still of the same identity,
   negative = a still of another one). One step (:func:`make_train_step`): the
   generator is updated on L_G (Eq. 5), then the discriminator on L_adv^D (Eq. 12)
   with A held fixed (both gradients come from the same forward pass of A, as in
   the usual alternating GAN step), then the identity centres move by Eq. 10. Both
   use Adam (one optimizer each, ``config.optimizer``).
3. **Evaluation** on the held-out identities (:func:`evaluate`): the YTF-like
   verification table (Table 1 analog: ``avg`` vs every variant for each
   ``(N, n_avg)`` of ``eval.set_configs``), the motion-blur table (Table 4 analog:
   all but ``eval.blur_sharp_frames`` frames of each set blurred, kernel sizes
   ``eval.blur_kernel_sizes``), the IJB-like 1:N mixed-media table (Table 3 analog,
   with the share of feature extractions saved), and PNG grids of aggregated faces
   next to their inputs in ``<workdir>/figures``. Results: ``<workdir>/eval/fan_*.json``
   and ``fan_results.md``; ``fan_timing.json`` holds wall and CPU seconds per phase.

Design choices (the paper does not fix them):

* Features for the losses are the extractor's un-normalised embeddings (the paper's
  beta = 32 is for un-normalised ArcFace features); ``config.loss.beta`` is in those
  units (see ``configs/fan.py``; ``eval/fan_features.json`` reports the measured scale).
* The identity centres c^j of L_rec^cen (Eq. 9) start at the class means of the
  extractor's features of the train stills (the centre loss's definition of a centre;
  the ArcFace weights only give directions, not the un-normalised scale) and are then
  moved by Eq. 10 (moving average over the global batch, also under pmap).
* Modes: ``all`` (train, then evaluate), ``train`` (stages 1 and 2), ``eval`` (restores
  the newest checkpoints of both stages).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax import lax
from PIL import Image

from jfr.data import pipelines
from jfr.eval import plots
from jfr.eval import protocols
from jfr.eval import video_protocols as vp
from jfr.losses import fan as fan_losses
from jfr.models.discriminator import Discriminator
from jfr.models.set_unet import SetUNet, validate_set_inputs
from jfr.train import common
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import recognition
from jfr.train import state as state_lib
from jfr.train import steps
from jfr.train.checkpoint import restore_trained

MODES = ("all", "train", "eval")
VIDEO_FEATURES = ("image", "label", "video_id", "frame_index")


@dataclasses.dataclass(frozen=True)
class LossTerms:
  """Which terms of L_G (Eq. 5) a variant uses; L_dis (Eq. 6) is always on.

  Attributes:
    adversarial: L_adv^G (Eq. 11) and a discriminator trained with Eq. 12.
    reconstruction: 'center' (L_rec^cen, Eq. 9) or 'average' (L_rec^avg, Eq. 8).
    total_variation: L_tv (Eq. 13).
  """

  adversarial: bool
  reconstruction: str
  total_variation: bool = True


# Table 1 rows of the paper ("ours"): name -> loss terms.
VARIANTS = {
  "full": LossTerms(adversarial=True, reconstruction="center"),
  "no_adv": LossTerms(adversarial=False, reconstruction="center"),
  "rec_avg": LossTerms(adversarial=True, reconstruction="average"),
  "no_adv_rec_avg": LossTerms(adversarial=False, reconstruction="average"),
  "no_tv": LossTerms(adversarial=True, reconstruction="center", total_variation=False),
}


# ------------------------------------------------------------------------ config


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError for unknown or missing variants and inconsistent set sizes."""
  names = tuple(config.variants)
  if not names:
    raise ValueError("config.variants: expected at least one variant")
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    raise ValueError(f"config.variants: unknown {unknown}; known: {sorted(VARIANTS)}")
  if len(set(names)) != len(names):
    raise ValueError(f"config.variants: duplicates in {names}")
  for field in ("blur_variants", "ijb_variants"):
    missing = [n for n in config.eval[field] if n not in names]
    if missing:
      raise ValueError(f"config.eval.{field}: {missing} are not in config.variants {names}")
  agg = config.aggregator
  if not 1 <= agg.min_set_size <= agg.set_size <= agg.max_members:
    raise ValueError(
      "config.aggregator: expected 1 <= min_set_size <= set_size <= "
      f"max_members, got {agg.min_set_size}, {agg.set_size}, {agg.max_members}"
    )
  sizes = [n for n, _ in config.eval.set_configs] + [config.eval.blur_set_size]
  if max(sizes) > agg.max_members:
    raise ValueError(
      f"config.eval: set sizes {sizes} exceed aggregator.max_members {agg.max_members}"
    )


def extractor_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The recognition config of stage 1: ``config.extractor`` plus the FAN's dataset,
  seed and parallelism (see :mod:`jfr.train.recognition`)."""
  derived = ml_collections.ConfigDict(config.extractor.to_dict())
  derived.method = "recognition"
  derived.seed = config.seed
  derived.parallelism = config.parallelism
  derived.dataset = ml_collections.ConfigDict(config.dataset.to_dict())
  return derived


def variant_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """``config`` with the stage-2 schedule of variant ``name``: the first variant trains
  ``num_train_steps`` steps, the others ``ablation_num_train_steps`` (-1: the same)."""
  derived = config.copy_and_resolve_references()
  if name != config.variants[0] and config.ablation_num_train_steps > 0:
    derived.num_train_steps = config.ablation_num_train_steps
  return derived


# ------------------------------------------------------------------------ models


def build_generator(config: ml_collections.ConfigDict) -> SetUNet:
  """The face aggregator of ``config.aggregator``."""
  a = config.aggregator
  return SetUNet(
    base_features=a.base_features,
    max_members=a.max_members,
    output_activation=a.output_activation,
    transposed_conv=a.transposed_conv,
  )


def build_discriminator(config: ml_collections.ConfigDict) -> Discriminator:
  """The discriminator of ``config.discriminator``."""
  d = config.discriminator
  return Discriminator(features=tuple(d.features), negative_slope=d.negative_slope)


def extractor_module(config: ml_collections.ConfigDict):
  """The stage-1 backbone for inference (no cross-replica BatchNorm)."""
  return common.build_backbone(config.extractor.model, axis_name=None)


# -------------------------------------------------------------------- bad input


def validate_face_sets(frames: Any, mask: Any, max_members: int, image_size: int) -> None:
  """Checks face sets at the trainer/evaluation boundary.

  Args:
    frames: ``[B, N, H, W, 3]`` float images in [-1, 1].
    mask: ``[B, N]`` bool, True for real members.
    max_members: the configured maximum N (``config.aggregator.max_members``).
    image_size: the configured H = W (the dataset's image size).

  Raises:
    ValueError: an empty set (N = 0) or a set with no real member (all-False mask
      row), N above ``max_members``, images that are not ``image_size`` square RGB,
      a non-bool mask, or NaN/Inf pixels in a real member.
  """
  shape = np.shape(frames)
  if len(shape) == 5 and shape[2:4] != (image_size, image_size):
    raise ValueError(
      f"frames must hold {image_size}x{image_size} images (the configured "
      f"image size); got {shape[2]}x{shape[3]} in shape {shape}."
    )
  validate_set_inputs(frames, mask, max_members)


@functools.lru_cache(maxsize=4)
def _jitted_apply(module: SetUNet) -> Callable:
  """``jax.jit(module.apply)``, shared by every generator of equal configuration (the
  variants' aggregators then compile once per set size)."""
  return jax.jit(module.apply)


def make_aggregator(
  config: ml_collections.ConfigDict, generator_params: Any, image_size: int
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """A validated, batched ``aggregate(frames [B, N, H, W, 3], mask [B, N]) -> [B, H, W, 3]``.

  Inputs are checked with :func:`validate_face_sets`; the generator then runs jitted in
  chunks of ``config.eval.set_batch_size`` sets (one compilation per N).
  """
  apply = _jitted_apply(build_generator(config))
  variables = {"params": jax.device_put(generator_params)}

  def aggregate(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    validate_face_sets(frames, mask, config.aggregator.max_members, image_size)
    frames = np.asarray(frames, np.float32)
    return protocols.batched_apply(
      lambda f, m: apply(variables, f, m),
      frames,
      np.asarray(mask),
      batch_size=config.eval.set_batch_size,
    )

  return aggregate


# ----------------------------------------------------------------------- stage 1


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
  embed = common.embed_function(extractor_module(config), extractor_variables)
  emb = protocols.batched_apply(
    lambda x: embed(pipelines.to_model_range_np(x)),
    stills["image"],
    batch_size=config.eval.batch_size,
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


# ----------------------------------------------------------------------- stage 2


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
    "generator": (build_generator(config).init, rng_g, (frames, mask)),
    "discriminator": (build_discriminator(config).init, rng_d, (images,)),
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
      "generator": (build_generator(config), lambda rng: initial["generator"]),
      "discriminator": (build_discriminator(config), lambda rng: initial["discriminator"]),
    },
    txs,
    frozen={"extractor": (extractor_module(config), extractor_variables)},
    extras={"centers": jnp.asarray(centers, jnp.float32)},
  )


def _gather_replicas(tree: Any) -> Any:
  """All replicas' shares of a batch, concatenated (pmap); ``tree`` itself otherwise."""
  try:
    return jax.tree.map(lambda x: lax.all_gather(x, steps.BATCH_AXIS, tiled=True), tree)
  except NameError:  # the axis is unbound: jit or eager, one replica
    return tree


def make_train_step(config: ml_collections.ConfigDict, variant: str) -> steps.TrainStepFn:
  """The pure stage-2 step of ``variant`` (see the module docstring)."""
  terms = VARIANTS[variant]
  loss_cfg = config.loss

  def train_step(state: state_lib.TrainState, batch: dict, rng: jax.Array):
    del rng  # the step is deterministic; augmentation happens in the input pipeline
    frames, mask, labels = batch["frames"], batch["mask"], batch["label"]
    b, n = mask.shape

    def extract(images):
      return state.apply_fn["extractor"](state.frozen["extractor"], images, train=False)

    def discriminate(d_params, images):
      return state.apply_fn["discriminator"]({"params": d_params}, images)

    inputs = jnp.concatenate(
      [frames.reshape((b * n,) + frames.shape[2:]), batch["positive"], batch["negative"]]
    )
    feats = lax.stop_gradient(extract(inputs))
    f_inputs = feats[: b * n].reshape((b, n, -1))
    f_pos, f_neg = feats[b * n : b * n + b], feats[b * n + b :]
    centers = state.extras["centers"]

    def generator_objective(g_params):
      agg = state.apply_fn["generator"]({"params": g_params}, frames, mask)
      f_agg = extract(agg)
      dis = fan_losses.discriminative_loss(f_agg, f_pos, f_neg, f_inputs, mask, beta=loss_cfg.beta)
      if terms.reconstruction == "center":
        rec = fan_losses.reconstruction_loss_center(f_agg, centers, labels)
      else:
        rec = fan_losses.reconstruction_loss_avg(f_agg, f_inputs, mask)
      zero = jnp.zeros_like(dis)
      adv = (
        fan_losses.generator_adversarial_loss(discriminate(state.params["discriminator"], agg))
        if terms.adversarial
        else zero
      )
      tv = fan_losses.total_variation_loss(agg)
      total = fan_losses.generator_loss(
        dis,
        rec,
        adv,
        tv,
        lambda_dis=loss_cfg.lambda_dis,
        lambda_rec=loss_cfg.lambda_rec,
        lambda_adv=loss_cfg.lambda_adv if terms.adversarial else 0.0,
        lambda_tv=loss_cfg.lambda_tv if terms.total_variation else 0.0,
      )
      parts = {"dis": dis.mean(), "rec": rec.mean(), "adv": adv.mean(), "tv": tv.mean()}
      return total.mean(), (agg, parts)

    (g_loss, (agg, parts)), g_grads = jax.value_and_grad(generator_objective, has_aux=True)(
      state.params["generator"]
    )
    grads = {"generator": g_grads}
    metrics = {"loss_g": g_loss, **parts}
    loss = g_loss
    if terms.adversarial:
      fake = lax.stop_gradient(agg)

      def discriminator_objective(d_params):
        logits_fake = discriminate(d_params, fake)
        logits_real = discriminate(d_params, batch["positive"])
        d_loss = fan_losses.discriminator_loss(logits_fake, logits_real).mean()
        return d_loss, (jax.nn.sigmoid(logits_real).mean(), jax.nn.sigmoid(logits_fake).mean())

      (d_loss, (d_real, d_fake)), grads["discriminator"] = jax.value_and_grad(
        discriminator_objective, has_aux=True
      )(state.params["discriminator"])
      metrics.update(loss_d=d_loss, d_real=d_real, d_fake=d_fake)
      loss = loss + d_loss
    grads, metrics, loss = steps.cross_replica_mean((grads, metrics, loss))
    new_state = state_lib.apply_gradients(state, grads)
    all_labels, all_pos, all_inputs, all_mask = _gather_replicas((labels, f_pos, f_inputs, mask))
    new_centers = fan_losses.update_centers(
      centers, all_labels, all_pos, all_inputs, all_mask, rate=loss_cfg.center_rate
    )
    new_state = new_state.replace(extras={**state.extras, "centers": new_centers})
    state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
    return state, {**metrics, "nonfinite": nonfinite}

  return train_step


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """Stage-2 input held in memory: grouped ``train_video`` clips and the stills pool."""

  videos: dict
  stills: dict
  image_size: int


def load_training_data(config: ml_collections.ConfigDict, builder) -> TrainingData:
  """Loads the clips of ``dataset.train_video_split`` and the stills of ``train_split``."""
  videos = pipelines.group_videos(
    pipelines.load_arrays(builder, config.dataset.train_video_split, VIDEO_FEATURES)
  )
  stills = pipelines.load_arrays(builder, config.dataset.train_split, ("image", "label"))
  return TrainingData(videos, stills, common.image_size(builder))


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
    for batch in common.numpy_batches(ds):
      validate_face_sets(
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
  cfg = variant_config(config, variant)
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
    make_train_step(cfg, variant),
    set_batch_iterator(cfg, data),
  )
  return final.params["generator"]


def restore_aggregator(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  variant: str,
  extractor_variables: Any,
  num_classes: int,
  image_size: int,
) -> Any:
  """The generator parameters of the newest checkpoint of variant ``variant``."""
  cfg = variant_config(config, variant)
  dim = config.extractor.model.embedding_dim
  target = create_aggregator_state(
    cfg,
    extractor_variables,
    np.zeros((num_classes, dim), np.float32),
    initial_variables(cfg, image_size, shapes_only=True),
    cfg.num_train_steps,
  )
  path = Path(workdir) / f"aggregator_{variant}"
  return restore_trained(path, target, cfg.keep_checkpoints).params["generator"]


# -------------------------------------------------------------------- evaluation


def _aggregate_sets(
  aggregate: Callable, frames: np.ndarray, sets: list[tuple[int, int, np.ndarray]]
) -> np.ndarray:
  """Aggregates sets of different sizes (``(template, video, frame indices)``), one
  aggregator call per size; returns ``[len(sets), H, W, 3]`` in set order."""
  out = np.zeros((len(sets),) + frames.shape[2:], np.float32)
  sizes = np.array([len(idx) for _, _, idx in sets])
  for size in np.unique(sizes):
    rows = np.flatnonzero(sizes == size)
    group = np.stack([frames[sets[r][1], sets[r][2]] for r in rows])
    out[rows] = aggregate(group, np.ones(group.shape[:2], bool))
  return out


def _percent(report: dict) -> float:
  return round(100.0 * report["accuracy"], 2)


def _eer_percent(report: dict) -> float:
  return round(100.0 * report["all_pairs"]["eer"], 2)


def write_aggregation_grid(
  path: str | os.PathLike, sets: np.ndarray, outputs: np.ndarray, scale: int = 1
) -> None:
  """PNG: one row per set, its N input frames then (after a gap) the aggregated face.

  Args:
    path: output file.
    sets: ``[K, N, H, W, 3]`` float images in [-1, 1].
    outputs: ``[K, H, W, 3]`` aggregated images in [-1, 1] (clipped for display).
    scale: integer nearest-neighbour upscaling.
  """
  if sets.ndim != 5 or outputs.shape != (sets.shape[0],) + sets.shape[2:]:
    raise ValueError(
      f"sets [K, N, H, W, 3] and outputs [K, H, W, 3] do not match: {sets.shape}, {outputs.shape}"
    )
  k, n, h, w, _ = sets.shape
  gap = max(2, w // 8)
  canvas = np.full((k * (h + 2), (n + 1) * (w + 2) + gap, 3), 255, np.uint8)
  for row in range(k):
    y = row * (h + 2) + 1
    for col in range(n):
      x = col * (w + 2) + 1
      canvas[y : y + h, x : x + w] = pipelines.from_model_range(sets[row, col])
    x = n * (w + 2) + gap + 1
    canvas[y : y + h, x : x + w] = pipelines.from_model_range(outputs[row])
  image = Image.fromarray(canvas)
  if scale > 1:
    image = image.resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  image.save(path)


class _Timer:
  """Wall-clock and process CPU seconds per named phase."""

  def __init__(self):
    self.phases: dict[str, dict[str, float]] = {}

  @contextlib.contextmanager
  def phase(self, name: str):
    wall, cpu = time.perf_counter(), time.process_time()
    try:
      yield
    finally:
      self.phases[name] = {
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
      }
      logging.info(
        "phase %s: %.1f s wall, %.1f s CPU",
        name,
        self.phases[name]["wall_s"],
        self.phases[name]["cpu_s"],
      )


def _verification_table(config, verify, frame_feats, frames, lengths, embed, aggregators) -> dict:
  """Table 1 analog: accuracy of avg and every variant for each (N, n_avg)."""
  ev = config.eval
  table: dict[str, dict] = {"avg": {}}
  for n, n_avg in ev.set_configs:
    column = f"N={n},n_avg={n_avg}"
    reps = vp.average_representations(frame_feats, lengths, n, n_avg)
    table["avg"][column] = {**verify(reps), "embedded_images": int(lengths.size * n * n_avg)}
    groups = vp.resampled_groups(frames, lengths, n, n_avg)
    for name, aggregate in aggregators.items():
      reps, cost = vp.group_representations(
        groups, n_avg, embed_fn=embed, aggregate_fn=aggregate, batch_size=ev.batch_size
      )
      table.setdefault(name, {})[column] = {**verify(reps), **cost}
    logging.info("YTF-like %s: %s", column, {m: _percent(table[m][column]) for m in table})
  return table


def _blur_table(config, verify, frames, lengths, embed, aggregators) -> dict:
  """Table 4 analog: accuracy under motion blur of all but the sharp frames per set."""
  ev = config.eval
  groups = vp.resampled_groups(frames, lengths, ev.blur_set_size, ev.blur_n_avg)
  table: dict[str, dict] = {"avg": {}}
  for size in ev.blur_kernel_sizes:
    blurred, _, _ = vp.blur_groups(
      groups, size, num_sharp=ev.blur_sharp_frames, seed=config.seed + size
    )
    reps, _ = vp.group_representations(
      blurred, ev.blur_n_avg, embed_fn=embed, batch_size=ev.batch_size
    )
    table["avg"][str(size)] = verify(reps)
    for name in ev.blur_variants:
      reps, _ = vp.group_representations(
        blurred,
        ev.blur_n_avg,
        embed_fn=embed,
        aggregate_fn=aggregators[name],
        batch_size=ev.batch_size,
      )
      table.setdefault(name, {})[str(size)] = verify(reps)
    logging.info("blur %d: %s", size, {m: _percent(table[m][str(size)]) for m in table})
  return table


def _ijb_table(config, builder, embed, videos, frames, frame_feats, aggregators) -> dict:
  """Table 3 analog: 1:N mixed media, two galleries, avg vs aggregated video frames."""
  ev = config.eval
  stills = pipelines.load_arrays(builder, config.dataset.test_split, ("image", "label"))
  still_feats = protocols.batched_apply(
    embed, pipelines.to_model_range_np(stills["image"]), batch_size=ev.batch_size
  )
  gallery, probes = vp.mixed_media_templates(
    stills["label"],
    videos["labels"],
    videos["lengths"],
    gallery_stills=ev.ijb_gallery_stills,
    probes_per_subject=ev.ijb_probes_per_subject,
    seed=config.seed,
  )
  halves = vp.split_subjects(np.array([t.label for t in gallery]), seed=config.seed)
  g_labels = np.array([t.label for t in gallery])
  p_labels = np.array([t.label for t in probes])

  def identify(g_feats, p_feats):
    return vp.two_gallery_identification(
      g_feats, g_labels, p_feats, p_labels, halves, ranks=ev.ijb_ranks, fpirs=ev.ijb_fpirs
    )

  g_sets = vp.template_frame_sets(gallery, config.aggregator.max_members)
  p_sets = vp.template_frame_sets(probes, config.aggregator.max_members)
  cost = vp.extraction_cost(list(gallery) + list(probes), g_sets + p_sets)
  media = [
    vp.template_representations(
      templates, still_feats, sets=sets, set_features=vp.set_mean_features(frame_feats, sets)
    )
    for templates, sets in ((gallery, g_sets), (probes, p_sets))
  ]
  table = {
    "avg": identify(
      vp.template_representations(gallery, still_feats, frame_feats),
      vp.template_representations(probes, still_feats, frame_feats),
    ),
    "avg_media": identify(*media),
    "extraction_cost": cost,
    "templates": {"gallery": len(gallery), "probe": len(probes)},
  }
  for name in ev.ijb_variants:
    feats = []
    for templates, sets in ((gallery, g_sets), (probes, p_sets)):
      images = _aggregate_sets(aggregators[name], frames, sets)
      set_feats = protocols.batched_apply(embed, images, batch_size=ev.batch_size)
      feats.append(
        vp.template_representations(templates, still_feats, sets=sets, set_features=set_feats)
      )
    table[name] = identify(*feats)
  logging.info(
    "IJB-like: %s; saved %.1f%% of the feature extractions",
    {m: table[m]["mean"] for m in ["avg", "avg_media", *ev.ijb_variants]},
    100 * cost["saved_fraction"],
  )
  return table


def _write_figures(config, figdir: Path, frames, lengths, aggregators, blur_table) -> list[str]:
  """Aggregated faces next to their inputs (clean and blurred), and the blur curve."""
  ev = config.eval
  picks = np.unique(np.linspace(0, lengths.size - 1, ev.figure_sets).astype(int))
  groups = vp.resampled_groups(frames[picks], lengths[picks], ev.blur_set_size, 1)
  blurred, _, _ = vp.blur_groups(
    groups, ev.figure_blur_kernel, num_sharp=ev.blur_sharp_frames, seed=config.seed
  )
  scale = max(1, 96 // frames.shape[2])
  written = []
  for name, aggregate in aggregators.items():
    mask = np.ones(groups.shape[:2], bool)
    for tag, sets in (("clean", groups), (f"blur{ev.figure_blur_kernel}", blurred)):
      path = figdir / f"aggregation_{name}_{tag}.png"
      write_aggregation_grid(path, sets, aggregate(sets, mask), scale=scale)
      written.append(str(path))
  curves = {
    m: ([int(k) for k in row], [row[k]["accuracy"] for k in row]) for m, row in blur_table.items()
  }
  path = figdir / "blur_accuracy.png"
  plots.plot_curves(
    curves,
    path,
    "motion blur kernel size (px)",
    "verification accuracy",
    f"{ev.blur_sharp_frames} of {ev.blur_set_size} frames sharp",
  )
  written.append(str(path))
  return written


def _loss_flags(method: str) -> list[str]:
  """Table 1 check marks (L_adv, L_dis, L_rec^avg, L_rec^cen, L_tv) of a method."""
  if method == "avg":
    return [""] * 5
  t = VARIANTS[method]
  return [
    "x" if t.adversarial else "",
    "x",
    "x" if t.reconstruction == "average" else "",
    "x" if t.reconstruction == "center" else "",
    "x" if t.total_variation else "",
  ]


def _markdown(config, ytf: dict, blur: dict, ijb: dict, features: dict) -> str:
  """The three tables of the experiment as Markdown (accuracy of the balanced 10-fold
  protocol, and the EER over all video pairs, which has more statistical power)."""
  ev = config.eval
  columns = [f"N={n},n_avg={a}" for n, a in ev.set_configs]
  lines = [
    "# Face Aggregation Network on " + config.dataset.name,
    "",
    f"Feature scale: mean ||f||^2 = {features['mean_squared_norm']:.1f}, mean squared "
    f"distance between identity means = "
    f"{features['mean_squared_distance_between_class_means']:.1f}, beta = "
    f"{features['beta']}.",
    "",
  ]
  for title, value in (
    ("YTF-like verification accuracy [%] (Table 1 analog)", _percent),
    ("EER over all video pairs [%] (lower is better)", _eer_percent),
  ):
    lines += [
      f"## {title}",
      "",
      "| method | L_adv | L_dis | L_rec^avg | L_rec^cen | L_tv | steps | "
      + " | ".join(columns)
      + " | mean |",
      "|---" * (len(columns) + 8) + "|",
    ]
    for method, row in ytf.items():
      values = [value(row[c]) for c in columns]
      trained = "" if method == "avg" else str(variant_config(config, method).num_train_steps)
      lines.append(
        f"| {method} | "
        + " | ".join(_loss_flags(method))
        + f" | {trained} | "
        + " | ".join(f"{v:.2f}" for v in values)
        + f" | {np.mean(values):.2f} |"
      )
    lines.append("")
  sizes = [str(k) for k in ev.blur_kernel_sizes]
  lines += [
    f"## Motion blur, {ev.blur_set_size - ev.blur_sharp_frames} of "
    f"{ev.blur_set_size} frames blurred, n_avg = {ev.blur_n_avg} (Table 4 analog)",
    "",
    "| filter size | " + " | ".join(sizes) + " |",
    "|---" * (len(sizes) + 1) + "|",
  ]
  for label, value in (("accuracy [%]", _percent), ("EER all pairs [%]", _eer_percent)):
    for method, row in blur.items():
      lines.append(
        f"| {method}, {label} | " + " | ".join(f"{value(row[k]):.2f}" for k in sizes) + " |"
      )
  fp = [f"{f:g}" for f in ev.ijb_fpirs]
  cost = ijb["extraction_cost"]
  lines += [
    "",
    "## IJB-like 1:N mixed media, mean of two galleries [%] (Table 3 analog)",
    "",
    "| method | "
    + " | ".join(f"rank-{r}" for r in ev.ijb_ranks)
    + " | "
    + " | ".join(f"TPIR@FPIR={f}" for f in fp)
    + " | feature extractions |",
    "|---" * (len(ev.ijb_ranks) + len(fp) + 2) + "|",
  ]
  for method in ["avg", "avg_media", *ev.ijb_variants]:
    mean = ijb[method]["mean"]
    n = cost["extractions_avg"] if method.startswith("avg") else cost["extractions_aggregated"]
    lines.append(
      f"| {method} | "
      + " | ".join(f"{100 * mean[f'rank{r}']:.2f}" for r in ev.ijb_ranks)
      + " | "
      + " | ".join(f"{100 * mean['tpir_at_fpir'][f]:.2f}" for f in fp)
      + f" | {n} |"
    )
  lines += [
    "",
    "avg: mean of every still's and frame's feature (the paper's baseline); "
    "avg_media: every video part's mean frame feature counts as one item next to "
    "each still (as the aggregated image does).",
    "",
    f"Aggregation saves {100 * cost['saved_fraction']:.1f}% of the feature "
    f"extractions ({cost['extractions_aggregated']} instead of "
    f"{cost['extractions_avg']}).",
    "",
  ]
  return "\n".join(lines)


def evaluate(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  extractor_variables: Any,
  generators: dict[str, Any],
  features: dict,
  timer: _Timer | None = None,
) -> dict:
  """Runs the three protocols and writes tables, JSON and figures (module docstring).

  Args:
    config: the FAN config.
    workdir: output directory (``eval/`` and ``figures/`` are written in it).
    extractor_variables: the frozen stage-1 backbone's variables.
    generators: ``{variant: generator params}``.
    features: the statistics of :func:`identity_centers` (reported with the tables).
    timer: records the phases' times.
  """
  timer = timer or _Timer()
  workdir = Path(workdir)
  builder = common.dataset_builder(config)
  size = common.image_size(builder)
  ev = config.eval
  embed = common.embed_function(extractor_module(config), extractor_variables)
  with timer.phase("eval_load_videos"):
    videos = pipelines.group_videos(
      pipelines.load_arrays(builder, config.dataset.video_split, VIDEO_FEATURES)
    )
    frames, lengths = pipelines.to_model_range_np(videos["frames"]), videos["lengths"]
    v, t = frames.shape[:2]
    frame_feats = protocols.batched_apply(
      embed, frames.reshape((v * t,) + frames.shape[2:]), batch_size=ev.batch_size
    ).reshape(v, t, -1)
  aggregators = {name: make_aggregator(config, params, size) for name, params in generators.items()}
  a, b, same = vp.video_pairs(videos["labels"], folds=ev.folds, seed=config.seed)

  def verify(reps: np.ndarray) -> dict:
    report = protocols.verification_report(
      protocols.pair_scores(reps, a, b), same, ev.fars, ev.folds
    )
    return {**report, "all_pairs": vp.all_pairs_report(reps, videos["labels"], ev.fars)}

  with timer.phase("eval_ytf"):
    ytf = _verification_table(config, verify, frame_feats, frames, lengths, embed, aggregators)
  with timer.phase("eval_blur"):
    blur = _blur_table(config, verify, frames, lengths, embed, aggregators)
  with timer.phase("eval_ijb"):
    ijb = _ijb_table(config, builder, embed, videos, frames, frame_feats, aggregators)
  with timer.phase("figures"):
    figures = _write_figures(config, workdir / "figures", frames, lengths, aggregators, blur)
  results = {
    "ytf": ytf,
    "blur": blur,
    "ijb": ijb,
    "features": features,
    "pairs": {"genuine": int(same.sum()), "impostor": int((~same).sum()), "folds": ev.folds},
    "figures": figures,
  }
  for key in ("ytf", "blur", "ijb"):
    common.write_results(workdir, f"fan_{key}", {key: results[key]})
  markdown = _markdown(config, ytf, blur, ijb, features)
  (workdir / "eval" / "fan_results.md").write_text(markdown)
  logging.info("results:\n%s", markdown)
  return results


# --------------------------------------------------------------------------- run


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` ('all', 'train' or 'eval'; see the module docstring)."""
  common.check_mode(mode, MODES)
  check_config(config)
  workdir = Path(workdir)
  timer = _Timer()
  start = time.perf_counter(), time.process_time()
  ext_cfg = extractor_config(config)
  builder = common.dataset_builder(config)
  size = common.image_size(builder)
  with timer.phase("stage1_extractor"):
    if mode in ("all", "train"):
      extractor = recognition.train(ext_cfg, workdir / "extractor")
    else:
      extractor = recognition.restore_backbone(ext_cfg, workdir / "extractor")
  num_classes = common.num_train_classes(config, builder)
  generators = {}
  if mode in ("all", "train"):
    with timer.phase("load_training_data"):
      data = load_training_data(config, builder)
      initial = initial_variables(config, size)
    with timer.phase("centers"):
      centers, features = identity_centers(config, data.stills, extractor, num_classes)
    logging.info("extractor features: %s", features)
    for name in config.variants:
      with timer.phase(f"stage2_{name}"):
        generators[name] = train_aggregator(
          config, workdir, name, extractor, centers, initial, data
        )
    del data
  else:
    with timer.phase("centers"):
      stills = pipelines.load_arrays(builder, config.dataset.train_split, ("image", "label"))
      _, features = identity_centers(config, stills, extractor, num_classes)
    for name in config.variants:
      generators[name] = restore_aggregator(config, workdir, name, extractor, num_classes, size)
  common.write_results(workdir, "fan_features", {"features": features})
  results: dict = {}
  if mode in ("all", "eval"):
    with timer.phase("eval_extractor_stills"):
      results["extractor"] = recognition.evaluate(ext_cfg, workdir, extractor, name="extractor")
    results.update(evaluate(config, workdir, extractor, generators, features, timer))
  timer.phases["total"] = {
    "wall_s": round(time.perf_counter() - start[0], 1),
    "cpu_s": round(time.process_time() - start[1], 1),
  }
  (workdir / "eval").mkdir(parents=True, exist_ok=True)
  (workdir / "eval" / "fan_timing.json").write_text(json.dumps(timer.phases, indent=2))
  results["timing"] = timer.phases
  return results
