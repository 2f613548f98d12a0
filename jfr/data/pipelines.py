"""tf.data pipelines: one builder function per kind of batch.

Why one module over 400 lines: every batch kind shares the same reading, per-example seeding
and resume-by-start-batch machinery (``_read``, ``_example_seed``, ``host_batch_size``), and
the conventions' public API index names them all under ``jfr.data.pipelines``.

Every function returns a ``tf.data.Dataset`` of dicts of tensors that convert to NumPy
(``tfds.as_numpy`` / ``.as_numpy_iterator()``). Images leave the pipeline as float32 in
[-1, 1] (``to_model_range``), NHWC. Kinds of batch:

* :func:`image_batches` -- images with identity label, attributes (and optionally
  landmarks / segmentation / occluder mask): recognition and attribute training.
* :func:`set_batches` -- aggregation sets: ``frames [B, N, H, W, 3]`` of one video with
  ``mask [B, N]`` (sets may be shorter than N), a ``positive`` still of the same identity
  and a ``negative`` still of another identity (the FAN's L_dis inputs).
* :func:`occlusion_pair_batches` -- clean and occluded versions of the same images, where
  one batch shares one semantically equivalent occluder warped to each face through the
  68-landmark mesh (the interpretable-FR paper's Siamese input).
* :func:`eval_batches` -- a finite, padded pass over a split with a ``valid`` mask, so
  that feature extraction for evaluation protocols and templates compiles once.

Training streams are infinite, deterministic functions of ``(seed, start_batch)``: the
element order comes from a seeded shuffle, and every random augmentation draws a
stateless seed from ``(seed, global example index)``. Resuming at ``start_batch`` skips
the serialized (still undecoded) records already consumed, so an interrupted run sees
exactly the batches an uninterrupted one would.

Multi-host, topology-independent: every training stream is defined as a sequence of
*global* batches, identical whatever the number of processes and devices. Every process
builds the same global stream (the whole split, the same seeded shuffle, the same global
example indices, so the same augmentation seeds) and keeps only its rows
``[i * b, (i + 1) * b)`` of each global batch (``b = global_batch // process_count``,
:func:`keep_process_rows`), before decoding: each process decodes and augments only its own
examples, but reads and shuffles the whole stream of serialized records. One process with
four devices and two processes with two devices each therefore train on the same global
batches, and a checkpoint written by one topology resumes exactly on another. Every
builder takes ``process_index`` / ``process_count`` (default: ``jax.process_index()`` /
``jax.process_count()``) so that the slicing can be tested in one process.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from jfr.data import augment

AUTOTUNE = tf.data.AUTOTUNE
STILL_FEATURES = (
  "image",
  "label",
  "attributes",
  "landmarks",
  "segmentation",
  "occluder_mask",
  "video_id",
  "frame_index",
)


# ----------------------------------------------------------------------------- basics


def to_model_range(images: tf.Tensor) -> tf.Tensor:
  """uint8 images [..., H, W, 3] -> float32 in [-1, 1]."""
  return tf.cast(images, tf.float32) * (2.0 / 255.0) - 1.0


def to_model_range_np(images: np.ndarray) -> np.ndarray:
  """NumPy twin of :func:`to_model_range`: uint8 images -> float32 in [-1, 1]."""
  return np.asarray(images, np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def from_model_range(images: np.ndarray) -> np.ndarray:
  """float images in [-1, 1] -> uint8 [0, 255] (NumPy; for figures)."""
  return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def numpy_batches(ds: tf.data.Dataset) -> Any:
  """A tf.data dataset as an iterator of NumPy pytrees."""
  return iter(tfds.as_numpy(ds))


def prepare_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Returns the tfds builder ``name`` (e.g. ``'synthetic_faces/small'``), prepared.

  ``download_and_prepare`` is a no-op when the data already exist in ``data_dir``;
  ``synthetic_faces`` renders locally with no network access. A data set written by
  ``python -m jfr.prepare`` (``<data_dir>/<name>/``) is opened read-only.
  """
  import jfr.data  # noqa: F401  (registers synthetic_faces)

  if data_dir is not None and not str(data_dir).strip():
    raise ValueError("data_dir is an empty string; pass None for the tfds default or a path")
  from jfr.data import dataset_facts  # pylint: disable=g-import-not-at-top

  prepared = dataset_facts.prepared_dataset_dir(data_dir, name)
  if prepared is not None:  # written by `python -m jfr.prepare`
    return tfds.builder_from_directory(prepared)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:  # pytype: disable=module-attr
    raise ValueError(f"dataset name {name!r} is not a registered tfds builder: {e}") from e
  builder.download_and_prepare()
  return builder


def process_slot(
  process_index: int | None = None, process_count: int | None = None
) -> tuple[int, int]:
  """``(process_index, process_count)``, each defaulting to JAX's (ValueError if out of range)."""
  count = jax.process_count() if process_count is None else int(process_count)
  index = jax.process_index() if process_index is None else int(process_index)
  if count < 1 or not 0 <= index < count:
    raise ValueError(
      f"process_index={index}, process_count={count}: expected 0 <= process_index < process_count"
    )
  return index, count


def host_batch_size(global_batch_size: int, process_count: int | None = None) -> int:
  """The per-process share of a global batch (ValueError if it does not divide)."""
  count = jax.process_count() if process_count is None else int(process_count)
  if global_batch_size <= 0 or global_batch_size % count:
    raise ValueError(
      f"batch_size={global_batch_size} must be a positive multiple of "
      f"the number of processes ({count})"
    )
  return global_batch_size // count


def split_info(builder: tfds.core.DatasetBuilder, split: str):
  """tfds' info of ``split``: a stored split name, or tfds' split syntax over them
  (``"video+video_extra"``, ``"test[:50%]"``). Raises ``ValueError`` naming the split and
  the stored ones when it does not resolve."""
  try:
    return builder.info.splits[split]
  except (KeyError, ValueError, AssertionError) as e:
    raise ValueError(
      f"split {split!r} not in dataset {builder.info.full_name}; "
      f"available: {sorted(builder.info.splits)} (and tfds' 'a+b' / 'a[:n]' forms over them)"
    ) from e


def _read(
  builder: tfds.core.DatasetBuilder,
  split: str,
  *,
  per_process: bool,
  features: Sequence[str] | None = None,
  skip_image_decoding: bool = False,
) -> tf.data.Dataset:
  """Reads a split in its stored order (no file shuffling: determinism)."""
  split_info(builder, split)
  if per_process:
    split = tfds.split_for_jax_process(split, drop_remainder=True)
  decoders = {"image": tfds.decode.SkipDecoding()} if skip_image_decoding else None
  ds = builder.as_dataset(
    split=split,
    shuffle_files=False,
    decoders=decoders,
    read_config=tfds.ReadConfig(shuffle_seed=0, interleave_cycle_length=1),
  )
  if features is not None:
    missing = [f for f in features if f not in builder.info.features]
    if missing:
      raise ValueError(
        f"features {missing} not in dataset {builder.info.full_name}; "
        f"available: {sorted(builder.info.features)}"
      )
    ds = ds.map(lambda ex: {k: ex[k] for k in features}, num_parallel_calls=AUTOTUNE)
  return ds


def keep_process_rows(
  ds: tf.data.Dataset, global_batch_size: int, process_index: int, process_count: int
) -> tf.data.Dataset:
  """This process's rows of a global stream of ``(global example index, example)`` elements.

  The global stream's batch ``s`` is its elements ``[s * B, (s + 1) * B)`` (``B =
  global_batch_size``); process ``i`` of ``n`` keeps rows ``[i * b, (i + 1) * b)`` of each
  (``b = B / n``), i.e. the elements whose index ``k`` has ``(k // b) % n == i``. The
  stream must start at a multiple of ``B`` (``skip(start_batch * B)``). Batching the result
  by ``b`` gives this process's share of each global batch, in order; with one process the
  stream is returned unchanged.
  """
  b = host_batch_size(global_batch_size, process_count)
  if process_count == 1:
    return ds
  return ds.filter(lambda k, _: tf.equal((k // b) % process_count, process_index))


def _example_seed(seed: int, index: tf.Tensor, salt: int = 0) -> tf.Tensor:
  """A stateless-RNG seed [2] for one example, a pure function of (seed, index, salt)."""
  index = tf.cast(index, tf.int64)
  return tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + salt, index])


# ---------------------------------------------------------------------- augmentation


def augment_image(image: tf.Tensor, seed: tf.Tensor, options: Mapping[str, Any]) -> tf.Tensor:
  """The training augmentation of one float [-1, 1] image (config ``augment`` fields).

  ``options``: ``flip`` (bool), ``brightness``, ``contrast``, ``saturation`` (jitter
  strengths, 0 disables), ``motion_blur_prob`` and ``motion_blur_max_size`` (the FAN
  paper: up to 9 px with p = 0.5). Each op draws its own stateless sub-seed from ``seed``.
  """
  seeds = tf.random.experimental.stateless_split(seed, 3)
  if options.get("flip", False):
    image = augment.random_flip(image, seeds[0])
  if any(options.get(k, 0.0) for k in ("brightness", "contrast", "saturation")):
    image = augment.color_jitter(
      image,
      seeds[1],
      brightness=options.get("brightness", 0.0),
      contrast=options.get("contrast", 0.0),
      saturation=options.get("saturation", 0.0),
    )
  if options.get("motion_blur_prob", 0.0) > 0:
    image = augment.motion_blur(
      image,
      seeds[2],
      max_size=options.get("motion_blur_max_size", 9),
      prob=options["motion_blur_prob"],
    )
  return image


# ------------------------------------------------------------------------ image batches


def image_batches(
  builder: tfds.core.DatasetBuilder,
  split: str,
  batch_size: int,
  *,
  seed: int,
  start_batch: int = 0,
  features: Sequence[str] = ("image", "label", "attributes"),
  augment_options: Mapping[str, Any] | None = None,
  shuffle_buffer: int = 10_000,
  process_index: int | None = None,
  process_count: int | None = None,
) -> tf.data.Dataset:
  """Infinite shuffled training batches of still images.

  Args:
    builder: a prepared tfds builder with the ``synthetic_faces`` features.
    split: e.g. ``'train'``.
    batch_size: the *global* batch size; each process yields its share.
    seed: shuffle and augmentation seed.
    start_batch: number of batches already consumed (resume position).
    features: which features to carry (``image`` is always converted to float [-1, 1]).
    augment_options: see :func:`augment_image`; ``None`` disables augmentation.
    shuffle_buffer: examples in the shuffle buffer.
    process_index, process_count: which share of each global batch to yield (default:
      JAX's); see :func:`keep_process_rows`.

  Returns:
    Dataset of dicts: ``image`` float32 [b, H, W, 3] plus the other requested features,
    batched with ``drop_remainder=True`` (b = per-process batch): rows ``[i * b, (i + 1) *
    b)`` of global batch ``start_batch, start_batch + 1, ...``.
  """
  index, count = process_slot(process_index, process_count)
  b = host_batch_size(batch_size, count)
  if "image" not in features:
    raise ValueError(f"features must include 'image', got {features}")
  ds = _read(builder, split, per_process=False, features=features, skip_image_decoding=True)
  ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
  ds = ds.enumerate().skip(start_batch * batch_size)  # global example indices
  ds = keep_process_rows(ds, batch_size, index, count)  # before decoding
  image_feature = builder.info.features["image"]

  def prepare(index, ex):
    ex = dict(ex)
    ex["image"] = to_model_range(image_feature.decode_example(ex["image"]))
    if augment_options:
      ex["image"] = augment_image(ex["image"], _example_seed(seed, index), augment_options)
    return ex

  ds = ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
  return ds.batch(b, drop_remainder=True).prefetch(AUTOTUNE)


def eval_batches(
  builder: tfds.core.DatasetBuilder,
  split: str,
  batch_size: int,
  *,
  features: Sequence[str] = ("image", "label"),
  per_process: bool = False,
  model_range: bool = True,
) -> tf.data.Dataset:
  """One ordered pass over a split in fixed-size batches with a ``valid`` mask.

  The last batch is padded with zeros up to ``batch_size`` and ``valid`` [b] marks the
  real rows, so a jitted feature extractor compiles once. ``per_process=False`` (default)
  reads the whole split on every process (evaluation sets are small). ``model_range=False``
  keeps the images uint8 (for :data:`jfr.eval.embedding.EmbedFn`).
  """
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  ds = _read(builder, split, per_process=per_process, features=features)
  convert = to_model_range if model_range else (lambda image: image)
  ds = ds.map(
    lambda ex: {**ex, "image": convert(ex["image"]), "valid": tf.constant(True)},
    num_parallel_calls=AUTOTUNE,
  )
  ds = ds.batch(batch_size)

  def pad(batch):
    n = tf.shape(batch["valid"])[0]

    def pad_one(x):
      paddings = [[0, batch_size - n]] + [[0, 0]] * (len(x.shape) - 1)
      return tf.pad(x, paddings)

    return {k: pad_one(v) for k, v in batch.items()}

  return ds.map(pad).prefetch(AUTOTUNE)


def load_arrays(
  builder: tfds.core.DatasetBuilder, split: str, features: Sequence[str] = ("image", "label")
) -> dict[str, np.ndarray]:
  """A whole split as NumPy arrays (stored order; images stay uint8). For small sets."""
  ds = _read(builder, split, per_process=False, features=features).batch(1024)
  parts = [b for b in tfds.as_numpy(ds)]
  if not parts:
    raise ValueError(f"split {split!r} of {builder.info.full_name} is empty")
  return {k: np.concatenate([p[k] for p in parts]) for k in features}


# -------------------------------------------------------------------------- set batches


def group_videos(frames: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Groups per-frame arrays (``image``, ``label``, ``video_id``, ``frame_index``) by video.

  Returns ``frames`` uint8 [V, T_max, H, W, 3] (zero padded), ``lengths`` [V],
  ``labels`` [V], ``video_ids`` [V], with frames of each video in ``frame_index`` order.
  """
  vid = np.asarray(frames["video_id"])
  if vid.size == 0:
    raise ValueError("group_videos got no frames")
  if np.any(vid < 0):
    raise ValueError(f"{int(np.sum(vid < 0))} frames have video_id -1 (stills); pass a video split")
  order = np.lexsort((np.asarray(frames["frame_index"]), vid))
  vid_sorted = vid[order]
  video_ids, starts, lengths = np.unique(vid_sorted, return_index=True, return_counts=True)
  labels = np.asarray(frames["label"])[order][starts]
  per_video_labels = np.asarray(frames["label"])[order]
  if np.any(per_video_labels != np.repeat(labels, lengths)):
    raise ValueError("a video's frames carry more than one identity label")
  images = np.asarray(frames["image"])[order]
  t_max = int(lengths.max())
  out = np.zeros((len(video_ids), t_max) + images.shape[1:], images.dtype)
  slot = np.arange(len(vid_sorted)) - np.repeat(starts, lengths)
  out[np.repeat(np.arange(len(video_ids)), lengths), slot] = images
  return {
    "frames": out,
    "lengths": lengths.astype(np.int32),
    "labels": labels,
    "video_ids": video_ids,
  }


def _label_blocks(
  labels: np.ndarray, needed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Sorts stills by label; returns (order, start[label], count[label]) as dense tables."""
  if labels.size == 0:
    raise ValueError("the stills pool for positives/negatives is empty")
  order = np.argsort(labels, kind="stable")
  num = int(max(labels.max(), needed.max())) + 1
  count = np.bincount(labels, minlength=num)
  start = np.concatenate([[0], np.cumsum(count)[:-1]])
  missing = np.unique(needed[count[needed] == 0])
  if missing.size:
    raise ValueError(
      f"identities {missing[:10].tolist()} (of {missing.size}) have videos "
      "but no still image for the positive; every identity needs >= 1"
    )
  if count.max() == labels.size:
    raise ValueError("the stills pool holds a single identity; negatives need another")
  return order, start, count


def set_batches(
  videos: Mapping[str, np.ndarray],
  stills: Mapping[str, np.ndarray],
  batch_size: int,
  set_size: int,
  *,
  seed: int,
  start_batch: int = 0,
  min_set_size: int | None = None,
  augment_options: Mapping[str, Any] | None = None,
  process_index: int | None = None,
  process_count: int | None = None,
) -> tf.data.Dataset:
  """Infinite batches of aggregation sets (the FAN's training input).

  Each example: ``frames`` float32 [N, H, W, 3] (distinct frames of one video in time
  order, zero-padded beyond the set's length), ``mask`` bool [N], ``label`` (identity),
  ``positive`` [H, W, 3] (a still of the same identity, i.e. another capture),
  ``negative`` [H, W, 3] and ``negative_label`` (a still of another identity).

  Args:
    videos: output of :func:`group_videos` (uint8 frames in memory).
    stills: ``image`` uint8 [M, H, W, 3] and ``label`` [M]: the positive/negative pool.
    batch_size: global batch size (each process yields its rows of each global batch).
    set_size: N, the padded set length.
    seed: RNG seed; the example at global index ``k`` (row ``k % B`` of global batch
      ``k // B``) is a pure function of (seed, k), whatever the number of processes.
    start_batch: resume position.
    min_set_size: if given, each set's length is uniform in [min_set_size, N]
      (bounded by the video's length); default: min(N, video length).
    augment_options: per-frame (and positive/negative) augmentation, see
      :func:`augment_image`.
    process_index, process_count: which share of each global batch to yield (default:
      JAX's).
  """
  if set_size <= 0:
    raise ValueError(f"set_size N must be >= 1, got {set_size}")
  if min_set_size is not None and not 1 <= min_set_size <= set_size:
    raise ValueError(f"min_set_size must be in [1, {set_size}], got {min_set_size}")
  p_index, p_count = process_slot(process_index, process_count)
  b = host_batch_size(batch_size, p_count)
  frames = np.asarray(videos["frames"])
  lengths = np.asarray(videos["lengths"], np.int32)
  labels = np.asarray(videos["labels"], np.int64)
  still_images = np.asarray(stills["image"])
  still_labels = np.asarray(stills["label"], np.int64)
  if frames.shape[2:] != still_images.shape[1:]:
    raise ValueError(
      f"video frames {frames.shape[2:]} and stills {still_images.shape[1:]} differ in image shape"
    )
  order, start, count = _label_blocks(still_labels, labels)
  still_images = still_images[order]
  t_max = frames.shape[1]
  num_videos, num_stills = len(labels), len(still_labels)
  seed = seed * 7919  # (was + jax.process_index(): one process keeps its stream)

  frames_t = tf.constant(frames)
  lengths_t, labels_t = tf.constant(lengths), tf.constant(labels)
  stills_t, start_t, count_t = tf.constant(still_images), tf.constant(start), tf.constant(count)
  still_labels_t = tf.constant(still_labels[order])

  def make(index):
    s = tf.random.experimental.stateless_split(_example_seed(seed, index, salt=1), 5)
    v = tf.random.stateless_uniform([], s[0], 0, num_videos, dtype=tf.int32)
    length = lengths_t[v]
    hi = tf.minimum(length, set_size)
    if min_set_size is None:
      n = hi
    else:
      lo = tf.minimum(min_set_size, hi)
      n = tf.random.stateless_uniform([], s[1], lo, hi + 1, dtype=tf.int32)
    # n distinct real frames, drawn at random, then put in time order (mask first n).
    k = min(set_size, t_max)
    keys = tf.random.stateless_uniform([t_max], s[2])
    keys = tf.where(tf.range(t_max) < length, keys, 2.0)  # padding frames sort last
    perm = tf.argsort(keys)[:k]
    selected = tf.range(k) < n
    order = tf.argsort(tf.where(selected, perm, t_max + perm))
    idx = tf.pad(tf.gather(perm, order), [[0, set_size - k]])
    mask = tf.pad(tf.gather(selected, order), [[0, set_size - k]])
    set_frames = to_model_range(tf.gather(frames_t[v], idx))
    set_frames = tf.where(mask[:, None, None, None], set_frames, 0.0)
    label = labels_t[v]
    u = tf.random.stateless_uniform([2], s[3])
    pos = start_t[label] + tf.cast(u[0] * tf.cast(count_t[label], tf.float32), tf.int64)
    pos = tf.minimum(pos, start_t[label] + count_t[label] - 1)
    others = num_stills - count_t[label]
    neg = (
      start_t[label]
      + count_t[label]
      + tf.minimum(tf.cast(u[1] * tf.cast(others, tf.float32), tf.int64), others - 1)
    ) % num_stills
    ex = {
      "frames": set_frames,
      "mask": mask,
      "label": label,
      "positive": to_model_range(stills_t[pos]),
      "negative": to_model_range(stills_t[neg]),
      "negative_label": still_labels_t[neg],
    }
    if augment_options:
      aug_seeds = tf.random.experimental.stateless_split(s[4], set_size + 2)
      ex["frames"] = tf.stack(
        [augment_image(ex["frames"][i], aug_seeds[i], augment_options) for i in range(set_size)]
      )
      ex["frames"] = tf.where(mask[:, None, None, None], ex["frames"], 0.0)
      ex["positive"] = augment_image(ex["positive"], aug_seeds[set_size], augment_options)
      ex["negative"] = augment_image(ex["negative"], aug_seeds[set_size + 1], augment_options)
    return ex

  # Local example j of this process is row p_index * b + j % b of global batch j // b.
  ds = tf.data.Dataset.range(start_batch * b, np.iinfo(np.int64).max)
  ds = ds.map(lambda j: (j // b) * batch_size + p_index * b + j % b)
  ds = ds.map(make, num_parallel_calls=AUTOTUNE, deterministic=True)
  return ds.batch(b, drop_remainder=True).prefetch(AUTOTUNE)


# -------------------------------------------------------------------- occlusion pairs


def occlusion_pair_batches(
  builder: tfds.core.DatasetBuilder,
  split: str,
  batch_size: int,
  *,
  seed: int,
  start_batch: int = 0,
  mode: str = "static",
  fill: str = "black",
  augment_options: Mapping[str, Any] | None = None,
  shuffle_buffer: int = 10_000,
  process_index: int | None = None,
  process_count: int | None = None,
) -> tf.data.Dataset:
  """Infinite batches of (clean, occluded) pairs sharing one semantic occluder per batch.

  One rectangle is placed on the frontal template face per global batch
  (``mode='static'``: 32x12 at 96 px scale; ``'dynamic'``: sides in [12, 32]) and warped
  to every face through barycentric coordinates of the 68-landmark mesh
  (:func:`jfr.data.augment.occlude_batch`); ``fill`` is ``'black'`` (BlaS) or ``'noise'``
  (GauD). Flip augmentation is not applied (it would break the landmark-based warp);
  colour jitter is, before occlusion.

  With several processes each yields its rows of every global batch (see
  :func:`image_batches`); the rectangle is drawn from the global batch index, and the
  ``'noise'`` fill is drawn for the whole global batch and sliced, so the pairs do not
  depend on the number of processes.

  Returns dicts: ``image`` and ``occluded`` float32 [b, H, W, 3], ``occlusion_mask`` bool
  [b, H, W], ``label`` [b], ``landmarks`` [b, 68, 2].
  """
  if mode not in ("static", "dynamic"):
    raise ValueError(f"mode must be 'static' or 'dynamic', got {mode!r}")
  if fill not in ("black", "noise"):
    raise ValueError(f"fill must be 'black' or 'noise', got {fill!r}")
  opts = dict(augment_options or {})
  opts["flip"] = False
  p_index, p_count = process_slot(process_index, process_count)
  b = host_batch_size(batch_size, p_count)
  ds = image_batches(
    builder,
    split,
    batch_size,
    seed=seed,
    start_batch=start_batch,
    features=("image", "label", "landmarks"),
    augment_options=opts,
    shuffle_buffer=shuffle_buffer,
    process_index=p_index,
    process_count=p_count,
  )
  image_size = builder.info.features["image"].shape[0]
  template = augment.default_template_landmarks(image_size)

  def occlude(batch_index, batch):
    batch_seed = _example_seed(seed, batch_index + start_batch, salt=2)
    images, landmarks = batch["image"], batch["landmarks"]
    if fill == "noise" and p_count > 1:  # the noise of the global batch, then our rows
      before, after = p_index * b, (p_count - 1 - p_index) * b
      images = tf.pad(images, [[before, after], [0, 0], [0, 0], [0, 0]])
      filler = tf.constant(template, tf.float32)[None]
      landmarks = tf.concat(
        [tf.tile(filler, [before, 1, 1]), landmarks, tf.tile(filler, [after, 1, 1])], 0
      )
    occluded, mask = augment.occlude_batch(
      images, landmarks, batch_seed, mode=mode, fill=fill, template_landmarks=template
    )
    if fill == "noise" and p_count > 1:
      occluded, mask = occluded[before : before + b], mask[before : before + b]
    return {**batch, "occluded": occluded, "occlusion_mask": mask}

  return ds.enumerate().map(occlude, num_parallel_calls=AUTOTUNE, deterministic=True)
