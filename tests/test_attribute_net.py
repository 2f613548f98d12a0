"""Tests for jfr.models.attribute_net (net@1 / net@2 of Taherkhani et al., Eq. 1-3)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfr.models import attribute_net

_T, _C = 3, 5
_SMALL = functools.partial(
  attribute_net.AttributeIdentityNet,
  num_attributes=_T,
  num_classes=_C,
  widths=(4, 4, 8, 8, 8),
  attribute_hidden=6,
  identity_hidden=7,
)


def _key(seed=0):
  """An 'rbg' key: its random draws compile much faster on CPU than threefry's."""
  return jax.random.key(seed, impl="rbg")


def _images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(-1.0, 1.0, shape), jnp.float32)


def _init(model, x):
  return jax.jit(functools.partial(model.init_with_output, train=False, return_conv_map=True))(
    _key(), x
  )


def _batch():
  return _images((4, 32, 32, 3)), jnp.array([0, 1, 2, 4])


@functools.lru_cache(maxsize=None)
def _initialised(mode):
  model = _SMALL(mode=mode)
  out, variables = _init(model, _batch()[0])
  return model, variables, out


@pytest.fixture(scope="module")
def batch():
  return _batch()


@pytest.fixture(scope="module", params=attribute_net.MODES)
def initialised(request):
  return _initialised(request.param)


def _identity_loss_grads(model, variables, images, labels):
  def loss(params):
    out = model.apply({**variables, "params": params}, images, train=False)
    return optax.softmax_cross_entropy_with_integer_labels(out["identity_logits"], labels).mean()

  return jax.jit(jax.grad(loss))(variables["params"])


def _max_abs(tree):
  return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("size,side", [(112, 7), (64, 4)])
@pytest.mark.parametrize(
  "mode,fused_dim", [("joint", 512 * 10), ("concat", 512 + 10), ("separate", 512)]
)
def test_paper_sizes_output_shapes(size, side, mode, fused_dim):
  model = attribute_net.AttributeIdentityNet(
    num_attributes=10,
    num_classes=100,
    mode=mode,
    widths=attribute_net.PAPER_WIDTHS,
    attribute_hidden=4096,
    identity_hidden=4096,
  )
  out, variables = jax.eval_shape(
    lambda x: model.init_with_output(jax.random.PRNGKey(0), x, train=False, return_conv_map=True),
    jnp.zeros((2, size, size, 3)),
  )
  assert out["attribute_logits"].shape == (2, 10)
  assert out["identity_logits"].shape == (2, 100)
  assert out["features"].shape == (2, 4096)
  assert out["attribute_features"].shape == (2, 512)
  assert out["fused"].shape == (2, fused_dim)
  assert out["conv_map"].shape == (2, side, side, 512)
  assert variables["params"]["identity_head"]["hidden"]["kernel"].shape == (fused_dim, 4096)
  assert ("identity_trunk" in variables["params"]) == (mode == "separate")


def test_vgg19_param_count_matches_vgg19_convs():
  params = jax.eval_shape(
    lambda x: attribute_net.VGG19GAP(widths=attribute_net.PAPER_WIDTHS).init(
      jax.random.PRNGKey(0), x, train=False
    ),
    jnp.zeros((1, 64, 64, 3)),
  )["params"]
  # VGG-19's 16 conv layers hold 20,024,384 parameters with their biases (5,504);
  # here the biases are replaced by BatchNorm's scale and offset (2 x 5,504).
  count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
  assert count == 20_024_384 - 5_504 + 2 * 5_504
  assert len(params) == 32  # 16 convs + 16 BatchNorms


def test_vgg19_pools_after_convs_2_4_8_12():
  model = attribute_net.VGG19GAP(widths=(1, 2, 3, 4, 5))
  _, state = jax.eval_shape(
    lambda x: model.apply(
      model.init(jax.random.PRNGKey(0), x, train=False),
      x,
      train=False,
      capture_intermediates=True,
      mutable=["intermediates"],
    ),
    jnp.zeros((1, 64, 64, 3)),
  )
  sides = {
    name: value["__call__"][0].shape[1]
    for name, value in state["intermediates"].items()
    if name.startswith("conv")
  }
  assert sides == {
    "conv1_1": 64,
    "conv1_2": 64,
    "conv2_1": 32,
    "conv2_2": 32,
    **{f"conv3_{i}": 16 for i in range(1, 5)},
    **{f"conv4_{i}": 8 for i in range(1, 5)},
    **{f"conv5_{i}": 4 for i in range(1, 5)},
  }


def test_outputs_and_fusion(initialised):
  model, _, out = initialised
  u = np.asarray(out["attribute_features"])
  v = np.asarray(out["attribute_logits"])
  assert v.shape == (4, _T) and out["identity_logits"].shape == (4, _C)
  assert out["features"].shape == (4, 7)
  assert out["conv_map"].shape == (4, 2, 2, 8)
  np.testing.assert_allclose(np.asarray(out["conv_map"]).mean(axis=(1, 2)), u, rtol=1e-6)
  if model.mode == "joint":  # Eq. 1: u ⊗ v, per example.
    want = np.stack([np.kron(u[b], v[b]) for b in range(4)])
  elif model.mode == "concat":
    want = np.concatenate([u, v], axis=1)
  else:  # the identity network's own GAP features: same shape, other weights.
    want = None
    assert out["fused"].shape == u.shape
    assert not np.allclose(out["fused"], u)
  if want is not None:
    np.testing.assert_allclose(out["fused"], want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["joint", "separate"])
def test_identity_loss_gradients_reach_attribute_branch_only_when_fused(mode, batch):
  model, variables, _ = _initialised(mode)
  grads = _identity_loss_grads(model, variables, *batch)
  assert _max_abs(grads["identity_head"]) > 0
  if model.mode == "separate":
    # Separate networks: the identity loss touches neither the attribute branch nor its trunk.
    assert _max_abs(grads["attribute_head"]) == 0.0
    assert _max_abs(grads["trunk"]) == 0.0
    assert _max_abs(grads["identity_trunk"]) > 0
  else:  # Eq. 3: g depends on W_{2,1} through f (the attribute logits are not detached).
    assert _max_abs(grads["attribute_head"]) > 1e-8
    assert _max_abs(grads["trunk"]) > 1e-8


def test_batch_norm_syncs_across_pmap_devices(batch):
  images = batch[0]
  _, variables, out_full = _initialised("joint")
  want = _SMALL().apply(variables, images, train=True, mutable=["batch_stats"])[0]
  synced = _SMALL(axis_name="batch")
  got = jax.pmap(
    lambda v, xs: synced.apply(v, xs, train=True, mutable=["batch_stats"])[0],
    axis_name="batch",
    in_axes=(None, 0),
    devices=jax.devices()[:2],
  )(variables, images.reshape(2, 2, *images.shape[1:]))
  for name in ("attribute_logits", "identity_logits", "features"):
    np.testing.assert_allclose(
      np.asarray(got[name]).reshape(want[name].shape),
      want[name],
      rtol=1e-4,
      atol=1e-5,
      err_msg=name,
    )
  assert not np.allclose(out_full["identity_logits"], want["identity_logits"])  # BN mode matters


def test_exact_cam_for_a_linear_attribute_branch(batch):
  images = batch[0]
  model = _SMALL(attribute_hidden=0)
  out, variables = _init(model, images)
  maps = attribute_net.attribute_maps(model, variables, images, rectify=False)
  assert maps.shape == (4, 2, 2, _T)
  # CAM (Zhou et al.): the spatial mean of M_t plus the bias is the attribute logit.
  logits_head = variables["params"]["attribute_head"]["logits"]
  np.testing.assert_allclose(
    np.asarray(maps).mean(axis=(1, 2)) + logits_head["bias"],
    out["attribute_logits"],
    rtol=1e-5,
    atol=1e-5,
  )
  np.testing.assert_allclose(
    attribute_net.attribute_cam(out["conv_map"], logits_head["kernel"], rectify=False),
    maps,
    rtol=1e-5,
    atol=1e-6,
  )
  rectified = attribute_net.attribute_maps(model, variables, images)
  np.testing.assert_allclose(rectified, np.maximum(maps, 0.0), rtol=1e-6, atol=1e-7)


def test_grad_cam_maps_with_hidden_layer(batch):
  model, variables, _ = _initialised("joint")
  maps = attribute_net.attribute_maps(model, variables, batch[0])
  assert maps.shape == (4, 2, 2, _T)
  assert np.all(np.asarray(maps) >= 0) and np.any(np.asarray(maps) > 0)


def test_attribute_cam_matches_numpy_loops():
  rng = np.random.default_rng(1)
  conv_map = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
  weights = rng.normal(size=(2, 5, 3)).astype(np.float32)
  want = np.zeros((2, 3, 4, 3), np.float32)
  for b in range(2):
    for i in range(3):
      for j in range(4):
        for t in range(3):
          want[b, i, j, t] = sum(conv_map[b, i, j, k] * weights[b, k, t] for k in range(5))
  got = attribute_net.attribute_cam(jnp.asarray(conv_map), jnp.asarray(weights), rectify=False)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  shared = attribute_net.attribute_cam(jnp.asarray(conv_map), jnp.asarray(weights[0]))
  np.testing.assert_allclose(
    shared[1],
    np.maximum(np.einsum("hwc,ct->hwt", conv_map[1], weights[0]), 0.0),
    rtol=1e-5,
    atol=1e-5,
  )


def test_attribute_gradient_weights_match_analytic_jacobian():
  rng = np.random.default_rng(2)
  w1 = rng.normal(size=(5, 6)).astype(np.float32)
  w2 = rng.normal(size=(6, 3)).astype(np.float32)
  u = rng.normal(size=(4, 5)).astype(np.float32)
  head_fn = lambda x: jnp.tanh(x @ w1) @ w2
  got = attribute_net.attribute_gradient_weights(head_fn, jnp.asarray(u))
  for b in range(4):
    slope = 1.0 - np.tanh(u[b] @ w1) ** 2
    np.testing.assert_allclose(got[b], w1 @ np.diag(slope) @ w2, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"num_attributes": 0}, "num_attributes"),
    ({"num_classes": 0}, "num_classes"),
    ({"num_classes": -3}, "num_classes"),
    ({"num_attributes": 2.0}, "num_attributes"),
    ({"mode": "fused"}, "mode"),
    ({"attribute_hidden": -1}, "attribute_hidden"),
    ({"identity_hidden": -1}, "identity_hidden"),
    ({"widths": (4, 4, 8, 8)}, "widths"),
  ],
)
def test_rejects_bad_fields(kwargs, match):
  with pytest.raises(ValueError, match=match):
    _SMALL(**kwargs)


@pytest.mark.parametrize(
  "shape,match", [((2, 40, 40, 3), "multiples of 16"), ((2, 32, 32), "images")]
)
def test_rejects_bad_images(shape, match):
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda x: _SMALL().init(jax.random.PRNGKey(0), x, train=False), jnp.zeros(shape))


@pytest.mark.parametrize(
  "conv_shape,weight_shape",
  [((2, 3, 4), (4, 3)), ((2, 3, 3, 4), (5, 3)), ((2, 3, 3, 4), (3, 4, 3))],
)
def test_attribute_cam_rejects_bad_shapes(conv_shape, weight_shape):
  with pytest.raises(ValueError):
    attribute_net.attribute_cam(jnp.zeros(conv_shape), jnp.zeros(weight_shape))
