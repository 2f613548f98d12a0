"""iBUG-68 landmarks of rendered faces and the canonical frontal template
(conventions in :mod:`jfr.data.face_renderer`)."""

from __future__ import annotations

import numpy as np

from jfr.data.face_renderer.constants import _CENTER_Y, _F32, _PX_PER_UNIT
from jfr.data.face_renderer.geometry import (
  _expand,
  _face_params,
  _head_profile,
  _nose_profile,
  _surface_z,
)
from jfr.data.face_renderer.latents import mean_latents
from jfr.data.face_renderer.nuisances import neutral_nuisances


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


def frontal_landmarks(image_size: int) -> np.ndarray:
  """Canonical frontal template float32 [68, 2]: mean identity, zero pose, neutral face."""
  if not isinstance(image_size, (int, np.integer)) or image_size < 1:
    raise ValueError(f"image_size must be a positive int, got {image_size}")
  nui = neutral_nuisances(1)
  return _landmarks(_face_params(mean_latents(1), nui), nui, int(image_size))[0]
