"""Tests for the saliency evaluators jfr.eval.hiding_protocol and jfr.eval.pointing_protocol:
registration, settings and needs checks, and the games on hand-made maps whose outcome is
known."""

import numpy as np
import pytest

from jfr.eval import embedding
from jfr.eval import hiding_protocol
from jfr.eval import pointing_protocol
from jfr.eval import registry


def test_registered():
  assert registry.get("hiding_game") is hiding_protocol.evaluate
  assert registry.get("pointing_game") is pointing_protocol.evaluate
  assert registry.needs(hiding_protocol.evaluate) == ("verify", "saliency")


def test_evaluators_refuse_bad_settings_and_models():
  plain = embedding.EvalModel(input_size=8, embed=lambda x: np.zeros((len(x), 2), np.float32))
  settings = {k: None for k in hiding_protocol.SETTINGS}
  with pytest.raises(ValueError, match="saliency"):
    hiding_protocol.evaluate(plain, None, settings, seed=0)
  with pytest.raises(ValueError, match="unknown"):
    hiding_protocol.evaluate(plain, None, {**settings, "typo": 1}, seed=0)
  settings = {k: None for k in pointing_protocol.SETTINGS}
  with pytest.raises(ValueError, match="verify"):
    pointing_protocol.evaluate(plain, None, settings, seed=0)


def _verify(a, b):
  """Similarity = 1 - mean |a - b| over the left half of the image (where identity lives)."""
  half = a.shape[2] // 2
  return 1.0 - np.abs(a[:, :, :half] - b[:, :, :half]).mean(axis=(1, 2, 3))


def test_hiding_games_rank_a_map_that_knows_where_identity_lives():
  rng = np.random.default_rng(0)
  b = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
  a = b.copy()
  a[2:, :, :8] = rng.uniform(-1, 1, (2, 16, 8, 3))  # pairs 2, 3: impostors (left half differs)
  same = np.array([True, True, False, False])
  good = np.zeros((4, 16, 16), np.float32)
  good[:, :, :8] = 1.0  # the left half matters
  maps = {"good": good, "bad": 1.0 - good}
  res = hiding_protocol.hiding_games(
    _verify, a, b, same, maps, ("good", "bad"), (0.0, 0.5, 1.0), 4.0
  )
  assert res["good"]["accuracy"][0] == 1.0 and res["good"]["accuracy"][1] == 1.0
  assert res["good"]["auc"] > res["bad"]["auc"]
  assert set(res["good"]) >= {"genuine", "impostor", "auc", "threshold"}
  with pytest.raises(ValueError, match="methods"):
    hiding_protocol.hiding_games(_verify, a, b, same, maps, ("ugly",), (0.0, 1.0), 4.0)


def test_pointing_games_shares_and_hits():
  region = np.zeros((2, 4, 4), bool)
  region[:, :2, :2] = True
  inside = region.astype(np.float64)
  uniform = np.ones((2, 4, 4))
  res = pointing_protocol.pointing_games(
    {"nose": {"inside": inside, "uniform": uniform}}, {"nose": region}, ("inside", "uniform")
  )
  assert res["area_share"]["nose"] == 0.25
  assert res["methods"]["inside"]["share_mean"] == pytest.approx(1.0)
  assert res["methods"]["inside"]["hit_rate"] == 1.0
  assert res["methods"]["uniform"]["share_mean"] == pytest.approx(0.25)
  assert res["methods"]["uniform"]["parts"]["nose"]["num_pairs"] == 2
