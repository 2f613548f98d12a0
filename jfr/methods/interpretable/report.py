"""The interpretable-FR comparison of the variants: Markdown tables and the Fig. 5, 6 and 8
analogs, through :mod:`jfr.report`.

* Fig. 5: average peak locations on the canonical face, coloured by their std;
* Fig. 6: sorted mean |f(I) − f(Î)| per filter with the eyes / nose occluded;
* Fig. 8: response maps of a few filters (the smallest-std filters that are at least 12% of
  the side apart) over three subjects and three poses of a fourth (red > 0, blue < 0).
"""

from __future__ import annotations

from typing import Any, Mapping

import ml_collections
import numpy as np
from matplotlib import colors as mpl_colors
from matplotlib.figure import Figure

from jfr.data import face_renderer
from jfr.methods.interpretable.constants import (
  FEATURE_DIFFERENCE,
  PARTIAL_RETRIEVAL,
  PEAK_SPREAD,
  RECOGNITION,
  SCENARIOS,
)
from jfr.report import figures as figures_lib
from jfr.report import intervals
from jfr.report import tables

RETRIEVAL_COLUMNS = ("eyes", "nose", "mouth", "random_filters", "all_filters")


def _figure(width: float, height: float) -> Figure:
  fig = figures_lib.new_figure(width, height)
  fig.set_layout_engine("constrained")
  return fig


def canonical_face(size: int, scale: int) -> np.ndarray:
  """The canonical frontal face (mean identity, neutral nuisances) at ``scale·size`` px."""
  return face_renderer.render(
    face_renderer.mean_latents(1), face_renderer.neutral_nuisances(1), size * scale, seed_or_rng=0
  )["image"][0]


def peak_locations_figure(peaks: Mapping[str, dict], size: int) -> Figure:
  """Fig. 5 analog: variant -> ``peak_spread`` results, on the canonical face."""
  scale = max(1, 256 // size)
  face = canonical_face(size, scale)
  names = list(peaks)
  stds = np.concatenate([np.asarray(peaks[n][s]["std"]) for n in names for s in ("pos", "neg")])
  vmax = float(np.nanpercentile(stds, 98)) if np.isfinite(stds).any() else 1.0
  norm = mpl_colors.Normalize(0.0, vmax)
  fig = _figure(3.0 * len(names) + 0.8, 6.4)
  axes = fig.subplots(2, len(names), squeeze=False)
  for col, name in enumerate(names):
    for row, (sign, label) in enumerate((("pos", "positive"), ("neg", "negative"))):
      ax = axes[row, col]
      stats = peaks[name][sign]
      ax.imshow(face, alpha=0.55)
      xy = (np.asarray(stats["centres"]) + 0.5) * scale - 0.5
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
  return fig


def _parts(differences: Mapping[str, Any]) -> list[str]:
  return [k for k, v in differences.items() if isinstance(v, Mapping) and not k.startswith("_")]


def feature_difference_figure(differences: Mapping[str, dict]) -> Figure:
  """Fig. 6 analog: variant -> ``occlusion_feature_difference`` results, sorted curves."""
  parts = _parts(next(iter(differences.values())))
  fig = _figure(4.5 * len(parts), 6.4)
  axes = fig.subplots(2, len(parts), squeeze=False)
  for col, part in enumerate(parts):
    for row, (kind, ylabel) in enumerate(
      (("raw", "mean |f(I) − f(Î)|"), ("normalised", "same for √K f / ‖f‖"))
    ):
      ax = axes[row, col]
      for name, res in differences.items():
        values = np.sort(np.asarray(res[part][kind]))[::-1]
        ax.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1.6)
      ax.set_xlabel("filters, sorted by difference")
      ax.set_ylabel(ylabel)
      ax.set_title(f"{part} occluded ({kind})", fontsize=10)
      ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=9)
  return fig


def pick_display_filters(
  centres: np.ndarray, std: np.ndarray, count: int, min_separation: float
) -> np.ndarray:
  """Up to ``count`` filters with the smallest std whose average locations are at least
  ``min_separation`` px apart (greedy), for Fig. 8."""
  centres, std = np.asarray(centres), np.asarray(std)
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


def responses_figure(
  name: str, faces: np.ndarray, maps: np.ndarray, filters: np.ndarray, lmf: bool
) -> Figure:
  """Fig. 8 analog: response maps of ``filters`` over uint8 ``faces`` (different subjects,
  then three poses of one subject)."""
  size = faces.shape[1]
  subjects = len(faces) - 3
  gray = faces.astype(np.float32).mean(axis=-1) / 255.0
  rows, cols = len(faces), len(filters) + 1
  fig = _figure(1.25 * cols, 1.3 * rows + 0.5)
  axes = fig.subplots(rows, cols, squeeze=False)
  for r in range(rows):
    axes[r, 0].imshow(faces[r])
    label = (
      f"subject {chr(65 + r)}"
      if r < subjects
      else f"subject {chr(65 + subjects)}, pose {r - subjects + 1}"
    )
    axes[r, 0].set_ylabel(label, fontsize=8)
    for c, k in enumerate(filters, start=1):
      limit = max(float(np.abs(maps[..., k]).max()), 1e-12)
      axes[r, c].imshow(gray[r], cmap="gray", vmin=0.0, vmax=1.0)
      axes[r, c].imshow(
        maps[r, ..., k],
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
  return fig


def _fmt(value: float | None, percent: bool = False) -> str:
  if value is None or not np.isfinite(value):
    return "n/a"
  return tables.percent(value) if percent else f"{value:.2f}"


def _ci(row: Mapping[str, Any], key: str, scale: float = 1.0, percent: bool = False) -> str:
  """``_fmt(row[key] * scale)`` with ``[lo, hi]`` from ``row[key + '_ci95']`` when present."""
  value = row.get(key)
  ci = row.get(f"{key}_ci95")
  if value is None or ci is None or None in ci:
    return _fmt(None if value is None else value * scale, percent)
  lo, hi = (_fmt(v * scale, percent) for v in ci)
  return f"{_fmt(value * scale, percent)} [{lo}, {hi}]"


def _peaks_rows(results: Mapping[str, dict], size: int) -> list[dict]:
  to96 = 96.0 / size
  rows = []
  for name, res in results.items():
    p = res[PEAK_SPREAD]
    mean_std = (p["pos"]["mean_std"] + p["neg"]["mean_std"]) / 2.0
    rows.append(
      {
        "variant": name,
        "pos": _ci(p["pos"], "spreadness"),
        "neg": _ci(p["neg"], "spreadness"),
        "mean": _ci(p, "spreadness"),
        "mean96": _ci(p, "spreadness", to96),
        "std_pos": _ci(p["pos"], "mean_std"),
        "std_neg": _ci(p["neg"], "mean_std"),
        "std96": _ci({"mean_std": mean_std, **p}, "mean_std", to96),
        "on_face": f"{100 * p['pos']['on_face']:.0f}% / {100 * p['neg']['on_face']:.0f}%",
      }
    )
  return rows


def _recognition_value(report: Mapping[str, Any], metric: str) -> float | None:
  kind, key = metric.split(":")
  if kind == "far":
    return report["verification"]["tar_at_far"].get(key)
  return report["identification"].get("cmc", {}).get(key)


def _recognition_cell(report: Mapping[str, Any], metric: str) -> str:
  """A figure (%) of a scenario with its interval when present: rank-k over identities,
  TAR@FAR over the verification folds."""
  value = _recognition_value(report, metric)
  kind, key = metric.split(":")
  if kind == "rank":
    ci = report["identification"].get("cmc_ci95", {}).get(key)
  else:
    ci = report["verification"]["tar_at_far"].get(f"{key}_ci95")
  return _ci({"v": value, "v_ci95": ci}, "v", percent=True)


def markdown_report(
  config: ml_collections.ConfigDict,
  results: Mapping[str, dict],
  timing: Mapping[str, dict],
  comparisons: Mapping[str, dict] | None = None,
) -> str:
  """The Markdown comparison: variant -> (eval name -> results) of
  :func:`jfr.methods.interpretable.evaluate.evaluate_variant`, and the phase timings."""
  size = config.model.image_size
  first = next(iter(results.values()))
  lines = [
    f"# Interpretable FR: {', '.join(results)} ({config.dataset.name}, {size} px, "
    f"K = {config.model.feature_dim}, LMF keep {config.model.keep}, occlusion "
    f"{config.occlusion.mode}/{config.occlusion.fill})",
    "",
  ]
  if PEAK_SPREAD in first:
    lines += [
      "## Spreadness of average peak locations (Fig. 5, Table 3) [95 % interval, bootstrap "
      "over the faces' identities]",
      "",
      f"Pixels of the {size} px canonical face; '@96' scales to the paper's 96 px; "
      "'on face': share of the average locations inside the template landmarks' hull.",
      "",
      tables.markdown_table(
        _peaks_rows(results, size),
        ["variant", "pos", "neg", "mean", "mean96", "std_pos", "std_neg", "std96", "on_face"],
        headers=[
          "variant",
          "d̄ pos",
          "d̄ neg",
          "d̄ mean",
          "d̄ mean @96",
          "std pos",
          "std neg",
          "std mean @96",
          "on face pos / neg",
        ],
      ),
    ]
  if RECOGNITION in first:
    metrics = [f"far:{far:g}" for far in config.report.fars]
    metrics += [f"rank:rank{r}" for r in config.report.ranks]
    titles = [f"tar@far={m[4:]}" if m.startswith("far") else m[5:] for m in metrics]
    scenarios = [s for s in SCENARIOS if s in first[RECOGNITION]]
    columns = [f"{s} {t}" for s in scenarios for t in titles]
    rows = []
    for name, res in results.items():
      row = {"variant": name}
      for s in scenarios:
        for m, t in zip(metrics, titles):
          row[f"{s} {t}"] = _recognition_cell(res[RECOGNITION][s], m)
      rows.append(row)
    lines += [
      "",
      "## Recognition (Tables 2, 4, 5 analogs; %; rank-k [95 % interval, bootstrap over "
      "the probes' identities]; TAR@FAR [95 % interval, bootstrap over the verification folds])",
      "",
    ]
    lines.append(tables.markdown_table(rows, ["variant", *columns]))
  if FEATURE_DIFFERENCE in first:
    parts = _parts(first[FEATURE_DIFFERENCE])
    rows = []
    for name, res in results.items():
      row = {"variant": name}
      for part in parts:
        d = res[FEATURE_DIFFERENCE][part]
        top = np.sort(np.asarray(d["normalised"]))[::-1]
        share = top[: max(1, len(top) // 10)].sum() / max(top.sum(), 1e-12)
        row[f"{part} raw"] = f"{np.mean(d['raw']):.3g}"
        row[f"{part} norm"] = f"{np.mean(d['normalised']):.3f}"
        row[f"{part} top 10%"] = f"{100 * share:.0f}%"
        if "top10_share_ci95" in d:
          lo, hi = d["top10_share_ci95"]
          row[f"{part} top 10%"] += f" [{100 * lo:.0f}%, {100 * hi:.0f}%]"
      rows.append(row)
    columns = [f"{p} {k}" for p in parts for k in ("raw", "norm", "top 10%")]
    lines += [
      "",
      "## Mean feature difference, clean vs part occluded (Fig. 6)",
      "",
      "Mean over filters of the Fig. 6 curve; 'norm' uses unit-norm features × √K; "
      "'top 10%' is the share of the total difference carried by the 10% most "
      "changed filters.",
      "",
      tables.markdown_table(rows, ["variant", *columns]),
    ]
  if PARTIAL_RETRIEVAL in first:
    count = first[PARTIAL_RETRIEVAL]["filters_per_part"]
    rows = [
      {
        "variant": name,
        **{k: _ci(res[PARTIAL_RETRIEVAL], k, percent=True) for k in RETRIEVAL_COLUMNS},
      }
      for name, res in results.items()
    ]
    lines += [
      "",
      f"## Partial-face retrieval, rank-1 % (Sec. 4.4; {count} filters per part; "
      "[95 % interval, bootstrap over subjects])",
      "",
      tables.markdown_table(rows, ["variant", *RETRIEVAL_COLUMNS]),
    ]
  if comparisons:
    lines += [
      "",
      "## The paper's comparisons: paired differences [95 % bootstrap interval over identities]",
      "",
      intervals.comparisons_table(comparisons),
    ]
  rows = [{"phase": k, "wall s": f"{v['wall_s']:.0f}"} for k, v in timing.items()]
  lines += ["", "## Time", "", tables.markdown_table(rows, ["phase", "wall s"])]
  return "\n".join(lines) + "\n"


def yaw_proxy(landmarks: np.ndarray) -> np.ndarray:
  """Signed horizontal offset of the nose tip from the jaw midpoint, per face width."""
  jaw_mid = (landmarks[:, 0, 0] + landmarks[:, 16, 0]) / 2.0
  width = np.maximum(np.abs(landmarks[:, 16, 0] - landmarks[:, 0, 0]), 1e-6)
  return (landmarks[:, 33, 0] - jaw_mid) / width


def figure_faces(labels: np.ndarray, natural: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
  """Indices for Fig. 8: three unoccluded faces of different subjects, then three of the
  subject with the most unoccluded faces at its smallest, median and largest yaw."""
  clean = np.flatnonzero(~natural)
  _, first = np.unique(labels[clean], return_index=True)
  subjects = clean[np.sort(first)[:3]]
  counts = np.bincount(labels[clean] - labels.min())
  members = clean[labels[clean] == labels.min() + np.argmax(counts)]
  by_yaw = members[np.argsort(yaw_proxy(landmarks[members]), kind="stable")]
  poses = by_yaw[[0, len(by_yaw) // 2, len(by_yaw) - 1]]
  return np.concatenate([subjects, poses])
