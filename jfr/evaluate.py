r"""Runs a standard face-recognition benchmark on a trained run.

  python -m jfr.evaluate --workdir=RUN --benchmark=B --data=PATH [--flip] [--batch_size=256]
      [--allow_older_checkpoint] [--setting=key=value ...]

Benchmarks (``--data`` in brackets):

  insightface_bin  insightface verification sets: 10-fold accuracy and accuracy-flip as
                   arcface_torch reports them [a .bin file, or a folder of them]
  lfw              LFW verification, View 2 pairs.txt 10-fold, or View 1 (--setting=view=1)
                   [a folder with lfw/ and pairs.txt / pairsDevTrain.txt / pairsDevTest.txt]
  ytf              YouTube Faces video pairs: feature averaging and the run's set aggregator
                   [a folder with splits.txt and aligned_images_DB/]
  ijb              IJB-B / IJB-C 1:1 TAR@FAR 1e-6..1e-1, 1:N CMC and TPIR@FPIR
                   [insightface's IJBB or IJBC folder: meta/, loose_crop/]
  ijba             IJB-A ten splits, 1:N and 1:1 [the IJB-A folder: IJB-A_11_sets/,
                   IJB-A_1N_sets/, images/]

The run's model is rebuilt from its workdir (config.json, data_facts.json, newest
checkpoint). Results: <workdir>/eval/<name>.json (with the checkpoint step) and .md, the
ROC/CMC figures in <workdir>/figures/, the report printed; image embeddings are cached in
<workdir>/cache/<benchmark>_<step>_*.npz (reused when the same files and settings come again).
"""

import ast
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

BENCHMARKS = ("insightface_bin", "lfw", "ytf", "ijb", "ijba")

_WORKDIR = flags.DEFINE_string("workdir", None, "The trained run's directory.")
_BENCHMARK = flags.DEFINE_enum(
  "benchmark", None, BENCHMARKS, "The benchmark: " + ", ".join(BENCHMARKS) + "."
)
_DATA = flags.DEFINE_string("data", None, "The benchmark's files (see the list above).")
_FLIP = flags.DEFINE_bool(
  "flip", None, "Flip test: features f(x) + f(mirror(x)) (default: on for insightface_bin, "
  "where both figures are reported; off elsewhere)."
)  # fmt: skip
_BATCH = flags.DEFINE_integer("batch_size", 256, "Images per forward pass.")
_ALLOW_OLDER = flags.DEFINE_bool(
  "allow_older_checkpoint", False, "Evaluate the newest usable checkpoint when the newest is damaged."
)  # fmt: skip
_NAME = flags.DEFINE_string("name", None, "Results name (default: the benchmark's name).")
_CACHE = flags.DEFINE_bool("cache", True, "Cache embeddings in <workdir>/cache.")
_SETTINGS = flags.DEFINE_multi_string(
  "setting", [], "Further evaluator settings key=value (Python literal or string), e.g. "
  "view=1, landmarks=/path/lfw_5pts.txt, frames_per_video=100, max_set_size=32, "
  "detector_score=False, crop_fraction=0.6."
)  # fmt: skip
flags.mark_flags_as_required(["workdir", "benchmark", "data"])


def parse_settings(items: list[str]) -> dict:
  """``['view=1', 'landmarks=/x']`` -> ``{'view': 1, 'landmarks': '/x'}``."""
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise app.UsageError(f"--setting: expected key=value, got {item!r}")
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
  return out


def _tqdm_progress(total: int, description: str):
  from tqdm import tqdm

  return tqdm(total=total, desc=description, unit="img", file=sys.stderr, dynamic_ncols=True)


def evaluate(
  workdir: str,
  benchmark: str,
  data: str,
  *,
  flip: bool | None = None,
  batch_size: int = 256,
  allow_older: bool = False,
  name: str | None = None,
  cache: bool = True,
  settings: dict | None = None,
  progress=None,
) -> dict:
  """Runs ``benchmark`` on the run in ``workdir`` and writes its results (module docstring);
  returns the results dict."""
  from jfr.eval import registry
  from jfr.methods import registry as methods
  from jfr import report

  if benchmark not in BENCHMARKS:
    raise ValueError(f"benchmark: expected one of {BENCHMARKS}, got {benchmark!r}")
  model, info = methods.load_eval_model(workdir, batch_size=batch_size, allow_older=allow_older)
  full = dict(settings or {}, data=data, batch_size=batch_size, progress=progress)
  if flip is not None:
    full["flip"] = flip
  if cache:
    full["cache"] = os.path.join(workdir, "cache", f"{benchmark}_{info['step']}")
  timer = report.PhaseTimer()
  with timer.phase(benchmark):
    results = registry.evaluate(benchmark, model, None, full, seed=0)
  figures = {}
  if results.get("_roc"):
    figures["roc"] = report.roc_figure(results["_roc"], f"{benchmark} ROC")
  if results.get("_cmc"):
    figures["cmc"] = report.cmc_figure(results["_cmc"], f"{benchmark} CMC")
  written = {k: v for k, v in results.items() if not k.startswith("_")}
  written.update(benchmark=benchmark, data=os.path.abspath(data), timing=timer.phases)
  report.write_results(
    workdir,
    name or benchmark,
    written,
    markdown=results.get("_markdown"),
    figures=figures,
    checkpoint=info,
  )
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import tensorflow as tf  # keep TF (image resizing) off any accelerator: JAX owns it

  tf.config.set_visible_devices([], "GPU")
  results = evaluate(
    _WORKDIR.value,
    _BENCHMARK.value,
    _DATA.value,
    flip=_FLIP.value,
    batch_size=_BATCH.value,
    allow_older=_ALLOW_OLDER.value,
    name=_NAME.value,
    cache=_CACHE.value,
    settings=parse_settings(_SETTINGS.value),
    progress=_tqdm_progress,
  )
  print(results.get("_markdown", ""))
  name = _NAME.value or _BENCHMARK.value
  print(f"results: {os.path.join(_WORKDIR.value, 'eval', name + '.json')}")


if __name__ == "__main__":
  app.run(main)
