r"""Plain face recognition baseline: ResNet + ArcFace (or softmax) on synthetic faces.

python -m jfr.main --config=configs/baseline.py --workdir=/tmp/jfr_baseline
python -m jfr.main --config=configs/baseline.py:softmax ...   # plain softmax head
python -m jfr.main --config=configs/baseline.py:paper ...     # ResNet-50, 112 px, GPU sizes
"""

import ml_collections

from jfr.train import config_blocks as blocks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in ("default", "softmax", "paper", "tiny"):
    raise ValueError(f"configs/baseline.py: unknown variant {variant!r}")
  config = ml_collections.ConfigDict()
  config.method = "recognition"
  blocks.engine(config, num_train_steps=1500, batch_size=64, log_every_steps=100)
  config.dataset = blocks.dataset("synthetic_faces/small")
  config.model = blocks.resnet()
  config.head = ml_collections.ConfigDict(dict(kind="arcface", scale=32.0, margin=0.3))
  config.optimizer = blocks.optimizer_config(
    "sgd", 0.1, schedule="cosine", warmup_steps=100, weight_decay=5e-4
  )
  config.augment = blocks.augment()
  # Evaluations run after training (and by --mode=eval): name -> evaluator settings.
  config.evals = ml_collections.ConfigDict(dict(recognition=blocks.still_images("test")))
  if variant == "softmax":
    config.head.kind = "softmax"
  elif variant == "tiny":  # seconds; for tests
    config.dataset.name = "synthetic_faces/tiny"
    config.num_train_steps = 6
    config.batch_size = 8
    config.log_every_steps = 2
    config.checkpoint_every_steps = 3
    config.model = blocks.resnet((1, 1), num_filters=4, embedding_dim=16)
    config.evals.recognition.batch_size = 32
    config.evals.recognition.pairs_per_fold = 10
    config.evals.recognition.folds = 2
  elif variant == "paper":
    config.dataset.name = "synthetic_faces/default"
    config.model = blocks.resnet(
      (3, 4, 6, 3), num_filters=64, embedding_dim=512, block="bottleneck"
    )
    config.head.scale, config.head.margin = 64.0, 0.5
    config.batch_size = 256
    config.num_train_steps = 40_000
    config.checkpoint_every_steps = 2000
  return config.lock()
