r"""Interpretable face recognition (Yin et al., ICCV 2019): SAD / FAD on a hypercolumn CASIA-Net.

  python -m jfr.main --config=configs/interpretable.py --workdir=/tmp/interp      # CPU, minutes
  python -m jfr.main --config=configs/interpretable.py:gaud ...    # Gaussian-noise dynamic occluder
  python -m jfr.main --config=configs/interpretable.py:paper ...   # Table 1 network, 96 px, GPU
  python -m jfr.main --config=configs/interpretable.py:tiny ...    # seconds; for tests

One run trains the four variants of ``run_variants`` (base CNN, SAD only, FAD only, SAD +
FAD) and compares them; see :mod:`jfr.methods.interpretable.run`.

Default (CPU, a smoke-scale experiment, not a reproduction of the paper's numbers):

* ``synthetic_faces/small`` (64 px faces), training on its first 100 identities (1,600
  faces; 900 steps of 16 pairs see each face ~9 times: with all 400 identities a few
  hundred steps leave the softmax at chance), testing on the 100 held-out identities.
  8 min for the four variants on the idle 2-core CPU (base CNN: rank-1 39% on the test
  identities; 300 steps on 40 identities gave 19%).
* A narrow CASIA-Net: every Table 1 width divided by 8, HC convs 16 channels, Φ 32
  channels, K = 64. The HC map is H/4 = 16 x 16 (24 x 24 at 96 px), so LMF keeps the
  paper's share of each map, ``keep = round(24 · 16² / 24²) = 11`` (d = 95.7%; the paper's
  95.83%), and FAD the paper's share of the elements, ``t = round(260 / 320 · K) = 52``.
* Training from scratch, the paper's head and optimizer do not move in a CPU budget:
  f = GAP(LMF(Ψ)) is ~0.02 at initialisation (new weights std 0.02, 11 of 256 map
  elements kept), so a dense softmax with std-0.02 weights gives logits ~1e-3 and
  its loss stayed at ln C for 200 steps (SGD 0.02-0.2, Adam 2e-3; SGD 0.5 diverged);
  with a scale-free head FAD (Eq. 4) could be met by shrinking f. Hence ``head.kind =
  'cosine'`` (logits 16 · cos(f, w_c), NormFace-style), τ and Eq. 4 on the unit-RMS
  features ``√K f / ‖f‖`` (the space the cosine head and the cosine matching use) and
  Adam 1e-3, divided by 10 twice (at 60% and 85% of the steps), as the paper's schedule.

``:paper``: Table 1 widths (conv11 ... conv52, HC 192, Φ 576), K = 320, 96 x 96 inputs
(``synthetic_faces/default`` 112 px faces resized; landmarks scaled), keep 24
(d = 95.83%), the dense softmax of Eq. 3 with FAD on f itself, SGD momentum 0.9 at 1e-3
divided by 10 twice, t = 260 (count mode), σ = 1.5, the GauD occluder (the paper's
final model, Tables 2 and 4), all training identities. Batch 64 pairs (Fig. 3:
"64-image mini-batch").

Loss weights: the paper gives none. The trainer divides the SAD sums (Eqs. 1-2) by
K(K−1), the number of filter pairs (at K = 320 the raw sums are ~10^4), so
``loss.sad_*_weight = 1`` weigh the mean cosine terms like the softmax. FAD (Eq. 4) is
used as written (sum over the t masked elements); its weight is 1 in ``:paper`` and 0.1
in the default: with weight 1 on the unit-RMS features (a sum of 52 terms) the FAD
variants reached 9-14% training accuracy after 300 steps on 40 identities against 46-49%
without FAD, and test rank-1 of 5-7% against 18-19% (one run each); with 0.1 they train
nearly like the others (900 steps on 100 identities: 38-45% against 46-50%).
"""

import ml_collections

from jfr.train import config_blocks as blocks

# Table 1 widths of conv11 ... conv52 (conv53 has K channels).
PAPER_WIDTHS = (32, 64, 64, 64, 128, 128, 96, 192, 192, 128, 256, 256, 160)
VARIANTS = {
  "base": dict(lmf=False, sad=False, fad=False),  # d = 0%: the base CNN
  "sad": dict(lmf=True, sad=True, fad=False),  # "SAD only" (LMF belongs to SAD)
  "fad": dict(lmf=False, sad=False, fad=True),  # "FAD only"
  "sad_fad": dict(lmf=True, sad=True, fad=True),  # the full method
}


def _scaled_keep(map_side: int) -> int:
  """The paper's LMF share (24 of 24 x 24) of a ``map_side`` x ``map_side`` map."""
  return max(1, round(24 * map_side**2 / 24**2))


def _scaled_t(feature_dim: int) -> int:
  """The paper's FAD share (t = 260 of K = 320) of ``feature_dim`` elements."""
  return round(260 * feature_dim / 320)


def _evals(config: ml_collections.ConfigDict, batch_size: int) -> ml_collections.ConfigDict:
  """``config.evals`` of the method: the occlusion scenarios (Tables 2, 4, 5), peak spread
  (Fig. 5, Table 3), the Fig. 6 feature difference and partial-face retrieval (Sec. 4.4).

  ``config.eval_batch_size`` and ``config.eval_images`` (faces analysed for peaks and
  Fig. 6) are shared by the entries; the split is ``dataset.test_split`` and the synthetic
  test occluder follows ``config.occlusion`` (field references: override them there).
  """
  config.eval_batch_size = batch_size
  config.eval_images = 1000
  batch = config.get_ref("eval_batch_size")
  images = config.get_ref("eval_images")
  split = config.dataset.get_ref("test_split")
  recognition = blocks.still_images("test", batch_size=200)
  recognition.batch_size = batch
  recognition.split = split
  recognition.type = "occluded_still_images"
  recognition.pairs_per_fold = 1000
  recognition.scenarios = ("original", "synthetic_occlusion", "natural_occlusion")
  recognition.occlusion_mode = config.occlusion.get_ref("mode")
  recognition.occlusion_fill = config.occlusion.get_ref("fill")
  return ml_collections.ConfigDict(
    dict(
      recognition=recognition,
      peak_spread=dict(type="peak_spread", split=split, batch_size=batch, images=images),
      feature_difference=dict(
        type="occlusion_feature_difference",
        split=split,
        batch_size=batch,
        images=images,
        parts=("eyes", "nose"),
        margin=0.04,  # part occluder = landmark box + 4% of the side
        fill=config.occlusion.get_ref("fill"),
      ),
      partial_retrieval=dict(
        type="partial_face_retrieval",
        split=split,
        batch_size=batch,
        images=images,
        identities=150,  # subjects (two faces each)
        filter_fraction=0.125,  # filters per part (of K)
        random_draws=10,  # random filter subsets (retrieval control)
      ),
    )
  )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in ("default", "gaud", "paper", "tiny"):
    raise ValueError(
      f"configs/interpretable.py: unknown variant {variant!r}; "
      "expected default, gaud, paper or tiny"
    )
  config = ml_collections.ConfigDict()
  config.method = "interpretable"
  blocks.engine(
    config, num_train_steps=900, batch_size=16, log_every_steps=100, checkpoint_every_steps=900
  )
  config.dataset = blocks.dataset("synthetic_faces/small")
  config.dataset.train_identities = 100  # train on the first n identities (<= 0: all)
  config.model = ml_collections.ConfigDict(
    dict(
      image_size=64,  # network input side (images are resized to it)
      feature_dim=64,  # K
      keep=_scaled_keep(64 // 4),  # LMF elements kept per H/4 x W/4 map
      trunk_widths=tuple(w // 8 for w in PAPER_WIDTHS),
      hc_features=16,  # conv44 / conv54 channels (192 in Table 1)
      phi_features=32,  # Φ conv channels (<= 0: the concatenation's, 576)
      upsample="bilinear",
      dtype="float32",
    )
  )
  # BlaS: black 32x12 (at 96 px) rectangle; GauD: Gaussian noise, sides in [12, 32].
  config.occlusion = ml_collections.ConfigDict(dict(mode="static", fill="black"))
  # 'softmax': the paper's dense K-way softmax (Eq. 3); 'cosine': logits scale · cos(f, w).
  config.head = ml_collections.ConfigDict(dict(kind="cosine", scale=16.0))
  config.loss = ml_collections.ConfigDict(
    dict(
      identity_weight=1.0,  # Eq. 3
      occluded_identity_weight=1.0,  # Eq. 5
      sad_filter_weight=1.0,  # Eq. 1 / K(K-1)
      sad_response_weight=1.0,  # Eq. 2 / K(K-1), on g_σ * LMF(ψ)
      sigma=1.5,  # g_σ
      fad_weight=0.1,  # Eq. 4 (1.0 in :paper; see the module docstring)
      fad_mode="count",  # 'count': keep the fad_t least changed elements
      fad_t=_scaled_t(64),
      fad_value_threshold=0.01,  # 'value' mode: keep elements changed by less than this
      fad_on_unit_features=True,  # τ and Eq. 4 on √K f / |f| (scale-free, as the head)
      occluded_branch_without_fad=True,
    )
  )  # base / SAD also classify f(Î) ("CASIA-Net agu.")
  config.variants = ml_collections.ConfigDict(VARIANTS)
  config.run_variants = ("base", "sad", "fad", "sad_fad")
  config.optimizer = blocks.optimizer_config(
    "adam", 1e-3, schedule="steps", boundaries=(0.6, 0.85), decay_factor=0.1, momentum=0.9
  )
  config.augment = blocks.augment(flip=False, jitter=0.1)  # no flip: it breaks the warp
  # Evaluations of every variant (protocol settings; see jfr.eval.occlusion, peak_spread,
  # partial_retrieval), then the comparison of jfr.methods.interpretable.report.
  config.evals = _evals(config, batch_size=200)
  config.report = ml_collections.ConfigDict(
    dict(
      fars=(0.01, 0.001),  # TAR@FAR columns of the recognition table
      ranks=(1, 5),  # CMC columns
      figure_filters=8,  # filters shown in Fig. 8
    )
  )
  if variant == "gaud":
    config.occlusion.mode, config.occlusion.fill = "dynamic", "noise"
  elif variant == "tiny":  # seconds; for tests
    config.dataset.name = "synthetic_faces/tiny"
    config.dataset.train_identities = -1
    config.num_train_steps = 3
    config.batch_size = 8
    config.log_every_steps = 1
    config.checkpoint_every_steps = 3
    config.model.image_size = 32
    config.model.feature_dim = 8
    config.model.keep = _scaled_keep(32 // 4)
    config.model.trunk_widths = (4,) * 13
    config.model.hc_features = 4
    config.model.phi_features = 8
    config.loss.fad_t = _scaled_t(8)
    config.eval_batch_size = 24
    config.evals.recognition.pairs_per_fold = 20
    config.evals.recognition.folds = 2
    config.eval_images = 24
    config.evals.partial_retrieval.random_draws = 2
    config.report.figure_filters = 3
  elif variant == "paper":
    config.dataset.name = "synthetic_faces/default"
    config.dataset.train_identities = -1
    config.head.kind = "softmax"
    config.loss.fad_on_unit_features = False
    config.optimizer.name = "sgd"
    config.model.image_size = 96
    config.model.feature_dim = 320
    config.model.keep = 24
    config.model.trunk_widths = PAPER_WIDTHS
    config.model.hc_features = 192
    config.model.phi_features = 0
    config.loss.fad_t = 260
    config.occlusion.mode, config.occlusion.fill = "dynamic", "noise"
    config.loss.fad_weight = 1.0
    config.optimizer.learning_rate = 1e-3
    config.batch_size = 64
    config.num_train_steps = 60_000
    config.log_every_steps = 200
    config.checkpoint_every_steps = 5000
    config.eval_batch_size = 256
    config.report.figure_filters = 10
  return config.lock()
