"""Surface colour: skin, hair and iris palettes, and the painted decals (eyes, brows,
lips, mouth, nostrils, wrinkles, beard shadow, freckles, moles) as signed-distance shapes
in face (x, y) coordinates of the visible surface point."""

from __future__ import annotations

import numpy as np

from jfr.data.face_renderer.constants import _BROWS, _EYES, _F32, _MOUTH, _SKIN, NUM_MARKS
from jfr.data.face_renderer.primitives import _cover, _hash01, _segment_distance, _smoothstep

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
