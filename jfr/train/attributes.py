"""Attribute-enhanced face identification (Taherkhani, Nasrabadi, Dawson): trainer and experiment.

"A Deep Face Identification Network Enhanced by Facial Attributes Prediction". The
model is :class:`jfr.models.attribute_net.AttributeIdentityNet` (net@1 = VGG-19 + GAP,
net@2 = an attribute branch and an identity branch fed with ``u ⊗ v``, Eq. 1). Losses:
L1 = per-attribute binary cross-entropy summed over the T attributes (Eq. 2,
:func:`jfr.losses.attributes.attribute_bce_loss`), L2 = softmax cross-entropy over the
C identities (Eq. 3, :func:`jfr.losses.margin.softmax_cross_entropy`); one Adam step
minimises ``loss.attribute_weight * L1 + loss.identity_weight * L2`` (1 and 1: the
paper's L1 + L2), each term the mean over the batch.

Stages (Sec. 5.2), per variant ``v`` of ``config.variants`` (``'joint'`` = Ours-J,
``'separate'`` = Ours-S, ``'concat'`` = ``[u, v]`` fusion, an ablation):

1. *Attribute-annotated training* (the CelebA step) on ``dataset.train_split`` with
   identity labels and the attributes ``attributes.names``, in ``<workdir>/<v>``.
2. *Identification fine-tuning* (the MegaFace step, ``finetune.enabled``) in
   ``<workdir>/<v>/finetune``: the stage-1 model is restored, its identity classifier
   (``identity_head/logits``) replaced by a fresh one over the fine-tuning identities,
   and the model is trained with L2 only on images *without* attribute labels: the
   model's own attribute predictions feed the fusion. With
   ``finetune.train_attribute_head=False`` (default) the attribute branch W_{2,1} gets
   no update (optax ``set_to_zero``), so that v keeps meaning "attribute logits"; the
   shared trunk W_1 and the identity branch W_{2,2} are trained. (The paper fine-tunes
   "the model parameters"; with True every parameter is.) The enrolled identities and
   fine-tuning stills are recorded in ``<workdir>/<v>/finetune/protocol.json``; a later
   run or evaluation under another protocol is refused (:func:`check_protocol_record`).

On ``synthetic_faces`` the FaceScrub/MegaFace roles are played by the *test*
identities (never seen in stage 1), split by :func:`identity_protocol`:

* ``protocol.probe_identity_fraction`` of them are the FaceScrub-like identities. Of
  each one's stills, ``finetune.images_per_identity`` form the stage-2 training set
  (attributes not used), ``protocol.gallery_per_identity`` are enrolled in the gallery
  and the rest are probes. The fine-tuning images are reserved even when fine-tuning
  is off, so that both stages are scored on the same probes.
* The other test identities are MegaFace-like distractors: all their stills plus every
  ``protocol.video_frame_stride``-th frame of their clips in ``dataset.video_split``.
  They are never trained on.

Evaluation (mode ``eval``; ``all`` = ``train`` then ``eval``), written to
``<workdir>/eval/attributes.json`` and ``attributes.md`` (also logged):

* Table 1 analog: per-attribute accuracy of each stage-1 model on the whole
  ``dataset.test_split`` (identity-disjoint from training), with the positive rate and
  the majority-class baseline; after fine-tuning, the attribute accuracy on the
  distractor identities shows how far the attribute branch drifted.
* Identification: cosine similarity of the identity branch's pre-classifier features
  (``features``); rank-1 and the CMC up to ``protocol.max_rank`` with
  ``protocol.distractor_counts`` distractors in the gallery
  (:func:`jfr.eval.protocols.cmc_with_distractors`), for the stage-1 model (open set:
  test identities unseen) and the fine-tuned one. PNGs: ``eval/cmc_<stage>.png`` (CMC
  at the largest count) and ``eval/rank1_vs_distractors_<stage>.png``.
* Fig. 4 analog: attribute activation maps of the stage-1 attribute branch
  (:func:`jfr.models.attribute_net.attribute_maps`: CAM, exact for a linear branch,
  Grad-CAM weights otherwise), bilinearly upsampled to the image, drawn as overlays in
  ``<workdir>/figures/cam_<v>.png`` (white contour: the attribute's face region). On
  data with part segmentation, :func:`map_mass_shares` measures the share of each
  attribute's map mass inside its face region (:data:`ATTRIBUTE_REGIONS`) on the first
  ``cam.num_images`` test stills where the attribute is present, next to the region's
  area share (what a uniform map would get).

Attribute -> region (:data:`ATTRIBUTE_REGIONS`; regions from the amodal part
segmentation and the 68 landmarks, see :func:`region_masks`): Narrow_Eyes -> eyes;
Big_Nose, Pointy_Nose -> nose; Big_Lips (and Smiling, Mouth_Slightly_Open) -> mouth;
Bald -> scalp (hair and skin above the brow line); Double_Chin, 5_o_Clock_Shadow ->
lower face (skin below the lowest lip landmark: chin, jaw, neck); Chubby,
High_Cheekbones, Oval_Face, Pale_Skin -> skin; Male, Young -> face (every non-background
pixel); hair colours -> hair; Bushy_Eyebrows -> brows; Eyeglasses -> eyes. Blurry has
no region and is not scored.

Parameters are initialised from an ``'rbg'`` key derived from the train state's key:
XLA:CPU compiles the threefry initialisers of the 16 convolutions much more slowly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tensorflow as tf
from absl import logging
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jfr.data import pipelines
from jfr.eval import plots
from jfr.eval import protocols
from jfr.losses import attributes as attribute_losses
from jfr.losses import margin
from jfr.models import attribute_net
from jfr.train import common
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import state as state_lib
from jfr.train import steps
from jfr.train.checkpoint import restore_trained

MODES = ("all", "train", "eval")
VARIANT_LABELS = {
  "separate": "Ours-S (separate)",
  "joint": "Ours-J (joint)",
  "concat": "concat [u, v]",
}
STAGES = ("pretrained", "finetuned")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
ATTRIBUTE_REGIONS: dict[str, str | None] = {
  "Narrow_Eyes": "eyes",
  "Big_Nose": "nose",
  "Pointy_Nose": "nose",
  "Chubby": "skin",
  "Double_Chin": "lower_face",
  "High_Cheekbones": "skin",
  "Male": "face",
  "Bald": "scalp",
  "Big_Lips": "mouth",
  "Oval_Face": "skin",
  "Eyeglasses": "eyes",
  "Smiling": "mouth",
  "Mouth_Slightly_Open": "mouth",
  "Young": "face",
  "Gray_Hair": "hair",
  "Black_Hair": "hair",
  "Blond_Hair": "hair",
  "Brown_Hair": "hair",
  "Bushy_Eyebrows": "brows",
  "Pale_Skin": "skin",
  "5_o_Clock_Shadow": "lower_face",
  "Blurry": None,
}
_BROWS = slice(17, 27)  # iBUG-68 landmark ranges
_MOUTH = slice(48, 68)
_SEGMENT_FEATURES = ("segmentation", "landmarks")


# --------------------------------------------------------------------------- validation


def attribute_indices(names: Sequence[str], available: Sequence[str] | None) -> tuple[int, ...]:
  """Positions of the configured attributes in the data set's attribute vector.

  Args:
    names: ``config.attributes.names`` (T >= 1 distinct names).
    available: the data set's ``attribute_names`` metadata (None: it has none).

  Raises:
    ValueError: T = 0, duplicates, a name the data set does not have, or no metadata.
  """
  names = tuple(names)
  if not names:
    raise ValueError("config.attributes.names: expected at least one attribute (T >= 1), got none")
  if available is None:
    raise ValueError(
      "dataset: it has no 'attribute_names' metadata; attribute training needs "
      "an attribute-annotated data set"
    )
  available = tuple(available)
  unknown = [n for n in names if n not in available]
  if unknown:
    raise ValueError(
      f"config.attributes.names: {unknown} are not attributes of the data set; "
      f"available: {available}"
    )
  if len(set(names)) != len(names):
    raise ValueError(f"config.attributes.names: duplicate names in {names}")
  return tuple(available.index(n) for n in names)


def _dataset_attribute_names(builder) -> Sequence[str] | None:
  metadata = builder.info.metadata
  return None if metadata is None else metadata.get("attribute_names")


def _check_labels(labels: np.ndarray, num_classes: int, what: str) -> None:
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(
      f"{what}: identity labels must lie in [0, {num_classes}) "
      f"(config.dataset.num_classes / the data set's identity count), got "
      f"labels in [{labels.min()}, {labels.max()}]"
    )


def _check_variants(variants: Sequence[str]) -> tuple[str, ...]:
  variants = tuple(variants)
  bad = [v for v in variants if v not in attribute_net.MODES]
  if not variants or bad or len(set(variants)) != len(variants):
    raise ValueError(
      f"config.variants: expected distinct entries of {attribute_net.MODES}, got {variants}"
    )
  return variants


@dataclasses.dataclass(frozen=True)
class _Data:
  """What every stage needs to know about the data set."""

  builder: Any
  indices: tuple[int, ...]  # attribute columns
  names: tuple[str, ...]  # attribute names (T)
  num_classes: int  # C of stage 1
  image_size: int


def _prepare_data(config: ml_collections.ConfigDict) -> _Data:
  """Validates the variants and attribute names; returns the data facts."""
  _check_variants(config.variants)
  builder = common.dataset_builder(config)
  indices = attribute_indices(config.attributes.names, _dataset_attribute_names(builder))
  _figure_attributes(config, tuple(config.attributes.names))
  num_classes = common.num_train_classes(config, builder)
  return _Data(
    builder, indices, tuple(config.attributes.names), num_classes, common.image_size(builder)
  )


# ------------------------------------------------------------------------- model, state


def build_model(
  config: ml_collections.ConfigDict,
  mode: str,
  num_attributes: int,
  num_classes: int,
  axis_name: str | None,
) -> attribute_net.AttributeIdentityNet:
  """The :class:`AttributeIdentityNet` of ``config.model`` in fusion ``mode``."""
  if config.model.dtype not in DTYPES:
    raise ValueError(
      f"config.model.dtype: expected one of {sorted(DTYPES)}, got {config.model.dtype!r}"
    )
  return attribute_net.AttributeIdentityNet(
    num_attributes=num_attributes,
    num_classes=num_classes,
    mode=mode,
    widths=tuple(config.model.widths),
    attribute_hidden=config.model.attribute_hidden,
    identity_hidden=config.model.identity_hidden,
    axis_name=axis_name,
    dtype=DTYPES[config.model.dtype],
  )


def _rbg_key(raw_key: jax.Array) -> jax.Array:
  """An 'rbg' key (uint32[4] data) from a raw threefry key uint32[2], deterministically."""
  return jax.random.wrap_key_data(
    jnp.concatenate([raw_key, raw_key ^ jnp.uint32(0x9E3779B9)]), impl="rbg"
  )


def create_state(
  config: ml_collections.ConfigDict,
  mode: str,
  num_attributes: int,
  num_classes: int,
  image_size: int,
) -> state_lib.TrainState:
  """Stage-1 state: one sub-model ``'net'`` (the whole network) with ``config.optimizer``."""
  model = build_model(
    config, mode, num_attributes, num_classes, steps.bn_axis_name(config.parallelism)
  )
  images = jnp.zeros((2, image_size, image_size, 3), jnp.float32)
  init = lambda rng: model.init(_rbg_key(rng), images, train=False)
  tx = optimizers.make_optimizer(config.optimizer, config.num_train_steps)
  return state_lib.create_train_state(
    jax.random.PRNGKey(config.seed), {"net": (model, init)}, {"net": tx}
  )


def _finetune_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  tx = optimizers.make_optimizer(config.finetune.optimizer, config.finetune.num_train_steps)
  if config.finetune.train_attribute_head:
    return tx
  labels = lambda params: {k: "frozen" if k == "attribute_head" else "train" for k in params}
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def create_finetune_state(
  config: ml_collections.ConfigDict,
  mode: str,
  pretrained: state_lib.TrainState,
  num_attributes: int,
  num_classes: int,
) -> state_lib.TrainState:
  """Stage-2 state: the stage-1 network with a fresh identity classifier over ``num_classes``.

  Every parameter and batch statistic is copied from ``pretrained`` except
  ``identity_head/logits``, which is initialised anew (flax's Dense init: LeCun-normal
  kernel, zero bias) from key ``config.seed + 1``; the optimizer state starts fresh.
  """
  model = build_model(
    config, mode, num_attributes, num_classes, steps.bn_axis_name(config.parallelism)
  )
  old_params = pretrained.params["net"]
  old_stats = pretrained.batch_stats["net"]
  width = old_params["identity_head"]["logits"]["kernel"].shape[0]

  def init(rng):  # zeros of the right shapes (no large constants), a fresh classifier
    zeros = lambda x: jnp.zeros(x.shape, x.dtype)
    params = jax.tree.map(zeros, old_params)
    params["identity_head"] = {
      **params["identity_head"],
      "logits": {
        "kernel": nn.initializers.lecun_normal()(rng, (width, num_classes), jnp.float32),
        "bias": jnp.zeros((num_classes,), jnp.float32),
      },
    }
    return {"params": params, "batch_stats": jax.tree.map(zeros, old_stats)}

  state = state_lib.create_train_state(
    jax.random.PRNGKey(config.seed + 1),
    {"net": (model, init)},
    {"net": _finetune_optimizer(config)},
  )
  fresh = state.params["net"]["identity_head"]["logits"]
  params = {**old_params, "identity_head": {**old_params["identity_head"], "logits": fresh}}
  return state.replace(params={"net": params}, batch_stats={"net": old_stats})


def make_train_step(attribute_weight: float, identity_weight: float) -> steps.TrainStepFn:
  """The pure train step: ``attribute_weight * L1 + identity_weight * L2``, one update.

  L1 (Eq. 2) needs ``batch['attributes']`` float ``[B, T]`` in {0, 1}; it is left out
  (and not required) when ``attribute_weight == 0`` (the fine-tuning stage). L2 (Eq. 3)
  takes ``batch['label']`` int ``[B]``. Metrics: ``loss``, ``identity_loss``,
  ``identity_accuracy`` and, with L1, ``attribute_loss``, ``attribute_accuracy`` (mean
  over attributes), plus ``nonfinite``.
  """
  if attribute_weight < 0 or identity_weight < 0:
    raise ValueError(
      f"loss weights must be >= 0, got attribute_weight={attribute_weight}, "
      f"identity_weight={identity_weight}"
    )

  def train_step(state, batch, rng):
    del rng  # no randomness in the step (augmentation is in the input pipeline)

    def loss_fn(params):
      out, updates = state.apply_fn["net"](
        {"params": params, "batch_stats": state.batch_stats["net"]},
        batch["image"],
        train=True,
        mutable=["batch_stats"],
      )
      identity_loss = margin.softmax_cross_entropy(out["identity_logits"], batch["label"]).mean()
      metrics = {
        "identity_loss": identity_loss,
        "identity_accuracy": jnp.mean(jnp.argmax(out["identity_logits"], -1) == batch["label"]),
      }
      loss = identity_weight * identity_loss
      if attribute_weight:
        attribute_loss = attribute_losses.attribute_bce_loss(
          out["attribute_logits"], batch["attributes"]
        ).mean()
        loss = loss + attribute_weight * attribute_loss
        metrics["attribute_loss"] = attribute_loss
        metrics["attribute_accuracy"] = jnp.mean(
          (out["attribute_logits"] > 0) == (batch["attributes"] > 0.5)
        )
      return loss, (updates["batch_stats"], metrics)

    (loss, (new_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params["net"]
    )
    grads, loss, metrics = steps.cross_replica_mean((grads, loss, metrics))
    new_state = state_lib.apply_gradients(state, {"net": grads}, batch_stats={"net": new_stats})
    state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
    return state, {"loss": loss, **metrics, "nonfinite": nonfinite}

  return train_step


def _abstract(fn: Callable[[], state_lib.TrainState]) -> state_lib.TrainState:
  """The state ``fn`` would build, as shapes only (a restore target, nothing compiled)."""
  return jax.eval_shape(fn)


def _restore(workdir: Path, target: state_lib.TrainState, keep: int) -> state_lib.TrainState:
  """The newest checkpoint of ``workdir`` (ValueError naming any mismatching parameter)."""
  return restore_trained(workdir, target, keep)


def restore_pretrained(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  mode: str,
  num_attributes: int,
  num_classes: int,
  image_size: int,
) -> state_lib.TrainState:
  """The stage-1 state of variant ``mode`` from ``<workdir>/<mode>``.

  Raises:
    ValueError: no checkpoint, or one written for another T, C or model (it names the
      first mismatching parameter, e.g. ``params.net.attribute_head.logits.kernel``).
  """
  target = _abstract(lambda: create_state(config, mode, num_attributes, num_classes, image_size))
  return _restore(Path(workdir) / mode, target, config.keep_checkpoints)


# ------------------------------------------------------------------------------- inputs


def _stage1_batches(config: ml_collections.ConfigDict, data: _Data):
  """``start -> iterator`` of stage-1 host batches: image, label, attributes [B, T] float."""
  columns = np.asarray(data.indices)

  def batches(start: int):
    ds = pipelines.image_batches(
      data.builder,
      config.dataset.train_split,
      config.batch_size,
      seed=config.seed,
      start_batch=start,
      features=("image", "label", "attributes"),
      augment_options=config.augment.to_dict(),
    )
    for batch in common.numpy_batches(ds):
      yield {
        "image": batch["image"],
        "label": batch["label"].astype(np.int32),
        "attributes": batch["attributes"][:, columns].astype(np.float32),
      }

  return batches


def array_batches(
  images: np.ndarray,
  labels: np.ndarray,
  batch_size: int,
  *,
  seed: int,
  start_batch: int = 0,
  augment_options: Mapping[str, Any] | None = None,
) -> tf.data.Dataset:
  """Infinite shuffled batches from in-memory stills (the fine-tuning set).

  Deterministic in ``(seed, start_batch)`` like :func:`jfr.data.pipelines.image_batches`:
  a seeded shuffle, stateless augmentation seeded by ``(seed, example index)``, and a
  resume that skips the ``start_batch`` batches already consumed.

  Args:
    images: uint8 ``[N, H, W, 3]``.
    labels: int ``[N]``.
    batch_size: the global batch size (each process yields its share).
    seed: shuffle and augmentation seed.
    start_batch: batches already consumed.
    augment_options: see :func:`jfr.data.pipelines.augment_image`; None: no augmentation.

  Returns:
    Dataset of ``{'image': float32 [b, H, W, 3] in [-1, 1], 'label': int32 [b]}``.
  """
  if images.ndim != 4 or len(images) != len(labels) or not len(images):
    raise ValueError(
      f"images/labels: expected [N, H, W, 3] and [N] with N >= 1, got "
      f"{images.shape} and {np.shape(labels)}"
    )
  b = pipelines.host_batch_size(batch_size)
  ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels.astype(np.int32)})
  ds = ds.shard(jax.process_count(), jax.process_index())
  ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
  ds = ds.enumerate().skip(start_batch * b)

  def prepare(index, ex):
    image = pipelines.to_model_range(ex["image"])
    if augment_options:
      image = pipelines.augment_image(
        image, tf.stack([tf.constant(seed, tf.int64), index]), augment_options
      )
    return {"image": image, "label": ex["label"]}

  ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(b, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class IdentityProtocol:
  """Indices into the test split (see :func:`identity_protocol`).

  Attributes:
    probe_identities: the enrolled (FaceScrub-like) identities, sorted.
    distractor_identities: the others, sorted.
    finetune: stills of the enrolled identities reserved for stage 2.
    gallery: enrolled stills.
    probe: probe stills (each identity's remaining ones).
    distractor_stills: every still of the distractor identities.
  """

  probe_identities: np.ndarray
  distractor_identities: np.ndarray
  finetune: np.ndarray
  gallery: np.ndarray
  probe: np.ndarray
  distractor_stills: np.ndarray


def identity_protocol(
  labels: np.ndarray,
  *,
  probe_identity_fraction: float,
  finetune_per_identity: int,
  gallery_per_identity: int,
  seed: int,
) -> IdentityProtocol:
  """Splits test stills into fine-tuning / gallery / probe / distractor sets (seeded).

  Args:
    labels: ``[N]`` identity labels of the test split's stills.
    probe_identity_fraction: share of identities enrolled and probed (0, 1).
    finetune_per_identity: stills of each enrolled identity kept for fine-tuning (>= 0).
    gallery_per_identity: stills of each enrolled identity in the gallery (>= 1).
    seed: RNG seed of the identity and image draws.

  Raises:
    ValueError: a fraction leaving no enrolled or no distractor identity, or an
      enrolled identity with fewer than ``finetune + gallery + 1`` stills.
  """
  labels = np.asarray(labels)
  if finetune_per_identity < 0 or gallery_per_identity < 1:
    raise ValueError(
      f"finetune_per_identity >= 0 and gallery_per_identity >= 1 expected, got "
      f"{finetune_per_identity}, {gallery_per_identity}"
    )
  ids = np.unique(labels)
  count = int(round(probe_identity_fraction * ids.size))
  if not 1 <= count < ids.size:
    raise ValueError(
      f"protocol.probe_identity_fraction={probe_identity_fraction} gives {count} "
      f"of {ids.size} identities; need at least one enrolled and one distractor"
    )
  rng = np.random.default_rng(seed)
  order = rng.permutation(ids)
  enrolled, distractors = np.sort(order[:count]), np.sort(order[count:])
  parts = {"finetune": [], "gallery": [], "probe": []}
  need = finetune_per_identity + gallery_per_identity + 1
  for identity in enrolled:
    items = rng.permutation(np.flatnonzero(labels == identity))
    if items.size < need:
      raise ValueError(
        f"identity {identity} has {items.size} stills; the protocol needs "
        f"{need} (finetune.images_per_identity + protocol.gallery_per_identity "
        "+ 1 probe)"
      )
    parts["finetune"].extend(items[:finetune_per_identity])
    parts["gallery"].extend(items[finetune_per_identity : need - 1])
    parts["probe"].extend(items[need - 1 :])
  as_index = lambda x: np.sort(np.asarray(x, np.int64))
  return IdentityProtocol(
    enrolled,
    distractors,
    as_index(parts["finetune"]),
    as_index(parts["gallery"]),
    as_index(parts["probe"]),
    np.flatnonzero(np.isin(labels, distractors)),
  )


@dataclasses.dataclass(frozen=True)
class _EvalData:
  """Test stills (uint8, in memory), distractor frames and the protocol."""

  test: dict[str, np.ndarray]
  distractor_frames: np.ndarray
  protocol: IdentityProtocol


def _load_eval_data(config: ml_collections.ConfigDict, data: _Data) -> _EvalData:
  features = ["image", "label", "attributes"]
  if all(f in data.builder.info.features for f in _SEGMENT_FEATURES):
    features += list(_SEGMENT_FEATURES)
  test = pipelines.load_arrays(data.builder, config.dataset.test_split, tuple(features))
  protocol = identity_protocol(
    test["label"],
    probe_identity_fraction=config.protocol.probe_identity_fraction,
    finetune_per_identity=config.finetune.images_per_identity,
    gallery_per_identity=config.protocol.gallery_per_identity,
    seed=config.protocol.seed,
  )
  frames = _distractor_frames(config, data.builder, protocol.distractor_identities)
  return _EvalData(test, frames, protocol)


def _distractor_frames(
  config: ml_collections.ConfigDict, builder, identities: np.ndarray
) -> np.ndarray:
  """uint8 frames of the distractor identities' clips (every ``video_frame_stride``-th)."""
  stride = config.protocol.video_frame_stride
  size = common.image_size(builder)
  if stride == 0:
    return np.zeros((0, size, size, 3), np.uint8)
  if stride < 0:
    raise ValueError(f"config.protocol.video_frame_stride: expected >= 0, got {stride}")
  chosen = []
  for batch in common.numpy_batches(
    pipelines.eval_batches(
      builder,
      config.dataset.video_split,
      config.protocol.batch_size,
      features=("image", "label", "frame_index"),
    )
  ):
    keep = (
      batch["valid"] & np.isin(batch["label"], identities) & (batch["frame_index"] % stride == 0)
    )
    chosen.append(pipelines.from_model_range(batch["image"][keep]))
  return np.concatenate(chosen) if chosen else np.zeros((0, size, size, 3), np.uint8)


# ------------------------------------------------------------------------------ training


def _run_config(
  config: ml_collections.ConfigDict, num_train_steps: int, batch_size: int
) -> ml_collections.ConfigDict:
  """A copy of ``config`` whose engine fields describe another stage."""
  out = config.copy_and_resolve_references()
  out.num_train_steps = num_train_steps
  out.batch_size = batch_size
  return out


def train_pretrained(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, mode: str, data: _Data
) -> state_lib.TrainState:
  """Stage 1 of variant ``mode`` in ``<workdir>/<mode>`` (resumes; no-op when finished)."""
  state = create_state(config, mode, len(data.indices), data.num_classes, data.image_size)
  logging.info("%s: %d parameters", mode, state_lib.num_params(state.params["net"]))
  step = make_train_step(config.loss.attribute_weight, config.loss.identity_weight)
  return loop.run_training(config, Path(workdir) / mode, state, step, _stage1_batches(config, data))


def check_protocol_record(directory: Path, protocol: IdentityProtocol, write: bool) -> None:
  """Guards against fine-tuning and evaluating under different identity protocols.

  ``<directory>/protocol.json`` records the enrolled identities and the fine-tuning
  stills of the run that trained there. With ``write`` it is created when absent;
  an existing record (or, without ``write``, a missing one) must match ``protocol``,
  else fine-tuning images could become probes.

  Raises:
    ValueError: the record is missing (``write=False``) or differs from ``protocol``.
  """
  path = directory / "protocol.json"
  current = {
    "probe_identities": protocol.probe_identities.tolist(),
    "finetune": protocol.finetune.tolist(),
  }
  if not path.exists():
    if not write:
      raise ValueError(f"workdir: {path} is missing; run --mode=train first")
    plots.write_json(current, path)
    return
  recorded = json.loads(path.read_text(encoding="utf-8"))
  if recorded != current:
    raise ValueError(
      f"config.protocol / config.finetune.images_per_identity: the identity "
      f"protocol differs from the one recorded in {path} when this model was "
      "fine-tuned (keep protocol.seed, probe_identity_fraction and "
      "finetune.images_per_identity, or use a new workdir)"
    )


def finetune(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  mode: str,
  pretrained: state_lib.TrainState,
  data: _Data,
  test: Mapping[str, np.ndarray],
  protocol: IdentityProtocol,
) -> state_lib.TrainState:
  """Stage 2 of variant ``mode`` in ``<workdir>/<mode>/finetune``: L2 only, no attributes."""
  images = test["image"][protocol.finetune]
  labels = np.searchsorted(protocol.probe_identities, test["label"][protocol.finetune])
  if not len(images):
    raise ValueError(
      "config.finetune.images_per_identity: fine-tuning needs >= 1 image per identity"
    )
  ft = config.finetune
  check_protocol_record(Path(workdir) / mode / "finetune", protocol, write=True)
  state = create_finetune_state(
    config, mode, pretrained, len(data.indices), len(protocol.probe_identities)
  )
  run_config = _run_config(config, ft.num_train_steps, ft.batch_size)
  batches = lambda start: common.numpy_batches(
    array_batches(
      images,
      labels,
      ft.batch_size,
      seed=config.seed,
      start_batch=start,
      augment_options=config.augment.to_dict(),
    )
  )
  step = make_train_step(0.0, config.loss.identity_weight)
  return loop.run_training(run_config, Path(workdir) / mode / "finetune", state, step, batches)


def train(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, data: _Data, eval_data: _EvalData
) -> dict[str, dict[str, state_lib.TrainState]]:
  """Both stages of every variant; ``{variant: {stage: host state}}``."""
  labels = pipelines.load_arrays(data.builder, config.dataset.train_split, ("label",))["label"]
  _check_labels(labels, data.num_classes, f"dataset {config.dataset.train_split!r} split")
  states = {}
  for mode in _check_variants(config.variants):
    start = time.perf_counter()
    states[mode] = {"pretrained": train_pretrained(config, workdir, mode, data)}
    if config.finetune.enabled:
      states[mode]["finetuned"] = finetune(
        config, workdir, mode, states[mode]["pretrained"], data, eval_data.test, eval_data.protocol
      )
    logging.info("%s: trained in %.0f s", mode, time.perf_counter() - start)
  return states


def restore(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, data: _Data, eval_data: _EvalData
) -> dict[str, dict[str, state_lib.TrainState]]:
  """The trained states of every variant (and stage) from ``workdir``."""
  states = {}
  num_attributes = len(data.indices)
  for mode in _check_variants(config.variants):
    pretrained = restore_pretrained(
      config, workdir, mode, num_attributes, data.num_classes, data.image_size
    )
    states[mode] = {"pretrained": pretrained}
    if config.finetune.enabled:
      classes = len(eval_data.protocol.probe_identities)
      target = _abstract(
        lambda: create_finetune_state(config, mode, pretrained, num_attributes, classes)
      )
      check_protocol_record(Path(workdir) / mode / "finetune", eval_data.protocol, write=False)
      states[mode]["finetuned"] = _restore(
        Path(workdir) / mode / "finetune", target, config.keep_checkpoints
      )
  return states


# ---------------------------------------------------------------------------- inference


def _batched(
  fn: Callable[[np.ndarray], dict], images: np.ndarray, batch_size: int
) -> dict[str, np.ndarray]:
  """``fn`` over uint8 ``images`` in fixed-size (zero-padded) batches; rows concatenated."""
  out: dict[str, list] = {}
  for start in range(0, len(images), batch_size):
    chunk = pipelines.to_model_range_np(images[start : start + batch_size])
    n = len(chunk)
    padded = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], np.float32)])
    for k, v in fn(padded).items():
      out.setdefault(k, []).append(np.asarray(v)[:n])
  return {k: np.concatenate(v) for k, v in out.items()}


def _inference(
  config: ml_collections.ConfigDict, mode: str, state: state_lib.TrainState, num_attributes: int
) -> tuple[attribute_net.AttributeIdentityNet, dict]:
  """The inference-mode model and variables of a trained state."""
  num_classes = state.params["net"]["identity_head"]["logits"]["bias"].shape[0]
  model = build_model(config, mode, num_attributes, num_classes, axis_name=None)
  return model, {"params": state.params["net"], "batch_stats": state.batch_stats["net"]}


def predictor(
  model: attribute_net.AttributeIdentityNet, variables: dict, batch_size: int
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """uint8 images ``[N, H, W, 3]`` -> ``attribute_logits [N, T]`` and identity ``features
  [N, D]`` (inference mode; compiled once for ``batch_size``)."""
  apply = jax.jit(
    lambda v, x: {k: model.apply(v, x, train=False)[k] for k in ("attribute_logits", "features")}
  )
  return lambda images: _batched(functools.partial(apply, variables), images, batch_size)


# -------------------------------------------------------------------------- evaluation


def attribute_report(logits: np.ndarray, targets: np.ndarray, names: Sequence[str]) -> dict:
  """Per-attribute accuracy (logit > 0 = present) with positive rate and majority baseline."""
  accuracy = np.asarray(
    attribute_losses.attribute_accuracy(jnp.asarray(logits), jnp.asarray(targets))
  )
  positive = targets.mean(axis=0)
  return {
    "num_images": int(len(targets)),
    "mean_accuracy": float(accuracy.mean()),
    "per_attribute": {
      n: {"accuracy": float(a), "positive_rate": float(p), "majority": float(max(p, 1 - p))}
      for n, a, p in zip(names, accuracy, positive)
    },
  }


def identification(
  features: np.ndarray,
  labels: np.ndarray,
  protocol: IdentityProtocol,
  distractors: np.ndarray,
  config: ml_collections.ConfigDict,
) -> dict:
  """MegaFace-like rank-k identification of the probes with distractors in the gallery.

  Args:
    features: ``[N, D]`` descriptors of the test stills; labels ``[N]``.
    protocol: the split of the test stills.
    distractors: ``[M, D]`` descriptors of the distractor stills and frames.
    config: ``protocol.distractor_counts`` (-1 = all M) and ``protocol.max_rank``.
  """
  p = config.protocol
  counts = [len(distractors) if c == -1 else int(c) for c in p.distractor_counts]
  bad = [c for c in counts if not 0 <= c <= len(distractors)]
  if bad or not counts:
    raise ValueError(
      f"config.protocol.distractor_counts: each must be -1 or in "
      f"[0, {len(distractors)}] (distractors available), got {p.distractor_counts}"
    )
  gallery_size = len(protocol.gallery) + min(counts)
  if not 1 <= p.max_rank <= gallery_size:
    raise ValueError(
      f"config.protocol.max_rank: expected 1..{gallery_size} (the smallest "
      f"gallery), got {p.max_rank}"
    )
  ranks = list(range(1, p.max_rank + 1))
  result = protocols.cmc_with_distractors(
    features[protocol.probe],
    labels[protocol.probe],
    features[protocol.gallery],
    labels[protocol.gallery],
    distractors,
    counts,
    ranks,
    seed=p.seed,
  )
  curves = result["cmc_by_distractors"]
  return {
    "num_probes": int(len(protocol.probe)),
    "num_gallery": int(len(protocol.gallery)),
    "num_distractors": int(len(distractors)),
    "ranks": ranks,
    "rank1_by_distractors": {k: v[0] for k, v in curves.items()},
    "cmc_by_distractors": curves,
  }


def region_masks(
  segmentation: np.ndarray, landmarks: np.ndarray, region: str, part_names: Sequence[str]
) -> np.ndarray:
  """Bool ``[B, H, W]`` face region (see the module docstring) of each image.

  Args:
    segmentation: uint8 ``[B, H, W]`` part ids into ``part_names`` (amodal parsing).
    landmarks: ``[B, 68, 2]`` (x, y) pixels, iBUG-68 order.
    region: a part name, or ``'face'`` (non-background), ``'scalp'`` (hair and skin
      above the highest brow landmark) or ``'lower_face'`` (skin below the lowest
      mouth landmark).
    part_names: the data set's part names (``background`` first).
  """
  part = {name: i for i, name in enumerate(part_names)}
  rows = np.arange(segmentation.shape[1])[None, :, None]
  if region in part:
    return segmentation == part[region]
  if region == "face":
    return segmentation != part["background"]
  if region == "scalp":
    top = landmarks[:, _BROWS, 1].min(axis=1)[:, None, None]
    return np.isin(segmentation, (part["hair"], part["skin"])) & (rows < top)
  if region == "lower_face":
    bottom = landmarks[:, _MOUTH, 1].max(axis=1)[:, None, None]
    return (segmentation == part["skin"]) & (rows > bottom)
  raise ValueError(
    f"region: unknown {region!r}; expected a part of {tuple(part_names)} "
    "or 'face', 'scalp', 'lower_face'"
  )


def map_mass_shares(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Share of each map's mass inside its region, and the region's area share.

  Args:
    maps: ``[B, H, W, T]`` non-negative activation maps at image resolution.
    masks: bool ``[B, H, W, T]``, the region of attribute t in image b.

  Returns:
    ``(share [B, T], area [B, T])``: ``Σ M·R / Σ M`` (NaN where a map is all zero) and
    ``mean R``.
  """
  if maps.shape != masks.shape or maps.ndim != 4:
    raise ValueError(
      f"maps/masks: expected equal shapes [B, H, W, T], got {maps.shape} and {masks.shape}"
    )
  total = maps.sum(axis=(1, 2))
  inside = (maps * masks).sum(axis=(1, 2))
  with np.errstate(invalid="ignore", divide="ignore"):
    share = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
  return share, masks.mean(axis=(1, 2))


def _cam_function(model: attribute_net.AttributeIdentityNet, size: int):
  """Jitted ``(variables, images) -> maps [B, size, size, T]`` (bilinear, rectified) and logits."""

  def fn(variables, images):
    maps = attribute_net.attribute_maps(model, variables, images)
    up = jax.image.resize(maps, (maps.shape[0], size, size, maps.shape[-1]), "linear")
    logits = model.apply(variables, images, train=False)["attribute_logits"]
    return {"maps": jnp.maximum(up, 0.0), "logits": logits}

  return jax.jit(fn)


def cam_evaluation(
  config: ml_collections.ConfigDict,
  model: attribute_net.AttributeIdentityNet,
  variables: dict,
  test: Mapping[str, np.ndarray],
  names: Sequence[str],
  indices: Sequence[int],
  part_names: Sequence[str] | None,
) -> tuple[dict, dict[str, np.ndarray]]:
  """Maps of the first ``cam.num_images`` test stills; mass shares where segmentation exists.

  Returns:
    ``(report, figure_inputs)``: report per attribute (region, images scored, mean
    share, mean area, lift = share / area) and the arrays the figure needs.
  """
  n = min(config.cam.num_images, len(test["image"]))
  images = test["image"][:n]
  size = images.shape[1]
  cam = _cam_function(model, size)
  targets = test["attributes"][:n][:, np.asarray(indices)]
  has_parts = part_names is not None and "segmentation" in test
  regions = [ATTRIBUTE_REGIONS.get(name) for name in names]
  shares, areas, maps_kept, logits = [], [], [], []
  figure_rows = _figure_attributes(config, names)
  for start in range(0, n, config.cam.batch_size):
    out = _batched(
      functools.partial(cam, variables),
      images[start : start + config.cam.batch_size],
      config.cam.batch_size,
    )
    logits.append(out["logits"])
    maps_kept.append(out["maps"][..., figure_rows])
    if has_parts:
      sl = slice(start, start + len(out["maps"]))
      masks = np.stack(
        [
          region_masks(test["segmentation"][sl], test["landmarks"][sl], r, part_names)
          if r is not None
          else np.zeros(out["maps"].shape[:3], bool)
          for r in regions
        ],
        -1,
      )
      share, area = map_mass_shares(out["maps"], masks)
      shares.append(share)
      areas.append(area)
  report: dict[str, Any] = {"num_images": n}
  if not has_parts:
    report["skipped"] = "the data set has no part segmentation / landmarks"
  else:
    share, area = np.concatenate(shares), np.concatenate(areas)
    per = {}
    for t, (name, region) in enumerate(zip(names, regions)):
      if region is None:
        per[name] = {"region": None}
        continue
      rows = (targets[:, t] > 0) & np.isfinite(share[:, t])
      mean_share = float(share[rows, t].mean()) if rows.any() else float("nan")
      mean_area = float(area[rows, t].mean()) if rows.any() else float("nan")
      per[name] = {
        "region": region,
        "num_images": int(rows.sum()),
        "share": mean_share,
        "area": mean_area,
        "lift": mean_share / mean_area if mean_area else float("nan"),
      }
    report["per_attribute"] = per
  figure = {
    "images": images,
    "maps": np.concatenate(maps_kept),
    "logits": np.concatenate(logits),
    "targets": targets,
    "rows": figure_rows,
  }
  if has_parts:
    figure["segmentation"], figure["landmarks"] = test["segmentation"][:n], test["landmarks"][:n]
  return report, figure


def _figure_attributes(config: ml_collections.ConfigDict, names: Sequence[str]) -> list[int]:
  """Rows of the CAM figure (ValueError for a figure attribute the model does not predict)."""
  rows = [names.index(a) for a in config.cam.figure_attributes if a in names]
  missing = [a for a in config.cam.figure_attributes if a not in names]
  if missing:
    raise ValueError(
      f"config.cam.figure_attributes: {missing} are not in config.attributes.names {tuple(names)}"
    )
  return rows


def plot_cam_figure(
  figure: Mapping[str, np.ndarray],
  names: Sequence[str],
  cam_report: Mapping[str, Any],
  part_names: Sequence[str] | None,
  columns: int,
  path: Path,
  title: str,
) -> None:
  """Fig. 4 analog: one row per attribute, its most confident true positives with overlays.

  Each overlay is normalised by its own maximum; a white contour marks the attribute's
  region when the segmentation is known. Rows without positives show the most confident
  images instead (titled as such).
  """
  rows = figure["rows"]
  fig = Figure(figsize=(1.5 * columns + 1.2, 1.6 * len(rows) + 0.5))
  axes = np.asarray(fig.subplots(len(rows), columns, squeeze=False))
  per = cam_report.get("per_attribute", {})
  for r, t in enumerate(rows):
    name = names[t]
    logit = figure["logits"][:, t]
    positives = np.flatnonzero(figure["targets"][:, t] > 0)
    pool = positives if positives.size else np.arange(len(logit))
    chosen = pool[np.argsort(-logit[pool])][:columns]
    region = ATTRIBUTE_REGIONS.get(name)
    for c in range(columns):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      if c >= len(chosen):
        ax.axis("off")
        continue
      i = chosen[c]
      m = figure["maps"][i, :, :, r]
      v = m / max(float(m.max()), 1e-12)
      ax.imshow(figure["images"][i], interpolation="nearest")
      rgba = colormaps["jet"](v)
      rgba[..., 3] = 0.65 * v
      ax.imshow(rgba, interpolation="bilinear")
      if region is not None and part_names is not None and "segmentation" in figure:
        mask = region_masks(
          figure["segmentation"][i : i + 1], figure["landmarks"][i : i + 1], region, part_names
        )[0]
        if mask.any() and not mask.all():
          ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.7)
      ax.set_title(f"p={1 / (1 + np.exp(-logit[i])):.2f}", fontsize=7)
    info = per.get(name, {})
    label = name if positives.size else f"{name}\n(no positives)"
    if info.get("region"):
      label += f"\n{info['region']}: {100 * info['share']:.1f}%\n(area {100 * info['area']:.1f}%)"
    axes[r, 0].set_ylabel(label, fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  FigureCanvasAgg(fig)
  fig.savefig(path, dpi=110)


def evaluate(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  data: _Data,
  eval_data: _EvalData,
  states: Mapping[str, Mapping[str, state_lib.TrainState]],
) -> dict:
  """Attribute accuracy, identification with distractors and CAMs of every variant."""
  workdir = Path(workdir)
  test, proto = eval_data.test, eval_data.protocol
  targets = test["attributes"][:, np.asarray(data.indices)]
  part_names = None
  if data.builder.info.metadata is not None:
    part_names = data.builder.info.metadata.get("part_names")
  batch = config.protocol.batch_size
  results: dict[str, Any] = {
    "attributes": list(data.names),
    "protocol": {
      "probe_identities": int(len(proto.probe_identities)),
      "distractor_identities": int(len(proto.distractor_identities)),
      "finetune_images": int(len(proto.finetune)),
      "gallery": int(len(proto.gallery)),
      "probes": int(len(proto.probe)),
      "distractor_stills": int(len(proto.distractor_stills)),
      "distractor_frames": int(len(eval_data.distractor_frames)),
    },
    "variants": {},
  }
  distractor_targets = targets[proto.distractor_stills]
  for mode, stage_states in states.items():
    start = time.perf_counter()
    out: dict[str, Any] = {}
    for stage, state in stage_states.items():
      model, variables = _inference(config, mode, state, len(data.indices))
      predict = predictor(model, variables, batch)
      stills = predict(test["image"])
      frames = predict(eval_data.distractor_frames)
      distractors = np.concatenate(
        [stills["features"][proto.distractor_stills], frames["features"]]
      )
      stage_out = {
        "identification": identification(
          stills["features"], test["label"], proto, distractors, config
        )
      }
      if stage == "pretrained":
        stage_out["attributes_test"] = attribute_report(
          stills["attribute_logits"], targets, data.names
        )
        cam_report, figure = cam_evaluation(
          config, model, variables, test, data.names, data.indices, part_names
        )
        stage_out["cam"] = cam_report
        plot_cam_figure(
          figure,
          data.names,
          cam_report,
          part_names,
          config.cam.figure_columns,
          workdir / "figures" / f"cam_{mode}.png",
          f"{VARIANT_LABELS[mode]}: attribute activation maps",
        )
      else:
        stage_out["attributes_distractor_identities"] = attribute_report(
          stills["attribute_logits"][proto.distractor_stills], distractor_targets, data.names
        )
      out[stage] = stage_out
    results["variants"][mode] = out
    logging.info("%s: evaluated in %.0f s", mode, time.perf_counter() - start)
  _write_reports(workdir, results, data.names)
  return results


# ------------------------------------------------------------------------------ reports


def _percent(x: float) -> str:
  return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def _write_reports(workdir: Path, results: dict, names: Sequence[str]) -> None:
  """JSON, Markdown tables and the identification PNGs."""
  variants = results["variants"]
  order = [v for v in ("separate", "joint", "concat") if v in variants]
  for stage in STAGES:
    curves = {
      VARIANT_LABELS[v]: variants[v][stage]["identification"] for v in order if stage in variants[v]
    }
    if not curves:
      continue
    largest = {k: max(r["cmc_by_distractors"], key=int) for k, r in curves.items()}
    plots.plot_cmc(
      {
        f"{k} ({largest[k]} distractors)": (r["ranks"], r["cmc_by_distractors"][largest[k]])
        for k, r in curves.items()
      },
      workdir / "eval" / f"cmc_{stage}.png",
      f"CMC, {stage} models, all distractors",
    )
    plots.plot_curves(
      {
        k: ([int(c) for c in r["rank1_by_distractors"]], list(r["rank1_by_distractors"].values()))
        for k, r in curves.items()
      },
      workdir / "eval" / f"rank1_vs_distractors_{stage}.png",
      "Distractors in the gallery",
      "Rank-1 identification rate",
      f"Rank-1 vs distractors, {stage} models",
      logx=True,
    )
  markdown = _markdown(results, names, order)
  (workdir / "eval").mkdir(parents=True, exist_ok=True)
  (workdir / "eval" / "attributes.md").write_text(markdown + "\n", encoding="utf-8")
  plots.write_json(results, workdir / "eval" / "attributes.json")
  logging.info("attribute experiment:\n%s", markdown)


def _markdown(results: dict, names: Sequence[str], order: Sequence[str]) -> str:
  variants = results["variants"]
  lines = ["## Identification: rank-1 (%) with distractors in the gallery", ""]
  rows = []
  for stage in STAGES:
    for v in order:
      if stage not in variants[v]:
        continue
      ident = variants[v][stage]["identification"]
      row = {"variant": VARIANT_LABELS[v], "stage": stage}
      row.update({f"{c} distr.": _percent(r) for c, r in ident["rank1_by_distractors"].items()})
      last = max(ident["cmc_by_distractors"], key=int)
      row[f"rank-{ident['ranks'][-1]} ({last})"] = _percent(ident["cmc_by_distractors"][last][-1])
      rows.append(row)
  if rows:
    lines.append(common.markdown_table(rows, list(rows[0])))
  lines += ["", "## Attribute accuracy (%) on the test identities (stage 1; Table 1 analog)", ""]
  rows = []
  for t, name in enumerate(names):
    first = variants[order[0]]["pretrained"]["attributes_test"]["per_attribute"][name]
    row = {
      "attribute": name,
      "positives": _percent(first["positive_rate"]),
      "majority": _percent(first["majority"]),
    }
    for v in order:
      row[VARIANT_LABELS[v]] = _percent(
        variants[v]["pretrained"]["attributes_test"]["per_attribute"][name]["accuracy"]
      )
    rows.append(row)
  mean = {"attribute": "mean", "positives": "", "majority": ""}
  for v in order:
    mean[VARIANT_LABELS[v]] = _percent(
      variants[v]["pretrained"]["attributes_test"]["mean_accuracy"]
    )
  rows.append(mean)
  lines.append(common.markdown_table(rows, list(rows[0])))
  finetuned = [v for v in order if "finetuned" in variants[v]]
  if finetuned:
    drift = [
      (VARIANT_LABELS[v], variants[v]["finetuned"]["attributes_distractor_identities"])
      for v in finetuned
    ]
    lines += [
      "",
      "Mean attribute accuracy on the distractor identities after fine-tuning "
      "(attribute-label free stage 2): "
      + ", ".join(f"{label} {_percent(r['mean_accuracy'])}" for label, r in drift),
    ]
  cams = {v: variants[v]["pretrained"]["cam"] for v in order}
  if all("per_attribute" in c for c in cams.values()):
    lines += [
      "",
      "## Share (%) of each attribute's activation-map mass inside its face region "
      "(images where the attribute is present)",
      "",
    ]
    rows = []
    for name in names:
      first = cams[order[0]]["per_attribute"][name]
      if first.get("region") is None:
        continue
      row = {
        "attribute": name,
        "region": first["region"],
        "images": first["num_images"],
        "area": _percent(first["area"]),
      }
      for v in order:
        row[VARIANT_LABELS[v]] = _percent(cams[v]["per_attribute"][name]["share"])
      rows.append(row)
    lines.append(common.markdown_table(rows, list(rows[0])))
  return "\n".join(lines)


# ----------------------------------------------------------------------------------- run


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode``: 'train' (both stages, every variant), 'eval', or 'all' (both)."""
  common.check_mode(mode, MODES)
  data = _prepare_data(config)
  eval_data = _load_eval_data(config, data)
  states = None
  if mode in ("all", "train"):
    states = train(config, workdir, data, eval_data)
  if mode in ("all", "eval"):
    if states is None:
      states = restore(config, workdir, data, eval_data)
    return evaluate(config, workdir, data, eval_data, states)
  return {}
