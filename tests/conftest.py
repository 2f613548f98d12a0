"""Shared pytest set-up: quiet TF, CPU only, several fake devices for pmap tests; the tiny
data set and each method's trained ``:tiny`` run, made once per session."""

import copy
import dataclasses
import importlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Four fake CPU devices so that pmap / sharding tests run on any machine. Must be
# set before jax is imported anywhere.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
  ).strip()

# One persistent XLA compilation cache per test session (a fresh temporary directory, removed
# at the end): the same computation compiled again (an eval-mode reproduction, each jfr.infer
# command loading a run, the python -m jfr.evaluate / jfr.main subprocesses, which inherit the
# variable) is read back instead of recompiled. Halves the CPU time of the tests that read the
# baseline run (81 s -> 43 s). Results are unchanged: the cache stores the same executables.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jfr_test_xla_cache_")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
  _SESSION_CACHE_DIR = os.environ["JAX_COMPILATION_CACHE_DIR"]
else:  # a developer's own cache directory is used and kept
  _SESSION_CACHE_DIR = None

import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], "GPU")

import pytest  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
  """Removes the session's compilation cache directory (when conftest made it)."""
  del session, exitstatus
  if _SESSION_CACHE_DIR is not None:
    shutil.rmtree(_SESSION_CACHE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """A tfds data_dir with `synthetic_faces/tiny` prepared once for the whole session."""
  import tensorflow_datasets as tfds
  import jfr.data  # noqa: F401  (registers the builder)

  data_dir = tmp_path_factory.mktemp("tfds")
  tfds.builder("synthetic_faces/tiny", data_dir=str(data_dir)).download_and_prepare()
  return str(data_dir)


# ------------------------------------------------------------------ trained :tiny runs
#
# Each method's configs/<method>.py:tiny is trained once per session and shared by every test
# that reads a trained model (eval-mode reproduction, jfr.infer, jfr.evaluate,
# load_eval_model, tables and figures present). The shared workdir is made read-only after
# training (and checked unchanged at the end of the session): a test that writes into a run
# (eval mode, a benchmark's results) copies it with ``TrainedRun.copy_to(tmp_path)`` first,
# so no test changes what another one reads.


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """A trained ``:tiny`` workdir: ``workdir`` (read-only), the resolved ``config`` it was
  trained with (a fresh copy each access) and the ``results`` dict of its ``all`` mode."""

  workdir: Path
  _config: Any
  _results: dict

  @property
  def config(self):
    return self._config.copy_and_resolve_references()

  @property
  def results(self) -> dict:
    return copy.deepcopy(self._results)

  def copy_to(self, parent: Path) -> Path:
    """A writable copy of the workdir at ``parent / "run"`` (for tests that write results)."""
    target = Path(parent) / "run"
    shutil.copytree(self.workdir, target)
    _set_writable(target, True)
    return target


def _set_writable(root: Path, writable: bool) -> None:
  bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
  for path in [root, *root.rglob("*")]:
    if path.is_symlink():
      continue
    mode = path.stat().st_mode
    path.chmod((mode | stat.S_IWUSR) if writable else (mode & ~bits))


def _snapshot(root: Path) -> dict:
  """``{path: (size, mtime_ns)}`` of every file under ``root``."""
  return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _override(config, overrides: dict) -> None:
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for name in parents:
      node = node[name]
    node[leaf] = value


@pytest.fixture(scope="session")
def trained_run(tiny_data_dir, tmp_path_factory):
  """``trained_run(config_name, **overrides) -> TrainedRun``: ``configs/<config_name>.py:tiny``
  on ``tiny_data_dir`` (dotted ``overrides``, e.g. ``**{"protocol.num_splits": 2}``) trained
  and evaluated with ``jfr.methods.registry.run(config, workdir, "all")`` once per session
  (per name and overrides), its ``config.json`` written as jfr.main does."""
  from jfr import workdir as workdir_lib
  from jfr.methods import registry

  runs: dict = {}
  made: list[Path] = []

  def make(config_name: str, **overrides) -> TrainedRun:
    key = (config_name, repr(sorted(overrides.items())))
    if key not in runs:
      config = importlib.import_module(f"configs.{config_name}").get_config("tiny")
      config.dataset.data_dir = tiny_data_dir
      _override(config, overrides)
      workdir = tmp_path_factory.mktemp(f"trained_{config_name}") / "run"
      workdir_lib.write_run_record(workdir, config, ["test", f"configs/{config_name}.py:tiny"])
      results = registry.run(config, str(workdir), "all")
      _set_writable(workdir, False)
      made.append((workdir, _snapshot(workdir)))
      runs[key] = TrainedRun(workdir, config.copy_and_resolve_references(), results)
    return runs[key]

  yield make
  changed = []
  for workdir, before in made:
    # read-only bits do not stop root (CI containers): compare what is there instead
    after = _snapshot(workdir)
    changed += [str(p) for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p)]
    _set_writable(workdir, True)  # let pytest's tmp_path clean-up remove them
  assert not changed, f"tests wrote into a shared trained run (use copy_to): {changed[:10]}"


@pytest.fixture(scope="session")
def baseline_run(trained_run) -> TrainedRun:
  """configs/baseline.py:tiny (recognition), trained and evaluated (eval/thresholds.json)."""
  return trained_run("baseline")


@pytest.fixture(scope="session")
def fan_run(trained_run) -> TrainedRun:
  """configs/fan.py:tiny: extractor + the tiny variants ("full", "no_adv"), evaluated."""
  return trained_run("fan")


@pytest.fixture(scope="session")
def attributes_run(trained_run) -> TrainedRun:
  """configs/attributes.py:tiny with the joint variant only (each variant compiles two train
  steps), both stages trained and evaluated."""
  return trained_run("attributes", variants=("joint",))


@pytest.fixture(scope="session")
def interpretable_run(trained_run) -> TrainedRun:
  """configs/interpretable.py:tiny with variants base and sad_fad, trained and evaluated."""
  return trained_run("interpretable", run_variants=("base", "sad_fad"))


@pytest.fixture(scope="session")
def explain_run(trained_run) -> TrainedRun:
  """configs/explain.py:tiny: the explainable model and its baseline, evaluated and explained
  (eval/explain.json holds the stored threshold tau)."""
  return trained_run("explain")


@pytest.fixture(scope="session")
def templates_run(trained_run) -> TrainedRun:
  """configs/templates.py:tiny (2 splits; masked m = 8 and 200 > k, binary m = 16)."""
  return trained_run(
    "templates",
    **{
      "protocol.num_splits": 2,
      "experiment.masked_ms": (8, 200),
      "experiment.binary_ms": (16,),
    },
  )


@pytest.fixture(scope="session")
def converted_run(tiny_data_dir, tmp_path_factory):
  """The committed narrow arcface_torch IResNet (``fixtures/iresnet_r18_narrow.pth``)
  converted by ``jfr.convert`` into a recognition run on the 32 px tiny data's facts;
  shared by the pretrained-recognizer tests (read-only)."""
  from configs import baseline
  from jfr import convert

  base = baseline.get_config("tiny")
  base.dataset.data_dir = tiny_data_dir
  run = tmp_path_factory.mktemp("converted") / "run"
  pth = Path(__file__).parent / "fixtures" / "iresnet_r18_narrow.pth"
  convert.convert("arcface_torch", pth, run, arch="r18", base_config=base, argv=["convert"])
  return run
