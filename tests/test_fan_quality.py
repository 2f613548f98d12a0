"""jfr.eval.fan_quality: the aggregated-face quality protocol on small in-memory clips (a fake
recognizer and fake aggregators whose scores are known), its report and its refusals."""

import types

import numpy as np
import pytest

from jfr.eval import embedding, registry
from jfr.eval import fan_quality as fq
from jfr.eval import image_quality as iq
from jfr.methods.fan import aggregator as fan_aggregator
from jfr.methods.fan import evaluate as fan_evaluate
from jfr.report import intervals

S, T, N = 16, 6, 4


def _videos(num_ids=4, clips=2, seed=0):
  """Each identity has a smooth uint8 face; its clips are noisy, shifted copies."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:S, :S] / S
  faces, frames, labels, canon = [], [], [], []
  for i in range(num_ids):
    base = np.stack(
      [0.5 + 0.3 * np.sin((i + 1) * 3 * yy + c) * np.cos((c + 2) * xx) for c in range(3)], -1
    )
    faces.append(base)
    for _ in range(clips):
      clip = base[None] + 0.08 * rng.normal(size=(T, S, S, 3))
      frames.append(clip)
      labels.append(i)
      canon.append(base)
  to8 = lambda x: np.clip(np.round(np.asarray(x) * 255), 0, 255).astype(np.uint8)
  v = len(labels)
  yy, xx = np.mgrid[:S, :S]
  disc = (yy - S / 2 + 0.5) ** 2 + (xx - S / 2 + 0.5) ** 2 < (0.4 * S) ** 2
  videos = {
    "frames": to8(frames),
    "lengths": np.full(v, T),
    "labels": np.array(labels),
    "video_ids": np.arange(v),
  }
  canonical = {"face": to8(canon), "mask": np.repeat(disc[None], v, 0)}
  stills = {"image": to8(faces), "label": np.arange(num_ids)}
  return videos, canonical, stills


def _embed(images):
  """A fixed random projection of 4x4 block means (a stand-in recognizer)."""
  x = np.asarray(images, np.float64)
  blocks = x.reshape(len(x), 4, S // 4, 4, S // 4, 3).mean((2, 4)).reshape(len(x), -1)
  w = np.random.default_rng(42).normal(size=(blocks.shape[1], 8))
  return (blocks @ w).astype(np.float32)


def _settings(**kw):
  base = dict(
    split="video",
    still_split="test",
    set_size=N,
    flip=False,
    num_resamples=200,
    figure_clips=2,
    max_db=100.0,
  )
  base.update(kw)
  return base


def _run(aggregators, seed=0, extra_baselines=None, **kw):
  videos, canonical, stills = _videos()
  centres = fq.identity_centres(_embed, stills, kw.get("flip", False))
  return fq.evaluate_quality(
    videos,
    canonical,
    centres,
    _embed,
    aggregators,
    _settings(**kw),
    seed=seed,
    extra_baselines=extra_baselines,
  ), (videos, canonical)


def _mean_aggregator(sets, mask):
  return np.asarray(sets, np.float64).mean(1).astype(np.float32)


def test_table_rows_intervals_and_baselines():
  results, _ = _run({"mean": _mean_aggregator})
  methods = results["methods"]
  assert list(methods) == ["pixel_mean", "sharpest_frame", "middle_frame", "mean"]
  for row in methods.values():
    for m in fq.METRICS:
      lo, hi = row[f"{m}_ci95"]
      assert lo <= row[m] <= hi
  # The sharpest input is as sharp as the sharpest input; averaging noisy frames blurs.
  assert methods["sharpest_frame"]["sharpness"] == pytest.approx(1.0)
  assert methods["pixel_mean"]["sharpness"] < 0.6
  # Averaging the noise away brings the mean closer to the canonical face than one frame.
  assert methods["pixel_mean"]["psnr"] > methods["middle_frame"]["psnr"] + 3
  assert methods["pixel_mean"]["ssim"] > methods["middle_frame"]["ssim"]
  # A copy of the pixel mean equals it, and so does each paired difference.
  for m in set(fq.METRICS) - {"checkerboard"}:
    assert methods["mean"][m] == pytest.approx(methods["pixel_mean"][m])
    entry = results["comparisons"][f"fan_quality_mean_vs_pixel_mean_{m}"]
    assert entry["diff"] == pytest.approx(0.0, abs=1e-9)
    assert entry["ci95"] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert intervals.verdict(entry) == "inconclusive"
  assert results["num_clips"] == 8 and results["num_identities"] == 4


def test_metrics_match_direct_per_identity_means():
  results, (videos, canonical) = _run({})
  groups = fq.vp.resampled_groups(videos["frames"], videos["lengths"], N, 1)
  groups = groups.astype(np.float32) / 127.5 - 1.0
  middle = groups[:, N // 2]
  ref = canonical["face"].astype(np.float32) / 127.5 - 1.0
  psnr = iq.psnr(middle, ref, canonical["mask"])
  per_id = [psnr[videos["labels"] == i].mean() for i in range(4)]
  assert results["methods"]["middle_frame"]["psnr"] == pytest.approx(np.mean(per_id), rel=1e-6)


def test_canonical_copy_and_checkerboard_aggregators():
  videos, canonical, _ = _videos()
  ref = canonical["face"].astype(np.float32) / 127.5 - 1.0
  lookup = {v.tobytes(): r for v, r in zip(videos["frames"][:, 0], ref)}
  first = lambda sets: np.stack(
    [lookup[np.round((s[0] + 1) * 127.5).astype(np.uint8).tobytes()] for s in sets]
  )
  yy = np.mgrid[:S, :S][0]
  stripes = (0.1 * (-1.0) ** yy)[None, :, :, None].astype(np.float32)
  results, _ = _run(
    {
      "oracle": lambda sets, mask: first(sets),
      "striped": lambda sets, mask: _mean_aggregator(sets, mask) + stripes,
    }
  )
  oracle, striped = results["methods"]["oracle"], results["methods"]["striped"]
  assert oracle["psnr"] == 100.0 and oracle["ssim"] == pytest.approx(1.0)
  assert results["psnr_capped_clips"]["oracle"] == 8
  assert striped["checkerboard"] > 3 * results["methods"]["pixel_mean"]["checkerboard"]
  # Lower checkerboard is better: the striped aggregator's comparison says the claim fails.
  # Its score is above the inputs' (1): the "no more than the inputs" claim fails.
  entry = results["comparisons"]["fan_quality_striped_vs_inputs_checkerboard"]
  assert entry["b"] == "inputs" and entry["value_b"] == 1.0
  assert entry["diff"] == pytest.approx(1.0 - striped["checkerboard"])
  assert entry["diff"] < 0 and intervals.verdict(entry) == "not reproduced"
  entry = results["comparisons"]["fan_quality_oracle_vs_inputs_checkerboard"]
  assert entry["diff"] == pytest.approx(1.0 - oracle["checkerboard"])
  entry = results["comparisons"]["fan_quality_oracle_vs_pixel_mean_psnr"]
  assert entry["diff"] > 0 and intervals.verdict(entry) == "reproduced"


def test_symmetric_shading_mean_baseline():
  # The masked pixel mean, then y + G (flip(y) - y) / 2 (scipy's Gaussian, mirrored borders).
  from scipy import ndimage

  rng = np.random.default_rng(3)
  sets = rng.uniform(-1, 1, (2, 3, 16, 16, 3)).astype(np.float32)
  mask = np.array([[True, True, False], [True, True, True]])
  mean = np.stack([sets[0, :2].mean(0), sets[1].mean(0)])
  want = mean + 0.5 * ndimage.gaussian_filter(
    mean[:, :, ::-1] - mean, sigma=(0, 2.0, 2.0, 0), mode="reflect", truncate=4.0
  )
  got = fan_aggregator.symmetric_shading_mean(2.0)(sets, mask)
  np.testing.assert_allclose(got, want, atol=1e-5)
  with pytest.raises(ValueError, match="sigma"):
    fan_aggregator.symmetric_shading_mean(0.0)
  with pytest.raises(ValueError, match="a member per set"):
    fan_aggregator.symmetric_shading_mean(2.0)(sets, np.zeros((2, 3), bool))


def test_extra_baselines_are_rows_without_comparisons():
  sym = fan_aggregator.symmetric_shading_mean(2.0)
  results, _ = _run({"mean": _mean_aggregator}, extra_baselines={"sym": sym})
  assert list(results["methods"]) == [*fq.BASELINES, "sym", "mean"]
  assert not any("_sym_" in k for k in results["comparisons"])
  assert len(results["comparisons"]) == len(fq.METRICS)  # the aggregator's only
  assert results["methods"]["sym"]["psnr"] != results["methods"]["pixel_mean"]["psnr"]
  with pytest.raises(ValueError, match="also aggregators"):
    _run({"mean": _mean_aggregator}, extra_baselines={"mean": sym})


def test_seeded_and_flip():
  a, _ = _run({}, seed=3)
  b, _ = _run({}, seed=3)
  c, _ = _run({}, seed=4)
  assert a["methods"] == b["methods"]
  assert a["methods"]["pixel_mean"]["psnr_ci95"] != c["methods"]["pixel_mean"]["psnr_ci95"]
  flipped, _ = _run({}, flip=True)
  assert flipped["flip"] is True
  assert flipped["methods"]["pixel_mean"]["identity"] != a["methods"]["pixel_mean"]["identity"]
  assert flipped["methods"]["pixel_mean"]["psnr"] == a["methods"]["pixel_mean"]["psnr"]


def test_report_markdown_and_figure():
  results, _ = _run({"mean": _mean_aggregator})
  text = fq.markdown(results)
  assert "| pixel_mean |" in text and "| mean |" in text
  assert "fan_quality_mean_vs_pixel_mean_identity" in text
  fig = fq.figure(results)
  # 2 clips x (4 frames + blank + 4 methods + canonical)
  assert len(fig.axes) == 2 * (N + 1 + 4 + 1)
  assert [a.get_title() for a in fig.axes[: N + 6]][-1] == "canonical"


def test_refusals():
  videos, canonical, stills = _videos()
  centres = fq.identity_centres(_embed, stills, False)
  with pytest.raises(ValueError, match="missing \\['max_db'\\]"):
    s = _settings()
    del s["max_db"]
    fq.evaluate_quality(videos, canonical, centres, _embed, {}, s, seed=0)
  with pytest.raises(ValueError, match="aggregators.*pixel_mean"):
    fq.evaluate_quality(
      videos, canonical, centres, _embed, {"pixel_mean": _mean_aggregator}, _settings(), seed=0
    )
  with pytest.raises(ValueError, match="still_split"):
    fq.evaluate_quality(videos, canonical, {0: centres[0]}, _embed, {}, _settings(), seed=0)
  with pytest.raises(ValueError, match="canonical"):
    bad = {"face": canonical["face"][:, :8], "mask": canonical["mask"]}
    fq.evaluate_quality(videos, bad, centres, _embed, {}, _settings(), seed=0)


def test_missing_canonical_feature_is_named():
  builder = types.SimpleNamespace(
    info=types.SimpleNamespace(features={"image": 0, "video_id": 0}, full_name="fake/1.0.0")
  )
  with pytest.raises(ValueError, match="canonical_face.*canonical_mask"):
    fq.load_canonical(builder, "video", np.arange(3))


def test_registered_and_needs_model_range_embedder():
  assert registry.get("fan_quality") is fq.fan_quality
  model = embedding.EvalModel(input_size=S, embed=lambda x: x)
  with pytest.raises(ValueError, match="embed_model_range"):
    registry.evaluate("fan_quality", model, None, _settings(), seed=0)


@pytest.mark.slow
def test_tiny_fan_run_writes_the_quality_table_and_figure(fan_run):
  """configs/fan.py:tiny wires fan_quality: every variant and baseline, intervals,
  comparisons against the pixel mean, Markdown (also in eval/fan.md) and the figure."""
  import json

  workdir = fan_run.workdir
  results = json.loads((workdir / "eval" / "fan_quality.json").read_text())
  variants = list(fan_run.config.variants)
  assert fan_run.config.aggregator.shading_symmetry > 0  # inherited from the default config
  # The option's fixed prior on the pixel mean is one more baseline row (no comparisons).
  baselines = [*fq.BASELINES, fan_evaluate.SYMMETRIC_MEAN]
  assert list(results["methods"]) == [*baselines, *variants]
  for row in results["methods"].values():
    for m in fq.METRICS:
      lo, hi = row[f"{m}_ci95"]
      assert lo <= row[m] <= hi
  assert results["methods"]["sharpest_frame"]["sharpness"] == pytest.approx(1.0)
  assert len(results["comparisons"]) == len(variants) * len(fq.METRICS)
  for name, e in results["comparisons"].items():
    assert e["paper"] == "fan"
    assert e["b"] == ("inputs" if name.endswith("_checkerboard") else "pixel_mean"), name
  assert results["set_size"] == fan_run.config.aggregator.set_size
  assert "| pixel_mean |" in (workdir / "eval" / "fan_quality.md").read_text()
  assert "Aggregated-face quality" in (workdir / "eval" / "fan.md").read_text()
  assert (workdir / "figures" / "fan_quality_faces.png").exists()
