"""Tables and figures of the attribute method, through :mod:`jfr.report`.

* Markdown (``eval/attributes.md``): rank-1 with distractors per variant and stage; the
  Table 1 analog (per-attribute accuracy of the stage-1 models); the attribute drift after
  fine-tuning; the share of each attribute's map mass inside its face region.
* Figures (``figures/attributes_<key>.png``): ``cmc_<stage>`` (CMC at the largest distractor
  count), ``rank1_vs_distractors_<stage>``, and ``<cam entry>_<variant>`` (Fig. 4 analog:
  one row per kept attribute, its most confident true positives with the map overlaid and,
  where the segmentation is known, the attribute's region contoured in white).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from jfr.eval.face_regions import ATTRIBUTE_REGIONS, region_masks
from jfr.methods.attributes.constants import PROTOCOL_EVAL, STAGES, VARIANT_LABELS, VARIANT_ORDER
from jfr.report import figures as figures_lib
from jfr.report import intervals
from jfr.report.tables import markdown_table


def percent(x: float | None) -> str:
  """``0.1234 -> '12.3'``; ``'n/a'`` for None or non-finite values."""
  return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def percent_ci(x: float | None, ci) -> str:
  """:func:`percent` with its 95 % interval ``[lo, hi]`` (fractions) when there is one."""
  if ci is None or x is None or not np.isfinite(x):
    return percent(x)
  return f"{percent(x)} [{percent(ci[0])}, {percent(ci[1])}]"


def _order(variants: Mapping[str, Any]) -> list[str]:
  return [v for v in VARIANT_ORDER if v in variants]


def _identification_rows(variants: Mapping[str, Any], order: Sequence[str]) -> list[dict]:
  rows = []
  for stage in STAGES:
    for v in order:
      if stage not in variants[v]:
        continue
      ident = variants[v][stage][PROTOCOL_EVAL]
      row = {"variant": VARIANT_LABELS[v], "stage": stage}
      ci = ident.get("rank1_by_distractors_ci95", {})
      row.update(
        {f"{c} distr.": percent_ci(r, ci.get(c)) for c, r in ident["rank1_by_distractors"].items()}
      )
      last = max(ident["cmc_by_distractors"], key=int)
      cmc_ci = ident.get("cmc_by_distractors_ci95", {}).get(last)
      row[f"rank-{ident['ranks'][-1]} ({last})"] = percent_ci(
        ident["cmc_by_distractors"][last][-1], None if cmc_ci is None else cmc_ci[-1]
      )
      rows.append(row)
  return rows


def _attribute_rows(
  variants: Mapping[str, Any], names: Sequence[str], order: Sequence[str]
) -> list[dict]:
  table = lambda v: variants[v]["pretrained"]["attributes_test"]
  rows = []
  for name in names:
    first = table(order[0])["per_attribute"][name]
    row = {
      "attribute": name,
      "positives": percent(first["positive_rate"]),
      "majority": percent(first["majority"]),
    }
    for v in order:
      row[VARIANT_LABELS[v]] = percent(table(v)["per_attribute"][name]["accuracy"])
    rows.append(row)
  mean = {"attribute": "mean", "positives": "", "majority": ""}
  for v in order:
    mean[VARIANT_LABELS[v]] = percent_ci(
      table(v)["mean_accuracy"], table(v).get("mean_accuracy_ci95")
    )
  rows.append(mean)
  return rows


def _cam_rows(cams: Mapping[str, Any], names: Sequence[str], order: Sequence[str]) -> list[dict]:
  rows = []
  for name in names:
    first = cams[order[0]]["per_attribute"][name]
    if first.get("region") is None:
      continue
    row = {
      "attribute": name,
      "region": first["region"],
      "images": first["num_images"],
      "area": percent_ci(first["area"], first.get("area_ci95")),
    }
    for v in order:
      cam = cams[v]["per_attribute"][name]
      row[VARIANT_LABELS[v]] = percent_ci(cam["share"], cam.get("share_ci95"))
    rows.append(row)
  return rows


def markdown(results: Mapping[str, Any], names: Sequence[str], cam_entries: Sequence[str]) -> str:
  """The Markdown report of :func:`jfr.methods.attributes.evaluate.evaluate`'s results."""
  variants = results["variants"]
  order = _order(variants)
  lines = [
    "## Identification: rank-1 (%) with distractors in the gallery [95 % interval, bootstrap "
    "over the probes' identities]",
    "",
  ]
  rows = _identification_rows(variants, order)
  if rows:
    lines.append(markdown_table(rows, list(rows[0])))
  lines += [
    "",
    "## Attribute accuracy (%) on the test identities (stage 1; Table 1 analog; mean with its "
    "95 % interval, bootstrap over identities)",
    "",
  ]
  rows = _attribute_rows(variants, names, order)
  lines.append(markdown_table(rows, list(rows[0])))
  finetuned = [v for v in order if "finetuned" in variants[v]]
  if finetuned:
    drift = [
      (VARIANT_LABELS[v], variants[v]["finetuned"]["attributes_distractor_identities"])
      for v in finetuned
    ]
    lines += [
      "",
      "Mean attribute accuracy on the distractor identities after fine-tuning "
      "(attribute-label free stage 2): "
      + ", ".join(f"{label} {percent(r['mean_accuracy'])}" for label, r in drift),
    ]
  for entry in cam_entries:
    cams = {v: variants[v]["pretrained"][entry] for v in order}
    if not all("per_attribute" in c for c in cams.values()):
      continue
    lines += [
      "",
      "## Share (%) of each attribute's activation-map mass inside its face region "
      "(images where the attribute is present) [95 % interval, bootstrap over identities]",
      "",
    ]
    rows = _cam_rows(cams, names, order)
    if rows:
      lines.append(markdown_table(rows, list(rows[0])))
  return "\n".join(lines)


def identification_figures(results: Mapping[str, Any]) -> dict[str, Figure]:
  """``cmc_<stage>`` and ``rank1_vs_distractors_<stage>`` of every stage evaluated."""
  variants = results["variants"]
  out = {}
  for stage in STAGES:
    curves = {
      VARIANT_LABELS[v]: variants[v][stage][PROTOCOL_EVAL]
      for v in _order(variants)
      if stage in variants[v]
    }
    if not curves:
      continue
    largest = {k: max(r["cmc_by_distractors"], key=int) for k, r in curves.items()}
    out[f"cmc_{stage}"] = figures_lib.cmc_figure(
      {
        f"{k} ({largest[k]} distractors)": (r["ranks"], r["cmc_by_distractors"][largest[k]])
        for k, r in curves.items()
      },
      f"CMC, {stage} models, all distractors",
    )
    out[f"rank1_vs_distractors_{stage}"] = figures_lib.curves_figure(
      {
        k: ([int(c) for c in r["rank1_by_distractors"]], list(r["rank1_by_distractors"].values()))
        for k, r in curves.items()
      },
      "Distractors in the gallery",
      "Rank-1 identification rate",
      f"Rank-1 vs distractors, {stage} models",
      logx=True,
    )
  return out


def cam_figure(
  figure: Mapping[str, Any],
  names: Sequence[str],
  cam_report: Mapping[str, Any],
  columns: int,
  title: str,
) -> Figure:
  """Fig. 4 analog from a ``cam_region_mass`` result's ``_figure`` (module docstring).

  Each overlay is normalised by its own maximum. Rows without positives show the most
  confident images instead (titled as such).
  """
  rows = figure["rows"]
  part_names = figure.get("part_names")
  fig = figures_lib.new_figure(1.5 * columns + 1.2, 1.6 * len(rows) + 0.5)
  axes = np.asarray(fig.subplots(len(rows), columns, squeeze=False))
  per = cam_report.get("per_attribute", {})
  for r, t in enumerate(rows):
    name = names[t]
    logit = figure["logits"][:, t]
    positives = np.flatnonzero(figure["targets"][:, t] > 0)
    pool = positives if positives.size else np.arange(len(logit))
    chosen = pool[np.argsort(-logit[pool])][:columns]
    region = ATTRIBUTE_REGIONS.get(name)
    for c in range(columns):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      if c >= len(chosen):
        ax.axis("off")
        continue
      i = chosen[c]
      m = figure["maps"][i, :, :, r]
      v = m / max(float(m.max()), 1e-12)
      ax.imshow(figure["images"][i], interpolation="nearest")
      rgba = colormaps[figures_lib.SALIENCY_CMAP](v)
      rgba[..., 3] = 0.65 * v
      ax.imshow(rgba, interpolation="bilinear")
      if region is not None and part_names is not None and "segmentation" in figure:
        mask = region_masks(
          figure["segmentation"][i : i + 1], figure["landmarks"][i : i + 1], region, part_names
        )[0]
        if mask.any() and not mask.all():
          ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.7)
      ax.set_title(f"p={1 / (1 + np.exp(-logit[i])):.2f}", fontsize=7)
    info = per.get(name, {})
    label = name if positives.size else f"{name}\n(no positives)"
    if info.get("region"):
      label += f"\n{info['region']}: {percent(info['share'])}%\n(area {percent(info['area'])}%)"
    axes[r, 0].set_ylabel(label, fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def figures(
  results: Mapping[str, Any],
  cam_figures: Mapping[str, tuple[str, str, Mapping[str, Any]]],
  names: Sequence[str],
  columns: int,
) -> dict[str, Figure]:
  """Every figure of the report: key -> Figure (``cam_figures``: key -> (entry, variant,
  figure inputs))."""
  out = identification_figures(results)
  for key, (entry, mode, figure) in cam_figures.items():
    cam_report = results["variants"][mode]["pretrained"][entry]
    title = f"{VARIANT_LABELS[mode]}: attribute activation maps"
    out[key] = cam_figure(figure, names, cam_report, columns, title)
  return out
