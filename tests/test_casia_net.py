"""Tests for jfr.models.casia_net (CASIA-Net / ResNet with HC descriptor, Yin et al. Table 1)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfr.models import casia_net

# Table 1 of the interpretable-FR paper: (kernel, c_in, c_out) of every trunk conv, K = 320.
_TABLE1_TRUNK = [
  (3, 3, 32),
  (3, 32, 64),
  (3, 64, 64),
  (3, 64, 64),
  (3, 64, 128),
  (3, 128, 128),
  (3, 128, 96),
  (3, 96, 192),
  (3, 192, 192),
  (3, 192, 128),
  (3, 128, 256),
  (3, 256, 256),
  (3, 256, 160),
  (3, 160, 320),
]

_SMALL = functools.partial(
  casia_net.CasiaNetHC,
  feature_dim=12,
  keep=5,
  trunk_widths=(4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8),
  hc_features=6,
)


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _key(seed=0):
  """An 'rbg' key: its random draws compile much faster on CPU than threefry's."""
  return jax.random.key(seed, impl="rbg")


def _images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(-1.0, 1.0, shape), jnp.float32)


@pytest.fixture(scope="module")
def small():
  model = _SMALL()
  x = _images((4, 32, 32, 3))
  out, variables = jax.jit(functools.partial(model.init_with_output, train=False))(_key(), x)
  return model, x, variables, out


def test_paper_sizes_forward_shapes_and_lmf():
  model = casia_net.CasiaNetHC()
  x = _images((1, 96, 96, 3))
  out, variables = jax.jit(functools.partial(model.init_with_output, train=False))(_key(), x)
  assert out["f"].shape == (1, 320)
  assert out["responses"].shape == out["filtered"].shape == (1, 24, 24, 320)
  assert casia_net.psi_kernel(variables["params"]).shape == (3, 3, 576, 320)
  nonzero = np.count_nonzero(np.asarray(out["filtered"]), axis=(1, 2))
  np.testing.assert_array_equal(nonzero, 24)  # d = 95.83%: 24 of 24 x 24 per map.


def test_param_count_matches_table_1():
  shapes = jax.eval_shape(
    functools.partial(casia_net.CasiaNetHC().init, train=False),
    jax.random.PRNGKey(0),
    jnp.zeros((1, 96, 96, 3)),
  )
  params = shapes["params"]
  trunk = sum(k * k * cin * cout + 2 * cout for k, cin, cout in _TABLE1_TRUNK)
  hc = (
    256 * 192
    + 2 * 192  # conv44 1x1 + BN (conv43-U: bilinear, no parameters)
    + 320 * 192
    + 2 * 192  # conv54 1x1 + BN (conv53-U: bilinear)
    + 9 * 576 * 576
    + 2 * 576  # Φ: 3x3 on concat(conv33, conv44, conv54) + BN
    + 9 * 576 * 320
    + 320
  )  # Ψ: 3x3 to K, with bias
  assert _count(params) == trunk + hc
  assert params["psi"]["kernel"].shape == (3, 3, 576, 320)
  assert params["conv32"]["kernel"].shape == (3, 3, 128, 96)  # input conv31 (typo in Table 1)
  transposed = jax.eval_shape(
    functools.partial(casia_net.CasiaNetHC(upsample="transposed").init, train=False),
    jax.random.PRNGKey(0),
    jnp.zeros((1, 96, 96, 3)),
  )["params"]
  # conv43-U: 4x4/2, 256 -> 256; conv53-U: 8x8/4, 320 -> 320.
  assert _count(transposed) == trunk + hc + 4 * 4 * 256 * 256 + 8 * 8 * 320 * 320
  assert transposed["conv53_u"]["kernel"].shape == (8, 8, 320, 320)


@pytest.mark.parametrize("size,height,width", [(64, 16, 16), (48, 12, 12)])
def test_output_shapes_follow_input_size(size, height, width):
  out = jax.eval_shape(
    lambda x: _SMALL().init_with_output(jax.random.PRNGKey(0), x, train=False)[0],
    jnp.zeros((2, size, size, 3)),
  )
  assert out["f"].shape == (2, 12)
  assert out["responses"].shape == out["filtered"].shape == (2, height, width, 12)


def test_lmf_keeps_keep_elements_and_f_is_their_average(small):
  _, _, _, out = small
  filtered = np.asarray(out["filtered"])
  responses = np.asarray(out["responses"])
  np.testing.assert_array_equal(np.count_nonzero(filtered, axis=(1, 2)), 5)
  for b in range(filtered.shape[0]):
    for k in range(filtered.shape[-1]):
      magnitudes = np.abs(responses[b, :, :, k]).ravel()
      kept = np.argsort(-magnitudes)[:5]
      want = np.zeros_like(magnitudes)
      want[kept] = responses[b, :, :, k].ravel()[kept]
      np.testing.assert_array_equal(filtered[b, :, :, k].ravel(), want)
  np.testing.assert_allclose(out["f"], filtered.mean(axis=(1, 2)), rtol=1e-6, atol=1e-7)
  assert np.any(responses < 0) and np.any(responses > 0)  # Ψ is linear: signed responses


@pytest.mark.parametrize("keep", [None, 0])
def test_keep_none_or_zero_is_the_base_cnn(small, keep):
  _, x, variables, _ = small
  out = jax.jit(functools.partial(_SMALL(keep=keep).apply, train=False))(variables, x)
  np.testing.assert_array_equal(out["filtered"], out["responses"])
  np.testing.assert_allclose(
    out["f"], np.asarray(out["responses"]).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6
  )


def test_new_layers_use_truncated_normal_std_002(small):
  _, _, variables, _ = small
  params = variables["params"]
  for name in ("psi", "phi", "conv44", "conv54"):
    kernel = np.asarray(params[name]["kernel"])
    assert np.abs(kernel).max() <= 0.04 + 1e-7, name  # truncated at 2 std
  psi = np.asarray(casia_net.psi_kernel(params))
  assert psi.shape == (3, 3, 8 + 6 + 6, 12)
  # std of N(0, 0.02²) truncated at ±2σ: 0.02 · 0.8796.
  np.testing.assert_allclose(psi.std(), 0.02 * 0.8796, rtol=0.1)
  np.testing.assert_array_equal(params["psi"]["bias"], 0.0)


def test_batch_norm_syncs_across_pmap_devices(small):
  _, x, variables, _ = small
  want = _SMALL().apply(variables, x, train=True, mutable=["batch_stats"])[0]
  synced = _SMALL(axis_name="batch")
  got = jax.pmap(
    lambda v, xs: synced.apply(v, xs, train=True, mutable=["batch_stats"])[0],
    axis_name="batch",
    in_axes=(None, 0),
    devices=jax.devices()[:2],
  )(variables, x.reshape(2, 2, *x.shape[1:]))
  np.testing.assert_allclose(
    np.asarray(got["responses"]).reshape(want["responses"].shape),
    want["responses"],
    rtol=1e-4,
    atol=1e-5,
  )


def test_bfloat16_computation_keeps_float32_params_and_outputs():
  out, variables = jax.eval_shape(
    lambda x: _SMALL(dtype=jnp.bfloat16).init_with_output(jax.random.PRNGKey(0), x, train=False),
    jnp.zeros((2, 32, 32, 3)),
  )
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
  assert all(value.dtype == jnp.float32 for value in out.values())


def test_resnet_hc_shapes():
  model = casia_net.ResNetHC(
    feature_dim=16, keep=3, stage_sizes=(1, 1, 1), width=4, hc_features=4, upsample="transposed"
  )
  out, variables = jax.jit(functools.partial(model.init_with_output, train=False))(
    _key(), _images((2, 32, 32, 3))
  )
  # 32 px, three stages -> 16, 8, 4; HC from all three at 16 x 16.
  assert out["f"].shape == (2, 16)
  assert out["responses"].shape == out["filtered"].shape == (2, 16, 16, 16)
  np.testing.assert_array_equal(np.count_nonzero(np.asarray(out["filtered"]), axis=(1, 2)), 3)
  params = variables["params"]
  assert casia_net.psi_kernel(params).shape == (3, 3, 12, 16)
  assert params["hc1_u"]["kernel"].shape == (4, 4, 4, 4)
  assert params["hc2_u"]["kernel"].shape == (8, 8, 4, 4)


def test_resnet50_hc_paper_shapes():
  out, variables = jax.eval_shape(
    lambda x: casia_net.ResNet50HC().init_with_output(jax.random.PRNGKey(0), x, train=False),
    jnp.zeros((1, 112, 112, 3)),
  )
  assert out["f"].shape == (1, 512)
  assert out["responses"].shape == (1, 28, 28, 512)
  assert casia_net.psi_kernel(variables["params"]).shape == (3, 3, 768, 512)
  assert variables["params"]["hc0"]["kernel"].shape == (1, 1, 512, 256)  # stage 2: 128 · 4
  assert variables["params"]["hc2"]["kernel"].shape == (1, 1, 2048, 256)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"keep": -1}, "keep"),
    ({"keep": 2.5}, "keep"),
    ({"feature_dim": 0}, "feature_dim"),
    ({"upsample": "nearest"}, "upsample"),
    ({"trunk_widths": (8,) * 12}, "trunk_widths"),
    ({"hc_features": 0}, "hc_features"),
  ],
)
def test_casia_rejects_bad_fields(kwargs, match):
  with pytest.raises(ValueError, match=match):
    _SMALL(**kwargs)


@pytest.mark.parametrize(
  "model,shape,match",
  [
    (_SMALL(), (2, 30, 32, 3), "multiples of 16"),
    (_SMALL(), (2, 32, 32, 1), "images"),
    (_SMALL(keep=65), (2, 32, 32, 3), "keep"),  # Ψ is 8 x 8 = 64 elements
    (casia_net.ResNetHC(), (2, 40, 40, 3), "multiples of 16"),
  ],
)
def test_rejects_bad_inputs(model, shape, match):
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), jnp.zeros(shape))


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"stage_sizes": (1, 1)}, "stage_sizes"),
    ({"width": 0}, "width"),
    ({"keep": True}, "keep"),
  ],
)
def test_resnet_hc_rejects_bad_fields(kwargs, match):
  with pytest.raises(ValueError, match=match):
    casia_net.ResNetHC(**kwargs)
