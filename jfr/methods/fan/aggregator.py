"""The FAN's networks and its inference functions for evaluators.

* :func:`build_generator` / :func:`build_discriminator`: the set U-Net aggregator and the
  discriminator of ``config.aggregator`` / ``config.discriminator``;
  :func:`extractor_module`: the frozen stage-1 backbone.
* :func:`validate_face_sets`: the checks at the trainer/evaluation boundary.
* :func:`make_aggregator`: float sets ``[B, N, H, W, 3]`` in [-1, 1] -> aggregated images.
* :func:`eval_model`: the :class:`~jfr.eval.embedding.EvalModel` a FAN run offers evaluators:
  ``embed`` (the extractor on uint8 stills), ``embed_sets`` (aggregate, then embed the one
  image) and their model-range twins in ``extras`` (``embed_model_range``,
  ``embed_sets_model_range``: float inputs in [-1, 1], for protocols that transform the
  frames in the model's range before embedding, e.g. motion blur; feeding them uint8 would
  quantise the blurred frames and change the numbers).

Set sizes: a set must hold ``1 <= N <= config.aggregator.max_members`` members; a larger set
is refused with a ``ValueError`` (:func:`validate_face_sets`), it is not truncated here. The
mixed-media protocol cuts longer video parts into near-equal chunks of at most
``max_set_size`` frames (:func:`jfr.eval.video_protocols.template_frame_sets`); a policy for
whole long videos (e.g. chunks, then a pooling of the chunks' features) is not chosen yet
(issue 15).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval import protocols
from jfr.methods.recognition import trainer as recognition_trainer
from jfr.models.discriminator import Discriminator
from jfr.models.layers import symmetrise_shading
from jfr.models.set_unet import SetUNet, validate_set_inputs

AggregateFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def build_generator(config: ml_collections.ConfigDict) -> SetUNet:
  """The face aggregator of ``config.aggregator``."""
  a = config.aggregator
  return SetUNet(
    base_features=a.base_features,
    max_members=a.max_members,
    output_activation=a.output_activation,
    transposed_conv=a.transposed_conv,
    # Options beyond the paper; configs written before they existed lack them.
    upsample_init=a.get("upsample_init", "default"),
    residual=a.get("residual", "none"),
    shading_symmetry=a.get("shading_symmetry", 0.0),
  )


def build_discriminator(config: ml_collections.ConfigDict) -> Discriminator:
  """The discriminator of ``config.discriminator``."""
  d = config.discriminator
  return Discriminator(features=tuple(d.features), negative_slope=d.negative_slope)


def extractor_module(config: ml_collections.ConfigDict):
  """The stage-1 backbone for inference (no cross-replica BatchNorm)."""
  return recognition_trainer.inference_backbone(config.extractor)


def validate_face_sets(frames: Any, mask: Any, max_members: int, image_size: int) -> None:
  """Checks face sets at the trainer/evaluation boundary.

  Args:
    frames: ``[B, N, H, W, 3]`` float images in [-1, 1].
    mask: ``[B, N]`` bool, True for real members.
    max_members: the configured maximum N (``config.aggregator.max_members``).
    image_size: the configured H = W (the dataset's image size).

  Raises:
    ValueError: an empty set (N = 0) or a set with no real member (all-False mask
      row), N above ``max_members``, images that are not ``image_size`` square RGB,
      a non-bool mask, or NaN/Inf pixels in a real member.
  """
  shape = np.shape(frames)
  if len(shape) == 5 and shape[2:4] != (image_size, image_size):
    raise ValueError(
      f"frames must hold {image_size}x{image_size} images (the configured "
      f"image size); got {shape[2]}x{shape[3]} in shape {shape}."
    )
  validate_set_inputs(frames, mask, max_members)


@functools.lru_cache(maxsize=4)
def _jitted_apply(module: SetUNet) -> Callable:
  """``jax.jit(module.apply)``, shared by every generator of equal configuration (the
  variants' aggregators then compile once per set size)."""
  return jax.jit(module.apply)


def make_aggregator(
  config: ml_collections.ConfigDict, generator_params: Any, image_size: int
) -> AggregateFn:
  """A validated, batched ``aggregate(frames [B, N, H, W, 3], mask [B, N]) -> [B, H, W, 3]``
  (float images in [-1, 1]; outputs are not clipped).

  Inputs are checked with :func:`validate_face_sets`; the generator then runs jitted in
  chunks of ``config.inference.set_batch_size`` sets (one compilation per N).
  """
  apply = _jitted_apply(build_generator(config))
  variables = {"params": jax.device_put(generator_params)}

  def aggregate(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    validate_face_sets(frames, mask, config.aggregator.max_members, image_size)
    frames = np.asarray(frames, np.float32)
    return protocols.batched_apply(
      lambda f, m: apply(variables, f, m),
      frames,
      np.asarray(mask),
      batch_size=config.inference.set_batch_size,
    )

  return aggregate


def symmetric_shading_mean(sigma: float) -> AggregateFn:
  """The non-learned baseline of the ``shading_symmetry`` option: the masked pixel mean of each
  set with its low frequencies made left-right symmetric
  (:func:`jfr.models.layers.symmetrise_shading`), float sets ``[B, N, H, W, 3]`` in
  [-1, 1] and mask ``[B, N]`` -> ``[B, H, W, 3]``. It shows how much of an aggregator's
  gain over the pixel mean the fixed prior alone gives."""
  if not np.isfinite(sigma) or sigma <= 0:
    raise ValueError(f"sigma must be a positive number of pixels; got {sigma!r}")
  blur = jax.jit(symmetrise_shading, static_argnums=1)

  def aggregate(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    frames, mask = np.asarray(frames, np.float32), np.asarray(mask, bool)
    if frames.ndim != 5 or mask.shape != frames.shape[:2] or not mask.any(1).all():
      raise ValueError(
        f"expected sets [B, N, H, W, 3] and a mask [B, N] with a member per set, got "
        f"{frames.shape} and {mask.shape}"
      )
    weights = mask / mask.sum(1, keepdims=True)
    mean = np.einsum("bn,bnhwc->bhwc", weights, np.where(mask[..., None, None, None], frames, 0))
    return np.asarray(blur(mean.astype(np.float32), float(sigma)))

  return aggregate


@functools.lru_cache(maxsize=4)
def _inference_apply(module: Any) -> Callable:
  """``module.apply`` in inference mode, one object per module configuration (so that the
  jit caches keyed on it compile once)."""
  return functools.partial(module.apply, train=False)


@functools.lru_cache(maxsize=4)
def _jitted_inference(module: Any) -> Callable:
  return jax.jit(_inference_apply(module))


def model_range_embedder(
  config: ml_collections.ConfigDict, extractor_variables: Any
) -> embedding.EmbedFn:
  """``images float32 [B, S, S, 3] in [-1, 1] -> features [B, D]`` of the extractor, in
  zero-padded chunks of ``config.inference.batch_size`` (one compilation)."""
  fn = _jitted_inference(extractor_module(config))

  def embed(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.float32:
      raise ValueError(f"images: expected float32 [B, H, W, 3], got {images.dtype} {images.shape}")
    return protocols.batched_apply(
      lambda x: np.asarray(fn(extractor_variables, x), np.float32),
      images,
      batch_size=config.inference.batch_size,
    )

  return embed


def sets_embedder(
  aggregate: AggregateFn, embed_model_range: embedding.EmbedFn, model_range: bool
) -> embedding.EmbedSetsFn:
  """``(frames [B, N, H, W, 3], mask [B, N]) -> [B, D]``: ``aggregate`` every set into one
  image, then embed it (all B images in one call of ``embed_model_range``). Frames are
  uint8 (``model_range=False``, converted with :func:`jfr.data.pipelines.to_model_range_np`)
  or float in [-1, 1] (``model_range=True``)."""

  def embed_sets(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if model_range:
      if frames.dtype != np.float32:
        raise ValueError(f"frames: expected float32 in [-1, 1], got {frames.dtype}")
    else:
      if frames.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8 pixels, got {frames.dtype}")
      frames = pipelines.to_model_range_np(frames)
    return embed_model_range(np.asarray(aggregate(frames, mask), np.float32))

  return embed_sets


def eval_model(
  config: ml_collections.ConfigDict,
  extractor_variables: Any,
  generator_params: Any | None,
  image_size: int,
) -> embedding.EvalModel:
  """What a FAN run offers evaluators (module docstring); without ``generator_params`` only
  the extractor (``embed``, ``embed_model_range``)."""
  embed_range = model_range_embedder(config, extractor_variables)
  embed = embedding.model_embedder(
    _inference_apply(extractor_module(config)),
    extractor_variables,
    input_size=image_size,
    batch_size=config.inference.batch_size,
  )
  extras: dict[str, Callable] = {"embed_model_range": embed_range}
  embed_sets = None
  if generator_params is not None:
    aggregate = make_aggregator(config, generator_params, image_size)
    embed_sets = sets_embedder(aggregate, embed_range, model_range=False)
    extras["embed_sets_model_range"] = sets_embedder(aggregate, embed_range, model_range=True)
    extras["aggregate_model_range"] = aggregate
  return embedding.EvalModel(
    input_size=image_size, embed=embed, embed_sets=embed_sets, extras=extras
  )


def extractor_model(
  config: ml_collections.ConfigDict, extractor_variables: Any, image_size: int, batch_size: int
) -> embedding.EvalModel:
  """The stage-1 backbone alone (``embed`` in chunks of ``batch_size``), for still-image
  evaluators of ``config.extractor.evals``."""
  embed = embedding.model_embedder(
    _inference_apply(extractor_module(config)),
    extractor_variables,
    input_size=image_size,
    batch_size=batch_size,
  )
  return embedding.EvalModel(input_size=image_size, embed=embed)
