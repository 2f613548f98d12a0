"""Deferred shading buffers and lighting, background clutter, defocus / motion blur,
sensor noise and the final image: :func:`render`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jfr.data.face_renderer.accessories import _draw_glasses, _draw_scarf
from jfr.data.face_renderer.albedo import _hair_albedo
from jfr.data.face_renderer.constants import (
  _BG_RES,
  _CENTER_Y,
  _CHUNK_PIXELS,
  _F32,
  _HAIR,
  _PX_PER_UNIT,
  _REF_SIZE,
  _ROW,
  OCCLUDER_KINDS,
)
from jfr.data.face_renderer.geometry import _face_params, _Params, _Pixels
from jfr.data.face_renderer.landmarks import _landmarks
from jfr.data.face_renderer.latents import (
  _LATENT_FIELDS,
  _extra_identity_attributes,
  identity_attributes,
)
from jfr.data.face_renderer.layers import _draw_hair_and_neck, _draw_head
from jfr.data.face_renderer.nuisances import _NUISANCE_FIELDS
from jfr.data.face_renderer.primitives import _check_batch, _cover, _mix, _rounded_box


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


def _render_chunk(lat, nui, size, base_seed, background=None):
  n = len(nui["yaw"])
  table = _param_table(lat, nui, size)
  u, v = _pixel_grid(nui, size)
  img = np.repeat(np.arange(n), size * size)
  px = _Pixels(np.arange(n * size * size), u.ravel(), v.ravel(), _Params(table, img))
  if background is None:
    buf = _Buffers(_background(nui, size).reshape(-1, 3))
  else:  # a flat grey (canonical faces); no background_seed is read
    buf = _Buffers(np.full((n * size * size, 3), background, _F32))
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
  background: float | None = None,
) -> dict[str, np.ndarray]:
  """Renders faces.

  Args:
    latents: identity latents with leading dimension n (see :func:`identity_latents`).
    nuisances: per-image nuisances with leading dimension n (:func:`sample_nuisances`).
    image_size: output height = width S (16..512).
    seed_or_rng: int or numpy Generator giving the base of the sensor-noise streams;
      image i's noise comes from ``default_rng([base, nuisances['noise_seed'][i]])``,
      so with an int seed an image does not depend on the other images of the batch.
    background: None (default) for the clutter of ``nuisances['background_seed']``, or a
      grey level in [0, 1] for a flat background (unlit; used by canonical faces).

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
  if background is not None and not (
    isinstance(background, (int, float, np.integer, np.floating)) and 0.0 <= background <= 1.0
  ):
    raise ValueError(f"background must be None or a grey level in [0, 1], got {background!r}")
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
        background,
      )
    )
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
