"""Names shared by the modules of :mod:`jfr.methods.interpretable` (imports stay one-way)."""

import jax.numpy as jnp

# The bool switches of each entry of ``config.variants``.
VARIANT_FIELDS = ("lmf", "sad", "fad")
# ``config.head.kind``: the dense softmax of Eq. 3, or cosine logits ``scale · cos(f, w_c)``.
HEAD_KINDS = ("softmax", "cosine")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Recognition scenarios of Tables 2, 4, 5 (see :mod:`jfr.eval.occlusion`).
SCENARIOS = ("original", "synthetic_occlusion", "natural_occlusion")
# The ``config.evals`` names the comparison report reads (their evaluator types in brackets):
# recognition (occluded_still_images), peak_spread (peak_spread), feature_difference
# (occlusion_feature_difference), partial_retrieval (partial_face_retrieval).
RECOGNITION, PEAK_SPREAD, FEATURE_DIFFERENCE, PARTIAL_RETRIEVAL = (
  "recognition",
  "peak_spread",
  "feature_difference",
  "partial_retrieval",
)
# Results name of the comparison (``eval/interpretable.{json,md}``, ``figures/interpretable_*``).
REPORT_NAME = "interpretable"
