"""Tests of jfr.models.set_unet (the FAN face aggregator)."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from scipy import ndimage

from jfr.models import layers
from jfr.models.layers import gaussian_blur_matrix, symmetrise_shading
from jfr.models.set_unet import (
  SetMergeConv,
  SetUNet,
  masked_member_softmax,
  pad_set,
  validate_set_inputs,
)

SIZE = 16  # the smallest size with every level (1x1 bottleneck); 112 is shape-checked.


def _frames(seed, batch=2, members=3, size=SIZE):
  rng = np.random.default_rng(seed)
  return rng.uniform(-1, 1, size=(batch, members, size, size, 3)).astype(np.float32)


def _model(**kw):
  return SetUNet(base_features=4, max_members=8, **kw)


def _numpy_params(model, frames, mask, seed=0):
  """Random parameters shaped like ``model.init``'s, drawn with NumPy.

  Compiling flax's threefry-based initialisers costs seconds per tensor on a small
  CPU; the tests only need some parameters of the right layout.
  """
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), frames, mask))
  rng = np.random.default_rng(seed)

  def draw(leaf):
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 10
    return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in), leaf.dtype)

  return jax.tree.map(draw, shapes)


class SetUNetTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.frames = _frames(0)
    cls.mask = np.ones(cls.frames.shape[:2], bool)
    cls.model = _model()
    cls.params = _numpy_params(cls.model, cls.frames, cls.mask)
    cls.apply = staticmethod(jax.jit(cls.model.apply))
    cls.out = np.asarray(cls.apply(cls.params, cls.frames, cls.mask))

  def test_default_layout_at_paper_size(self):
    frames = jnp.zeros((1, 2, 112, 112, 3))
    mask = jnp.ones((1, 2), bool)
    model = SetUNet()
    out, variables = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), frames, mask))
    self.assertEqual(out.shape, (1, 112, 112, 3))
    self.assertEqual(out.dtype, jnp.float32)
    shapes = {k: v["kernel"].shape for k, v in variables["params"].items()}
    c = 32
    self.assertEqual(shapes["stem"], (3, 3, 3, c))
    self.assertEqual(shapes["encoder1_merge"], (1, 1, 2 * c, c))
    self.assertEqual(shapes["encoder4_down"], (3, 3, 8 * c, 8 * c))
    self.assertEqual(shapes["decoder1_up"], (4, 4, 8 * c, 4 * c))
    # deconv output (4c) + its set maximum (4c) + the 14x14 encoder skip (4c).
    self.assertEqual(shapes["decoder1_merge"], (1, 1, 12 * c, 4 * c))
    self.assertEqual(shapes["decoder4_merge"], (1, 1, 3 * c, c))
    self.assertEqual(shapes["head_rgb"], (3, 3, c, 3))
    self.assertLen(shapes, 1 + 2 * 4 + 3 * 4 + 2)

  def test_output_shape_and_finite(self):
    chex.assert_shape(self.out, (2, SIZE, SIZE, 3))
    chex.assert_tree_all_finite(self.out)

  def test_permutation_invariant(self):
    perm = np.array([2, 0, 1])
    got = self.apply(self.params, self.frames[:, perm], self.mask[:, perm])
    chex.assert_trees_all_close(got, self.out, atol=1e-5)

  def test_padding_invariant_with_garbage(self):
    garbage = np.full((2, 3, SIZE, SIZE, 3), np.nan, np.float32)
    garbage[1] = 1e4
    frames = np.concatenate([garbage[:, :1], self.frames, garbage[:, 1:]], axis=1)
    mask = np.concatenate([np.zeros((2, 1), bool), self.mask, np.zeros((2, 2), bool)], 1)
    got = self.apply(self.params, frames, mask)
    chex.assert_trees_all_close(got, self.out, atol=1e-5)

    # Garbage in padded members (NaN, huge values) leaves every gradient unchanged.
    def loss(params, f):
      return jnp.sum(self.model.apply(params, f, mask) ** 2)

    grad = jax.jit(jax.grad(loss))
    grads = grad(self.params, frames)
    chex.assert_tree_all_finite(grads)
    chex.assert_trees_all_close(
      grads, grad(self.params, np.where(mask[..., None, None, None], frames, 0.0))
    )

  def test_sets_of_different_sizes_in_one_batch(self):
    mask = np.array([[True, False, False], [True, True, True]])
    got = np.asarray(self.apply(self.params, self.frames, mask))
    alone = self.apply(self.params, self.frames[:1, :1], mask[:1, :1])
    chex.assert_trees_all_close(got[:1], alone, atol=1e-5)
    chex.assert_trees_all_close(got[1], self.out[1], atol=1e-5)

  def test_every_real_member_matters(self):
    for member in range(3):
      frames = self.frames.copy()
      frames[:, member] = -frames[:, member]
      got = np.asarray(self.apply(self.params, frames, self.mask))
      self.assertGreater(np.abs(got - self.out).max(), 1e-4, msg=f"member {member}")

  def test_flax_and_subpixel_transposed_convs_agree(self):
    got = jax.jit(_model(transposed_conv="flax").apply)(self.params, self.frames, self.mask)
    chex.assert_trees_all_close(got, self.out, atol=1e-4)

  def test_icnr_upsampling_and_mean_residual_options(self):
    frames = _frames(2, batch=2, members=3, size=SIZE)
    mask = np.array([[True, True, False], [True, True, True]])
    model = _model(upsample_init="icnr", residual="mean")
    variables = jax.jit(model.init)(jax.random.key(0), frames, mask)
    ups = [v["kernel"] for k, v in variables["params"].items() if k.endswith("_up")]
    self.assertLen(ups, 4)
    for kernel in ups:  # every sub-pixel phase starts equal (no checkerboard)
      np.testing.assert_array_equal(kernel[0::2, 0::2], kernel[1::2, 1::2])
    # At initialisation the aggregate is the masked pixel mean of the members.
    out = np.asarray(jax.jit(model.apply)(variables, frames, mask))
    want = np.stack([frames[0, :2].mean(0), frames[1].mean(0)])
    np.testing.assert_allclose(out, want, atol=1e-5)
    # Trained (non-zero) parameters add the network's output to the mean.
    plain = np.asarray(self.apply(self.params, self.frames, self.mask))
    res = np.asarray(jax.jit(model.apply)(self.params, self.frames, self.mask))
    np.testing.assert_allclose(res, plain + self.frames.mean(1), atol=1e-4)
    with self.assertRaisesRegex(ValueError, "upsample_init"):
      _model(upsample_init="zeros").apply(self.params, self.frames, self.mask)
    with self.assertRaisesRegex(ValueError, "residual"):
      _model(residual="max").apply(self.params, self.frames, self.mask)

  def test_weighted_mean_residual(self):
    frames = _frames(3, batch=2, members=4, size=SIZE)
    mask = np.array([[True, True, True, False], [True, True, True, True]])
    model = _model(upsample_init="icnr", residual="weighted_mean")
    apply = jax.jit(model.apply)
    variables = jax.jit(model.init)(jax.random.key(0), frames, mask)
    # At initialisation (zero weight conv): the masked pixel mean.
    want = np.stack([frames[0, :3].mean(0), frames[1].mean(0)])
    np.testing.assert_allclose(np.asarray(apply(variables, frames, mask)), want, atol=1e-5)
    # With the weight conv's kernel zero, any bias gives uniform weights: the 'mean' model.
    params = _numpy_params(model, frames, mask, seed=1)
    flat = dict(params["params"])
    flat["head_weights"] = {
      "kernel": jnp.zeros_like(flat["head_weights"]["kernel"]),
      "bias": jnp.full_like(flat["head_weights"]["bias"], 3.0),
    }
    mean_params = {"params": {k: v for k, v in flat.items() if k != "head_weights"}}
    mean_out = jax.jit(_model(upsample_init="icnr", residual="mean").apply)(
      mean_params, frames, mask
    )
    uniform = apply({"params": flat}, frames, mask)
    np.testing.assert_allclose(np.asarray(uniform), np.asarray(mean_out), atol=1e-5)
    # Learned weights move the output away from the mean, stay permutation invariant and
    # never read padded members (NaN there changes nothing).
    out = np.asarray(apply(params, frames, mask))
    self.assertGreater(np.abs(out - np.asarray(mean_out)).max(), 1e-3)
    perm = np.array([2, 0, 1, 3])
    np.testing.assert_allclose(
      np.asarray(apply(params, frames[:, perm], mask[:, perm])), out, atol=1e-5
    )
    garbage = frames.copy()
    garbage[0, 3] = np.nan
    np.testing.assert_allclose(np.asarray(apply(params, garbage, mask)), out, atol=1e-5)

  @parameterized.parameters(0.7, 4.0, 30.0)  # 30: the kernel is wider than the image
  def test_symmetrise_shading_against_scipy(self, sigma):
    # y + G (flip(y) - y) / 2 with scipy's Gaussian filter (mirrored borders, 4-sigma taps).
    x = np.random.default_rng(0).normal(size=(2, 20, 12, 3)).astype(np.float32)
    diff = x[:, :, ::-1] - x
    want = x + 0.5 * ndimage.gaussian_filter(
      diff, sigma=(0, sigma, sigma, 0), mode="reflect", truncate=4.0
    )
    got = np.asarray(jax.jit(symmetrise_shading, static_argnums=1)(x, sigma))
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(gaussian_blur_matrix(20, sigma).sum(1), 1.0, atol=1e-6)

  def test_symmetrise_shading_removes_side_light_keeps_detail(self):
    size = 32
    u = np.linspace(-1, 1, size)
    face = np.exp(-(u[:, None] ** 2 + u[None, :] ** 2) * 3)  # symmetric "face"
    light = 0.5 * u[None, :]  # side light: a left-right ramp
    detail = np.zeros((size, size))
    detail[10, 8] = 1.0  # a one-pixel mark on one side only
    image = np.broadcast_to((face + light + detail)[None, :, :, None], (1, size, size, 3))
    out = np.asarray(symmetrise_shading(jnp.asarray(image, jnp.float32), 3.0))[0, :, :, 0]
    self.assertLess(np.abs(out - out[:, ::-1]).mean(), 0.1 * np.abs(light - light[:, ::-1]).mean())
    self.assertGreater(out[10, 8] - out[10, size - 1 - 8], 0.8)  # the mark stays where it was
    symmetric = np.broadcast_to(face[None, :, :, None], (1, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(symmetrise_shading(symmetric, 3.0)), symmetric, atol=1e-6)

  def test_shading_symmetry_option(self):
    frames = _frames(4, batch=2, members=3)
    mask = np.array([[True, True, False], [True, True, True]])
    plain = _model(upsample_init="icnr", residual="mean")
    model = _model(upsample_init="icnr", residual="mean", shading_symmetry=2.0)
    params = _numpy_params(plain, frames, mask, seed=2)
    want = symmetrise_shading(jax.jit(plain.apply)(params, frames, mask), 2.0)
    out = jax.jit(model.apply)(params, frames, mask)  # no parameters of its own
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), atol=1e-5)
    perm = np.array([1, 0, 2])
    np.testing.assert_allclose(
      np.asarray(jax.jit(model.apply)(params, frames[:, perm], mask[:, perm])),
      np.asarray(out),
      atol=1e-5,
    )
    for bad in (-1.0, float("nan")):
      with self.assertRaisesRegex(ValueError, "shading_symmetry"):
        _model(shading_symmetry=bad).init(jax.random.key(0), frames, mask)
    with self.assertRaisesRegex(ValueError, "sigma"):
      gaussian_blur_matrix(8, 0.0)

  def test_masked_member_softmax_against_numpy(self):
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 4, 3, 3, 1)).astype(np.float32) * 5
    mask = np.array([[True, False, True, False], [True, True, True, True]])
    got = np.asarray(masked_member_softmax(jnp.asarray(logits), jnp.asarray(mask)))
    want = np.zeros_like(logits)
    for b in range(2):
      real = np.flatnonzero(mask[b])
      e = np.exp(logits[b, real] - logits[b, real].max(axis=0))
      want[b, real] = e / e.sum(axis=0)
    np.testing.assert_allclose(got, want, atol=1e-6)

  @parameterized.parameters(1, 8)
  def test_any_set_size_up_to_max(self, members):
    frames = _frames(1, batch=1, members=members, size=16)
    out = self.apply(self.params, frames, np.ones((1, members), bool))
    chex.assert_shape(out, (1, 16, 16, 3))

  def test_output_activations(self):
    frames = 50.0 * self.frames  # drives the last conv far outside [-1, 1].
    outs = {
      name: np.asarray(
        jax.jit(_model(output_activation=name).apply)(self.params, frames, self.mask)
      )
      for name in ("linear", "tanh", "elu")
    }
    self.assertGreater(np.abs(outs["linear"]).max(), 1.0)
    np.testing.assert_allclose(outs["tanh"], np.tanh(outs["linear"]), atol=1e-5)
    np.testing.assert_allclose(
      outs["elu"], np.where(outs["linear"] > 0, outs["linear"], np.expm1(outs["linear"])), atol=1e-5
    )
    with self.assertRaisesRegex(ValueError, "output_activation"):
      _model(output_activation="relu").apply(self.params, self.frames, self.mask)
    with self.assertRaisesRegex(ValueError, "transposed_conv"):
      _model(transposed_conv="dilated").apply(self.params, self.frames, self.mask)

  def test_bfloat16_computation(self):
    out = jax.jit(_model(dtype=jnp.bfloat16).apply)(self.params, self.frames, self.mask)
    self.assertEqual(out.dtype, jnp.float32)
    chex.assert_trees_all_close(out, self.out, atol=0.1)

  @parameterized.named_parameters(
    ("empty_set", (1, 0, 16, 16, 3), "at least one member"),
    ("too_many_members", (1, 9, 16, 16, 3), "max_members"),
    ("size_not_multiple_of_16", (1, 2, 24, 24, 3), "multiples of 16"),
    ("too_small", (1, 2, 0, 16, 3), "multiples of 16"),
    ("four_channels", (1, 2, 16, 16, 4), "3 \\(RGB\\) channels"),
    ("no_set_axis", (1, 16, 16, 3), "\\[B, N, H, W, 3\\]"),
  )
  def test_bad_shapes_raise(self, shape, message):
    frames = np.zeros(shape, np.float32)
    mask = np.ones(shape[:2], bool)
    with self.assertRaisesRegex(ValueError, message):
      _model().apply(self.params, frames, mask)
    with self.assertRaisesRegex(ValueError, message):
      jax.jit(_model().apply)(self.params, frames, mask)
    with self.assertRaisesRegex(ValueError, message):
      validate_set_inputs(frames, mask, max_members=8)

  def test_bad_values_raise(self):
    empty = self.mask.copy()
    empty[1] = False
    nan = self.frames.copy()
    nan[0, 2, 3, 4, 1] = np.nan
    cases = [
      (self.frames, empty, "no real member in set\\(s\\) \\[1\\]"),
      (nan, self.mask, "non-finite pixels .* \\[\\[0, 2\\]\\]"),
      (self.frames, self.mask.astype(np.int32), "mask must be boolean"),
      (self.frames, self.mask[:, :2], "mask must have shape"),
    ]
    for frames, mask, message in cases:
      with self.assertRaisesRegex(ValueError, message):
        validate_set_inputs(frames, mask, max_members=8)
      with self.assertRaisesRegex(ValueError, message):
        self.model.apply(self.params, frames, mask)
    # A NaN in a padded member is fine: it is never read.
    masked = self.mask.copy()
    masked[0, 2] = False
    validate_set_inputs(nan, masked, max_members=8)

  def test_pad_set(self):
    frames = _frames(2, batch=1, members=3, size=16)[0]
    padded, mask = pad_set(frames, 5)
    chex.assert_shape(padded, (5, 16, 16, 3))
    np.testing.assert_array_equal(mask, [True, True, True, False, False])
    np.testing.assert_array_equal(padded[:3], frames)
    np.testing.assert_array_equal(padded[3:], 0)
    with self.assertRaisesRegex(ValueError, "1..2 members"):
      pad_set(frames, 2)


class SetMergeConvTest(chex.TestCase):
  @parameterized.parameters(0, 5)
  def test_equals_conv1x1_over_global_concat(self, skip_channels):
    rng = np.random.default_rng(skip_channels)
    x = rng.normal(size=(2, 3, 4, 5, 6)).astype(np.float32)
    skip = rng.normal(size=(2, 3, 4, 5, skip_channels)).astype(np.float32)
    mask = np.array([[True, False, True], [False, True, False]])
    extras = (skip,) if skip_channels else ()
    concat = np.concatenate([np.asarray(layers.global_concat(x, mask)), *extras], axis=-1)
    params = {
      "params": {
        "kernel": jnp.asarray(rng.normal(size=(1, 1, 12 + skip_channels, 7)), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=(7,)), jnp.float32),
      }
    }
    want = nn.Conv(7, (1, 1)).apply(params, concat)
    got = SetMergeConv(7).apply(params, x, mask, *extras)
    chex.assert_trees_all_close(got, want, atol=1e-5, rtol=1e-5)
    shapes = jax.eval_shape(lambda: SetMergeConv(7).init(jax.random.key(0), x, mask, *extras))
    chex.assert_trees_all_equal_shapes(shapes, params)
