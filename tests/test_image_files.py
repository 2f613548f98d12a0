"""Tests for jfr.data.image_files: EXIF orientation, alpha, grayscale, truncated files,
hidden/system files, natural order."""

import io

import numpy as np
import pytest
from PIL import Image

from jfr.data import image_files


def _gradient(h=24, w=40):
  y, x = np.mgrid[0:h, 0:w]
  return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 60)], -1).astype(
    np.uint8
  )


def test_exif_orientation_6_phone_photo_comes_out_upright(tmp_path):
  upright = _gradient()  # landscape 24 x 40
  # A phone stores the sensor image (rotated) and EXIF 6 = "rotate 90 CW to display".
  stored = np.rot90(upright, k=1)  # 40 x 24, as the sensor wrote it
  exif = Image.Exif()
  exif[image_files.EXIF_ORIENTATION] = 6
  path = tmp_path / "phone.jpg"
  Image.fromarray(stored).save(path, format="JPEG", quality=98, exif=exif.tobytes())
  with Image.open(path) as im:
    assert image_files.exif_orientation(im) == 6
  out = image_files.decode_image(str(path))
  assert out.shape == upright.shape
  assert np.abs(out.astype(int) - upright).mean() < 4


def test_rgba_png_composited_on_black_and_grayscale_to_rgb(tmp_path):
  rgba = np.zeros((8, 8, 4), np.uint8)
  rgba[..., 0] = 200
  rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
  Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
  out = image_files.decode_image(str(tmp_path / "a.png"))
  assert out.shape == (8, 8, 3)
  assert (out[:4] == [200, 0, 0]).all() and (out[4:] == image_files.ALPHA_BACKGROUND).all()
  Image.fromarray(np.full((5, 6), 77, np.uint8), "L").save(tmp_path / "g.png")
  gray = image_files.decode_image(str(tmp_path / "g.png"))
  assert gray.shape == (5, 6, 3) and (gray == 77).all()
  pal = Image.fromarray(_gradient()).convert("P")
  buf = io.BytesIO()
  pal.save(buf, format="PNG")
  assert image_files.decode_image(buf.getvalue()).shape == (24, 40, 3)


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
  rng = np.random.default_rng(0)
  buf = io.BytesIO()
  Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
  path = tmp_path / "cut.jpg"
  path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
  # The header alone looks fine: only a full decode finds the problem.
  with Image.open(path) as im:
    assert im.size == (64, 64)
  with pytest.raises(image_files.UnreadableImageError, match="cut.jpg") as info:
    image_files.decode_image(str(path))
  assert info.value.path == str(path)
  (tmp_path / "text.jpg").write_text("not an image")
  with pytest.raises(ValueError, match="text.jpg"):
    image_files.decode_image(str(tmp_path / "text.jpg"))
  with pytest.raises(ValueError, match="record 7"):
    image_files.decode_image(b"\x00\x01", name="record 7")


def test_list_folder_skips_and_counts_system_files(tmp_path):
  for name in ("img10.jpg", "img2.jpg", "img1.png", ".DS_Store", "._img1.jpg", "Thumbs.db"):
    (tmp_path / name).write_bytes(b"x")
  (tmp_path / "desktop.ini").write_text("x")
  (tmp_path / "notes.txt").write_text("x")
  (tmp_path / "sub").mkdir()
  (tmp_path / "__MACOSX").mkdir()
  skipped = image_files.SkipLog()
  dirs, files = image_files.list_folder(str(tmp_path), skipped)
  assert dirs == ["sub"]
  assert files == ["img1.png", "img2.jpg", "img10.jpg"]
  assert skipped.counts() == {"not_an_image": 1, "system_file": 5}
  with pytest.raises(ValueError, match="does not exist"):
    image_files.list_folder(str(tmp_path / "missing"), skipped)


def test_encode_roundtrip():
  image = _gradient()
  png = image_files.encode_image(image, "png")
  np.testing.assert_array_equal(image_files.decode_image(png), image)
  jpeg = image_files.encode_image(image, "jpeg")
  assert np.abs(image_files.decode_image(jpeg).astype(int) - image).mean() < 3
  with pytest.raises(ValueError, match="image_format"):
    image_files.encode_image(image, "gif")
