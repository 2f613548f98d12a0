"""Explainable face recognition: trainer and experiment of Xu, Lu, Ebrahimi, "Discriminative
Deep Feature Visualization for Explainable Face Recognition".

Model (Sec. III-C, Fig. 1): the recognition flow is a ResNet whose last fully connected
layer is replaced by global max pooling of its last conv map ``C`` ``[B, h, w, c]``, giving
the feature ``F`` ``[B, c]``, trained with the ArcFace loss ``L_id``; the explanation flow
is a decoder of four transposed convolutions rebuilding the input from ``C``
(:class:`jfr.models.decoder.ReconstructionDecoder`). Both are trained jointly on Eq. 2,
``L = L_id + lambda * L_rec`` with ``L_rec`` the MSE between the input and its
reconstruction: the recognition network (backbone + ArcFace head) with SGD, the decoder
with Adam (Sec. IV-A), two optimizers in one :class:`jfr.train.state.TrainState`.

Readings of the paper:

* Gradient of ``L_rec`` into the backbone (``config.decoder_backprop_to_backbone``,
  default True): the paper "jointly trains" the two flows "by optimizing both" losses
  through one objective (Eq. 2) with a trade-off weight, which only has a meaning when
  ``L_rec`` also shapes the shared conv map (the decoder alone would not need lambda:
  Adam is invariant to a constant gradient scale). False trains the decoder on a
  stopped-gradient map, i.e. a post-hoc decoder of a plain max-pool ArcFace model.
* lambda is not given in the paper; the configs use 1.
* The plain ArcFace model of Table I is :mod:`jfr.train.recognition` with
  ``config.baseline.pooling`` ('flatten_fc' = ArcFace's BN-Dropout-FC-BN output layer, the
  layer the paper removes) and an embedding of the same size ``c``, trained with the same
  data, steps and recognition optimizer in ``<workdir>/baseline``.
* Hiding game (Sec. IV-B, Fig. 4, Table II): on test pairs, half genuine and half
  impostor, the least important pixels of image A (ranked by the method's map of A with
  respect to B) are blurred. Ours is ranked by the discriminative map ``S = |H|`` (the map
  of Fig. 2 and the one covering both decisions: a genuine pair is held together by
  ``S+`` regions, an impostor pair kept apart by ``S-`` regions); ``S+`` and ``S-`` alone
  are reported as well, next to Gradient, Grad-CAM, Grad-CAM++, the similarity
  decomposition of Stylianou et al. (Table II's [25]; here the exact one of a
  max-pooled embedding) and a random map (control).
* Algorithm 1's threshold: ``T = tau / c`` with ``tau`` the verification threshold of the
  cosine similarity (``explain.threshold_source='best_on_eval_pairs'``: the accuracy-best
  threshold on the Table I evaluation pairs), so a pair's channel weights sum to a
  positive value exactly when it is accepted (see :func:`jfr.explain.saliency.explain_pair`).

Ground truth the paper did not have (pointing game): pairs rendered by
:mod:`jfr.data.face_renderer` from two identity latents that are equal except for one
part's parameters (:data:`PART_FIELDS`), with the same nuisances (pose, light,
expression, background, sensor noise); the union of that part's segmentation in the two
images, dilated by ``explain.region_dilation`` pixels (anti-aliased edges, lashes), is
where the faces differ. The share of each map's mass inside it is reported, with the
region's area share as the level of a uniform map.

Modes (``run(config, workdir, mode)``):

* ``train``: trains ours (``<workdir>/checkpoints``) and the plain ArcFace model
  (``<workdir>/baseline``), both resumable;
* ``eval``: restores both and writes the Table I analog (``eval/recognition.json``,
  ``eval/recognition_roc.png``);
* ``explain``: restores ours and writes the saliency experiments (``eval/explain.json``,
  ``eval/hiding_game.png``, ``figures/*.png``);
* ``all``: the three in turn. Every mode but ``train`` then rewrites ``eval/explain.md``
  (and logs it) from the JSON results present (:func:`write_report`).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.tree_util import Partial
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import ndimage

from jfr.data import face_renderer
from jfr.data import pipelines
from jfr.eval import metrics
from jfr.eval import plots
from jfr.eval import protocols
from jfr.explain import hiding_game as hiding
from jfr.explain import saliency
from jfr.models import resnet
from jfr.models.decoder import ReconstructionDecoder
from jfr.train import common
from jfr.train import loop
from jfr.train import optimizers
from jfr.train import recognition
from jfr.train import state as state_lib
from jfr.train import steps
from jfr.train.checkpoint import restore_trained

MODES = ("all", "train", "eval", "explain")
THRESHOLD_SOURCES = ("best_on_eval_pairs", "given")

# Latent fields (jfr.data.face_renderer.identity_latents) that change one part and nothing
# else of the rendered face. Eye spacing and width are left out: they also place the brows;
# eye_y is left out: the brows hang from it.
PART_FIELDS: dict[str, tuple[str, ...]] = {
  "brows": ("brow_gap", "brow_thickness", "brow_arch", "brow_tilt", "brow_color"),
  "eyes": ("eye_openness", "eye_tilt", "iris_color"),
  "nose": ("nose_size", "nose_length", "nose_width", "nose_protrusion", "nose_pointiness"),
  "mouth": ("mouth_y", "mouth_width", "lip_size", "upper_lip", "lower_lip", "lip_color"),
}

# Display names of the saliency maps, and which enter each game.
METHOD_NAMES = {
  "ours_s": "Ours S (discriminative)",
  "ours_s_pos": "Ours S+ (similarity)",
  "ours_s_neg": "Ours S- (dissimilarity)",
  "gradient": "Gradient",
  "gradient_neg": "Gradient, negative part",
  "grad_cam": "Grad-CAM",
  "grad_cam_pp": "Grad-CAM++",
  "stylianou": "Stylianou et al. (max-pool decomposition)",
  "random": "Random (control)",
}
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
FIG2_METHODS = ("gradient", "grad_cam", "grad_cam_pp", "stylianou", "ours_s", "ours_s_pos")


# ------------------------------------------------------------------------------ losses


def reconstruction_loss(images: jax.Array, reconstructions: jax.Array) -> jax.Array:
  """``L_rec`` of Eq. 2 per example: the MSE between a face and its reconstruction.

  Args:
    images: ``[B, H, W, 3]`` input faces (model range [-1, 1]).
    reconstructions: ``[B, H, W, 3]`` decoder outputs.

  Returns:
    ``[B]`` mean squared error over pixels and colours.
  """
  if images.shape != reconstructions.shape or images.ndim != 4:
    raise ValueError(
      f"reconstructions: expected the shape of images {images.shape} "
      f"[B, H, W, 3], got {reconstructions.shape}"
    )
  diff = reconstructions.astype(jnp.float32) - images.astype(jnp.float32)
  return jnp.mean(diff * diff, axis=(1, 2, 3))


def joint_loss(id_loss: jax.Array, rec_loss: jax.Array, rec_weight: float) -> jax.Array:
  """Eq. 2 per example: ``L = L_id + lambda * L_rec``; ``[B]``, ``[B]`` -> ``[B]``."""
  if id_loss.shape != rec_loss.shape or id_loss.ndim != 1:
    raise ValueError(
      f"rec_loss: expected the shape of id_loss {id_loss.shape} [B], got {rec_loss.shape}"
    )
  return id_loss + rec_weight * rec_loss


# ------------------------------------------------------------------------------ models


def _check_model_config(config: ml_collections.ConfigDict) -> None:
  if config.model.pooling != "gmp":
    raise ValueError(
      f"config.model.pooling: the explanation method replaces the last FC "
      f"layer by global max pooling, expected 'gmp', got "
      f"{config.model.pooling!r}"
    )
  if config.explain.threshold_source not in THRESHOLD_SOURCES:
    raise ValueError(
      f"config.explain.threshold_source: expected one of "
      f"{THRESHOLD_SOURCES}, got {config.explain.threshold_source!r}"
    )


def build_decoder(config: ml_collections.ConfigDict, size: int) -> ReconstructionDecoder:
  """The reconstruction decoder of ``config.decoder`` producing ``size`` x ``size`` images."""
  return ReconstructionDecoder(widths=tuple(config.decoder.widths), output_size=(size, size))


def init_decoder(decoder: ReconstructionDecoder, rng: jax.Array, conv_maps: jax.Array) -> dict:
  """The decoder's initial variables: each kernel drawn from flax's default for
  ``ConvTranspose`` (LeCun normal: truncated normal, variance 1 / fan-in with fan-in
  ``kh * kw * c_in``), biases zero.

  The kernels are drawn on their 2-D view with :func:`jfr.models.resnet.conv_kernel_init`
  (the same distribution): XLA:CPU compiles the rank-4 draws of ``decoder.init`` several
  times slower.

  Args:
    decoder: the module.
    rng: a ``jax.random`` key.
    conv_maps: an example input ``[B, h, w, c]``.
  """
  shapes = jax.eval_shape(decoder.init, rng, conv_maps)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  keys = jax.random.split(rng, len(leaves))
  kernel_init = resnet.conv_kernel_init(1.0)
  values = [
    kernel_init(key, leaf.shape, leaf.dtype)
    if jax.tree_util.keystr(path).endswith("['kernel']")
    else jnp.zeros(leaf.shape, leaf.dtype)
    for key, (path, leaf) in zip(keys, leaves)
  ]
  return jax.tree_util.tree_unflatten(treedef, values)


def feature_shape(config: ml_collections.ConfigDict, size: int) -> tuple[int, int, int]:
  """``(h, w, c)`` of the backbone's last conv map for ``size`` x ``size`` inputs."""
  backbone = recognition.inference_backbone(config)
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  _, fmap = jax.eval_shape(
    lambda x: backbone.apply(
      backbone.init(jax.random.PRNGKey(0), x, train=False), x, train=False, return_feature_map=True
    ),
    images,
  )
  return tuple(fmap.shape[1:])


def create_state(
  config: ml_collections.ConfigDict, num_classes: int, size: int
) -> state_lib.TrainState:
  """Initial state: 'backbone' and 'head' (recognition, ``config.optimizer``) and
  'decoder' (explanation, ``config.decoder_optimizer``)."""
  _check_model_config(config)
  backbone, head = recognition.build_models(
    config, num_classes, steps.bn_axis_name(config.parallelism)
  )
  decoder = build_decoder(config, size)
  h, w, c = feature_shape(config, size)
  images = jnp.zeros((2, size, size, 3), jnp.float32)
  recognition_tx = optimizers.make_optimizer(config.optimizer, config.num_train_steps)
  decoder_tx = optimizers.make_optimizer(config.decoder_optimizer, config.num_train_steps)
  return state_lib.create_train_state(
    jax.random.PRNGKey(config.seed),
    {
      "backbone": (backbone, lambda rng: backbone.init(rng, images, train=False)),
      "head": (head, lambda rng: head.init(rng, jnp.zeros((2, c)))),
      "decoder": (decoder, lambda rng: init_decoder(decoder, rng, jnp.zeros((2, h, w, c)))),
    },
    {"backbone": recognition_tx, "head": recognition_tx, "decoder": decoder_tx},
  )


def joint_objective(
  config: ml_collections.ConfigDict,
  apply_fn: Mapping[str, Callable],
  params: dict,
  batch_stats: dict,
  batch: dict,
  rng: jax.Array,
) -> tuple[jax.Array, tuple[Any, dict]]:
  """Eq. 2 averaged over a batch, as a function of the trainable ``params``.

  ``L = mean_b(L_id + lambda * L_rec)``: the ArcFace loss of the head's logits of the max
  pooled feature ``F`` and the MSE between the images and ``Recon(C)``. The decoder reads
  ``C`` through ``stop_gradient`` unless ``config.decoder_backprop_to_backbone``.

  Args:
    config: reads ``head``, ``rec_weight``, ``decoder_backprop_to_backbone``.
    apply_fn: ``{'backbone', 'head', 'decoder'}`` module apply functions.
    params: ``{'backbone', 'head', 'decoder'}`` parameters.
    batch_stats: the backbone's BatchNorm statistics.
    batch: ``image`` ``[B, H, W, 3]`` (model range), ``label`` ``[B]`` int.
    rng: dropout key.

  Returns:
    ``(loss, (new backbone batch_stats, {'id_loss', 'rec_loss', 'accuracy'}))``.
  """
  (features, conv_map), updates = apply_fn["backbone"](
    {"params": params["backbone"], "batch_stats": batch_stats},
    batch["image"],
    train=True,
    return_feature_map=True,
    mutable=["batch_stats"],
    rngs={"dropout": rng},
  )
  logits = apply_fn["head"]({"params": params["head"]}, features)
  id_loss = recognition.head_loss(config.head, logits, batch["label"])
  if not config.decoder_backprop_to_backbone:
    conv_map = jax.lax.stop_gradient(conv_map)
  recon = apply_fn["decoder"]({"params": params["decoder"]}, conv_map)
  rec_loss = reconstruction_loss(batch["image"], recon)
  loss = joint_loss(id_loss, rec_loss, config.rec_weight).mean()
  aux = {
    "id_loss": id_loss.mean(),
    "rec_loss": rec_loss.mean(),
    "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
  }
  return loss, (updates["batch_stats"], aux)


def make_train_step(config: ml_collections.ConfigDict):
  """The pure joint train step of Eq. 2: one update of every sub-model with its own
  optimizer (SGD on backbone + head, Adam on the decoder)."""

  def train_step(state, batch, rng):
    objective = functools.partial(
      joint_objective,
      config,
      state.apply_fn,
      batch_stats=state.batch_stats["backbone"],
      batch=batch,
      rng=rng,
    )
    (loss, (new_bs, aux)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    grads, loss, aux = steps.cross_replica_mean((grads, loss, aux))
    new_state = state_lib.apply_gradients(state, grads, batch_stats={"backbone": new_bs})
    state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
    return state, {"loss": loss, **aux, "nonfinite": nonfinite}

  return train_step


def model_variables(state: state_lib.TrainState) -> dict:
  """``{'backbone': flax variables, 'decoder': flax variables}`` of a (host) state."""
  return {
    "backbone": recognition.backbone_variables(state),
    "decoder": {"params": state.params["decoder"]},
  }


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains (or resumes) ours jointly on Eq. 2; returns :func:`model_variables`."""
  builder = common.dataset_builder(config)
  state = create_state(
    config, common.num_train_classes(config, builder), common.image_size(builder)
  )
  logging.info(
    "backbone parameters: %d, decoder parameters: %d",
    state_lib.num_params(state.params["backbone"]),
    state_lib.num_params(state.params["decoder"]),
  )

  final = loop.run_training(
    config, workdir, state, make_train_step(config), common.labelled_image_batches(config, builder)
  )
  return model_variables(final)


def restore(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """:func:`model_variables` of the newest complete checkpoint of ours in ``workdir``."""
  builder = common.dataset_builder(config)
  target = create_state(
    config, common.num_train_classes(config, builder), common.image_size(builder)
  )
  return model_variables(restore_trained(workdir, target, config.keep_checkpoints))


def baseline_config(config: ml_collections.ConfigDict, size: int) -> ml_collections.ConfigDict:
  """The plain ArcFace model's config: ours with ``baseline.pooling`` and a ``c``-dim
  embedding, for :mod:`jfr.train.recognition` (same data, steps, optimizer, seed)."""
  derived = config.copy_and_resolve_references()
  derived.method = "recognition"
  derived.model.pooling = config.baseline.pooling
  derived.model.embedding_dim = feature_shape(config, size)[2]
  return derived


def baseline_workdir(workdir: str | os.PathLike) -> Path:
  """Where the plain ArcFace model of the run lives (``<workdir>/baseline``)."""
  return Path(workdir) / "baseline"


# ------------------------------------------------------------------- recognition (Table I)


def evaluate_recognition(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, ours: dict, baseline: dict
) -> dict:
  """Table I analog: verification / identification of ours and the plain ArcFace model on
  the test split (same pairs and protocol, :func:`jfr.train.common.evaluate_features`),
  plus ours' reconstruction MSE. Writes ``eval/recognition.json`` and a joint ROC PNG."""
  builder = common.dataset_builder(config)
  size = common.image_size(builder)
  models = {
    "ArcFace (plain)": (baseline_config(config, size), baseline),
    "Ours (max pool + decoder)": (config, ours["backbone"]),
  }
  results, roc = {}, {}
  for name, (cfg, variables) in models.items():
    embed = common.embed_function(recognition.inference_backbone(cfg), variables)
    feats = common.extract_split_features(
      embed, builder, config.dataset.test_split, config.eval.batch_size
    )
    results[name] = common.evaluate_features(
      feats["embedding"], feats["label"], config.eval, seed=config.seed
    )
    fpr, tpr, _ = metrics.roc(*results[name].pop("_roc"))
    roc[name] = (fpr, tpr)
  results["Ours (max pool + decoder)"]["reconstruction_mse"] = _test_reconstruction_mse(
    config, builder, ours
  )
  plots.plot_roc(
    roc,
    Path(workdir) / "eval" / "recognition_roc.png",
    f"Verification ROC ({config.dataset.name} {config.dataset.test_split})",
  )
  common.write_results(workdir, "recognition", results)
  return results


def _test_reconstruction_mse(config, builder, ours: dict) -> float:
  """Mean ``L_rec`` over the test split (model range)."""
  fns = model_functions(config, ours, common.image_size(builder))
  decode = lambda x: _call(fns.decode, _call(fns.conv, x))
  total, count = 0.0, 0
  for batch in common.numpy_batches(
    pipelines.eval_batches(
      builder, config.dataset.test_split, config.eval.batch_size, features=("image",)
    )
  ):
    mse = np.asarray(reconstruction_loss(jnp.asarray(batch["image"]), decode(batch["image"])))
    total += float(mse[batch["valid"]].sum())
    count += int(batch["valid"].sum())
  return total / count


def recognition_table(results: Mapping[str, dict]) -> str:
  """Markdown table of :func:`evaluate_recognition`'s results."""
  rows = []
  for name, r in results.items():
    v, i = r["verification"], r["identification"]
    rows.append(
      {
        "model": name,
        "verification acc": f"{v['accuracy']:.4f} ± {v['accuracy_std']:.4f}",
        "EER": v["eer"],
        "ROC AUC": v["auc"],
        "TAR@FAR=1e-2": v["tar_at_far"].get("0.01", float("nan")),
        "rank-1": i.get("cmc", {}).get("rank1", float("nan")),
        "test L_rec": r.get("reconstruction_mse", "-"),
      }
    )
  return common.markdown_table(
    rows, ["model", "verification acc", "EER", "ROC AUC", "TAR@FAR=1e-2", "rank-1", "test L_rec"]
  )


# ------------------------------------------------------------------------ saliency maps


class ModelFunctions(NamedTuple):
  """The trained networks as functions for :mod:`jfr.explain.saliency` (inference mode).

  ``embed`` images -> F ``[B, c]``; ``conv`` images -> C ``[B, h, w, c]``; ``head`` C -> F
  (the global max pool); ``decode`` C -> reconstructions ``[B, H, W, 3]``. Each is a
  ``jax.tree_util.Partial`` carrying its variables as arguments.
  """

  embed: Partial
  conv: Partial
  head: Partial
  decode: Partial


@jax.jit
def _call(fn: Partial, *args: jax.Array) -> jax.Array:
  """``fn(*args)`` compiled once per ``fn``'s function and argument shapes (the variables
  a ``Partial`` carries are traced arguments)."""
  return fn(*args)


def _conv_map(module, variables, images):
  return module.apply(variables, images, train=False, return_feature_map=True)[1]


def global_max_pool(conv_maps: jax.Array) -> jax.Array:
  """``F = GlobalMaxPool(C)``: ``[B, h, w, c]`` -> ``[B, c]`` (the 'gmp' output layer)."""
  return jnp.max(conv_maps, axis=(1, 2))


def model_functions(
  config: ml_collections.ConfigDict, variables: dict, size: int
) -> ModelFunctions:
  """:class:`ModelFunctions` of ours (``variables`` from :func:`model_variables`) for
  ``size`` x ``size`` images."""
  backbone = recognition.inference_backbone(config)
  decoder = build_decoder(config, size)
  return ModelFunctions(
    embed=Partial(functools.partial(backbone.apply, train=False), variables["backbone"]),
    conv=Partial(functools.partial(_conv_map, backbone), variables["backbone"]),
    head=Partial(global_max_pool),
    decode=Partial(decoder.apply, variables["decoder"]),
  )


def similarity_decomposition(convs_a: np.ndarray, convs_b: np.ndarray) -> np.ndarray:
  """Stylianou et al. [25]'s spatial decomposition of the cosine similarity (Eq. 1) of
  global-max-pooled features, on the conv grid of image A.

  ``s = sum_k F_A[k] F_B[k] / (|F_A| |F_B|)`` with ``F[k] = max_ij C[i, j, k]``; channel k's
  term is credited to the location of its maximum in ``C_A`` (the first in row-major
  order), so the map sums to ``s``. (With average pooling it would be spread as
  ``C_A[i, j, k] F_B[k] / (h w |F_A| |F_B|)``; max pooling makes it exact at one point.)

  Args:
    convs_a: ``[P, h, w, c]`` conv maps of the explained images.
    convs_b: ``[P, h, w, c]`` conv maps of their partners.

  Returns:
    ``[P, h, w]`` float64 map (upsample for display or games).
  """
  convs_a, convs_b = np.asarray(convs_a, np.float64), np.asarray(convs_b, np.float64)
  if convs_a.ndim != 4 or convs_a.shape != convs_b.shape:
    raise ValueError(
      f"convs_b: expected the shape of convs_a [P, h, w, c] {convs_a.shape}, got {convs_b.shape}"
    )
  p, h, w, c = convs_a.shape
  flat_a = convs_a.reshape(p, h * w, c)
  f_a, f_b = flat_a.max(axis=1), convs_b.reshape(p, h * w, c).max(axis=1)
  norms = np.maximum(np.linalg.norm(f_a, axis=1) * np.linalg.norm(f_b, axis=1), 1e-12)
  terms = f_a * f_b / norms[:, None]
  out = np.zeros((p, h * w))
  np.add.at(out, (np.repeat(np.arange(p), c), flat_a.argmax(axis=1).ravel()), terms.ravel())
  return out.reshape(p, h, w)


def _upsample(maps: np.ndarray, size: int) -> np.ndarray:
  """Bilinear ``[P, h, w]`` -> ``[P, size, size]`` (as Grad-CAM's upsampling)."""
  return np.asarray(
    jax.image.resize(jnp.asarray(maps, jnp.float32), (maps.shape[0], size, size), "bilinear")
  )


def _pair_chunk_maps(
  fns: ModelFunctions, a: jax.Array, b: jax.Array, threshold: float, chunk_size: int
) -> dict[str, jax.Array]:
  """The model-based maps of one fixed-size chunk of pairs (see :func:`saliency_maps`)."""
  convs_a, convs_b = _call(fns.conv, a), _call(fns.conv, b)
  ours = saliency.explain_pairs(
    fns.decode, convs_a, convs_b, threshold, chunk_size, image_size=a.shape[1:3]
  )
  signed = saliency.gradient_saliency(fns.embed, a, b, reduction="sum")
  return {
    "ours_s": ours.s,
    "ours_s_pos": ours.s_pos,
    "ours_s_neg": ours.s_neg,
    "gradient": saliency.gradient_saliency(fns.embed, a, b),
    "gradient_neg": jnp.maximum(-signed, 0.0),
    "grad_cam": saliency.grad_cam(fns.conv, fns.head, a, b),
    "grad_cam_pp": saliency.grad_cam_pp(fns.conv, fns.head, a, b),
    "stylianou": _upsample(similarity_decomposition(convs_a, convs_b), a.shape[1]),
  }


def saliency_maps(
  fns: ModelFunctions,
  images_a: np.ndarray,
  images_b: np.ndarray,
  threshold: float,
  chunk_size: int,
  pair_batch: int,
  rng: np.random.Generator,
) -> dict[str, np.ndarray]:
  """Every method's map of image A with respect to image B (keys of :data:`METHOD_NAMES`).

  The pairs are processed ``pair_batch`` at a time (the last batch padded with blank
  pairs whose maps are dropped), so every method compiles once per run whatever the
  number of pairs.

  Args:
    fns: the trained networks.
    images_a, images_b: ``[P, H, W, 3]`` pairs (model range).
    threshold: Algorithm 1's ``T``.
    chunk_size: Algorithm 1's decode batch.
    pair_batch: pairs per compiled call.
    rng: draws the random control map.

  Returns:
    name -> ``[P, H, W]`` float32 non-negative maps.
  """
  chunks: dict[str, list[np.ndarray]] = {}
  for start in range(0, len(images_a), pair_batch):
    a, b = images_a[start : start + pair_batch], images_b[start : start + pair_batch]
    real = len(a)
    pad = ((0, pair_batch - real), (0, 0), (0, 0), (0, 0))
    maps = _pair_chunk_maps(
      fns, jnp.asarray(np.pad(a, pad)), jnp.asarray(np.pad(b, pad)), threshold, chunk_size
    )
    for name, value in maps.items():
      chunks.setdefault(name, []).append(np.asarray(value, np.float32)[:real])
  out = {name: np.concatenate(parts) for name, parts in chunks.items()}
  out["random"] = rng.random(images_a.shape[:3], dtype=np.float32)
  return out


# ---------------------------------------------------------------------- synthetic pairs


def render_part_pairs(
  world_seed: int,
  identity_ids: np.ndarray,
  donor_ids: np.ndarray,
  part: str,
  image_size: int,
  *,
  seed: int,
  max_yaw: float,
  region_dilation: int,
) -> dict[str, np.ndarray]:
  """Pairs of faces that differ in one part only (ground truth for the pointing game).

  Face A has the latent of ``identity_ids[i]``; face B the same latent with the fields of
  ``PART_FIELDS[part]`` taken from ``donor_ids[i]``. Both get the same nuisances (drawn
  from ``seed``, no occluders, ``|yaw| <= max_yaw``) and the same sensor noise, so the
  images differ only where the part is drawn (and its anti-aliased rim).

  Args:
    world_seed: the face world's seed (``synthetic_faces`` builder config ``seed``).
    identity_ids: ``[n]`` int identities of the A faces.
    donor_ids: ``[n]`` int identities lending the part, each different from its A.
    part: a key of :data:`PART_FIELDS` (a name of ``face_renderer.PART_NAMES``).
    image_size: side of the images.
    seed: nuisance and noise seed.
    max_yaw: largest |yaw| in degrees.
    region_dilation: pixels by which the part region is grown (>= 0).

  Returns:
    ``images_a``, ``images_b`` uint8 ``[n, S, S, 3]``; ``region`` bool ``[n, S, S]``: the
    part in A or in B, dilated.
  """
  if part not in PART_FIELDS:
    raise ValueError(f"part: expected one of {sorted(PART_FIELDS)}, got {part!r}")
  identity_ids, donor_ids = np.asarray(identity_ids), np.asarray(donor_ids)
  if identity_ids.ndim != 1 or donor_ids.shape != identity_ids.shape or identity_ids.size == 0:
    raise ValueError(
      f"donor_ids: expected the shape of identity_ids (a non-empty [n]), got "
      f"{donor_ids.shape} and {identity_ids.shape}"
    )
  if np.any(identity_ids == donor_ids):
    raise ValueError("donor_ids: each donor must differ from its identity")
  if region_dilation < 0:
    raise ValueError(f"region_dilation: expected >= 0, got {region_dilation}")
  lat_a = face_renderer.identity_latents(world_seed, identity_ids)
  donors = face_renderer.identity_latents(world_seed, donor_ids)
  lat_b = {k: (donors[k] if k in PART_FIELDS[part] else v).copy() for k, v in lat_a.items()}
  nui = face_renderer.sample_nuisances(
    np.random.default_rng(seed),
    identity_ids.size,
    occluder_prob=0.0,
    eyeglasses_prob=0.0,
    max_yaw=max_yaw,
  )
  out_a = face_renderer.render(lat_a, nui, image_size, seed_or_rng=seed)
  out_b = face_renderer.render(lat_b, nui, image_size, seed_or_rng=seed)
  part_id = face_renderer.PART_NAMES.index(part)
  region = (out_a["segmentation"] == part_id) | (out_b["segmentation"] == part_id)
  if region_dilation:
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    region = ndimage.binary_dilation(region, structure, iterations=region_dilation)
  return {"images_a": out_a["image"], "images_b": out_b["image"], "region": region}


def _part_pair_ids(
  test_ids: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
  """``count`` (identity, donor) pairs of distinct test identities."""
  if test_ids.size < 2:
    raise ValueError("the test split needs two identities for part pairs")
  perm = rng.permutation(test_ids)
  index = np.arange(count)
  return perm[index % perm.size], perm[(index + 1) % perm.size]


# ----------------------------------------------------------------------- explanation run


def _figure_pairs(
  labels: np.ndarray,
  occluded: np.ndarray,
  num_genuine: int,
  num_impostor: int,
  rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Figure rows: genuine pairs whose A is occluded and B is not (Fig. 3's masked
  pairs) where the test split has them, else any genuine pair; then impostor pairs."""
  a, b = [], []
  for ident in rng.permutation(np.unique(labels)):
    if len(a) == num_genuine:
      break
    members = np.flatnonzero(labels == ident)
    occ, clean = members[occluded[members]], members[~occluded[members]]
    if occ.size and clean.size:
      a.append(occ[0]), b.append(clean[0])
  while len(a) < num_genuine:
    members = np.flatnonzero(labels == rng.choice(labels))
    if members.size >= 2:
      i, j = rng.choice(members, 2, replace=False)
      a.append(i), b.append(j)
  while len(a) < num_genuine + num_impostor:
    i, j = rng.choice(labels.size, 2, replace=False)
    if labels[i] != labels[j]:
      a.append(i), b.append(j)
  same = np.arange(len(a)) < num_genuine
  return np.array(a, int), np.array(b, int), same


def _verify_function(
  fns: ModelFunctions, batch_size: int
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """``(images_a, images_b) -> cosine similarities [P]`` of ours, embedding
  ``batch_size`` images per compiled call. The hiding game passes the same unmodified
  ``images_b`` array at every fraction; its embedding is kept for the next call."""
  last: dict[str, Any] = {}

  def embed(images):
    return protocols.batched_apply(
      lambda x: np.asarray(_call(fns.embed, x)), images, batch_size=batch_size
    )

  def verify(a, b):
    if last.get("images") is not b:
      last.update(images=b, features=embed(b))
    return np.asarray(saliency.cosine_similarity(embed(a), last["features"]))

  return verify


def _hiding_games(verify, images_a, images_b, same, maps, cfg) -> dict:
  """The hiding game of every method on all pairs, then per pair kind at the same
  threshold."""
  results = {}
  for name in HIDING_METHODS:
    res = hiding.hiding_game(
      verify,
      images_a,
      images_b,
      same,
      maps[name],
      fractions=cfg.fractions,
      blur_sigma=cfg.blur_sigma,
    )
    for kind, sel in (("genuine", same), ("impostor", ~same)):
      sub = hiding.hiding_game(
        verify,
        images_a[sel],
        images_b[sel],
        same[sel],
        maps[name][sel],
        fractions=cfg.fractions,
        blur_sigma=cfg.blur_sigma,
        threshold=res["threshold"],
      )
      res[kind] = {"accuracy": sub["accuracy"], "auc": sub["auc"]}
    results[name] = res
  return results


def hiding_table(results: Mapping[str, dict]) -> str:
  """Markdown table of the hiding-game AUCs (x 100, as Table II)."""
  rows = [
    {
      "method": METHOD_NAMES[k],
      "AUC x100 (all)": 100 * r["auc"],
      "genuine": 100 * r["genuine"]["auc"],
      "impostor": 100 * r["impostor"]["auc"],
      "acc @ 50% blurred": float(np.interp(0.5, r["fractions"], r["accuracy"])),
      "acc @ 90% blurred": float(np.interp(0.9, r["fractions"], r["accuracy"])),
    }
    for k, r in results.items()
  ]
  return common.markdown_table(rows, list(rows[0]))


def _pointing_games(maps_by_part: Mapping[str, dict], regions: Mapping[str, np.ndarray]) -> dict:
  """Share of each map's mass inside the differing part, and the hit rate of its peak."""
  out: dict[str, Any] = {"area_share": {}, "methods": {}}
  for part, region in regions.items():
    out["area_share"][part] = float(region.mean())
  for name in POINTING_METHODS:
    per_part = {}
    for part, region in regions.items():
      sal = maps_by_part[part][name].astype(np.float64)
      share = hiding.pointing_game(sal, region)
      peak = sal.reshape(len(sal), -1).argmax(axis=1)
      hit = region.reshape(len(region), -1)[np.arange(len(sal)), peak]
      per_part[part] = {
        "share_mean": float(share.mean()),
        "share_std": float(share.std()),
        "hit_rate": float(hit.mean()),
        "num_pairs": int(len(sal)),
      }
    shares = [v["share_mean"] for v in per_part.values()]
    hits = [v["hit_rate"] for v in per_part.values()]
    out["methods"][name] = {
      "parts": per_part,
      "share_mean": float(np.mean(shares)),
      "hit_rate": float(np.mean(hits)),
    }
  return out


def pointing_table(results: Mapping[str, Any]) -> str:
  """Markdown table of the pointing game (share of mass inside the part)."""
  parts = list(results["area_share"])
  rows = [
    {
      "method": "chance (part's area share)",
      **{p: results["area_share"][p] for p in parts},
      "mean share": float(np.mean(list(results["area_share"].values()))),
      "peak hit rate": float(np.mean(list(results["area_share"].values()))),
    }
  ]
  for name, r in results["methods"].items():
    rows.append(
      {
        "method": METHOD_NAMES[name],
        **{p: r["parts"][p]["share_mean"] for p in parts},
        "mean share": r["share_mean"],
        "peak hit rate": r["hit_rate"],
      }
    )
  return common.markdown_table(rows, ["method", *parts, "mean share", "peak hit rate"])


def _algorithm1_threshold(
  config: ml_collections.ConfigDict, features: np.ndarray, labels: np.ndarray
) -> float:
  """``tau``: given, or the accuracy-best threshold on the Table I evaluation pairs."""
  if config.explain.threshold_source == "given":
    return float(config.explain.threshold)
  a, b, same = protocols.verification_pairs(
    labels, config.eval.pairs_per_fold, seed=config.seed, folds=config.eval.folds
  )
  return hiding.best_threshold(protocols.pair_scores(features, a, b), same)


def _pointing_experiment(
  config, builder, fns, verify, threshold, test_ids, rng
) -> tuple[dict, dict, dict]:
  """Renders the one-part pairs, maps them, plays the pointing game.

  Returns ``(results, pairs by part, maps by part)``.
  """
  cfg = config.explain
  world_seed = getattr(builder.builder_config, "seed", None)
  if world_seed is None:
    raise ValueError(
      f"config.dataset.name: part pairs are rendered from the synthetic "
      f"face world; {builder.info.full_name} is not synthetic_faces"
    )
  size = common.image_size(builder)
  part_pairs, part_maps = {}, {}
  for index, part in enumerate(cfg.parts):
    ids, donors = _part_pair_ids(test_ids, cfg.pairs_per_part, rng)
    pairs = render_part_pairs(
      world_seed,
      ids,
      donors,
      part,
      size,
      seed=config.seed * 1000 + index,
      max_yaw=cfg.max_yaw,
      region_dilation=cfg.region_dilation,
    )
    pa = pipelines.to_model_range_np(pairs["images_a"])
    pb = pipelines.to_model_range_np(pairs["images_b"])
    part_pairs[part] = {**pairs, "similarity": verify(pa, pb)}
    part_maps[part] = saliency_maps(fns, pa, pb, threshold, cfg.chunk_size, cfg.pair_batch, rng)
  results = _pointing_games(part_maps, {p: v["region"] for p, v in part_pairs.items()})
  results["dissimilarity_mean"] = {
    p: float(np.mean(1.0 - v["similarity"])) for p, v in part_pairs.items()
  }
  return results, part_pairs, part_maps


def _timed(label: str, start: float) -> float:
  now = time.perf_counter()
  logging.info("%s: %.1f s", label, now - start)
  return now


def explain(config: ml_collections.ConfigDict, workdir: str | os.PathLike, variables: dict) -> dict:
  """The saliency experiments: hiding game on test pairs, pointing game on synthetic
  part pairs, Fig. 2 / Fig. 3 analogs (see the module docstring).

  Writes ``eval/explain.json``, ``eval/hiding_game.png`` and ``figures/*.png``; returns
  the JSON's content.
  """
  _check_model_config(config)
  cfg = config.explain
  workdir = Path(workdir)
  builder = common.dataset_builder(config)
  size = common.image_size(builder)
  c = feature_shape(config, size)[2]
  fns = model_functions(config, variables, size)
  rng = np.random.default_rng(config.seed + 1)
  test = pipelines.load_arrays(
    builder, config.dataset.test_split, ("image", "label", "occluder_mask")
  )
  images = pipelines.to_model_range_np(test["image"])
  features = protocols.batched_apply(
    lambda x: np.asarray(_call(fns.embed, x)), images, batch_size=config.eval.batch_size
  )
  tau = _algorithm1_threshold(config, features, test["label"])
  threshold = tau / c
  logging.info(
    "Algorithm 1 threshold: tau = %.4f (%s), T = tau / c = %.6f",
    tau,
    cfg.threshold_source,
    threshold,
  )
  verify = _verify_function(fns, max(1, cfg.num_pairs // 2))

  start = time.perf_counter()
  a, b, same = protocols.verification_pairs(
    test["label"], cfg.num_pairs, seed=config.seed + 1, folds=1
  )
  maps = saliency_maps(fns, images[a], images[b], threshold, cfg.chunk_size, cfg.pair_batch, rng)
  start = _timed(f"saliency maps of {len(a)} test pairs", start)
  games = _hiding_games(verify, images[a], images[b], same, maps, cfg)
  plots.plot_curves(
    {METHOD_NAMES[k]: (r["fractions"], r["accuracy"]) for k, r in games.items()},
    workdir / "eval" / "hiding_game.png",
    "fraction of pixels of A blurred (least important first)",
    "verification accuracy",
    f"Hiding game ({len(a)} test pairs, blur sigma {cfg.blur_sigma:g} px)",
  )
  start = _timed("hiding games", start)
  pointing, part_pairs, part_maps = _pointing_experiment(
    config, builder, fns, verify, threshold, np.unique(test["label"]), rng
  )
  start = _timed("part pairs, their maps and the pointing game", start)

  fa, fb, fsame = _figure_pairs(
    test["label"],
    test["occluder_mask"].any(axis=(1, 2)),
    cfg.figure_genuine,
    cfg.figure_impostor,
    rng,
  )
  maps_a = saliency_maps(
    fns, images[fa], images[fb], threshold, cfg.chunk_size, cfg.pair_batch, rng
  )
  maps_b = saliency_maps(
    fns, images[fb], images[fa], threshold, cfg.chunk_size, cfg.pair_batch, rng
  )
  scores = verify(images[fa], images[fb])
  row_labels = [f"{'genuine' if s else 'impostor'}\ns = {x:.2f}" for s, x in zip(fsame, scores)]
  figures = workdir / "figures"
  plot_similarity_maps(
    test["image"][fa],
    test["image"][fb],
    maps_a,
    maps_b,
    row_labels,
    figures / "fig3_similarity_dissimilarity.png",
  )
  plot_method_comparison(
    test["image"][fa], test["image"][fb], maps_a, row_labels, figures / "fig2_method_comparison.png"
  )
  plot_part_pairs(part_pairs, part_maps, figures / "part_pairs.png")
  plot_reconstructions(test["image"][:8], fns, figures / "reconstructions.png")
  _timed("figures", start)

  results = {
    "threshold": {"tau": tau, "T": threshold, "source": cfg.threshold_source, "channels": c},
    "hiding_game": games,
    "pointing_game": pointing,
    "method_names": METHOD_NAMES,
  }
  common.write_results(workdir, "explain", results)
  return results


# ------------------------------------------------------------------------------ figures


def _save_figure(fig: Figure, path: Path) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  FigureCanvasAgg(fig)
  fig.savefig(path, dpi=110)


def _overlay(
  ax, image: np.ndarray, saliency_map: np.ndarray | None, scale: float, title: str | None = None
) -> None:
  """Draws ``image`` (uint8) under ``v = saliency_map / scale`` as a jet overlay whose
  opacity grows with ``v`` (low values leave the face visible)."""
  ax.imshow(image, interpolation="nearest")
  if saliency_map is not None:
    v = np.clip(saliency_map / max(scale, 1e-12), 0.0, 1.0)
    rgba = colormaps["jet"](v)
    rgba[..., 3] = 0.8 * v
    ax.imshow(rgba, interpolation="bilinear")
  ax.set_xticks([])
  ax.set_yticks([])
  if title:
    ax.set_title(title, fontsize=8)


def _grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
  fig = Figure(figsize=(1.45 * cols + 0.6, 1.55 * rows + 0.4))
  axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
  return fig, axes


def _share(part: np.ndarray, total: np.ndarray) -> str:
  return f"{100 * part.sum() / max(total.sum(), 1e-12):.0f}%"


def plot_similarity_maps(
  images_a: np.ndarray,
  images_b: np.ndarray,
  maps_a: dict,
  maps_b: dict,
  row_labels: Sequence[str],
  path: Path,
) -> None:
  """Fig. 3 analog: each pair with the S+, S-, S overlays of A and of B.

  S+, S- and S of one image share one colour scale (max of S), so the colours compare
  the similarity and dissimilarity maps; the titles give each one's share of S's mass.
  """
  fig, axes = _grid(len(images_a), 8)
  for r in range(len(images_a)):
    _overlay(axes[r, 0], images_a[r], None, 1.0, "A" if r == 0 else None)
    _overlay(axes[r, 1], images_b[r], None, 1.0, "B" if r == 0 else None)
    axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
    for col, (image, maps, who) in enumerate(
      ((images_a[r], maps_a, "A"), (images_b[r], maps_b, "B"))
    ):
      s = maps["ours_s"][r]
      for k, (key, name) in enumerate(
        (("ours_s_pos", "S+"), ("ours_s_neg", "S-"), ("ours_s", "S"))
      ):
        ax = axes[r, 2 + 3 * col + k]
        _overlay(ax, image, maps[key][r], s.max(), f"{name} of {who}" if r == 0 else None)
        if key != "ours_s":
          ax.set_xlabel(f"{_share(maps[key][r], s)} of S", fontsize=7)
  fig.suptitle(
    "Similarity (S+), dissimilarity (S-) and discriminative (S = S+ + S-) maps "
    "of Algorithm 1, one colour scale per image",
    fontsize=9,
  )
  fig.tight_layout()
  _save_figure(fig, path)


def plot_method_comparison(
  images_a: np.ndarray, images_b: np.ndarray, maps: dict, row_labels: Sequence[str], path: Path
) -> None:
  """Fig. 2 analog: each pair and six methods' maps of A (each map scaled to its max)."""
  fig, axes = _grid(len(images_a), 2 + len(FIG2_METHODS))
  short = {
    "gradient": "Gradient",
    "grad_cam": "Grad-CAM",
    "grad_cam_pp": "Grad-CAM++",
    "stylianou": "Stylianou",
    "ours_s": "Ours S",
    "ours_s_pos": "Ours S+",
  }
  for r in range(len(images_a)):
    _overlay(axes[r, 0], images_a[r], None, 1.0, "A" if r == 0 else None)
    _overlay(axes[r, 1], images_b[r], None, 1.0, "B" if r == 0 else None)
    axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
    for k, name in enumerate(FIG2_METHODS):
      _overlay(
        axes[r, 2 + k],
        images_a[r],
        maps[name][r],
        maps[name][r].max(),
        short[name] if r == 0 else None,
      )
  fig.suptitle("Saliency of A for the pair's similarity: six methods", fontsize=9)
  fig.tight_layout()
  _save_figure(fig, path)


def plot_part_pairs(
  part_pairs: Mapping[str, dict], part_maps: Mapping[str, dict], path: Path
) -> None:
  """One pair per part: A, B, |A - B| with the ground-truth region, and maps of A."""
  methods = ("ours_s_neg", "ours_s", "gradient", "grad_cam", "stylianou")
  short = {
    "ours_s_neg": "Ours S-",
    "ours_s": "Ours S",
    "gradient": "Gradient",
    "grad_cam": "Grad-CAM",
    "stylianou": "Stylianou",
  }
  fig, axes = _grid(len(part_pairs), 3 + len(methods))
  for r, (part, pairs) in enumerate(part_pairs.items()):
    a, b = pairs["images_a"][0], pairs["images_b"][0]
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=-1)
    top = r == 0
    _overlay(axes[r, 0], a, None, 1.0, "A" if top else None)
    _overlay(axes[r, 1], b, None, 1.0, "B" if top else None)
    axes[r, 2].imshow(diff, cmap="gray", interpolation="nearest")
    axes[r, 2].contour(pairs["region"][0], levels=[0.5], colors="red", linewidths=0.8)
    axes[r, 2].set_xticks([])
    axes[r, 2].set_yticks([])
    if top:
      axes[r, 2].set_title("|A-B|, part", fontsize=8)
    axes[r, 0].set_ylabel(f"{part}\ns = {pairs['similarity'][0]:.2f}", fontsize=8)
    for k, name in enumerate(methods):
      sal = part_maps[part][name][0]
      _overlay(axes[r, 3 + k], a, sal, sal.max(), short[name] if top else None)
      axes[r, 3 + k].contour(pairs["region"][0], levels=[0.5], colors="white", linewidths=0.6)
  fig.suptitle("Pairs differing in one part (outline): where do the maps point?", fontsize=9)
  fig.tight_layout()
  _save_figure(fig, path)


def plot_reconstructions(images: np.ndarray, fns: ModelFunctions, path: Path) -> None:
  """Test faces (top) and their reconstructions from C (bottom): the explanation flow."""
  recon = np.asarray(_call(fns.decode, _call(fns.conv, pipelines.to_model_range_np(images))))
  recon = pipelines.from_model_range(recon)
  fig, axes = _grid(2, len(images))
  for k in range(len(images)):
    _overlay(axes[0, k], images[k], None, 1.0)
    _overlay(axes[1, k], recon[k], None, 1.0)
  axes[0, 0].set_ylabel("input", fontsize=8)
  axes[1, 0].set_ylabel("Recon(C)", fontsize=8)
  fig.suptitle("Explanation flow: faces rebuilt from the last conv map", fontsize=9)
  fig.tight_layout()
  _save_figure(fig, path)


# ---------------------------------------------------------------------------------- run


def write_report(workdir: str | os.PathLike) -> str:
  """Writes (over) ``eval/explain.md`` with the tables of the JSON results present in
  ``<workdir>/eval`` (``recognition.json``, ``explain.json``), logs and returns it."""
  eval_dir = Path(workdir) / "eval"
  sections = []
  if (eval_dir / "recognition.json").exists():
    with open(eval_dir / "recognition.json", encoding="utf-8") as f:
      sections.append(("Recognition (Table I analog)", recognition_table(json.load(f))))
  if (eval_dir / "explain.json").exists():
    with open(eval_dir / "explain.json", encoding="utf-8") as f:
      res = json.load(f)
    th, games, pointing = res["threshold"], res["hiding_game"], res["pointing_game"]
    pairs = next(iter(games.values()))["num_pairs"]
    sections.append(
      (
        f"Hiding game ({pairs} test pairs, half genuine; AUC x 100; "
        f"tau = {th['tau']:.3f}, T = tau / c = {th['T']:.5f})",
        hiding_table(games),
      )
    )
    gaps = ", ".join(f"{p} {v:.2e}" for p, v in pointing["dissimilarity_mean"].items())
    sections.append(
      (
        "Pointing game: pairs differing in one part, share of each map's mass inside the part",
        pointing_table(pointing) + f"\n\nMean 1 - cosine similarity of the "
        f"part pairs (how different the model finds them): {gaps}.",
      )
    )
  text = "".join(f"## {title}\n\n{body}\n\n" for title, body in sections)
  eval_dir.mkdir(parents=True, exist_ok=True)
  (eval_dir / "explain.md").write_text(text, encoding="utf-8")
  logging.info("results:\n%s", text)
  return text


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring); returns the results it wrote."""
  common.check_mode(mode, MODES)
  _check_model_config(config)
  workdir = Path(workdir)
  size = common.image_size(common.dataset_builder(config))
  ours = baseline = None
  results: dict[str, Any] = {}
  if mode in ("all", "train"):
    start = time.perf_counter()
    ours = train(config, workdir)
    logging.info("trained ours in %.1f s", time.perf_counter() - start)
    start = time.perf_counter()
    baseline = recognition.train(baseline_config(config, size), baseline_workdir(workdir))
    logging.info("trained the plain ArcFace model in %.1f s", time.perf_counter() - start)
  if mode in ("all", "eval"):
    ours = ours if ours is not None else restore(config, workdir)
    if baseline is None:
      baseline = recognition.restore_backbone(
        baseline_config(config, size), baseline_workdir(workdir)
      )
    results["recognition"] = evaluate_recognition(config, workdir, ours, baseline)
  if mode in ("all", "explain"):
    ours = ours if ours is not None else restore(config, workdir)
    start = time.perf_counter()
    results["explain"] = explain(config, workdir, ours)
    logging.info("explanation experiments in %.1f s", time.perf_counter() - start)
  if mode != "train":
    write_report(workdir)
  return results
