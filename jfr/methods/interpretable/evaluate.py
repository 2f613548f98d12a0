"""Interpretable-FR evaluation: each trained variant as an
:class:`~jfr.eval.embedding.EvalModel` (``embed``: f; extras ``response_peaks`` and
``response_maps``: the maps f pools, LMF(Ψ), or Ψ for variants without LMF), put through the evaluators of
``config.evals`` (by default the occlusion scenarios of Tables 2, 4, 5, peak spread of
Fig. 5 / Table 3, the Fig. 6 feature difference and partial-face retrieval of Sec. 4.4).

Each variant's results land in ``<workdir>/<variant>/eval/<eval name>.json`` with the
checkpoint they come from; :mod:`~jfr.methods.interpretable.report` compares the variants.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import numpy as np

from jfr.context import RunContext
from jfr.eval import embedding
from jfr.eval import interpretability as interp
from jfr.eval import registry
from jfr.methods.interpretable import networks
from jfr.methods.interpretable import trainer
from jfr.report import results as results_lib


class Extractor:
  """``uint8 faces [N, H, W, 3] -> {'f': [N, K], 'pos_xy', 'neg_xy': [N, K, 2],
  'pos_weight', 'neg_weight': [N, K]}`` of one variant: features and the peaks of the maps f
  pools (:func:`jfr.eval.interpretability.response_peaks`, model-input pixels), computed
  together by one jitted function, ``batch_size`` faces per call (the last call padded).

  Features and peaks come from ONE compiled function on purpose: XLA fuses a network
  differently when it also returns the peaks, so f of an f-only function differs from
  this one in the last bits, and runs stay bit-equal only with one function. The result of
  the newest call is kept, so ``embed`` and ``response_peaks`` of the same faces compute once.
  """

  def __init__(self, module: Any, variables: dict, size: int, batch_size: int):
    if batch_size <= 0:
      raise ValueError(f"batch_size: expected > 0, got {batch_size}")
    self.size, self.batch_size = size, batch_size

    @jax.jit
    def features_and_peaks(images):
      out = module.apply(variables, images, train=False)
      return {"f": out["f"], **interp.response_peaks(out["filtered"], (size, size))}

    self._fn = features_and_peaks
    self._last: tuple[np.ndarray, dict] | None = None

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    if self._last is not None and self._last[0] is images:
      return self._last[1]
    x = embedding.to_model_input(images, self.size)
    bs = self.batch_size
    parts: dict[str, list] = {}
    for start in range(0, len(x), bs):
      chunk = x[start : start + bs]
      pad = bs - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
      for key, value in self._fn(chunk).items():
        parts.setdefault(key, []).append(np.asarray(value)[: bs - pad])
    out = {key: np.concatenate(v) for key, v in parts.items()}
    self._last = (images, out)
    return out


def eval_model(
  config: ml_collections.ConfigDict, name: str, variables: dict, batch_size: int
) -> embedding.EvalModel:
  """What variant ``name`` offers evaluators: ``embed`` (uint8 faces -> f ``[B, K]``), the
  extra ``response_peaks`` (uint8 faces -> peaks of the maps f pools, see
  :class:`Extractor`) and ``response_maps`` (uint8 faces -> those maps
  ``[B, H/4, W/4, K]``: LMF(Ψ), or Ψ without LMF), ``batch_size`` faces per call."""
  size = config.model.image_size
  module = networks.build_network(config, name)
  extract = Extractor(module, variables, size, batch_size)

  def maps_fn(variables, images):
    return module.apply(variables, images, train=False)["filtered"]

  response_maps = embedding.model_embedder(
    maps_fn, variables, input_size=size, batch_size=batch_size
  )
  return embedding.EvalModel(
    input_size=size,
    embed=lambda images: extract(images)["f"],
    extras={
      "response_peaks": lambda images: {k: v for k, v in extract(images).items() if k != "f"},
      "response_maps": response_maps,
    },
  )


def evaluate_variant(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  name: str,
  variables: dict,
  context: RunContext,
  checkpoint: dict | None,
) -> dict[str, dict]:
  """Runs every evaluator of ``config.evals`` on variant ``name``; writes each result to
  ``<workdir>/<name>/eval/<eval name>.json``; returns eval name -> results (with the
  in-memory ``_`` keys, for the report)."""
  out, models = {}, {}
  for eval_name, block in config.evals.items():
    type_name, settings = registry.settings_of(block)
    batch_size = settings.get("batch_size", 256)
    if batch_size not in models:  # one compiled extractor per batch size
      models[batch_size] = eval_model(config, name, variables, batch_size)
    model = models[batch_size]
    results = registry.evaluate(type_name, model, context, settings, seed=config.seed)
    results_lib.write_results(
      trainer.variant_workdir(workdir, name), eval_name, results, checkpoint=checkpoint
    )
    out[eval_name] = results
  return out


def response_maps(
  config: ml_collections.ConfigDict, name: str, variables: dict, images: np.ndarray
) -> np.ndarray:
  """The maps f pools ``[N, h, w, K]`` of a few uint8 faces (for Fig. 8)."""
  model = eval_model(config, name, variables, max(1, len(images)))
  return model.extras["response_maps"](images)
