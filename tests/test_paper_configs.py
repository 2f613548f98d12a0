"""Every ``configs/*.py:paper`` variant builds: its train steps lower at the paper's batch and
image size on abstract inputs (``jax.eval_shape`` for the state, ``.lower()`` for the step,
nothing compiled or run; the data set is replaced by its feature spec), and the method's
pipeline yields first batches of the structure that was lowered (tiny data, paper batch size).

``benchmarks/paper_memory.py`` compiles the same steps and prints their memory estimates.
"""

import importlib

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

import jfr.data  # noqa: F401  (registers synthetic_faces)
from jfr.train import steps

PAPER_CONFIGS = ("baseline", "explain", "attributes", "interpretable", "templates", "fan")


def _trainer(method):
  return importlib.import_module(f"jfr.methods.{method}.trainer")


def _paper(name):
  return importlib.import_module(f"configs.{name}").get_config("paper")


def dataset_spec(config):
  """(image size, train identities, attribute count) of the config's data set, from its spec."""
  builder_config = tfds.builder(config.dataset.name).builder_config  # nothing prepared
  return builder_config.image_size, builder_config.num_train_identities


def _images(batch, size):
  return {
    "image": jax.ShapeDtypeStruct((batch, size, size, 3), np.float32),
    "label": jax.ShapeDtypeStruct((batch,), np.int32),
  }


def train_steps(name, config):
  """``[(label, state_fn, train_step_fn(state), batch_spec)]``: every train step of a paper
  config, ``state_fn()`` building the initial state (run under ``jax.eval_shape``)."""
  size, classes = dataset_spec(config)
  rec = _trainer("recognition")
  if name in ("baseline", "explain", "templates"):
    cfg = _trainer("templates").backbone_config(config) if name == "templates" else config
    module = _trainer("explain") if name == "explain" else rec
    return [
      (
        name,
        lambda: module.create_state(cfg, classes, size),
        lambda state: module.make_train_step(cfg),
        _images(cfg.batch_size, size),
      )
    ]
  if name == "fan":
    from jfr.methods.fan import settings

    from jfr.methods.fan import step as fan_step

    ext = settings.extractor_config(config)
    fan = _trainer("fan")
    b, n = config.batch_size, config.aggregator.set_size
    image = jax.ShapeDtypeStruct((b, size, size, 3), np.float32)
    sets = {
      "frames": jax.ShapeDtypeStruct((b, n, size, size, 3), np.float32),
      "mask": jax.ShapeDtypeStruct((b, n), np.bool_),
      "label": jax.ShapeDtypeStruct((b,), np.int32),
      "positive": image,
      "negative": image,
    }

    def aggregator_state(variant):
      cfg = settings.variant_config(config, variant)
      extractor = rec.backbone_variables(rec.create_state(ext, classes, size))
      centers = np.zeros((classes, ext.model.embedding_dim), np.float32)
      initial = fan.initial_variables(cfg, size, shapes_only=True)
      return fan.create_aggregator_state(cfg, extractor, centers, initial, cfg.num_train_steps)

    return [
      (
        "fan/extractor",
        lambda: rec.create_state(ext, classes, size),
        lambda state: rec.make_train_step(ext),
        _images(ext.batch_size, size),
      )
    ] + [
      (
        f"fan/{variant}",
        lambda variant=variant: aggregator_state(variant),
        lambda state, variant=variant: fan_step.make_train_step(
          settings.variant_config(config, variant), variant
        ),
        sets,
      )
      for variant in config.variants[:1]  # the first (full) one: the others drop terms
    ]
  if name == "attributes":
    trainer = _trainer("attributes")
    count = len(config.attributes.names)
    batch = {
      **_images(config.batch_size, size),
      "attributes": jax.ShapeDtypeStruct((config.batch_size, count), np.float32),
    }
    return [
      (
        f"attributes/{mode}",
        lambda mode=mode: trainer.create_state(config, mode, count, classes, size),
        lambda state: trainer.make_train_step(
          config.loss.attribute_weight, config.loss.identity_weight
        ),
        batch,
      )
      for mode in config.variants
    ]
  if name == "interpretable":
    trainer = _trainer("interpretable")
    batch = _images(config.batch_size, config.model.image_size)
    batch["occluded"] = batch["image"]
    return [
      (
        f"interpretable/{variant}",
        lambda variant=variant: trainer.create_state(config, variant, classes),
        lambda state, variant=variant: trainer.make_train_step(config, variant, state.apply_fn),
        batch,
      )
      for variant in config.run_variants
    ]
  raise ValueError(f"name: no paper train steps known for {name!r}")


def lower_step(state_fn, make_step, batch):
  """``pmap(train_step).lower`` on one device with the whole paper batch (abstract inputs)."""
  state = jax.eval_shape(state_fn)
  step = steps.pmap_step(make_step(state), devices=jax.local_devices()[:1], donate=False)
  stack = lambda x: jax.ShapeDtypeStruct((1, *x.shape), x.dtype)  # noqa: E731
  return step.lower(jax.tree.map(stack, state), jax.tree.map(stack, batch)), state


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_train_steps_lower_at_paper_size(name):
  config = _paper(name)
  cases = train_steps(name, config)
  assert cases
  for label, state_fn, make_step, batch in cases:
    lowered, state = lower_step(state_fn, make_step, batch)
    text = lowered.as_text()
    for leaf in jax.tree.leaves(batch):  # the paper-sized image inputs reach the step
      if leaf.ndim >= 4:
        assert "x".join(map(str, leaf.shape)) + "xf32" in text, (label, leaf.shape)
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
    assert params > 1_000_000, (label, params)  # paper-sized networks


def first_batch(name, config, context):
  """The first host batch of the method's own training pipeline (paper config, given data)."""
  if name in ("baseline", "explain", "templates"):
    return next(iter(_trainer("recognition").labelled_image_batches(config, context)(0)))
  if name == "attributes":
    trainer = _trainer("attributes")
    return next(iter(trainer.stage1_batches(config, trainer.attribute_data(config, context))(0)))
  if name == "interpretable":
    return next(iter(_trainer("interpretable").pair_batches(config, context)(0)))
  return None  # fan: stage-2 set batches are not covered here


@pytest.mark.parametrize("name", ("baseline", "attributes", "interpretable"))
def test_pipeline_first_batch_has_the_lowered_structure(name, tiny_data_dir):
  from jfr.context import RunContext

  config = _paper(name)
  spec = train_steps(name, config)[0][3]
  tiny = config.copy_and_resolve_references()
  tiny.dataset.name = "synthetic_faces/tiny"
  tiny.dataset.data_dir = tiny_data_dir
  batch = first_batch(name, tiny, RunContext.from_config(tiny))
  assert sorted(batch) == sorted(spec)
  for key, want in spec.items():
    got = np.asarray(batch[key])
    assert got.shape[0] == want.shape[0] == config.batch_size, key
    assert np.dtype(got.dtype).kind == np.dtype(want.dtype).kind, key
    if got.ndim == 4:  # images: resized to the paper's size they are what was lowered
      resized = jax.image.resize(got[:2], (2, *want.shape[1:]), "bilinear")
      assert resized.shape[1:] == want.shape[1:] and got.shape[-1] == 3, key
      assert np.isfinite(got).all() and -1.0 <= got.min() < got.max() <= 1.0, key
    else:
      assert got.shape[1:] == want.shape[1:], key
