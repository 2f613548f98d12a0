"""Tests for jfr.train.run_lock: one training run per workdir, dead holders taken over."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import resume_job
from jfr.train import checkpoint
from jfr.train import loop
from jfr.train import run_lock

_REPO = Path(__file__).resolve().parents[1]
_HOLD = (
  "import sys, time\n"
  "from jfr.train import run_lock\n"
  "with run_lock.RunLock(sys.argv[1]):\n"
  "  print('locked', flush=True)\n"
  "  time.sleep(120)\n"
)


@pytest.fixture
def holder(tmp_path):
  """A live process on this host holding the lock of ``tmp_path``."""
  job = subprocess.Popen(
    [sys.executable, "-c", _HOLD, str(tmp_path)],
    env=dict(os.environ, PYTHONPATH=str(_REPO)),
    stdout=subprocess.PIPE,
    text=True,
  )
  assert job.stdout.readline().strip() == "locked"
  yield job
  if job.poll() is None:
    job.kill()
    job.wait()


def test_second_run_fails_at_once_naming_the_holder(tmp_path, holder):
  start = time.monotonic()
  with pytest.raises(run_lock.RunLockError) as error:
    with run_lock.RunLock(tmp_path):
      pass
  assert time.monotonic() - start < 5
  assert f"pid {holder.pid} on host {socket.gethostname()}" in str(error.value)
  assert "in use by another training run" in str(error.value)
  # The holder's file is untouched.
  assert json.loads((tmp_path / run_lock.LOCK_FILE).read_text())["pid"] == holder.pid


def test_lock_of_a_killed_holder_is_taken_over_with_a_warning(tmp_path, holder, caplog):
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  assert (tmp_path / run_lock.LOCK_FILE).exists()  # SIGKILL left the file behind
  with caplog.at_level(logging.WARNING):
    with run_lock.RunLock(tmp_path):
      content = json.loads((tmp_path / run_lock.LOCK_FILE).read_text())
      assert content["pid"] == os.getpid() and content["host"] == socket.gethostname()
  assert f"left by pid {holder.pid}" in caplog.text and "no longer running" in caplog.text
  assert not (tmp_path / run_lock.LOCK_FILE).exists()  # released on exit


def test_lock_naming_another_host_is_refused(tmp_path):
  (tmp_path / run_lock.LOCK_FILE).write_text(
    json.dumps({"pid": 4242, "host": "other-host.example", "started": 0.0, "command": "x"})
  )
  with pytest.raises(run_lock.RunLockError, match=r"pid 4242 on host other-host\.example.*delete"):
    with run_lock.RunLock(tmp_path):
      pass


def test_reentrant_within_a_process_and_released(tmp_path):
  with run_lock.RunLock(tmp_path):
    with run_lock.RunLock(tmp_path / "."):  # the same file by another spelling
      assert (tmp_path / run_lock.LOCK_FILE).exists()
    assert (tmp_path / run_lock.LOCK_FILE).exists()
  assert not (tmp_path / run_lock.LOCK_FILE).exists()
  with run_lock.lock_if_process_zero(tmp_path, enabled=False):  # readers take no lock
    assert not (tmp_path / run_lock.LOCK_FILE).exists()


def test_run_training_refuses_a_locked_workdir_and_readers_do_not_lock(tmp_path, holder):
  config = resume_job.make_config(2, parallelism="none")
  state = resume_job.make_state(config)
  writer = resume_job.ListWriter()
  with pytest.raises(run_lock.RunLockError, match=f"pid {holder.pid}"):
    loop.run_training(
      config, tmp_path, state, resume_job.train_step, resume_job.batch_iterator_fn(), writer=writer
    )
  assert writer.closed
  assert sorted(os.listdir(tmp_path)) == [run_lock.LOCK_FILE]  # nothing else was written
  # A reader (evaluation) is not blocked by the live training run's lock.
  with checkpoint.TrainCheckpointer(tmp_path, keep=1) as ckpt:
    ckpt.save(2, state.replace(step=np.int32(2)), {"batches_consumed": 2})
  assert int(checkpoint.restore_trained(tmp_path, state, keep=1).step) == 2
