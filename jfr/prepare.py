r"""Real face data in the formats researchers hold -> a tfds data set jfr configs train on.

  python -m jfr.prepare --format=recordio --input=/data/faces_emore \
      --data_dir=/data/tfds --name=ms1mv2
  python -m jfr.main --config=configs/baseline.py --workdir=/tmp/run \
      --config.dataset.name=ms1mv2 --config.dataset.data_dir=/data/tfds

Formats (``--help`` lists them): see :data:`jfr.data.formats.FORMATS`. The data set has
the ``synthetic_faces`` features (missing ground truth as sentinels, what is real in its
metadata), ``train``/``test`` splits with disjoint identities (or the data set's own),
``train_video``/``video`` for video sources (:mod:`jfr.data.formats.writer`), and a
``prepare_report.json`` (identities, images per split, skipped files by reason,
alignment used, throughput). Images are decoded in ``--workers`` threads; an interrupted
run resumes shard by shard when rerun with the same arguments.

``--align``: ``auto`` (the format's default: five points where the format ships them,
boxes for YTF frames, else none), ``five_point`` (Umeyama to the ArcFace template; rows
without points fall back to their box, then to a centre crop), ``box`` (square crop
around the box with ``--margin``), ``none`` (centre square crop, resized; already
aligned ``image_size`` crops such as RecordIO's are stored byte for byte after a full
decode check).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import time
from typing import Optional

from absl import app, flags, logging
import numpy as np
from tqdm import auto as tqdm

from jfr.data import dataset_facts
from jfr.data import formats
from jfr.data.formats import writer

FORMAT_HELP = "; ".join(f"{k}: {v[1]}" for k, v in formats.FORMATS.items())


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program: the module is a library too)."""
  flags.DEFINE_enum("format", None, list(formats.FORMATS), f"Input format. {FORMAT_HELP}")
  flags.DEFINE_string("input", None, "Path of the data as it ships (see --format).")
  flags.DEFINE_string("data_dir", None, "tfds data_dir to write into (<data_dir>/<name>/).")
  flags.DEFINE_string("name", None, "Data set name (lower case, digits, _): config.dataset.name.")
  flags.DEFINE_integer("image_size", 112, "Side of the square output images.")
  flags.DEFINE_enum("align", "auto", ["auto", "five_point", "box", "none"], "Face alignment.")
  flags.DEFINE_float("margin", 0.2, "Box crops: extra fraction of the box side.")
  flags.DEFINE_string(
    "test_identities",
    "auto",
    "Test identities: a fraction (<1) or a count; auto = the data set's own split, else 0.1.",
  )
  flags.DEFINE_integer("seed", 0, "Seed of the test identity draw and the example order.")
  flags.DEFINE_bool("skip_unreadable", False, "List unreadable images in the report, not fail.")
  flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Encoding of re-rendered images.")
  flags.DEFINE_integer(
    "stills_per_video", 2, "Video sources: frames per video as train/test stills."
  )
  flags.DEFINE_integer("shard_size", 2000, "Examples per shard (the unit of resuming).")
  flags.DEFINE_integer("workers", 0, "Decoding threads (0: the usable CPUs).")


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def prepare(
  format_name: str,
  input_path: str,
  data_dir: str,
  name: str,
  *,
  image_size: int = 112,
  align: str = "auto",
  margin: float = 0.2,
  test_identities: str = "auto",
  seed: int = 0,
  skip_unreadable: bool = False,
  image_format: str = "png",
  stills_per_video: int = 2,
  shard_size: int = 2000,
  workers: int = 0,
  show_progress: bool = False,
) -> dict:
  """Prepares one data set (resuming a partial one); returns the report dict."""
  if not _NAME.match(name or ""):
    raise ValueError(f"name: expected lower case letters, digits and _, got {name!r}")
  if name == "synthetic_faces":
    raise ValueError("name: 'synthetic_faces' is the built-in builder; choose another name")
  if image_size < 8:
    raise ValueError(f"image_size: expected >= 8, got {image_size}")
  if shard_size < 1:
    raise ValueError(f"shard_size: expected >= 1, got {shard_size}")
  start = time.time()
  source = formats.read_source(format_name, input_path)
  align_mode = source.default_align if align == "auto" else align
  splits, new_label, (num_train, num_test) = writer.plan_splits(
    source, test_identities, seed, stills_per_video
  )
  root = os.path.join(data_dir, name)
  out_dir = os.path.join(root, writer.VERSION)
  report_path = os.path.join(root, writer.REPORT)
  state = dict(
    format=format_name,
    input=os.path.abspath(input_path),
    image_size=image_size,
    align=align_mode,
    margin=margin,
    test_identities=test_identities,
    seed=seed,
    image_format=image_format,
    stills_per_video=stills_per_video,
    shard_size=shard_size,
    rows=len(source),
    splits={k: int(v[0].size) for k, v in splits.items()},
  )
  if os.path.isfile(report_path):
    with open(report_path, encoding="utf-8") as f:
      report = json.load(f)
    if report.get("arguments") == state:
      logging.info("%s is already prepared (%s)", root, report_path)
      return report
    raise ValueError(f"{root} holds a data set prepared with other arguments; remove it first")
  writer.check_state(out_dir, state)
  order = np.argsort(new_label[: len(source.class_names)])
  has_labels = bool(np.any(source.labels >= 0))
  names = [source.class_names[i] for i in order[-(num_train + num_test) :]] if has_labels else []
  spec = writer.features(image_size, num_train + num_test, names)
  maker = writer.ExampleMaker(
    source, image_size, align_mode, new_label, margin=margin, image_format=image_format
  )
  total = sum(v[0].size for v in splits.values())
  bar = tqdm.tqdm(total=total, unit="img", desc=f"prepare {name}", disable=not show_progress)
  results = {}
  workers = workers or len(os.sched_getaffinity(0))
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for split, (rows, as_still) in splits.items():
      jobs = list(zip(rows.tolist(), as_still.tolist()))
      results[split] = writer.write_split(
        out_dir,
        name,
        split,
        jobs,
        maker,
        spec,
        shard_size=shard_size,
        pool=pool,
        skip_unreadable=skip_unreadable,
        progress=bar.update,
      )
  bar.close()
  present = {
    "label": has_labels,
    "attributes": source.attributes is not None,
    "landmarks": False,
    "landmarks5": source.landmarks5 is not None,
    "segmentation": False,
    "occluder_mask": False,
    "videos": "train_video" in results and "video" in results,
  }
  metadata = dict(
    jfr_prepared=True,
    format=format_name,
    present=present,
    sentinels={k: str(v) for k, v in writer.SENTINELS.items()},
    num_train_identities=num_train,
    num_test_identities=num_test,
    attribute_names=list(writer.ATTRIBUTE_NAMES),
    landmarks5_order=["left_eye", "right_eye", "nose", "left_mouth", "right_mouth"],
    align=align_mode,
  )
  writer.write_info(out_dir, spec, results, metadata, f"{format_name} data from {input_path}")
  skipped = source.skipped
  for result in results.values():
    skipped.merge(result["skipped"])
  elapsed = time.time() - start
  images = {k: int(sum(r["shard_lengths"])) for k, r in results.items()}
  report = dict(
    arguments=state,
    identities={"train": num_train, "test": num_test},
    images=images,
    skipped=skipped.to_json(),
    alignment={k: r["alignment"] for k, r in results.items()},
    present=present,
    notes=source.notes,
    seconds=round(elapsed, 2),
    images_per_second=round(total / max(elapsed, 1e-9), 1),
  )
  with open(report_path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1, default=str)
  os.replace(report_path + ".tmp", report_path)
  return report


def main(argv: Optional[list] = None) -> None:
  if argv and len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  for required in ("format", "input", "data_dir", "name"):
    if getattr(f, required) is None:
      raise app.UsageError(f"--{required} is required")
  report = prepare(
    f.format,
    f.input,
    f.data_dir,
    f.name,
    image_size=f.image_size,
    align=f.align,
    margin=f.margin,
    test_identities=f.test_identities,
    seed=f.seed,
    skip_unreadable=f.skip_unreadable,
    image_format=f.image_format,
    stills_per_video=f.stills_per_video,
    shard_size=f.shard_size,
    workers=f.workers,
    show_progress=True,
  )
  skipped = {k: v["count"] for k, v in report["skipped"].items()}
  print(
    f"{f.name}: {report['identities']} identities, images {report['images']}, "
    f"skipped {skipped or 'none'}; {report['images_per_second']} images/s"
  )
  print(f"train with --config.dataset.name={f.name} --config.dataset.data_dir={f.data_dir}")
  facts_dir = dataset_facts.prepared_dataset_dir(f.data_dir, f.name)
  print(f"report: {os.path.join(os.path.dirname(facts_dir), writer.REPORT)}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
