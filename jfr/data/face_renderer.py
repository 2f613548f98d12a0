"""Procedural face world: identity latents, nuisances and a vectorised NumPy renderer.

This module is the image source of the embedded ``synthetic_faces`` data set that every
jfr method trains and is evaluated on. It holds no paper equation; it builds the data
the papers need: identities (face recognition, all papers), identity attributes (the ten
"identity facial attributes" of Taherkhani et al., Sec. 5), landmarks and part
segmentation (semantic occlusion for the explainability papers), natural occluders
(eyeglasses, scarf) and video clips with drifting pose and motion blur (FAN).

Model (2.5D, all coordinates in "face units": x to the image right, y down, z toward
the camera; the cheeks are about 0.8 units from the midline, the eyes at y ~ -0.15,
the chin at y ~ 1):

* Head, neck, nose, ears, hair shell and scarf are *lofts*: at every height y the
  horizontal cross-section is an ellipse with centre (x0(y), z0(y)) and half-axes
  (a(y), c(y)). Yaw is a true rotation about the vertical axis and the projection is
  orthographic (weak perspective), so every pixel's viewing ray stays at constant y
  and meets a loft in closed form (one quadratic per pixel). The far side of the face
  therefore compresses, the nose shifts and can hide the far eye, the near ear shows.
* Eyes, brows, lips, mouth opening, nostrils, wrinkles, beard shadow, freckles and
  moles are painted onto the surface as signed-distance "decals" in face (x, y)
  coordinates of the visible 3D point, so they foreshorten with the surface.
* Shading: deferred; layers composite albedo and analytic loft normals into one
  buffer (back to front: hair interior, neck/shoulders, head, ears, nose, hair, then
  occluders), which is lit once with wrapped Lambert + a little specular, light
  direction and colour per image. Eyeglasses are a plane in front of the eyes plus two
  3D arms (depth-tested); the scarf is a loft around the lower face and neck.
* Every layer and decal is evaluated only on the pixels of its bounding region (flat
  pixel subsets), so the cost follows the covered area, not the image area.
* Antialiasing comes from signed distances (coverage = clamp(0.5 - d / pixel)), so no
  supersampling is needed; the background is rendered at 32x32 and upsampled.
* After shading: defocus (Gaussian) and linear motion blur (one FFT per image),
  Gaussian sensor noise, quantisation to uint8.
* Pitch is not modelled (it would break the constant-y rays); roll, scale and
  translation are 2D similarity transforms after the projection.

Conventions of the outputs of :func:`render`:

* ``landmarks``: float32 ``[n, 68, 2]``, (x, y) in pixels, the centre of pixel
  (row r, column c) is at (x=c, y=r); iBUG-68 order (0-16 jaw from the subject's right
  ear, i.e. image left for a frontal face, 17-21 right brow, 22-26 left brow, 27-35
  nose, 36-41 right eye, 42-47 left eye, 48-67 mouth). Jaw points lie on the visible
  head outline at fixed heights; the others are projected 3D surface points (a point
  hidden by the nose under strong yaw is still given at its projected position).
* ``segmentation``: uint8 ``[n, H, W]`` ids into :data:`PART_NAMES`. It is the parsing
  of the face *without occluders* (amodal): eyes behind sunglasses stay ``eyes``.
  Ears and neck are ``skin``. The visible parsing is
  ``np.where(occluder_mask, <occluder>, segmentation)``.
* ``occluder_mask``: bool ``[n, H, W]``, pixels covered by eyeglasses (frames, lenses,
  arms) or the scarf.

Nuisance fields (all with leading dimension n; see :func:`sample_nuisances`):
``yaw`` ``roll`` (degrees), ``scale``, ``shift`` [n, 2] (fraction of image size),
``light_azimuth`` ``light_elevation`` (degrees), ``light_strength``, ``ambient``,
``light_color`` [n, 3], ``smile`` ``mouth_open`` ``eye_open`` (0..1),
``background_seed`` ``noise_seed`` (uint32), ``noise_std`` (0..1 intensity units),
``defocus_sigma`` ``motion_blur`` (pixels of a 112-px image, scaled to the output
size), ``motion_angle`` (degrees), ``occluder`` (int8 index into
:data:`OCCLUDER_KINDS`), ``glasses_tint`` ``glasses_shape`` (0..1), ``glasses_color``
``scarf_color`` [n, 3], ``scarf_top`` (face-y of the scarf's upper edge),
``scarf_pattern`` (0 plain, else stripe frequency), ``clothing_color`` [n, 3].

The canonical frontal template (:func:`frontal_landmarks`) is the landmark set of
:func:`mean_latents` rendered with :func:`neutral_nuisances` (zero yaw/roll, scale 1,
centred, neutral expression): the mean identity's face centred with face-y 0.12 at the
image centre and 0.40 * image_size pixels per face unit.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

IDENTITY_ATTRIBUTES: tuple[str, ...] = (
  "Narrow_Eyes",
  "Big_Nose",
  "Pointy_Nose",
  "Chubby",
  "Double_Chin",
  "High_Cheekbones",
  "Male",
  "Bald",
  "Big_Lips",
  "Oval_Face",
)
ATTRIBUTE_NAMES: tuple[str, ...] = IDENTITY_ATTRIBUTES + (
  # per-image attributes
  "Eyeglasses",
  "Smiling",
  "Mouth_Slightly_Open",
  # further identity attributes
  "Young",
  "Gray_Hair",
  "Black_Hair",
  "Blond_Hair",
  "Brown_Hair",
  "Bushy_Eyebrows",
  "Pale_Skin",
  "5_o_Clock_Shadow",
  # per-image
  "Blurry",
)
PART_NAMES: tuple[str, ...] = ("background", "skin", "hair", "brows", "eyes", "nose", "mouth")
OCCLUDER_KINDS: tuple[str, ...] = ("none", "eyeglasses", "scarf")
NUM_LANDMARKS = 68
NUM_MARKS = 6  # moles per identity (some may be switched off: darkness 0)

_BG, _SKIN, _HAIR, _BROWS, _EYES, _NOSE, _MOUTH = range(7)
_PX_PER_UNIT = 0.40  # pixels per face unit, as a fraction of the image size (scale 1)
_CENTER_Y = 0.12  # face y that maps to the image centre
_REF_SIZE = 112.0  # blur lengths are given in pixels of a 112-px image
_BG_RES = 32  # background clutter resolution before upsampling
_CHUNK_PIXELS = 2**18  # pixels rendered together (bounds memory, keeps caches warm)
_DELTA = 1e-3  # finite-difference step for loft profile derivatives

_F32 = np.float32
_ROW = np.dtype((np.void, 32))  # one row of the 8-channel float32 shading buffer

# Skin palette from pale to dark (sRGB 0..1), hair colour classes.
_SKIN_PALETTE = np.array(
  [
    [0.96, 0.83, 0.74],
    [0.90, 0.72, 0.60],
    [0.78, 0.58, 0.44],
    [0.60, 0.41, 0.29],
    [0.40, 0.26, 0.18],
  ],
  _F32,
)
_HAIR_CLASSES = ("black", "brown", "blond", "red")
_HAIR_COLORS = np.array(
  [[0.07, 0.06, 0.06], [0.30, 0.19, 0.11], [0.80, 0.66, 0.42], [0.58, 0.26, 0.12]], _F32
)
_IRIS_COLORS = np.array(
  [[0.25, 0.14, 0.07], [0.12, 0.08, 0.05], [0.30, 0.45, 0.62], [0.32, 0.42, 0.25]], _F32
)


# ----------------------------------------------------------------------------- utilities


def _smoothstep(e0, e1, x):
  t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def _signed_cap(t, n=2.0):
  """(1 - t^n)^(1/n) on [0, 1], continued as -(t^n - 1)^(1/n) beyond (sign = inside)."""
  q = 1.0 - t**n
  return np.sign(q) * np.abs(q) ** (1.0 / n)


def _cover(d, pix):
  """Coverage of a shape with signed distance d (negative inside) for pixel size pix."""
  return np.clip(0.5 - d / pix, 0.0, 1.0)


def _mix(img, color, alpha):
  """img [..., 3] blended toward color (broadcastable [..., 3]) by alpha [...]."""
  a = alpha[..., None]
  return img + (color - img) * a


def _rounded_box(px, py, hx, hy, r):
  """Signed distance of a rounded box centred at the origin (half sizes hx, hy)."""
  qx = np.abs(px) - (hx - r)
  qy = np.abs(py) - (hy - r)
  out = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
  return out + np.minimum(np.maximum(qx, qy), 0) - r


def _segment_distance(px, py, ax, ay, bx, by):
  """Distance to segment a-b and the segment parameter t in [0, 1] of the nearest point."""
  dx, dy = bx - ax, by - ay
  t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy + 1e-12), 0, 1)
  return np.hypot(px - ax - t * dx, py - ay - t * dy), t


def _hash01(ix, iy, salt):
  """Deterministic pseudo-random numbers in [0, 1) from integer lattice coordinates."""
  h = np.sin(ix * 12.9898 + iy * 78.233 + salt * 37.719) * 43758.5453
  return h - np.floor(h)


def _check_batch(name: str, fields: Mapping[str, np.ndarray], required) -> int:
  if not isinstance(fields, Mapping):
    raise ValueError(f"{name} must be a dict of arrays, got {type(fields).__name__}")
  missing = [k for k in required if k not in fields]
  if missing:
    raise ValueError(f"{name} is missing fields {missing}")
  sizes = {k: np.shape(fields[k])[0] if np.ndim(fields[k]) else None for k in required}
  if None in sizes.values() or len(set(sizes.values())) != 1:
    raise ValueError(f"{name} fields must share a leading dimension n, got {sizes}")
  return next(iter(sizes.values()))


# ---------------------------------------------------------------------- identity latents

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


# ---------------------------------------------------------------------------- nuisances

_NUISANCE_FIELDS = (
  "yaw",
  "roll",
  "scale",
  "shift",
  "light_azimuth",
  "light_elevation",
  "light_strength",
  "ambient",
  "light_color",
  "smile",
  "mouth_open",
  "eye_open",
  "background_seed",
  "noise_seed",
  "noise_std",
  "defocus_sigma",
  "motion_blur",
  "motion_angle",
  "occluder",
  "glasses_tint",
  "glasses_shape",
  "glasses_color",
  "scarf_color",
  "scarf_top",
  "scarf_pattern",
  "clothing_color",
)


def _check_probs(occluder_prob, eyeglasses_prob, max_yaw):
  if not 0.0 <= occluder_prob <= 1.0:
    raise ValueError(f"occluder_prob must be in [0, 1], got {occluder_prob}")
  if not 0.0 <= eyeglasses_prob <= 1.0 - occluder_prob:
    raise ValueError(
      f"eyeglasses_prob must be in [0, 1 - occluder_prob], got "
      f"{eyeglasses_prob} (occluder_prob {occluder_prob})"
    )
  if not 0.0 <= max_yaw <= 60.0:
    raise ValueError(f"max_yaw must be in [0, 60] degrees, got {max_yaw}")


def sample_nuisances(
  rng: np.random.Generator,
  n: int,
  *,
  occluder_prob: float = 0.0,
  eyeglasses_prob: float = 0.1,
  max_yaw: float = 40.0,
) -> dict[str, np.ndarray]:
  """Independent per-image nuisances (pose, light, expression, camera, occluder).

  Args:
    rng: numpy Generator.
    n: number of images.
    occluder_prob: probability of a scarf / mask over the lower face.
    eyeglasses_prob: probability of eyeglasses (exclusive with the scarf; clear or
      sunglasses), so P(no occluder) = 1 - occluder_prob - eyeglasses_prob.
    max_yaw: largest |yaw| in degrees.

  Returns:
    dict of per-image arrays (fields listed in the module docstring).
  """
  if not isinstance(rng, np.random.Generator):
    raise ValueError(f"rng must be a numpy Generator, got {type(rng).__name__}")
  if int(n) < 1:
    raise ValueError(f"n must be a positive int, got {n}")
  _check_probs(occluder_prob, eyeglasses_prob, max_yaw)
  n = int(n)
  f = {}
  frontalish = rng.random(n) < 0.6
  f["yaw"] = np.where(frontalish, rng.normal(0, 0.3, n), rng.uniform(-1, 1, n))
  f["yaw"] = np.clip(f["yaw"], -1, 1) * max_yaw
  f["roll"] = np.clip(rng.normal(0, 5, n), -14, 14)
  f["scale"] = rng.uniform(0.92, 1.08, n)
  f["shift"] = rng.uniform(-0.035, 0.035, (n, 2))
  f["light_azimuth"] = rng.uniform(-70, 70, n)
  f["light_elevation"] = rng.uniform(-10, 55, n)
  f["light_strength"] = rng.uniform(0.45, 0.85, n)
  f["ambient"] = rng.uniform(0.32, 0.55, n)
  warm = rng.normal(0, 1, n)
  f["light_color"] = np.clip(
    np.stack([1 + 0.06 * warm, np.ones(n), 1 - 0.08 * warm], -1) * rng.uniform(0.88, 1.12, (n, 1)),
    0.6,
    1.3,
  )
  f["smile"] = np.clip(rng.beta(0.7, 0.9, n) * 1.1 - 0.05, 0, 1)
  f["mouth_open"] = np.where(
    rng.random(n) < 0.35, rng.uniform(0.2, 1.0, n), rng.uniform(0, 0.15, n)
  )
  f["eye_open"] = np.where(
    rng.random(n) < 0.05, rng.uniform(0.1, 0.5, n), rng.uniform(0.8, 1.05, n)
  )
  f["background_seed"] = rng.integers(0, 2**32, n, dtype=np.uint32)
  f["noise_seed"] = rng.integers(0, 2**32, n, dtype=np.uint32)
  f["noise_std"] = rng.uniform(0.0, 0.035, n)
  f["defocus_sigma"] = np.where(rng.random(n) < 0.25, rng.uniform(0.4, 1.6, n), 0.0)
  f["motion_blur"] = np.zeros(n)
  f["motion_angle"] = rng.uniform(0, 180, n)
  draw = rng.random(n)
  f["occluder"] = np.where(
    draw < occluder_prob, 2, np.where(draw < occluder_prob + eyeglasses_prob, 1, 0)
  )
  f["glasses_tint"] = np.where(
    rng.random(n) < 0.3, rng.uniform(0.7, 0.95, n), rng.uniform(0.0, 0.15, n)
  )
  f["glasses_shape"] = rng.random(n)
  f["glasses_color"] = rng.choice(
    np.array(
      [[0.05, 0.05, 0.05], [0.35, 0.2, 0.1], [0.75, 0.62, 0.3], [0.55, 0.55, 0.6], [0.5, 0.08, 0.1]]
    ),
    n,
  )
  f["scarf_color"] = rng.uniform(0.1, 0.9, (n, 3))
  f["scarf_top"] = rng.uniform(0.12, 0.38, n)
  f["scarf_pattern"] = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(20, 45, n))
  f["clothing_color"] = rng.uniform(0.05, 0.85, (n, 1)) * rng.uniform(0.6, 1.0, (n, 3))
  return _as_nuisance_dtypes(f)


def _as_nuisance_dtypes(f):
  out = {}
  for k in _NUISANCE_FIELDS:
    v = np.asarray(f[k])
    if k in ("background_seed", "noise_seed"):
      out[k] = v.astype(np.uint32)
    elif k == "occluder":
      out[k] = v.astype(np.int8)
    else:
      out[k] = v.astype(_F32)
  return out


def neutral_nuisances(n: int = 1) -> dict[str, np.ndarray]:
  """Zero pose, centred, frontal light, neutral expression, no noise/blur/occluder."""
  f = sample_nuisances(np.random.default_rng(0), n, eyeglasses_prob=0.0)
  for k in (
    "yaw",
    "roll",
    "light_azimuth",
    "smile",
    "mouth_open",
    "noise_std",
    "defocus_sigma",
    "motion_blur",
  ):
    f[k][:] = 0
  f["shift"][:] = 0
  f["scale"][:] = 1
  f["eye_open"][:] = 1
  f["light_elevation"][:] = 30
  f["light_strength"][:] = 0.7
  f["ambient"][:] = 0.5
  f["light_color"][:] = 1
  f["occluder"][:] = 0
  return f


def _smooth_path(rng, num_frames, amplitude, num_waves=3):
  """Sum of low-frequency sinusoids (0.2-1.2 cycles per clip), std about amplitude/2."""
  t = np.arange(num_frames) / max(num_frames, 1)
  freq = rng.uniform(0.2, 1.2, num_waves)
  phase = rng.uniform(0, 2 * np.pi, num_waves)
  weight = rng.normal(0, 1, num_waves) / np.sqrt(num_waves)
  return amplitude * np.sum(
    weight[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None] + phase[:, None]), 0
  )


def video_nuisances(
  rng: np.random.Generator,
  num_frames: int,
  *,
  occluder_prob: float = 0.0,
  eyeglasses_prob: float = 0.1,
  max_yaw: float = 40.0,
  motion_blur_prob: float = 0.0,
) -> dict[str, np.ndarray]:
  """Nuisances of one clip: smooth pose/light/expression drift, fixed background.

  Every continuous field is its clip value plus a sum of three sinusoids of 0.2-1.2
  cycles per clip (yaw amplitude 18 deg, roll 4, scale 0.03, shift 0.012, light
  azimuth 15, elevation 8, smile 0.4, mouth opening 0.35). Background, occluder,
  noise level and defocus are fixed per clip; ``noise_seed`` differs per frame. With
  probability ``motion_blur_prob`` the clip is shaky: ``motion_blur`` (linear kernel
  length in 112-px pixels) then varies smoothly between about 1 and 7 per frame.

  Args:
    rng: numpy Generator.
    num_frames: T >= 1.
    occluder_prob, eyeglasses_prob, max_yaw: as in :func:`sample_nuisances`.
    motion_blur_prob: probability that the clip has motion blur.

  Returns:
    dict of arrays with leading dimension T (fields of :func:`sample_nuisances`).
  """
  if int(num_frames) < 1:
    raise ValueError(f"num_frames must be a positive int, got {num_frames}")
  if not 0.0 <= motion_blur_prob <= 1.0:
    raise ValueError(f"motion_blur_prob must be in [0, 1], got {motion_blur_prob}")
  T = int(num_frames)
  base = sample_nuisances(
    rng, 1, occluder_prob=occluder_prob, eyeglasses_prob=eyeglasses_prob, max_yaw=max_yaw
  )
  f = {k: np.repeat(v, T, axis=0) for k, v in base.items()}
  drift = {
    "yaw": 18.0,
    "roll": 4.0,
    "scale": 0.03,
    "light_azimuth": 15.0,
    "light_elevation": 8.0,
    "smile": 0.4,
    "mouth_open": 0.35,
  }
  for k, amp in drift.items():
    f[k] = f[k] + _smooth_path(rng, T, amp)
  f["shift"] = f["shift"] + np.stack([_smooth_path(rng, T, 0.012) for _ in range(2)], -1)
  f["yaw"] = np.clip(f["yaw"], -max_yaw, max_yaw)
  f["roll"] = np.clip(f["roll"], -16, 16)
  f["smile"] = np.clip(f["smile"], 0, 1)
  f["mouth_open"] = np.clip(f["mouth_open"], 0, 1)
  f["noise_seed"] = rng.integers(0, 2**32, T, dtype=np.uint32)
  if rng.random() < motion_blur_prob:
    level = rng.uniform(2.0, 5.0)
    f["motion_blur"] = np.clip(level + _smooth_path(rng, T, 3.0), 0.5, 8.0)
    f["motion_angle"] = f["motion_angle"] + _smooth_path(rng, T, 25.0)
  return _as_nuisance_dtypes(f)


# ---------------------------------------------------------------- per-image face layout


def _face_params(lat, nui) -> dict[str, np.ndarray]:
  """Per-image geometry [n] combining identity and expression (smile, mouth opening,
  eye opening move the lips, jaw and lids)."""
  p = {}
  smile = nui["smile"].astype(_F32)
  opening = nui["mouth_open"].astype(_F32)
  p["y_top"] = -lat["head_height"]
  p["y_mid"] = np.full_like(smile, -0.25)
  p["y_cheek"] = np.full_like(smile, 0.05)
  p["y_jaw"] = 0.42 + 0.25 * (lat["face_length"] - 1.0)
  p["y_chin"] = lat["face_length"] + 0.08 * opening
  p["w_cran"] = lat["head_width"]
  p["w_cheek"] = lat["cheek_width"]
  p["w_jaw"] = lat["jaw_width"]
  p["n_jaw"] = lat["jaw_squareness"]
  p["cheekbones"] = lat["cheekbones"]
  p["chubby"] = lat["chubby"]
  p["ex"] = lat["eye_spacing"]
  p["ey"] = lat["eye_y"]
  p["eL"] = lat["eye_width"]
  p["eHu"] = lat["eye_width"] * lat["eye_openness"] * nui["eye_open"] * (1 - 0.25 * smile)
  p["etilt"] = lat["eye_tilt"]
  p["by"] = lat["eye_y"] - lat["brow_gap"]
  p["bT"] = lat["brow_thickness"]
  p["barch"] = lat["brow_arch"]
  p["btilt"] = lat["brow_tilt"]
  p["y_tip"] = lat["nose_length"]
  p["y_base"] = lat["nose_length"] + 0.05
  p["nW"] = lat["nose_width"]
  p["nP"] = lat["nose_protrusion"]
  p["npoint"] = lat["nose_pointiness"]
  p["my"] = lat["mouth_y"] + 0.02 * opening
  p["mw"] = lat["mouth_width"] * (1 + 0.18 * smile)
  p["mlift"] = 0.055 * smile
  p["mopen"] = 0.1 * opening + 0.012 * smile
  p["Tu"] = lat["upper_lip"] * (1 - 0.2 * smile)
  p["Tl"] = lat["lower_lip"] * (1 - 0.15 * smile)
  p["smile"] = smile
  style = lat["hair_style"]
  p["bald"] = (style == 0).astype(_F32)
  p["hair_bottom"] = np.select(
    [style == 0, style == 1, style == 2], [0.25, 0.05, 0.75], 1.7
  ).astype(_F32)
  p["hair_open"] = np.select([style == 0, style == 1], [1.5, 1.15], 0.95).astype(_F32)
  p["hairline"] = lat["hairline"]
  p["hvol"] = lat["hair_volume"] * np.where(style == 0, 0.3, 1.0)
  p["hswoop"] = lat["hair_swoop"]
  p["hwave"] = lat["hair_wave"]
  p["ear_y"] = lat["ear_y"]
  p["ear_size"] = lat["ear_size"]
  p["neck_w"] = lat["neck_width"]
  p["double_chin"] = lat["double_chin"]
  p["yaw"] = np.deg2rad(nui["yaw"]).astype(_F32)
  return p


def _expand(p, ndim):
  """Reshape [n] entries to [n, 1, ...] with ndim total dims (colours keep [n, 3])."""
  out = {}
  for k, v in p.items():
    v = np.asarray(v, _F32)
    out[k] = v.reshape(v.shape[:1] + (1,) * (ndim - 1)) if v.ndim == 1 else v
  return out


# ----------------------------------------------------------------------- loft profiles
# Each profile maps heights y to (x0, z0, A, C, e): the cross-section at y is the ellipse
# ((x - x0) / (A e))^2 + ((z - z0) / (C e))^2 = 1, e being a signed envelope (<= 0
# outside the loft's vertical extent). Parameters p broadcast against y.


def _head_profile(p, y):
  up = np.maximum((p["y_mid"] - y) / (p["y_mid"] - p["y_top"]), 0)
  lo = np.maximum((y - p["y_jaw"]) / (p["y_chin"] - p["y_jaw"]), 0)
  e = np.minimum(_signed_cap(up), _signed_cap(lo, p["n_jaw"]))
  A = p["w_cran"] + (p["w_cheek"] - p["w_cran"]) * _smoothstep(p["y_mid"], p["y_cheek"], y)
  A = A + (p["w_jaw"] - p["w_cheek"]) * _smoothstep(p["y_cheek"], p["y_chin"], y)
  cb = np.clip(p["cheekbones"], -1.5, 2.0)
  A = (
    A
    + 0.012 * cb * np.exp(-((y / 0.14) ** 2))
    - 0.012 * np.maximum(cb, 0) * np.exp(-(((y - 0.32) / 0.12) ** 2))
  )
  A = A + 0.06 * (p["chubby"] - 0.5) * np.exp(-(((y - 0.5) / 0.3) ** 2))
  z0 = -0.15 + 0.25 * _smoothstep(0.0, 1.0, y)
  C = 0.98 - 0.22 * _smoothstep(0.0, 1.0, y)
  return 0.0 * y, z0, A, C, e


def _neck_profile(p, y):
  """Neck widening into shoulders."""
  e = np.clip((y - 0.35) / 0.3, -1, 1)
  shoulders = _smoothstep(1.3, 2.1, y)
  return 0.0 * y, -0.22 - 0.1 * shoulders, p["neck_w"] + 1.1 * shoulders, 0.42 + 0.25 * shoulders, e


def _nose_profile(p, y, head_front):
  """Nose loft; head_front is the head's z at x = 0 for these heights."""
  yb0 = p["ey"] - 0.01
  tb = np.maximum((y - (p["y_tip"] - 0.02)) / (p["y_base"] + 0.03 - (p["y_tip"] - 0.02)), 0)
  ncap = 2.2 - 0.8 * p["npoint"]
  e = np.minimum(_signed_cap(tb, ncap), _signed_cap(np.maximum((yb0 + 0.06 - y) / 0.06, 0)))
  t = np.clip((y - yb0) / (p["y_tip"] - yb0), 0, 1.2)
  W = 0.04 + 0.02 * t + (p["nW"] - 0.07) * _smoothstep(0.5, 1.05, t)
  W = W * (1 - 0.2 * p["npoint"] * _smoothstep(0.8, 1.0, t))
  P = 0.02 + (p["nP"] - 0.02) * t * t
  sink = 0.7 * W
  return 0.0 * y, head_front - sink, W, sink + P, e


def _hair_profile(p, y):
  """Hair shell around the head; its bottom and face opening are cuts (_hair_cut)."""
  vol = p["hvol"]
  up = np.maximum((p["y_mid"] - y) / (p["y_mid"] - p["y_top"] + vol), 0)
  A = p["w_cran"] + (p["w_cheek"] - p["w_cran"]) * _smoothstep(p["y_mid"], p["y_cheek"], y)
  A = A + vol + 0.08 * _smoothstep(0.6, 1.8, y)
  C = 1.03 + vol - 0.1 * _smoothstep(0.0, 1.0, y)
  return 0.0 * y, -0.2 + 0.0 * y, A, C, _signed_cap(up)


def _ear_profile(p, y, side):
  e = _signed_cap(np.abs(y - p["ear_y"]) / p["ear_size"])
  x0 = side * (p["w_cheek"] + 0.01)
  return x0 + 0.0 * y, -0.2 + 0.0 * y, 0.05 + 0.0 * y, 0.11 + 0.0 * y, e


# --------------------------------------------------------------------- pixels and lofts


class _Params:
  """Per-image parameter table gathered lazily to a set of pixels (by image index)."""

  def __init__(self, table, img, parent=None, sel=None):
    self._table, self.img, self._cache = table, img, {}
    self._parent, self._sel = parent, sel

  def __getitem__(self, key):
    if key not in self._cache:
      if self._parent is not None and key in self._parent._cache:
        self._cache[key] = self._parent._cache[key][self._sel]
      else:
        self._cache[key] = np.take(self._table[key], self.img, axis=0)
    return self._cache[key]

  def sub(self, sel):
    return _Params(self._table, self.img[sel], self, sel)


class _Pixels:
  """A set of pixels: flat indices into the [n*S*S] buffers, their rays and parameters."""

  def __init__(self, flat, u, v, p):
    self.flat, self.u, self.v, self.p = flat, u, v, p

  @property
  def sn(self):
    return self.p["sin_yaw"]

  @property
  def cs(self):
    return self.p["cos_yaw"]

  @property
  def pix(self):
    return self.p["pix"]

  def sub(self, sel):
    sel = np.flatnonzero(sel) if sel.dtype == bool else sel
    return _Pixels(self.flat[sel], self.u[sel], self.v[sel], self.p.sub(sel))

  def __len__(self):
    return len(self.flat)


class _Loft:
  """Closed-form ray / loft intersection for a set of pixels (orthographic rays at fixed
  camera-plane (u, v) travelling along the camera axis, face yawed by the pixel's yaw)."""

  def __init__(self, px, prof, prof_dy):
    x0, z0, A, C, e = prof
    x0d, z0d, Ad, Cd, ed = prof_dy
    sn, cs, u = px.sn, px.cs, px.u
    a = np.maximum(A * e, 1e-3)
    c = np.maximum(C * e, 1e-3)
    ia2, ic2 = 1.0 / (a * a), 1.0 / (c * c)
    au = u * cs - x0
    bu = u * sn - z0
    qa = sn * sn * ia2 + cs * cs * ic2
    qb = -au * sn * ia2 + bu * cs * ic2
    qc = au * au * ia2 + bu * bu * ic2 - 1.0
    self.root = np.sqrt(np.maximum(qb * qb - qa * qc, 0.0)) / qa
    self.mid = -qb / qa
    # signed distance to the silhouette (image units), slope-corrected
    hs = e * np.sqrt(A * A * cs * cs + C * C * sn * sn)
    hs_d = ed * np.sqrt(Ad * Ad * cs * cs + Cd * Cd * sn * sn)
    u0 = x0 * cs + z0 * sn
    side = np.sign(u - u0)
    slope = ((x0d - x0) * cs + (z0d - z0) * sn + side * (hs_d - hs)) / _DELTA
    d = (hs - np.abs(u - u0)) / np.sqrt(1.0 + slope * slope)
    self.cov = np.clip(0.5 + d / px.pix, 0.0, 1.0)
    self._px = px
    self._geo = (
      x0,
      z0,
      a,
      c,
      (x0d - x0) / _DELTA,
      (z0d - z0) / _DELTA,
      (Ad * ed - A * e) / _DELTA,
      (Cd * ed - C * e) / _DELTA,
    )

  def hit(self, sel=None, back=False):
    """Hit point of the pixels sel: dict with depth w, face x, z, normal n (3-tuple),
    normalised cross-section coordinates Xn, Zn and the half-width a."""
    sel = slice(None) if sel is None else sel
    px = self._px if isinstance(sel, slice) else self._px.sub(sel)
    x0, z0, a, c, x0d, z0d, ad, cd = (g[sel] if np.ndim(g) else g for g in self._geo)
    w = self.mid[sel] - self.root[sel] if back else self.mid[sel] + self.root[sel]
    x = px.u * px.cs - w * px.sn
    z = px.u * px.sn + w * px.cs
    X = (x - x0) / a
    Z = (z - z0) / c
    # the width term is weighted by X^2 so that width changes (cheekbones, jaw) shade
    # the sides of the face rather than banding across its front
    G = -(X * (x0d + X * X * X * ad) / a + Z * (z0d + Z * cd) / c)
    G = np.clip(G, -30, 30)
    nx, nz = X / a, Z / c
    inv = 1.0 / np.sqrt(nx * nx + G * G + nz * nz + 1e-12)
    if back:
      inv = -inv
    return {
      "px": px,
      "w": w,
      "x": x,
      "z": z,
      "n": (nx * inv, G * inv, nz * inv),
      "a": a,
      "Xn": X,
      "Zn": Z,
    }


class _Buffers:
  """Deferred-shading buffers over all n*S*S pixels.

  ``data`` columns: albedo RGB (0-2), normal in face coordinates (3-5), specular
  weight (6), lit weight (7; 0 for the unshaded background).
  """

  def __init__(self, background):
    n_pix = background.shape[0]
    self.data = np.zeros((n_pix, 8), _F32)
    self.data[:, :3] = background
    self._rows = self.data.view(_ROW).ravel()  # row view for fast scatter
    self.zbuf = np.full(n_pix, -1e9, _F32)
    self.label = np.zeros(n_pix, np.uint8)
    self.occluder = np.zeros(n_pix, bool)

  def put(self, px, alpha, albedo, normal, spec, depth=None, part=None):
    """Composites a layer on pixels px with coverage alpha (over what is there)."""
    i = px.flat
    layer = np.empty((len(i), 8), _F32)
    layer[:, :3] = albedo
    for k in range(3):
      layer[:, 3 + k] = normal[k]
    layer[:, 6] = spec
    layer[:, 7] = 1.0
    edge = np.flatnonzero(alpha < 1.0)
    if len(edge):
      old = np.take(self.data, i[edge], axis=0)
      layer[edge] = old + (layer[edge] - old) * alpha[edge, None]
    self._rows[i] = layer.view(_ROW).ravel()
    over = alpha > 0.5
    if depth is not None:
      self.zbuf[i[over]] = depth[over]
    if part is not None:
      self.label[i[over]] = part[over] if np.ndim(part) else part


# ----------------------------------------------------------------------------- decals


def _eye_shapes(P, x, y, pix):
  """Coverage of eye openings, irises, pupils, glints, lash lines (both eyes via |x|)."""
  xl = np.abs(x) - P["ex"]  # local x, positive toward the ear
  yl = y - P["ey"] + P["etilt"] * xl
  L, Hu = P["eL"], P["eHu"] + 1e-3
  Hl = 0.25 * L + 0.1 * Hu
  H = np.where(yl < 0, Hu, Hl)
  d_eye = (np.sqrt((xl / L) ** 2 + (yl / H) ** 2) - 1.0) * np.minimum(H, L)
  eye = _cover(d_eye, pix)
  ri = 0.46 * L
  iy = yl + 0.1 * Hu
  d_iris = np.sqrt(xl * xl + iy * iy)
  iris = _cover(d_iris - ri, pix) * eye
  pupil = _cover(d_iris - 0.42 * ri, pix) * eye
  glint = _cover(np.hypot(xl + 0.3 * ri * np.sign(x), iy + 0.35 * ri) - 0.17 * ri, pix) * eye
  upper = _smoothstep(0.4 * Hl, -0.4 * Hu, yl)
  lash = _cover(np.abs(d_eye) - 0.011 - 0.01 * _smoothstep(0.3 * L, L, xl), pix * 1.2)
  lash = lash * upper * (xl < 1.18 * L)
  lower = _cover(np.abs(d_eye) - 0.006, pix * 1.5) * (1 - upper) * 0.3
  socket = np.exp(-((xl / (1.5 * L)) ** 2 + ((yl + 0.02) / 0.1) ** 2))
  return eye, iris, pupil, glint, np.maximum(lash, lower), socket


def _brow_shape(P, x, y, pix):
  xl = np.abs(x) - (P["ex"] + 0.02)
  Lb = 1.45 * P["eL"]
  xn = np.clip(xl / Lb, -1.0, 1.0)
  centre = P["by"] - P["barch"] * (1 - xn * xn) + 0.03 * P["btilt"] * xn
  half = 0.5 * P["bT"] * (1.15 - 0.25 * (xn + 1))
  d = np.maximum(np.abs(y - centre) - half, (np.abs(xl) - Lb) * 0.5)
  return _cover(d, np.maximum(pix, 0.012))


def _mouth_curves(P, xn):
  """Face-y offsets (from the mouth centre line) of the inner upper, inner lower,
  outer upper and outer lower lip lines at normalised mouth x (|xn| <= 1)."""
  q = 1.0 - xn * xn
  lift = -P["mlift"] * xn * xn
  y_iu = lift - 0.3 * P["mopen"] * q
  y_il = lift + 0.7 * P["mopen"] * q + 0.02 * P["smile"] * q * q
  bow = 1.0 - 0.3 * np.exp(-((xn * P["mw"] / 0.03) ** 2))
  return y_iu, y_il, y_iu - P["Tu"] * np.sqrt(q) * bow, y_il + P["Tl"] * q**0.6


def _mouth_shapes(P, x, y, pix):
  """Coverage of the upper lip, lower lip, mouth opening and teeth."""
  xn = np.clip(x / P["mw"], -1.0, 1.0)
  y_iu, y_il, y_ou, y_ol = _mouth_curves(P, xn)
  yl = y - P["my"]
  side = np.abs(x) - P["mw"]
  upper = _cover(np.maximum(np.maximum(y_ou - yl, yl - y_iu), side), pix)
  lower = _cover(np.maximum(np.maximum(y_il - yl, yl - y_ol), side), pix)
  gap = np.maximum(y_il - y_iu, 0.0)
  seam = np.maximum(np.abs(yl - 0.5 * (y_iu + y_il)) - 0.5 * gap - 0.004, side + 0.01)
  opening = _cover(seam, pix)
  teeth = _cover(yl - (y_iu + 0.4 * gap), pix) * (np.abs(x) < 0.8 * P["mw"]) * (gap > 0.02)
  return upper, lower, opening, teeth


def _mix_at(albedo, sel, color, alpha):
  """albedo[sel] blended toward color ([k,3] or [3]) by alpha [k]."""
  albedo[sel] += (color - albedo[sel]) * alpha[:, None]


def _head_albedo(px, x, y):
  """Skin with painted features on head pixels. Returns albedo [m,3], label [m]."""
  P = px.p
  pix = px.pix
  ax = np.abs(x)
  skin = P["skin_color"]
  dark = np.zeros_like(x)
  # cheeks (redness), under-nose shadow
  cheek = P["redness"] * np.exp(-(((ax - 0.42) / 0.16) ** 2 + ((y - 0.2) / 0.14) ** 2))
  dark += 0.16 * np.exp(-((x / 0.09) ** 2 + ((y - P["y_base"] - 0.03) / 0.03) ** 2))
  light = np.zeros_like(x)
  s = np.flatnonzero((P["cheekbones"] > 0) & (np.abs(y - 0.15) < 0.3))
  if len(s):
    cb, xs, ys = P["cheekbones"][s], ax[s], y[s]
    light[s] = 0.06 * cb * np.exp(-(((xs - 0.45) / 0.13) ** 2 + ((ys - 0.02) / 0.08) ** 2))
    dark[s] += 0.08 * cb * np.exp(-(((xs - 0.5) / 0.11) ** 2 + ((ys - 0.3) / 0.08) ** 2))
  # nasolabial folds (age, smile)
  s = np.flatnonzero((ax < P["mw"] + 0.1) & (y > P["y_base"] - 0.06) & (y < P["my"] + 0.1))
  if len(s):
    q = px.p.sub(s)
    fold, _ = _segment_distance(
      ax[s], y[s], q["nW"] + 0.03, q["y_base"] - 0.03, q["mw"] + 0.04, q["my"] + 0.05
    )
    dark[s] += (0.12 * q["wrinkles"] + 0.15 * q["smile"]) * np.exp(-((fold / 0.014) ** 2))
  # forehead lines (age)
  s = np.flatnonzero((P["wrinkles"] > 0) & (y < P["by"] - 0.08) & (ax < 0.4))
  if len(s):
    q = px.p.sub(s)
    for k in range(3):
      line = y[s] - (q["by"] - 0.13 - 0.065 * k) - 0.015 * np.sin(7 * x[s] + k)
      dark[s] += 0.22 * q["wrinkles"] * np.exp(-((line / 0.009) ** 2)) * (ax[s] < 0.36)
  # double chin crease
  s = np.flatnonzero(
    (P["double_chin"] > 0.55) & (ax < 0.3) & (np.abs(y - P["y_chin"] + 0.09) < 0.08)
  )
  if len(s):
    q = px.p.sub(s)
    crease = y[s] - (q["y_chin"] - 0.09 + 0.35 * x[s] ** 2)
    dark[s] += np.minimum(q["double_chin"] - 0.55, 0.5) * 0.8 * np.exp(-((crease / 0.014) ** 2))
  # freckles: identity texture on a fixed face lattice
  s = np.flatnonzero((P["freckles"] > 0) & (np.abs(y - 0.12) < 0.4) & (ax < 0.6))
  if len(s):
    q = px.p.sub(s)
    gx, gy = x[s] / 0.035, y[s] / 0.035
    ix, iy = np.floor(gx), np.floor(gy)
    rnd = _hash01(ix, iy, q["texture_seed"])
    ox = 0.2 + 0.6 * _hash01(ix, iy, q["texture_seed"] + 1.0)
    oy = 0.2 + 0.6 * _hash01(ix, iy, q["texture_seed"] + 2.0)
    fr = np.hypot(gx - ix - ox, gy - iy - oy) / (0.12 + 0.2 * rnd)
    region = np.exp(-(((ax[s] - 0.22) / 0.25) ** 2 + ((y[s] - 0.12) / 0.18) ** 2))
    dark[s] += 0.3 * (rnd < q["freckles"] * 0.6) * np.exp(-fr * fr) * region
  albedo = skin * (1.0 - np.minimum(dark, 0.8))[:, None] + light[:, None]
  albedo[:, 1:] *= (1 - 0.12 * cheek)[:, None]
  # beard shadow
  s = np.flatnonzero((P["beard_shadow"] > 0) & (y > -0.25))
  if len(s):
    q = px.p.sub(s)
    ys = y[s]
    line = q["y_base"] + 0.03 + 0.55 * np.maximum(ax[s] - 0.14, 0)
    beard = _smoothstep(line, line + 0.08, ys) * (
      1 - _smoothstep(q["y_chin"] + 0.02, q["y_chin"] + 0.1, ys)
    ) + 0.5 * _smoothstep(0.62, 0.78, ax[s]) * _smoothstep(-0.25, 0.15, ys)
    beard = np.minimum(beard, 1) * q["beard_shadow"] * 0.5
    _mix_at(albedo, s, q["hair_color"] * 0.5 + q["skin_color"] * 0.4, beard)
  # moles
  for k in range(NUM_MARKS):
    mk = P["marks"][:, k]
    s = np.flatnonzero(
      (mk[:, 3] > 0)
      & (np.abs(x - mk[:, 0]) < mk[:, 2] + 2 * pix)
      & (np.abs(y - mk[:, 1]) < mk[:, 2] + 2 * pix)
    )
    if len(s):
      m = mk[s]
      mole = _cover(np.hypot(x[s] - m[:, 0], y[s] - m[:, 1]) - m[:, 2], pix[s]) * m[:, 3]
      _mix_at(albedo, s, np.array([0.28, 0.17, 0.11], _F32), mole)
  label = np.full(x.shape, _SKIN, np.uint8)
  # brows
  s = np.flatnonzero((np.abs(y - P["by"]) < 0.12) & (np.abs(ax - P["ex"]) < 0.3))
  if len(s):
    q = px.p.sub(s)
    brow = _brow_shape(q, x[s], y[s], pix[s])
    _mix_at(albedo, s, q["brow_color"], 0.92 * brow)
    label[s[brow > 0.5]] = _BROWS
  # eyes
  s = np.flatnonzero((np.abs(y - P["ey"]) < 0.14) & (np.abs(ax - P["ex"]) < 0.22))
  if len(s):
    q = px.p.sub(s)
    eye, iris, pupil, glint, lash, socket = _eye_shapes(q, x[s], y[s], pix[s])
    albedo[s] *= (1 - 0.2 * socket)[:, None]
    _mix_at(albedo, s, np.array([0.86, 0.84, 0.8], _F32) * (0.85 + 0.15 * q["skin_color"]), eye)
    _mix_at(albedo, s, q["iris_color"], iris)
    _mix_at(albedo, s, np.array([0.03, 0.02, 0.02], _F32), pupil)
    _mix_at(albedo, s, np.array([0.95, 0.95, 0.95], _F32), glint * 0.8)
    _mix_at(albedo, s, np.array([0.08, 0.05, 0.04], _F32), 0.85 * lash)
    label[s[eye > 0.5]] = _EYES
  # mouth
  s = np.flatnonzero((np.abs(y - P["my"]) < 0.2) & (ax < P["mw"] + 0.03))
  if len(s):
    q = px.p.sub(s)
    upper, lower, opening, teeth = _mouth_shapes(q, x[s], y[s], pix[s])
    lip = q["lip_color"]
    _mix_at(albedo, s, lip * 0.88, upper)
    _mix_at(albedo, s, lip, lower)
    _mix_at(albedo, s, np.array([0.22, 0.06, 0.06], _F32), opening)
    _mix_at(albedo, s, np.array([0.85, 0.82, 0.75], _F32), opening * teeth)
    label[s[(upper > 0.5) | (lower > 0.5) | (opening > 0.5)]] = _MOUTH
  return albedo, label


def _nose_albedo(px, x, y):
  P = px.p
  skin = P["skin_color"]
  tip = P["redness"] * np.exp(-((x / 0.08) ** 2 + ((y - P["y_tip"]) / 0.07) ** 2))
  albedo = skin.copy()
  albedo[:, 1:] *= (1 - 0.08 * tip)[:, None]
  xl = np.abs(x) - 0.45 * P["nW"]
  yl = y - (P["y_base"] + 0.005)
  r = np.sqrt((xl / (0.33 * P["nW"])) ** 2 + (yl / 0.018) ** 2)
  nostril = _cover((r - 1) * 0.018, px.pix)
  _mix_at(albedo, slice(None), skin * 0.25, nostril)
  return albedo


def _hair_cut(hit):
  """Hair coverage factor of shell points: 0 inside the face opening, below the hair's
  lower edge and (bald) on the crown."""
  P, x, y = hit["px"].p, hit["x"], hit["px"].v
  sin_o = np.sin(P["hair_open"])
  d_ang = (hit["Zn"] - np.cos(P["hair_open"])) * hit["a"] / sin_o
  hairline = (
    P["hairline"]
    + 0.5 * x * x
    + P["hswoop"] * x
    + 0.008 * np.sin(45 * x)
    + 0.006 * np.sin(97 * x + 1.3)
  )
  d_open = np.minimum(d_ang, y - hairline)
  d_open = np.maximum(d_open, np.where(P["bald"] > 0, -0.12 - y, -10.0))
  bottom = P["hair_bottom"] - 0.18 * hit["Zn"] + 0.025 * np.sin(31 * x)
  d_open = np.maximum(d_open, y - bottom)
  return _cover(d_open, np.maximum(hit["px"].pix, 0.03))


def _hair_albedo(hit, inside):
  P, y = hit["px"].p, hit["px"].v
  phase = 60 * np.arctan2(hit["Xn"], hit["Zn"]) + (0.5 + 2.5 * P["hwave"]) * np.sin(9 * y)
  stripes = 0.6 * np.sin(phase) + 0.4 * np.sin(2.3 * phase + 1.7)
  contrast = 0.13 * np.clip((0.05 - hit["px"].pix) / 0.025, 0, 1)  # fades before aliasing
  tone = (1 + contrast * stripes) * (0.55 if inside else 1.0)
  return P["hair_color"] * tone[:, None]


# ----------------------------------------------------------------------------- layers


def _loft_pixels(px, profile, bound, *extra):
  """The loft `profile` intersected with the pixels of px passing the bounding test."""
  sub = px.sub(bound)
  return _Loft(sub, profile(sub.p, sub.v, *extra), profile(sub.p, sub.v + _DELTA, *extra))


def _draw_hair_and_neck(buf, px):
  """Draws the inside of the hair shell and the neck/shoulders; returns the hair
  shell's front hits and their coverage, drawn after the head."""
  P = px.p
  bound = (px.v > P["y_top"] - P["hvol"] - 0.05) & (np.abs(px.u) < 1.35)
  loft = _loft_pixels(px, _hair_profile, bound)
  on = np.flatnonzero(loft.cov > 0)
  back = loft.hit(on, back=True)
  alpha = loft.cov[on] * _hair_cut(back)
  buf.put(back["px"], alpha, _hair_albedo(back, True), back["n"], 0.05, back["w"], _HAIR)
  front = loft.hit(on)
  front_alpha = loft.cov[on] * _hair_cut(front)
  # neck and shoulders (over the back hair)
  loft_n = _loft_pixels(px, _neck_profile, px.v > 0.3)
  on_n = np.flatnonzero(loft_n.cov > 0)
  hit = loft_n.hit(on_n)
  q, y = hit["px"].p, hit["px"].v
  shade = 0.6 + 0.4 * _smoothstep(q["y_chin"], q["y_chin"] + 0.4, y)
  collar = y - (1.28 - 0.35 * hit["x"] ** 2)
  cloth = _cover(-collar, hit["px"].pix)
  albedo = q["skin_color"] * shade[:, None]
  albedo += (q["clothing_color"] * (0.9 + 0.1 * np.sin(30 * hit["x"]))[:, None] - albedo) * cloth[
    :, None
  ]
  buf.put(hit["px"], loft_n.cov[on_n], albedo, hit["n"], 0.03, hit["w"], _SKIN)
  return front, front_alpha


def _draw_head(buf, px):
  """Draws the head with its decals, then the ears and the nose (depth-tested)."""
  P = px.p
  bound = (px.v > P["y_top"] - 0.05) & (px.v < P["y_chin"] + 0.05) & (np.abs(px.u) < 1.05)
  loft = _loft_pixels(px, _head_profile, bound)
  on = np.flatnonzero(loft.cov > 0)
  hit = loft.hit(on)
  albedo, label = _head_albedo(hit["px"], hit["x"], hit["px"].v)
  buf.put(hit["px"], loft.cov[on], albedo, hit["n"], 0.1, hit["w"], label)
  # ears: depth-tested against the scene
  for side in (-1.0, 1.0):
    x_ear = side * (P["w_cheek"] + 0.01)
    u_ear = x_ear * px.cs - 0.2 * px.sn
    bound = (np.abs(px.v - P["ear_y"]) < P["ear_size"] + 0.02) & (np.abs(px.u - u_ear) < 0.2)
    loft_e = _loft_pixels(px, _ear_profile, bound, side)
    on_e = np.flatnonzero(loft_e.cov > 0)
    ear = loft_e.hit(on_e)
    q, y = ear["px"].p, ear["px"].v
    inner = ((y - q["ear_y"]) / (0.6 * q["ear_size"])) ** 2 + (ear["Zn"] / 0.6) ** 2 < 1
    alb = q["skin_color"] * (1 - 0.3 * inner)[:, None] * np.array([1.0, 0.93, 0.9], _F32)
    alpha = loft_e.cov[on_e] * (ear["w"] > buf.zbuf[ear["px"].flat])
    buf.put(ear["px"], alpha, alb, ear["n"], 0.05, ear["w"], _SKIN)
  # nose: soft depth test against the head surface
  bound = (px.v > P["ey"] - 0.1) & (px.v < P["y_base"] + 0.06) & (np.abs(px.u - 0.95 * px.sn) < 0.4)
  sub = px.sub(bound)
  head = _head_profile(sub.p, sub.v)
  head_d = _head_profile(sub.p, sub.v + _DELTA)
  front = head[1] + head[3] * np.maximum(head[4], 0)
  front_d = head_d[1] + head_d[3] * np.maximum(head_d[4], 0)
  loft_n = _Loft(
    sub, _nose_profile(sub.p, sub.v, front), _nose_profile(sub.p, sub.v + _DELTA, front_d)
  )
  on_n = np.flatnonzero(loft_n.cov > 0)
  nose = loft_n.hit(on_n)
  z_under = buf.zbuf[nose["px"].flat]
  alpha = loft_n.cov[on_n] * np.clip((nose["w"] - z_under) / 0.03, 0, 1)
  buf.put(
    nose["px"],
    alpha,
    _nose_albedo(nose["px"], nose["x"], nose["px"].v),
    nose["n"],
    0.08,
    nose["w"],
    _NOSE,
  )


def _draw_glasses(buf, px):
  """Eyeglasses: frame and lenses on a plane in front of the eyes, arms in 3D."""
  P = px.p
  px = px.sub((np.abs(px.v - P["ey"]) < 0.2))
  P, sn, cs, u, v = px.p, px.sn, px.cs, px.u, px.v
  eye_front = _surface_z(_head_profile(P, P["ey"]), P["ex"])
  zg = eye_front + 0.12
  xg = u * cs - (zg - u * sn) / cs * sn
  shape = P["glasses_shape"]
  hx = 0.155 + 0.02 * shape
  hy = 0.095 + 0.025 * (1 - shape)
  d_lens = _rounded_box(
    np.abs(xg) - P["ex"], v - P["ey"] - 0.01, hx, hy, hy * (0.35 + 0.65 * (1 - shape))
  )
  frame = _cover(np.abs(d_lens) - (0.008 + 0.006 * shape), px.pix)
  lens = _cover(d_lens, px.pix)
  d_bridge = np.maximum(np.abs(xg) - (P["ex"] - hx) - 0.01, np.abs(v - (P["ey"] - 0.035)) - 0.012)
  frame = np.maximum(frame, _cover(d_bridge, px.pix))
  zbuf = buf.zbuf[px.flat]
  for side in (-1.0, 1.0):
    hinge = (side * (P["ex"] + hx), P["ey"] - 0.04, zg)
    ear = (side * (P["w_cheek"] + 0.04), P["ey"] + 0.02, -0.3)
    (ax, ay, az), (bx, by, bz) = [
      (x * cs + z * sn, y, -x * sn + z * cs) for x, y, z in (hinge, ear)
    ]
    d, t = _segment_distance(u, v, ax, ay, bx, by)
    frame = np.maximum(frame, _cover(d - 0.011, px.pix) * (az + t * (bz - az) > zbuf))
  lens_col = (
    np.array([0.08, 0.09, 0.1], _F32) + 0.12 * _smoothstep(P["ey"] + 0.1, P["ey"] - 0.1, v)[:, None]
  )
  color = np.where((frame > 0)[:, None], P["glasses_color"], lens_col)
  alpha = np.maximum(frame, lens * (P["glasses_tint"] + 0.08))
  normal = (0.0 * u, 0.0 * u, 1.0 + 0.0 * u)
  buf.put(px, alpha, color, normal, 0.35)
  buf.occluder[px.flat] |= np.maximum(frame, lens) > 0.5


def _draw_scarf(buf, px):
  """Scarf / mask: a loft around the lower face and neck, drawn over everything."""
  px = px.sub(px.v > px.p["scarf_top"] - 0.25)

  def profile(p, y):
    _, z0, A, C, e = _head_profile(p, y)
    a = np.maximum(A * np.maximum(e, 0), p["neck_w"]) + 0.07
    c = np.maximum(C * np.maximum(e, 0), 0.42) + 0.1 + 0.2 * np.exp(-(((y - 0.3) / 0.3) ** 2))
    ee = np.clip((y - (p["scarf_top"] - 0.2)) / 0.1, -1, 1)
    return 0.0 * y, np.maximum(z0, -0.1), a, c, ee

  loft = _Loft(px, profile(px.p, px.v), profile(px.p, px.v + _DELTA))
  on = np.flatnonzero(loft.cov > 0)
  hit = loft.hit(on)
  P, v = hit["px"].p, hit["px"].v
  edge = P["scarf_top"] + 0.3 * (hit["x"] / 0.8) ** 2
  alpha = loft.cov[on] * _cover(edge - v, hit["px"].pix)
  freq = P["scarf_pattern"]
  stripes = (np.sin(freq * (v + 0.4 * hit["x"])) > 0) & (freq > 0)
  folds = 1 + 0.08 * np.sin(40 * v + 5 * hit["x"])
  albedo = P["scarf_color"] * ((1 - 0.45 * stripes) * folds)[:, None]
  buf.put(hit["px"], alpha, albedo, hit["n"], 0.02)
  buf.occluder[hit["px"].flat] |= alpha > 0.5


def _shade_all(buf, table, img):
  """Deferred shading: wrapped Lambert + Blinn specular in face coordinates."""
  P = _Params(table, img)
  d = buf.data
  nx, ny, nz = d[:, 3], d[:, 4], d[:, 5]
  ndl = nx * P["light_x"] + ny * P["light_y"] + nz * P["light_z"]
  diff = np.clip((ndl + 0.3) / 1.3, 0.0, 1.0)
  ndh = np.maximum(nx * P["half_x"] + ny * P["half_y"] + nz * P["half_z"], 0.0)
  spec = ndh * ndh
  spec = spec * spec
  spec = spec * spec
  spec = spec * spec  # (n.h)^16
  lit = d[:, 7]
  shade = 1.0 + lit * (P["ambient"] + P["light_strength"] * diff - 1.0)
  spec = lit * d[:, 6] * P["light_strength"] * spec * (ndl > -0.1)
  return (d[:, :3] * shade[:, None] + spec[:, None]) * P["light_color"]


# ------------------------------------------------------------------------- background


def _upsample_matrix(size, res):
  """Bilinear (pixel-area aligned) interpolation matrix [size, res]."""
  pos = np.clip((np.arange(size) + 0.5) * res / size - 0.5, 0, res - 1)
  lo = np.minimum(np.floor(pos).astype(int), res - 2)
  w = (pos - lo).astype(_F32)
  m = np.zeros((size, res), _F32)
  m[np.arange(size), lo] = 1 - w
  m[np.arange(size), lo + 1] += w
  return m


def _background(nui, size):
  """Low-frequency clutter (gradient, panels, blobs) per background_seed, [n,S,S,3]."""
  n = len(nui["background_seed"])
  res = min(size, _BG_RES)
  k = 7
  prm = np.empty((n, 12 + 9 * k), _F32)
  for i, s in enumerate(nui["background_seed"]):
    prm[i] = np.random.default_rng(int(s)).random(12 + 9 * k)

  def colour(r):
    grey = 0.2 + 0.65 * r[..., :1]
    return grey + 0.45 * (r[..., 1:4] - 0.5) * r[..., 4:5]

  g = (np.arange(res, dtype=_F32) + 0.5) / res
  gy, gx = g[None, :, None], g[None, None, :]
  ang = prm[:, 10, None, None] * 2 * np.pi
  ramp = np.cos(ang) * gx + np.sin(ang) * gy
  c1 = colour(prm[:, None, None, 0:5])
  c2 = colour(prm[:, None, None, 5:10])
  img = c1 + (c2 - c1) * np.clip(ramp, 0, 1)[..., None]
  for j in range(k):
    b = prm[:, 12 + 9 * j : 21 + 9 * j]
    cx, cy = b[:, 0, None, None] * 1.2 - 0.1, b[:, 1, None, None] * 1.2 - 0.1
    rx, ry = 0.05 + 0.35 * b[:, 2, None, None], 0.05 + 0.35 * b[:, 3, None, None]
    if j < 3:  # panels (walls, doors, windows)
      d = _rounded_box(gx - cx, gy - cy, rx, ry + 0.2, 0.01)
    else:
      d = (np.sqrt(((gx - cx) / rx) ** 2 + ((gy - cy) / ry) ** 2) - 1) * np.minimum(rx, ry)
    alpha = _cover(d, 1.0 / res) * (0.3 + 0.6 * b[:, 4, None, None])
    img = _mix(img, colour(b[:, None, None, 4:9]), alpha)
  if res != size:
    m = _upsample_matrix(size, res)
    img = np.matmul(m, img.reshape(n, res, res * 3)).reshape(n, size, res, 3)
    img = np.matmul(img.transpose(0, 1, 3, 2), m.T).transpose(0, 1, 3, 2)
  return np.clip(img, 0, 1).astype(_F32)


def _blur(img, defocus, motion, angle):
  """Defocus (Gaussian) and linear motion blur in the Fourier domain.

  img [m,S,S,3]; defocus sigma, motion length (pixels) and angle (degrees) [m].
  """
  pad = int(np.ceil(3 * defocus.max() + motion.max() / 2)) + 2
  x = np.pad(img, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  h, w = x.shape[1:3]
  fy = np.fft.fftfreq(h)[None, :, None]
  fx = np.fft.rfftfreq(w)[None, None, :]
  sig = defocus[:, None, None]
  th = np.deg2rad(angle)[:, None, None]
  transfer = np.exp(-2 * np.pi**2 * sig**2 * (fx**2 + fy**2))
  transfer = transfer * np.sinc(motion[:, None, None] * (fx * np.cos(th) + fy * np.sin(th)))
  out = np.fft.irfft2(np.fft.rfft2(x, axes=(1, 2)) * transfer[..., None], s=(h, w), axes=(1, 2))
  return out[:, pad : pad + img.shape[1], pad : pad + img.shape[2]].astype(_F32)


# -------------------------------------------------------------------------- landmarks


def _surface_z(prof, x):
  """Front z of a loft at face (x, y) (the profile is evaluated at y); -inf off it."""
  x0, z0, A, C, e = prof
  a = np.maximum(A * e, 1e-3)
  q = 1 - ((x - x0) / a) ** 2
  return np.where(
    (q >= 0) & (e > 0), z0 + C * np.maximum(e, 0) * np.sqrt(np.maximum(q, 0)), -np.inf
  )


def _landmarks(P, nui, size):
  """68 landmarks [n, 68, 2] in pixels (see module docstring)."""
  n = len(P["yaw"])
  Q = _expand(P, 2)
  sn, cs = np.sin(Q["yaw"]), np.cos(Q["yaw"])
  # jaw: rows equally spaced in arc length along the frontal outline
  ys = Q["ey"] + 0.06 + (Q["y_chin"] - Q["ey"] - 0.06) * np.linspace(0, 1, 96, dtype=_F32)
  _, _, A, _, e = _head_profile(Q, ys)
  xo = A * np.maximum(e, 0)
  seg = np.hypot(np.diff(xo, axis=1), np.diff(ys, axis=1))
  arc = np.concatenate([np.zeros((n, 1)), np.cumsum(seg, 1)], 1)
  rows = np.stack(
    [np.interp(np.linspace(0, arc[i, -1], 9), arc[i], ys[i]) for i in range(n)]
  ).astype(_F32)
  rows[:, -1] = Q["y_chin"][:, 0]
  x0, z0, A, C, e = _head_profile(Q, rows)
  hs = np.maximum(e, 0) * np.sqrt(A * A * cs * cs + C * C * sn * sn)
  u0 = x0 * cs + z0 * sn
  jaw_u = np.concatenate([u0 - hs, (u0 + hs)[:, -2::-1]], 1)
  jaw_v = np.concatenate([rows, rows[:, -2::-1]], 1)
  # painted surface points, face (x, y)
  ex, ey, L, Hu, tilt = Q["ex"], Q["ey"], Q["eL"], Q["eHu"], Q["etilt"]
  Hl = 0.55 * L * 0.46 + 0.1 * Hu
  pts = []
  Lb = 1.45 * L
  bx = ex + 0.02
  for side, order in ((-1, (1, 0.5, 0, -0.5, -1)), (1, (-1, -0.5, 0, 0.5, 1))):
    for xn in order:
      yb = Q["by"] - Q["barch"] * (1 - xn * xn) + 0.03 * Q["btilt"] * xn
      pts.append((side * (bx + xn * Lb), yb))
  nose_top = ey
  for t in (0, 1 / 3, 2 / 3, 1):
    pts.append((0 * ex, nose_top + t * (Q["y_tip"] - nose_top)))
  for xn in (-0.8, -0.4, 0, 0.4, 0.8):
    pts.append((xn * Q["nW"], Q["y_base"] - 0.005 + 0.0 * ex))
  s3 = np.sqrt(8 / 9)
  eye_local = {  # (x' outward, upper/lower)
    "r": ((1, 0), (1 / 3, -1), (-1 / 3, -1), (-1, 0), (-1 / 3, 1), (1 / 3, 1)),
    "l": ((-1, 0), (-1 / 3, -1), (1 / 3, -1), (1, 0), (1 / 3, 1), (-1 / 3, 1)),
  }
  for side, key in ((-1, "r"), (1, "l")):
    for xn, ud in eye_local[key]:
      xl = xn * L
      hgt = np.where(ud < 0, Hu, Hl) * (s3 if ud else 0) * ud
      pts.append((side * (ex + xl), ey - tilt * xl + hgt))
  mw, my = Q["mw"], Q["my"]

  def mouth(xn, which):
    q = 1 - xn * xn
    lift = -Q["mlift"] * xn * xn
    y_iu = lift - 0.3 * Q["mopen"] * q
    y_il = lift + 0.7 * Q["mopen"] * q + 0.02 * Q["smile"] * q * q
    bow = 1 - 0.3 * np.exp(-((xn * mw / 0.03) ** 2))
    val = {
      "iu": y_iu,
      "il": y_il,
      "ou": y_iu - Q["Tu"] * np.sqrt(q) * bow,
      "ol": y_il + Q["Tl"] * q**0.6,
    }[which]
    return (xn * mw, my + val)

  for xn, wh in (
    (-1, "ou"),
    (-0.6, "ou"),
    (-0.22, "ou"),
    (0, "ou"),
    (0.22, "ou"),
    (0.6, "ou"),
    (1, "ou"),
    (0.6, "ol"),
    (0.25, "ol"),
    (0, "ol"),
    (-0.25, "ol"),
    (-0.6, "ol"),
    (-0.92, "iu"),
    (-0.4, "iu"),
    (0, "iu"),
    (0.4, "iu"),
    (0.92, "iu"),
    (0.4, "il"),
    (0, "il"),
    (-0.4, "il"),
  ):
    pts.append(mouth(np.float32(xn), wh))
  px = np.concatenate([np.broadcast_to(p[0], (n, 1)) for p in pts], 1)
  py = np.concatenate([np.broadcast_to(p[1], (n, 1)) for p in pts], 1)
  head = _head_profile(Q, py)
  pz = _surface_z(head, px)
  front = _surface_z(_head_profile(Q, py), 0 * px)
  pz = np.maximum(pz, _surface_z(_nose_profile(Q, py, front), px))
  pu = px * cs + pz * sn
  u = np.concatenate([jaw_u, pu], 1)
  v = np.concatenate([jaw_v, py], 1)
  return _to_image(u, v, nui, size)


def _to_image(u, v, nui, size):
  """Camera-plane (u, v) [n, k] -> pixel (x, y) [n, k, 2]."""
  scale = (_PX_PER_UNIT * size * nui["scale"]).astype(_F32)[:, None]
  roll = np.deg2rad(nui["roll"]).astype(_F32)[:, None]
  cx = (size - 1) / 2 + nui["shift"][:, 0:1] * size
  cy = (size - 1) / 2 + nui["shift"][:, 1:2] * size
  du, dv = u * scale, (v - _CENTER_Y) * scale
  x = cx + np.cos(roll) * du - np.sin(roll) * dv
  y = cy + np.sin(roll) * du + np.cos(roll) * dv
  return np.stack([x, y], -1).astype(_F32)


# ----------------------------------------------------------------------------- render


def _param_table(lat, nui, size):
  """Per-image table [n] / [n, k] of everything the pixel passes read."""
  t = _face_params(lat, nui)
  for k in (
    "redness",
    "wrinkles",
    "beard_shadow",
    "freckles",
    "texture_seed",
    "skin_color",
    "hair_color",
    "brow_color",
    "iris_color",
    "lip_color",
    "marks",
  ):
    t[k] = lat[k]
  for k in (
    "glasses_shape",
    "glasses_tint",
    "glasses_color",
    "scarf_top",
    "scarf_pattern",
    "scarf_color",
    "clothing_color",
    "ambient",
    "light_strength",
    "light_color",
    "occluder",
  ):
    t[k] = nui[k]
  sn, cs = np.sin(t["yaw"]), np.cos(t["yaw"])
  t["sin_yaw"], t["cos_yaw"] = sn, cs
  t["pix"] = 1.0 / (_PX_PER_UNIT * size * nui["scale"])
  az, el = np.deg2rad(nui["light_azimuth"]), np.deg2rad(nui["light_elevation"])
  lx, ly, lz = np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)
  light = (cs * lx - sn * lz, ly, sn * lx + cs * lz)  # face coordinates
  half = (light[0] - sn, light[1], light[2] + cs)
  norm = np.sqrt(sum(h * h for h in half)) + 1e-6
  for i, axis in enumerate("xyz"):
    t["light_" + axis] = light[i]
    t["half_" + axis] = half[i] / norm
  return {k: np.asarray(v, np.int32 if k == "occluder" else _F32) for k, v in t.items()}


def _pixel_grid(nui, size):
  """Camera-plane coordinates (u, v) [n, S, S] of all pixel centres."""
  n = len(nui["yaw"])
  scale = (_PX_PER_UNIT * size * nui["scale"]).astype(_F32).reshape(n, 1, 1)
  roll = np.deg2rad(nui["roll"]).astype(_F32).reshape(n, 1, 1)
  cx = ((size - 1) / 2 + nui["shift"][:, 0] * size).astype(_F32).reshape(n, 1, 1)
  cy = ((size - 1) / 2 + nui["shift"][:, 1] * size).astype(_F32).reshape(n, 1, 1)
  g = np.arange(size, dtype=_F32)
  dx = (g[None, None, :] - cx) / scale
  dy = (g[None, :, None] - cy) / scale
  cr, sr = np.cos(roll), np.sin(roll)
  return cr * dx + sr * dy, -sr * dx + cr * dy + _CENTER_Y


def _render_chunk(lat, nui, size, base_seed):
  n = len(nui["yaw"])
  table = _param_table(lat, nui, size)
  u, v = _pixel_grid(nui, size)
  img = np.repeat(np.arange(n), size * size)
  px = _Pixels(np.arange(n * size * size), u.ravel(), v.ravel(), _Params(table, img))
  buf = _Buffers(_background(nui, size).reshape(-1, 3))
  hair, hair_alpha = _draw_hair_and_neck(buf, px)
  _draw_head(buf, px)
  buf.put(hair["px"], hair_alpha, _hair_albedo(hair, False), hair["n"], 0.15, hair["w"], _HAIR)
  kind = px.p["occluder"]
  if (table["occluder"] == 1).any():
    _draw_glasses(buf, px.sub(kind == 1))
  if (table["occluder"] == 2).any():
    _draw_scarf(buf, px.sub(kind == 2))
  rgb = _shade_all(buf, table, img).reshape(n, size, size, 3)

  scale = size / _REF_SIZE
  defocus = nui["defocus_sigma"].astype(_F32) * scale
  motion = nui["motion_blur"].astype(_F32) * scale
  blurred = (defocus > 0.05) | (motion > 0.3)
  if blurred.any():
    rgb[blurred] = _blur(
      rgb[blurred], defocus[blurred], motion[blurred], nui["motion_angle"][blurred].astype(_F32)
    )
  for i in range(n):
    rng = np.random.default_rng([base_seed, int(nui["noise_seed"][i])])
    rgb[i] += rng.standard_normal(rgb.shape[1:], dtype=_F32) * nui["noise_std"][i]
  image = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)

  attrs = np.concatenate(
    [
      identity_attributes(lat),
      np.stack([nui["occluder"] == 1, nui["smile"] > 0.5, nui["mouth_open"] > 0.35], -1),
      _extra_identity_attributes(lat),
      ((nui["defocus_sigma"] > 1.3) | (nui["motion_blur"] > 4.0))[:, None],
    ],
    -1,
  )
  return {
    "image": image,
    "landmarks": _landmarks(_face_params(lat, nui), nui, size),
    "segmentation": buf.label.reshape(n, size, size),
    "occluder_mask": buf.occluder.reshape(n, size, size),
    "attributes": attrs.astype(bool),
  }


def render(
  latents: Mapping[str, np.ndarray],
  nuisances: Mapping[str, np.ndarray],
  image_size: int,
  *,
  seed_or_rng,
) -> dict[str, np.ndarray]:
  """Renders faces.

  Args:
    latents: identity latents with leading dimension n (see :func:`identity_latents`).
    nuisances: per-image nuisances with leading dimension n (:func:`sample_nuisances`).
    image_size: output height = width S (16..512).
    seed_or_rng: int or numpy Generator giving the base of the sensor-noise streams;
      image i's noise comes from ``default_rng([base, nuisances['noise_seed'][i]])``,
      so with an int seed an image does not depend on the other images of the batch.

  Returns:
    dict: ``image`` uint8 [n,S,S,3]; ``landmarks`` float32 [n,68,2]; ``segmentation``
    uint8 [n,S,S] (PART_NAMES ids, amodal: occluders not drawn); ``occluder_mask`` bool
    [n,S,S]; ``attributes`` bool [n, len(ATTRIBUTE_NAMES)].
  """
  n = _check_batch("latents", latents, _LATENT_FIELDS)
  m = _check_batch("nuisances", nuisances, _NUISANCE_FIELDS)
  if n != m:
    raise ValueError(f"latents and nuisances must have the same n, got {n} and {m}")
  if not np.isin(nuisances["occluder"], np.arange(len(OCCLUDER_KINDS))).all():
    raise ValueError(f"nuisances['occluder'] must index OCCLUDER_KINDS {OCCLUDER_KINDS}")
  if not isinstance(image_size, (int, np.integer)) or not 16 <= image_size <= 512:
    raise ValueError(f"image_size must be an int in [16, 512], got {image_size}")
  if isinstance(seed_or_rng, np.random.Generator):
    base = int(seed_or_rng.integers(0, 2**32))
  elif isinstance(seed_or_rng, (int, np.integer)) and seed_or_rng >= 0:
    base = int(seed_or_rng)
  else:
    raise ValueError(
      f"seed_or_rng must be a non-negative int or a numpy Generator, got {seed_or_rng!r}"
    )
  parts = []
  chunk = max(1, _CHUNK_PIXELS // int(image_size) ** 2)
  for start in range(0, n, chunk):
    sl = slice(start, start + chunk)
    parts.append(
      _render_chunk(
        {k: np.asarray(v)[sl] for k, v in latents.items()},
        {k: np.asarray(v)[sl] for k, v in nuisances.items()},
        int(image_size),
        base,
      )
    )
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def frontal_landmarks(image_size: int) -> np.ndarray:
  """Canonical frontal template float32 [68, 2]: mean identity, zero pose, neutral face."""
  if not isinstance(image_size, (int, np.integer)) or image_size < 1:
    raise ValueError(f"image_size must be a positive int, got {image_size}")
  nui = neutral_nuisances(1)
  return _landmarks(_face_params(mean_latents(1), nui), nui, int(image_size))[0]
