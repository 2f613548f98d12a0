"""Tests of the evaluators video_pairs (jfr.eval.video_pairs) and mixed_media
(jfr.eval.mixed_media) with a hand-made model whose features are the identity's code."""

import numpy as np
import pytest

from jfr.data import pipelines
from jfr.eval import embedding
from jfr.eval import mixed_media
from jfr.eval import video_pairs
from jfr.eval import video_protocols as vp

SIZE = 8


def _videos(num_ids=4, per_id=3, length=5, seed=0):
  """uint8 clips whose pixels encode the identity (channel 0) plus noise."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(num_ids), per_id)
  frames = rng.integers(0, 20, (labels.size, length, SIZE, SIZE, 3)).astype(np.uint8)
  frames[..., 0] += (40 * labels[:, None, None, None]).astype(np.uint8)
  return {"frames": frames, "lengths": np.full(labels.size, length, np.int32), "labels": labels}


def _embed_range(x):  # float [-1, 1] -> features: one-hot-ish of the identity code
  level = (x[..., 0].mean(axis=(1, 2)) + 1.0) * 127.5 / 40.0
  return np.stack([np.exp(-((level - k) ** 2)) for k in range(6)], 1).astype(np.float32)


def _model(with_sets=True):
  embed = lambda images: _embed_range(pipelines.to_model_range_np(images))  # noqa: E731
  sets = lambda f, m: _embed_range(pipelines.to_model_range_np(f).mean(1))  # noqa: E731
  sets_range = lambda f, m: _embed_range(np.asarray(f).mean(1))  # noqa: E731
  extras = {"embed_model_range": _embed_range}
  if with_sets:
    extras["embed_sets_model_range"] = sets_range
  return embedding.EvalModel(
    input_size=SIZE, embed=embed, embed_sets=sets if with_sets else None, extras=extras
  )


def _settings(**kw):
  base = dict(
    split="video",
    folds=2,
    fars=(0.1,),
    set_configs=((2, 2),),
    blur_kernel_sizes=(),
    blur_sharp_frames=0,
  )
  return {**base, **kw}


def test_video_pairs_separates_identities_and_counts_extractions():
  table = video_pairs.evaluate_videos(_videos(), _model(), _settings(), seed=0)
  assert set(table) == {"avg", "aggregated"}
  col = video_pairs.column(2, 2)
  assert table["avg"][col]["accuracy"] == 1.0
  assert table["aggregated"][col]["accuracy"] == 1.0
  assert table["avg"][col]["embedded_images"] == 12 * 4
  assert table["aggregated"][col]["embedded_images"] == 12 * 2


def test_video_pairs_without_embed_sets_has_only_the_average_row():
  table = video_pairs.evaluate_videos(_videos(), _model(False), _settings(), seed=0)
  assert set(table) == {"avg"}


def test_video_pairs_blur_columns_are_kernel_sizes_and_need_model_range_functions():
  table = video_pairs.evaluate_videos(
    _videos(), _model(), _settings(blur_kernel_sizes=(3, 5), blur_sharp_frames=1), seed=0
  )
  assert set(table["avg"]) == {"3", "5"} and set(table["aggregated"]) == {"3", "5"}
  bare = embedding.EvalModel(input_size=SIZE, embed=_model().embed)
  with pytest.raises(ValueError, match="embed_model_range"):
    video_pairs.evaluate_videos(_videos(), bare, _settings(blur_kernel_sizes=(3,)), seed=0)
  with pytest.raises(ValueError, match="exactly one"):
    video_pairs.evaluate_videos(
      _videos(), _model(), _settings(set_configs=((2, 1), (2, 2)), blur_kernel_sizes=(3,)), seed=0
    )


def test_video_pairs_refuses_unknown_settings():
  with pytest.raises(ValueError, match="unknown"):
    video_pairs.evaluate_videos(_videos(), _model(), _settings(extra=1), seed=0)


def test_mixed_media_reports_one_to_n_and_one_to_one_per_row():
  videos = _videos(per_id=3)
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(4), 4)
  stills = rng.integers(0, 20, (labels.size, SIZE, SIZE, 3)).astype(np.uint8)
  stills[..., 0] += (40 * labels[:, None, None]).astype(np.uint8)
  settings = dict(
    still_split="test",
    video_split="video",
    gallery_stills=1,
    probes_per_subject=2,
    ranks=(1,),
    fpirs=(0.1,),
    fars=(0.1,),
    max_set_size=4,
  )
  table = mixed_media.evaluate_templates(
    {"image": stills, "label": labels}, videos, _model(), settings, seed=0
  )
  for row in ("avg", "avg_media", "aggregated"):
    assert table[row]["mean"]["rank1"] == 1.0
    assert table[row]["verification"]["eer"] == 0.0
  assert table["templates"] == {"gallery": 4, "probe": 8}
  assert 0.0 < table["extraction_cost"]["saved_fraction"] < 1.0


def test_template_set_features_calls_once_per_size_in_set_order():
  calls = []

  def embed_sets(frames, mask):
    calls.append(frames.shape[1])
    return frames.reshape(frames.shape[0], frames.shape[1], -1)[:, :, :1].sum(1).astype(np.float32)

  frames = np.arange(2 * 5).reshape(2, 5, 1).astype(np.float32)
  sets = [(0, 0, np.array([0, 1])), (0, 1, np.array([0, 1, 2])), (1, 1, np.array([3, 4]))]
  out = vp.template_set_features(embed_sets, frames, sets)
  assert sorted(calls) == [2, 3]
  np.testing.assert_array_equal(out[:, 0], [0 + 1, 5 + 6 + 7, 8 + 9])
