"""Natural occluders: eyeglasses (a plane in front of the eyes plus two depth-tested
arms) and the scarf (a loft around the lower face and neck); both mark occluder_mask."""

from __future__ import annotations

import numpy as np

from jfr.data.face_renderer.constants import _DELTA, _F32
from jfr.data.face_renderer.geometry import _head_profile, _Loft, _surface_z
from jfr.data.face_renderer.primitives import _cover, _rounded_box, _segment_distance, _smoothstep


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
