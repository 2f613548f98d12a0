"""Pretrained face recognizers from other frameworks -> a jfr run (workdir).

``python -m jfr.convert --from=arcface_torch --input=backbone.pth --arch=r50 --workdir=RUN``
or ``--from=onnx --input=w600k_r50.onnx`` (see :mod:`jfr.convert.__main__`) writes a workdir
that every jfr tool reads like a trained ``configs/baseline.py`` run:

* ``checkpoints/0/``: an Orbax checkpoint of the baseline's full
  :class:`~jfr.train.state.TrainState` (``jfr.methods.recognition.trainer.create_state``) whose
  backbone is the converted IResNet (``config.model.name = 'iresnet'``); the classifier head
  (the source files carry none) and the optimizer state are freshly initialised, step 0, so
  ``--mode=eval`` evaluates the converted network and ``--mode=train`` fine-tunes it;
* ``data_facts.json`` (:func:`jfr.workdir.write_data_facts`): head width and input size, so
  that ``jfr.methods.registry.load_eval_model`` (``jfr.infer``, benchmarks) loads the run
  without its data;
* ``config.json`` / ``command.txt`` (:func:`jfr.workdir.write_run_record`): the base config
  (default ``configs/baseline.py:paper``, 112 px ``synthetic_faces/default``) with
  ``model`` replaced and ``dataset.num_classes`` resolved;
* ``converted.json``: provenance (source file, its SHA-256, format, arch, notes).

Readers: :func:`jfr.convert.torch_pickle.load_state_dict` (``.pth`` without torch, restricted
unpickler), :func:`jfr.convert.arcface_torch.convert_state_dict`,
:func:`jfr.convert.onnx_graph.convert_onnx` (needs the ``onnx`` package).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import ml_collections

from jfr.convert.layout import ConvertedModel

FORMATS = ("arcface_torch", "onnx")


def read_model(source_format: str, path: str | os.PathLike, arch: str | None = None):
  """The :class:`ConvertedModel` of ``path`` in ``source_format`` ('arcface_torch' | 'onnx')."""
  if source_format not in FORMATS:
    raise ValueError(f"from: expected one of {FORMATS}, got {source_format!r}")
  if not Path(path).is_file():
    raise ValueError(f"input: {os.fspath(path)!r} is not a file")
  if source_format == "arcface_torch":
    from jfr.convert import arcface_torch, torch_pickle

    state = torch_pickle.load_state_dict(path)
    return arcface_torch.convert_state_dict(state, arch, source=os.fspath(path))
  from jfr.convert import onnx_graph

  model = onnx_graph.convert_onnx(path)
  if arch is not None and arch != model.arch:
    raise ValueError(f"arch={arch!r}, but {os.fspath(path)} is an iresnet {model.arch}")
  return model


def default_base_config() -> ml_collections.ConfigDict:
  """``configs/baseline.py:paper`` (needs the repository's ``configs`` package importable)."""
  try:
    from configs import baseline
  except ImportError as error:
    raise ValueError(
      "config: configs/baseline.py is not importable from here; run from the repository root "
      "or pass --config"
    ) from error
  return baseline.get_config("paper")


def run_config(model: ConvertedModel, base: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``base`` with ``model`` set to the converted IResNet and ``dataset.num_classes`` resolved.

  Raises ``ValueError`` when ``base`` is not a recognition config or its data set's images
  are not the model's input size (the fc fixes it: 112 px for released models).
  """
  import jfr.data  # noqa: F401  (registers synthetic_faces)
  import tensorflow_datasets as tfds

  from jfr import context

  if base.get("method") != "recognition":
    raise ValueError(
      f"config: expected a recognition config (method 'recognition'), got {base.get('method')!r}"
    )
  config = copy.deepcopy(base)
  builder = tfds.builder(config.dataset.name, data_dir=config.dataset.data_dir)
  size = context.image_size(builder)
  if size != model.image_size:
    raise ValueError(
      f"config.dataset.name={config.dataset.name!r} has {size} px images, but the converted "
      f"model takes {model.image_size} px (set --config.dataset.name to data of that size, "
      "e.g. synthetic_faces/default for 112 px)"
    )
  with config.unlocked():
    config.model = model.model_config()
    config.dataset.num_classes = context.num_train_classes(config, builder)
  return config.lock()


def write_run(
  model: ConvertedModel,
  workdir: str | os.PathLike,
  config: ml_collections.ConfigDict,
  source: str | os.PathLike,
  source_format: str,
  argv: Sequence[str] | None = None,
) -> Path:
  """Writes the converted recognizer as a jfr run in ``workdir`` (see the module docstring).

  Refuses (``ValueError``) a workdir that already holds checkpoints.
  """
  import jax

  from jfr import workdir as workdir_lib
  from jfr.methods.recognition import trainer
  from jfr.train import checkpoint

  workdir = Path(workdir)
  ckpt_dir = checkpoint.checkpoint_dir(workdir)
  if ckpt_dir.exists() and any(ckpt_dir.iterdir()):
    raise ValueError(f"workdir: {workdir} already holds checkpoints; use a new directory")
  state = trainer.create_state(config, config.dataset.num_classes, model.image_size)
  params = {**state.params, "backbone": model.variables["params"]}
  params = jax.tree.map(lambda x: jax.numpy.asarray(x, jax.numpy.float32), params)
  state = state.replace(
    params=params,
    batch_stats={**state.batch_stats, "backbone": model.variables["batch_stats"]},
    opt_state={name: state.tx[name].init(params[name]) for name in params},
  )
  meta = {
    "batches_consumed": 0,
    "batch_size": config.batch_size,
    "consecutive_nonfinite": 0,
    "nonfinite_steps": 0,
  }
  with checkpoint.TrainCheckpointer(workdir, keep=config.keep_checkpoints, async_save=False) as c:
    c.save(0, state, meta)
  workdir_lib.write_run_record(workdir, config, argv)
  workdir_lib.write_data_facts(
    workdir,
    {
      "num_classes": int(config.dataset.num_classes),
      "image_size": model.image_size,
      "dataset_name": config.dataset.name,
      "train_split": config.dataset.train_split,
    },
  )
  digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
  record = {
    "source": os.fspath(Path(source).absolute()),
    "sha256": digest,
    "format": source_format,
    "arch": model.arch,
    "num_filters": model.num_filters,
    "embedding_dim": model.embedding_dim,
    "image_size": model.image_size,
    "notes": model.notes,
  }
  (workdir / "converted.json").write_text(json.dumps(record, indent=2) + "\n")
  return workdir


def convert(
  source_format: str,
  path: str | os.PathLike,
  workdir: str | os.PathLike,
  arch: str | None = None,
  base_config: ml_collections.ConfigDict | None = None,
  argv: Sequence[str] | None = None,
) -> ml_collections.ConfigDict:
  """Reads ``path``, writes the run to ``workdir``; returns the run's config."""
  model = read_model(source_format, path, arch)
  config = run_config(model, base_config if base_config is not None else default_base_config())
  write_run(model, workdir, config, path, source_format, argv)
  return config
