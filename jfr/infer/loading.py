"""A trained run for inference: its recorded config, its model (rebuilt from the workdir alone
through :func:`jfr.methods.registry.load_eval_model`) and what each command needs of it.

Which command works on which run (:data:`COMMAND_NEEDS`): a command names the capabilities
of the run's :class:`~jfr.eval.embedding.EvalModel` it uses (``embed``, ``embed_sets``, an
extra such as ``attribute_maps``) or the method it explains; a run lacking them is refused
with a ``ValueError`` naming the command, the run's method and what it offers.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from jfr import workdir as workdir_lib
from jfr.eval import embedding

# command -> (needed capabilities, methods that must have trained the run or None = any)
COMMAND_NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
  "embed": (("embed",), None),
  "verify": (("embed",), None),
  "search": (("embed",), None),
  "explain": (("conv_map", "decode"), ("explain",)),
  "aggregate": (("embed_sets",), ("fan",)),
  "attributes": (("attribute_maps", "attribute_logits"), ("attributes",)),
  "filters": (("response_maps", "response_peaks"), ("interpretable",)),
  "templates": (("embed",), None),
  "export": (("embed",), None),
}


@dataclasses.dataclass
class Run:
  """A loaded run: ``workdir``, recorded ``config`` (locked ConfigDict), ``method``,
  ``model`` (EvalModel), ``checkpoint`` (checkpoint info of :mod:`jfr.train.checkpoint`)
  and ``facts`` (its ``data_facts.json``)."""

  workdir: str
  config: Any
  method: str
  model: embedding.EvalModel
  checkpoint: Any
  facts: dict


def check_command(command: str, method: str, capabilities: set[str] | None = None) -> None:
  """Raises ``ValueError`` when ``command`` cannot run on a ``method`` run (module docstring)."""
  if command not in COMMAND_NEEDS:
    raise ValueError(f"command: expected one of {sorted(COMMAND_NEEDS)}, got {command!r}")
  needs, methods = COMMAND_NEEDS[command]
  if methods is not None and method not in methods:
    raise ValueError(
      f"command {command!r} needs a run of method {'/'.join(methods)}; this run's method is "
      f"{method!r} (config.method in its config.json)"
    )
  if capabilities is not None:
    missing = [n for n in needs if n not in capabilities]
    if missing:
      raise ValueError(
        f"command {command!r} needs {missing}; the {method} run's model offers "
        f"{sorted(capabilities)}"
      )


def load_run(
  workdir: str | os.PathLike, command: str, *, batch_size: int = 64, allow_older: bool = False
) -> Run:
  """Loads the run in ``workdir`` for ``command`` (checked before the checkpoint is read).

  Raises:
    ValueError: no ``config.json`` / ``data_facts.json`` / checkpoint (naming the missing
      file), or a command the run's method does not support.
  """
  from jfr.methods import registry

  workdir = os.fspath(workdir)
  if not os.path.isdir(workdir):
    raise ValueError(f"--workdir: {workdir!r} is not a directory")
  config = workdir_lib.load_run_config_dict(workdir)
  check_command(command, config.method)
  facts = workdir_lib.read_data_facts(workdir)
  model, info = registry.load_eval_model(workdir, batch_size=batch_size, allow_older=allow_older)
  check_command(command, config.method, model.capabilities())
  return Run(workdir, config, config.method, model, info, facts)
