"""Names shared by the explain method's modules (the bottom of its import graph)."""

from __future__ import annotations

from jfr.explain.suite import MAP_NAMES

MODES = ("all", "train", "eval", "explain")
THRESHOLD_SOURCES = ("best_on_eval_pairs", "given")

# Display names of the saliency maps (keys of jfr.explain.suite.saliency_maps).
METHOD_NAMES = MAP_NAMES
# Maps of the Fig. 2 analog.
FIG2_METHODS = ("gradient", "grad_cam", "grad_cam_pp", "stylianou", "ours_s", "ours_s_pos")
# Maps of the part-pair figure, with short names.
PART_FIGURE_METHODS = {
  "ours_s_neg": "Ours S-",
  "ours_s": "Ours S",
  "gradient": "Gradient",
  "grad_cam": "Grad-CAM",
  "stylianou": "Stylianou",
}

# Rows of the Table I analog.
BASELINE_NAME = "ArcFace (plain)"
OURS_NAME = "Ours (max pool + decoder)"

# Evaluator types of config.evals run by the `explain` mode, in config order, with one
# random generator threaded through them (the `eval` mode runs the `still_images` ones).
SALIENCY_EVALUATORS = ("hiding_game", "pointing_game")
