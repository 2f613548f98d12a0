"""Plain face recognition (``configs/baseline.py``): the baseline of every method. Modes:

* ``train``: trains on ``dataset.train_split`` with :func:`jfr.train.loop.run_training`
  (checkpoints and resume in ``<workdir>/checkpoints``);
* ``eval``: restores the newest complete checkpoint and runs ``config.evals`` (by default
  verification and open-set identification on ``dataset.test_split``; JSON in
  ``<workdir>/eval/``, ROC/CMC PNGs in ``<workdir>/figures/``);
* ``all``: both.
"""

from __future__ import annotations

import ml_collections

from jfr import workdir as workdir_lib
from jfr.context import RunContext
from jfr.methods import registry
from jfr.methods.recognition import evaluate
from jfr.methods.recognition import trainer

MODES = ("all", "train", "eval")


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring)."""
  registry.check_mode(mode, MODES)
  context = RunContext.from_config(config)
  workdir_lib.write_data_facts(workdir, context.facts())
  if mode in ("all", "train"):
    trainer.train(config, workdir, context)
  if mode in ("all", "eval"):
    variables, info = trainer.restore(config, workdir, context.num_classes, context.image_size)
    return evaluate.evaluate(config, workdir, variables, context, info)
  return {}


def eval_model(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  batch_size: int,
  allow_older: bool = False,
):
  """``(EvalModel, checkpoint info)`` of a trained recognition run (no training data needed:
  the model's shape comes from the run's ``data_facts.json``)."""
  facts = workdir_lib.read_data_facts(workdir)
  variables, info = trainer.restore(
    config, workdir, facts["num_classes"], facts["image_size"], allow_older=allow_older
  )
  return evaluate.eval_model(config, variables, facts["image_size"], batch_size), info
