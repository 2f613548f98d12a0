r"""Writes the README's result sections from the committed results: ``python scripts/readme_results.py``.

Every accuracy figure of the README's "Method results on the synthetic face world" comes
from the JSON files under ``results/<method>/`` (the ``eval/*.json`` of a run of the current
code, copied there with the run's ``command.txt``; see ``results/README.md``). Each generated
block sits between two markers in README.md::

  <!-- results:NAME begin -->
  ... (generated; edits here are overwritten) ...
  <!-- results:NAME end -->

and NAME is one of :data:`SECTIONS`: ``claims`` (one table of every paper claim compared in
any results file's ``comparisons`` dict, with the paired 95 % interval of the difference and
the verdict) and one block per method. A method whose ``results/<method>/`` is missing gets a
line saying so, never older figures. Prose around the markers carries no figures.

``--collect WORKDIR NAME`` first copies a finished run's results files into
``results/NAME/``. ``--check`` changes nothing and exits 1 (printing a diff) when README.md differs from what
this script writes; the tests run it. Speed figures ("Measured figures") are hand-written:
they depend on the machine and are not generated.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAPERS = {
  "fan": "FAN (Hörmann et al.)",
  "templates": "Activation patterns (templates)",
  "attributes": "Attribute-enhanced identification",
  "explain": "Explainable FR (Xu et al.)",
  "interpretable": "Interpretable FR (Yin et al.)",
}
SECTIONS = (
  "claims",
  "templates",
  "explain",
  "attributes",
  "interpretable",
  "fan",
  "curves",
  "headroom",
)
# Sections read from a results folder of another name (section -> folder).
FOLDERS = {"headroom": "baseline_softmax"}
_MARKER = re.compile(r"<!-- results:([A-Za-z0-9_-]+) (begin|end) -->")


# ----------------------------------------------------------------------- verdict and cells


def verdict(ci95: Any) -> str:
  """The verdict of a paired difference oriented so that > 0 means the paper's claim holds
  (the rule of :func:`jfr.report.intervals.verdict`, restated here because this script reads
  only JSON and stays stdlib-only: importing ``jfr.report`` would load matplotlib):
  ``'reproduced'`` when the 95 % interval's lo > 0, ``'not reproduced'`` when hi < 0,
  ``'inconclusive'`` otherwise (the interval spans zero, or is missing / not finite)."""
  if not isinstance(ci95, (list, tuple)) or len(ci95) != 2:
    return "inconclusive"
  lo, hi = ci95
  if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
    return "inconclusive"
  if lo > 0:
    return "reproduced"
  if hi < 0:
    return "not reproduced"
  return "inconclusive"


def fmt_interval(value: Any, ci95: Any, fmt: Callable[[float], str]) -> str:
  """``'95.5 [93.0, 97.5]'``; the bare value without a (finite) interval; ``''`` for None."""
  if value is None:
    return ""
  text = fmt(value)
  if isinstance(ci95, (list, tuple)) and len(ci95) == 2 and None not in ci95:
    text += f" [{fmt(ci95[0])}, {fmt(ci95[1])}]"
  return text


def pct(x: float) -> str:
  return f"{100 * x:.1f}"


def dec3(x: float) -> str:
  return f"{x:.3f}"


def cell(d: Mapping | None, key: Any, fmt: Callable[[float], str] = pct) -> str:
  """``d[key]`` formatted with its interval ``d[key + '_ci95']`` when there is one."""
  if not isinstance(d, Mapping) or d.get(str(key), d.get(key)) is None:
    return ""
  value = d.get(str(key), d.get(key))
  return fmt_interval(value, d.get(f"{key}_ci95"), fmt)


def dig(d: Any, *path: Any) -> Any:
  """``d[p0][p1]...`` or None where a key is missing."""
  for p in path:
    if not isinstance(d, Mapping) or p not in d:
      return None
    d = d[p]
  return d


def table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines)


# ----------------------------------------------------------------------- results on disk


class Run:
  """One committed run: ``results/<name>/`` (its ``eval/*.json`` tree and ``command.txt``)."""

  def __init__(self, root: Path):
    self.root = root

  def json(self, rel: str) -> dict:
    path = self.root / rel
    return json.loads(path.read_text()) if path.exists() else {}

  def command(self) -> str:
    """The run's command line (``command.txt``'s last line) as a user types it."""
    path = self.root / "command.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    lines = [line for line in lines if line.strip() and not line.startswith("#")]
    text = lines[-1] if lines else ""
    text = re.sub(r"^\S*python\S*\s+(-m\s+jfr\.main|\S*jfr/main\.py)", "python -m jfr.main", text)
    return re.sub(r"--workdir=\S+", "--workdir=/tmp/run", text)

  def header(self) -> str:
    """The command, the commit the run's code was at (``commit.txt``) and the folder."""
    path = self.root / "commit.txt"
    commit = path.read_text().strip() if path.exists() else "unrecorded"
    rel = self.root.relative_to(self.root.parents[1])
    return f"`{self.command()}` (code at commit {commit}; results in `{rel}/`)"


def load_runs(results_dir: Path) -> dict[str, Run]:
  """``{method: Run}`` for each ``results_dir/<method>/`` holding ``eval/*.json``."""
  runs = {}
  for d in sorted(p for p in results_dir.glob("*") if p.is_dir()):
    if any(d.rglob("eval/*.json")):
      runs[d.name] = Run(d)
  return runs


def all_comparisons(results_dir: Path) -> list[tuple[str, str, dict]]:
  """``(method, name, entry)`` of every ``comparisons`` entry in any ``results/<method>/``
  JSON (learning curves excluded; within a method the first file of a name wins, files in
  sorted path order), ordered by paper, then method, then name."""
  found: dict[tuple[str, str], dict] = {}
  for path in sorted(results_dir.rglob("eval/*.json")):
    method = path.relative_to(results_dir).parts[0]
    if method == "curves":
      continue
    comps = json.loads(path.read_text()).get("comparisons") or {}
    for name, entry in comps.items():
      found.setdefault((method, name), entry)
  order = list(PAPERS)

  def key(item):
    (method, name), e = item
    natural = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
    return (order.index(e.get("paper")) if e.get("paper") in order else 99, method, natural)

  return [(m, n, e) for (m, n), e in sorted(found.items(), key=key)]


def _figure(e: Mapping) -> str:
  """``'metric: a 95.5 vs b 94.0; difference 1.5 [0.2, 2.9]'`` of a comparison entry."""
  big = max(abs(e.get("value_a") or 0), abs(e.get("value_b") or 0)) >= 2
  f = (lambda x: f"{x:.1f}") if big else (lambda x: f"{x:.3f}")
  return (
    f"{e['metric']}: {e['a']} {f(e['value_a'])} vs {e['b']} {f(e['value_b'])}; "
    f"difference {fmt_interval(e['diff'], e.get('ci95'), f)}"
    + (f", {e['resampled']} resampled" if e.get("resampled") else "")
  )


def comparisons_rows(entries: list[tuple[str, str, dict]], with_paper: bool) -> list[list[str]]:
  rows = []
  for _, _, e in entries:
    paper = [PAPERS.get(e.get("paper"), str(e.get("paper")))] if with_paper else []
    rows.append(paper + [e["claim"], _figure(e), verdict(e.get("ci95"))])
  return rows


# ----------------------------------------------------------------------- sections


# Comparisons kept out of the Claims table (listed in their method's section): the FAN's
# per-(N, n_avg) columns (the claim is their mean), its ablation variants against the baselines
# (the paper compares those variants with `full`, not with averaging), and rank-5 (saturated).
DETAIL = {
  "fan": re.compile(r"full_vs_avg/N=|(no_adv|rec_avg)_vs_(avg|pixel_mean)|/rank5$"),
}


def headline_comparisons(entries: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
  """The entries the Claims table shows. A method whose entries carry ``"headline"`` flags
  shows those without ``"headline": false`` (and not matched by ``DETAIL``); otherwise, where
  one claim (same method and claim
  text) is compared on several metrics, only its summary metric (a metric naming a ``mean``)
  is shown, and the per-metric entries stay in the method's own section."""
  out = []
  for method in dict.fromkeys(m for m, _, _ in entries):
    mine = [x for x in entries if x[0] == method]
    if method in DETAIL:
      mine = [x for x in mine if not DETAIL[method].search(x[1])]
    if any("headline" in e for _, _, e in mine):
      out += [x for x in mine if x[2].get("headline", True) is not False]
      continue
    for x in mine:
      same = [y for y in mine if y[2]["claim"] == x[2]["claim"]]
      summary = [y for y in same if "mean" in str(y[2].get("metric", ""))]
      if len(same) == 1 or not summary or x in summary[:1]:
        out.append(x)
  return out


def claims_section(results_dir: Path, runs: Mapping[str, Run]) -> str:
  """The single Claims table: every headline comparison (an entry without
  ``"headline": false``) of every committed run."""
  entries = all_comparisons(results_dir)
  headline = headline_comparisons(entries)
  if not headline:
    return "No committed results file carries paired comparisons yet."
  rows = comparisons_rows(headline, with_paper=True)
  counts = {
    v: sum(r[3] == v for r in rows) for v in ("reproduced", "not reproduced", "inconclusive")
  }
  note = (
    f"{len(rows)} claims: {counts['reproduced']} reproduced, {counts['not reproduced']} not "
    f"reproduced, {counts['inconclusive']} inconclusive"
  )
  if len(entries) > len(headline):
    note += f" ({len(entries) - len(headline)} further comparisons in the method sections)"
  note += "."
  missing = [m for m in PAPERS if m not in runs]
  if missing:
    note += " No committed run yet for: " + ", ".join(missing) + "."
  header = ["paper", "claim", "our figure (difference [95 % interval])", "verdict"]
  return table(header, rows) + "\n\n" + note


def method_comparisons(results_dir: Path, method: str) -> list[str]:
  """All comparisons of ``results/<method>/`` as a table (``[]`` when there are none)."""
  entries = [x for x in all_comparisons(results_dir) if x[0] == method]
  if not entries:
    return []
  rows = comparisons_rows(entries, with_paper=False)
  return [
    "Every paired comparison of this run:",
    table(["claim", "our figure (difference [95 % interval])", "verdict"], rows),
  ]


def _missing(name: str) -> str:
  return f"No committed run of the current code yet (`results/{name}/` is empty)."


def templates_section(run: Run) -> str:
  r = run.json("eval/templates.json")
  metrics = ["TPIR@FPIR=0.1", "TPIR@FPIR=0.01", "Rank-1", "1:1 TAR@FAR=0.01"]
  rows = []
  for row in r.get("rows", []):
    label = f"{row['method']} (Table {row['table']}), m = {row['m']}"
    ci = row.get("mean_ci95") or {}
    rows.append([label] + [fmt_interval(dig(row, "mean", k), ci.get(k), dec3) for k in metrics])
  proto = r.get("protocol", {})
  head = (
    f"{run.header()}: descriptors `{r.get('source', '')}`, k = {r.get('k')}; "
    f"{proto.get('splits')} IJB-A-like splits, mean over splits"
    + (" [95 % interval]" if any(x.get("mean_ci95") for x in r.get("rows", [])) else "")
    + ":"
  )
  effects = [
    f"- {e['claim']}: difference {e['difference']:+.3f}, the claimed sign in "
    f"{e['splits_with_claimed_sign']}/{e['splits']} splits"
    for e in r.get("effects", [])
    if not r.get("comparisons")  # the paired comparisons below supersede the sign counts
  ]
  return "\n\n".join(
    [head, table(["descriptors"] + metrics, rows)] + (["\n".join(effects)] if effects else [])
  )


def _accuracy_at(game: Mapping, fraction: float) -> str:
  """A hiding game's accuracy (%) at a hidden ``fraction`` that is one of its fractions, with
  its interval (``accuracy_ci95``, bootstrap over pairs) when the results carry one."""
  fractions, acc = game.get("fractions", []), game.get("accuracy", [])
  hit = [i for i, f in enumerate(fractions) if abs(f - fraction) < 1e-9]
  if not hit or len(acc) != len(fractions):
    return ""
  ci = game.get("accuracy_ci95")
  return fmt_interval(acc[hit[0]], ci[hit[0]] if ci else None, pct)


def explain_section(run: Run) -> str:
  ours = run.json("eval/recognition.json")
  plain = run.json("baseline/eval/recognition.json")
  ex = run.json("eval/explain.json")
  rows = []
  for label, r in (("ours: max pool + decoder", ours), ("plain ArcFace", plain)):
    v = r.get("verification", {})
    rows.append(
      [
        label,
        cell(v, "accuracy"),
        cell(v, "eer"),
        cell(v, "auc", dec3),
        cell(v.get("tar_at_far"), "0.01", dec3),
      ]
    )
  rec = table(["model", "10-fold accuracy %", "EER %", "AUC", "TAR@FAR 1e-2"], rows)
  names = ex.get("method_names", {})
  hiding = sorted(ex.get("hiding_game", {}).items(), key=lambda kv: -kv[1]["auc"])
  sigma = next(iter(ex.get("hiding_game", {}).values()), {}).get("blur_sigma")
  x100 = lambda x: f"{100 * x:.1f}"  # noqa: E731
  hide = table(
    ["map", "hiding game AUC x 100", "accuracy % (50 % hidden)", "accuracy % (90 % hidden)"],
    [
      [names.get(k, k), cell(g, "auc", x100), _accuracy_at(g, 0.5), _accuracy_at(g, 0.9)]
      for k, g in hiding
    ],
  )
  pg = ex.get("pointing_game", {})
  area = pg.get("area_share", {})
  point_rows = [
    [names.get(k, k), cell(m, "share_mean", dec3), cell(m, "hit_rate", dec3)]
    for k, m in pg.get("methods", {}).items()
  ]
  dis = pg.get("dissimilarity_mean", {})
  point_note = (
    "Area share of the differing part (chance): "
    + ", ".join(f"{p} {a:.3f}" for p, a in area.items())
    + "; mean 1 − cos of the part pairs: "
    + ", ".join(f"{p} {d:.1e}" for p, d in dis.items())
    + "."
  )
  return "\n\n".join(
    [
      f"{run.header()}. Verification on the test identities (Table I analog):",
      rec,
      f"Hiding game (blur σ = {sigma} px), sorted by AUC:",
      hide,
      "Pointing game on rendered pairs that differ in one part (mass of the map in the part):",
      table(["map", "share of mass in the part", "hit rate"], point_rows),
      point_note,
    ]
  )


def attributes_section(run: Run) -> str:
  r = run.json("eval/attributes.json")
  labels = {
    "separate": "Ours-S (separate)",
    "joint": "Ours-J (joint, Kronecker)",
    "concat": "concat [u, v]",
  }
  variants = r.get("variants", {})
  counts: list[str] = []
  for v in variants.values():
    for c in dig(v, "pretrained", "identification", "rank1_by_distractors") or {}:
      if not c.endswith("_ci95") and c not in counts:
        counts.append(c)
  rows = []
  for name, v in variants.items():
    for stage in ("pretrained", "finetuned"):
      by = dig(v, stage, "identification", "rank1_by_distractors")
      rows.append([labels.get(name, name), stage] + [cell(by, c) for c in counts])
  ident = table(["variant", "stage"] + [f"rank-1 % ({c} distractors)" for c in counts], rows)
  attr_rows = [
    [labels.get(n, n), cell(dig(v, "pretrained", "attributes_test"), "mean_accuracy")]
    for n, v in variants.items()
  ]
  parts = [
    f"{run.header()}:",
    ident,
    "Mean attribute accuracy on the test identities (stage 1):",
    table(["variant", "mean attribute accuracy %"], attr_rows),
  ]
  pct2 = lambda x: f"{100 * x:.2f}"  # noqa: E731
  cams = {n: dig(v, "pretrained", "cam", "per_attribute") for n, v in variants.items()}
  cams = {n: c for n, c in cams.items() if isinstance(c, Mapping)}
  if cams:
    first = next(iter(cams.values()))
    attrs = [a for a, x in first.items() if isinstance(x, Mapping) and x.get("region")]
    parts += [
      "Share % of each attribute's class-activation-map mass inside its face region (stage 1, "
      "images with the attribute; area: the region's share of the image):",
      table(
        ["attribute", "region", "area %"] + [labels.get(n, n) for n in cams],
        [
          [a, first[a]["region"], cell(first[a], "area", pct2)]
          + [cell(c.get(a), "share", pct2) for c in cams.values()]
          for a in attrs
        ],
      ),
    ]
  return "\n\n".join(parts)


def interpretable_section(run: Run) -> str:
  top = run.json("eval/interpretable.json")
  rows, retr = [], []
  for v in top.get("variants", []):
    p = run.json(f"{v}/eval/peak_spread.json")
    rec = run.json(f"{v}/eval/recognition.json")
    std = None
    if dig(p, "pos", "mean_std") is not None and dig(p, "neg", "mean_std") is not None:
      std = (p["pos"]["mean_std"] + p["neg"]["mean_std"]) / 2
    on_face = f"{pct(dig(p, 'pos', 'on_face') or 0)} / {pct(dig(p, 'neg', 'on_face') or 0)}"
    r1 = [  # the interval of cmc[k] sits in the sibling cmc_ci95[k]
      fmt_interval(
        dig(rec, s, "identification", "cmc", "rank1"),
        dig(rec, s, "identification", "cmc_ci95", "rank1"),
        pct,
      )
      for s in ("original", "synthetic_occlusion", "natural_occlusion")
    ]
    tar = [
      cell(dig(rec, s, "verification", "tar_at_far"), "0.01")
      for s in ("original", "synthetic_occlusion")
    ]
    rows.append(
      [v, cell(p, "spreadness", lambda x: f"{x:.1f}"), "" if std is None else f"{std:.1f}", on_face]
      + [" / ".join(r1), " / ".join(tar)]
    )
    pr = run.json(f"{v}/eval/partial_retrieval.json")
    if pr:
      retr.append(
        [v] + [cell(pr, k) for k in ("eyes", "nose", "mouth", "random_filters", "all_filters")]
      )
  main = table(
    [
      "variant", "d̄ px", "peak std px", "peaks on face % (pos / neg)",
      "rank-1 % clean / occluded / glasses-scarf", "TAR@1e-2 % clean / occluded",
    ],
    rows,
  )  # fmt: skip
  parts = [f"{run.header()}. Test identities:", main]
  diff_rows = []
  for v in top.get("variants", []):
    fd = run.json(f"{v}/eval/feature_difference.json")
    names = [k for k, x in fd.items() if isinstance(x, Mapping) and "normalised" in x]
    if names:
      means = [sum(fd[k]["normalised"]) / len(fd[k]["normalised"]) for k in names]
      diff_rows.append((v, names, means))
  if diff_rows:
    parts += [
      (
        "Occlusion sensitivity: mean |f(I) − f(Î)| of the normalised features (√K f / ‖f‖) when "
        "one part is occluded:"
      ),
      table(
        ["variant"] + diff_rows[0][1],
        [[v] + [f"{m:.3f}" for m in means] for v, _, means in diff_rows],
      ),
    ]
  if retr:
    parts += [
      "Partial-face retrieval by part filters (rank-1 %):",
      table(["variant", "eyes", "nose", "mouth", "random filter subsets", "all filters"], retr),
    ]
  return "\n\n".join(parts)


def _fan_grid(results: Mapping, title: str, cols_label: Callable[[str], str]) -> list[str]:
  """Rows = aggregation methods, columns = the settings of each (N, or a blur kernel): the
  10-fold accuracy % (all-pairs EER %), with intervals where the results carry them."""
  methods = {m: by for m, by in results.items() if m != "checkpoint" and isinstance(by, Mapping)}
  cols: list[str] = []
  for by in methods.values():
    cols += [c for c, v in by.items() if isinstance(v, Mapping) and c not in cols]
  rows = []
  for m, by in methods.items():
    row = [m]
    for c in cols:
      r = by.get(c)
      row.append(f"{cell(r, 'accuracy')} ({cell(r.get('all_pairs'), 'eer')})" if r else "")
    rows.append(row)
  return [title, table(["method"] + [cols_label(c) for c in cols], rows)]


def fan_section(run: Run) -> str:
  ytf = run.json("eval/fan_ytf.json")
  blur = run.json("eval/fan_blur.json")
  ijb = run.json("eval/fan_ijb.json")
  parts = [f"{run.header()}:"]
  if ytf:
    parts += _fan_grid(ytf, "YTF-like accuracy % (EER over all clip pairs %):", str)
  if blur:
    title = "Motion blur on all but one frame of each clip, accuracy % (all-pairs EER %):"
    parts += _fan_grid(blur, title, lambda c: f"kernel {c}")
  if ijb:
    rows = []
    for m, r in ijb.items():
      mean = dig(r, "mean")
      if isinstance(mean, Mapping):
        tpir = mean.get("tpir_at_fpir", {})
        rows.append([m, cell(mean, "rank1"), cell(tpir, "0.1"), cell(tpir, "0.01")])
    cost = ijb.get("extraction_cost", {})
    parts += [
      "IJB-like 1:N (mixed stills and clips, mean of the galleries), %:",
      table(["method", "rank-1", "TPIR@FPIR 0.1", "TPIR@FPIR 0.01"], rows),
    ]
    if cost:
      parts.append(
        f"Feature extractions: {cost.get('extractions_aggregated')} with the aggregator against "
        f"{cost.get('extractions_avg')} for `avg`."
      )
  quality = run.json("eval/fan_quality.json")
  if quality:
    rows = [
      [
        m,
        cell(r, "psnr", lambda x: f"{x:.2f}"),
        cell(r, "ssim", dec3),
        cell(r, "identity", dec3),
        cell(r, "sharpness", dec3),
        cell(r, "checkerboard", dec3),
      ]
      for m, r in quality.get("methods", {}).items()
    ]
    parts += [
      (
        f"Aggregated-face quality against the canonical faces ({quality.get('num_clips')} clips "
        f"of {quality.get('num_identities')} identities, {quality.get('set_size')} frames each; "
        "95 % intervals over identities):"
      ),
      table(
        [
          "method",
          "PSNR dB",
          "SSIM",
          "identity cosine",
          "sharpness (sharpest input = 1)",
          "checkerboard (inputs' = 1)",
        ],
        rows,
      ),
    ]
  return "\n\n".join(parts)


def headroom_section(run: Run) -> str:
  """The plain softmax baseline (how much room the face world leaves each method)."""
  r = run.json("eval/recognition.json")
  v, i = r.get("verification", {}), r.get("identification", {})
  cmc, tpir, tar = i.get("cmc", {}), i.get("tpir_at_fpir", {}), v.get("tar_at_far", {})
  rows = [
    [
      f"verification, {v.get('num_pairs')} pairs in 10 folds",
      f"accuracy {cell(v, 'accuracy')} %, EER {cell(v, 'eer')} %, AUC {cell(v, 'auc', dec3)}",
    ],
    [
      "verification TAR @ FAR 1e-2 / 1e-3",
      f"{cell(tar, '0.01', dec3)} / {cell(tar, '0.001', dec3)}",
    ],
    [
      (
        f"closed-set identification ({i.get('num_gallery')} enrolled, {i.get('num_mated')} mated "
        "probes)"
      ),
      ", ".join(
        f"{k.replace('rank', 'rank-')} {fmt_interval(v, i.get('cmc_ci95', {}).get(k), pct)} %"
        for k, v in cmc.items()
        if "_ci95" not in k
      ),
    ],
    [
      "open-set identification (identities not enrolled)",
      f"TPIR @ FPIR 0.01 / 0.1 = {cell(tpir, '0.01', dec3)} / {cell(tpir, '0.1', dec3)}",
    ],
  ]
  return "\n\n".join([f"{run.header()}:", table(["protocol", "figure"], rows)])


def _point(folder: Path, spec: Mapping) -> dict | None:
  """One learning-curve point from a run's results folder: the comparison ``spec['comparison']``
  of any of its ``eval/*.json`` (with its interval), else the templates ``effects`` entry whose
  claim starts with ``spec['effect']`` (difference and splits with the claimed sign)."""
  config = (
    json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
  )
  for path in sorted(folder.rglob("eval/*.json")):
    r = json.loads(path.read_text())
    entry = (r.get("comparisons") or {}).get(spec.get("comparison", ""))
    if entry:
      return {
        "steps": config.get("num_train_steps"),
        "diff": entry["diff"],
        "ci95": entry.get("ci95"),
      }
    for e in r.get("effects", []):
      if spec.get("effect") and e["claim"].startswith(spec["effect"]):
        return {
          "steps": config.get("num_train_steps"),
          "diff": e["difference"],
          "sign": f"{e['splits_with_claimed_sign']}/{e['splits']}",
        }
  return None


def curve_points(results_dir: Path, name: str) -> tuple[dict, list[dict]]:
  """``(spec, points)`` of ``results/curves/<name>/``: ``spec.json`` names the method, the
  comparison (or templates effect) and the default run (``results/<method>/``), and may say
  how the schedule scales with the length (``schedule``) and what was not run (``not_run``);
  each sub-folder is one more training length. Points are sorted by training steps."""
  folder = results_dir / "curves" / name
  spec = json.loads((folder / "spec.json").read_text())
  folders = [results_dir / spec["method"]] + sorted(p for p in folder.iterdir() if p.is_dir())
  points = [p for p in (_point(f, spec) for f in folders if f.is_dir()) if p is not None]
  return spec, sorted(points, key=lambda p: p["steps"] or 0)


def curve_figure(spec: Mapping, points: list[dict], path: Path) -> None:
  """The compared difference against training steps (log axis), 95 % intervals as error bars
  where the results carry them, and the zero line (above: the paper's claim holds)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
  x = [p["steps"] for p in points]
  y = [p["diff"] for p in points]
  ci = [p.get("ci95") for p in points]
  if all(c is not None for c in ci):
    err = [[v - c[0] for v, c in zip(y, ci)], [c[1] - v for v, c in zip(y, ci)]]
    ax.errorbar(x, y, yerr=err, marker="o", capsize=3)
  else:
    ax.plot(x, y, marker="o")
  ax.axhline(0.0, color="grey", lw=0.8)
  ax.axvline(spec["default_steps"], color="grey", ls=":", lw=0.8)
  ax.set_xscale("log", base=2)
  ax.set_xticks(x, [str(v) for v in x])
  ax.set_xlabel("training steps (dotted: the default)")
  ax.set_ylabel(textwrap.fill(f"difference, {spec['metric']}", 36), fontsize=8)
  ax.set_title(textwrap.fill(spec["title"], 60), fontsize=9)
  fig.tight_layout()
  fig.savefig(path, metadata={"Software": None})
  plt.close(fig)


def curve_trend(spec: Mapping, points: list[dict]) -> str:
  """One sentence: how the difference moves from the default training length to the longest
  (from the shortest when the default is the longest)."""
  first = next((p for p in points if p["steps"] == spec["default_steps"]), points[0])
  last = points[-1]
  if first is last:
    first = points[0]
  a, b = first["diff"], last["diff"]
  if a * b < 0:
    how = "changes sign"
  elif abs(b) > abs(a):
    how = "moves away from zero (the gap widens)" if a < 0 else "grows (the claim holds more)"
  else:
    how = "moves towards zero (the gap narrows)" if a < 0 else "shrinks"
  return (
    f"From {first['steps']} to {last['steps']} steps the difference {how}: {a:+.3f} → {b:+.3f}."
  )


def curves_section(results_dir: Path, figures: bool = False) -> str:
  """The learning curves of ``results/curves/*/spec.json``; ``figures`` also (re)writes each
  ``curve.png`` next to its spec."""
  curves = results_dir / "curves"
  specs = sorted(curves.glob("*/spec.json")) if curves.is_dir() else []
  if not specs:
    return "No learning curve has been run yet."
  out = []
  for spec_path in specs:
    name = spec_path.parent.name
    spec, points = curve_points(results_dir, name)
    if figures and len(points) > 1:
      curve_figure(spec, points, spec_path.parent / "curve.png")
    rows = []
    for p in points:
      shown = fmt_interval(p["diff"], p.get("ci95"), lambda x: f"{x:+.3f}")
      if "sign" in p:
        rows.append([str(p["steps"]), shown, f"claimed sign in {p['sign']} splits"])
      else:
        rows.append([str(p["steps"]), shown, verdict(p.get("ci95"))])
    rel = spec_path.parent.relative_to(results_dir.parent)
    figure = f", figure `{rel}/curve.png`" if len(points) > 1 else ""
    out += [
      (
        f"{spec['title']} ({spec['metric']}; default {spec['default_steps']} steps; "
        f"`{rel}/`{figure}):"
      ),
      table(["training steps", "difference a − b [95 % interval]", "verdict"], rows),
    ]
    if len(points) > 1:
      out.append(f"![{spec['title']}]({rel}/curve.png)")
      out.append(curve_trend(spec, points))
    if spec.get("schedule"):
      out.append("Schedule at other lengths: " + spec["schedule"])
    if spec.get("not_run"):
      out.append("Not run: " + spec["not_run"])
  return "\n\n".join(out)


def sections(results_dir: Path, figures: bool = False) -> dict[str, str]:
  """``{NAME: generated Markdown}`` for every name of :data:`SECTIONS` (``figures``: also
  write the learning-curve figures)."""
  runs = load_runs(results_dir)
  makers = {
    "templates": templates_section,
    "explain": explain_section,
    "attributes": attributes_section,
    "interpretable": interpretable_section,
    "fan": fan_section,
    "headroom": headroom_section,
  }
  out = {
    "claims": claims_section(results_dir, runs),
    "curves": curves_section(results_dir, figures),
  }
  for name, make in makers.items():
    folder = FOLDERS.get(name, name)
    if folder in runs:
      out[name] = "\n\n".join([make(runs[folder])] + method_comparisons(results_dir, folder))
    else:
      out[name] = _missing(folder)
  return out


# ----------------------------------------------------------------------- README rewriting


def rewrite(text: str, blocks: Mapping[str, str]) -> str:
  """``text`` with the body between each ``<!-- results:NAME begin/end -->`` pair replaced by
  ``blocks[NAME]``. Raises ``ValueError`` naming the markers when a name of ``blocks`` has no
  (or more than one) begin/end pair, when an end precedes its begin, or when the text holds a
  marker of a name that ``blocks`` lacks."""
  found: dict[str, list[tuple[str, int, int]]] = {}
  for m in _MARKER.finditer(text):
    found.setdefault(m.group(1), []).append((m.group(2), m.start(), m.end()))
  unknown = sorted(set(found) - set(blocks))
  if unknown:
    raise ValueError(f"README markers: unknown section(s) {unknown}; known: {sorted(blocks)}")
  bad = [n for n in blocks if [k for k, _, _ in found.get(n, [])] != ["begin", "end"]]
  if bad:
    raise ValueError(
      "README markers: each of " + ", ".join(f"results:{n}" for n in bad) + " needs exactly one "
      "'<!-- results:NAME begin -->' followed by one '<!-- results:NAME end -->'"
    )
  spans = sorted((found[n][0][2], found[n][1][1], n) for n in blocks)
  out, pos = [], 0
  for start, end, name in spans:
    if start < pos:
      raise ValueError(f"README markers: results:{name} overlaps another section")
    out += [text[pos:start], "\n", blocks[name].rstrip("\n"), "\n"]
    pos = end
  out.append(text[pos:])
  return "".join(out)


RUN_FILES = ("command.txt", "config.json")
# Figures kept with a method's results (``figures/<name>`` of the run), so that the README can
# show them: the FAN's aggregated faces, which issue 17 asks a reader to look at.
KEPT_FIGURES: dict[str, tuple[str, ...]] = {
  "fan": ("fan_aggregation_full_clean.png", "fan_quality_faces.png"),
}


def collect(workdir: Path, target: Path, commit: str) -> list[Path]:
  """Replaces ``target`` (``results/<method>/``) by the run's ``eval/*.json`` files (at their
  paths relative to ``workdir``, incl. sub-runs such as ``baseline/eval``), ``command.txt`` and
  ``config.json`` and the figures :data:`KEPT_FIGURES` names for ``target.name``, and writes
  ``commit.txt`` (the commit of the code the run used); checkpoints, other figures and logs stay
  in the workdir. Returns the files."""
  files = sorted(workdir.rglob("eval/*.json")) + [workdir / f for f in RUN_FILES]
  files = [f for f in files if f.is_file()]
  if not any(f.suffix == ".json" and f.parent.name == "eval" for f in files):
    raise ValueError(f"workdir: no eval/*.json under {workdir}")
  figures = [workdir / "figures" / name for name in KEPT_FIGURES.get(target.name, ())]
  missing = [str(f) for f in figures if not f.is_file()]
  if missing:
    raise ValueError(f"workdir: the figures kept for {target.name!r} are missing: {missing}")
  files += figures
  if target.exists():
    shutil.rmtree(target)
  out = []
  for f in files:
    dest = target / f.relative_to(workdir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f, dest)
    out.append(dest)
  (target / "commit.txt").write_text(commit.strip() + "\n")
  return out + [target / "commit.txt"]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
  parser.add_argument("--results", type=Path, default=ROOT / "results")
  parser.add_argument("--check", action="store_true", help="exit 1 if README.md would change")
  parser.add_argument(
    "--collect",
    nargs=2,
    metavar=("WORKDIR", "NAME"),
    help="first copy a finished run's results files into results/NAME/ (replacing it)",
  )
  parser.add_argument(
    "--commit",
    default=None,
    help="with --collect: the commit the run's code was at (default: git HEAD now)",
  )
  args = parser.parse_args(argv)
  if args.collect:
    commit = (
      args.commit
      or subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
      ).stdout
    )
    collect(Path(args.collect[0]), args.results / args.collect[1], commit)
  text = args.readme.read_text(encoding="utf-8")
  new = rewrite(text, sections(args.results, figures=not args.check))
  if args.check:
    if new != text:
      diff = difflib.unified_diff(
        text.splitlines(), new.splitlines(), "README.md", "generated", lineterm=""
      )
      print("\n".join(list(diff)[:200]))
      print("README.md is out of date: run python scripts/readme_results.py")
      return 1
    return 0
  if new != text:
    args.readme.write_text(new, encoding="utf-8")
  return 0


if __name__ == "__main__":
  sys.exit(main())
