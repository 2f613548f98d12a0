"""IJB-A-like template protocols on flat descriptors: splits, 1:N and 1:1 evaluation.

The template experiment of Ferrari, Berretti and Del Bimbo ("Discovering Identity
Specific Activation Patterns in Deep Descriptors for Template Based Face Recognition",
Sec. IV, Tables I and II) evaluates on IJB-A: ten splits, each with a 1:N search
protocol (gallery templates, probe templates, some probe subjects out of the gallery)
and a 1:1 verification protocol (template pairs). This module holds that protocol on a
flat descriptor array ``[N, k]``, whatever the descriptors come from:

* :class:`Templates`: templates as rows of the descriptor array + template ids +
  the subject of each template; :class:`ProtocolSplit`: one split (gallery, probe,
  verification templates and pairs).
* :func:`synthetic_splits`: IJB-A-like splits built from labelled stills and video
  frames (every template mixes both; a fraction of the probe subjects is not enrolled).
* :func:`read_descriptor_keys`, :func:`metadata_rows`, :func:`ijba_split`: the real
  IJB-A split files (read by :mod:`jfr.data.adapters.ijb`) mapped onto the rows of a
  user's descriptor array.
* :class:`Matcher`, :func:`evaluate_split`, :func:`evaluate_splits`: the 1:N figures
  (open-set TPIR@FPIR, closed-set TAR@FAR, Rank-k) and 1:1 TAR@FAR of one template
  matcher on every split, and their mean and standard deviation over splits.

No paper equation lives here; the matching itself is in :mod:`jfr.templates` and the
metric definitions in :mod:`jfr.eval.metrics`.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from jfr.data.adapters import ijb as ijb_files
from jfr.eval import metrics

# Side indices for the per-side random keys (jax.random.fold_in).
GALLERY, PROBE, VERIFY = 0, 1, 2


# --------------------------------------------------------------------------- templates


def _int_array(x: Any, name: str) -> np.ndarray:
  a = np.asarray(x)
  if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
    raise ValueError(f"{name} must be a 1-D integer array, got shape {a.shape} and dtype {a.dtype}")
  return a.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Templates:
  """Templates over the rows of a flat descriptor array ``[N, k]``.

  Attributes:
    rows: int64 ``[n]``, the descriptor row of each template member (a row may belong
      to several templates).
    template_ids: int64 ``[n]`` in ``[0, T)``, the template of each member; every
      template has at least one member.
    subjects: int64 ``[T]``, the subject (identity) of each template.
  """

  rows: np.ndarray
  template_ids: np.ndarray
  subjects: np.ndarray

  def __post_init__(self):
    rows = _int_array(self.rows, "rows")
    ids = _int_array(self.template_ids, "template_ids")
    subjects = _int_array(self.subjects, "subjects")
    if ids.shape != rows.shape:
      raise ValueError(
        f"template_ids must have one id per member row ({rows.size}), got {ids.size}"
      )
    if rows.size == 0 or subjects.size == 0:
      raise ValueError("rows and subjects must be non-empty")
    if rows.min() < 0:
      raise ValueError(f"rows must be >= 0, got {rows.min()}")
    if ids.min() < 0 or ids.max() >= subjects.size:
      raise ValueError(
        f"template_ids must lie in [0, {subjects.size}) (one subject per "
        f"template), got values in [{ids.min()}, {ids.max()}]"
      )
    empty = np.flatnonzero(np.bincount(ids, minlength=subjects.size) == 0)
    if empty.size:
      raise ValueError(
        f"template_ids: {empty.size} template(s) have no descriptors (first: {empty[0]})"
      )
    object.__setattr__(self, "rows", rows)
    object.__setattr__(self, "template_ids", ids)
    object.__setattr__(self, "subjects", subjects)

  @property
  def num_templates(self) -> int:
    return int(self.subjects.size)

  def sizes(self) -> np.ndarray:
    """int64 ``[T]``: members per template."""
    return np.bincount(self.template_ids, minlength=self.num_templates)


@dataclasses.dataclass(frozen=True)
class ProtocolSplit:
  """One IJB-A-like split.

  Attributes:
    gallery: 1:N gallery templates (one or more per enrolled subject).
    probe: 1:N probe templates; subjects absent from ``gallery`` are the open-set
      (non-mated) searches.
    verify: 1:1 templates.
    pairs: int64 ``[P, 2]``, indices into ``verify``'s templates of each comparison.
  """

  gallery: Templates
  probe: Templates
  verify: Templates
  pairs: np.ndarray

  def __post_init__(self):
    pairs = np.asarray(self.pairs)
    if (
      pairs.ndim != 2
      or pairs.shape[1] != 2
      or pairs.shape[0] == 0
      or not np.issubdtype(pairs.dtype, np.integer)
    ):
      raise ValueError(
        f"pairs must be a non-empty integer array [P, 2], got shape "
        f"{pairs.shape} and dtype {pairs.dtype}"
      )
    if pairs.min() < 0 or pairs.max() >= self.verify.num_templates:
      raise ValueError(
        f"pairs must index verify's {self.verify.num_templates} templates, "
        f"got values in [{pairs.min()}, {pairs.max()}]"
      )
    object.__setattr__(self, "pairs", pairs.astype(np.int64))

  def pair_labels(self) -> np.ndarray:
    """bool ``[P]``: whether the two templates of each pair share a subject."""
    s = self.verify.subjects
    return s[self.pairs[:, 0]] == s[self.pairs[:, 1]]

  def max_row(self) -> int:
    """The largest descriptor row any template uses."""
    return int(max(t.rows.max() for t in (self.gallery, self.probe, self.verify)))


# --------------------------------------------------------------- synthetic IJB-A splits


def _subject_media(
  labels: np.ndarray, video_ids: np.ndarray, frame_index: np.ndarray, frames_per_video: int | None
) -> dict[int, tuple[np.ndarray, list[np.ndarray]]]:
  """subject -> (still rows, [frame rows of each video in frame order, subsampled])."""
  media = {}
  for subject in np.unique(labels):
    own = labels == subject
    videos = []
    for v in np.unique(video_ids[own & (video_ids >= 0)]):
      rows = np.flatnonzero(own & (video_ids == v))
      rows = rows[np.argsort(frame_index[rows], kind="stable")]
      if frames_per_video is not None and rows.size > frames_per_video:
        rows = rows[
          np.floor((np.arange(frames_per_video) + 0.5) * rows.size / frames_per_video).astype(
            np.int64
          )
        ]
      videos.append(rows)
    media[int(subject)] = (np.flatnonzero(own & (video_ids < 0)), videos)
  return media


def _partition(
  subject: int, stills: np.ndarray, videos: list[np.ndarray], parts: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
  """Splits one subject's media into ``parts`` groups ``(still rows, frame rows)``.

  Stills are shuffled and dealt into ``parts`` near-equal groups. The videos are put in
  random order and their frames (each video in time order) cut into ``parts``
  contiguous chunks, so a group holds consecutive frames of one or two videos (with as
  many parts as equal-length videos, exactly one whole video each). ValueError (naming
  ``labels``) if a group would lack stills or frames.
  """
  frames = (
    np.concatenate([videos[i] for i in rng.permutation(len(videos))])
    if videos
    else np.zeros(0, np.int64)
  )
  if stills.size < parts or frames.size < parts:
    raise ValueError(
      f"labels: subject {subject} has {stills.size} stills and {frames.size} (kept) "
      f"video frames for {parts} templates that must each mix stills and frames; "
      f"needs >= {parts} of each"
    )
  return list(zip(np.array_split(rng.permutation(stills), parts), np.array_split(frames, parts)))


def _templates(groups: list[tuple[np.ndarray, np.ndarray]], subjects: list[int]) -> Templates:
  members = [np.concatenate(g) for g in groups]
  ids = np.repeat(np.arange(len(members)), [m.size for m in members])
  return Templates(np.concatenate(members), ids, np.asarray(subjects, np.int64))


def _positive_int(value: Any, name: str, low: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
  return int(value)


def synthetic_splits(
  labels: np.ndarray,
  video_ids: np.ndarray,
  frame_index: np.ndarray,
  *,
  num_splits: int,
  seed: int,
  out_of_gallery_fraction: float,
  probe_templates_per_subject: int,
  verify_templates_per_subject: int,
  verify_subjects: int | None = None,
  frames_per_video: int | None = None,
) -> list[ProtocolSplit]:
  """IJB-A-like 1:N and 1:1 protocols over labelled stills and video frames.

  For each split (NumPy generator seeded by ``(seed, split)``):

  * 1:N: ``round(out_of_gallery_fraction * S)`` of the S subjects are drawn as
    out-of-gallery. Each subject's media are partitioned into two halves (see below);
    an enrolled subject's first half is its gallery template; every subject's second
    half is partitioned again into ``probe_templates_per_subject`` probe templates
    (non-mated for out-of-gallery subjects, with the same sizes as mated ones). IJB-A
    has 112 gallery and 167 probe subjects per split (a third of the probe subjects out
    of the gallery) and several probe templates per subject.
  * 1:1: ``verify_subjects`` subjects (None: all), drawn at random, each partitioned into
    ``verify_templates_per_subject`` templates; the pairs are all unordered pairs of
    distinct templates (genuine when the subjects match).

  A partition deals the subject's shuffled stills into near-equal groups and cuts its
  video frames (videos in random order, each in time order) into as many contiguous
  chunks, so every template mixes stills and frames of one subject.

  Args:
    labels: ``[N]`` int subject of each descriptor row.
    video_ids: ``[N]`` int video of each row; negative for still images.
    frame_index: ``[N]`` int frame position of each row in its video (ignored for
      stills).
    num_splits: number of splits (IJB-A: 10).
    seed: protocol seed.
    out_of_gallery_fraction: in (0, 1); must leave >= 1 subject on both sides.
    probe_templates_per_subject: >= 1.
    verify_templates_per_subject: >= 2.
    verify_subjects: >= 2 subjects in the 1:1 protocol, or None for all.
    frames_per_video: keep this many evenly spaced frames of each video (None: all).

  Returns:
    ``num_splits`` :class:`ProtocolSplit` whose rows index the ``N`` inputs.
  """
  labels = _int_array(labels, "labels")
  video_ids = _int_array(video_ids, "video_ids")
  frame_index = _int_array(frame_index, "frame_index")
  if not labels.size:
    raise ValueError("labels must be non-empty")
  if video_ids.size != labels.size or frame_index.size != labels.size:
    raise ValueError(
      f"video_ids and frame_index must have one entry per label "
      f"({labels.size}), got {video_ids.size} and {frame_index.size}"
    )
  num_splits = _positive_int(num_splits, "num_splits")
  probes_per = _positive_int(probe_templates_per_subject, "probe_templates_per_subject")
  verify_per = _positive_int(verify_templates_per_subject, "verify_templates_per_subject", 2)
  if frames_per_video is not None:
    frames_per_video = _positive_int(frames_per_video, "frames_per_video")
  if not 0.0 < out_of_gallery_fraction < 1.0:
    raise ValueError(f"out_of_gallery_fraction must be in (0, 1), got {out_of_gallery_fraction}")
  media = _subject_media(labels, video_ids, frame_index, frames_per_video)
  subjects = np.array(sorted(media))
  num_out = int(round(out_of_gallery_fraction * subjects.size))
  if not 1 <= num_out <= subjects.size - 1:
    raise ValueError(
      f"out_of_gallery_fraction={out_of_gallery_fraction} of "
      f"{subjects.size} subjects gives {num_out} out-of-gallery subjects; "
      "need >= 1 in and >= 1 out of the gallery"
    )
  num_verify = (
    subjects.size
    if verify_subjects is None
    else _positive_int(verify_subjects, "verify_subjects", 2)
  )
  if num_verify > subjects.size:
    raise ValueError(f"verify_subjects must be <= the {subjects.size} subjects, got {num_verify}")
  splits = []
  for s in range(num_splits):
    rng = np.random.default_rng([seed, s])
    out = set(rng.choice(subjects, num_out, replace=False).tolist())
    gallery, gallery_subjects, probe, probe_subjects = [], [], [], []
    for subject in subjects:
      first, (stills, frames) = _partition(subject, *media[subject], 2, rng)
      if subject not in out:
        gallery.append(first)
        gallery_subjects.append(subject)
      probe += _partition(subject, stills, [frames], probes_per, rng)
      probe_subjects += [subject] * probes_per
    verify, verify_subject_ids = [], []
    for subject in np.sort(rng.choice(subjects, num_verify, replace=False)):
      verify += _partition(subject, *media[subject], verify_per, rng)
      verify_subject_ids += [subject] * verify_per
    i, j = np.triu_indices(len(verify), k=1)
    splits.append(
      ProtocolSplit(
        _templates(gallery, gallery_subjects),
        _templates(probe, probe_subjects),
        _templates(verify, verify_subject_ids),
        np.stack([i, j], axis=1),
      )
    )
  return splits


# ------------------------------------------------------------------------ real IJB-A


def read_descriptor_keys(path: str) -> tuple[np.ndarray, np.ndarray | None]:
  """Reads which image each row of a user's descriptor array is.

  A CSV with a header holding ``FILENAME`` (or IJB-A's ``FILE``) and optionally
  ``SUBJECT_ID``; row r (after the header) names descriptor row r. ``SUBJECT_ID``
  is needed when one file shows several subjects (IJB-A has such images: the
  metadata lists the file once per subject, each with its own face box).

  Returns:
    ``(filenames [n] str, subject_ids [n] int64 or None)``.
  """
  if not os.path.isfile(path):
    raise ValueError(f"keys path {path!r} does not exist")
  with open(path, newline="", encoding="utf-8-sig") as f:
    rows = [[c.strip() for c in r] for r in csv.reader(f) if any(c.strip() for c in r)]
  if len(rows) < 2:
    raise ValueError(f"{path}: expected a header and >= 1 row")
  header = [{"FILE": "FILENAME"}.get(h.upper(), h.upper()) for h in rows[0]]
  if "FILENAME" not in header or not set(header) <= {"FILENAME", "SUBJECT_ID"}:
    raise ValueError(f"{path}: header must be FILENAME (or FILE) [, SUBJECT_ID], got {rows[0]}")
  bad = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != len(header)]
  if bad:
    raise ValueError(f"{path}:{bad[0]}: expected {len(header)} fields")
  filenames = np.asarray([r[header.index("FILENAME")] for r in rows[1:]], dtype=str)
  if "SUBJECT_ID" not in header:
    return filenames, None
  try:
    subjects = np.asarray([int(r[header.index("SUBJECT_ID")]) for r in rows[1:]], np.int64)
  except ValueError as e:
    raise ValueError(f"{path}: column SUBJECT_ID: {e}") from e
  return filenames, subjects


def metadata_rows(
  metadata: ijb_files.TemplateMetadata, filenames: np.ndarray, subject_ids: np.ndarray | None = None
) -> np.ndarray:
  """The descriptor row of every metadata row, matched on file name (and subject).

  Args:
    metadata: one IJB-A metadata file (:func:`jfr.data.adapters.ijb.read_template_metadata`).
    filenames: ``[n]`` str, the file of each descriptor row.
    subject_ids: ``[n]`` int or None; when given, rows match on (file, subject).

  Returns:
    int64 ``[R]`` rows. ValueError for duplicate keys or metadata rows without one.
  """
  filenames = np.asarray(filenames, dtype=str)
  if filenames.ndim != 1:
    raise ValueError(f"filenames must be 1-D, got shape {filenames.shape}")
  if subject_ids is None:
    keys = filenames.tolist()
    wanted = metadata.filenames.tolist()
  else:
    subject_ids = _int_array(subject_ids, "subject_ids")
    if subject_ids.size != filenames.size:
      raise ValueError(
        f"subject_ids must have one entry per file name ({filenames.size}), got {subject_ids.size}"
      )
    keys = list(zip(filenames.tolist(), subject_ids.tolist()))
    wanted = list(zip(metadata.filenames.tolist(), metadata.subject_ids.tolist()))
  index = {}
  for r, key in enumerate(keys):
    if key in index:
      raise ValueError(f"filenames: key {key!r} names descriptor rows {index[key]} and {r}")
    index[key] = r
  missing = [key for key in wanted if key not in index]
  if missing:
    raise ValueError(
      f"{metadata.path}: {len(missing)} row(s) have no descriptor (first: "
      f"{missing[0]!r}); the keys must list every file of the protocol"
    )
  return np.asarray([index[key] for key in wanted], np.int64)


def templates_from_metadata(metadata: ijb_files.TemplateMetadata, rows: np.ndarray) -> Templates:
  """:class:`Templates` of one metadata file, given each metadata row's descriptor row."""
  return Templates(rows, metadata.template_index, metadata.template_subject_ids)


def ijba_split(
  search: ijb_files.SearchProtocol,
  verify: ijb_files.TemplateMetadata,
  comparisons: ijb_files.TemplatePairs,
  filenames: np.ndarray,
  subject_ids: np.ndarray | None = None,
) -> ProtocolSplit:
  """One real IJB-A split on a user's descriptor rows.

  Args:
    search: the split's ``search_gallery_k.csv`` / ``search_probe_k.csv``.
    verify: the split's ``verify_metadata_k.csv``.
    comparisons: the split's ``verify_comparisons_k.csv``; labels (if present) must
      agree with the metadata.
    filenames, subject_ids: the descriptor keys (:func:`read_descriptor_keys`).
  """
  ijb_files.pair_labels(comparisons, verify)  # ValueError on unknown ids / bad labels
  pairs = np.stack(
    [verify.indices_of(comparisons.template_ids1), verify.indices_of(comparisons.template_ids2)],
    axis=1,
  )
  return ProtocolSplit(
    templates_from_metadata(search.gallery, metadata_rows(search.gallery, filenames, subject_ids)),
    templates_from_metadata(search.probe, metadata_rows(search.probe, filenames, subject_ids)),
    templates_from_metadata(verify, metadata_rows(verify, filenames, subject_ids)),
    pairs,
  )


# ------------------------------------------------------------------------- evaluation


class Matcher(NamedTuple):
  """How templates are compared.

  Attributes:
    represent: ``(descriptors [n, k], template_ids [n], T, key) -> representation`` of
      T templates (e.g. masked descriptors, or one binary mask per template); ``key`` is
      a ``jax.random`` key for matchers that draw (random masks).
    distance: ``(representation_a, representation_b) -> [T_a, T_b]`` distances, lower =
      more similar.
  """

  represent: Callable[[np.ndarray, np.ndarray, int, jax.Array], Any]
  distance: Callable[[Any, Any], Any]


@dataclasses.dataclass(frozen=True)
class Targets:
  """Operating points reported (defaults: IJB-A, Table I of the paper).

  Attributes:
    fpirs: open-set 1:N TPIR at these FPIRs.
    identification_fars: closed-set 1:N TAR at these FARs.
    ranks: closed-set 1:N rank-k identification rates.
    verification_fars: 1:1 TAR at these FARs.
  """

  fpirs: Sequence[float] = (0.1, 0.01)
  identification_fars: Sequence[float] = (1e-4, 1e-5)
  ranks: Sequence[int] = (1, 10)
  verification_fars: Sequence[float] = (0.1, 0.01, 0.001)

  def names(self) -> list[str]:
    """Metric names in table order."""
    return (
      [f"TPIR@FPIR={f:g}" for f in self.fpirs]
      + [f"TAR@FAR={f:g}" for f in self.identification_fars]
      + [f"Rank-{r}" for r in self.ranks]
      + [f"1:1 TAR@FAR={f:g}" for f in self.verification_fars]
    )


def check_descriptors(descriptors: Any, splits: Sequence[ProtocolSplit]) -> np.ndarray:
  """Validates descriptors ``[N, k]`` (float, finite) against the splits' rows."""
  d = np.asarray(descriptors)
  if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 1:
    raise ValueError(f"descriptors must have shape [N, k] with N, k >= 1, got {d.shape}")
  if not np.issubdtype(d.dtype, np.floating):
    raise ValueError(f"descriptors must be floating point, got {d.dtype}")
  if not np.all(np.isfinite(d)):
    raise ValueError(
      f"descriptors must be finite; {int(np.sum(~np.isfinite(d)))} values are NaN or inf"
    )
  if not splits:
    raise ValueError("splits must be non-empty")
  top = max(s.max_row() for s in splits)
  if top >= d.shape[0]:
    raise ValueError(
      f"descriptors has {d.shape[0]} rows but the splits use row {top} (mismatched lengths)"
    )
  return d


def _side(matcher: Matcher, descriptors: np.ndarray, t: Templates, key: jax.Array) -> Any:
  return matcher.represent(descriptors[t.rows], t.template_ids, t.num_templates, key)


def _metric_values(
  matcher: Matcher, descriptors: np.ndarray, split: ProtocolSplit, key: jax.Array, targets: Targets
) -> dict[str, float]:
  gallery = _side(matcher, descriptors, split.gallery, jax.random.fold_in(key, GALLERY))
  probe = _side(matcher, descriptors, split.probe, jax.random.fold_in(key, PROBE))
  sim = -np.asarray(matcher.distance(probe, gallery), np.float64)
  probe_subjects, gallery_subjects = split.probe.subjects, split.gallery.subjects
  tpir = metrics.tpir_at_fpir(sim, probe_subjects, gallery_subjects, targets.fpirs)
  mated = np.isin(probe_subjects, gallery_subjects)
  closed = (sim[mated], probe_subjects[mated], gallery_subjects)
  tar = metrics.identification_tar_at_far(*closed, targets.identification_fars)
  # The CMC is 1 from rank G on (every mated probe ranks <= G), so rank r > G reads it at G.
  ranks = np.minimum(np.asarray(targets.ranks), sim.shape[1])
  rank_rates = metrics.cmc(*closed, ranks)
  verify = _side(matcher, descriptors, split.verify, jax.random.fold_in(key, VERIFY))
  dist = np.asarray(matcher.distance(verify, verify), np.float64)
  scores = -dist[split.pairs[:, 0], split.pairs[:, 1]]
  ver = metrics.tar_at_far(scores, split.pair_labels(), targets.verification_fars)
  values = np.concatenate([tpir, tar, rank_rates, ver])
  return {name: float(v) for name, v in zip(targets.names(), values)}


def evaluate_split(
  matcher: Matcher,
  descriptors: np.ndarray,
  split: ProtocolSplit,
  key: jax.Array,
  targets: Targets = Targets(),
) -> tuple[dict[str, float], list[str]]:
  """The IJB-A figures of one matcher on one split.

  1:N (similarity = -distance of probe vs gallery templates):

  * ``TPIR@FPIR=f``: open set, all probes (:func:`jfr.eval.metrics.tpir_at_fpir`,
    rank 1);
  * ``TAR@FAR=f``: the paper's closed-set identification TAR@FAR, over the mated
    probes only (every mated-probe x gallery comparison is a trial,
    :func:`jfr.eval.metrics.identification_tar_at_far`); "closed set" is read as
    leaving the out-of-gallery probes out;
  * ``Rank-r``: closed-set CMC over the mated probes (for r beyond the gallery size the
    CMC's value at the gallery size, which is 1).

  1:1: ``1:1 TAR@FAR=f`` over the split's pairs (:func:`jfr.eval.metrics.tar_at_far`).

  Args:
    matcher: the template representation and distance.
    descriptors: ``[N, k]`` float (validated by :func:`check_descriptors`).
    split: the protocol.
    key: ``jax.random`` key of this split (folded with ``GALLERY`` / ``PROBE`` /
      ``VERIFY`` for each side).
    targets: the operating points.

  Returns:
    ``({metric name: value}, notes)``: the notes are the metric warnings raised (e.g. a
    target FAR below ``1 / #impostor trials``, reported at zero false accepts).
  """
  descriptors = check_descriptors(descriptors, [split])
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", metrics.MetricWarning)
    values = _metric_values(matcher, descriptors, split, key, targets)
  notes = []
  for w in caught:
    if issubclass(w.category, metrics.MetricWarning):
      notes.append(str(w.message))
    else:
      warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
  return values, notes


def evaluate_splits(
  matcher: Matcher,
  descriptors: np.ndarray,
  splits: Sequence[ProtocolSplit],
  key: jax.Array,
  targets: Targets = Targets(),
) -> dict[str, Any]:
  """:func:`evaluate_split` on every split; mean and std (ddof = 0) over splits.

  Split ``s`` uses ``jax.random.fold_in(key, s)``.

  Returns:
    ``{"mean": {name: float}, "std": {name: float}, "per_split": [{name: float}],
    "notes": [str]}`` (notes deduplicated, in first-seen order).
  """
  descriptors = check_descriptors(descriptors, splits)
  per_split, notes = [], []
  for s, split in enumerate(splits):
    values, split_notes = evaluate_split(
      matcher, descriptors, split, jax.random.fold_in(key, s), targets
    )
    per_split.append(values)
    notes += [n for n in split_notes if n not in notes]
  names = targets.names()
  table = np.array([[v[n] for n in names] for v in per_split])
  return {
    "mean": dict(zip(names, table.mean(axis=0).tolist())),
    "std": dict(zip(names, table.std(axis=0).tolist())),
    "per_split": per_split,
    "notes": notes,
  }


def protocol_summary(splits: Sequence[ProtocolSplit]) -> dict[str, float]:
  """Sizes of the protocol (averaged over splits), for the report."""

  def mean(f: Callable[[ProtocolSplit], float]) -> float:
    return float(np.mean([f(s) for s in splits]))

  return {
    "splits": len(splits),
    "gallery_templates": mean(lambda s: s.gallery.num_templates),
    "probe_templates": mean(lambda s: s.probe.num_templates),
    "out_of_gallery_probes": mean(lambda s: np.sum(~np.isin(s.probe.subjects, s.gallery.subjects))),
    "gallery_template_size": mean(lambda s: s.gallery.sizes().mean()),
    "probe_template_size": mean(lambda s: s.probe.sizes().mean()),
    "verify_templates": mean(lambda s: s.verify.num_templates),
    "verify_template_size": mean(lambda s: s.verify.sizes().mean()),
    "genuine_pairs": mean(lambda s: s.pair_labels().sum()),
    "impostor_pairs": mean(lambda s: (~s.pair_labels()).sum()),
  }
