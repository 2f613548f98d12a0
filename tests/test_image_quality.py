"""jfr.eval.image_quality against direct NumPy renderings of each formula (loops over pixels,
windows and frequencies written from the definitions, independent of the vectorised code)."""

import math

import numpy as np
import pytest

from jfr.eval import image_quality as iq


def _rng(seed=0):
  return np.random.default_rng(seed)


def _images(b=2, h=16, w=16, seed=0):
  return _rng(seed).uniform(-1, 1, (b, h, w, 3))


def _region(b=2, h=16, w=16):
  yy, xx = np.mgrid[:h, :w]
  disc = (yy - h / 2 + 0.5) ** 2 + (xx - w / 2 + 0.5) ** 2 < (0.4 * h) ** 2
  return np.repeat(disc[None], b, axis=0)


def _smooth(b=2, h=16, w=16, seed=0):
  """Smooth random images (low frequencies only)."""
  rng = _rng(seed)
  yy, xx = np.mgrid[:h, :w] / h
  out = np.zeros((b, h, w, 3))
  for k in range(b):
    for c in range(3):
      a, p, q = rng.uniform(0.2, 0.5), rng.uniform(0, 6), rng.uniform(1, 3)
      out[k, :, :, c] = a * np.sin(q * 2 * yy + p) * np.cos(q * 3 * xx)
  return out


def _luma(img):
  return 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]


# ------------------------------------------------------------------------------- PSNR


def test_psnr_matches_direct_formula():
  x, y, r = _images(seed=1), _images(seed=2), _region()
  expected = []
  for k in range(2):
    total, count = 0.0, 0
    for i in range(16):
      for j in range(16):
        if r[k, i, j]:
          for c in range(3):
            total += (x[k, i, j, c] - y[k, i, j, c]) ** 2
            count += 1
    expected.append(10 * math.log10(4.0 / (total / count)))
  np.testing.assert_allclose(iq.psnr(x, y, r), expected, rtol=1e-12)


def test_psnr_ignores_pixels_outside_region_and_caps_perfect_copy():
  x, r = _images(), _region()
  y = x.copy()
  y[~r] = 0.0  # differences only outside the face region
  np.testing.assert_array_equal(iq.psnr(x, y, r), [100.0, 100.0])
  assert np.all(np.isinf(iq.psnr(x, y, r, max_db=None)))
  noisy = x + 0.01 * (~r[..., None])
  assert iq.psnr(noisy, x, r)[0] == 100.0
  assert iq.psnr(x + 0.01, x, r)[0] == pytest.approx(10 * math.log10(4 / 1e-4))


# ------------------------------------------------------------------------------- SSIM


def _ssim_direct(x, y, big=2.0):
  """Wang et al. 2004 Eq. 13 per pixel with an explicit 11x11 window, reflect padding."""
  lx, ly = _luma(x), _luma(y)
  h, w = lx.shape
  t = np.arange(11) - 5
  win = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
  win /= win.sum()
  px = np.pad(lx, 5, mode="reflect")
  py = np.pad(ly, 5, mode="reflect")
  c1, c2 = (0.01 * big) ** 2, (0.03 * big) ** 2
  out = np.zeros((h, w))
  for i in range(h):
    for j in range(w):
      a, b = px[i : i + 11, j : j + 11], py[i : i + 11, j : j + 11]
      mx, my = np.sum(win * a), np.sum(win * b)
      vx = np.sum(win * (a - mx) ** 2)
      vy = np.sum(win * (b - my) ** 2)
      cxy = np.sum(win * (a - mx) * (b - my))
      out[i, j] = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
  return out


def test_ssim_matches_direct_formula():
  x = _smooth(seed=3)
  y = x + 0.2 * _rng(4).normal(size=x.shape)
  r = _region()
  m = iq.ssim_map(x, y)
  for k in range(2):
    np.testing.assert_allclose(m[k], _ssim_direct(x[k], y[k]), rtol=1e-9, atol=1e-12)
  expected = [np.mean(_ssim_direct(x[k], y[k])[r[k]]) for k in range(2)]
  np.testing.assert_allclose(iq.ssim(x, y, r), expected, rtol=1e-9)


def test_ssim_perfect_copy_is_one_and_degrades():
  x, r = _smooth(seed=5), _region()
  np.testing.assert_allclose(iq.ssim(x, x, r), 1.0, rtol=1e-12)
  noise = _rng(6).normal(size=x.shape)
  values = [iq.ssim(x + s * noise, x, r) for s in (0.05, 0.1, 0.3)]
  assert np.all(values[2] < 0.9)
  assert np.all(values[0] > values[1]) and np.all(values[1] > values[2])


# -------------------------------------------------------------------------- sharpness


def _energy_direct(img, reg):
  lum = _luma(img)
  h, w = lum.shape
  sx = [
    (lum[i, j + 1] - lum[i, j]) ** 2
    for i in range(h)
    for j in range(w - 1)
    if reg[i, j] and reg[i, j + 1]
  ]
  sy = [
    (lum[i + 1, j] - lum[i, j]) ** 2
    for i in range(h - 1)
    for j in range(w)
    if reg[i, j] and reg[i + 1, j]
  ]
  return (np.mean(sx) if sx else 0.0) + (np.mean(sy) if sy else 0.0)


def test_gradient_energy_matches_direct_formula():
  x, r = _images(seed=7), _region()
  np.testing.assert_allclose(
    iq.gradient_energy(x, r), [_energy_direct(x[k], r[k]) for k in range(2)], rtol=1e-12
  )


def _box_blur(x):
  p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  return sum(p[:, i : i + x.shape[1], j : j + x.shape[2]] for i in range(3) for j in range(3)) / 9


def test_relative_sharpness_blur_lower_and_sharpest_frame():
  x, r = _images(seed=8), _region()
  frames = np.stack([_box_blur(x), x, _box_blur(_box_blur(x))], axis=1)  # [B, 3, H, W, 3]
  mask = np.ones((2, 3), bool)
  np.testing.assert_array_equal(iq.sharpest_frame(frames, mask, r), [1, 1])
  np.testing.assert_allclose(iq.relative_sharpness(x, frames, mask, r), 1.0)
  assert np.all(iq.relative_sharpness(_box_blur(x), frames, mask, r) < 0.5)
  # A padded member never counts, whatever it holds.
  frames[:, 1] = 0.0
  frames[0, 1] = np.nan
  mask[:, 1] = False
  np.testing.assert_array_equal(iq.sharpest_frame(frames, mask, r), [0, 0])
  np.testing.assert_allclose(iq.relative_sharpness(_box_blur(x), frames, mask, r), 1.0)


# ------------------------------------------------------------------------- checkerboard


def _checker_direct(img):
  """Nyquist share by Parseval along the other axis (no FFT): the (pi, *) row holds
  W * sum_j (sum_i (-1)^i Y_ij)^2, the (*, pi) column H * sum_i (sum_j (-1)^j Y_ij)^2, their
  intersection (sum (-1)^(i+j) Y_ij)^2; the AC energy is H W sum Y^2 - (sum Y)^2."""
  lum = _luma(img)
  h, w = lum.shape
  si = (-1.0) ** np.arange(h)
  sj = (-1.0) ** np.arange(w)
  row = w * np.sum((si @ lum) ** 2)
  col = h * np.sum((lum @ sj) ** 2)
  both = (si @ lum @ sj) ** 2
  return (row + col - both) / (h * w * np.sum(lum**2) - np.sum(lum) ** 2)


def test_checkerboard_fraction_matches_direct_formula():
  x = _images(seed=9, h=16, w=12)
  np.testing.assert_allclose(
    iq.checkerboard_fraction(x), [_checker_direct(x[k]) for k in range(2)], rtol=1e-9
  )
  # A pure period-2 pattern is all Nyquist energy; a constant image scores 0.
  yy, xx = np.mgrid[:16, :16]
  board = np.repeat(((-1.0) ** (yy + xx))[None, :, :, None], 3, -1) * 0.5
  np.testing.assert_allclose(iq.checkerboard_fraction(board), [1.0])
  np.testing.assert_array_equal(iq.checkerboard_fraction(np.full((1, 8, 8, 3), 0.3)), [0.0])


def test_checkerboard_score_higher_with_added_pattern():
  x = _smooth(seed=10)
  frames = np.stack([x, x + 0.01 * _rng(11).normal(size=x.shape)], axis=1)
  mask = np.ones((2, 2), bool)
  yy = np.mgrid[:16, :16][0]
  stripes = 0.05 * ((-1.0) ** yy)[None, :, :, None]  # (pi, 0): a row-period-2 artefact
  base = iq.checkerboard_score(x, frames, mask)
  assert np.all(iq.checkerboard_score(x + stripes, frames, mask) > 5 * base)
  np.testing.assert_allclose(
    base,
    iq.checkerboard_fraction(x)
    / np.mean([iq.checkerboard_fraction(frames[:, n]) for n in range(2)], axis=0),
  )


# ------------------------------------------------------------------------------ identity


def test_identity_cosine():
  f, c = _rng(12).normal(size=(3, 5)), _rng(13).normal(size=(3, 5))
  expected = [
    np.dot(f[k], c[k]) / np.sqrt(np.dot(f[k], f[k]) * np.dot(c[k], c[k])) for k in range(3)
  ]
  np.testing.assert_allclose(iq.identity_cosine(f, c), expected, rtol=1e-12)
  np.testing.assert_allclose(iq.identity_cosine(f, 3 * f), 1.0)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
  "call, name",
  [
    (lambda x, r: iq.psnr(x[..., :2], x[..., :2], r), "images"),
    (lambda x, r: iq.psnr(x, x[:1], r), "references"),
    (lambda x, r: iq.psnr(x, x, r.astype(np.uint8)), "region"),
    (lambda x, r: iq.psnr(x, x, np.zeros_like(r)), "region"),
    (lambda x, r: iq.psnr(x, x, r, data_range=0.0), "data_range"),
    (lambda x, r: iq.psnr((x * 127).astype(np.uint8), x, r), "images"),
    (lambda x, r: iq.ssim(x, x, r[:, :8]), "region"),
    (lambda x, r: iq.ssim(x[:, :4, :4], x[:, :4, :4], r[:, :4, :4]), "images"),
    (lambda x, r: iq.gradient_energy(np.where(r[..., None], np.nan, x), r), "images"),
    (lambda x, r: iq.checkerboard_fraction(x[:, :15]), "images"),
    (lambda x, r: iq.relative_sharpness(x, x, np.ones((2, 1), bool), r), "frames"),
    (lambda x, r: iq.relative_sharpness(x, x[:, None], np.ones((2, 2), bool), r), "frame_mask"),
    (lambda x, r: iq.relative_sharpness(x, x[:, None], np.zeros((2, 1), bool), r), "frame_mask"),
    (lambda x, r: iq.checkerboard_score(x, x[:, None], np.ones(2, bool)), "frame_mask"),
    (lambda x, r: iq.identity_cosine(np.ones((2, 3)), np.ones((2, 4))), "centers"),
    (lambda x, r: iq.identity_cosine(np.zeros((2, 3)), np.ones((2, 3))), "zero norm"),
  ],
)
def test_bad_inputs_name_the_argument(call, name):
  with pytest.raises(ValueError, match=name):
    call(_images(), _region())


def test_flat_frames_have_no_relative_sharpness():
  flat = np.zeros((2, 1, 16, 16, 3))
  with pytest.raises(ValueError, match="frames.*zero gradient energy"):
    iq.relative_sharpness(_images(), flat, np.ones((2, 1), bool), _region())
