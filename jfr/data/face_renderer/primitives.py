"""Small 2-D shape and blending helpers of the renderer (signed distances, coverage),
and the batch check of the latent / nuisance dicts."""

from __future__ import annotations

from typing import Mapping

import numpy as np


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
