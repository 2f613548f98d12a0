"""Synthetic face pairs that differ in one part only: ground truth for a pointing game.

Two identity latents of the synthetic face world (:mod:`jfr.data.face_renderer`) that are
equal except for one part's parameters (:data:`PART_FIELDS`), rendered with the same
nuisances (pose, light, expression, background, sensor noise): the union of that part's
segmentation in the two images, dilated by a few pixels (anti-aliased edges, lashes), is
where the faces differ (:func:`render_part_pairs`). :func:`part_pair_ids` draws the
(identity, donor) pairs.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from jfr.data import face_renderer

# Latent fields (jfr.data.face_renderer.identity_latents) that change one part and nothing
# else of the rendered face. Eye spacing and width are left out: they also place the brows;
# eye_y is left out: the brows hang from it.
PART_FIELDS: dict[str, tuple[str, ...]] = {
  "brows": ("brow_gap", "brow_thickness", "brow_arch", "brow_tilt", "brow_color"),
  "eyes": ("eye_openness", "eye_tilt", "iris_color"),
  "nose": ("nose_size", "nose_length", "nose_width", "nose_protrusion", "nose_pointiness"),
  "mouth": ("mouth_y", "mouth_width", "lip_size", "upper_lip", "lower_lip", "lip_color"),
}


def render_part_pairs(
  world_seed: int,
  identity_ids: np.ndarray,
  donor_ids: np.ndarray,
  part: str,
  image_size: int,
  *,
  seed: int,
  max_yaw: float,
  region_dilation: int,
) -> dict[str, np.ndarray]:
  """Pairs of faces that differ in one part only.

  Face A has the latent of ``identity_ids[i]``; face B the same latent with the fields of
  ``PART_FIELDS[part]`` taken from ``donor_ids[i]``. Both get the same nuisances (drawn
  from ``seed``, no occluders, ``|yaw| <= max_yaw``) and the same sensor noise, so the
  images differ only where the part is drawn (and its anti-aliased rim).

  Args:
    world_seed: the face world's seed (``synthetic_faces`` builder config ``seed``).
    identity_ids: ``[n]`` int identities of the A faces.
    donor_ids: ``[n]`` int identities lending the part, each different from its A.
    part: a key of :data:`PART_FIELDS` (a name of ``face_renderer.PART_NAMES``).
    image_size: side of the images.
    seed: nuisance and noise seed.
    max_yaw: largest |yaw| in degrees.
    region_dilation: pixels by which the part region is grown (>= 0).

  Returns:
    ``images_a``, ``images_b`` uint8 ``[n, S, S, 3]``; ``region`` bool ``[n, S, S]``: the
    part in A or in B, dilated.
  """
  if part not in PART_FIELDS:
    raise ValueError(f"part: expected one of {sorted(PART_FIELDS)}, got {part!r}")
  identity_ids, donor_ids = np.asarray(identity_ids), np.asarray(donor_ids)
  if identity_ids.ndim != 1 or donor_ids.shape != identity_ids.shape or identity_ids.size == 0:
    raise ValueError(
      f"donor_ids: expected the shape of identity_ids (a non-empty [n]), got "
      f"{donor_ids.shape} and {identity_ids.shape}"
    )
  if np.any(identity_ids == donor_ids):
    raise ValueError("donor_ids: each donor must differ from its identity")
  if region_dilation < 0:
    raise ValueError(f"region_dilation: expected >= 0, got {region_dilation}")
  lat_a = face_renderer.identity_latents(world_seed, identity_ids)
  donors = face_renderer.identity_latents(world_seed, donor_ids)
  lat_b = {k: (donors[k] if k in PART_FIELDS[part] else v).copy() for k, v in lat_a.items()}
  nui = face_renderer.sample_nuisances(
    np.random.default_rng(seed),
    identity_ids.size,
    occluder_prob=0.0,
    eyeglasses_prob=0.0,
    max_yaw=max_yaw,
  )
  out_a = face_renderer.render(lat_a, nui, image_size, seed_or_rng=seed)
  out_b = face_renderer.render(lat_b, nui, image_size, seed_or_rng=seed)
  part_id = face_renderer.PART_NAMES.index(part)
  region = (out_a["segmentation"] == part_id) | (out_b["segmentation"] == part_id)
  if region_dilation:
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    region = ndimage.binary_dilation(region, structure, iterations=region_dilation)
  return {"images_a": out_a["image"], "images_b": out_b["image"], "region": region}


def part_pair_ids(
  test_ids: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
  """``count`` (identity, donor) pairs of distinct identities of ``test_ids`` ``[n]``:
  a random permutation, each identity paired with the next one (cyclically)."""
  test_ids = np.asarray(test_ids)
  if test_ids.size < 2:
    raise ValueError(f"test_ids: part pairs need two identities, got {test_ids.size}")
  perm = rng.permutation(test_ids)
  index = np.arange(count)
  return perm[index % perm.size], perm[(index + 1) % perm.size]
