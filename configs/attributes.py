r"""Attribute-enhanced face identification (Taherkhani, Nasrabadi, Dawson).

  python -m jfr.main --config=configs/attributes.py --workdir=/tmp/jfr_attributes
  python -m jfr.main --config=configs/attributes.py --workdir=... --mode=eval  # re-evaluate
  python -m jfr.main --config=configs/attributes.py:tiny ...   # seconds; for tests
  python -m jfr.main --config=configs/attributes.py:paper ...  # VGG-19, FC 4096, 112 px, GPU

Mode ``all`` trains the joint ("Ours-J"), separate ("Ours-S") and concat variants
(``config.variants``) on the attribute-annotated ``dataset.train_split`` (stage 1, the
CelebA step), fine-tunes each for identification on test identities without their
attributes (stage 2, the MegaFace/FaceScrub step; ``finetune.enabled``), then
evaluates and compares them (see :mod:`jfr.methods.attributes.run`).

Fields beyond the shared engine/dataset/optimizer/augment blocks:

* ``attributes.names``: the attributes T the model predicts and fuses, validated
  against the data set's ``attribute_names`` metadata (default: the paper's ten
  identity attributes, Sec. 5.2).
* ``model``: ``widths`` of the five VGG-19 conv groups (paper: 64, 128, 256, 512, 512),
  ``attribute_hidden`` / ``identity_hidden`` units of the first FC of each branch
  (paper: 4096), ``dtype`` of the computation ('float32' | 'bfloat16').
* ``variants``: which of 'joint', 'separate', 'concat' modes ``all``/``train``/``eval`` run.
* ``loss``: weights of L1 (Eq. 2) and L2 (Eq. 3); the paper minimises L1 + L2.
* ``finetune``: stage 2 (``enabled``, ``num_train_steps``, ``batch_size``,
  ``images_per_identity`` of each FaceScrub-like identity used for it,
  ``train_attribute_head``: whether L2 may also update the attribute branch W_{2,1},
  ``optimizer``).
* ``evals``: the protocols run on every variant (``jfr.eval`` registry).
  ``identification`` (``cmc_with_distractors``, :mod:`jfr.eval.cmc_distractors`):
  MegaFace-like identification on the test identities (``probe_identity_fraction``:
  identities enrolled and probed, the others are distractors; ``finetune_per_identity``
  (= ``finetune.images_per_identity``, held out for stage 2); ``gallery_per_identity``;
  ``distractor_counts`` (-1 = all); ``video_split`` and ``video_frame_stride``: every k-th
  frame of the distractor identities' clips joins the distractors (0: none); ``max_rank``
  of the CMC curve; ``batch_size`` of feature extraction; ``seed`` of the split, which
  also picks the fine-tuning stills). ``cam`` (``cam_region_mass``,
  :mod:`jfr.eval.cam_region_mass`, stage-1 models only): class activation maps (Fig. 4):
  ``num_images`` test stills scored for the map mass inside each attribute's face part,
  ``attributes`` (= ``attributes.names``), ``keep_maps`` (the figure's rows),
  ``batch_size``.
* ``cam.figure_columns``: images per row of the activation-map figure.
"""

import ml_collections

from jfr.data import face_renderer
from jfr.train import config_blocks as blocks

VARIANTS = ("default", "paper", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/attributes.py: unknown variant {variant!r}; known: {VARIANTS}")
  config = ml_collections.ConfigDict()
  config.method = "attributes"
  # 800 steps of 64 (8 passes over the 400 train identities' 6,400 stills): stage-1
  # identity train accuracy 30-42% (joint 7% at 400 steps; ~1% at 150 steps of 32, where
  # the variants' comparison was noise). All three variants with fine-tuning and
  # evaluation: 17.6 min on the 2-core CPU.
  blocks.engine(
    config, num_train_steps=800, batch_size=64, log_every_steps=100, checkpoint_every_steps=800
  )
  config.dataset = blocks.dataset("synthetic_faces/small")
  config.attributes = ml_collections.ConfigDict(
    dict(names=ml_collections.FieldReference(tuple(face_renderer.IDENTITY_ATTRIBUTES)))
  )
  config.model = ml_collections.ConfigDict(
    dict(widths=(8, 16, 32, 64, 64), attribute_hidden=128, identity_hidden=128, dtype="float32")
  )
  config.variants = ("joint", "separate", "concat")
  config.loss = ml_collections.ConfigDict(dict(attribute_weight=1.0, identity_weight=1.0))
  # Sec. 4: Adam with the authors' defaults and learning rate 0.001.
  config.optimizer = blocks.optimizer_config("adam", 1e-3)
  config.augment = blocks.augment(jitter=0.1)
  config.finetune = ml_collections.ConfigDict(
    dict(
      enabled=True,
      num_train_steps=100,
      batch_size=32,
      images_per_identity=8,
      train_attribute_head=False,
      optimizer=blocks.optimizer_config("adam", 1e-3),
    )
  )
  # Protocols (jfr.eval registry). The identification protocol's split also picks the
  # stage-2 fine-tuning stills (finetune_per_identity is finetune.images_per_identity).
  config.evals = ml_collections.ConfigDict(
    dict(
      identification=dict(
        type="cmc_with_distractors",
        split=config.dataset.get_ref("test_split"),
        video_split="video",
        probe_identity_fraction=0.5,
        finetune_per_identity=config.finetune.get_ref("images_per_identity"),
        gallery_per_identity=1,
        distractor_counts=(10, 100, 1000, -1),
        video_frame_stride=5,
        max_rank=20,
        batch_size=128,
        seed=0,
      ),
      cam=dict(
        type="cam_region_mass",
        split=config.dataset.get_ref("test_split"),
        attributes=config.attributes.get_ref("names"),
        num_images=128,
        batch_size=64,
        keep_maps=("Big_Nose", "Big_Lips", "Narrow_Eyes", "Bald"),
      ),
    )
  )
  config.cam = ml_collections.ConfigDict(dict(figure_columns=6))
  if variant == "tiny":  # seconds; for tests
    config.dataset.name = "synthetic_faces/tiny"
    config.num_train_steps = 3
    config.batch_size = 8
    config.log_every_steps = 1
    config.checkpoint_every_steps = 2
    config.model.widths = (2, 2, 4, 4, 4)
    config.model.attribute_hidden = 0
    config.model.identity_hidden = 8
    config.augment = blocks.augment(flip=False, jitter=0.0)
    config.finetune.num_train_steps = 2
    config.finetune.batch_size = 4
    config.finetune.images_per_identity = 1
    config.evals.identification.distractor_counts = (10, -1)
    config.evals.identification.video_frame_stride = 2
    config.evals.identification.max_rank = 5
    config.evals.identification.batch_size = 32
    config.evals.cam.num_images = 16
    config.evals.cam.batch_size = 16
    config.cam.figure_columns = 3
  elif variant == "paper":
    # VGG-19 (net@1) with 4096-unit FC layers in both branches (net@2), batch 128,
    # 100 epochs at lr 1e-3 (Sec. 5): 2000 x 20 train images / 128 ~ 312 steps per epoch.
    config.dataset.name = "synthetic_faces/default"
    config.model.widths = (64, 128, 256, 512, 512)
    config.model.attribute_hidden = 4096
    config.model.identity_hidden = 4096
    config.batch_size = 128
    config.num_train_steps = 31_200
    config.log_every_steps = 100
    config.checkpoint_every_steps = 2000
    config.augment = blocks.augment()
    config.finetune.num_train_steps = 3000
    config.finetune.batch_size = 128
    config.finetune.images_per_identity = 10
    config.evals.identification.video_frame_stride = 1
    config.evals.identification.max_rank = 50
    config.evals.identification.batch_size = 256
    config.evals.cam.num_images = 1024
  return config.lock()
