"""Throughput of template matching (jfr.templates): min-mean and binary masks.

Min-mean matching of G gallery against P probe templates of S descriptors each
(default 2,000 x 10,000 x 6, k = 512, random non-negative float32 data, ids
shuffled) and mask matching of the same templates (m = 64 of k = 512 bins).
For each it prints seconds, GFLOP/s against the machine's float32 matmul peak
(per wall second and per CPU second of all the process's threads; the latter is
less sensitive to other processes on a shared machine), and peak memory, next
to the bare matrix products that the computation cannot avoid:

* min-mean: the `[n_a, k] x [k, n_b]` image similarity matmul, done over the
  same blocks as `min_mean_distance` and nothing else; FLOPs = 2 n_a n_b k.
* masks: the `[G, k] x [k, P]` float32 matmul of the masks; FLOPs = 2 G P k.

A second min-mean case draws template sizes uniformly from 1 .. 2S - 1 (about
the same number of images), which takes the sorted-segment-max path instead of
the equal-size reshape path.

Every case runs in its own process so that its peak memory is its own: memory
is the growth of the process's peak resident set (`ru_maxrss`) from just
before the first call (inputs already built) to the end, so it includes XLA
compilation. The XLA temp allocation of the compiled min-mean kernel is printed
too. Time is the best of `--repeats` calls after one warm-up call.

Run from the repository root: python benchmarks/templates.py [--probe 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from jfr import templates  # noqa: E402

CASES = ("peak", "min_mean", "min_mean_varied", "bare_min_mean", "masks", "bare_masks")


def _peak_rss_bytes() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _timed(fn, repeats: int) -> dict:
  """Warm-up call, then the best wall and CPU seconds of `repeats` calls."""
  rss0 = _peak_rss_bytes()
  jax.block_until_ready(fn())
  walls, cpus = [], []
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
  return dict(
    wall_s=min(walls), cpu_s=min(cpus), peak_rss_delta_mib=(_peak_rss_bytes() - rss0) / 2**20
  )


def _templates(
  rng: np.random.Generator, num: int, size: int, k: int, varied: bool
) -> tuple[np.ndarray, np.ndarray]:
  sizes = rng.integers(1, 2 * size, num) if varied else np.full(num, size)
  ids = np.repeat(np.arange(num), sizes)
  rng.shuffle(ids)
  return rng.random((len(ids), k), dtype=np.float32), ids


def _data(args, varied: bool = False):
  rng = np.random.default_rng(args.seed)
  gallery = _templates(rng, args.gallery, args.size, args.k, varied)
  probe = _templates(rng, args.probe, args.size, args.k, varied)
  return gallery, probe


def _matmul_peak(n: int = 2048, repeats: int = 20) -> dict:
  """Float32 `n x n` jnp matmul: best GFLOP/s per wall second and per CPU second.

  Also the figure of benchmarks/matmul_peak.py when that module exists.
  """
  x = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(lambda a, b: a @ b)
  timing = _timed(lambda: matmul(x, x), repeats)
  peak = dict(
    gflops=2 * n**3 / timing["wall_s"] / 1e9,
    gflops_per_cpu_s=2 * n**3 / timing["cpu_s"] / 1e9,
    method=f"jnp float32 {n}x{n} matmul, best of {repeats}",
  )
  try:
    from benchmarks.matmul_peak import matmul_peak_gflops
  except ImportError:
    return peak
  peak["shared_gflops"] = float(matmul_peak_gflops(n=n))
  return peak


def _run_case(case: str, args) -> dict:
  if case == "peak":
    return _matmul_peak()
  if case in ("masks", "bare_masks"):
    (desc_g, ids_g), (desc_p, ids_p) = _data(args)
    masks_g = templates.activation_masks(desc_g, ids_g, args.gallery, args.m)
    masks_p = templates.activation_masks(desc_p, ids_p, args.probe, args.m)
    flops = 2 * args.gallery * args.probe * args.k
    if case == "masks":
      fn = lambda: templates.mask_distance(masks_g, masks_p)
    else:
      a, b = masks_g.astype(jnp.float32), masks_p.astype(jnp.float32)
      matmul = jax.jit(lambda x, y: lax.dot_general(x, y, (((1,), (1,)), ((), ()))))
      fn = lambda: matmul(a, b)
    return dict(_timed(fn, args.repeats), flops=flops)

  (desc_g, ids_g), (desc_p, ids_p) = _data(args, case == "min_mean_varied")
  flops = 2 * len(ids_g) * len(ids_p) * args.k
  call = (desc_g, ids_g, args.gallery, desc_p, ids_p, args.probe)
  kernel_args, kernel_kwargs = templates._min_mean_args(  # block plan
    *call, block_size=args.block_size
  )
  blocks = dict(
    rows_gallery=kernel_kwargs["shape_a"][0],
    rows_probe=kernel_kwargs["shape_b"][0],
    n_gallery=len(ids_g),
    n_probe=len(ids_p),
  )
  if case == "bare_min_mean":
    rows_a, rows_b = blocks["rows_gallery"], blocks["rows_probe"]
    xa, xb = jnp.asarray(desc_g), jnp.asarray(desc_p)
    parts_a = [xa[i : i + rows_a] for i in range(0, len(xa), rows_a)]
    parts_b = [xb[j : j + rows_b] for j in range(0, len(xb), rows_b)]
    matmul = jax.jit(lambda x, y: lax.dot_general(x, y, (((1,), (1,)), ((), ()))))

    def fn():
      out = None
      for a in parts_a:
        for b in parts_b:
          out = matmul(a, b)
      return out

    return dict(_timed(fn, args.repeats), flops=flops, **blocks)

  fn = lambda: templates.min_mean_distance(*call, block_size=args.block_size)
  result = dict(_timed(fn, args.repeats), flops=flops, **blocks)
  compiled = templates._min_mean_kernel.lower(*kernel_args, **kernel_kwargs).compile()
  analysis = compiled.memory_analysis()
  if analysis is not None:
    result["xla_temp_mib"] = analysis.temp_size_in_bytes / 2**20
    result["xla_output_mib"] = analysis.output_size_in_bytes / 2**20
  return result


def _report(results: dict, args) -> None:
  peak = results["peak"]
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform}, "
    f"{os.cpu_count()} CPU cores, load average at start "
    f"{results['load_average']}"
  )
  shared = (
    f"; benchmarks/matmul_peak.py: {peak['shared_gflops']:.1f} GFLOP/s"
    if "shared_gflops" in peak
    else ""
  )
  print(
    f"matmul peak: {peak['gflops']:.1f} GFLOP/s, "
    f"{peak['gflops_per_cpu_s']:.1f} GFLOP per CPU second "
    f"({peak['method']}){shared}"
  )
  print(
    f"gallery {args.gallery} x probe {args.probe} templates, size "
    f"{args.size}, k = {args.k}, block_size {args.block_size}, "
    f"mask m = {args.m}; best of {args.repeats} after a warm-up call"
  )
  print(
    f"{'case':<17}{'wall s':>8}{'GFLOP/s':>9}{'% peak':>8}{'cpu s':>8}"
    f"{'GFLOP/cpu-s':>13}{'% peak':>8}{'peak RSS +MiB':>15}"
  )
  for case in CASES[1:]:
    r = results[case]
    wall = r["flops"] / r["wall_s"] / 1e9
    cpu = r["flops"] / r["cpu_s"] / 1e9
    print(
      f"{case:<17}{r['wall_s']:>8.2f}{wall:>9.1f}"
      f"{100 * wall / peak['gflops']:>7.0f}%{r['cpu_s']:>8.2f}{cpu:>13.1f}"
      f"{100 * cpu / peak['gflops_per_cpu_s']:>7.0f}%"
      f"{r['peak_rss_delta_mib']:>15.0f}"
    )
  for case in ("min_mean", "min_mean_varied"):
    r = results[case]
    extra = ""
    if "xla_temp_mib" in r:
      extra = f"; XLA temp {r['xla_temp_mib']:.0f} MiB, output {r['xla_output_mib']:.0f} MiB"
    print(
      f"{case}: {r['n_gallery']} x {r['n_probe']} images, blocks "
      f"{r['rows_gallery']} x {r['rows_probe']} rows{extra}"
    )
  bare, masks = results["bare_min_mean"], results["bare_masks"]
  for case, base in (("min_mean", bare), ("min_mean_varied", bare), ("masks", masks)):
    r = results[case]
    # The varied case has a different number of images: compare per FLOP.
    ratio_wall = (r["wall_s"] / r["flops"]) / (base["wall_s"] / base["flops"])
    ratio_cpu = (r["cpu_s"] / r["flops"]) / (base["cpu_s"] / base["flops"])
    print(f"{case} / bare matmul: {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x cpu (target <= 3x)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--gallery", type=int, default=2000)
  parser.add_argument("--probe", type=int, default=10000)
  parser.add_argument("--size", type=int, default=6, help="images per template")
  parser.add_argument("--k", type=int, default=512)
  parser.add_argument("--m", type=int, default=64, help="mask bins")
  parser.add_argument("--block-size", type=int, default=1024)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.case:  # child process: one case, one JSON line
    print(json.dumps(_run_case(args.case, args)))
    return
  results = {"load_average": " ".join(f"{x:.1f}" for x in os.getloadavg())}
  for case in CASES:
    out = subprocess.run(
      [sys.executable, __file__, "--case", case, *sys.argv[1:]],
      check=True,
      capture_output=True,
      text=True,
    ).stdout
    results[case] = json.loads(out.strip().splitlines()[-1])
  _report(results, args)


if __name__ == "__main__":
  main()
