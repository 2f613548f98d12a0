"""The ``synthetic_faces`` tfds builder: the embedded default data set of jfr.

Generated locally (no download) by :mod:`jfr.data.face_renderer`. Identities are
disjoint between ``train`` and ``test``; labels are global (test labels continue after
the train labels), and so are video ids (``video_id = label * videos_per_identity + k``).

Splits:
  * ``train`` / ``test``: stills (``video_id = frame_index = -1``) with natural
    occluders (eyeglasses with probability 0.1, scarves with ``occluder_prob``).
  * ``train_video``: clips of the train identities (for training set aggregators).
  * ``video``: clips of the test identities (YouTube-Faces-like evaluation).
  * ``video_extra`` (1.1.0): ``extra_test_videos_per_identity`` more clips per test identity
    (clip ``k >= videos_per_identity`` with the seeds ``video`` would use), video ids after
    all others. ``video+video_extra``: for ``small`` 400 clips, 600 same-identity pairs.
  Clips drift smoothly in pose, light and expression, have a fixed background and,
  with probability ``video_motion_blur_prob``, per-frame motion blur.

Canonical faces (version 1.1.0): every example has ``canonical_face`` (uint8 [S, S, 3])
and ``canonical_mask`` (bool [S, S], its face region), filled in the evaluation splits
``test``, ``video`` and ``video_extra`` only: the identity's canonical face
(:func:`jfr.data.face_renderer.canonical_face`: frontal, neutral, even light, no occluder,
blur or noise, flat grey background) at the framing (scale, shift, roll) of the still
itself, and for a video frame at its clip's mean framing (the same face in every frame
of a clip). In ``train`` and ``train_video`` both are zeros: canonical faces are an
evaluation reference (quality of aggregated faces), never a training target. They read
no random stream, so every other feature of every example is byte-identical to version
1.0.0 (``synthetic_faces/<config>:1.0.0`` still loads a 1.0.0 data directory).

Examples are stored in tfds's default (key-hashed, deterministic) shuffled order: group
video frames by ``video_id`` and order them by ``frame_index``.

Determinism: identity ``i`` has the latent of ``SeedSequence([seed, i])``; still ``k`` of
identity ``i`` in split ``s`` has the nuisances of ``SeedSequence([seed, s, i, k])``;
clip ``k`` of identity ``i`` those of ``SeedSequence([seed, s, i, 1000 + k])``; sensor
noise depends only on ``seed`` and the image's ``noise_seed``. Preparing twice gives the
same examples in the same order (equal decoded arrays; the record bytes may differ in
protobuf field order), whatever the rendering chunk size or number of processes.

Rendering processes (this module is a little over 400 lines: builder and renderer jobs
belong together): a split of more than ``_PARALLEL_MIN_BATCHES`` chunks of
``_RENDER_BATCH`` images is rendered by worker processes (``spawn``: safe next to
TensorFlow's threads), in order; their number is the environment variable
``JFR_RENDER_PROCESSES`` (a positive integer; ``1`` renders in this process) or else the
CPUs this process may run on, at most 16. On 2 cores ``small`` prepares in 87 s instead
of 148 s (1.0.0; 1.1.0 adds about 27 CPU-s by per-example timings: 18 for ``video_extra``,
9 for canonical faces; side by side on a loaded 2-core machine, 1.1.0 took 161 s wall /
179 CPU-s and 1.0.0 took 184 s / 185 CPU-s, within the load's noise; 321 MB instead of
243 MB); ``default`` (about 150,000 images at 112 px) scales with the cores. A failed
pool (e.g. a script without an ``if __name__ == '__main__':`` guard, which spawned
workers re-run) is logged and the rest is rendered in this process.

Usage::

  import jfr.data  # registers the builder
  ds = tfds.load('synthetic_faces/tiny', split='train', data_dir=tmp_dir)
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import os
from typing import Iterator, Sequence

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from jfr.data import face_renderer

ATTRIBUTE_NAMES = face_renderer.ATTRIBUTE_NAMES
IDENTITY_ATTRIBUTES = face_renderer.IDENTITY_ATTRIBUTES
PART_NAMES = face_renderer.PART_NAMES
OCCLUDER_KINDS = face_renderer.OCCLUDER_KINDS
SPLIT_CODES = {"train": 0, "test": 1, "train_video": 2, "video": 3}
EXTRA_VIDEO_SPLIT = "video_extra"  # version 1.1.0: more clips of the test identities
EVALUATION_SPLITS = ("test", "video", EXTRA_VIDEO_SPLIT)  # canonical faces filled in
CANONICAL_VERSION = "1.1.0"  # first version with canonical_face / canonical_mask
EYEGLASSES_PROB = 0.1
_CLIP_OFFSET = 1000  # clip k uses index 1000 + k in its SeedSequence
_RENDER_BATCH = 64  # images rendered per call (memory bound only; same examples)
_PARALLEL_MIN_BATCHES = 16  # splits with fewer chunks render in this process
_MAX_PROCESSES = 16


@dataclasses.dataclass(eq=False)
class SyntheticFacesConfig(tfds.core.BuilderConfig):
  """Size and randomness of a synthetic face world.

  Attributes:
    image_size: height = width of the images.
    num_train_identities: identities (labels 0..n-1) of ``train`` / ``train_video``.
    num_test_identities: identities of ``test`` / ``video`` (labels continue).
    images_per_train_identity: stills per train identity.
    images_per_test_identity: stills per test identity.
    videos_per_identity: clips per identity (train and test).
    extra_test_videos_per_identity: further clips per test identity, in the split
      ``video_extra`` (version 1.1.0; 0: no such split).
    frames_per_video: frames per clip.
    occluder_prob: probability of a scarf on a still (eyeglasses: 0.1 on top).
    video_motion_blur_prob: probability that a clip has motion blur.
    seed: world seed.
  """

  image_size: int = 64
  num_train_identities: int = 400
  num_test_identities: int = 100
  images_per_train_identity: int = 16
  images_per_test_identity: int = 16
  videos_per_identity: int = 2
  extra_test_videos_per_identity: int = 2
  frames_per_video: int = 20
  occluder_prob: float = 0.1
  video_motion_blur_prob: float = 0.3
  seed: int = 0


class SyntheticFaces(tfds.core.GeneratorBasedBuilder):
  """Procedural faces with identities, attributes, landmarks, parts and videos."""

  VERSION = tfds.core.Version(CANONICAL_VERSION)
  SUPPORTED_VERSIONS = [tfds.core.Version("1.0.0")]  # loads; only VERSION is generated
  RELEASE_NOTES = {
    "1.0.0": "Initial release.",
    "1.1.0": "canonical_face and canonical_mask features (filled in test, video and "
    "video_extra; zeros in train and train_video); split video_extra (more clips of the test "
    "identities); every 1.0.0 feature of every example of the 1.0.0 splits is unchanged.",
  }
  BUILDER_CONFIGS = [
    SyntheticFacesConfig(
      name="tiny",
      description="32x32, 20 identities; for tests (seconds).",
      image_size=32,
      num_train_identities=14,
      num_test_identities=6,
      images_per_train_identity=4,
      images_per_test_identity=4,
      videos_per_identity=2,
      frames_per_video=4,
      occluder_prob=0.2,
      video_motion_blur_prob=0.5,
    ),
    SyntheticFacesConfig(
      name="small",
      description="64x64, 400 + 100 identities; CPU default.",
      image_size=64,
      num_train_identities=400,
      num_test_identities=100,
      images_per_train_identity=16,
      images_per_test_identity=16,
      videos_per_identity=2,
      frames_per_video=20,
    ),
    SyntheticFacesConfig(
      name="default",
      description="112x112, 2000 + 250 identities; for GPUs.",
      image_size=112,
      num_train_identities=2000,
      num_test_identities=250,
      images_per_train_identity=20,
      images_per_test_identity=20,
      videos_per_identity=2,
      frames_per_video=24,
    ),
  ]
  DEFAULT_CONFIG_NAME = "small"
  # tfds derives this from the package via `importlib_resources`, which is not among
  # jfr's requirements; the builder has no checksums file anyway.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    s = c.image_size
    metadata = tfds.core.MetadataDict(
      attribute_names=list(ATTRIBUTE_NAMES),
      identity_attribute_names=list(IDENTITY_ATTRIBUTES),
      part_names=list(PART_NAMES),
      occluder_kinds=list(OCCLUDER_KINDS),
      num_train_identities=c.num_train_identities,
      num_test_identities=c.num_test_identities,
      videos_per_identity=c.videos_per_identity,
      frames_per_video=c.frames_per_video,
      landmark_order="iBUG-68, (x, y) pixels, pixel centres at integers",
    )
    if self._canonical:
      metadata["extra_test_videos_per_identity"] = c.extra_test_videos_per_identity
    canonical = {}
    if self._canonical:
      canonical = {
        "canonical_face": tfds.features.Image(shape=(s, s, 3)),
        "canonical_mask": tfds.features.Tensor(shape=(s, s), dtype=np.bool_, encoding="zlib"),
      }
    return self.dataset_info_from_configs(
      description=__doc__,
      features=tfds.features.FeaturesDict(
        {
          **canonical,
          "image": tfds.features.Image(shape=(s, s, 3)),
          "label": tfds.features.ClassLabel(
            num_classes=c.num_train_identities + c.num_test_identities
          ),
          "attributes": tfds.features.Tensor(shape=(len(ATTRIBUTE_NAMES),), dtype=np.bool_),
          "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
          "segmentation": tfds.features.Tensor(shape=(s, s), dtype=np.uint8, encoding="zlib"),
          "occluder_mask": tfds.features.Tensor(shape=(s, s), dtype=np.bool_, encoding="zlib"),
          "video_id": tfds.features.Scalar(dtype=np.int64),
          "frame_index": tfds.features.Scalar(dtype=np.int64),
        }
      ),
      supervised_keys=("image", "label"),
      metadata=metadata,
    )

  @property
  def _canonical(self) -> bool:
    """Whether this version has the canonical-face features."""
    return self.version >= tfds.core.Version(CANONICAL_VERSION)

  def _split_generators(self, dl_manager):
    del dl_manager  # generated locally
    names = list(SPLIT_CODES)
    if self._canonical and self.builder_config.extra_test_videos_per_identity > 0:
      names.append(EXTRA_VIDEO_SPLIT)
    return {name: self._generate_examples(name) for name in names}

  def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
    c = self.builder_config
    if split in ("train", "train_video"):
      identities = np.arange(c.num_train_identities)
    else:
      identities = np.arange(c.num_train_identities, c.num_train_identities + c.num_test_identities)
    jobs = list(_jobs(c, split, identities))
    batches = [jobs[i : i + _RENDER_BATCH] for i in range(0, len(jobs), _RENDER_BATCH)]
    processes = render_processes() if len(batches) > _PARALLEL_MIN_BATCHES else 1
    examples = render_batches(c, split, batches, processes, canonical=self._canonical)
    if not self._canonical:
      yield from examples
      return
    # PNG-encode each canonical face once: zeros in training splits, once per clip in video
    feature = self.info.features["canonical_face"]
    zeros = feature.encode_example(np.zeros(feature.shape, np.uint8))
    last_video, last_png = None, None
    for key, ex in examples:
      if split not in EVALUATION_SPLITS:
        ex["canonical_face"] = zeros
      elif ex["video_id"] >= 0 and ex["video_id"] == last_video:
        ex["canonical_face"] = last_png
      else:
        ex["canonical_face"] = feature.encode_example(ex["canonical_face"])
        last_video, last_png = ex["video_id"], ex["canonical_face"]
      yield key, ex


def render_processes() -> int:
  """Rendering processes: ``$JFR_RENDER_PROCESSES`` or the usable CPUs (at most 16)."""
  value = os.environ.get("JFR_RENDER_PROCESSES")
  if value is None:
    return max(1, min(_MAX_PROCESSES, len(os.sched_getaffinity(0))))
  if not value.strip().isdigit() or int(value) < 1:
    raise ValueError(f"JFR_RENDER_PROCESSES: expected a positive integer, got {value!r}")
  return int(value)


def render_batches(
  c: SyntheticFacesConfig,
  split: str,
  batches: Sequence[list],
  processes: int,
  *,
  canonical: bool = True,
) -> Iterator[tuple[str, dict]]:
  """The examples of ``batches`` (chunks of :func:`_jobs`), in order.

  With ``processes > 1`` the chunks are rendered by that many spawned worker processes,
  at most ``2 * processes`` chunks ahead of the consumer (bounded memory); the examples
  are identical to rendering in this process. ``canonical``: add ``canonical_face``
  (uint8 array; zeros outside :data:`EVALUATION_SPLITS`) and ``canonical_mask``
  (version 1.1.0).
  """
  if processes < 1:
    raise ValueError(f"processes: expected >= 1, got {processes}")
  if processes == 1:
    for batch in batches:
      yield from _render_jobs(c, split, batch, canonical)
    return
  done = 0  # chunks yielded so far
  try:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
      pending = collections.deque()
      for batch in batches:
        pending.append(pool.submit(_render_chunk, c.seed, c.image_size, split, batch, canonical))
        if len(pending) >= 2 * processes:
          yield from pending.popleft().result()
          done += 1
      while pending:
        yield from pending.popleft().result()
        done += 1
  except concurrent.futures.process.BrokenProcessPool as error:
    # E.g. a script without an ``if __name__ == '__main__':`` guard, which spawned
    # workers re-run; the examples are the same either way.
    logging.warning(
      "synthetic_faces: rendering processes failed (%s); rendering the "
      "remaining %d of %d chunks in this process (set "
      "JFR_RENDER_PROCESSES=1 to skip the attempt)",
      error,
      len(batches) - done,
      len(batches),
    )
    for batch in batches[done:]:
      yield from _render_jobs(c, split, batch, canonical)


def _render_chunk(
  seed: int, image_size: int, split: str, batch: list, canonical: bool
) -> list[tuple[str, dict]]:
  """Worker side of :func:`render_batches` (module level, so that it pickles)."""
  return list(_render_jobs(_RenderSpec(seed, image_size), split, batch, canonical))


@dataclasses.dataclass(frozen=True)
class _RenderSpec:
  """The fields of a config that :func:`_render_jobs` reads."""

  seed: int
  image_size: int


def _jobs(c: SyntheticFacesConfig, split: str, identities: np.ndarray):
  """(identity, video_id, frame_index, nuisances of one image, canonical framing) for
  every example; the framing is the still's own or the clip's mean
  (:func:`face_renderer.clip_framing`), computed from the nuisances already drawn."""
  code = SPLIT_CODES["video" if split == EXTRA_VIDEO_SPLIT else split]
  vpi, extra = c.videos_per_identity, c.extra_test_videos_per_identity
  clips = range(vpi, vpi + extra) if split == EXTRA_VIDEO_SPLIT else range(vpi)
  first_extra_id = (c.num_train_identities + c.num_test_identities) * vpi
  for ident in identities:
    ident = int(ident)
    if split in ("train", "test"):
      per = c.images_per_train_identity if split == "train" else c.images_per_test_identity
      for k in range(per):
        rng = np.random.default_rng(np.random.SeedSequence([c.seed, code, ident, k]))
        nui = face_renderer.sample_nuisances(
          rng, 1, occluder_prob=c.occluder_prob, eyeglasses_prob=EYEGLASSES_PROB
        )
        yield ident, -1, k, nui, face_renderer.image_framing(nui)
    else:
      for k in clips:
        video_id = ident * vpi + k
        if k >= vpi:
          video_id = first_extra_id + (ident - c.num_train_identities) * extra + k - vpi
        rng = np.random.default_rng(np.random.SeedSequence([c.seed, code, ident, _CLIP_OFFSET + k]))
        clip = face_renderer.video_nuisances(
          rng,
          c.frames_per_video,
          eyeglasses_prob=EYEGLASSES_PROB,
          motion_blur_prob=c.video_motion_blur_prob,
        )
        framing = face_renderer.clip_framing(clip)
        for t in range(c.frames_per_video):
          yield (
            ident,
            video_id,
            t,
            {key: v[t : t + 1] for key, v in clip.items()},
            framing,
          )


def _render_jobs(c: SyntheticFacesConfig, split: str, batch, canonical: bool = True):
  idents = np.array([j[0] for j in batch])
  nui = {k: np.concatenate([j[3][k] for j in batch]) for k in batch[0][3]}
  out = face_renderer.render(
    face_renderer.identity_latents(c.seed, idents), nui, c.image_size, seed_or_rng=c.seed
  )
  faces = _canonical_faces(c, batch) if canonical and split in EVALUATION_SPLITS else None
  for i, (ident, video_id, index, *_) in enumerate(batch):
    key = f"{split}_{ident:06d}_{max(video_id, 0):07d}_{index:04d}"
    example = {
      "image": out["image"][i],
      "label": ident,
      "attributes": out["attributes"][i],
      "landmarks": out["landmarks"][i],
      "segmentation": out["segmentation"][i],
      "occluder_mask": out["occluder_mask"][i],
      "video_id": video_id,
      "frame_index": index if video_id >= 0 else -1,
    }
    if canonical:
      s = c.image_size
      example["canonical_face"] = faces["image"][i] if faces else np.zeros((s, s, 3), np.uint8)
      example["canonical_mask"] = faces["mask"][i] if faces else np.zeros((s, s), bool)
    yield key, example


def _canonical_faces(c: SyntheticFacesConfig, batch) -> dict[str, np.ndarray]:
  """Canonical ``image`` [n, S, S, 3] and ``mask`` [n, S, S] of the jobs of ``batch`` at
  their framing; the frames of one clip share one render."""
  keys = [(j[0], j[1]) if j[1] >= 0 else (j[0], -1, j[2]) for j in batch]
  first = {}  # key -> index of its first job, in order
  for i, key in enumerate(keys):
    first.setdefault(key, i)
  rows = list(first.values())
  framing = {k: np.concatenate([batch[i][4][k] for i in rows]) for k in batch[rows[0]][4]}
  faces = face_renderer.canonical_face(
    face_renderer.identity_latents(c.seed, np.array([batch[i][0] for i in rows])),
    c.image_size,
    framing=framing,
  )
  slot = {key: n for n, key in enumerate(first)}
  take = np.array([slot[key] for key in keys])
  return {"image": faces["image"][take], "mask": faces["mask"][take]}


def clip_canonical_faces(
  c: SyntheticFacesConfig, split: str, identities: np.ndarray
) -> dict[str, np.ndarray]:
  """The canonical face of every clip of ``identities`` in the video ``split``, in any split.

  The data set stores canonical faces only in :data:`EVALUATION_SPLITS`; this renders them
  for e.g. a validation subset of ``train_video`` identities (model selection on train
  identities: ``scripts/fan_validation.py``), exactly as the builder would.

  Returns:
    ``video_ids`` ``[V]`` (sorted), ``image`` uint8 ``[V, S, S, 3]``, ``mask`` bool ``[V, S, S]``.
  """
  if split not in ("train_video", "video", EXTRA_VIDEO_SPLIT):
    raise ValueError(f"split: expected a video split, got {split!r}")
  first = {}
  for job in _jobs(c, split, np.asarray(identities)):
    first.setdefault(job[1], job)
  video_ids = np.array(sorted(first))
  faces = _canonical_faces(c, [first[v] for v in video_ids])
  return {"video_ids": video_ids, **faces}
