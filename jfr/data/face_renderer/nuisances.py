"""Per-image nuisances (pose, light, expression, camera, occluder) of stills and of
video clips with smooth drift and motion blur (field list in :mod:`jfr.data.face_renderer`)."""

from __future__ import annotations

import numpy as np

from jfr.data.face_renderer.constants import _F32

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
