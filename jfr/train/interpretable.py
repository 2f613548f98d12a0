"""Interpretable face recognition trainer and experiment (Yin et al., ICCV 2019).

"Towards Interpretable Face Recognition": a hypercolumn CASIA-Net
(:class:`jfr.models.casia_net.CasiaNetHC`, Table 1) trained as a Siamese network on a
clean face I and its synthetically occluded version Î (the same weights on both, one
classifier shared by both branches, Fig. 2) with

* the identity losses, softmax on f(I) (Eq. 3) and on τ ⊙ f(Î) (Eq. 5);
* the SAD losses (Sec. 3.1): filter orthogonality of the Ψ kernel (Eq. 1) and response
  decorrelation of ψ' = g_σ * LMF(ψ(I)) (Eq. 2), with large magnitude filtering (LMF)
  before the average pooling;
* the FAD loss (Eq. 4) on the ``t`` feature elements least changed by the occlusion;
  the mask τ is computed from the whole batch, whose pairs share one semantically
  equivalent occluder (Sec. 3.3), and carries no gradient.

One run trains the ``config.run_variants`` of ``config.variants`` (default: ``base``,
``sad``, ``fad``, ``sad_fad``; each names which of LMF, SAD and FAD it uses), each in
``<workdir>/<variant>`` (checkpoints, TensorBoard, resume), and compares them (Sec. 4):

* spreadness d̄ of the average peak locations (positive and negative peaks of each
  filter, magnitude-weighted, over ``eval.analysis_images`` test faces, warped to the
  canonical frontal face through the landmark mesh) and the mean standard deviation of
  the peak locations (Fig. 5, Table 3); Fig. 5 scatter plot;
* the mean feature difference per filter between clean faces and faces with the eyes
  or the nose occluded, sorted (Fig. 6), and filter response heat maps (Fig. 8);
* verification (TAR at ``eval.fars``) and identification (CMC at ``eval.ranks``) on the
  original test faces, the same faces with a random warped synthetic occluder each
  (``config.occlusion``, as in training) and the naturally occluded test faces
  (eyeglasses or scarf) (Tables 2, 4, 5);
* partial-face retrieval (Sec. 4.4): part filters chosen by their average peak
  location, rank-1 retrieval of the other image of the subject by eyes, nose, mouth.

Outputs: ``<workdir>/eval/interpretable.md`` (also logged) and ``interpretable.json``;
figures in ``<workdir>/figures/``: ``fig5_peak_locations.png``,
``fig6_feature_difference.png``, ``fig8_responses_<variant>.png``.

Modes: ``all`` (train every variant, then evaluate), ``train``, ``eval`` (restores the
newest checkpoint of every variant).

Design choices (the paper does not fix them; see also ``configs/interpretable.py``):

* The two branches run as one batch ``[I; Î]`` through the network, so BatchNorm
  statistics are shared by clean and occluded faces.
* Loss weights: the paper gives none. SAD terms are divided by K(K−1), the number of
  ordered filter pairs (Eqs. 1 and 2 are sums over pairs; at K = 320 the raw sums are
  ~10^4 and would swamp the softmax), so ``loss.sad_*_weight`` weigh the mean over
  pairs; Eq. 4 is used as written (a sum over the masked elements, mean over the batch).
* SAD's response loss acts on the clean branch; Eq. 1 on the Ψ kernel.
* Variants without FAD train the occluded branch with a plain softmax on f(Î) (τ ≡ 1:
  the paper's occlusion-augmented base "CASIA-Net agu.") when
  ``loss.occluded_branch_without_fad``; otherwise they see clean faces only.
* Fig. 8 shows, like the peaks of Sec. 4.2, the maps that f pools: LMF(Ψ), or Ψ for
  variants without LMF.
* The classifier (``config.head``): 'softmax' is Eq. 3's dense layer; 'cosine' gives
  logits ``scale · cos(f, w_c)`` for training from scratch on a CPU budget, together
  with ``loss.fad_on_unit_features`` (τ and Eq. 4 on ``√K f / ‖f‖``, so that FAD cannot
  be met by shrinking f); see ``configs/interpretable.py`` for the measurements.
* ``dataset.train_identities`` > 0 trains on the first n identities of the train split
  (:class:`IdentitySubset`); evaluation always uses the held-out test identities.
* Synthetic test occlusion: each test face gets its own random rectangle (seeded by
  its index); the Fig. 6 occluders cover the template box of the eye / nose landmarks
  plus ``eval.part_occlusion_margin`` of the side, warped to every face, filled as in
  training. "Naturally occluded" = test faces whose ``occluder_mask`` is not empty;
  each scenario uses the same pair / gallery protocol
  (:func:`jfr.train.common.evaluate_features`) within its own faces.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from jax import lax
from matplotlib import colors as mpl_colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jfr.data import augment
from jfr.data import face_renderer
from jfr.data import pipelines
from jfr.eval import interpretability as interp
from jfr.eval import plots
from jfr.losses import diversity
from jfr.losses import margin
from jfr.models import casia_net
from jfr.models import heads
from jfr.train import common
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import state as state_lib
from jfr.train import steps
from jfr.train.checkpoint import restore_trained

MODES = ("all", "train", "eval")
VARIANT_FIELDS = ("lmf", "sad", "fad")
SCENARIOS = ("original", "synthetic_occlusion", "natural_occlusion")
OCCLUDED_PARTS = ("eyes", "nose")
RETRIEVAL_PARTS = ("eyes", "nose", "mouth")
HEAD_KINDS = ("softmax", "cosine")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# -------------------------------------------------------------------------- config


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError for unknown variants or inconsistent model / loss fields."""
  names = tuple(config.run_variants)
  if not names or len(set(names)) != len(names):
    raise ValueError(f"config.run_variants: expected distinct variant names, got {names}")
  unknown = [n for n in names if n not in config.variants]
  if unknown:
    raise ValueError(
      f"config.run_variants: {unknown} not in config.variants {sorted(config.variants)}"
    )
  for name in config.variants:
    fields = set(config.variants[name])
    if fields != set(VARIANT_FIELDS):
      raise ValueError(
        f"config.variants.{name}: expected the bool fields {VARIANT_FIELDS}, got {sorted(fields)}"
      )
  if config.head.kind not in HEAD_KINDS:
    raise ValueError(f"config.head.kind: expected one of {HEAD_KINDS}, got {config.head.kind!r}")
  if config.model.dtype not in DTYPES:
    raise ValueError(
      f"config.model.dtype: expected one of {sorted(DTYPES)}, got {config.model.dtype!r}"
    )
  if config.model.image_size % 16:
    raise ValueError(
      f"config.model.image_size: expected a multiple of 16 (CasiaNetHC), "
      f"got {config.model.image_size}"
    )
  hc = config.model.image_size // 4
  if not 1 <= config.model.keep <= hc * hc:
    raise ValueError(
      f"config.model.keep: expected 1 <= keep <= {hc * hc} (the {hc}x{hc} "
      f"response map), got {config.model.keep}"
    )
  loss = config.loss
  if loss.fad_mode not in diversity.FAD_MODES:
    raise ValueError(
      f"config.loss.fad_mode: expected one of {diversity.FAD_MODES}, got {loss.fad_mode!r}"
    )
  if loss.fad_mode == "count" and not 0 <= loss.fad_t <= config.model.feature_dim:
    raise ValueError(
      f"config.loss.fad_t: expected an int in [0, K={config.model.feature_dim}]"
      f" for fad_mode='count', got {loss.fad_t}"
    )
  if loss.fad_mode == "value" and not loss.fad_value_threshold >= 0:
    raise ValueError(
      f"config.loss.fad_value_threshold: expected >= 0 for fad_mode='value', "
      f"got {loss.fad_value_threshold}"
    )
  if config.occlusion.mode not in ("static", "dynamic"):
    raise ValueError(
      f"config.occlusion.mode: expected 'static' or 'dynamic', got {config.occlusion.mode!r}"
    )
  if config.occlusion.fill not in ("black", "noise"):
    raise ValueError(
      f"config.occlusion.fill: expected 'black' or 'noise', got {config.occlusion.fill!r}"
    )


def variant_flags(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """The (lmf, sad, fad) switches of variant ``name``."""
  if name not in config.variants:
    raise ValueError(f"variant: {name!r} not in config.variants {sorted(config.variants)}")
  return config.variants[name]


def uses_occluded_branch(config: ml_collections.ConfigDict, name: str) -> bool:
  """Whether variant ``name`` runs the occluded branch (always with FAD)."""
  return bool(variant_flags(config, name).fad or config.loss.occluded_branch_without_fad)


# -------------------------------------------------------------------------- models


def build_network(
  config: ml_collections.ConfigDict, name: str, axis_name: str | None = None
) -> casia_net.CasiaNetHC:
  """The CasiaNetHC of ``config.model`` for variant ``name`` (LMF on or off)."""
  m = config.model
  return casia_net.CasiaNetHC(
    feature_dim=m.feature_dim,
    keep=m.keep if variant_flags(config, name).lmf else None,
    trunk_widths=tuple(m.trunk_widths),
    hc_features=m.hc_features,
    phi_features=m.phi_features if m.phi_features > 0 else None,
    upsample=m.upsample,
    axis_name=axis_name,
    dtype=DTYPES[m.dtype],
  )


def build_classifier(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
  """The K-way classifier shared by both branches (``config.head.kind``).

  'softmax': a dense layer, logits ``W f + b`` (Eq. 3; truncated normal std 0.02);
  'cosine': cosine logits ``cos(f, w_c)`` (:class:`jfr.models.heads.ArcFaceHead`),
  multiplied by ``head.scale`` in the loss.
  """
  if config.head.kind == "softmax":
    return nn.Dense(num_classes, kernel_init=casia_net.new_weight_init())
  return heads.ArcFaceHead(num_classes)


def create_state(
  config: ml_collections.ConfigDict, name: str, num_classes: int
) -> state_lib.TrainState:
  """Initial state of variant ``name``: sub-models 'net' and 'classifier', one optimizer.

  Every variant starts from the same parameters (same seed, same shapes).
  """
  net = build_network(config, name, steps.bn_axis_name(config.parallelism))
  classifier = build_classifier(config, num_classes)
  size = config.model.image_size
  images = jnp.zeros((2, size, size, 3), jnp.float32)
  tx = optimizers.make_optimizer(config.optimizer, config.num_train_steps)
  return state_lib.create_train_state(
    jax.random.PRNGKey(config.seed),
    {
      "net": (net, lambda rng: net.init(rng, images, train=False)),
      "classifier": (classifier, jnp.zeros((2, config.model.feature_dim))),
    },
    {"net": tx, "classifier": tx},
  )


# ---------------------------------------------------------------------- the losses


def batch_fad_mask(f_clean: jax.Array, f_occluded: jax.Array, t: float, mode: str) -> jax.Array:
  """τ ``[K]`` of the whole (global) batch, without gradient (Sec. 3.3).

  The pairs of a batch share one semantically equivalent occluder, so the change
  ``1/N Σ_n |f_i(I_n) − f_i(Î_n)|`` is averaged over the batch and, under pmap, over
  the replicas (:func:`jfr.train.steps.cross_replica_mean`); τ then marks the ``t``
  least changed elements (count mode) or those changed by less than ``t`` (value
  mode), by :func:`jfr.losses.diversity.fad_mask`.

  Args:
    f_clean, f_occluded: ``[B, K]`` features of this replica's pairs.
    t: the threshold of ``mode``.
    mode: 'count' or 'value'.
  """
  change = jnp.mean(jnp.abs(lax.stop_gradient(f_clean - f_occluded)), axis=0)
  change = steps.cross_replica_mean(change)
  tau = diversity.fad_mask(change[None], jnp.zeros_like(change)[None], t, mode)
  return lax.stop_gradient(tau)


def fad_threshold(config: ml_collections.ConfigDict) -> int | float:
  """τ's threshold: ``loss.fad_t`` (elements kept) in count mode, else
  ``loss.fad_value_threshold`` (largest change kept)."""
  if config.loss.fad_mode == "count":
    return int(config.loss.fad_t)
  return float(config.loss.fad_value_threshold)


def unit_features(f: jax.Array) -> jax.Array:
  """``√K f / ‖f‖`` per row of ``[B, K]`` (unit RMS per element; zero rows stay zero)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True))
  return f * (jnp.sqrt(float(f.shape[-1])) / jnp.maximum(norm, 1e-12))


def make_loss_fn(
  config: ml_collections.ConfigDict, name: str, apply_fn: Any
) -> Callable[..., tuple[jax.Array, tuple[dict, dict]]]:
  """The Siamese objective of variant ``name``.

  Returns ``loss_fn(params, batch_stats, batch, tau=None) -> (loss, (new_batch_stats,
  metrics))`` where ``params = {'net': ..., 'classifier': ...}``, ``batch`` holds
  ``image`` and ``occluded`` ``[B, H, W, 3]`` and ``label`` ``[B]``, and ``tau`` fixes
  the FAD mask (None: :func:`batch_fad_mask` of the batch). The loss is

  ``w_id L_id(f(I)) + w_occ L_id(τ ⊙ f(Î)) + w_F L_SAD^filter / K(K−1)
  + w_ψ mean_B L_SAD^response(g_σ * LMF(ψ(I))) / K(K−1) + w_FAD mean_B L_FAD``

  with the terms a variant does not use left out (τ ≡ 1 without FAD). With
  ``head.kind='cosine'`` the logits are ``head.scale · cos(f, w_c)``; with
  ``loss.fad_on_unit_features`` τ and Eq. 4 use ``√K f / ‖f‖`` (:func:`unit_features`).
  """
  flags = variant_flags(config, name)
  scale = config.head.scale if config.head.kind == "cosine" else 1.0
  cfg = config.loss
  k = config.model.feature_dim
  pairs = float(max(k * (k - 1), 1))
  occluded_branch = uses_occluded_branch(config, name)

  def loss_fn(params, batch_stats, batch, tau=None):
    clean = batch["image"]
    images = jnp.concatenate([clean, batch["occluded"]]) if occluded_branch else clean
    out, updates = apply_fn["net"](
      {"params": params["net"], "batch_stats": batch_stats},
      images,
      train=True,
      mutable=["batch_stats"],
    )
    b = clean.shape[0]
    f_clean = out["f"][:b]
    features = [f_clean]
    metrics = {}
    if occluded_branch:
      f_occluded = out["f"][b:]
      if flags.fad:
        fad_clean, fad_occluded = (
          (unit_features(f_clean), unit_features(f_occluded))
          if cfg.fad_on_unit_features
          else (f_clean, f_occluded)
        )
        tau = (
          batch_fad_mask(fad_clean, fad_occluded, fad_threshold(config), cfg.fad_mode)
          if tau is None
          else lax.stop_gradient(tau)
        )
        metrics["tau_fraction"] = jnp.mean(tau)
        features.append(diversity.masked_features(f_occluded, tau))
      else:
        features.append(f_occluded)
    logits = scale * apply_fn["classifier"](
      {"params": params["classifier"]}, jnp.concatenate(features)
    )
    labels = jnp.concatenate([batch["label"]] * len(features))
    per_example = margin.softmax_cross_entropy(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    metrics["id"] = per_example[:b].mean()
    metrics["accuracy"] = correct[:b].mean()
    total = cfg.identity_weight * metrics["id"]
    if occluded_branch:
      metrics["id_occluded"] = per_example[b:].mean()
      metrics["accuracy_occluded"] = correct[b:].mean()
      total += cfg.occluded_identity_weight * metrics["id_occluded"]
    if flags.sad:
      metrics["sad_filter"] = diversity.sad_filter_loss(casia_net.psi_kernel(params["net"])) / pairs
      smoothed = diversity.gaussian_smooth(out["filtered"][:b], cfg.sigma)
      metrics["sad_response"] = diversity.sad_response_loss(smoothed).mean() / pairs
      total += (
        cfg.sad_filter_weight * metrics["sad_filter"]
        + cfg.sad_response_weight * metrics["sad_response"]
      )
    if flags.fad:
      metrics["fad"] = diversity.fad_loss(fad_clean, fad_occluded, tau).mean()
      total += cfg.fad_weight * metrics["fad"]
    metrics["loss"] = total
    return total, (updates["batch_stats"], metrics)

  return loss_fn


def make_train_step(
  config: ml_collections.ConfigDict, name: str, apply_fn: Any
) -> steps.TrainStepFn:
  """The pure train step of variant ``name``: both branches, all its losses, one SGD update."""
  loss_fn = make_loss_fn(config, name, apply_fn)

  def train_step(state, batch, rng):
    del rng  # the step is deterministic given the batch
    (loss, (new_bs, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, state.batch_stats["net"], batch
    )
    grads, metrics = steps.cross_replica_mean((grads, metrics))
    new_state = state_lib.apply_gradients(state, grads, batch_stats={"net": new_bs})
    state, nonfinite = state_lib.guarded_update(state, new_state, metrics["loss"], grads)
    return state, {**metrics, "nonfinite": nonfinite}

  return train_step


# ------------------------------------------------------------------------ training


def resize_faces(images: Any, size: int) -> Any:
  """Resizes square images ``[..., S, S, 3]`` (tensor or array) to ``size`` (bilinear,
  antialiased); returns them unchanged when ``S == size``."""
  if images.shape[-2] == size:
    return images
  return tf.image.resize(images, (size, size), method="bilinear", antialias=True)


def scale_landmarks(landmarks: np.ndarray, source: int, size: int) -> np.ndarray:
  """(x, y) pixels of a ``source`` px image in the ``size`` px image (pixel centres kept)."""
  return (np.asarray(landmarks, np.float32) + 0.5) * (size / source) - 0.5


class IdentitySubset:
  """A view of a tfds builder whose datasets hold only the labels ``< num_identities``.

  Duck-types the two members :mod:`jfr.data.pipelines` reads (``info``,
  ``as_dataset``), so that its training pipelines (shuffling, resume, the shared warped
  occluder) run unchanged on the first identities of a split.
  """

  def __init__(self, builder: Any, num_identities: int):
    if num_identities < 2:
      raise ValueError(f"num_identities: expected >= 2, got {num_identities}")
    self._builder = builder
    self.num_identities = num_identities

  @property
  def info(self) -> Any:
    return self._builder.info

  def as_dataset(self, **kwargs) -> tf.data.Dataset:
    limit = tf.constant(self.num_identities, tf.int64)
    return self._builder.as_dataset(**kwargs).filter(
      lambda ex: tf.cast(ex["label"], tf.int64) < limit
    )


def num_classes(config: ml_collections.ConfigDict, builder: Any) -> int:
  """Classes of the softmax: ``dataset.train_identities`` if > 0, else the whole train split."""
  available = common.num_train_classes(config, builder)
  wanted = config.dataset.train_identities
  if wanted > available:
    raise ValueError(
      f"config.dataset.train_identities: {wanted} exceeds the {available} "
      "identities of the train split"
    )
  return wanted if wanted > 0 else available


def pair_batches(
  config: ml_collections.ConfigDict, builder: Any
) -> Callable[[int], Iterator[dict]]:
  """``start -> iterator`` of host batches ``image``, ``occluded``, ``label`` (Siamese pairs),
  from the first ``dataset.train_identities`` identities (all if <= 0)."""
  if config.dataset.train_identities > 0:
    builder = IdentitySubset(builder, config.dataset.train_identities)

  def batches(start: int):
    ds = pipelines.occlusion_pair_batches(
      builder,
      config.dataset.train_split,
      config.batch_size,
      seed=config.seed,
      start_batch=start,
      mode=config.occlusion.mode,
      fill=config.occlusion.fill,
      augment_options=config.augment.to_dict(),
    )

    def select(batch):
      return {
        "image": resize_faces(batch["image"], config.model.image_size),
        "occluded": resize_faces(batch["occluded"], config.model.image_size),
        "label": batch["label"],
      }

    return common.numpy_batches(ds.map(select, num_parallel_calls=tf.data.AUTOTUNE))

  return batches


def train_variant(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, name: str, builder: Any
) -> dict:
  """Trains (or resumes) variant ``name`` in ``<workdir>/<name>``; returns its net variables."""
  state = create_state(config, name, num_classes(config, builder))
  logging.info(
    "variant %s (%s): %d network parameters",
    name,
    dict(variant_flags(config, name)),
    state_lib.num_params(state.params["net"]),
  )
  final = loop.run_training(
    config,
    Path(workdir) / name,
    state,
    make_train_step(config, name, state.apply_fn),
    pair_batches(config, builder),
  )
  return net_variables(final)


def net_variables(state: state_lib.TrainState) -> dict:
  """The network's flax variables from a (host) train state."""
  return {"params": state.params["net"], "batch_stats": state.batch_stats["net"]}


def restore_variant(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, name: str, builder: Any
) -> dict:
  """The network variables of the newest checkpoint of variant ``name``."""
  target = create_state(config, name, num_classes(config, builder))
  return net_variables(restore_trained(Path(workdir) / name, target, config.keep_checkpoints))


# --------------------------------------------------------------------- eval data


def _occlude_each(
  images: np.ndarray, landmarks: np.ndarray, config: ml_collections.ConfigDict
) -> np.ndarray:
  """uint8 faces with one random warped occluder each (as in training), seeded per index."""
  template = augment.default_template_landmarks(images.shape[1])

  def occlude(index, image, lms):
    seed = tf.stack([tf.constant(config.seed, tf.int64) * 7_919 + 17, index])
    occluded, _ = augment.occlude_batch(
      image[None],
      lms[None],
      seed,
      mode=config.occlusion.mode,
      fill=config.occlusion.fill,
      template_landmarks=template,
    )
    return occluded[0]

  ds = tf.data.Dataset.from_tensor_slices((images, landmarks)).enumerate()
  ds = ds.map(
    lambda i, ex: occlude(i, *ex), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
  ).batch(256)
  return np.concatenate(list(ds.as_numpy_iterator()))


def part_rectangle(template: np.ndarray, part: str, margin: float) -> np.ndarray:
  """Rectangle ``[4, 2]`` (tl, tr, br, bl) over a part's template landmarks plus ``margin`` px."""
  box = interp.part_boxes(template)[part]
  x0, y0, x1, y1 = box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin
  return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _occlude_part(
  images: np.ndarray, landmarks: np.ndarray, part: str, config: ml_collections.ConfigDict
) -> np.ndarray:
  """uint8 faces with ``part`` (eyes / nose) covered by a warped rectangle (Fig. 6)."""
  size = images.shape[1]
  template = augment.default_template_landmarks(size)
  rect = part_rectangle(template, part, config.eval.part_occlusion_margin * size)
  quads = augment.warp_rectangle_to_faces(rect, template, landmarks)
  masks = augment.occlusion_masks(quads, size)
  seed = tf.constant([config.seed, OCCLUDED_PARTS.index(part) + 1], tf.int64)
  return augment.apply_occlusion(images, masks, config.occlusion.fill, seed).numpy()


def yaw_proxy(landmarks: np.ndarray) -> np.ndarray:
  """Signed horizontal offset of the nose tip from the jaw midpoint, per face width."""
  jaw_mid = (landmarks[:, 0, 0] + landmarks[:, 16, 0]) / 2.0
  width = np.maximum(np.abs(landmarks[:, 16, 0] - landmarks[:, 0, 0]), 1e-6)
  return (landmarks[:, 33, 0] - jaw_mid) / width


def load_eval_data(config: ml_collections.ConfigDict, builder: Any) -> dict[str, np.ndarray]:
  """Test faces (model range, model size) and their occluded versions; shared by all variants.

  Returns ``image`` (all test faces), ``synthetic`` (each with a random warped occluder),
  ``natural`` (bool: eyeglasses or scarf), ``label``, ``landmarks`` (model frame), the
  first ``eval.analysis_images`` faces with the eyes / nose occluded (``occluded_eyes``,
  ``occluded_nose``), ``retrieval`` (indices: two unoccluded faces per subject) and
  ``figure_faces`` (indices for Fig. 8: three subjects, then three poses of one subject).
  """
  raw = pipelines.load_arrays(
    builder, config.dataset.test_split, features=("image", "label", "landmarks", "occluder_mask")
  )
  landmarks = raw["landmarks"].astype(np.float32)
  synthetic = _occlude_each(raw["image"], landmarks, config)
  n = min(config.eval.analysis_images, len(raw["label"]))
  parts = {p: _occlude_part(raw["image"][:n], landmarks[:n], p, config) for p in OCCLUDED_PARTS}
  size = config.model.image_size
  out = {}
  for key, images in (
    ("image", raw["image"]),
    ("synthetic", synthetic),
    *((f"occluded_{p}", v) for p, v in parts.items()),
  ):
    out[key] = np.asarray(resize_faces(pipelines.to_model_range_np(images), size))
  out["landmarks"] = scale_landmarks(landmarks, raw["image"].shape[1], size)
  out["label"] = raw["label"]
  out["natural"] = raw["occluder_mask"].any(axis=(1, 2))
  out["retrieval"] = _retrieval_indices(
    raw["label"], out["natural"], config.eval.retrieval_identities
  )
  out["figure_faces"] = _figure_faces(raw["label"], out["natural"], out["landmarks"])
  return out


def _retrieval_indices(labels: np.ndarray, natural: np.ndarray, max_identities: int) -> np.ndarray:
  """Two unoccluded faces (stored order) per subject, for up to ``max_identities`` subjects."""
  chosen = []
  for label in np.unique(labels):
    members = np.flatnonzero((labels == label) & ~natural)[:2]
    if len(members) == 2:
      chosen.append(members)
    if len(chosen) == max_identities:
      break
  if len(chosen) < 2:
    raise ValueError(
      "test split: fewer than two subjects with two unoccluded faces "
      "(partial-face retrieval needs them)"
    )
  return np.concatenate(chosen)


def _figure_faces(labels: np.ndarray, natural: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
  """Three unoccluded faces of different subjects, then three of the subject with the most
  unoccluded faces at its smallest, median and largest yaw (Fig. 8 layout)."""
  clean = np.flatnonzero(~natural)
  _, first = np.unique(labels[clean], return_index=True)
  subjects = clean[np.sort(first)[:3]]
  counts = np.bincount(labels[clean] - labels.min())
  members = clean[labels[clean] == labels.min() + np.argmax(counts)]
  by_yaw = members[np.argsort(yaw_proxy(landmarks[members]), kind="stable")]
  poses = by_yaw[[0, len(by_yaw) // 2, len(by_yaw) - 1]]
  return np.concatenate([subjects, poses])


# ------------------------------------------------------------------- extraction


def make_extractor(
  config: ml_collections.ConfigDict, name: str, variables: dict
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """``images -> dict`` of NumPy arrays, computed in batches of ``eval.batch_size``.

  ``f`` ``[N, K]`` and the positive / negative peak locations (model image pixels) and
  weights of LMF(Ψ) (:func:`jfr.eval.interpretability.response_peaks`; Ψ without LMF).
  """
  net = build_network(config, name)
  size = config.model.image_size

  @jax.jit
  def features_and_peaks(images):
    out = net.apply(variables, images, train=False)
    return {"f": out["f"], **interp.response_peaks(out["filtered"], (size, size))}

  def extract(images: np.ndarray) -> dict[str, np.ndarray]:
    bs = config.eval.batch_size
    parts: dict[str, list] = {}
    for start in range(0, len(images), bs):
      chunk = images[start : start + bs]
      pad = bs - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
      for key, value in features_and_peaks(chunk).items():
        parts.setdefault(key, []).append(np.asarray(value)[: bs - pad])
    return {key: np.concatenate(v) for key, v in parts.items()}

  return extract


def response_maps(
  config: ml_collections.ConfigDict, name: str, variables: dict, images: np.ndarray
) -> np.ndarray:
  """LMF(Ψ) ``[N, h, w, K]`` (Ψ without LMF) of a few faces: the maps f pools, for Fig. 8."""
  net = build_network(config, name)
  return np.asarray(jax.jit(lambda x: net.apply(variables, x, train=False)["filtered"])(images))


# ------------------------------------------------------------------- evaluation


def peak_statistics(
  peaks: dict[str, np.ndarray], landmarks: np.ndarray, size: int
) -> dict[str, Any]:
  """Fig. 5 / Table 3 numbers: warped average locations, d̄ and std for both peak signs."""
  template = augment.default_template_landmarks(size)
  out: dict[str, Any] = {}
  for sign in ("pos", "neg"):
    warped = interp.warp_points_to_template(peaks[f"{sign}_xy"], landmarks, template, size)
    centres, std = interp.average_peak_locations(warped, peaks[f"{sign}_weight"])
    out[sign] = {
      "centres": centres,
      "std": std,
      "spreadness": interp.spreadness(centres),
      "mean_std": float(np.nanmean(std)),
      "on_face": interp.fraction_inside_face(centres, template),
    }
  out["spreadness"] = (out["pos"]["spreadness"] + out["neg"]["spreadness"]) / 2.0
  return out


def recognition_metrics(
  config: ml_collections.ConfigDict, features: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
  """TAR@FAR and CMC ranks of one scenario (:func:`jfr.train.common.evaluate_features`)."""
  result = common.evaluate_features(features, labels, config.eval, seed=config.seed)
  out = {f"tar@far={far}": value for far, value in result["verification"]["tar_at_far"].items()}
  out["verification_accuracy"] = result["verification"]["accuracy"]
  out.update(result["identification"].get("cmc", {}))
  return out


def retrieval_metrics(
  features: np.ndarray,
  labels: np.ndarray,
  centres: np.ndarray,
  size: int,
  count: int,
  seed: int,
  random_draws: int,
) -> dict[str, Any]:
  """Sec. 4.4: rank-1 retrieval by each part's filters, all filters and random subsets."""
  template = augment.default_template_landmarks(size)
  boxes = interp.part_boxes(template)
  out: dict[str, Any] = {"all_filters": interp.retrieval_rank1(features, labels)}
  rng = np.random.default_rng(seed)
  random_scores = [
    interp.retrieval_rank1(features, labels, rng.choice(features.shape[1], count, replace=False))
    for _ in range(random_draws)
  ]
  out["random_filters"] = float(np.mean(random_scores))
  out["part_filters"] = {}
  for part in RETRIEVAL_PARTS:
    chosen = interp.select_part_filters(centres, boxes[part], count)
    out[part] = interp.retrieval_rank1(features, labels, chosen)
    out["part_filters"][part] = chosen.tolist()
  return out


def analyse_variant(
  config: ml_collections.ConfigDict, name: str, variables: dict, data: dict[str, np.ndarray]
) -> dict[str, Any]:
  """Every measure of one variant (see the module docstring)."""
  extract = make_extractor(config, name, variables)
  size = config.model.image_size
  n = len(data["occluded_eyes"])
  clean = extract(data["image"])
  synthetic = extract(data["synthetic"])["f"]
  peaks = {k: v[:n] for k, v in clean.items() if k != "f"}
  stats = peak_statistics(peaks, data["landmarks"][:n], size)
  f = clean["f"]
  natural = data["natural"]
  recognition = {
    "original": recognition_metrics(config, f, data["label"]),
    "synthetic_occlusion": recognition_metrics(config, synthetic, data["label"]),
    "natural_occlusion": recognition_metrics(config, f[natural], data["label"][natural]),
  }
  differences = {}
  for part in OCCLUDED_PARTS:
    occluded = extract(data[f"occluded_{part}"])["f"]
    differences[part] = {
      "raw": interp.mean_feature_difference(f[:n], occluded),
      "normalised": interp.mean_feature_difference(
        np.asarray(unit_features(f[:n])), np.asarray(unit_features(occluded))
      ),
    }
  idx = data["retrieval"]
  count = max(1, int(round(config.eval.part_filter_fraction * config.model.feature_dim)))
  retrieval = retrieval_metrics(
    f[idx],
    data["label"][idx],
    stats["pos"]["centres"],
    size,
    count,
    config.seed,
    config.eval.random_filter_draws,
  )
  retrieval["filters_per_part"] = count
  faces = data["image"][data["figure_faces"]]
  return {
    "peaks": stats,
    "recognition": recognition,
    "differences": differences,
    "retrieval": retrieval,
    "maps": response_maps(config, name, variables, faces),
  }


# ------------------------------------------------------------------------ figures


def _new_figure(width: float, height: float) -> Figure:
  fig = Figure(figsize=(width, height), layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def canonical_face(size: int, scale: int) -> np.ndarray:
  """The canonical frontal face (mean identity, neutral nuisances) at ``scale·size`` px."""
  return face_renderer.render(
    face_renderer.mean_latents(1), face_renderer.neutral_nuisances(1), size * scale, seed_or_rng=0
  )["image"][0]


def plot_peak_locations(results: dict[str, dict], size: int, path: Path) -> None:
  """Fig. 5 analog: average peak locations on the canonical face, coloured by their std."""
  scale = max(1, 256 // size)
  face = canonical_face(size, scale)
  names = list(results)
  stds = np.concatenate([results[n]["peaks"][s]["std"] for n in names for s in ("pos", "neg")])
  vmax = float(np.nanpercentile(stds, 98)) if np.isfinite(stds).any() else 1.0
  norm = mpl_colors.Normalize(0.0, vmax)
  fig = _new_figure(3.0 * len(names) + 0.8, 6.4)
  axes = fig.subplots(2, len(names), squeeze=False)
  for col, name in enumerate(names):
    for row, (sign, label) in enumerate((("pos", "positive"), ("neg", "negative"))):
      ax = axes[row, col]
      stats = results[name]["peaks"][sign]
      ax.imshow(face, alpha=0.55)
      xy = (stats["centres"] + 0.5) * scale - 0.5
      points = ax.scatter(
        xy[:, 0],
        xy[:, 1],
        c=stats["std"],
        cmap="viridis",
        norm=norm,
        s=22,
        edgecolors="black",
        linewidths=0.4,
      )
      ax.set_xlim(-0.5, face.shape[1] - 0.5)
      ax.set_ylim(face.shape[0] - 0.5, -0.5)
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_title(
        f"{name}, {label} peaks\nd̄ = {stats['spreadness']:.1f} px, "
        f"mean std {stats['mean_std']:.1f} px",
        fontsize=9,
      )
  bar = fig.colorbar(points, ax=axes, shrink=0.8)
  bar.set_label(f"std of peak location (px of the {size} px face)")
  fig.suptitle(
    f"Average peak locations of the {len(stats['std'])} filters (warped to the canonical face)",
    fontsize=10,
  )
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)


def plot_feature_differences(results: dict[str, dict], path: Path) -> None:
  """Fig. 6 analog: sorted mean |f(I) − f(Î)| per filter, eyes and nose occluded."""
  fig = _new_figure(9.0, 6.4)
  axes = fig.subplots(2, len(OCCLUDED_PARTS), squeeze=False)
  for col, part in enumerate(OCCLUDED_PARTS):
    for row, (kind, ylabel) in enumerate(
      (("raw", "mean |f(I) − f(Î)|"), ("normalised", "same for √K f / ‖f‖"))
    ):
      ax = axes[row, col]
      for name, res in results.items():
        values = np.sort(res["differences"][part][kind])[::-1]
        ax.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1.6)
      ax.set_xlabel("filters, sorted by difference")
      ax.set_ylabel(ylabel)
      ax.set_title(f"{part} occluded ({kind})", fontsize=10)
      ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=9)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)


def pick_display_filters(
  centres: np.ndarray, std: np.ndarray, count: int, min_separation: float
) -> np.ndarray:
  """Up to ``count`` filters with the smallest std whose average locations are at least
  ``min_separation`` px apart (greedy), for Fig. 8."""
  order = np.argsort(np.where(np.isfinite(std), std, np.inf), kind="stable")
  chosen: list[int] = []
  for i in order:
    if not np.isfinite(std[i]):
      break
    if all(np.linalg.norm(centres[i] - centres[j]) >= min_separation for j in chosen):
      chosen.append(int(i))
    if len(chosen) == count:
      break
  return np.asarray(chosen, int)


def plot_responses(
  name: str, faces: np.ndarray, maps: np.ndarray, filters: np.ndarray, lmf: bool, path: Path
) -> None:
  """Fig. 8 analog: response maps of ``filters`` over faces (red positive, blue negative).

  ``faces``: different subjects, then three poses of one subject (:func:`_figure_faces`).
  """
  size = faces.shape[1]
  subjects = len(faces) - 3
  gray = ((faces.mean(axis=-1) + 1.0) / 2.0).clip(0.0, 1.0)
  rows, cols = len(faces), len(filters) + 1
  fig = _new_figure(1.25 * cols, 1.3 * rows + 0.5)
  axes = fig.subplots(rows, cols, squeeze=False)
  for r in range(rows):
    axes[r, 0].imshow(pipelines.from_model_range(faces[r]))
    label = (
      f"subject {chr(65 + r)}"
      if r < subjects
      else f"subject {chr(65 + subjects)}, pose {r - subjects + 1}"
    )
    axes[r, 0].set_ylabel(label, fontsize=8)
    for c, k in enumerate(filters, start=1):
      m = maps[r, ..., k]
      limit = max(float(np.abs(maps[..., k]).max()), 1e-12)
      axes[r, c].imshow(gray[r], cmap="gray", vmin=0.0, vmax=1.0)
      axes[r, c].imshow(
        m,
        cmap="bwr",
        vmin=-limit,
        vmax=limit,
        alpha=0.6,
        extent=(-0.5, size - 0.5, size - 0.5, -0.5),
        interpolation="bilinear",
      )
      if r == 0:
        axes[r, c].set_title(f"filter {k}", fontsize=8)
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(
    f"{name}: filter responses {'LMF(Ψ)' if lmf else 'Ψ'} (red > 0, blue < 0)", fontsize=9
  )
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)


# ------------------------------------------------------------------------ tables


def _fmt(value: float, percent: bool = False) -> str:
  if value is None or not np.isfinite(value):
    return "n/a"
  return f"{100 * value:.1f}" if percent else f"{value:.2f}"


def markdown_report(
  config: ml_collections.ConfigDict, results: dict[str, dict], timing: dict[str, float]
) -> str:
  """The Markdown tables of the comparison (spreadness, recognition, Fig. 6, retrieval)."""
  size = config.model.image_size
  to96 = 96.0 / size
  lines = [
    f"# Interpretable FR: {', '.join(results)} ({config.dataset.name}, {size} px, "
    f"K = {config.model.feature_dim}, LMF keep {config.model.keep}, occlusion "
    f"{config.occlusion.mode}/{config.occlusion.fill})",
    "",
  ]
  lines += [
    "## Spreadness of average peak locations (Fig. 5, Table 3)",
    "",
    f"Pixels of the {size} px canonical face; '@96' scales to the paper's 96 px; "
    "'on face': share of the average locations inside the template landmarks' hull.",
    "",
    "| variant | d̄ pos | d̄ neg | d̄ mean | d̄ mean @96 | std pos | std neg | "
    "std mean @96 | on face pos / neg |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for name, res in results.items():
    p = res["peaks"]
    mean_std = (p["pos"]["mean_std"] + p["neg"]["mean_std"]) / 2.0
    lines.append(
      f"| {name} | {_fmt(p['pos']['spreadness'])} | {_fmt(p['neg']['spreadness'])} "
      f"| {_fmt(p['spreadness'])} | {_fmt(p['spreadness'] * to96)} | "
      f"{_fmt(p['pos']['mean_std'])} | {_fmt(p['neg']['mean_std'])} | "
      f"{_fmt(mean_std * to96)} | {100 * p['pos']['on_face']:.0f}% / "
      f"{100 * p['neg']['on_face']:.0f}% |"
    )
  fars = [f"tar@far={far:g}" for far in config.eval.report_fars]
  ranks = [f"rank{r}" for r in config.eval.report_ranks]
  lines += ["", "## Recognition (Tables 2, 4, 5 analogs; %)", ""]
  header = "| variant | " + " | ".join(f"{s} {m}" for s in SCENARIOS for m in fars + ranks) + " |"
  lines += [header, "|---|" + "---|" * (len(SCENARIOS) * (len(fars) + len(ranks)))]
  for name, res in results.items():
    cells = [
      _fmt(res["recognition"][s].get(m, float("nan")), percent=True)
      for s in SCENARIOS
      for m in fars + ranks
    ]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += [
    "",
    "## Mean feature difference, clean vs part occluded (Fig. 6)",
    "",
    "Mean over filters of the Fig. 6 curve; 'norm' uses unit-norm features × √K; "
    "'top 10%' is the share of the total difference carried by the 10% most "
    "changed filters.",
    "",
    "| variant | " + " | ".join(f"{p} raw | {p} norm | {p} top 10%" for p in OCCLUDED_PARTS) + " |",
    "|---|" + "---|" * (3 * len(OCCLUDED_PARTS)),
  ]
  for name, res in results.items():
    cells = []
    for part in OCCLUDED_PARTS:
      d = res["differences"][part]
      top = np.sort(d["normalised"])[::-1]
      share = top[: max(1, len(top) // 10)].sum() / max(top.sum(), 1e-12)
      cells += [f"{d['raw'].mean():.3g}", f"{d['normalised'].mean():.3f}", f"{100 * share:.0f}%"]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  count = next(iter(results.values()))["retrieval"]["filters_per_part"]
  lines += [
    "",
    f"## Partial-face retrieval, rank-1 % (Sec. 4.4; {count} filters per part)",
    "",
    "| variant | eyes | nose | mouth | random filters | all filters |",
    "|---|---|---|---|---|---|",
  ]
  for name, res in results.items():
    r = res["retrieval"]
    lines.append(
      f"| {name} | "
      + " | ".join(
        _fmt(r[k], percent=True) for k in (*RETRIEVAL_PARTS, "random_filters", "all_filters")
      )
      + " |"
    )
  lines += ["", "## Time (s)", "", "| phase | wall s |", "|---|---|"]
  lines += [f"| {phase} | {seconds:.0f} |" for phase, seconds in timing.items()]
  return "\n".join(lines) + "\n"


def _json_ready(results: dict[str, dict]) -> dict[str, dict]:
  """The results without the response maps (figures only)."""
  return {name: {k: v for k, v in res.items() if k != "maps"} for name, res in results.items()}


def evaluate(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  variables: dict[str, dict],
  builder: Any,
  timing: dict[str, float],
) -> dict:
  """Compares the trained variants; writes tables, JSON and figures (module docstring)."""
  workdir = Path(workdir)
  start = time.perf_counter()
  data = load_eval_data(config, builder)
  timing["eval_data"] = time.perf_counter() - start
  results = {}
  for name, var in variables.items():
    start = time.perf_counter()
    results[name] = analyse_variant(config, name, var, data)
    timing[f"eval_{name}"] = time.perf_counter() - start
  start = time.perf_counter()
  size = config.model.image_size
  figures = workdir / "figures"
  plot_peak_locations(results, size, figures / "fig5_peak_locations.png")
  plot_feature_differences(results, figures / "fig6_feature_difference.png")
  faces = data["image"][data["figure_faces"]]
  for name, res in results.items():
    stats = res["peaks"]["pos"]
    filters = pick_display_filters(
      stats["centres"], stats["std"], config.eval.figure_filters, 0.12 * size
    )
    res["figure_filters"] = filters.tolist()
    plot_responses(
      name,
      faces,
      res["maps"],
      filters,
      bool(variant_flags(config, name).lmf),
      figures / f"fig8_responses_{name}.png",
    )
  timing["figures"] = time.perf_counter() - start
  report = markdown_report(config, results, timing)
  (workdir / "eval").mkdir(parents=True, exist_ok=True)
  (workdir / "eval" / "interpretable.md").write_text(report)
  plots.write_json(
    {"results": _json_ready(results), "timing_s": timing}, workdir / "eval" / "interpretable.json"
  )
  logging.info("interpretable FR results:\n%s", report)
  return _json_ready(results)


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` ('all', 'train' or 'eval'; see the module docstring)."""
  common.check_mode(mode, MODES)
  check_config(config)
  builder = common.dataset_builder(config)
  timing: dict[str, float] = {}
  variables = {}
  for name in config.run_variants:
    start = time.perf_counter()
    if mode in ("all", "train"):
      variables[name] = train_variant(config, workdir, name, builder)
      timing[f"train_{name}"] = time.perf_counter() - start
    else:
      variables[name] = restore_variant(config, workdir, name, builder)
  if mode == "train":
    return {}
  return evaluate(config, workdir, variables, builder, timing)
