"""The template experiment of Ferrari, Berretti and Del Bimbo: Tables I and II.

"Discovering Identity Specific Activation Patterns in Deep Descriptors for Template
Based Face Recognition", Sec. IV: on IJB-A (10 splits, 1:N and 1:1), templates are
matched with the min-mean cosine distance on

* Table I: the original descriptors, the descriptors masked to the m most active bins of
  their template's average (Eq. 1), and a random control that keeps m random bins;
* Table II: one binary mask of the m most active bins per template, matched by the
  cosine distance of masks.

The method itself is :mod:`jfr.templates`; the protocol :mod:`jfr.eval.ijb`. Modes:

* ``all``: trains the descriptor network (:func:`jfr.methods.recognition.trainer.train` in
  ``<workdir>/backbone``; resumes from its checkpoints, does nothing when finished),
  then ``eval``;
* with ``descriptors.workdir`` set (a ``jfr.convert`` or trained recognition run), nothing
  is trained: the descriptors come from that run's network (``descriptors.layer``,
  ``descriptors.rectify``; see :mod:`jfr.methods.templates.descriptors`);
* ``eval``: restores that network, extracts the descriptors of the test identities'
  stills (``dataset.test_split``) and video frames (``dataset.video_split``), builds
  IJB-A-like splits (:func:`jfr.eval.ijb_splits.synthetic_splits`) and runs both tables;
* ``npy``: both tables on a user's descriptors (``descriptors.npy_path``, rows named by
  ``descriptors.keys_path``) with the real IJB-A split files (``config.ijba``).

Outputs: ``<workdir>/eval/templates.md`` (also logged) and ``templates.json`` (mean, std
and per-split values of every row), ``templates_<metric>.png`` (accuracy vs m).

Descriptor reading (``descriptors.kind``). The paper's descriptors are VGG-Face fc7
activations: un-normalised, post-ReLU (>= 0), a few bins highly active; "most active
bins" presumes that. The closest activations of our ResNet are its last conv map (the
output of a ReLU): ``'conv_flat'`` flattens it (k = h w c; the input of the embedding
layer under ``'flatten_fc'`` pooling) and ``'conv_gap'`` averages it over positions
(k = c). ``'embedding'`` is the trained embedding itself (signed after the final
BatchNorm; "most active" then means largest signed value).

Outputs: ``<workdir>/eval/templates.md`` / ``templates.json`` (mean, std and per-split values
of every row, the checkpoint of the descriptor network) and
``<workdir>/figures/templates_<metric>.png`` (accuracy vs m).
"""

from __future__ import annotations

import os

import ml_collections
from absl import logging

from jfr import workdir as workdir_lib
from jfr.context import RunContext
from jfr.methods import registry
from jfr.methods.templates import descriptors as descriptors_lib
from jfr.methods.templates import evaluate
from jfr.methods.templates import trainer
from jfr.report import PhaseTimer

MODES = ("all", "eval", "npy")


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring); returns the results it wrote."""
  registry.check_mode(mode, MODES)
  config = trainer.effective_config(config)  # descriptors.workdir's model, if set
  if mode == "npy":
    descriptors, splits = descriptors_lib.npy_inputs(config)
    source = f"{os.path.basename(config.descriptors.npy_path)} on IJB-A"
    return evaluate.run_experiment(config, workdir, descriptors, splits, source)
  timer = PhaseTimer()
  context = RunContext.from_config(config)
  workdir_lib.write_data_facts(workdir, context.facts())
  if mode == "all":
    with timer.phase("descriptor network"):
      trainer.train(config, workdir, context)
  variables, info = trainer.restore(config, workdir, context)
  with timer.phase("descriptors"):
    size = trainer.input_size(config, context.image_size)
    data = descriptors_lib.synthetic_descriptors(config, context, variables, size)
    splits = descriptors_lib.synthetic_protocol(config, data)
  logging.info("%d descriptors (k = %d)", *data["descriptors"].shape)
  source = f"{config.dataset.name} {config.descriptors.kind}"
  if trainer.pretrained(config):
    layer = config.descriptors.layer or "last conv map"
    rectified = ", rectified" if config.descriptors.rectify else ""
    source += f" of {trainer.pretrained(config)} ({layer}{rectified})"
  return evaluate.run_experiment(
    config, workdir, data["descriptors"], splits, source, checkpoint=info
  )


def eval_model(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  batch_size: int,
  allow_older: bool = False,
):
  """``(EvalModel, checkpoint info)`` of the descriptor network (``<workdir>/backbone``):
  ``embed`` (its embedding) and the extra ``descriptors`` (uint8 faces -> descriptors of
  ``config.descriptors.kind``), shaped from the run's ``data_facts.json``."""
  from jfr.eval import embedding
  from jfr.methods.recognition import evaluate as recognition_evaluate
  from jfr.methods.recognition import trainer as recognition_trainer

  facts = workdir_lib.read_data_facts(workdir)
  config = trainer.effective_config(config)
  if trainer.pretrained(config):  # the network of descriptors.workdir
    from jfr import recognizer_source

    source = recognizer_source.locate(trainer.pretrained(config), trainer.FIELD)
    size, num_classes = source.image_size, source.num_classes
    ckpt_config, ckpt_dir = source.config, source.checkpoints
  else:
    size, num_classes = facts["image_size"], facts["num_classes"]
    ckpt_config, ckpt_dir = trainer.backbone_config(config), trainer.backbone_workdir(workdir)
  variables, info = recognition_trainer.restore(
    ckpt_config, ckpt_dir, num_classes, size, allow_older=allow_older
  )
  model = embedding.EvalModel(
    input_size=size,
    embed=recognition_evaluate.embed_function(config, variables, size, batch_size),
    extras={"descriptors": descriptors_lib.descriptor_function(config, variables, size)},
  )
  return model, info
