"""``export``: a run's embedder with its parameters, servable outside jfr.

The exported function takes uint8 faces ``[b, S, S, 3]`` (RGB, already aligned/cropped to
the model's side ``S``, any batch size ``b``: a symbolic dimension) and returns the raw
features float32 ``[b, D]`` (not normalised: L2-normalise them before cosine scores):
``f(x) = backbone(x * 2/255 - 1)``, the same pixels-to-features path as
:func:`jfr.eval.embedding.model_embedder` on images of the model's own size.

* ``--format=jax``: ``embedder.jax_exported`` (:func:`jax.export.export` serialized; load
  with ``jax.export.deserialize(open(path, 'rb').read()).call(images)``), for CPU and, when
  available, CUDA.
* ``--format=saved_model``: a TF SavedModel directory (:func:`jax.experimental.jax2tf.convert`
  with ``polymorphic_shapes=['(b, S, S, 3)']``, native serialization), signature
  ``serving_default`` with input ``images`` uint8 ``[None, S, S, 3]`` and output
  ``embeddings``.
* ``export.json`` beside them: input size, feature size, the run and its checkpoint, the
  jax/tensorflow versions that wrote them.

The SavedModel path is tested with the pair :data:`TESTED_VERSIONS` (jax/jaxlib and
tensorflow-cpu, the versions ``requirements.txt`` resolves to today); ``export`` warns when the
running pair differs, ``export.json`` records the pair that wrote the files, and
tests/test_infer.py fails on another pair until the round trip is re-checked and the constant
updated. A SavedModel made with jax2tf's native serialization must be loaded by a TensorFlow
whose XLA can read that StableHLO version, so keep the pair together.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jfr.infer.loading import Run
from jfr.report import results as results_lib

FORMATS = ("jax", "saved_model")
TESTED_VERSIONS = {"jax": "0.10.2", "tensorflow": "2.21.0"}
JAX_FILE = "embedder.jax_exported"
SAVED_MODEL_DIR = "saved_model"


def forward_of(embed: Callable) -> tuple[Callable, Any, int]:
  """``(apply_fn, variables, input_size)`` behind an EmbedFn made by
  :func:`jfr.eval.embedding.model_embedder`; ``ValueError`` for other embedders."""
  if not all(hasattr(embed, a) for a in ("apply_fn", "variables", "input_size")):
    raise ValueError(
      "export: this run's embed function does not expose its forward pass (it was not made "
      "by jfr.eval.embedding.model_embedder), so it cannot be exported"
    )
  return embed.apply_fn, embed.variables, embed.input_size


def pixel_embedder(apply_fn: Callable, variables: Any) -> Callable[[jax.Array], jax.Array]:
  """``uint8 [b, S, S, 3] -> float32 [b, D]`` with the variables closed over (module doc)."""

  def fn(images: jax.Array) -> jax.Array:
    x = images.astype(jnp.float32) * jnp.float32(2.0 / 255.0) - jnp.float32(1.0)
    return jnp.asarray(apply_fn(variables, x), jnp.float32)

  return fn


def export_jax(fn: Callable, input_size: int, path: str, platforms=("cpu",)) -> str:
  """Serializes ``fn`` with a symbolic batch dimension to ``path``."""
  (b,) = jax.export.symbolic_shape("b")
  spec = jax.ShapeDtypeStruct((b, input_size, input_size, 3), jnp.uint8)
  exported = jax.export.export(jax.jit(fn), platforms=platforms)(spec)
  with open(path, "wb") as f:
    f.write(exported.serialize())
  return path


def load_jax(path: str) -> Callable[[np.ndarray], np.ndarray]:
  """The exported embedder at ``path`` as ``images uint8 [b, S, S, 3] -> [b, D]``."""
  with open(path, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  return lambda images: np.asarray(exported.call(np.asarray(images, np.uint8)))


def export_saved_model(fn: Callable, input_size: int, path: str) -> str:
  """Writes a TF SavedModel of ``fn`` (module docstring) to the directory ``path``."""
  import tensorflow as tf
  from jax.experimental import jax2tf

  tf_fn = jax2tf.convert(
    fn, polymorphic_shapes=[f"(b, {input_size}, {input_size}, 3)"], with_gradient=False
  )
  module = tf.Module()
  module.embed = tf.function(
    lambda images: {"embeddings": tf_fn(images)},
    input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.uint8, name="images")],
    autograph=False,
  )
  tf.saved_model.save(module, path, signatures={"serving_default": module.embed})
  return path


def load_saved_model(path: str) -> Callable[[np.ndarray], np.ndarray]:
  """The SavedModel at ``path`` as ``images uint8 [b, S, S, 3] -> [b, D]``."""
  import tensorflow as tf

  serve = tf.saved_model.load(path).signatures["serving_default"]
  return lambda images: serve(images=tf.constant(np.asarray(images, np.uint8)))[
    "embeddings"
  ].numpy()


def export(run: Run, out: str, formats: tuple[str, ...] = FORMATS) -> dict:
  """Exports the run's embedder in ``formats`` into the folder ``out``; writes and returns
  ``export.json``."""
  unknown = sorted(set(formats) - set(FORMATS))
  if unknown or not formats:
    raise ValueError(f"format: expected some of {FORMATS}, got {list(formats)}")
  apply_fn, variables, size = forward_of(run.model.embed)
  fn = pixel_embedder(apply_fn, variables)
  os.makedirs(out, exist_ok=True)
  probe = jax.eval_shape(fn, jax.ShapeDtypeStruct((1, size, size, 3), jnp.uint8))
  files = {}
  if "jax" in formats:
    files["jax"] = export_jax(fn, size, os.path.join(out, JAX_FILE))
  if "saved_model" in formats:
    import tensorflow as tf

    running = {"jax": jax.__version__, "tensorflow": tf.__version__}
    if running != TESTED_VERSIONS:
      warnings.warn(
        f"export: the SavedModel path is tested with {TESTED_VERSIONS}, running {running}; "
        "check the round trip (tests/test_infer.py) before relying on it",
        stacklevel=2,
      )

    files["saved_model"] = export_saved_model(fn, size, os.path.join(out, SAVED_MODEL_DIR))
    tf_version = tf.__version__
  info = {
    "files": files,
    "input": f"uint8 [b, {size}, {size}, 3] RGB face crops (aligned to the model's side)",
    "output": f"float32 [b, {probe.shape[-1]}] raw features (L2-normalise before cosine)",
    "input_size": size,
    "feature_size": int(probe.shape[-1]),
    "workdir": os.path.abspath(run.workdir),
    "method": run.method,
    "checkpoint": run.checkpoint,
    "versions": {
      "jax": jax.__version__,
      "tensorflow": tf_version if files.get("saved_model") else None,
    },
  }
  results_lib.write_json(info, os.path.join(out, "export.json"))
  return info
