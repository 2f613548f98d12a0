"""Stage 1 of the attribute method: the network, its train step and attribute-annotated training.

The model is :class:`jfr.models.attribute_net.AttributeIdentityNet` (net@1 = VGG-19 + GAP,
net@2 = an attribute branch and an identity branch fed with ``u ⊗ v``, Eq. 1). Losses:
L1 = per-attribute binary cross-entropy summed over the T attributes (Eq. 2,
:func:`jfr.losses.attributes.attribute_bce_loss`), L2 = softmax cross-entropy over the C
identities (Eq. 3, :func:`jfr.losses.margin.softmax_cross_entropy`); one Adam step minimises
``loss.attribute_weight * L1 + loss.identity_weight * L2`` (1 and 1: the paper's L1 + L2),
each term the mean over the batch.

Stage 1 (the CelebA step, Sec. 5.2) trains variant ``v`` on ``dataset.train_split`` with
identity labels and the attributes ``attributes.names`` in ``<workdir>/<v>``.

Parameters are initialised from an ``'rbg'`` key derived from the train state's key:
XLA:CPU compiles the threefry initialisers of the 16 convolutions much more slowly.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jfr.context import RunContext
from jfr.data import pipelines
from jfr.eval.cam_region_mass import attribute_columns
from jfr.losses import attributes as attribute_losses
from jfr.losses import margin
from jfr.methods.attributes.constants import DTYPES
from jfr.models import attribute_net
from jfr.train import checkpoint, loop, optimizers, steps
from jfr.train import state as state_lib


def check_variants(variants: Sequence[str]) -> tuple[str, ...]:
  """``config.variants`` as a tuple of distinct fusion modes (ValueError otherwise)."""
  variants = tuple(variants)
  bad = [v for v in variants if v not in attribute_net.MODES]
  if not variants or bad or len(set(variants)) != len(variants):
    raise ValueError(
      f"config.variants: expected distinct entries of {attribute_net.MODES}, got {variants}"
    )
  return variants


def check_labels(labels: np.ndarray, num_classes: int, what: str) -> None:
  """ValueError unless every identity label lies in ``[0, num_classes)``."""
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(
      f"{what}: identity labels must lie in [0, {num_classes}) "
      f"(config.dataset.num_classes / the data set's identity count), got "
      f"labels in [{labels.min()}, {labels.max()}]"
    )


@dataclasses.dataclass(frozen=True)
class AttributeData:
  """The run context plus the attribute columns the model predicts.

  Attributes:
    context: the run's :class:`~jfr.context.RunContext`.
    indices: positions of ``config.attributes.names`` in the data set's attribute vector.
    names: the T attribute names.
  """

  context: RunContext
  indices: tuple[int, ...]
  names: tuple[str, ...]


def attribute_data(config: ml_collections.ConfigDict, context: RunContext) -> AttributeData:
  """Validates the variants and attribute names against the data set."""
  check_variants(config.variants)
  metadata = context.builder.info.metadata
  available = None if metadata is None else metadata.get("attribute_names")
  try:
    indices = attribute_columns(config.attributes.names, available)
  except ValueError as e:
    raise ValueError(f"config.attributes.names: {e}") from None
  return AttributeData(context, indices, tuple(config.attributes.names))


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


def rbg_key(raw_key: jax.Array) -> jax.Array:
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
  init = lambda rng: model.init(rbg_key(rng), images, train=False)
  tx = optimizers.make_optimizer(config.optimizer, config.num_train_steps)
  return state_lib.create_train_state(
    jax.random.PRNGKey(config.seed), {"net": (model, init)}, {"net": tx}
  )


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


def stage1_batches(config: ml_collections.ConfigDict, data: AttributeData):
  """``start -> iterator`` of stage-1 host batches: image, label, attributes [B, T] float."""
  columns = np.asarray(data.indices)

  def batches(start: int):
    ds = pipelines.image_batches(
      data.context.builder,
      data.context.train_split,
      config.batch_size,
      seed=config.seed,
      start_batch=start,
      features=("image", "label", "attributes"),
      augment_options=config.augment.to_dict(),
    )
    for batch in pipelines.numpy_batches(ds):
      yield {
        "image": batch["image"],
        "label": batch["label"].astype(np.int32),
        "attributes": batch["attributes"][:, columns].astype(np.float32),
      }

  return batches


def check_train_labels(data: AttributeData) -> None:
  """ValueError when the train split has labels outside the classifier's ``num_classes``."""
  context = data.context
  labels = pipelines.load_arrays(context.builder, context.train_split, ("label",))["label"]
  check_labels(labels, context.num_classes, f"dataset {context.train_split!r} split")


def train_pretrained(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, mode: str, data: AttributeData
) -> state_lib.TrainState:
  """Stage 1 of variant ``mode`` in ``<workdir>/<mode>`` (resumes; no-op when finished)."""
  state = create_state(
    config, mode, len(data.indices), data.context.num_classes, data.context.image_size
  )
  logging.info("%s: %d parameters", mode, state_lib.num_params(state.params["net"]))
  step = make_train_step(config.loss.attribute_weight, config.loss.identity_weight)
  return loop.run_training(config, Path(workdir) / mode, state, step, stage1_batches(config, data))


def restore_pretrained(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  mode: str,
  num_attributes: int,
  num_classes: int,
  image_size: int,
  allow_older: bool | None = None,
) -> tuple[state_lib.TrainState, dict]:
  """``(stage-1 state, checkpoint info)`` of variant ``mode`` from ``<workdir>/<mode>``
  (``allow_older``: None = ``config.allow_older_checkpoint``).

  Raises:
    ValueError: no checkpoint, or one written for another T, C or model (it names the
      first mismatching parameter, e.g. ``params.net.attribute_head.logits.kernel``).
  """
  target = jax.eval_shape(
    lambda: create_state(config, mode, num_attributes, num_classes, image_size)
  )
  return checkpoint.restore_with_info(
    Path(workdir) / mode,
    target,
    config.keep_checkpoints,
    allow_older=config.allow_older_checkpoint if allow_older is None else allow_older,
  )


def inference(
  config: ml_collections.ConfigDict, mode: str, state: state_lib.TrainState, num_attributes: int
) -> tuple[attribute_net.AttributeIdentityNet, dict]:
  """The inference-mode model (no cross-replica BatchNorm) and variables of a trained state."""
  num_classes = state.params["net"]["identity_head"]["logits"]["bias"].shape[0]
  model = build_model(config, mode, num_attributes, num_classes, axis_name=None)
  return model, {"params": state.params["net"], "batch_stats": state.batch_stats["net"]}
