"""Tests for jfr.explain.saliency: Algorithm 1 against a per-channel NumPy loop, baselines
against NumPy formulas."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.tree_util import Partial

from jfr.explain import saliency
from jfr.models.decoder import ReconstructionDecoder

H_MAP, C = 4, 12
DEAD = (2, 7)  # channels whose maximum is 0 (all <= 0, ReLU-like)
NEGATIVE = 5  # channel whose maximum is negative (pre-ReLU map)
TIE = 9  # channel whose maximum occurs twice, far apart


class TinyDecoder(nn.Module):
  """Two stride-2 transposed convolutions: [b, 4, 4, c] -> [b, 16, 16, 3]."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.ConvTranspose(6, (4, 4), (2, 2), padding="SAME")(x))
    return jnp.tanh(nn.ConvTranspose(3, (4, 4), (2, 2), padding="SAME")(x))


def random_params(model, example, seed):
  """NumPy-drawn parameters (skips compiling Flax's initialisers, slow on a busy CPU)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), example)
  draw = lambda s: (
    rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1]) / 4)
    if len(s.shape) > 1
    else 0.1 * rng.normal(size=s.shape)
  )
  return jax.tree.map(lambda s: jnp.asarray(draw(s), jnp.float32), shapes)


@pytest.fixture(scope="module")
def decode():
  model = TinyDecoder()
  return Partial(model.apply, random_params(model, jnp.zeros((1, H_MAP, H_MAP, C)), 0))


def _conv_maps(seed):
  rng = np.random.default_rng(seed)
  conv_a = np.maximum(rng.normal(size=(H_MAP, H_MAP, C)), 0).astype(np.float32)
  conv_b = np.maximum(rng.normal(size=(H_MAP, H_MAP, C)), 0).astype(np.float32)
  conv_a[..., DEAD] = np.minimum(conv_a[..., DEAD], 0)
  conv_a[..., NEGATIVE] = -np.abs(rng.normal(size=(H_MAP, H_MAP))) - 0.1
  conv_a[..., TIE] = 0.1
  conv_a[0, 0, TIE] = conv_a[3, 3, TIE] = 2.0
  return conv_a, conv_b


def _reference(decode, conv_a, conv_b, threshold):
  """Algorithm 1 as a per-channel loop in NumPy (decoder called one map at a time)."""
  decode = jax.jit(decode)
  recon = lambda m: np.asarray(decode(jnp.asarray(m[None])))[0].astype(np.float64)
  f_a, f_b = conv_a.max(axis=(0, 1)), conv_b.max(axis=(0, 1))
  f_a, f_b = f_a / np.linalg.norm(f_a), f_b / np.linalg.norm(f_b)
  weights = f_a * f_b - threshold
  base = recon(conv_a)
  heat = np.zeros(base.shape[:2])
  for i in range(conv_a.shape[-1]):
    perturbed = conv_a.copy()
    y, x = np.unravel_index(np.argmax(conv_a[..., i]), conv_a.shape[:2])
    perturbed[y, x, i] = 0.0
    residual = np.abs(base - recon(perturbed)).mean(axis=-1)
    if residual.max() > 0:
      residual = residual / residual.max()
    heat += residual * weights[i]
  return heat, weights


@pytest.mark.parametrize("chunk_size", [1, 5, 12, 13, 64])
def test_explain_pair_matches_per_channel_loop(decode, chunk_size):
  conv_a, conv_b = _conv_maps(0)
  threshold = 0.3 / C
  out = saliency.explain_pair(decode, conv_a, conv_b, threshold, chunk_size)
  heat, weights = _reference(decode, conv_a, conv_b, threshold)
  np.testing.assert_allclose(out.h, heat, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(out.weights, weights, rtol=1e-5, atol=1e-7)
  assert int(out.num_active) == C - len(DEAD)
  assert out.s.shape == out.s_pos.shape == out.s_neg.shape == (16, 16)


def test_decomposition_identities(decode):
  conv_a, conv_b = _conv_maps(1)
  out = saliency.explain_pair(decode, conv_a, conv_b, 0.02, 4)
  np.testing.assert_allclose(out.s, out.s_pos + out.s_neg, atol=1e-7)
  np.testing.assert_allclose(out.h, out.s_pos - out.s_neg, atol=1e-7)
  assert (np.asarray(out.s_pos) >= 0).all() and (np.asarray(out.s_neg) >= 0).all()
  assert np.abs(np.asarray(out.h)).max() > 0


def test_weight_sign_split_by_threshold(decode):
  conv_a, conv_b = _conv_maps(2)
  f_a = conv_a.max(axis=(0, 1)) / np.linalg.norm(conv_a.max(axis=(0, 1)))
  f_b = conv_b.max(axis=(0, 1)) / np.linalg.norm(conv_b.max(axis=(0, 1)))
  threshold = float(np.median(f_a * f_b))
  out = saliency.explain_pair(decode, conv_a, conv_b, threshold, 6)
  np.testing.assert_array_equal(np.asarray(out.weights) > 0, f_a * f_b > threshold)
  # All weights negative: nothing is similar; all positive: nothing is dissimilar.
  high = saliency.explain_pair(decode, conv_a, conv_b, 1.0, 6)
  low = saliency.explain_pair(decode, conv_a, conv_b, -1.0, 6)
  assert float(high.s_pos.max()) == 0.0 and float(high.s_neg.max()) > 0
  assert float(low.s_neg.max()) == 0.0 and float(low.s_pos.max()) > 0


def test_explain_pairs_matches_explain_pair(decode):
  maps = [_conv_maps(s) for s in (3, 4)]
  convs_a = np.stack([m[0] for m in maps])
  convs_b = np.stack([m[1] for m in maps])
  batched = saliency.explain_pairs(decode, convs_a, convs_b, 0.01, 5)
  assert batched.s.shape == (2, 16, 16) and batched.weights.shape == (2, C)
  for p in range(2):
    single = saliency.explain_pair(decode, convs_a[p], convs_b[p], 0.01, 5)
    np.testing.assert_allclose(batched.h[p], single.h, rtol=1e-5, atol=1e-7)


def test_all_dead_channels_give_zero_maps(decode):
  conv_a, conv_b = _conv_maps(5)
  out = saliency.explain_pair(decode, np.zeros_like(conv_a), conv_b, 0.0, 5)
  assert int(out.num_active) == 0
  assert float(jnp.abs(out.h).max()) == 0.0


def test_plain_callable_and_reconstruction_decoder():
  model = ReconstructionDecoder(widths=(8, 8, 8))
  params = random_params(model, jnp.zeros((1, 2, 2, 6)), 1)
  conv_a = jax.nn.relu(jax.random.normal(jax.random.key(2), (2, 2, 6)))
  conv_b = jax.nn.relu(jax.random.normal(jax.random.key(3), (2, 2, 6)))
  out = saliency.explain_pair(
    lambda x: model.apply(params, x), conv_a, conv_b, 0.1, 3, image_size=(32, 32)
  )
  heat, _ = _reference(
    lambda x: model.apply(params, x), np.asarray(conv_a), np.asarray(conv_b), 0.1
  )
  np.testing.assert_allclose(out.h, heat, rtol=1e-4, atol=1e-6)


def test_explain_pair_bad_inputs(decode):
  conv_a, conv_b = _conv_maps(6)
  with pytest.raises(ValueError, match="threshold"):
    saliency.explain_pair(decode, conv_a, conv_b, float("nan"), 4)
  with pytest.raises(ValueError, match="threshold"):
    saliency.explain_pair(decode, conv_a, conv_b, np.inf, 4)
  with pytest.raises(ValueError, match="conv_a, conv_b"):
    saliency.explain_pair(decode, conv_a, conv_b[:, :, :6], 0.0, 4)
  with pytest.raises(ValueError, match="conv_a"):
    saliency.explain_pair(decode, conv_a[None], conv_b[None], 0.0, 4)
  for bad in (0, -3, 2.5, True):
    with pytest.raises(ValueError, match="chunk_size"):
      saliency.explain_pair(decode, conv_a, conv_b, 0.0, bad)
  with pytest.raises(ValueError, match="decode"):
    saliency.explain_pair(lambda x: decode(x)[..., 0], conv_a, conv_b, 0.0, 4)
  with pytest.raises(ValueError, match="decode"):
    saliency.explain_pair(lambda x: decode(x)[..., :2], conv_a, conv_b, 0.0, 4)
  with pytest.raises(ValueError, match="decode"):
    saliency.explain_pair(lambda x: decode(x)[:1], conv_a, conv_b, 0.0, 4)
  with pytest.raises(ValueError, match="decode"):
    saliency.explain_pair(decode, conv_a, conv_b, 0.0, 4, image_size=(32, 32))
  with pytest.raises(ValueError, match="decode"):
    saliency.explain_pair("not a function", conv_a, conv_b, 0.0, 4)
  with pytest.raises(ValueError, match="convs_a"):
    saliency.explain_pairs(decode, conv_a, conv_b, 0.0, 4)


# ------------------------------------------------------------------------ baselines

IMG, P, D = 8, 3, 5


def _images(seed):
  rng = np.random.default_rng(seed)
  return (
    rng.uniform(-1, 1, size=(P, IMG, IMG, 3)).astype(np.float32),
    rng.uniform(-1, 1, size=(P, IMG, IMG, 3)).astype(np.float32),
  )


def _np_cosine_grad(f_a, f_b):
  """d cos(f_a, f_b) / d f_a per row."""
  na = np.linalg.norm(f_a, axis=1, keepdims=True)
  nb = np.linalg.norm(f_b, axis=1, keepdims=True)
  cos = np.sum(f_a * f_b, axis=1, keepdims=True) / (na * nb)
  return f_b / (na * nb) - cos * f_a / na**2


def _np_bilinear(maps, size):
  """Half-pixel bilinear resize with clamped borders, [P, h, w] -> [P, size, size]."""

  def axis_weights(n_in):
    x = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((size, n_in))
    m[np.arange(size), lo] += 1 - (x - lo)
    m[np.arange(size), hi] += x - lo
    return m

  rows, cols = axis_weights(maps.shape[1]), axis_weights(maps.shape[2])
  return np.einsum("yi,pij,xj->pyx", rows, maps, cols)


def test_gradient_saliency_matches_analytic_linear_embedding():
  images_a, images_b = _images(0)
  v = np.random.default_rng(1).normal(size=(IMG * IMG * 3, D)).astype(np.float32)
  embed = lambda x: x.reshape(x.shape[0], -1) @ v
  grad = _np_cosine_grad(images_a.reshape(P, -1) @ v, images_b.reshape(P, -1) @ v) @ v.T
  contribution = images_a * grad.reshape(images_a.shape)
  np.testing.assert_allclose(
    saliency.gradient_saliency(embed, images_a, images_b),
    np.abs(contribution).sum(-1),
    rtol=1e-4,
    atol=1e-6,
  )
  np.testing.assert_allclose(
    saliency.gradient_saliency(embed, images_a, images_b, reduction="sum"),
    contribution.sum(-1),
    rtol=1e-4,
    atol=1e-6,
  )


def test_gradient_saliency_matches_jax_grad_on_nonlinear_net():
  images_a, images_b = _images(2)
  v = jax.random.normal(jax.random.key(3), (IMG * IMG * 3, D))
  embed = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ v)
  got = saliency.gradient_saliency(embed, images_a, images_b)
  for p in range(P):
    sim = lambda x: saliency.cosine_similarity(embed(x[None]), embed(images_b[p][None]))[0]
    expected = jnp.sum(jnp.abs(images_a[p] * jax.jit(jax.grad(sim))(images_a[p])), -1)
    np.testing.assert_allclose(got[p], expected, rtol=1e-4, atol=1e-6)


def _linear_network(seed, c=4, h=4):
  """conv = 2x2 average pool then a 1x1 projection; head = spatially weighted sum."""
  rng = np.random.default_rng(seed)
  proj = rng.normal(size=(3, c)).astype(np.float32)
  spatial = rng.uniform(0.1, 1.0, size=(h, h)).astype(np.float32)
  head_w = rng.normal(size=(c, D)).astype(np.float32)
  pool = lambda x: x.reshape(x.shape[0], h, IMG // h, h, IMG // h, 3).mean(axis=(2, 4))
  conv_fn = lambda x: pool(x) @ proj
  head_fn = lambda a: jnp.einsum("pijk,ij,kd->pd", a, spatial, head_w)
  np_conv = lambda x: np.asarray(pool(x)) @ proj
  np_head = lambda a: np.einsum("pijk,ij,kd->pd", a, spatial, head_w)
  return conv_fn, head_fn, np_conv, np_head, spatial, head_w


def _np_cam_inputs(seed, images_a, images_b):
  conv_fn, head_fn, np_conv, np_head, spatial, head_w = _linear_network(seed)
  conv_a = np_conv(images_a)
  d_features = _np_cosine_grad(np_head(conv_a), np_head(np_conv(images_b)))
  grads = np.einsum("ij,kd,pd->pijk", spatial, head_w, d_features)
  return conv_fn, head_fn, conv_a, grads


def test_grad_cam_matches_numpy_formula():
  images_a, images_b = _images(4)
  conv_fn, head_fn, conv_a, grads = _np_cam_inputs(5, images_a, images_b)
  alpha = grads.mean(axis=(1, 2))
  cam = np.maximum(np.einsum("pk,pijk->pij", alpha, conv_a), 0)
  expected = _np_bilinear(cam, IMG)
  got = saliency.grad_cam(conv_fn, head_fn, images_a, images_b)
  assert got.shape == (P, IMG, IMG)
  assert expected.max() > 0
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_grad_cam_pp_matches_numpy_formula():
  images_a, images_b = _images(6)
  conv_fn, head_fn, conv_a, grads = _np_cam_inputs(7, images_a, images_b)
  expected = np.zeros((P, IMG // 2, IMG // 2))
  for p in range(P):
    for k in range(conv_a.shape[-1]):
      g = grads[p, ..., k]
      denominator = 2 * g**2 + conv_a[p, ..., k].sum() * g**3
      alpha = np.divide(g**2, denominator, out=np.zeros_like(g), where=denominator != 0)
      expected[p] += (alpha * np.maximum(g, 0)).sum() * conv_a[p, ..., k]
  expected = _np_bilinear(np.maximum(expected, 0), IMG)
  got = saliency.grad_cam_pp(conv_fn, head_fn, images_a, images_b)
  assert expected.max() > 0
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_baseline_shapes_on_conv_network():
  images_a, images_b = _images(8)
  conv = nn.Conv(6, (3, 3), strides=(2, 2))
  params = random_params(conv, images_a, 2)
  conv_fn = Partial(lambda prm, x: jax.nn.relu(conv.apply(prm, x)), params)
  head_fn = lambda a: jnp.max(a, axis=(1, 2))
  embed_fn = lambda x: head_fn(conv_fn(x))
  for out in (
    saliency.gradient_saliency(embed_fn, images_a, images_b),
    saliency.grad_cam(conv_fn, head_fn, images_a, images_b),
    saliency.grad_cam_pp(conv_fn, head_fn, images_a, images_b),
  ):
    assert out.shape == (P, IMG, IMG)
    assert np.isfinite(np.asarray(out)).all() and float(out.min()) >= 0


def test_baselines_bad_inputs():
  images_a, images_b = _images(9)
  conv_fn, head_fn, *_ = _linear_network(0)
  with pytest.raises(ValueError, match="images_b"):
    saliency.grad_cam(conv_fn, head_fn, images_a, images_b[:2])
  with pytest.raises(ValueError, match="images_a"):
    saliency.grad_cam_pp(conv_fn, head_fn, images_a[0], images_b[0])
  with pytest.raises(ValueError, match="head_fn"):
    saliency.grad_cam(conv_fn, lambda a: a, images_a, images_b)
  with pytest.raises(ValueError, match="conv_fn"):
    saliency.grad_cam(lambda x: x[..., 0], head_fn, images_a, images_b)
  with pytest.raises(ValueError, match="embed_fn"):
    saliency.gradient_saliency(lambda x: x, images_a, images_b)
  with pytest.raises(ValueError, match="reduction"):
    saliency.gradient_saliency(lambda x: x.reshape(P, -1), images_a, images_b, "max")


@pytest.mark.parametrize("method", ["gradient", "grad_cam", "grad_cam_pp"])
@pytest.mark.parametrize("side", ["a", "b"])
def test_zero_embedding_gives_zero_map_and_a_warning(method, side):
  images_a, images_b = _images(10)
  # The linear network has no bias: a black image has the zero feature vector.
  if side == "a":
    images_a[0] = 0.0
  else:
    images_b[0] = 0.0
  conv_fn, head_fn = _linear_network(11)[:2]
  explain = {
    "gradient": lambda: saliency.gradient_saliency(
      lambda x: head_fn(conv_fn(x)), images_a, images_b
    ),
    "grad_cam": lambda: saliency.grad_cam(conv_fn, head_fn, images_a, images_b),
    "grad_cam_pp": lambda: saliency.grad_cam_pp(conv_fn, head_fn, images_a, images_b),
  }[method]
  with pytest.warns(RuntimeWarning, match=r"pairs \[0\] have a zero feature vector"):
    got = np.asarray(explain())
  assert np.isfinite(got).all()
  np.testing.assert_array_equal(got[0], 0.0)
  assert np.abs(got[1:]).max() > 0  # the other pairs are explained as usual
