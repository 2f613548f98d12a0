r"""Explainable face recognition (Xu, Lu, Ebrahimi): joint recognition + reconstruction
training, Algorithm 1 saliency, the hiding game and a pointing game on synthetic part pairs.

  python -m jfr.main --config=configs/explain.py --workdir=/tmp/jfr_explain
  python -m jfr.main --config=configs/explain.py --workdir=... --mode=explain  # maps only
  python -m jfr.main --config=configs/explain.py:paper ...  # ResNet-50, 112 px, GPU sizes
  python -m jfr.main --config=configs/explain.py:tiny ...   # seconds; for tests

Fields beyond the shared blocks (see :mod:`jfr.methods.explain`):

* ``rec_weight``: lambda of Eq. 2, ``L = L_id + lambda * L_rec``.
* ``decoder_backprop_to_backbone``: whether ``L_rec``'s gradient reaches the backbone
  (True: the paper trains both flows jointly on Eq. 2).
* ``decoder.widths``: channels of the first three of the four transposed convolutions.
* ``optimizer`` (backbone + ArcFace head) and ``decoder_optimizer`` (the decoder): the
  paper's two optimizers, SGD and Adam.
* ``backbone_init``: a recognition run (e.g. an IResNet from ``jfr.convert``) whose conv
  trunk initialises ours (its output layer is dropped; the result is a new, fine-tuned model:
  see :mod:`jfr.methods.explain.trainer`).
* ``baseline.pooling``: embedding layer of the plain ArcFace model trained in the same run
  (Table I analog); its embedding dimension is set to the channel count ``c`` of ours.
* ``explain``: Algorithm 1's threshold and batching, the verification batch and the
  figure rows.
* ``evals``: ``recognition`` (Table I analog, :mod:`jfr.eval.still_images`; its pairs also
  give Algorithm 1's threshold), ``hiding_game`` (:mod:`jfr.eval.hiding_protocol`:
  ``fractions``, ``blur_sigma`` in pixels) and ``pointing_game``
  (:mod:`jfr.eval.pointing_protocol`: the synthetic part pairs).
"""

import ml_collections

from jfr.train import config_blocks as blocks

VARIANTS = ("default", "paper", "tiny")
# Maps played in the hiding game and scored in the pointing game (keys of
# jfr.explain.suite.MAP_NAMES).
HIDING_METHODS = (
  "ours_s",
  "ours_s_pos",
  "ours_s_neg",
  "gradient",
  "grad_cam",
  "grad_cam_pp",
  "stylianou",
  "random",
)
POINTING_METHODS = (
  "ours_s_neg",
  "ours_s",
  "ours_s_pos",
  "gradient",
  "gradient_neg",
  "grad_cam",
  "grad_cam_pp",
  "stylianou",
  "random",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/explain.py: unknown variant {variant!r}; known: {VARIANTS}")
  config = ml_collections.ConfigDict()
  config.method = "explain"
  blocks.engine(
    config, num_train_steps=600, batch_size=32, log_every_steps=100, checkpoint_every_steps=300
  )
  config.dataset = blocks.dataset("synthetic_faces/small")
  # Four stages: 64 px -> a 4x4x128 map, 16 px per cell as the paper's 7x7 map of 112 px
  # faces, and the decoder's four stride-2 layers give 64 px without resizing.
  config.model = blocks.resnet((1, 1, 1, 1), num_filters=16, pooling="gmp")
  config.head = ml_collections.ConfigDict(dict(kind="arcface", scale=32.0, margin=0.3))
  config.optimizer = blocks.optimizer_config(
    "sgd", 0.1, schedule="cosine", warmup_steps=50, weight_decay=5e-4
  )
  # Adam at 10x the paper's rate: the decoder gets 600 steps here, not 25 epochs.
  config.decoder_optimizer = blocks.optimizer_config("adam", 2e-3, schedule="cosine")
  config.decoder = ml_collections.ConfigDict(dict(widths=(32, 16, 8)))
  config.rec_weight = 1.0
  config.decoder_backprop_to_backbone = True
  config.baseline = ml_collections.ConfigDict(dict(pooling="flatten_fc"))
  # A recognition run (e.g. jfr.convert's IResNet) whose conv trunk starts ours: its model
  # with pooling='gmp' replaces config.model; head and decoder start fresh, Eq. 2 trains all.
  config.backbone_init = ml_collections.FieldReference(None, field_type=str)
  config.augment = blocks.augment()
  config.explain = ml_collections.ConfigDict(
    dict(
      threshold_source="best_on_eval_pairs",  # or 'given' (then tau = threshold)
      threshold=0.5,  # tau on the cosine similarity when 'given'
      chunk_size=16,  # perturbed maps decoded per batch (Algorithm 1)
      pair_batch=8,  # pairs per compiled saliency call
      verify_batch_size=64,  # images per compiled embedding call of the games
      figure_genuine=2,
      figure_impostor=2,
    )
  )
  hiding_game = ml_collections.ConfigDict(
    dict(
      type="hiding_game",
      split="test",
      num_pairs=128,  # test pairs (half genuine)
      fractions=tuple(round(0.1 * i, 1) for i in range(11)),
      # Gaussian blur of hidden pixels (the paper gives no sigma). Calibrated so that
      # blurring all of A brings verification near chance: the small models read identity
      # from coarse structure and colour (measured, default run: sigma 2 -> 0.98 accuracy,
      # 4 -> 0.95, 8 -> 0.80, 16 -> 0.59, unblurred 0.98). A quarter of the image side.
      blur_sigma=16.0,
      methods=HIDING_METHODS,
    )
  )
  pointing_game = ml_collections.ConfigDict(
    dict(
      type="pointing_game",
      split="test",
      parts=("brows", "eyes", "nose", "mouth"),
      pairs_per_part=24,  # synthetic pairs differing in one part only
      max_yaw=20.0,  # pose range of the part pairs (parts stay visible)
      region_dilation=2,  # pixels added around the part (anti-aliased edges)
      methods=POINTING_METHODS,
    )
  )
  config.evals = ml_collections.ConfigDict(
    dict(
      recognition=blocks.still_images("test"),
      hiding_game=hiding_game,
      pointing_game=pointing_game,
    )
  )
  if variant == "tiny":  # seconds; for tests
    config.dataset.name = "synthetic_faces/tiny"
    config.num_train_steps = 6
    config.batch_size = 8
    config.log_every_steps = 2
    config.checkpoint_every_steps = 3
    config.model = blocks.resnet((1, 1, 1), num_filters=4, pooling="gmp")
    config.decoder.widths = (8, 8, 4)
    config.evals.recognition.batch_size = 32
    config.evals.recognition.pairs_per_fold = 10
    config.evals.recognition.folds = 2
    config.evals.hiding_game.num_pairs = 8
    config.explain.verify_batch_size = 4
    config.explain.chunk_size = 8
    config.explain.pair_batch = 4
    config.evals.hiding_game.blur_sigma = 8.0
    config.evals.hiding_game.fractions = (0.0, 0.5, 1.0)
    config.evals.pointing_game.pairs_per_part = 2
    config.evals.pointing_game.parts = ("nose", "mouth")
    config.evals.pointing_game.region_dilation = 1
    config.explain.figure_genuine = 1
    config.explain.figure_impostor = 1
  elif variant == "paper":
    config.dataset.name = "synthetic_faces/default"
    # ResNet-50 as in Sec. IV-A (He et al. [27]); its last FC replaced by global max pooling.
    config.model = blocks.resnet((3, 4, 6, 3), num_filters=64, block="bottleneck", pooling="gmp")
    config.head.scale, config.head.margin = 64.0, 0.5
    config.optimizer = blocks.optimizer_config(
      "sgd", 0.02, schedule="cosine", warmup_steps=1000, weight_decay=5e-4
    )
    config.decoder_optimizer = blocks.optimizer_config("adam", 2e-4, schedule="cosine")
    config.decoder.widths = (512, 256, 128)
    config.rec_weight = 1.0  # the paper does not state lambda
    config.batch_size = 256
    config.num_train_steps = 40_000
    config.checkpoint_every_steps = 2000
    config.evals.hiding_game.num_pairs = 1000
    config.explain.verify_batch_size = 500
    config.explain.chunk_size = 128
    config.explain.pair_batch = 32
    config.evals.hiding_game.blur_sigma = 28.0
    config.evals.pointing_game.pairs_per_part = 100
    config.evals.pointing_game.region_dilation = 3
  return config.lock()
