"""Names shared by the FAN package's modules (the bottom of its imports): the loss variants
of Table 1."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LossTerms:
  """Which terms of L_G (Eq. 5) a variant uses; L_dis (Eq. 6) is always on.

  Attributes:
    adversarial: L_adv^G (Eq. 11) and a discriminator trained with Eq. 12.
    reconstruction: 'center' (L_rec^cen, Eq. 9) or 'average' (L_rec^avg, Eq. 8).
    total_variation: L_tv (Eq. 13).
  """

  adversarial: bool
  reconstruction: str
  total_variation: bool = True


# Table 1 rows of the paper ("ours"): name -> loss terms.
VARIANTS = {
  "full": LossTerms(adversarial=True, reconstruction="center"),
  "no_adv": LossTerms(adversarial=False, reconstruction="center"),
  "rec_avg": LossTerms(adversarial=True, reconstruction="average"),
  "no_adv_rec_avg": LossTerms(adversarial=False, reconstruction="average"),
  "no_tv": LossTerms(adversarial=True, reconstruction="center", total_variation=False),
}

# config.evals entries whose rows compare variants (the others run on the extractor only).
VIDEO_EVALUATORS = ("video_pairs", "mixed_media")
