"""Names shared by the attribute method's modules (the bottom of its import graph)."""

from __future__ import annotations

import jax.numpy as jnp

# Fusion variants (config.variants) and how tables and figures call them.
VARIANT_LABELS = {
  "separate": "Ours-S (separate)",
  "joint": "Ours-J (joint)",
  "concat": "concat [u, v]",
}
VARIANT_ORDER = ("separate", "joint", "concat")  # order of table rows and curves
STAGES = ("pretrained", "finetuned")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# config.evals entry whose identity protocol also picks the fine-tuning stills (stage 2).
PROTOCOL_EVAL = "identification"
# Evaluator types run on the stage-1 models only (the attribute maps of Fig. 4).
STAGE1_ONLY_TYPES = ("cam_region_mass",)
RESULTS_NAME = "attributes"  # eval/attributes.json, eval/attributes.md, figures/attributes_*
