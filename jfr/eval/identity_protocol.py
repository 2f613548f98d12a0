"""A MegaFace/FaceScrub-like split of one labelled set of stills into enrolled identities
(fine-tuning, gallery and probe stills) and distractor identities.

Used by the identification-with-distractors evaluator (:mod:`jfr.eval.cmc_distractors`) and
by methods that fine-tune on the enrolled identities before scoring them (the attribute
method's stage 2), so that both read the same seeded split.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class IdentityProtocol:
  """Indices into the split's stills (see :func:`identity_protocol`).

  Attributes:
    probe_identities: the enrolled (FaceScrub-like) identities, sorted.
    distractor_identities: the others, sorted.
    finetune: stills of the enrolled identities reserved for fine-tuning.
    gallery: enrolled stills.
    probe: probe stills (each identity's remaining ones).
    distractor_stills: every still of the distractor identities.
  """

  probe_identities: np.ndarray
  distractor_identities: np.ndarray
  finetune: np.ndarray
  gallery: np.ndarray
  probe: np.ndarray
  distractor_stills: np.ndarray

  def counts(self) -> dict[str, int]:
    """Sizes of the parts (for results files)."""
    return {
      "probe_identities": int(len(self.probe_identities)),
      "distractor_identities": int(len(self.distractor_identities)),
      "finetune_images": int(len(self.finetune)),
      "gallery": int(len(self.gallery)),
      "probes": int(len(self.probe)),
      "distractor_stills": int(len(self.distractor_stills)),
    }


def identity_protocol(
  labels: np.ndarray,
  *,
  probe_identity_fraction: float,
  finetune_per_identity: int,
  gallery_per_identity: int,
  seed: int,
) -> IdentityProtocol:
  """Splits stills into fine-tuning / gallery / probe / distractor sets (seeded).

  ``round(probe_identity_fraction * #identities)`` identities (a seeded permutation) are
  enrolled; of each one's stills (a seeded permutation) the first ``finetune_per_identity``
  are reserved for fine-tuning, the next ``gallery_per_identity`` are enrolled in the gallery
  and the rest are probes. Every still of the other identities is a distractor.

  Args:
    labels: ``[N]`` identity labels of the stills.
    probe_identity_fraction: share of identities enrolled and probed, in (0, 1).
    finetune_per_identity: stills of each enrolled identity kept for fine-tuning (>= 0).
    gallery_per_identity: stills of each enrolled identity in the gallery (>= 1).
    seed: RNG seed of the identity and image draws.

  Raises:
    ValueError: a fraction leaving no enrolled or no distractor identity, or an
      enrolled identity with fewer than ``finetune + gallery + 1`` stills.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels: expected shape [N], got {labels.shape}")
  if finetune_per_identity < 0 or gallery_per_identity < 1:
    raise ValueError(
      f"finetune_per_identity >= 0 and gallery_per_identity >= 1 expected, got "
      f"{finetune_per_identity}, {gallery_per_identity}"
    )
  ids = np.unique(labels)
  count = int(round(probe_identity_fraction * ids.size))
  if not 1 <= count < ids.size:
    raise ValueError(
      f"probe_identity_fraction={probe_identity_fraction} gives {count} "
      f"of {ids.size} identities; need at least one enrolled and one distractor"
    )
  rng = np.random.default_rng(seed)
  order = rng.permutation(ids)
  enrolled, distractors = np.sort(order[:count]), np.sort(order[count:])
  parts = {"finetune": [], "gallery": [], "probe": []}
  need = finetune_per_identity + gallery_per_identity + 1
  for identity in enrolled:
    items = rng.permutation(np.flatnonzero(labels == identity))
    if items.size < need:
      raise ValueError(
        f"identity {identity} has {items.size} stills; the protocol needs "
        f"{need} (finetune_per_identity + gallery_per_identity + 1 probe)"
      )
    parts["finetune"].extend(items[:finetune_per_identity])
    parts["gallery"].extend(items[finetune_per_identity : need - 1])
    parts["probe"].extend(items[need - 1 :])
  as_index = lambda x: np.sort(np.asarray(x, np.int64))
  return IdentityProtocol(
    enrolled,
    distractors,
    as_index(parts["finetune"]),
    as_index(parts["gallery"]),
    as_index(parts["probe"]),
    np.flatnonzero(np.isin(labels, distractors)),
  )
