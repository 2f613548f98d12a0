"""Multi-host training is topology-independent (issue 16 item 5).

Fast part (no subprocess): every training stream's global batch ``s`` is the same whatever the
number of processes; each process yields its rows of it (``process_index`` / ``process_count``
passed explicitly, so one process simulates several).

Slow part: two processes on localhost through ``launch/multihost_env.sh`` (``jfr.main
--distributed``, gloo CPU collectives, two fake CPU devices each) train ``configs/baseline.py:tiny``
under pmap to the same parameters as one process with four devices, write each Orbax checkpoint
once, stop when one process is SIGKILLed, resume to the same end state, and a checkpoint
written by two processes resumes in one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds

from jfr.data import array_pipeline, pipelines


def _take(ds, n):
  return [b for _, b in zip(range(n), tfds.as_numpy(ds))]


def _assert_slices_make_global(make, num_batches: int, counts=(2, 4)) -> None:
  """``make(process_index, process_count)`` slices, stacked, equal the one-process batches."""
  whole = _take(make(0, 1), num_batches)
  for count in counts:
    parts = [_take(make(i, count), num_batches) for i in range(count)]
    for s, batch in enumerate(whole):
      for key, value in batch.items():
        stacked = np.concatenate([p[s][key] for p in parts])
        np.testing.assert_array_equal(stacked, value, err_msg=f"{key} batch {s} n={count}")


@pytest.fixture(scope="module")
def builder(tiny_data_dir):
  return pipelines.prepare_builder("synthetic_faces/tiny", tiny_data_dir)


def test_image_batches_global_batches_do_not_depend_on_process_count(builder):
  aug = dict(flip=True, brightness=0.2, contrast=0.2, motion_blur_prob=0.5)

  def make(i, n):
    return pipelines.image_batches(
      builder,
      "train",
      8,
      seed=3,
      start_batch=2,
      augment_options=aug,
      features=("image", "label"),
      process_index=i,
      process_count=n,
    )

  _assert_slices_make_global(make, 3)


def test_occlusion_pairs_with_noise_do_not_depend_on_process_count(builder):
  def make(i, n):
    return pipelines.occlusion_pair_batches(
      builder, "train", 4, seed=0, start_batch=1, mode="dynamic", fill="noise",
      process_index=i, process_count=n,
    )  # fmt: skip

  _assert_slices_make_global(make, 2, counts=(2,))


def test_set_batches_do_not_depend_on_process_count(builder):
  frames = pipelines.load_arrays(
    builder, "train_video", ("image", "label", "video_id", "frame_index")
  )
  stills = pipelines.load_arrays(builder, "train", ("image", "label"))
  videos = pipelines.group_videos(frames)

  def make(i, n):
    return pipelines.set_batches(
      videos, stills, 4, 3, seed=2, start_batch=1, min_set_size=2,
      augment_options=dict(flip=True), process_index=i, process_count=n,
    )  # fmt: skip

  _assert_slices_make_global(make, 2, counts=(2,))


def test_array_batches_do_not_depend_on_process_count():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)

  def make(i, n):
    return array_pipeline.array_batches(
      images, np.arange(10), 4, seed=1, start_batch=1, augment_options=dict(flip=True),
      process_index=i, process_count=n,
    )  # fmt: skip

  _assert_slices_make_global(make, 4)


def test_process_slot_and_share_are_checked():
  assert pipelines.process_slot(1, 2) == (1, 2)
  with pytest.raises(ValueError, match="process_index"):
    pipelines.process_slot(2, 2)
  with pytest.raises(ValueError, match="batch_size"):
    pipelines.host_batch_size(6, 4)


# ------------------------------------------------------------ two processes on localhost

ROOT = Path(__file__).resolve().parents[1]
STEPS, EVERY = 12, 4  # the kill lands right after checkpoint 4, before step 12
RUN_TIMEOUT_S = 240  # one run (start, compile, train); nothing waits longer
_TRAIN_FLAGS = (
  "--mode=train",
  f"--config.num_train_steps={STEPS}",
  f"--config.checkpoint_every_steps={EVERY}",
  f"--config.log_every_steps={EVERY}",
  "--config.keep_checkpoints=10",
)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int, cache: Path) -> dict[str, str]:
  return dict(
    os.environ,
    # the launch scripts run `python`: this interpreter's, even without an activated venv
    PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    PYTHONPATH=str(ROOT),
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=" ".join(  # the session's XLA flags (conftest), with this run's device count
      [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
      + [f"--xla_force_host_platform_device_count={devices}"]
    ),
    JAX_COMPILATION_CACHE_DIR=str(cache),  # a resumed run reuses its topology's executables
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
  )


def _one_process(workdir: Path, data_dir: str, cache: Path) -> subprocess.CompletedProcess:
  """``launch/local.sh`` with four fake CPU devices."""
  cmd = ["bash", str(ROOT / "launch/local.sh"), "configs/baseline.py:tiny", str(workdir)]
  cmd += [*_TRAIN_FLAGS, f"--config.dataset.data_dir={data_dir}"]
  return subprocess.run(
    cmd,
    cwd=ROOT,
    env=_env(4, cache),
    capture_output=True,
    text=True,
    timeout=RUN_TIMEOUT_S,
    check=False,
  )


def _two_processes(workdir: Path, data_dir: str, cache: Path) -> list[subprocess.Popen]:
  """``launch/multihost_env.sh`` twice (process 0 and 1), two fake CPU devices each."""
  coordinator = f"127.0.0.1:{_free_port()}"
  procs = []
  for i in range(2):
    env = _env(2, cache)
    env.update(
      JFR_COORDINATOR=coordinator,
      JFR_NUM_PROCESSES="2",
      JFR_PROCESS_ID=str(i),
      JFR_INIT_TIMEOUT="90",
      JFR_HEARTBEAT_TIMEOUT="10",  # a killed peer stops the survivor within seconds
    )
    cmd = ["bash", str(ROOT / "launch/multihost_env.sh"), "configs/baseline.py:tiny"]
    cmd += [str(workdir), *_TRAIN_FLAGS, f"--config.dataset.data_dir={data_dir}"]
    log = open(workdir.parent / f"{workdir.name}.process{i}.log", "a")  # noqa: SIM115
    procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log))
  return procs


def _wait(procs: list[subprocess.Popen], timeout: float) -> list[int]:
  deadline = time.monotonic() + timeout
  try:
    return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()


def _log(workdir: Path) -> str:
  logs = sorted(workdir.parent.glob(f"{workdir.name}.process*.log"))
  return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in logs)


def _state(workdir: Path, step: int) -> dict:
  """The arrays of checkpoint ``step``: params, batch_stats, opt_state, step, rng."""
  path = (workdir / "checkpoints" / str(step) / "state").absolute()
  tree = ocp.StandardCheckpointer().restore(path)
  return {k: tree[k] for k in ("params", "batch_stats", "opt_state", "step", "rng")}


def _assert_close(a: dict, b: dict, rtol: float = 1e-4, atol: float = 1e-5) -> None:
  """Every leaf: ``max |a - b| <= rtol * max |b| + atol`` (float tolerance: the all-reduce adds
  in another order over gloo than within one process; leaf-wise scale, since many entries of
  a leaf are near zero)."""
  flat_b = dict(jax.tree_util.tree_flatten_with_path(b)[0])
  bad = []
  for path, x in jax.tree_util.tree_flatten_with_path(a)[0]:
    x, y = np.asarray(x, np.float64), np.asarray(flat_b[path], np.float64)
    if x.shape != y.shape:
      bad.append(f"{jax.tree_util.keystr(path)}: shapes {x.shape} {y.shape}")
    elif np.abs(x - y).max(initial=0) > rtol * np.abs(y).max(initial=0) + atol:
      bad.append(f"{jax.tree_util.keystr(path)}: max diff {np.abs(x - y).max():.3g}")
  assert not bad, bad[:10]


@pytest.fixture(scope="module")
def runs(tiny_data_dir, tmp_path_factory):
  """The reference (1 x 4 devices), a 2 x 2 run SIGKILLed after its first checkpoint and
  resumed by the same command, and its killed workdir resumed by one process."""
  root = tmp_path_factory.mktemp("multihost")
  cache = root / "jax_cache"
  out: dict = {"root": root}
  ref = root / "one"
  done = _one_process(ref, tiny_data_dir, cache)
  assert done.returncode == 0, done.stderr[-3000:]
  out["ref"] = ref

  two = root / "two"
  two.mkdir()
  procs = _two_processes(two, tiny_data_dir, cache)
  first = two / "checkpoints" / str(EVERY)
  deadline = time.monotonic() + RUN_TIMEOUT_S
  while not first.exists() and time.monotonic() < deadline and procs[1].poll() is None:
    time.sleep(0.01)
  assert first.exists(), f"no checkpoint {EVERY} from the two processes\n{_log(two)}"
  os.kill(procs[1].pid, signal.SIGKILL)
  started = time.monotonic()
  out["killed_codes"] = _wait(procs, 90)
  out["stopped_after_s"] = time.monotonic() - started
  out["killed_steps"] = sorted(
    int(p.name) for p in (two / "checkpoints").iterdir() if p.name.isdigit()
  )
  assert out["killed_steps"][-1] < STEPS, f"the run ended before the kill: {out['killed_steps']}"
  single = root / "two_then_one"
  shutil.copytree(two, single)

  codes = _wait(_two_processes(two, tiny_data_dir, cache), RUN_TIMEOUT_S)
  assert codes == [0, 0], f"the resumed two-process run failed: {codes}\n{_log(two)}"
  out["two"] = two
  done = _one_process(single, tiny_data_dir, cache)
  assert done.returncode == 0, done.stderr[-3000:]
  out["two_then_one"] = single
  return out


def _layout(directory: Path) -> list[str]:
  """Relative paths under ``directory``, content-named data files (``.../d/<hash>``) as ``*``."""
  paths = (str(p.relative_to(directory)) for p in directory.rglob("*"))
  return sorted({re.sub(r"/d/[^/]+$", "/d/*", p) for p in paths})


@pytest.mark.slow
def test_two_processes_train_the_same_parameters_as_one(runs):
  # From scratch, compared at the first checkpoint: this tiny config is chaotic (a rounding
  # difference grows ~5x per step: 2e-4 at step 4, 0.2 at step 12, measured), so the end
  # states are compared between runs that start from one checkpoint (tests below). A real
  # topology dependence (other rows, seeds, or pmean within one process) differs by ~10 %.
  _assert_close(_state(runs["two"], EVERY), _state(runs["ref"], EVERY))


@pytest.mark.slow
def test_checkpoint_is_written_once_by_two_processes(runs):
  steps = [p.name for p in (runs["two"] / "checkpoints").iterdir()]
  assert sorted(steps, key=int) == [str(s) for s in range(EVERY, STEPS + 1, EVERY)]
  two, one = (_layout(runs[k] / "checkpoints" / str(EVERY)) for k in ("two", "ref"))
  assert two == one  # the layout of a one-process checkpoint: nothing per process, no leftovers
  assert not [p for p in two if "process_1" in p]


@pytest.mark.slow
def test_sigkill_of_one_process_stops_the_run_and_it_resumes(runs):
  survivor, killed = runs["killed_codes"]
  assert killed == -signal.SIGKILL
  assert survivor != 0 and runs["stopped_after_s"] < 60  # heartbeat timeout 10 s
  assert runs["killed_steps"][-1] < STEPS
  end = _state(runs["two"], STEPS)
  assert int(end["step"]) == STEPS
  # The same command resumed to the end state that one process reaches from that checkpoint.
  _assert_close(end, _state(runs["two_then_one"], STEPS))


@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_in_one_process(runs):
  first = runs["killed_steps"][-1]
  chex.assert_trees_all_equal(_state(runs["two_then_one"], first), _state(runs["two"], first))
  resumed = sorted(int(p.name) for p in (runs["two_then_one"] / "checkpoints").iterdir())
  assert resumed == list(range(EVERY, STEPS + 1, EVERY))  # continued, not restarted
  assert int(_state(runs["two_then_one"], STEPS)["step"]) == STEPS
