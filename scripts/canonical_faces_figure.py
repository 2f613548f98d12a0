"""A PNG grid of canonical faces beside the stills and video frames of their identities.

Per identity (one row): three stills, the canonical face (default framing), three frames
of one clip (first, middle, last), the canonical face at the clip's mean framing (:func:`clip_framing`) and that face with its face-region mask
(pixels outside the mask dimmed). Stills and clips are drawn with the nuisance seeds the
``synthetic_faces`` data set uses for its ``test`` / ``video`` splits, so the rows show
what a data set example and its ``canonical_face`` feature look like.

Usage::

  python scripts/canonical_faces_figure.py --out=/tmp/canonical_grid.png --size=64
"""

from __future__ import annotations

import argparse

import numpy as np

from jfr.data import face_renderer as fr
from jfr.data import synthetic_faces
from jfr.report import figures


def identity_row(seed: int, ident: int, size: int, frames: int) -> list[np.ndarray]:
  """Stills, canonical face, clip frames, framed canonical face and its mask, one identity."""
  code = synthetic_faces.SPLIT_CODES
  lat = fr.identity_latents(seed, np.array([ident]))
  stills = []
  for k in range(3):
    rng = np.random.default_rng(np.random.SeedSequence([seed, code["test"], ident, k]))
    nui = fr.sample_nuisances(rng, 1, occluder_prob=0.1, eyeglasses_prob=0.1)
    stills.append(fr.render(lat, nui, size, seed_or_rng=seed)["image"][0])
  rng = np.random.default_rng(np.random.SeedSequence([seed, code["video"], ident, 1000]))
  clip = fr.video_nuisances(rng, frames, eyeglasses_prob=0.1, motion_blur_prob=0.3)
  lat_t = {k: np.repeat(v, frames, 0) for k, v in lat.items()}
  video = fr.render(lat_t, clip, size, seed_or_rng=seed)["image"]
  plain = fr.canonical_face(lat, size)["image"][0]
  framed = fr.canonical_face(lat, size, framing=fr.clip_framing(clip))
  dimmed = np.where(framed["mask"][0, ..., None], framed["image"][0], framed["image"][0] // 4)
  picks = [video[0], video[frames // 2], video[-1]]
  return [*stills, plain, *picks, framed["image"][0], dimmed.astype(np.uint8)]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="canonical_grid.png")
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--identities", type=int, default=8)
  parser.add_argument("--first", type=int, default=400, help="first identity id (test ids)")
  parser.add_argument("--frames", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  ids = range(args.first, args.first + args.identities)
  rows = [identity_row(args.seed, i, args.size, args.frames) for i in ids]
  cols = [
    "still 0",
    "still 1",
    "still 2",
    "canonical",
    "frame 0",
    "frame T/2",
    "frame T-1",
    "canonical\n(clip framing)",
    "face-region\nmask",
  ]
  fig = figures.image_grid(rows, row_labels=[f"id {i}" for i in ids], col_labels=cols)
  print(figures.save_figure(fig, args.out))


if __name__ == "__main__":
  main()
