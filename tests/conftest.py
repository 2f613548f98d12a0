"""Shared pytest set-up: quiet TF, CPU only, several fake devices for pmap tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Four fake CPU devices so that pmap / sharding tests run on any machine. Must be
# set before jax is imported anywhere.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
  ).strip()

import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], "GPU")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """A tfds data_dir with `synthetic_faces/tiny` prepared once for the whole session."""
  import tensorflow_datasets as tfds
  import jfr.data  # noqa: F401  (registers the builder)

  data_dir = tmp_path_factory.mktemp("tfds")
  tfds.builder("synthetic_faces/tiny", data_dir=str(data_dir)).download_and_prepare()
  return str(data_dir)
