r"""Entry point: pretrained recognizers -> a jfr run (see :mod:`jfr.convert`).

python -m jfr.convert --from=arcface_torch --input=backbone.pth --arch=r50 --workdir=RUN
python -m jfr.convert --from=onnx --input=w600k_r50.onnx --workdir=RUN
python -m jfr.convert ... --config=configs/baseline.py:paper --config.dataset.name=NAME

The run then evaluates like a trained baseline:
``python -m jfr.main --config=configs/baseline.py:paper --config.model.name=iresnet ...`` or,
simpler, every tool that reads the workdir's ``config.json``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_FROM = flags.DEFINE_enum("from", None, ["arcface_torch", "onnx"], "Format of --input.")
_INPUT = flags.DEFINE_string("input", None, "backbone.pth (arcface_torch) or model.onnx.")
_ARCH = flags.DEFINE_enum(
  "arch", None, ["r18", "r34", "r50", "r100", "r200"], "IResNet depth (checked; inferred if unset)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "New run directory to write.")
_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Base recognition config (default configs/baseline.py:paper).", lock_config=True
)
flags.mark_flags_as_required(["from", "input", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import tensorflow as tf  # keep TF off any accelerator: JAX owns it

  tf.config.set_visible_devices([], "GPU")
  from jfr import convert

  config = convert.convert(_FROM.value, _INPUT.value, _WORKDIR.value, _ARCH.value, _CONFIG.value)
  logging.info(
    "wrote %s: iresnet %s, %d-d embeddings (config.json, checkpoints/0, converted.json)",
    _WORKDIR.value,
    config.model.arch,
    config.model.embedding_dim,
  )


if __name__ == "__main__":
  app.run(main)
