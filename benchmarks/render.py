"""Throughput of the procedural face renderer and preparation time of synthetic_faces.

Prints rendered images per second (single process, wall clock and CPU time) at 32, 64
and 112 pixels, then the wall time of ``download_and_prepare`` for the ``tiny`` and
``small`` configs in a temporary directory.

  python benchmarks/render.py [--num_images 256] [--configs tiny,small]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from jfr.data import face_renderer  # noqa: E402


def render_throughput(size: int, num_images: int) -> tuple[float, float]:
  """Images per second (wall, CPU) rendering num_images stills of 64 identities."""
  lat = face_renderer.identity_latents(0, np.arange(num_images) % 64)
  nui = face_renderer.sample_nuisances(np.random.default_rng(0), num_images, occluder_prob=0.1)
  face_renderer.render(
    {k: v[:4] for k, v in lat.items()}, {k: v[:4] for k, v in nui.items()}, size, seed_or_rng=0
  )  # warm-up
  wall, cpu = time.perf_counter(), time.process_time()
  face_renderer.render(lat, nui, size, seed_or_rng=0)
  return num_images / (time.perf_counter() - wall), num_images / (time.process_time() - cpu)


def prepare_time(config: str) -> float:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from jfr.data import synthetic_faces  # pylint: disable=g-import-not-at-top,unused-import

  data_dir = tempfile.mkdtemp()
  try:
    start = time.perf_counter()
    tfds.disable_progress_bar()
    tfds.builder(f"synthetic_faces/{config}", data_dir=data_dir).download_and_prepare()
    return time.perf_counter() - start
  finally:
    shutil.rmtree(data_dir, ignore_errors=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_images", type=int, default=256)
  parser.add_argument(
    "--configs",
    default="tiny,small",
    help="comma-separated synthetic_faces configs to prepare ('' = none)",
  )
  args = parser.parse_args()
  for size in (32, 64, 112):
    wall, cpu = render_throughput(size, args.num_images)
    print(f"render {size:3d}x{size:<3d}: {wall:7.1f} images/s wall, {cpu:7.1f} images/s CPU")
  for config in filter(None, args.configs.split(",")):
    print(f"prepare synthetic_faces/{config}: {prepare_time(config):.1f} s")


if __name__ == "__main__":
  main()
