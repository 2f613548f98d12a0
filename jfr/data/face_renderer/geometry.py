"""Head geometry: per-image face layout, the loft profiles of head, neck, nose, hair
and ears, and the closed-form ray / loft intersection of the 2.5-D model (yaw is a true
rotation, the projection orthographic; see :mod:`jfr.data.face_renderer`)."""

from __future__ import annotations

import numpy as np

from jfr.data.face_renderer.constants import _DELTA, _F32
from jfr.data.face_renderer.primitives import _signed_cap, _smoothstep


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


def _loft_pixels(px, profile, bound, *extra):
  """The loft `profile` intersected with the pixels of px passing the bounding test."""
  sub = px.sub(bound)
  return _Loft(sub, profile(sub.p, sub.v, *extra), profile(sub.p, sub.v + _DELTA, *extra))


def _surface_z(prof, x):
  """Front z of a loft at face (x, y) (the profile is evaluated at y); -inf off it."""
  x0, z0, A, C, e = prof
  a = np.maximum(A * e, 1e-3)
  q = 1 - ((x - x0) / a) ** 2
  return np.where(
    (q >= 0) & (e > 0), z0 + C * np.maximum(e, 0) * np.sqrt(np.maximum(q, 0)), -np.inf
  )
