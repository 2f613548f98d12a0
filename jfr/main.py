r"""Entry point: ``python -m jfr.main --config=configs/<method>.py[:variant] --workdir=DIR``.

Only parses flags and hands over to the method's trainer (``config.method`` names it in
:data:`jfr.methods.registry.METHODS`). ``--config.FIELD=value`` overrides any declared
field; configs are locked, so an unknown field is an error, never a silent default.
"""

import logging as std_logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Config file (path[:variant]). Optional for evaluation modes: the config recorded in the "
  "workdir (config.json) is used.",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, results.")
_MODE = flags.DEFINE_string(
  "mode",
  "all",
  "What to run: all (train then evaluate), train, "
  "eval, or a mode the method adds (see its trainer).",
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed",
  False,
  "Call jax.distributed.initialize() first (multi-host runs). "
  "Without the three flags below JAX detects the cluster (SLURM, ...).",
)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (hosts).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_INIT_TIMEOUT = flags.DEFINE_integer(
  "initialization_timeout",
  300,
  "--distributed: seconds to wait for every process to join before failing.",
)
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
  "heartbeat_timeout",
  100,
  "--distributed: seconds without a heartbeat after which a process counts as dead; the "
  "coordination service then stops the other processes (a killed peer never hangs the job).",
)
_ALLOW_OLDER = flags.DEFINE_bool(
  "allow_older_checkpoint",
  False,
  "Evaluation: when the newest checkpoint is damaged, evaluate the newest usable older one "
  "(and say so in the results) instead of failing. Sets config.allow_older_checkpoint.",
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Orbax logs every checkpoint step at INFO; keep its warnings only.
  for handler in std_logging.getLogger().handlers:
    handler.addFilter(lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname)
  import tensorflow as tf  # keep TF off any accelerator: JAX owns it

  tf.config.set_visible_devices([], "GPU")
  if _DISTRIBUTED.value:
    import jax

    if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:
      # Cross-process collectives of the CPU backend (read only by it): gloo over TCP. It is
      # JAX 0.10's default, set here so that CPU jobs never run without collectives.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
      coordinator_address=_COORDINATOR.value,
      num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value,
      initialization_timeout=_INIT_TIMEOUT.value,
      heartbeat_timeout_seconds=_HEARTBEAT_TIMEOUT.value,
    )
    logging.info(
      "process %d of %d, %d local / %d global devices",
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
    )
  import jax

  from jfr import workdir as workdir_lib
  from jfr.methods import registry

  config = _CONFIG.value
  if config is None:
    if _MODE.value in registry.TRAINING_MODES:
      raise app.UsageError(f"--config is required for --mode={_MODE.value}")
    config = workdir_lib.load_run_config_dict(_WORKDIR.value)
    logging.info("config read from %s/%s", _WORKDIR.value, workdir_lib.CONFIG_FILE)
  else:
    workdir_lib.check_same_model(_WORKDIR.value, config)
  if _ALLOW_OLDER.value:
    with config.unlocked():  # a config recorded before the field existed lacks it
      config.allow_older_checkpoint = True
  logging.info("config:\n%s", config)
  from jfr.train import run_lock

  # One training run per workdir (process 0 locks); evaluation modes only read.
  with run_lock.lock_if_process_zero(_WORKDIR.value, _MODE.value in registry.TRAINING_MODES):
    if _MODE.value in registry.TRAINING_MODES and jax.process_index() == 0:
      workdir_lib.write_run_record(_WORKDIR.value, config)
    registry.run(config, _WORKDIR.value, _MODE.value)


if __name__ == "__main__":
  app.run(main)
