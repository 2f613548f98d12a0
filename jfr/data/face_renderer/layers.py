"""The face layers drawn into the shading buffers, back to front: the inside of the
hair shell, neck and shoulders, the head with its decals, the ears and the nose."""

from __future__ import annotations

import numpy as np

from jfr.data.face_renderer.albedo import _hair_albedo, _hair_cut, _head_albedo, _nose_albedo
from jfr.data.face_renderer.constants import _DELTA, _F32, _HAIR, _NOSE, _SKIN
from jfr.data.face_renderer.geometry import (
  _ear_profile,
  _hair_profile,
  _head_profile,
  _Loft,
  _loft_pixels,
  _neck_profile,
  _nose_profile,
)
from jfr.data.face_renderer.primitives import _cover, _smoothstep


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
