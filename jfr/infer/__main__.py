r"""Use a trained run on your own faces: ``python -m jfr.infer COMMAND --workdir=RUN [...]``.

The model comes from the run's checkpoint and recorded config (no training flags). Inputs
are image files, folders or list files; ``--landmarks`` (insightface five-point text, or
``.npy`` ``[N, 5, 2]``) aligns faces, otherwise images are taken as crops (see
:mod:`jfr.infer.inputs`). Outputs land in ``--out`` (default ``<workdir>/infer/<command>``):
``<command>.json`` and PNG figures (plus ``.npz``/``.npy`` arrays).

  embed      --images=DIR|FILES|LIST [--out=emb.npz]      features + file names (.npz)
  verify     A B [--far=1e-3 | --threshold=t]             cosine score and decision
  search     --gallery=DIR --probes=... [--top_k --fpir]  1:N ranked lists, open-set reject
  explain    A B [--methods=ours,gradient,grad_cam,grad_cam_pp]   saliency maps (explain runs)
  aggregate  --frames=DIR [--variant --reference]         FAN aggregated face (FAN runs)
  attributes IMG...                                       attribute probabilities + maps
  filters    IMG...                                       filter peaks + response maps
  templates  --templates=DIR [--bins=m]                   masks, masked descriptors, scores
  export     [--format=jax,saved_model]                   serialized embedder
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
from absl import logging

COMMANDS = (
  "embed",
  "verify",
  "search",
  "explain",
  "aggregate",
  "attributes",
  "filters",
  "templates",
  "export",
)

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The trained run (its config.json and checkpoints).")
flags.DEFINE_string(
  "out", None, "Output folder (embed: or an .npz path); default <workdir>/infer/<command>."
)
flags.DEFINE_list("images", None, "embed: image files, folders or list files.")
flags.DEFINE_string(
  "landmarks", None, "Five-point landmarks: insightface text file or .npy [N, 5, 2]."
)
flags.DEFINE_integer("batch_size", 64, "Faces per model call.")
flags.DEFINE_float("far", 1e-3, "verify: false accept rate of the stored threshold.")
flags.DEFINE_float(
  "fpir", 0.1, "search: false positive identification rate of the open-set threshold."
)
flags.DEFINE_float(
  "threshold", None, "verify/search: cosine threshold; explain: tau (overrides the stored one)."
)
flags.DEFINE_enum(
  "flip", "auto", ["auto", "yes", "no"], "verify: flip-averaged features (auto: as the thresholds)."
)
flags.DEFINE_integer("top_k", 5, "search: identities listed per probe.")
flags.DEFINE_string("gallery", None, "search: folder with one sub-folder of images per identity.")
flags.DEFINE_list("probes", None, "search: probe images, folders or list files.")
flags.DEFINE_list(
  "methods", ["ours", "gradient", "grad_cam", "grad_cam_pp"], "explain: map methods."
)
flags.DEFINE_list("frames", None, "aggregate: the frames (a folder, files or a list).")
flags.DEFINE_string("variant", None, "aggregate: FAN variant (default: the run's first).")
flags.DEFINE_list("reference", None, "aggregate: optional reference images to score against.")
flags.DEFINE_string("templates", None, "templates: folder with one sub-folder per template.")
flags.DEFINE_integer("bins", None, "templates: m, the bins kept per mask (default k/10).")
flags.DEFINE_list("format", ["jax", "saved_model"], "export: jax and/or saved_model.")
flags.DEFINE_bool("allow_older", False, "Use an older checkpoint when the newest is damaged.")


def _positional(argv: list[str], count: int | None, command: str) -> list[str]:
  if count is not None and len(argv) != count:
    raise app.UsageError(f"{command} takes {count} image paths, got {len(argv)}: {argv}")
  if count is None and not argv:
    raise app.UsageError(f"{command} takes one or more image paths")
  return argv


def _required(value, name: str, command: str):
  if not value:
    raise app.UsageError(f"{command} needs --{name}")
  return value


def run_command(command: str, args: list[str]) -> dict:
  """Runs ``command`` with the parsed flags; returns what it wrote (the JSON's content)."""
  from jfr.infer import commands

  if command not in COMMANDS:
    raise app.UsageError(f"COMMAND: expected one of {COMMANDS}, got {command!r}")
  workdir = _required(FLAGS.workdir, "workdir", command)
  out = FLAGS.out or os.path.join(workdir, "infer", command)
  common = dict(workdir=workdir, out=out, allow_older=FLAGS.allow_older)
  f = FLAGS
  if command == "embed":
    return commands.embed(
      **common,
      images=_required(f.images, "images", command),
      landmarks=f.landmarks,
      batch_size=f.batch_size,
    )
  if command == "verify":
    flip = None if f.flip == "auto" else f.flip == "yes"
    return commands.verify(
      **common,
      pair=_positional(args, 2, command),
      far=f.far,
      threshold=f.threshold,
      landmarks=f.landmarks,
      flip=flip,
    )
  if command == "search":
    return commands.search(
      **common,
      gallery=_required(f.gallery, "gallery", command),
      probes=_required(f.probes, "probes", command),
      top_k=f.top_k,
      fpir=f.fpir,
      threshold=f.threshold,
      landmarks=f.landmarks,
      batch_size=f.batch_size,
    )
  if command == "explain":
    return commands.explain(
      **common,
      pair=_positional(args, 2, command),
      methods=tuple(f.methods),
      threshold=f.threshold,
      landmarks=f.landmarks,
    )
  if command == "aggregate":
    return commands.aggregate(
      **common,
      frames=_required(f.frames, "frames", command),
      variant=f.variant,
      reference=f.reference,
      landmarks=f.landmarks,
    )
  if command in ("attributes", "filters"):
    fn = getattr(commands, command)
    return fn(
      **common,
      images=_positional(args, None, command) + list(f.images or []),
      landmarks=f.landmarks,
    )
  if command == "templates":
    return commands.templates(
      **common, folder=_required(f.templates, "templates", command), bins=f.bins
    )
  return commands.export(**common, formats=tuple(f.format))


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    raise app.UsageError(
      f"usage: python -m jfr.infer COMMAND --workdir=RUN ...; COMMAND in {COMMANDS}"
    )
  written = run_command(argv[1], argv[2:])
  logging.info("wrote %s", written.get("outputs"))
  print(written.get("summary", ""))


if __name__ == "__main__":
  app.run(main)
