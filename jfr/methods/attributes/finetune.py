"""Stage 2 of the attribute method: identification fine-tuning without attribute labels.

The MegaFace step of Sec. 5.2 (``finetune.enabled``), in ``<workdir>/<v>/finetune``: the
stage-1 model is restored, its identity classifier (``identity_head/logits``) replaced by a
fresh one over the fine-tuning identities, and the model is trained with L2 only on images
*without* attribute labels: the model's own attribute predictions feed the fusion. With
``finetune.train_attribute_head=False`` (default) the attribute branch W_{2,1} gets no update
(optax ``set_to_zero``), so that v keeps meaning "attribute logits"; the shared trunk W_1 and
the identity branch W_{2,2} are trained. (The paper fine-tunes "the model parameters"; with
True every parameter is.)

The fine-tuning stills are the enrolled identities' held-out stills of the identity protocol
of ``config.evals.identification`` (:mod:`jfr.eval.cmc_distractors`), so that fine-tuning
never sees a gallery or probe still. They are recorded in
``<workdir>/<v>/finetune/protocol.json``; a later run or evaluation under another protocol is
refused (:func:`check_protocol_record`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jfr.data import array_pipeline, pipelines
from jfr.eval import registry as eval_registry
from jfr.eval.cmc_distractors import protocol_of
from jfr.eval.identity_protocol import IdentityProtocol
from jfr.methods.attributes import trainer
from jfr.methods.attributes.constants import PROTOCOL_EVAL
from jfr.report.results import write_json
from jfr.train import checkpoint, loop, optimizers, steps
from jfr.train import state as state_lib


def protocol_settings(config: ml_collections.ConfigDict) -> dict:
  """Settings of ``config.evals.identification`` (the protocol fine-tuning shares)."""
  if PROTOCOL_EVAL not in config.evals:
    raise ValueError(
      f"config.evals: the attribute method needs an entry {PROTOCOL_EVAL!r} of type "
      "'cmc_with_distractors' (its identity protocol picks the fine-tuning stills)"
    )
  type_name, settings = eval_registry.settings_of(config.evals[PROTOCOL_EVAL])
  if type_name != "cmc_with_distractors":
    raise ValueError(
      f"config.evals.{PROTOCOL_EVAL}.type: expected 'cmc_with_distractors', got {type_name!r}"
    )
  return settings


def load_protocol(
  config: ml_collections.ConfigDict, data: trainer.AttributeData
) -> tuple[dict[str, np.ndarray], IdentityProtocol]:
  """``(stills of the protocol's split: image, label; the identity protocol)``."""
  settings = protocol_settings(config)
  stills = pipelines.load_arrays(data.context.builder, settings["split"], ("image", "label"))
  return stills, protocol_of(stills["label"], settings)


def finetune_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """``finetune.optimizer``; the attribute branch frozen unless ``train_attribute_head``."""
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
  model = trainer.build_model(
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
    {"net": finetune_optimizer(config)},
  )
  fresh = state.params["net"]["identity_head"]["logits"]
  params = {**old_params, "identity_head": {**old_params["identity_head"], "logits": fresh}}
  return state.replace(params={"net": params}, batch_stats={"net": old_stats})


def check_protocol_record(directory: Path, protocol: IdentityProtocol, write: bool) -> None:
  """Guards against fine-tuning and evaluating under different identity protocols.

  ``<directory>/protocol.json`` records the enrolled identities and the fine-tuning
  stills of the run that trained there. With ``write`` it is created when absent;
  an existing record (or, without ``write``, a missing one) must match ``protocol``,
  else fine-tuning images could become probes.

  Raises:
    ValueError: the record is missing (``write=False``) or differs from ``protocol``.
  """
  path = Path(directory) / "protocol.json"
  current = {
    "probe_identities": protocol.probe_identities.tolist(),
    "finetune": protocol.finetune.tolist(),
  }
  if not path.exists():
    if not write:
      raise ValueError(f"workdir: {path} is missing; run --mode=train first")
    write_json(current, path)
    return
  recorded = json.loads(path.read_text(encoding="utf-8"))
  if recorded != current:
    raise ValueError(
      f"config.evals.{PROTOCOL_EVAL} / config.finetune.images_per_identity: the identity "
      f"protocol differs from the one recorded in {path} when this model was "
      "fine-tuned (keep its seed, probe_identity_fraction, gallery_per_identity and "
      "finetune.images_per_identity, or use a new workdir)"
    )


def _run_config(
  config: ml_collections.ConfigDict, num_train_steps: int, batch_size: int
) -> ml_collections.ConfigDict:
  """A copy of ``config`` whose engine fields describe another stage."""
  out = config.copy_and_resolve_references()
  out.num_train_steps = num_train_steps
  out.batch_size = batch_size
  return out


def finetune(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  mode: str,
  pretrained: state_lib.TrainState,
  num_attributes: int,
  stills: Mapping[str, np.ndarray],
  protocol: IdentityProtocol,
) -> state_lib.TrainState:
  """Stage 2 of variant ``mode`` in ``<workdir>/<mode>/finetune``: L2 only, no attributes."""
  images = stills["image"][protocol.finetune]
  labels = np.searchsorted(protocol.probe_identities, stills["label"][protocol.finetune])
  if not len(images):
    raise ValueError(
      "config.finetune.images_per_identity: fine-tuning needs >= 1 image per identity"
    )
  ft = config.finetune
  check_protocol_record(Path(workdir) / mode / "finetune", protocol, write=True)
  state = create_finetune_state(
    config, mode, pretrained, num_attributes, len(protocol.probe_identities)
  )
  run_config = _run_config(config, ft.num_train_steps, ft.batch_size)
  batches = lambda start: pipelines.numpy_batches(
    array_pipeline.array_batches(
      images,
      labels,
      ft.batch_size,
      seed=config.seed,
      start_batch=start,
      augment_options=config.augment.to_dict(),
    )
  )
  step = trainer.make_train_step(0.0, config.loss.identity_weight)
  return loop.run_training(run_config, Path(workdir) / mode / "finetune", state, step, batches)


def restore_finetuned(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  mode: str,
  pretrained: state_lib.TrainState,
  num_attributes: int,
  protocol: IdentityProtocol,
) -> tuple[state_lib.TrainState, dict]:
  """``(stage-2 state, checkpoint info)`` of variant ``mode`` (its protocol record checked)."""
  classes = len(protocol.probe_identities)
  target = jax.eval_shape(
    lambda: create_finetune_state(config, mode, pretrained, num_attributes, classes)
  )
  directory = Path(workdir) / mode / "finetune"
  check_protocol_record(directory, protocol, write=False)
  return checkpoint.restore_with_info(
    directory, target, config.keep_checkpoints, allow_older=config.allow_older_checkpoint
  )
