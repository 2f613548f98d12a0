"""``templates``: identity-specific activation masks (Ferrari et al.) on a user's templates,
without IJB CSV files.

Input: a folder with one sub-folder per template, holding images (described by the run: its
``descriptors`` extra for a templates run, otherwise its embedding) or ``.npy`` descriptors
(``[k]`` or ``[n, k]`` each; a sub-folder holds one kind). Per template
(:mod:`jfr.templates`): the mean descriptor, the mask of its ``m`` most active bins
(:func:`~jfr.templates.activation_masks`) and the masked descriptors (Eq. 1); between
templates: the min-mean cosine distance ``d(A, B) = min_ij (1 - cos) + mean_ij (1 - cos)``
on the original and on the masked descriptors, and the cosine distance of the masks (Table
II). Scores reported as similarities ``2 - d`` (min-mean) and ``1 - d`` (masks).
"""

from __future__ import annotations

import os

import numpy as np

from jfr import templates as templates_lib
from jfr.data import image_files
from jfr.infer import recognize
from jfr.infer.loading import Run
from jfr.report import figures as figures_lib


def read_templates(folder: str) -> dict[str, dict]:
  """``{template: {'images': [paths]} or {'descriptors': [n, k], 'files': [paths]}}``."""
  skipped = image_files.SkipLog()
  names, _ = image_files.list_folder(folder, skipped)
  out: dict[str, dict] = {}
  for name in names:
    sub = os.path.join(folder, name)
    _, images = image_files.list_folder(sub, image_files.SkipLog())
    arrays = sorted(f for f in os.listdir(sub) if f.endswith(".npy") and not f.startswith("."))
    if images and arrays:
      raise ValueError(f"templates: {sub!r} mixes images and .npy descriptors; use one kind")
    if arrays:
      rows = []
      for f in arrays:
        a = np.load(os.path.join(sub, f)).astype(np.float32)
        if a.ndim not in (1, 2):
          raise ValueError(
            f"templates: {os.path.join(sub, f)!r} has shape {a.shape}, want [k]/[n, k]"
          )
        rows.append(a.reshape(-1, a.shape[-1]))
      out[name] = {"descriptors": np.concatenate(rows), "files": arrays}
    elif images:
      out[name] = {"images": [os.path.join(sub, f) for f in images]}
  if len(out) < 2:
    raise ValueError(f"templates: {folder!r} needs at least two sub-folders (one per template)")
  return out


def describe(run: Run | None, entries: dict[str, dict], batch_size: int = 64) -> np.ndarray:
  """Descriptors ``[n, k]`` of every template member, in template order."""
  rows = []
  for name, entry in entries.items():
    if "descriptors" in entry:
      rows.append(entry["descriptors"])
      continue
    if run is None:
      raise ValueError(f"templates: {name!r} holds images; describing them needs --workdir")
    fn = run.model.extras.get("descriptors", run.model.embed)
    res = recognize.embed_paths(
      fn, entry["images"], run.model.input_size, batch_size=batch_size, progress=False
    )
    rows.append(res["embeddings"])
  widths = {r.shape[1] for r in rows}
  if len(widths) != 1:
    raise ValueError(f"templates: descriptors of different sizes {sorted(widths)}")
  return np.concatenate(rows).astype(np.float32)


def analyse(descriptors: np.ndarray, template_ids: np.ndarray, names: list[str], m: int) -> dict:
  """Masks, masked descriptors and the three template score matrices (module docstring)."""
  t = len(names)
  k = descriptors.shape[1]
  if not 1 <= m <= k:
    raise ValueError(f"bins: expected 1 <= m <= k = {k}, got {m}")
  masks = np.asarray(templates_lib.activation_masks(descriptors, template_ids, t, m))
  masked = np.asarray(templates_lib.mask_descriptors(descriptors, template_ids, masks))
  original = templates_lib.min_mean_distance(
    descriptors, template_ids, t, descriptors, template_ids, t
  )
  masked_d = templates_lib.min_mean_distance(masked, template_ids, t, masked, template_ids, t)
  mask_d = templates_lib.mask_distance(masks, masks)
  return {
    "templates": names,
    "members": np.bincount(template_ids, minlength=t).tolist(),
    "k": int(k),
    "m": int(m),
    "masks": masks,
    "masked_descriptors": masked,
    "descriptors": descriptors,
    "template_ids": template_ids,
    "min_mean_similarity": 2.0 - np.asarray(original),
    "masked_min_mean_similarity": 2.0 - np.asarray(masked_d),
    "mask_similarity": 1.0 - np.asarray(mask_d),
  }


def run_templates(run: Run | None, folder: str, m: int | None = None) -> dict:
  """:func:`read_templates`, :func:`describe` and :func:`analyse` (``m`` default: 10% of
  ``k``, at least 2)."""
  entries = read_templates(folder)
  descriptors = describe(run, entries)
  ids = np.repeat(
    np.arange(len(entries)),
    [len(e.get("images", e.get("descriptors", []))) for e in entries.values()],
  )
  m = m or min(descriptors.shape[1], max(2, descriptors.shape[1] // 10))
  return analyse(descriptors, ids.astype(np.int32), list(entries), m)


MATRICES = {
  "min_mean_similarity": "min-mean, original",
  "masked_min_mean_similarity": "min-mean, masked (Eq. 1)",
  "mask_similarity": "mask cosine (Table II)",
}


def templates_figure(result: dict):
  """The three template x template score matrices (annotated) and the masks (bins kept)."""
  names, t = result["templates"], len(result["templates"])
  fig = figures_lib.new_figure(3.2 * 3 + 0.5, 3.0 + 0.25 * t + 1.2)
  grid = fig.add_gridspec(2, 3, height_ratios=[3.0, 0.6 + 0.2 * t])
  for col, (key, title) in enumerate(MATRICES.items()):
    ax = fig.add_subplot(grid[0, col])
    values = result[key]
    ax.imshow(values, cmap="viridis")
    for i in range(t):
      for j in range(t):
        bright = values[i, j] > (values.min() + values.max()) / 2
        ax.text(
          j,
          i,
          f"{values[i, j]:.2f}",
          ha="center",
          va="center",
          fontsize=6,
          color="black" if bright else "white",
        )
    ax.set_xticks(range(t), names, rotation=45, fontsize=6, ha="right")
    ax.set_yticks(range(t), names, fontsize=6)
    ax.set_title(title, fontsize=8)
  ax = fig.add_subplot(grid[1, :])
  ax.imshow(result["masks"], aspect="auto", cmap="Greys", interpolation="nearest")
  ax.set_yticks(range(t), names, fontsize=6)
  ax.set_xlabel(
    f"descriptor bin (k = {result['k']}); black = one of the m = {result['m']} kept", fontsize=7
  )
  ax.tick_params(labelsize=6)
  fig.suptitle("Template scores (higher = more similar) and activation masks", fontsize=9)
  fig.tight_layout()
  return fig
