"""Tests for template descriptors from another run's network (``config.descriptors.workdir``,
``layer``, ``rectify``; jfr.methods.templates.trainer / descriptors).

The network is the committed arcface_torch fixture (``fixtures/iresnet_r18_narrow.pth``,
random weights, 32 px, D = 16) converted by ``jfr.convert``; its reference embeddings were
written by PyTorch (``fixtures/make_iresnet_pth.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jfr import workdir as workdir_lib
from jfr.methods.templates import descriptors as descriptors_lib
from jfr.methods.templates import trainer
from jfr.models import iresnet

FIXTURES = Path(__file__).parent / "fixtures"
PTH = FIXTURES / "iresnet_r18_narrow.pth"
REFERENCE = FIXTURES / "iresnet_r18_narrow_reference.npz"


def templates_config(data_dir: str, workdir: str, **descriptors):
  from configs import templates

  config = templates.get_config("tiny")
  config.dataset.data_dir = data_dir
  config.descriptors.workdir = workdir
  for key, value in descriptors.items():
    config.descriptors[key] = value
  return config


def _narrow_net():
  net = iresnet.iresnet("r18", num_filters=4, embedding_dim=16)
  x = jax.random.uniform(jax.random.PRNGKey(0), (3, 32, 32, 3), minval=-1, maxval=1)
  variables = net.init(jax.random.PRNGKey(1), x, train=False)
  return net, variables, x


def test_named_layer_is_the_captured_module_output():
  net, variables, x = _narrow_net()
  _, fmap = net.apply(variables, x, train=False, return_feature_map=True)
  last = descriptors_lib.layer_output(net, "layer4_1", variables, x)
  np.testing.assert_array_equal(np.asarray(last), np.asarray(fmap))  # r18's last block
  assert float(jnp.min(fmap)) < 0  # signed: no activation after the last block
  prelu = descriptors_lib.layer_output(net, "layer4_1/prelu", variables, x)
  assert prelu.shape == (3, 2, 2, 32)  # 32 px / 16
  with pytest.raises(ValueError, match="no module 'layer9_0'.*layer4_1"):
    descriptors_lib.layer_output(net, "layer9_0", variables, x)


def test_rectified_gap_descriptors_are_non_negative(converted_run):
  from jfr.methods.recognition import trainer as recognition

  config = ml_collections.ConfigDict(
    dict(
      model=workdir_lib.load_run_config_dict(converted_run).model.to_dict(),
      descriptors=dict(kind="conv_gap", batch_size=8, layer="", rectify=True),
    )
  )
  source = workdir_lib.load_run_config_dict(converted_run)
  variables, _ = recognition.restore(source, converted_run, 14, 32)
  images = np.load(REFERENCE)["images"]
  describe = descriptors_lib.descriptor_function(config, variables, 32)
  d = describe(images)
  assert d.shape == (4, 32) and np.all(d >= 0) and np.any(d > 0)
  with config.unlocked():
    config.descriptors.rectify = False
  signed = descriptors_lib.descriptor_function(config, variables, 32)(images)
  assert np.any(signed < 0)
  # Faces of another size are resized to the network's input (jfr.eval.embedding's policy).
  big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
  assert describe(big).shape == (4, 32)


def test_effective_config_and_input_size_follow_the_run(tiny_data_dir, converted_run):
  config = templates_config(tiny_data_dir, str(converted_run))
  derived = trainer.effective_config(config)
  assert derived.model.name == "iresnet" and config.model.name == "resnet"
  assert trainer.input_size(config, 64) == 32
  from configs import templates

  plain = templates.get_config("tiny")
  assert trainer.effective_config(plain) is plain and trainer.input_size(plain, 64) == 64
  with pytest.raises(ValueError, match="config.descriptors.workdir: .* is not a directory"):
    trainer.effective_config(templates_config(tiny_data_dir, "/nonexistent/run"))


@pytest.mark.slow
def test_templates_run_on_converted_network(tiny_data_dir, converted_run, tmp_path):
  from jfr.methods import registry

  config = templates_config(tiny_data_dir, str(converted_run), kind="conv_gap", rectify=True)
  workdir = tmp_path / "run"
  workdir_lib.write_run_record(workdir, config, ["test"])
  results = registry.run(config, str(workdir), "all")
  assert not (workdir / "backbone").exists()  # nothing trained
  record = json.loads((workdir / trainer.SOURCE_FILE).read_text())
  assert record["converted"]["arch"] == "r18" and record["checkpoint"]["step"] == 0
  assert (workdir / "eval" / "templates.json").exists() and results
  # load_eval_model rebuilds the converted network: embeddings equal PyTorch's.
  model, info = registry.load_eval_model(str(workdir))
  ref = np.load(REFERENCE)
  emb = model.embed(ref["images"])
  err = np.linalg.norm(emb - ref["embeddings"], axis=1) / np.linalg.norm(ref["embeddings"], axis=1)
  assert float(err.max()) < 1e-4 and info["step"] == 0
  d = model.extras["descriptors"](ref["images"])
  assert d.shape == (4, 32) and np.all(d >= 0)


def test_pretrained112_without_a_workdir_is_refused(tmp_path):
  from configs import templates

  config = templates.get_config("pretrained112")
  assert config.descriptors.rectify and config.descriptors.kind == "conv_gap"
  with pytest.raises(ValueError, match="config.descriptors.workdir: required"):
    trainer.train(config, tmp_path, context=None)
