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
* :mod:`jfr.eval.ijb_splits` builds the splits: IJB-A-like ones from labelled stills and
  video frames, or the real IJB-A split files mapped onto a user's descriptor array.
* :class:`Matcher`, :func:`evaluate_split`, :func:`evaluate_splits`: the 1:N figures
  (open-set TPIR@FPIR, closed-set TAR@FAR, Rank-k) and 1:1 TAR@FAR of one template
  matcher on every split, and their mean and standard deviation over splits.

No paper equation lives here; the matching itself is in :mod:`jfr.templates` and the
metric definitions in :mod:`jfr.eval.metrics`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

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
