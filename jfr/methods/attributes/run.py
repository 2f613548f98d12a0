"""Attribute-enhanced face identification (Taherkhani, Nasrabadi, Dawson): the experiment.

"A Deep Face Identification Network Enhanced by Facial Attributes Prediction". Per variant
``v`` of ``config.variants`` (``'joint'`` = Ours-J, ``'separate'`` = Ours-S, ``'concat'`` =
``[u, v]`` fusion, an ablation):

1. stage 1, attribute-annotated training (the CelebA step), :mod:`.trainer`, in
   ``<workdir>/<v>``;
2. stage 2, identification fine-tuning without attribute labels (the MegaFace step,
   ``finetune.enabled``), :mod:`.finetune`, in ``<workdir>/<v>/finetune``.

On ``synthetic_faces`` the FaceScrub/MegaFace roles are played by the *test* identities
(never seen in stage 1), split by the identity protocol of ``config.evals.identification``
(:mod:`jfr.eval.cmc_distractors`): enrolled identities give the fine-tuning, gallery and
probe stills (the fine-tuning stills are reserved even when fine-tuning is off, so that both
stages are scored on the same probes); the others are MegaFace-like distractors (stills and
video frames), never trained on.

Modes: ``train`` (both stages, every variant), ``eval`` (restores every variant's newest
checkpoints and runs :func:`.evaluate.evaluate`: ``eval/attributes.json``/``.md`` and
``figures/attributes_*.png``), ``all`` (both).
"""

from __future__ import annotations

import os

import ml_collections
from absl import logging

from jfr import workdir as workdir_lib
from jfr.context import RunContext
from jfr.methods import registry
from jfr.methods.attributes import evaluate, trainer
from jfr.methods.attributes import finetune as finetune_lib
from jfr.report import PhaseTimer

MODES = ("all", "train", "eval")


def train(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, data: trainer.AttributeData
) -> None:
  """Both stages of every variant (each resumes; a finished stage is a no-op)."""
  trainer.check_train_labels(data)
  stills, protocol = finetune_lib.load_protocol(config, data)
  timer = PhaseTimer()
  for mode in trainer.check_variants(config.variants):
    with timer.phase(f"train_{mode}"):
      pretrained = trainer.train_pretrained(config, workdir, mode, data)
      if config.finetune.enabled:
        finetune_lib.finetune(
          config, workdir, mode, pretrained, len(data.indices), stills, protocol
        )
  logging.info("training phases: %s", timer.phases)


def restore(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, data: trainer.AttributeData
) -> tuple[dict, dict]:
  """``({variant: {stage: state}}, {variant: {stage: checkpoint info}})`` from ``workdir``."""
  _, protocol = finetune_lib.load_protocol(config, data)
  states, infos = {}, {}
  num_attributes, context = len(data.indices), data.context
  for mode in trainer.check_variants(config.variants):
    pretrained, info = trainer.restore_pretrained(
      config, workdir, mode, num_attributes, context.num_classes, context.image_size
    )
    states[mode], infos[mode] = {"pretrained": pretrained}, {"pretrained": info}
    if config.finetune.enabled:
      states[mode]["finetuned"], infos[mode]["finetuned"] = finetune_lib.restore_finetuned(
        config, workdir, mode, pretrained, num_attributes, protocol
      )
  return states, infos


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring)."""
  registry.check_mode(mode, MODES)
  context = RunContext.from_config(config)
  workdir_lib.write_data_facts(workdir, context.facts())
  data = trainer.attribute_data(config, context)
  evaluate.check_evals(config, data.names)
  if mode in ("all", "train"):
    train(config, workdir, data)
  if mode in ("all", "eval"):
    states, infos = restore(config, workdir, data)
    return evaluate.evaluate(config, workdir, data, states, infos)
  return {}


def eval_model(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  batch_size: int,
  allow_older: bool = False,
):
  """``(EvalModel, checkpoint info)`` of the stage-1 network of the first of
  ``config.variants`` (``embed``: identity features; extras ``attribute_logits`` and
  ``attribute_maps``), shaped from the run's ``data_facts.json`` (no training data needed)."""
  facts = workdir_lib.read_data_facts(workdir)
  mode = trainer.check_variants(config.variants)[0]
  num_attributes = len(config.attributes.names)
  state, info = trainer.restore_pretrained(
    config,
    workdir,
    mode,
    num_attributes,
    facts["num_classes"],
    facts["image_size"],
    allow_older=allow_older,
  )
  model, variables = trainer.inference(config, mode, state, num_attributes)
  return evaluate.eval_model(model, variables, facts["image_size"], batch_size), info
