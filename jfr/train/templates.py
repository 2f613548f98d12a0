"""The template experiment of Ferrari, Berretti and Del Bimbo: Tables I and II.

"Discovering Identity Specific Activation Patterns in Deep Descriptors for Template
Based Face Recognition", Sec. IV: on IJB-A (10 splits, 1:N and 1:1), templates are
matched with the min-mean cosine distance on

* Table I: the original descriptors, the descriptors masked to the m most active bins of
  their template's average (Eq. 1), and a random control that keeps m random bins;
* Table II: one binary mask of the m most active bins per template, matched by the
  cosine distance of masks.

The method itself is :mod:`jfr.templates`; the protocol :mod:`jfr.eval.ijb`. Modes:

* ``all``: trains the descriptor network (:func:`jfr.train.recognition.train` in
  ``<workdir>/backbone``; resumes from its checkpoints, does nothing when finished),
  then ``eval``;
* ``eval``: restores that network, extracts the descriptors of the test identities'
  stills (``dataset.test_split``) and video frames (``dataset.video_split``), builds
  IJB-A-like splits (:func:`jfr.eval.ijb.synthetic_splits`) and runs both tables;
* ``npy``: both tables on a user's descriptors (``descriptors.npy_path``, rows named by
  ``descriptors.keys_path``) with the real IJB-A split files (``config.ijba``).

Outputs: ``<workdir>/eval/templates.md`` (also logged) and ``templates.json`` (mean, std
and per-split values of every row), ``templates_<metric>.png`` (accuracy vs m).

Descriptor reading (``descriptors.kind``). The paper's descriptors are VGG-Face fc7
activations: un-normalised, post-ReLU (>= 0), a few bins highly active; "most active
bins" presumes that. The closest activations of our ResNet are its last conv map (the
output of a ReLU): ``'conv_flat'`` flattens it (k = h w c; the input of the embedding
layer under ``'flatten_fc'`` pooling) and ``'conv_gap'`` averages it over positions
(k = c). ``'embedding'`` is the trained embedding itself (signed after the final
BatchNorm; "most active" then means largest signed value).
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from jfr import templates
from jfr.data.adapters import ijb as ijb_files
from jfr.eval import ijb
from jfr.eval import plots
from jfr.train import common
from jfr.train import recognition

MODES = ("all", "eval", "npy")
DESCRIPTOR_KINDS = ("conv_flat", "conv_gap", "embedding")
_CONV_REDUCTIONS = {
  "conv_flat": lambda fmap: fmap.reshape(fmap.shape[0], -1),
  "conv_gap": lambda fmap: fmap.mean(axis=(1, 2)),
}


# ------------------------------------------------------------------------ descriptors


def backbone_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The descriptor network's config for :mod:`jfr.train.recognition` (same fields)."""
  derived = config.copy_and_resolve_references()
  derived.method = "recognition"
  return derived


def backbone_workdir(workdir: str | os.PathLike) -> Path:
  return Path(workdir) / "backbone"


def descriptor_function(
  config: ml_collections.ConfigDict, variables: dict
) -> Callable[[np.ndarray], np.ndarray]:
  """images ``[b, H, W, 3]`` in [-1, 1] -> descriptors ``[b, k]`` of ``descriptors.kind``."""
  kind = config.descriptors.kind
  if kind not in DESCRIPTOR_KINDS:
    raise ValueError(f"config.descriptors.kind={kind!r}; known: {DESCRIPTOR_KINDS}")
  backbone = recognition.inference_backbone(config)
  if kind == "embedding":
    return common.embed_function(backbone, variables)
  reduce = _CONV_REDUCTIONS[kind]
  apply = jax.jit(
    lambda v, x: reduce(backbone.apply(v, x, train=False, return_feature_map=True)[1])
  )
  return lambda images: np.asarray(apply(variables, images))


def synthetic_descriptors(
  config: ml_collections.ConfigDict, variables: dict
) -> dict[str, np.ndarray]:
  """Descriptors of the test identities' stills and video frames.

  Returns ``descriptors`` ``[N, k]`` float32 and ``label``, ``video_id`` (-1 for
  stills), ``frame_index`` ``[N]``: the stills of ``dataset.test_split`` followed by the
  frames of ``dataset.video_split``.
  """
  builder = common.dataset_builder(config)
  describe = descriptor_function(config, variables)
  features = ("image", "label", "video_id", "frame_index")
  parts = [
    common.extract_split_features(describe, builder, split, config.descriptors.batch_size, features)
    for split in (config.dataset.test_split, config.dataset.video_split)
  ]
  out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  out["descriptors"] = out.pop("embedding").astype(np.float32)
  return out


def synthetic_protocol(
  config: ml_collections.ConfigDict, data: dict[str, np.ndarray]
) -> list[ijb.ProtocolSplit]:
  """``config.protocol``'s IJB-A-like splits over :func:`synthetic_descriptors`' rows."""
  p = config.protocol
  return ijb.synthetic_splits(
    data["label"],
    data["video_id"],
    data["frame_index"],
    num_splits=p.num_splits,
    seed=p.seed,
    out_of_gallery_fraction=p.out_of_gallery_fraction,
    probe_templates_per_subject=p.probe_templates_per_subject,
    verify_templates_per_subject=p.verify_templates_per_subject,
    verify_subjects=p.verify_subjects,
    frames_per_video=p.frames_per_video,
  )


def npy_inputs(config: ml_collections.ConfigDict) -> tuple[np.ndarray, list[ijb.ProtocolSplit]]:
  """A user's descriptors and the real IJB-A splits (``config.descriptors``, ``config.ijba``)."""
  d = config.descriptors
  for field in ("npy_path", "keys_path"):
    if not d[field]:
      raise ValueError(f"config.descriptors.{field}: set it for --mode=npy")
  if not os.path.isfile(d.npy_path):
    raise ValueError(f"config.descriptors.npy_path: {d.npy_path!r} does not exist")
  descriptors = np.load(d.npy_path)
  filenames, subjects = ijb.read_descriptor_keys(d.keys_path)
  if descriptors.ndim != 2 or descriptors.shape[0] != filenames.size:
    raise ValueError(
      f"config.descriptors.npy_path: expected [n, k] descriptors with one "
      f"row per key of {d.keys_path} (n = {filenames.size}), got shape "
      f"{descriptors.shape}"
    )
  if not config.ijba.splits:
    raise ValueError("config.ijba.splits: expected at least one split number")
  splits = []
  for s in config.ijba.splits:
    path = lambda pattern: os.path.join(config.ijba.root, pattern.format(split=s))
    search = ijb_files.read_search_protocol(
      path(config.ijba.search_gallery), path(config.ijba.search_probe)
    )
    splits.append(
      ijb.ijba_split(
        search,
        ijb_files.read_template_metadata(path(config.ijba.verify_metadata)),
        ijb_files.read_template_pairs(path(config.ijba.verify_comparisons)),
        filenames,
        subjects,
      )
    )
  return descriptors, splits


# --------------------------------------------------------------------------- matchers


def _min_mean(block_size: int, a: tuple, b: tuple) -> np.ndarray:
  return np.asarray(templates.min_mean_distance(*a, *b, block_size=block_size))


def descriptor_matcher(block_size: int, m: int | None = None, random: bool = False) -> ijb.Matcher:
  """Min-mean matching of the original (m None), top-m masked (Eq. 1) or random-m
  masked descriptors."""

  def represent(desc, ids, num, key):
    if m is None:
      return desc, ids, num
    if random:
      masks = templates.random_masks(key, num, desc.shape[1], m)
    else:
      masks = templates.activation_masks(desc, ids, num, m)
    return templates.mask_descriptors(desc, ids, masks), ids, num

  return ijb.Matcher(represent, functools.partial(_min_mean, block_size))


def binary_mask_matcher(m: int) -> ijb.Matcher:
  """One binary mask of the m most active bins per template, cosine distance (Table II)."""
  return ijb.Matcher(
    lambda desc, ids, num, key: templates.activation_masks(desc, ids, num, m),
    templates.mask_distance,
  )


def clipped_ms(ms: Any, k: int, name: str) -> list[int]:
  """The distinct ``min(m, k)`` of a config's list of m, ascending (m >= 1 required)."""
  values = list(ms)
  if not values or any(
    isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1 for m in values
  ):
    raise ValueError(f"{name} must be a non-empty list of integers >= 1, got {ms!r}")
  return sorted({min(int(m), k) for m in values})


def experiment_rows(
  config: ml_collections.ConfigDict, k: int
) -> list[tuple[str, str, int, ijb.Matcher]]:
  """``(table, method, m, matcher)`` for every row of Tables I and II (``k``: bins)."""
  e = config.experiment
  rows = [("I", "original", k, descriptor_matcher(e.block_size))]
  masked = clipped_ms(e.masked_ms, k, "config.experiment.masked_ms")
  rows += [("I", "masked", m, descriptor_matcher(e.block_size, m)) for m in masked]
  rows += [("I", "random", m, descriptor_matcher(e.block_size, m, random=True)) for m in masked]
  rows += [
    ("II", "binary", m, binary_mask_matcher(m))
    for m in clipped_ms(e.binary_ms, k, "config.experiment.binary_ms")
  ]
  return rows


# ---------------------------------------------------------------------------- report


def targets_of(config: ml_collections.ConfigDict) -> ijb.Targets:
  p = config.protocol
  return ijb.Targets(
    tuple(p.fpirs), tuple(p.identification_fars), tuple(p.ranks), tuple(p.verification_fars)
  )


def _label(row: dict, k: int) -> str:
  if row["method"] == "original":
    return f"Original (m = k = {k})"
  name = {"masked": "Top-m masked", "random": "Random m", "binary": "Binary mask"}
  return f"{name[row['method']]}, m = {row['m']}" + (" (= k)" if row["m"] == k else "")


def _table(rows: list[dict], names: list[str], k: int) -> str:
  cells = [
    {"method": _label(r, k), **{n: f"{r['mean'][n]:.3f} ± {r['std'][n]:.3f}" for n in names}}
    for r in rows
  ]
  return common.markdown_table(cells, ["method"] + names)


def _one_to_n(names: list[str]) -> list[str]:
  return [n for n in names if not n.startswith("1:1")]


def _gain(row: dict, base: dict, names: list[str]) -> np.ndarray:
  """Per-split mean over ``names`` of ``row - base``: ``[splits]``."""
  return np.array(
    [np.mean([a[n] - b[n] for n in names]) for a, b in zip(row["per_split"], base["per_split"])]
  )


def paper_effects(rows: list[dict], names: list[str]) -> list[dict]:
  """The paper's qualitative claims, checked on these results.

  Each entry: the claim, the measured difference (mean over splits of the per-split
  difference, averaged over the named metric group), in how many splits it has the
  claimed sign, and a verdict: "yes" (the mean has the claimed sign and so do most
  splits), "mixed" (the mean does, most splits do not) or "no". "Best m" is the m with
  the highest mean 1:N figure. Rows with m = k (clipped) are left out: masking all bins
  is the original by construction.
  """
  one_n = _one_to_n(names)
  one_one = [n for n in names if n.startswith("1:1")]
  by = {(r["method"], r["m"]): r for r in rows}
  original = next(r for r in rows if r["method"] == "original")
  score = lambda r: np.mean([r["mean"][n] for n in one_n])
  masked = [r for r in rows if r["method"] == "masked" and r["m"] < original["m"]]
  binary = [r for r in rows if r["method"] == "binary" and r["m"] < original["m"]]
  effects = []

  def add(claim, diff, sign=1.0):
    agree = int(np.sum(sign * diff > 0))
    verdict = "no" if sign * diff.mean() <= 0 else ("yes" if 2 * agree > diff.size else "mixed")
    effects.append(
      {
        "claim": claim,
        "difference": float(diff.mean()),
        "splits_with_claimed_sign": agree,
        "splits": int(diff.size),
        "verdict": verdict,
      }
    )

  if masked:
    best = max(masked, key=score)
    add(
      f"Table I: top-m masking (best m = {best['m']}) beats the original descriptors on 1:N",
      _gain(best, original, one_n),
    )
    add(
      f"Table I: the 1:N gain of masking (m = {best['m']}) exceeds its 1:1 gain",
      _gain(best, original, one_n) - _gain(best, original, one_one),
    )
    random = [(by[("random", r["m"])], r) for r in masked if ("random", r["m"]) in by]
    diff = np.mean([_gain(rnd, top, names) for rnd, top in random], axis=0)
    add(
      "Table I: random masks are worse than top-m masks of the same m (all metrics)",
      diff,
      sign=-1.0,
    )
  if binary:
    best_binary = max(binary, key=score)
    add(
      f"Table II: binary masks (best m = {best_binary['m']}) beat the original descriptors on 1:N",
      _gain(best_binary, original, one_n),
    )
    if masked:
      add(
        f"Table II vs I: binary masks (m = {best_binary['m']}) beat the best masked "
        f"descriptors (m = {best['m']}) on 1:N",
        _gain(best_binary, best, one_n),
      )
  return effects


def _effects_table(effects: list[dict]) -> str:
  cells = [
    {
      "claim": e["claim"],
      "difference": f"{e['difference']:+.4f}",
      "splits": f"{e['splits_with_claimed_sign']}/{e['splits']}",
      "reproduced": e["verdict"],
    }
    for e in effects
  ]
  return common.markdown_table(cells, ["claim", "difference", "splits", "reproduced"])


def _markdown(
  source: str,
  k: int,
  summary: dict,
  rows: list[dict],
  names: list[str],
  effects: list[dict],
  notes: list[str],
) -> str:
  """The report: protocol sizes, Tables I and II, the paper's effects, metric notes."""
  original = [r for r in rows if r["method"] == "original"]
  sections = [
    f"# Identity-specific activation patterns ({source}; k = {k})",
    "Protocol (means over splits): "
    + ", ".join(f"{key} {value:.1f}" for key, value in summary.items()),
    "## Table I: masked descriptors (mean ± std over splits)",
    _table([r for r in rows if r["table"] == "I"], names, k),
    "## Table II: binary masks in place of the descriptors (mean ± std over splits)",
    _table(original + [r for r in rows if r["table"] == "II"], names, k),
    "## The paper's effects on these descriptors",
    _effects_table(effects),
  ]
  if notes:
    sections += ["## Metric notes", "\n".join(f"- {n}" for n in notes)]
  return "\n\n".join(sections) + "\n"


def _slug(name: str) -> str:
  return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def _plot(workdir: Path, rows: list[dict], metric: str, k: int, title: str) -> Path:
  """Accuracy vs m for the masked, random and binary rows (original as a flat line)."""
  curves = {}
  for method, label in (
    ("masked", "top-m masked (Table I)"),
    ("random", "random m"),
    ("binary", "binary masks (Table II)"),
  ):
    chosen = [r for r in rows if r["method"] == method]
    if chosen:
      curves[label] = ([r["m"] for r in chosen], [r["mean"][metric] for r in chosen])
  ms = [r["m"] for r in rows if r["method"] != "original"] or [k]
  original = next(r for r in rows if r["method"] == "original")["mean"][metric]
  curves[f"original (k = {k})"] = ([min(ms), k], [original, original])
  path = workdir / "eval" / f"templates_{_slug(metric)}.png"
  plots.plot_curves(curves, path, "m (bins kept)", metric, title, logx=True)
  return path


def run_experiment(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  descriptors: np.ndarray,
  splits: list[ijb.ProtocolSplit],
  source: str,
) -> dict:
  """Tables I and II on ``descriptors`` ``[N, k]`` over ``splits``; writes the outputs.

  Args:
    config: the experiment config (``experiment``, ``protocol``'s operating points).
    workdir: outputs go to ``<workdir>/eval/``.
    descriptors: ``[N, k]`` float, finite.
    splits: the protocol, rows indexing ``descriptors``.
    source: a description of where descriptors and splits come from, for the report.

  Returns:
    The results written to ``templates.json``.
  """
  workdir = Path(workdir)
  descriptors = ijb.check_descriptors(descriptors, splits)
  k = descriptors.shape[1]
  targets = targets_of(config)
  names = targets.names()
  for metric in config.experiment.plot_metrics:
    if metric not in names:
      raise ValueError(
        f"config.experiment.plot_metrics: {metric!r} is not a metric; known: {names}"
      )
  base_key = jax.random.PRNGKey(config.experiment.random_seed)
  rows, notes = [], []
  for table, method, m, matcher in experiment_rows(config, k):
    start = time.perf_counter()
    key = jax.random.fold_in(base_key, m)
    result = ijb.evaluate_splits(matcher, descriptors, splits, key, targets)
    notes += [n for n in result.pop("notes") if n not in notes]
    rows.append({"table": table, "method": method, "m": m, **result})
    logging.info(
      "%s m=%d: %s (%.1f s)",
      method,
      m,
      ", ".join(f"{n} {result['mean'][n]:.3f}" for n in names),
      time.perf_counter() - start,
    )
  if any(r["method"] == "binary" and r["m"] == k for r in rows):
    notes.append(
      f"binary masks with m = k = {k} select every bin: all templates tie "
      "(distance 0), so every figure is at its pessimistic tie value"
    )
  summary = ijb.protocol_summary(splits)
  effects = paper_effects(rows, names)
  markdown = _markdown(source, k, summary, rows, names, effects, notes)
  (workdir / "eval").mkdir(parents=True, exist_ok=True)
  (workdir / "eval" / "templates.md").write_text(markdown)
  logging.info("\n%s", markdown)
  title = f"{source}: {{}} vs m"
  pngs = [
    _plot(workdir, rows, metric, k, title.format(metric))
    for metric in config.experiment.plot_metrics
  ]
  results = {
    "source": source,
    "k": k,
    "num_descriptors": int(descriptors.shape[0]),
    "protocol": summary,
    "metrics": names,
    "rows": rows,
    "effects": effects,
    "notes": notes,
    "plots": [str(p) for p in pngs],
  }
  common.write_results(workdir, "templates", results)
  return results


# ------------------------------------------------------------------------------- run


def run(config: ml_collections.ConfigDict, workdir: str, mode: str) -> dict:
  """Runs ``mode`` (see the module docstring); returns the results it wrote."""
  common.check_mode(mode, MODES)
  if mode == "npy":
    descriptors, splits = npy_inputs(config)
    return run_experiment(
      config,
      workdir,
      descriptors,
      splits,
      f"{os.path.basename(config.descriptors.npy_path)} on IJB-A",
    )
  derived = backbone_config(config)
  start = time.perf_counter()
  if mode == "all":
    variables = recognition.train(derived, backbone_workdir(workdir))
    logging.info("descriptor network ready in %.1f s", time.perf_counter() - start)
  else:
    variables = recognition.restore_backbone(derived, backbone_workdir(workdir))
  start = time.perf_counter()
  data = synthetic_descriptors(config, variables)
  splits = synthetic_protocol(config, data)
  logging.info(
    "%d descriptors (k = %d) in %.1f s", *data["descriptors"].shape, time.perf_counter() - start
  )
  return run_experiment(
    config, workdir, data["descriptors"], splits, f"{config.dataset.name} {config.descriptors.kind}"
  )
