"""Identity latents: the fixed description of each synthetic identity and the identity
attributes thresholded from it (the ten "identity facial attributes" of Taherkhani et al.,
Sec. 5, plus hair colour, age, pale skin, bushy brows and beard shadow)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jfr.data.face_renderer.albedo import _HAIR_COLORS, _IRIS_COLORS, _SKIN_PALETTE
from jfr.data.face_renderer.constants import _F32, IDENTITY_ATTRIBUTES, NUM_MARKS
from jfr.data.face_renderer.primitives import _check_batch

_LATENT_FIELDS = (
  "masculinity",
  "age",
  "head_width",
  "head_height",
  "cheek_width",
  "jaw_width",
  "jaw_squareness",
  "face_length",
  "oval",
  "chubby",
  "double_chin",
  "cheekbones",
  "skin_tone",
  "skin_color",
  "redness",
  "lip_color",
  "eye_spacing",
  "eye_width",
  "eye_openness",
  "eye_tilt",
  "eye_y",
  "iris_color",
  "brow_gap",
  "brow_thickness",
  "brow_arch",
  "brow_tilt",
  "brow_color",
  "nose_size",
  "nose_length",
  "nose_width",
  "nose_protrusion",
  "nose_pointiness",
  "mouth_y",
  "mouth_width",
  "lip_size",
  "upper_lip",
  "lower_lip",
  "hair_style",
  "hair_class",
  "hair_color",
  "greyness",
  "hairline",
  "hair_volume",
  "hair_swoop",
  "hair_wave",
  "beard_shadow",
  "wrinkles",
  "freckles",
  "texture_seed",
  "marks",
  "ear_size",
  "ear_y",
  "neck_width",
)
_N_NORMAL = 32
_N_UNIFORM = 24 + 4 * NUM_MARKS


def _latents_from_draws(g: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
  """Maps standard-normal draws g [n, 32] and uniform draws u [n, 48] to latent fields."""
  f = {}
  male = u[:, 0] < 0.45
  f["masculinity"] = np.where(male, 1.0, -1.0) * (0.55 + 0.45 * u[:, 1])
  m = f["masculinity"]
  f["age"] = np.clip(u[:, 2] ** 1.3, 0.0, 1.0)
  age = f["age"]
  f["oval"] = g[:, 0]
  f["chubby"] = np.clip(0.5 + 0.35 * g[:, 1], 0.0, 1.2)  # Chubby if > 0.85
  f["double_chin"] = np.clip(0.45 * g[:, 2] + 0.5 * f["chubby"] + 0.35 * age, 0, 1.5)
  f["cheekbones"] = g[:, 3]  # High_Cheekbones if > -0.1
  f["head_width"] = 0.84 + 0.03 * g[:, 4] + 0.015 * m
  f["head_height"] = 1.28 + 0.05 * g[:, 5]
  f["cheek_width"] = (
    0.80 + 0.03 * g[:, 6] + 0.012 * m + 0.07 * (f["chubby"] - 0.5) - 0.02 * np.maximum(f["oval"], 0)
  )
  square = 0.5 + 0.3 * g[:, 7] + 0.25 * m
  f["jaw_width"] = np.clip(
    0.62 + 0.06 * square + 0.09 * (f["chubby"] - 0.5) - 0.04 * np.maximum(f["oval"], 0), 0.5, 0.8
  )
  f["jaw_squareness"] = np.clip(
    2.3 + 0.8 * square - 0.7 * np.maximum(f["oval"], 0) + 0.6 * (f["chubby"] - 0.5), 1.5, 4.0
  )
  f["face_length"] = 1.0 + 0.04 * g[:, 8] + 0.05 * np.maximum(f["oval"], 0) + 0.02 * m
  tone = np.clip(u[:, 3] * 1.05 - 0.02, 0.0, 1.0)
  f["skin_tone"] = tone
  pos = tone * (len(_SKIN_PALETTE) - 1)
  lo = np.floor(pos).astype(int).clip(0, len(_SKIN_PALETTE) - 2)
  w = (pos - lo)[:, None]
  base = _SKIN_PALETTE[lo] * (1 - w) + _SKIN_PALETTE[lo + 1] * w
  hue = np.stack([0.03 * g[:, 9], 0.015 * g[:, 10], -0.02 * g[:, 9]], -1)
  f["skin_color"] = np.clip(base + hue, 0, 1)
  f["redness"] = np.clip(0.3 + 0.25 * g[:, 11], 0, 1)
  lip = f["skin_color"] * np.array([0.85, 0.55, 0.55]) + np.array([0.08, 0.0, 0.02])
  f["lip_color"] = np.clip(lip * (1 + 0.08 * g[:, 12:13]), 0, 1)
  f["eye_spacing"] = 0.30 + 0.02 * g[:, 13]
  f["eye_width"] = 0.125 + 0.01 * g[:, 14]
  f["eye_openness"] = 0.46 + 0.09 * g[:, 15]  # Narrow_Eyes if < 0.39
  f["eye_tilt"] = 0.12 * g[:, 16]
  f["eye_y"] = -0.15 + 0.025 * g[:, 17]
  iris = np.searchsorted(np.array([0.45, 0.75, 0.88]), u[:, 4])
  f["iris_color"] = _IRIS_COLORS[iris] * (1 + 0.1 * g[:, 18:19])
  f["brow_gap"] = 0.15 + 0.02 * g[:, 19] - 0.015 * m
  f["brow_thickness"] = 0.036 + 0.008 * g[:, 20] + 0.008 * m  # Bushy if > 0.047
  f["brow_arch"] = np.clip(0.035 + 0.015 * g[:, 21] - 0.01 * m, 0.0, 0.08)
  f["brow_tilt"] = 0.1 * g[:, 22]
  f["nose_size"] = g[:, 23]  # Big_Nose if > 0.7
  f["nose_length"] = 0.30 + 0.03 * f["nose_size"] + 0.02 * g[:, 24]
  f["nose_width"] = 0.11 + 0.012 * f["nose_size"] + 0.008 * m
  f["nose_protrusion"] = 0.24 + 0.035 * f["nose_size"]
  f["nose_pointiness"] = u[:, 5]  # Pointy_Nose if > 0.7
  f["mouth_y"] = 0.60 + 0.03 * g[:, 25] + 0.3 * (f["nose_length"] - 0.30)
  f["mouth_width"] = 0.22 + 0.018 * g[:, 26]
  f["lip_size"] = g[:, 27] - 0.3 * m  # Big_Lips if > 0.55
  f["upper_lip"] = 0.040 + 0.012 * f["lip_size"]
  f["lower_lip"] = 0.055 + 0.015 * f["lip_size"]
  bald_p = np.where(m > 0, 0.12 + 0.45 * age, 0.0)
  bald = u[:, 6] < bald_p
  length = np.where(
    m > 0, np.searchsorted([0.55, 0.9], u[:, 7]) + 1, np.searchsorted([0.15, 0.45], u[:, 7]) + 1
  )
  f["hair_style"] = np.where(bald, 0, length).astype(np.int32)
  f["hair_class"] = np.searchsorted(np.array([0.4, 0.75, 0.93]), u[:, 8]).astype(np.int32)
  f["greyness"] = np.clip((age - 0.5) * 2.2 * (0.5 + u[:, 9]), 0, 1)
  hc = _HAIR_COLORS[f["hair_class"]] * (1 + 0.15 * g[:, 28:29])
  grey = np.array([0.72, 0.71, 0.70])
  f["hair_color"] = np.clip(hc + (grey - hc) * f["greyness"][:, None], 0, 1)
  f["hairline"] = (
    -0.62 - 0.06 * u[:, 10] - 0.12 * np.where(m > 0, age, 0) + np.where(u[:, 11] < 0.3, 0.18, 0.0)
  )  # fringe lowers it
  f["hair_volume"] = 0.06 + 0.1 * u[:, 12]
  f["hair_swoop"] = 0.25 * (u[:, 13] - 0.5)
  f["hair_wave"] = u[:, 14]
  f["beard_shadow"] = np.where(m > 0, np.clip(u[:, 15] * 1.1 - 0.1, 0, 1), 0.0)
  f["wrinkles"] = np.clip((age - 0.35) * 1.6, 0, 1)
  f["freckles"] = np.where(u[:, 16] < 0.25 * (1 - tone), u[:, 17], 0.0)
  f["texture_seed"] = u[:, 18] * 100.0
  f["brow_color"] = f["hair_color"] * 0.6 + np.array([0.04, 0.03, 0.02])
  mk = u[:, 24:].reshape(-1, NUM_MARKS, 4)
  marks = np.stack(
    [
      (mk[..., 0] - 0.5) * 1.2,  # x
      -0.55 + 1.35 * mk[..., 1],  # y
      0.012 + 0.014 * mk[..., 2],  # radius
      np.where(mk[..., 3] < 0.45, 0.35 + mk[..., 3], 0.0),
    ],
    -1,
  )  # darkness (0 = none)
  f["marks"] = marks
  f["ear_size"] = 0.2 + 0.02 * g[:, 29]
  f["ear_y"] = 0.03 + 0.03 * g[:, 30]
  f["neck_width"] = 0.40 + 0.025 * g[:, 31] + 0.03 * m + 0.05 * (f["chubby"] - 0.5)
  out = {}
  for k in _LATENT_FIELDS:
    v = np.asarray(f[k])
    out[k] = v.astype(np.int32) if v.dtype.kind in "iub" else v.astype(_F32)
  return out


def identity_latents(seed: int, identity_ids: np.ndarray) -> dict[str, np.ndarray]:
  """The fixed latent description of each identity.

  Args:
    seed: world seed (non-negative int).
    identity_ids: int array [n] of non-negative identity ids.

  Returns:
    dict of arrays with leading dimension n (float32 unless noted): ``masculinity``
    (sign = sex), ``age`` (0 young .. 1 old), head shape (``head_width``,
    ``head_height``, ``cheek_width``, ``jaw_width``, ``jaw_squareness``,
    ``face_length``, ``oval``, ``chubby``, ``double_chin``, ``cheekbones``), skin
    (``skin_tone``, ``skin_color`` [n,3], ``redness``), eyes (``eye_spacing``,
    ``eye_width``, ``eye_openness``, ``eye_tilt``, ``eye_y``, ``iris_color`` [n,3]),
    brows (``brow_gap``, ``brow_thickness``, ``brow_arch``, ``brow_tilt``,
    ``brow_color`` [n,3]), nose (``nose_size``, ``nose_length``, ``nose_width``,
    ``nose_protrusion``, ``nose_pointiness``), mouth (``mouth_y``, ``mouth_width``,
    ``lip_size``, ``upper_lip``, ``lower_lip``, ``lip_color`` [n,3]), hair
    (``hair_style`` int32 0 bald / 1 short / 2 medium / 3 long, ``hair_class`` int32
    black/brown/blond/red, ``hair_color`` [n,3], ``greyness``, ``hairline``,
    ``hair_volume``, ``hair_swoop``, ``hair_wave``), sex/age traits
    (``beard_shadow``, ``wrinkles``), fine texture (``freckles``, ``texture_seed``,
    ``marks`` [n, 6, 4] = face x, face y, radius, darkness), ``ear_size``, ``ear_y``,
    ``neck_width``. Each identity's values come from its own generator seeded with
    ``SeedSequence([seed, id])`` and do not depend on the other ids requested.
  """
  ids = np.asarray(identity_ids)
  if ids.ndim != 1 or ids.dtype.kind not in "iu" or (ids < 0).any():
    raise ValueError(
      f"identity_ids must be a 1-D array of non-negative ints, got "
      f"shape {ids.shape} dtype {ids.dtype}"
    )
  if int(seed) < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed}")
  g = np.empty((len(ids), _N_NORMAL))
  u = np.empty((len(ids), _N_UNIFORM))
  for i, ident in enumerate(ids):
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(ident)]))
    g[i] = rng.standard_normal(_N_NORMAL)
    u[i] = rng.random(_N_UNIFORM)
  return _latents_from_draws(g, u)


def mean_latents(n: int = 1) -> dict[str, np.ndarray]:
  """The mean identity (sex-neutral, no moles, short brown hair), repeated n times."""
  f = _latents_from_draws(np.zeros((n, _N_NORMAL)), np.full((n, _N_UNIFORM), 0.5))
  f["masculinity"][:] = 0.0
  f["hair_style"][:] = 1
  f["marks"][..., 3] = 0.0
  f["freckles"][:] = 0.0
  f["beard_shadow"][:] = 0.0
  return f


def identity_attributes(latents: Mapping[str, np.ndarray]) -> np.ndarray:
  """Bool [n, 10] identity attributes (IDENTITY_ATTRIBUTES order), thresholds on latents."""
  n = _check_batch("latents", latents, _LATENT_FIELDS)
  f = latents
  cols = [
    f["eye_openness"] < 0.39,  # Narrow_Eyes
    f["nose_size"] > 0.7,  # Big_Nose
    f["nose_pointiness"] > 0.7,  # Pointy_Nose
    f["chubby"] > 0.85,  # Chubby
    f["double_chin"] > 0.75,  # Double_Chin
    f["cheekbones"] > -0.1,  # High_Cheekbones
    f["masculinity"] > 0,  # Male
    f["hair_style"] == 0,  # Bald
    f["lip_size"] > 0.55,  # Big_Lips
    f["oval"] > 0.6,  # Oval_Face
  ]
  out = np.stack(cols, -1).astype(bool)
  assert out.shape == (n, len(IDENTITY_ATTRIBUTES))
  return out


def _extra_identity_attributes(f: Mapping[str, np.ndarray]) -> np.ndarray:
  haired = (f["hair_style"] > 0) & (f["greyness"] < 0.5)
  return np.stack(
    [
      f["age"] < 0.45,  # Young
      (f["greyness"] >= 0.5) & (f["hair_style"] > 0),  # Gray_Hair
      haired & (f["hair_class"] == 0),  # Black_Hair
      haired & (f["hair_class"] == 2),  # Blond_Hair
      haired & (f["hair_class"] == 1),  # Brown_Hair
      f["brow_thickness"] > 0.047,  # Bushy_Eyebrows
      f["skin_tone"] < 0.12,  # Pale_Skin
      f["beard_shadow"] > 0.45,  # 5_o_Clock_Shadow
    ],
    -1,
  )
