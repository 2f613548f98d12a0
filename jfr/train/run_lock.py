"""One training run per workdir: an exclusive lock file ``<workdir>/run.lock``.

Two training runs on one workdir would write over each other's checkpoints, logs and
results (or crash inside Orbax). :class:`RunLock` makes the second one fail at once with
:class:`RunLockError`, naming the holder::

    with RunLock(workdir):      # jfr.main (training modes) and loop.run_training take it
      ...train...

The lock file holds JSON ``{"pid", "host", "started", "command"}`` of the holder and an
``fcntl.flock`` held on it for the whole run, so the kernel releases it when the holder
dies, however it dies (SIGKILL included). A lock left by a process that is gone is taken
over with a warning naming it:

* same host: the ``flock`` was free, so the holder is gone (its pid is checked as well,
  only to say so in the warning);
* another host (a shared file system): the ``flock`` is only trusted where the file
  system shares locks between clients (NFSv4, Lustre, GPFS do; some mounts do not), so a
  lock naming another host is never taken over: the error says which host and pid hold
  it and that deleting ``run.lock`` releases it once that run is known to be gone.

Where ``flock`` is not supported at all, the file's content decides alone (a holder on
this host whose pid is gone is taken over; anything else is refused).

Re-entrant within a process: ``jfr.main`` holds the workdir's lock while the method's
``run_training`` on the same directory takes it again.

Readers take no lock: evaluation of a live run, benchmarks and inference only read
complete checkpoints (Orbax renames a step into place once it is written).

Multi-host: with several processes (``jax.distributed``) only process 0 takes the lock
(:func:`lock_if_process_zero`): the workdir is one directory that all processes of a job
share, and every process of the job must be allowed in. A second job on the same workdir
fails on its process 0; its other processes then stop when ``jax.distributed`` loses
process 0.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from absl import logging

LOCK_FILE = "run.lock"
_HELD: dict[str, tuple[int, int]] = {}  # realpath -> (fd, depth) of the locks this process holds


class RunLockError(RuntimeError):
  """The workdir is locked by another training run."""


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


def _read_holder(fd: int) -> dict[str, Any] | None:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 1 << 16).decode("utf-8", "replace").strip()
  if not text:
    return None
  try:
    holder = json.loads(text)
  except json.JSONDecodeError:
    return {"pid": None, "host": None, "raw": text[:200]}
  return holder if isinstance(holder, dict) else {"pid": None, "host": None, "raw": text[:200]}


def describe_holder(holder: dict[str, Any]) -> str:
  """``"pid 1234 on host gpu7 (since 2024-05-01 12:00:00: python -m jfr.main ...)"``."""
  if holder.get("pid") is None:
    return f"an unknown process (lock file content {holder.get('raw')!r})"
  since = holder.get("started")
  when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
  return f"pid {holder['pid']} on host {holder.get('host')} (since {when}: {holder.get('command')})"


class RunLock:
  """The exclusive lock of ``<workdir>/run.lock`` (see the module docstring).

  Args:
    workdir: the run's directory (created if needed).

  Raises (on enter):
    RunLockError: another live run holds the lock (its pid and host are named).
  """

  def __init__(self, workdir: str | os.PathLike):
    self.path = Path(workdir) / LOCK_FILE
    self._key: str | None = None

  def __enter__(self) -> RunLock:
    self.path.parent.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(self.path)
    if key in _HELD:
      fd, depth = _HELD[key]
      _HELD[key] = (fd, depth + 1)
    else:
      _HELD[key] = (self._acquire(), 1)
    self._key = key
    return self

  def __exit__(self, *exc_info) -> None:
    fd, depth = _HELD[self._key]
    if depth > 1:
      _HELD[self._key] = (fd, depth - 1)
      return
    del _HELD[self._key]
    try:
      os.unlink(self.path)
    except FileNotFoundError:
      pass
    os.close(fd)  # releases the flock

  def _acquire(self) -> int:
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        locked = self._flock(fd)
        holder = _read_holder(fd)
        if locked and not self._same_file(fd):
          os.close(fd)  # the holder removed the file after we opened it: try again
          continue
        self._judge(holder, locked)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(self._me()).encode())
        os.fsync(fd)
        return fd
      except BaseException:
        os.close(fd)
        raise

  def _flock(self, fd: int) -> bool:
    """True: this process now holds the flock; False: flock is unsupported here."""
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd) or {"pid": None, "raw": ""}
      raise RunLockError(
        f"workdir {self.path.parent} is in use by another training run: "
        f"{describe_holder(holder)}. Wait for it to finish, stop it, or use another --workdir."
      ) from None
    except OSError as error:
      if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        raise
      logging.warning("%s: flock is not supported here; relying on the pid in the file.", self.path)
      return False
    return True

  def _same_file(self, fd: int) -> bool:
    try:
      return os.fstat(fd).st_ino == os.stat(self.path).st_ino
    except FileNotFoundError:
      return False

  def _judge(self, holder: dict[str, Any] | None, locked: bool) -> None:
    """Refuses a holder that may be alive; warns when taking over a dead one's lock."""
    if holder is None:
      return
    host, pid = holder.get("host"), holder.get("pid")
    here = socket.gethostname()
    if host == here and isinstance(pid, int) and (locked or not _pid_alive(pid)):
      # Same host: a free flock (or, without flock, a vanished pid) means the holder is gone.
      reused = " (its pid now belongs to another process)" if _pid_alive(pid) else ""
      logging.warning(
        "Taking over %s left by %s, which is no longer running%s.",
        self.path,
        describe_holder(holder),
        reused,
      )
      return
    if locked and pid is None:
      logging.warning("Taking over %s, whose content was unreadable.", self.path)
      return
    if host != here:
      advice = (
        ", on another host, so this process cannot tell whether it still runs; if it is "
        f"gone, delete {self.path}."
      )
    else:
      advice = ", which is still running. Wait for it to finish or use another --workdir."
    raise RunLockError(f"workdir {self.path.parent} is locked by {describe_holder(holder)}{advice}")

  @staticmethod
  def _me() -> dict[str, Any]:
    return {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": time.time(),
      "command": " ".join(sys.argv)[:500],
    }


@contextlib.contextmanager
def lock_if_process_zero(workdir: str | os.PathLike, enabled: bool = True) -> Iterator[None]:
  """:class:`RunLock` on ``workdir`` in process 0 of a (multi-host) job; nothing elsewhere.

  ``enabled=False`` takes no lock (readers: evaluation, inference, benchmarks).
  """
  import jax  # noqa: PLC0415  (only here: the module stays importable without JAX set up)

  if not enabled or jax.process_index() != 0:
    yield
    return
  with RunLock(workdir):
    yield
