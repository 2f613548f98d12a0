"""Config blocks shared by the method configs in ``configs/`` (ml_collections).

Each function returns a complete ``ConfigDict`` block; a method's ``get_config`` puts
them together and overrides what it needs. Every field is declared here, so a typo on
the command line (``--config.model.num_filter=8``) is an error.
"""

from __future__ import annotations

import ml_collections

from jfr.train.optimizers import optimizer_config  # noqa: F401  (re-exported for configs)


def engine(
  config: ml_collections.ConfigDict,
  *,
  num_train_steps: int,
  batch_size: int,
  log_every_steps: int = 50,
  checkpoint_every_steps: int = 500,
) -> None:
  """Adds the fields the training loop reads (see :mod:`jfr.train.loop`)."""
  config.seed = 0
  config.num_train_steps = num_train_steps
  config.batch_size = batch_size
  config.log_every_steps = log_every_steps
  config.checkpoint_every_steps = checkpoint_every_steps
  config.keep_checkpoints = 2
  config.max_consecutive_nonfinite = 10
  # The update guard's divergence limits (jfr.train.guard; <= 0 turns a rule off): a step
  # whose update norm (per sub-model) exceeds this factor times its running mean, or whose
  # parameter norm (all trainable sub-models) exceeds this factor times the previous one,
  # is rejected like a non-finite step.
  config.guard_update_norm_factor = 1000.0
  config.guard_param_norm_factor = 1000.0
  config.parallelism = "pmap"
  # Evaluation of a run whose newest checkpoint is damaged: refuse (False) or use the
  # previous complete one and say so in the results (True; --allow_older_checkpoint).
  config.allow_older_checkpoint = False


def dataset(
  name: str = "synthetic_faces/small", num_classes: int = -1
) -> ml_collections.ConfigDict:
  """Which tfds data set and splits (see :mod:`jfr.context`)."""
  return ml_collections.ConfigDict(
    dict(
      name=name,
      data_dir=ml_collections.FieldReference(None, field_type=str),
      train_split="train",
      test_split="test",
      num_classes=num_classes,
    )
  )


def resnet(
  stage_sizes=(1, 1, 1, 1),
  num_filters: int = 16,
  embedding_dim: int = 128,
  pooling: str = "flatten_fc",
  block: str = "basic",
) -> ml_collections.ConfigDict:
  """A ResNet backbone (``stage_sizes=(3, 4, 6, 3), block='bottleneck'`` is ResNet-50)."""
  return ml_collections.ConfigDict(
    dict(
      name="resnet",
      stage_sizes=tuple(stage_sizes),
      block=block,
      num_filters=num_filters,
      embedding_dim=embedding_dim,
      pooling=pooling,
      dropout_rate=0.0,
    )
  )


def iresnet(
  arch: str = "r50", num_filters: int = 64, embedding_dim: int = 512, pooling: str = "flatten_fc"
) -> ml_collections.ConfigDict:
  """arcface_torch's IResNet (``arch`` 'r18' | 'r34' | 'r50' | 'r100' | 'r200'; see
  :mod:`jfr.models.iresnet`); the defaults are the released models' sizes."""
  return ml_collections.ConfigDict(
    dict(
      name="iresnet",
      arch=arch,
      num_filters=num_filters,
      embedding_dim=embedding_dim,
      pooling=pooling,
      dropout_rate=0.0,
    )
  )


def augment(
  flip: bool = True, jitter: float = 0.2, motion_blur_prob: float = 0.0
) -> ml_collections.ConfigDict:
  """Training augmentation (see :func:`jfr.data.pipelines.augment_image`)."""
  return ml_collections.ConfigDict(
    dict(
      flip=flip,
      brightness=jitter,
      contrast=jitter,
      saturation=jitter,
      motion_blur_prob=motion_blur_prob,
      motion_blur_max_size=9,
    )
  )


def evaluation(batch_size: int = 256) -> ml_collections.ConfigDict:
  """Still-image verification / identification protocol (see :mod:`jfr.eval.still_images`)."""
  return ml_collections.ConfigDict(
    dict(
      batch_size=batch_size,
      pairs_per_fold=300,
      folds=10,
      fars=(0.1, 0.01, 0.001),
      ranks=(1, 5, 10),
      fpirs=(0.01, 0.1),
      unknown_fraction=0.2,
      gallery_per_identity=1,
    )
  )


def still_images(
  split: str = "test", batch_size: int = 256, flip: bool = False
) -> ml_collections.ConfigDict:
  """A ``config.evals`` entry of the ``still_images`` evaluator (:mod:`jfr.eval.still_images`):
  :func:`evaluation`'s protocol settings on ``split``, optionally flip-averaged."""
  block = evaluation(batch_size)
  block.type = "still_images"
  block.split = split
  block.flip = flip
  return block
