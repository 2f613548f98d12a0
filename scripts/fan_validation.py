r"""Choose FAN aggregator options on held-out TRAIN identities (issue 17 item 3), never on the
test identities.

Trains only the ``full`` aggregator of ``configs/fan.py`` (plus ``--set`` overrides) against
the frozen extractor of a finished FAN run, on ``train_video`` minus the last
``--val_fraction`` of its identities, then scores the held-out clips (``--set_size`` frames
spread evenly over each clip) like the ``fan_quality`` evaluator: PSNR / SSIM to each clip's
canonical face (rendered here by :func:`jfr.data.synthetic_faces.clip_canonical_faces`: the
training split stores none, and training never reads them), identity cosine to the identity's
centre of train stills, relative sharpness, checkerboard score and rank-1 among the held-out
centres, for the aggregator and the baselines (pixel mean, sharpest and middle frame).

  python scripts/fan_validation.py --extractor=/tmp/jfr_fan --out=/tmp/val/wmean \
      --set aggregator.residual="'weighted_mean'" --set num_train_steps=500

Writes ``<out>/metrics.json`` (metric means per method and ``full`` minus ``pixel_mean``) and
``<out>/grid.png`` (frames, pixel mean, aggregate, canonical face).
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs import fan as fan_config  # noqa: E402
from jfr.context import RunContext  # noqa: E402
from jfr.data import pipelines, synthetic_faces  # noqa: E402
from jfr.eval import fan_quality as fq  # noqa: E402
from jfr.methods.fan import aggregator, settings, trainer  # noqa: E402
from jfr.methods.recognition import trainer as recognition_trainer  # noqa: E402


def apply_overrides(config, overrides: list[str]):
  """``key.path=python_literal`` strings applied to ``config`` (unknown keys raise)."""
  with config.unlocked():
    for item in overrides:
      key, _, value = item.partition("=")
      if not value:
        raise ValueError(f"--set: expected key=value, got {item!r}")
      node, *path = [config, *key.split(".")]
      for part in path[:-1]:
        node = node[part]
      if path[-1] not in node:
        raise ValueError(f"--set: unknown config key {key!r}")
      node[path[-1]] = ast.literal_eval(value)
    config.variants = ("full",)
  return config


def validate(config, extractor_run: Path, out: Path, val_fraction: float, set_size: int) -> dict:
  """Trains on the train identities minus the held-out ones and scores those (docstring)."""
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(f"val_fraction: expected a float in (0, 1), got {val_fraction}")
  context = RunContext.from_config(config)
  extractor, _ = recognition_trainer.restore(
    settings.extractor_config(config),
    extractor_run / "extractor",
    context.num_classes,
    context.image_size,
  )
  data = trainer.load_training_data(config, context)
  ids = np.unique(data.videos["labels"])
  val_ids = ids[-max(1, int(round(val_fraction * len(ids)))) :]
  held_out = np.isin(data.videos["labels"], val_ids)
  train = {k: v[~held_out] for k, v in data.videos.items()}
  val = {k: v[held_out] for k, v in data.videos.items()}
  centers, _ = trainer.identity_centers(config, data.stills, extractor, context.num_classes)
  start = time.time()
  generator = trainer.train_aggregator(
    config,
    out / "work",
    "full",
    extractor,
    centers,
    trainer.initial_variables(config, context.image_size),
    trainer.TrainingData(train, data.stills, data.image_size),
  )
  train_s = time.time() - start

  canon = synthetic_faces.clip_canonical_faces(
    context.builder.builder_config, config.dataset.train_video_split, val_ids
  )
  row = np.searchsorted(canon["video_ids"], val["video_ids"])
  reference = pipelines.to_model_range_np(canon["image"][row])
  region = canon["mask"][row]
  pick = np.linspace(0, val["lengths"] - 1, set_size).T.round().astype(int)  # [V, N]
  sets = pipelines.to_model_range_np(val["frames"][np.arange(len(pick))[:, None], pick])
  aggregate = aggregator.make_aggregator(config, generator, context.image_size)
  images = fq.method_images(sets, region, {"full": aggregate})
  embed = aggregator.model_range_embedder(config, extractor)
  unit = lambda f: f / np.linalg.norm(f, axis=-1, keepdims=True)  # noqa: E731
  val_centres = unit(centers[val_ids])
  own = unit(centers[val["labels"]])
  results = {
    "train_s": round(train_s, 1),
    "val_identities": len(val_ids),
    "val_clips": len(pick),
    "methods": {},
  }
  for name, image in images.items():
    feats = np.asarray(embed(np.asarray(image, np.float32)))
    metrics = fq.clip_metrics(image, sets, reference, region, feats, own, 100.0)
    row_out = {k: float(np.mean(v)) for k, v in metrics.items()}
    nearest = val_ids[(unit(feats) @ val_centres.T).argmax(1)]
    row_out["rank1"] = float(np.mean(nearest == val["labels"]))
    results["methods"][name] = row_out
  full, mean = results["methods"]["full"], results["methods"]["pixel_mean"]
  results["full_minus_pixel_mean"] = {k: full[k] - mean[k] for k in full}
  _grid(sets, images, reference, out / "grid.png")
  return results


def _grid(sets, images, reference, path: Path, rows: int = 6) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  n = sets.shape[1]
  fig, axes = plt.subplots(rows, 7, figsize=(10.5, 1.6 * rows))
  show = lambda x: np.clip((x + 1) / 2, 0, 1)  # noqa: E731
  for r in range(rows):
    i = r * (len(sets) // rows)
    cols = [sets[i, j] for j in np.linspace(0, n - 1, 4).astype(int)]
    cols += [images["pixel_mean"][i], images["full"][i], reference[i]]
    titles = ["frame", "frame", "frame", "frame", "pixel mean", "full", "canonical"]
    for ax, im, title in zip(axes[r], cols, titles):
      ax.imshow(show(im), interpolation="nearest")
      ax.set_axis_off()
      if r == 0:
        ax.set_title(title, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--extractor", required=True, help="a finished FAN run (its extractor/)")
  parser.add_argument("--out", required=True, help="output folder (replaced)")
  parser.add_argument("--config", default="default", help="variant of configs/fan.py")
  parser.add_argument("--set", action="append", default=[], help="key.path=python_literal")
  parser.add_argument("--val_fraction", type=float, default=0.1)
  parser.add_argument("--set_size", type=int, default=10)
  args = parser.parse_args(argv)
  config = apply_overrides(fan_config.get_config(args.config), args.set)
  out = Path(args.out)
  shutil.rmtree(out, ignore_errors=True)
  out.mkdir(parents=True)
  results = validate(config, Path(args.extractor), out, args.val_fraction, args.set_size)
  results["overrides"] = args.set
  (out / "metrics.json").write_text(json.dumps(results, indent=1))
  print(json.dumps(results["full_minus_pixel_mean"], indent=1))
  return results


if __name__ == "__main__":
  main()
