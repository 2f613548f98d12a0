r"""Face Aggregation Network (Hörmann et al., ICIP 2021): the project's main job.

  python -m jfr.main --config=configs/fan.py --workdir=/tmp/jfr_fan           # 2-core CPU
  python -m jfr.main --config=configs/fan.py:tiny --workdir=/tmp/jfr_fan_tiny  # seconds (tests)
  python -m jfr.main --config=configs/fan.py:paper --workdir=DIR              # the paper's settings

One run (``--mode=all``, see :mod:`jfr.methods.fan.run`): stage 1 trains the ResNet + ArcFace
feature extractor (``config.extractor``, via :mod:`jfr.methods.recognition.trainer`), stage 2
trains the set U-Net aggregator against a discriminator for every loss variant of
``config.variants`` (Table 1 rows), then the evaluation writes the YTF-like table, the
motion-blur table (Table 4), the IJB-like 1:N table (Table 3) and PNG figures.
The protocols are shared evaluators named in ``config.evals`` (``video_pairs``:
:mod:`jfr.eval.video_pairs`, ``mixed_media``: :mod:`jfr.eval.mixed_media`); the stage-1
extractor's still-image evaluation is ``config.extractor.evals`` (``still_images``).

Variants:

* default: ``synthetic_faces/small`` (64 px; four stride-2 encoder blocks end at 4x4),
  a narrow ResNet extractor (128-d) and a narrow U-Net, sized to finish on a 2-core CPU.
  Deviations from the paper, for the CPU budget: Adam lr 5e-4 (the paper's 5e-5 is for
  1.1 M VoxCeleb2 videos; on ~1000 steps it does not move the U-Net far from its random
  start), the ablation variants train for ``ablation_num_train_steps`` steps, the
  evaluation uses N x n_avg <= 20 (the clips have 20 frames).
  Three aggregator options beyond the paper (``'default'`` / ``'none'`` / 0 in ``:paper``;
  the losses stay the paper's Eqs. 5-13 and nothing reads the canonical faces):
  ``aggregator.residual='mean'`` makes the U-Net output a correction added to the masked
  pixel mean of the set (last conv zero-initialised, so training starts from the pixel
  mean), ``aggregator.upsample_init='icnr'`` starts every transposed conv with equal
  sub-pixel kernels (ICNR), and ``aggregator.shading_symmetry=4`` makes the output's
  low frequencies (below a Gaussian of std 4 px) left-right symmetric, an even-light prior
  (:func:`jfr.models.layers.symmetrise_shading`; the quality table also scores it alone on
  the pixel mean, as ``mean_symmetric_shading``). Why: trained from scratch for 800 CPU
  steps on the paper's feature-space losses alone (no pixel loss; L_tv at 1e-4 is ~0.04 of a
  loss of ~20), the paper's U-Net (base width 8) printed a noisy, grid-textured blur (10x the
  inputs' Nyquist energy, 1.8 dB below the pixel mean against the canonical faces); with the
  first two options it stayed below the pixel mean, mostly because of side light, which the
  feature losses ignore. The options, the 500 / 150 (ablation) steps (longer adversarial
  training prints streaks: PSNR and SSIM fall), Adam 5e-4 and lambda_rec = 4 (the paper: 0.5;
  it raised the aggregated face's identity cosine) were chosen on a validation
  split of the TRAIN identities (the last 10 % of train_video's identities held out,
  ``scripts/fan_validation.py``; never the test identities); ``residual='weighted_mean'``,
  a larger L_tv weight and symmetry at 8 px were tried there and not better. Table: the
  README's FAN section.
* ``tiny``: ``synthetic_faces/tiny`` (32 px), a few steps of everything (tests).
* ``pretrained112``: stage 2 only, against a pretrained 112 px recognizer given as
  ``--config.extractor.workdir=RUN`` (required; e.g. an arcface_torch / insightface IResNet
  converted by ``python -m jfr.convert``); 112 px ``synthetic_faces/default`` data, the
  paper's N = 10 and U-Net width, the default's CPU-sized schedule and Adam rate.
  beta = 32, the paper's margin, which is 32 * D / 512 for the released models' D = 512
  (set ``--config.loss.beta=32*D/512`` for another D; ``eval/fan_features.json`` reports
  the converted network's measured squared feature norms, ~D after its feature BatchNorm).
* ``paper``: 112 px, ResNet-50 (bottleneck, 512-d) with ArcFace (s = 64, m = 0.5),
  N = 10, batch 6, Adam 5e-5 -> 1.25e-5 after half of training, 6 epochs expressed in
  steps as ``epochs * train_sets_per_epoch // batch_size`` (set
  ``--config.train_sets_per_epoch`` to the size of your training video set; the paper's
  VoxCeleb2 has 1.1 M videos), beta = 32 (the paper's margin for 512-d ArcFace
  features, whose squared norm is ~512 after the embedding BatchNorm). For real data
  point ``dataset.name`` / ``data_dir`` at a tfds data set with the ``synthetic_faces``
  features and splits (``train`` stills for stage 1 and the positives/negatives,
  ``train_video`` clips, ``test`` stills and ``video`` clips of held-out identities);
  ``jfr.data.adapters`` builds them from folders (MS1M, VoxCeleb2, YTF).

The margin beta of L_dis (Eq. 6) is in the units of the extractor's un-normalised squared
feature distances. Our ResNet ends in a BatchNorm without scale (ArcFace's "E" layer), so
E||f||^2 ~ D; the paper's beta = 32 with D = 512 is 1/16 of that, and we keep the ratio:
beta = 32 * D / 512 (8 for the 128-d default). The trainer logs the measured mean squared
norm and the mean squared distance between identity centres (``eval/fan_features.json``).
"""

import ml_collections

from jfr.train import config_blocks as blocks

VARIANTS = ("default", "tiny", "paper", "pretrained112")


def _extractor(num_train_steps: int, batch_size: int) -> ml_collections.ConfigDict:
  """Stage 1: a recognition config (see configs/baseline.py) without dataset/seed."""
  ext = ml_collections.ConfigDict()
  blocks.engine(
    ext,
    num_train_steps=num_train_steps,
    batch_size=batch_size,
    log_every_steps=50,
    checkpoint_every_steps=500,
  )
  for field in ("seed", "parallelism"):  # taken from the FAN config
    del ext[field]
  ext.model = blocks.resnet((1, 1, 1, 1), num_filters=16, embedding_dim=128)
  ext.head = ml_collections.ConfigDict(dict(kind="arcface", scale=32.0, margin=0.3))
  ext.optimizer = blocks.optimizer_config(
    "sgd", 0.1, schedule="cosine", warmup_steps=50, weight_decay=5e-4
  )
  ext.augment = blocks.augment()
  ext.evals = ml_collections.ConfigDict(dict(extractor=blocks.still_images("test")))
  # A run to take the frozen extractor from instead of training stage 1 (a jfr.convert run, a
  # baseline run or a FAN run; jfr.methods.fan.extractor_source): its recorded model and
  # input size win over ext.model, and the data must have its input size.
  ext.workdir = ml_collections.FieldReference(None, field_type=str)
  return ext


def _video_pairs(
  split, set_configs, blur_kernel_sizes=(), blur_sharp_frames=0
) -> ml_collections.ConfigDict:
  """A ``video_pairs`` evaluator block (:mod:`jfr.eval.video_pairs`) on the test clips."""
  return ml_collections.ConfigDict(
    dict(
      type="video_pairs",
      split=split,
      folds=10,  # YTF-like 10-fold verification over balanced video pairs
      fars=(0.1, 0.01),
      set_configs=tuple(set_configs),  # (N, n_avg) columns
      blur_kernel_sizes=tuple(blur_kernel_sizes),  # () = clean frames
      blur_sharp_frames=blur_sharp_frames,
    )
  )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/fan.py: unknown variant {variant!r}; known: {VARIANTS}")
  config = ml_collections.ConfigDict()
  config.method = "fan"
  # Stage 2 (aggregator) engine fields, read by jfr.train.loop.run_training.
  blocks.engine(
    config, num_train_steps=500, batch_size=6, log_every_steps=50, checkpoint_every_steps=250
  )
  config.dataset = blocks.dataset("synthetic_faces/small")
  config.dataset.train_video_split = "train_video"  # clips of the train identities
  config.dataset.video_split = "video"  # clips of the test identities (evaluation)
  # The YTF-like pair protocol fan_ytf also reads synthetic_faces 1.1.0's
  # video_extra clips (2 more per test identity): 4 clips per identity give 600 genuine +
  # 600 impostor pairs instead of 200 in all. Real data sets without it: set "video".
  config.dataset.video_pairs_split = "video+video_extra"

  config.extractor = _extractor(num_train_steps=400, batch_size=64)

  # Face aggregator (jfr.models.set_unet.SetUNet) and discriminator.
  config.aggregator = ml_collections.ConfigDict(
    dict(
      base_features=8,
      max_members=32,
      output_activation="linear",
      transposed_conv="subpixel",
      set_size=10,  # N of the training sets (the paper trains with constant N = 10)
      min_set_size=10,  # each training set has uniform length in [min_set_size, N]
      # Beyond the paper (jfr.models.set_unet docstring; 'default' / 'none' in :paper):
      upsample_init="icnr",  # every sub-pixel phase of a transposed conv starts equal
      residual="mean",  # output = masked pixel mean of the set + the U-Net's output
      # Even-light prior: the output's band below a Gaussian of std 4 px (of 64) is made
      # left-right symmetric (layers.symmetrise_shading); 0 is off (the paper).
      shading_symmetry=4.0,
    )
  )
  config.discriminator = ml_collections.ConfigDict(
    dict(features=(16, 32, 32, 16), negative_slope=0.2)
  )

  # Eq. 5 weights (paper: 1, 0.5, 1, 1e-4), beta of Eq. 6, rate r of Eq. 10. lambda_rec = 4
  # (the paper's 0.5 in :paper): chosen over 0.5 and 2 on held-out train identities, where it
  # raised the identity cosine of the aggregated face (README, FAN section).
  config.loss = ml_collections.ConfigDict(
    dict(lambda_dis=1.0, lambda_rec=4.0, lambda_adv=1.0, lambda_tv=1e-4, beta=8.0, center_rate=0.5)
  )
  # Adam for the generator and the discriminator (one optimizer each, same settings);
  # the 'steps' schedule drops the rate by 0.25 at half of training (5e-5 -> 1.25e-5).
  # 5e-4: chosen over 1.5e-3 on held-out train identities with the residual aggregator
  # (smoother faces, higher identity cosine; issue 17 item 3).
  config.optimizer = blocks.optimizer_config(
    "adam", 5e-4, schedule="steps", boundaries=(0.5,), decay_factor=0.25
  )
  # Paper Sec. 4.1: flip, contrast/brightness/saturation, motion blur <= 9 px, p = 0.5.
  config.augment = blocks.augment(motion_blur_prob=0.5)

  # Table 1 rows trained in this run (names of jfr.methods.fan.constants.VARIANTS); the first one is
  # the main model. The others train for ablation_num_train_steps (-1: num_train_steps).
  config.variants = ("full", "no_adv", "rec_avg")
  config.ablation_num_train_steps = 150

  # Images per feature-extraction call and sets per aggregator call (every evaluation).
  config.inference = ml_collections.ConfigDict(dict(batch_size=200, set_batch_size=20))
  # The paper's protocols (shared evaluators; the results file is the entry's name).
  config.evals = ml_collections.ConfigDict(
    dict(
      fan_ytf=_video_pairs(  # Table 1 analog
        config.dataset.get_ref("video_pairs_split"), ((1, 2), (5, 2), (10, 2))
      ),
      # Table 4 analog: blur 9 of 10 frames (one (N, n_avg); columns are kernel sizes). On the
      # `video` clips only (200 pairs; the six kernel columns cost 6x a clean column), to keep
      # the default run within 15 minutes on 2 CPU cores.
      fan_blur=_video_pairs(
        config.dataset.get_ref("video_split"),
        ((10, 2),),
        (7, 9, 11, 13, 15, 17),
        blur_sharp_frames=1,
      ),
      fan_ijb=ml_collections.ConfigDict(  # Table 3 analog (jfr.eval.mixed_media)
        dict(
          type="mixed_media",
          still_split=config.dataset.get_ref("test_split"),
          video_split=config.dataset.get_ref("video_split"),
          gallery_stills=8,  # stills in a subject's gallery template (+ its first clip)
          probes_per_subject=4,  # probe templates: other stills + frames of other clips
          ranks=(1, 5),
          fpirs=(0.01, 0.1),
          fars=(0.1, 0.01),  # 1:1 template verification
          max_set_size=config.aggregator.get_ref("max_members"),
        )
      ),
      # Aggregated-face quality against the clips' canonical faces (jfr.eval.fan_quality):
      # PSNR, SSIM, identity cosine, sharpness, checkerboard of every variant and baseline.
      fan_quality=ml_collections.ConfigDict(
        dict(
          type="fan_quality",
          # all four test clips of each identity (400 clips; cheap next to the pair protocols)
          split=config.dataset.get_ref("video_pairs_split"),
          still_split=config.dataset.get_ref("test_split"),  # identity centres
          set_size=config.aggregator.get_ref("set_size"),  # N frames per clip
          flip=False,  # as the video protocols (no flip averaging)
          num_resamples=1000,  # bootstrap over identities
          figure_clips=4,
          max_db=100.0,  # PSNR cap (a perfect copy)
        )
      ),
    )
  )
  # Which variants each protocol compares with feature averaging (fan_ytf: all of them).
  config.eval_variants = ml_collections.ConfigDict(dict(fan_blur=("full",), fan_ijb=("full",)))
  # PNG grids of aggregated faces next to their inputs (clean, and blurred as in fan_blur).
  config.figures = ml_collections.ConfigDict(dict(sets=6, blur_kernel=13))

  if variant == "tiny":  # seconds; for tests
    config.dataset.name = "synthetic_faces/tiny"
    config.dataset.video_pairs_split = "video"
    config.num_train_steps = 4
    config.batch_size = 4
    config.log_every_steps = 2
    config.checkpoint_every_steps = 2
    config.ablation_num_train_steps = 2
    config.extractor.num_train_steps = 4
    config.extractor.batch_size = 8
    config.extractor.log_every_steps = 2
    config.extractor.checkpoint_every_steps = 4
    config.extractor.model = blocks.resnet((1, 1), num_filters=4, embedding_dim=16)
    config.extractor.evals.extractor.batch_size = 32
    config.extractor.evals.extractor.pairs_per_fold = 10
    config.extractor.evals.extractor.folds = 2
    config.aggregator.base_features = 4
    config.aggregator.shading_symmetry = 2.0  # 4 px of 64 at 32 px
    config.aggregator.set_size = 4
    config.aggregator.min_set_size = 2
    config.aggregator.max_members = 8
    config.discriminator.features = (4, 4, 4, 4)
    config.loss.beta = 1.0
    config.variants = ("full", "no_adv")
    config.inference.batch_size = 32
    config.inference.set_batch_size = 4
    config.evals.fan_ytf.folds = 2
    config.evals.fan_ytf.set_configs = ((1, 2), (2, 2))
    config.evals.fan_blur.folds = 2
    config.evals.fan_blur.set_configs = ((4, 1),)
    config.evals.fan_blur.blur_kernel_sizes = (7, 11)
    config.evals.fan_ijb.gallery_stills = 2
    config.evals.fan_ijb.probes_per_subject = 2
    config.evals.fan_ijb.ranks = (1,)
    config.evals.fan_ijb.fpirs = (0.1,)
    config.figures.sets = 2
    config.figures.blur_kernel = 7
    config.evals.fan_quality.num_resamples = 200
    config.evals.fan_quality.figure_clips = 2
  elif variant == "paper":
    config.dataset.name = "synthetic_faces/default"
    config.dataset.video_pairs_split = "video"  # the split a prepared real data set has
    config.extractor = _extractor(num_train_steps=40_000, batch_size=256)
    config.extractor.model = blocks.resnet(
      (3, 4, 6, 3), num_filters=64, embedding_dim=512, block="bottleneck"
    )
    config.extractor.head.scale, config.extractor.head.margin = 64.0, 0.5
    config.extractor.checkpoint_every_steps = 2000
    config.aggregator.base_features = 32
    config.aggregator.max_members = 64
    config.aggregator.upsample_init = "default"  # the paper's U-Net, from its random start
    config.aggregator.residual = "none"
    config.aggregator.shading_symmetry = 0.0
    config.discriminator.features = (32, 64, 64, 32)
    config.loss.beta = 32.0
    config.loss.lambda_rec = 0.5  # the paper's Eq. 5 weights: 1, 0.5, 1, 1e-4
    config.optimizer.learning_rate = 5e-5
    config.variants = ("full", "no_adv", "rec_avg")
    config.ablation_num_train_steps = -1
    # 6 epochs of the training videos at batch 6 (paper Sec. 4.1).
    config.epochs = 6
    config.train_sets_per_epoch = 1_100_000
    config.num_train_steps = (
      config.get_ref("epochs")
      * config.get_ref("train_sets_per_epoch")
      // config.get_ref("batch_size")
    )
    config.checkpoint_every_steps = 10_000
    config.log_every_steps = 500
    config.evals.fan_ytf.set_configs = ((1, 2), (5, 2), (10, 2), (10, 4), (10, 6), (10, 8))
    config.evals.fan_blur.set_configs = ((10, 4),)
    config.eval_variants.fan_blur = ("full", "no_adv", "rec_avg")
    config.eval_variants.fan_ijb = ("full", "no_adv", "rec_avg")
  elif variant == "pretrained112":
    config.dataset.name = "synthetic_faces/default"  # 112 px, arcface_torch's input size
    config.extractor.num_train_steps = 0  # not trained: extractor.workdir is required
    config.aggregator.base_features = 32
    config.aggregator.max_members = 64
    config.aggregator.shading_symmetry = 7.0  # 4 px of 64 at 112 px
    config.discriminator.features = (32, 64, 64, 32)
    config.loss.beta = 32.0  # 32 * D / 512 with D = 512 (the released IResNets)
  return config.lock()
