"""Tables and figures of the explain method, through :mod:`jfr.report`.

Tables: the Table I analog (:func:`recognition_markdown`), the hiding game's AUCs (Table II
analog, :func:`hiding_table`), the pointing game (:func:`pointing_table`). Figures: Fig. 3
analog (S+, S-, S of both faces, :func:`plot_similarity_maps`), Fig. 2 analog (six methods,
:func:`plot_method_comparison`), one-part pairs (:func:`plot_part_pairs`), reconstructions
(:func:`plot_reconstructions`) and the hiding-game curves.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from jfr.data import pipelines
from jfr.eval import hiding_protocol
from jfr.explain import suite
from jfr.methods.explain.constants import FIG2_METHODS, METHOD_NAMES, PART_FIGURE_METHODS
from jfr.report import figures as fig_lib
from jfr.report import intervals
from jfr.report import markdown_table, new_figure, roc_figure, saliency_overlay, show_image

__all__ = ["METHOD_NAMES"]


# ------------------------------------------------------------------------------- tables


def recognition_markdown(results: Mapping[str, dict]) -> str:
  """Markdown Table I analog: model name -> still-image results (+ ``reconstruction_mse``)."""
  rows = []
  for name, r in results.items():
    v, i = r["verification"], r["identification"]
    rows.append(
      {
        "model": name,
        "verification acc": (
          intervals.cell(v, "accuracy")
          if "accuracy_ci95" in v
          else f"{v['accuracy']:.4f} ± {v['accuracy_std']:.4f}"
        ),
        "EER": intervals.cell(v, "eer"),
        "ROC AUC": intervals.cell(v, "auc"),
        "TAR@FAR=1e-2": intervals.cell(v["tar_at_far"], "0.01") or "nan",
        "rank-1": i.get("cmc", {}).get("rank1", float("nan")),
        "test L_rec": r.get("reconstruction_mse", "-"),
      }
    )
  columns = ["model", "verification acc", "EER", "ROC AUC", "TAR@FAR=1e-2", "rank-1", "test L_rec"]
  text = "## Recognition (Table I analog)\n\n" + markdown_table(rows, columns)
  text += (
    "\n\nverification acc: k-fold accuracy; EER, ROC AUC and TAR@FAR of the pooled pairs of "
    "all folds; [95 % interval, bootstrap over the folds]."
  )
  compared = {k: v for r in results.values() for k, v in r.get("comparisons", {}).items()}
  if compared:
    text += "\n\n" + intervals.comparisons_table(compared)
  return text


def roc(curves: Mapping[str, tuple], title: str) -> Figure:
  """ROC curves of the Table I models (label -> ``(fpr, tpr)``)."""
  return roc_figure(curves, title)


def hiding_table(results: Mapping[str, dict]) -> str:
  """Markdown table of the hiding-game AUCs (x 100, as Table II)."""
  x100 = lambda r: intervals.format_interval(  # noqa: E731
    100 * r["auc"], [100 * v for v in r["auc_ci95"]] if "auc_ci95" in r else None, _two
  )
  rows = [
    {
      "method": METHOD_NAMES.get(k, k),
      "AUC x100 (all)": x100(r),
      "genuine": x100(r["genuine"]),
      "impostor": x100(r["impostor"]),
      "acc @ 50% blurred": accuracy_at(r, 0.5),
      "acc @ 90% blurred": accuracy_at(r, 0.9),
    }
    for k, r in results.items()
    if not k.startswith("_")
  ]
  return markdown_table(rows, list(rows[0]))


def accuracy_at(result: Mapping[str, Any], fraction: float) -> str:
  """A hiding game's accuracy at ``fraction`` hidden (linear between its fractions), with the
  95 % interval of that fraction's accuracy (``accuracy_ci95``, bootstrap over the pairs) when
  ``fraction`` is one of the game's fractions."""
  value = float(np.interp(fraction, result["fractions"], result["accuracy"]))
  hit = np.flatnonzero(np.isclose(result["fractions"], fraction))
  ci = result.get("accuracy_ci95")
  return intervals.format_interval(value, ci[int(hit[0])] if ci and hit.size else None)


def pointing_table(results: Mapping[str, Any]) -> str:
  """Markdown table of the pointing game (share of mass inside the part)."""
  parts = list(results["area_share"])
  chance = float(np.mean(list(results["area_share"].values())))
  rows = [
    {
      "method": "chance (part's area share)",
      **{p: results["area_share"][p] for p in parts},
      "mean share": chance,
      "peak hit rate": chance,
    }
  ]
  for name, r in results["methods"].items():
    rows.append(
      {
        "method": METHOD_NAMES.get(name, name),
        **{p: intervals.cell(r["parts"][p], "share_mean") for p in parts},
        "mean share": intervals.cell(r, "share_mean"),
        "peak hit rate": intervals.cell(r, "hit_rate"),
      }
    )
  return markdown_table(rows, ["method", *parts, "mean share", "peak hit rate"])


def _two(x: float) -> str:
  return f"{x:.2f}"


def explain_markdown(results: Mapping[str, Any], types: Mapping[str, str]) -> str:
  """The saliency report: one section per evaluator entry (``types``: name -> type)."""
  th = results["threshold"]
  sections = []
  for name, type_name in types.items():
    res = results[name]
    if type_name == "hiding_game":
      pairs = next(iter(res.values()))["num_pairs"]
      sections.append(
        (
          f"Hiding game ({pairs} test pairs, half genuine; AUC x 100 and accuracies "
          "[95 % interval, bootstrap over pairs]; "
          f"tau = {th['tau']:.3f}, T = tau / c = {th['T']:.5f})",
          hiding_table(res),
        )
      )
    elif type_name == "pointing_game":
      gaps = ", ".join(f"{p} {v:.2e}" for p, v in res["dissimilarity_mean"].items())
      sections.append(
        (
          "Pointing game: pairs differing in one part, share of each map's mass inside the part "
          "[95 % interval, bootstrap over pairs]",
          pointing_table(res) + f"\n\nMean 1 - cosine similarity of the "
          f"part pairs (how different the model finds them): {gaps}.",
        )
      )
  if results.get("comparisons"):
    sections.append(
      (
        "The paper's comparisons: paired differences [95 % bootstrap interval over the pairs]",
        intervals.comparisons_table(results["comparisons"]),
      )
    )
  return "".join(f"## {title}\n\n{body}\n\n" for title, body in sections)


# ------------------------------------------------------------------------------ figures


def _grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
  fig = new_figure(1.45 * cols + 0.6, 1.55 * rows + 0.4)
  return fig, np.asarray(fig.subplots(rows, cols, squeeze=False))


def _share(part: np.ndarray, total: np.ndarray) -> str:
  return f"{100 * part.sum() / max(total.sum(), 1e-12):.0f}%"


def _overlay(ax, image, saliency_map, title=None) -> None:
  """``image`` under ``saliency_map`` scaled to ``scale`` (default its max)."""
  saliency_overlay(ax, image, saliency_map, title=title, fontsize=8)


def plot_similarity_maps(
  images_a: np.ndarray,
  images_b: np.ndarray,
  maps_a: dict,
  maps_b: dict,
  row_labels: Sequence[str],
) -> Figure:
  """Fig. 3 analog: each pair with the S+, S-, S overlays of A and of B.

  S+, S- and S of one image share one colour scale (max of S), so the colours compare
  the similarity and dissimilarity maps; the labels give each one's share of S's mass.
  """
  fig, axes = _grid(len(images_a), 8)
  for r in range(len(images_a)):
    show_image(axes[r, 0], images_a[r], "A" if r == 0 else None, 8)
    show_image(axes[r, 1], images_b[r], "B" if r == 0 else None, 8)
    axes[r, 0].text(
      -0.05, 0.5, row_labels[r], transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8
    )
    for col, (image, maps, who) in enumerate(
      ((images_a[r], maps_a, "A"), (images_b[r], maps_b, "B"))
    ):
      s = maps["ours_s"][r]
      for k, (key, name) in enumerate(
        (("ours_s_pos", "S+"), ("ours_s_neg", "S-"), ("ours_s", "S"))
      ):
        ax = axes[r, 2 + 3 * col + k]
        title = f"{name} of {who}" if r == 0 else None
        saliency_overlay(
          ax, image, maps[key][r], scale=max(float(s.max()), 1e-12), title=title, fontsize=8
        )
        if key != "ours_s":
          ax.text(
            0.5,
            -0.08,
            f"{_share(maps[key][r], s)} of S",
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=7,
          )
  fig.suptitle(
    "Similarity (S+), dissimilarity (S-) and discriminative (S = S+ + S-) maps "
    "of Algorithm 1, one colour scale per image",
    fontsize=9,
  )
  fig.tight_layout()
  return fig


def plot_method_comparison(
  images_a: np.ndarray, images_b: np.ndarray, maps: dict, row_labels: Sequence[str]
) -> Figure:
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
    show_image(axes[r, 0], images_a[r], "A" if r == 0 else None, 8)
    show_image(axes[r, 1], images_b[r], "B" if r == 0 else None, 8)
    axes[r, 0].text(
      -0.05, 0.5, row_labels[r], transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8
    )
    for k, name in enumerate(FIG2_METHODS):
      _overlay(axes[r, 2 + k], images_a[r], maps[name][r], short[name] if r == 0 else None)
  fig.suptitle("Saliency of A for the pair's similarity: six methods", fontsize=9)
  fig.tight_layout()
  return fig


def plot_part_pairs(part_pairs: Mapping[str, dict], part_maps: Mapping[str, dict]) -> Figure:
  """One pair per part: A, B, |A - B| with the ground-truth region, and maps of A."""
  methods = PART_FIGURE_METHODS
  fig, axes = _grid(len(part_pairs), 3 + len(methods))
  for r, (part, pairs) in enumerate(part_pairs.items()):
    a, b = pairs["images_a"][0], pairs["images_b"][0]
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=-1)
    top = r == 0
    show_image(axes[r, 0], a, "A" if top else None, 8)
    show_image(axes[r, 1], b, "B" if top else None, 8)
    axes[r, 0].text(
      -0.05,
      0.5,
      f"{part}\ns = {pairs['similarity'][0]:.2f}",
      transform=axes[r, 0].transAxes,
      ha="right",
      va="center",
      fontsize=8,
    )
    axes[r, 2].imshow(diff, cmap="gray", interpolation="nearest")
    axes[r, 2].contour(pairs["region"][0], levels=[0.5], colors="red", linewidths=0.8)
    axes[r, 2].set_axis_off()
    if top:
      axes[r, 2].set_title("|A-B|, part", fontsize=8)
    for k, (name, label) in enumerate(methods.items()):
      _overlay(axes[r, 3 + k], a, part_maps[part][name][0], label if top else None)
      axes[r, 3 + k].contour(pairs["region"][0], levels=[0.5], colors="white", linewidths=0.6)
  fig.suptitle("Pairs differing in one part (outline): where do the maps point?", fontsize=9)
  fig.tight_layout()
  return fig


def plot_reconstructions(images: np.ndarray, fns: suite.ModelFunctions) -> Figure:
  """Test faces (top) and their reconstructions from C (bottom): the explanation flow."""
  recon = suite.call(fns.decode, suite.call(fns.conv, pipelines.to_model_range_np(images)))
  recon = pipelines.from_model_range(np.asarray(recon))
  return fig_lib.image_grid(
    [list(images), list(recon)],
    row_labels=["input", "Recon(C)"],
    title="Explanation flow: faces rebuilt from the last conv map",
  )


def explain_figures(
  test_images: np.ndarray,
  fa: np.ndarray,
  fb: np.ndarray,
  fsame: np.ndarray,
  scores: np.ndarray,
  maps_a: dict,
  maps_b: dict,
  evaluations: Mapping[str, tuple[dict, dict]],
  fns: suite.ModelFunctions,
) -> dict[str, Figure]:
  """Every figure of the saliency experiments, key -> Figure (``evaluations``: evaluator
  type -> ``(settings, results)`` of the saliency evaluators that ran)."""
  labels = [f"{'genuine' if s else 'impostor'}\ns = {x:.2f}" for s, x in zip(fsame, scores)]
  out = {
    "fig3_similarity_dissimilarity": plot_similarity_maps(
      test_images[fa], test_images[fb], maps_a, maps_b, labels
    ),
    "fig2_method_comparison": plot_method_comparison(
      test_images[fa], test_images[fb], maps_a, labels
    ),
    "reconstructions": plot_reconstructions(test_images[:8], fns),
  }
  if "hiding_game" in evaluations:
    settings, res = evaluations["hiding_game"]
    title = (
      f"Hiding game ({settings['num_pairs']} test pairs, blur sigma {settings['blur_sigma']:g} px)"
    )
    out["hiding_game"] = hiding_protocol.curves(res, METHOD_NAMES, title)
  if "pointing_game" in evaluations:
    _, res = evaluations["pointing_game"]
    out["part_pairs"] = plot_part_pairs(res["_part_pairs"], res["_part_maps"])
  return out
