"""Data layer: the `synthetic_faces` tfds builder, real-data adapters, tf.data pipelines.

Importing this package registers the ``synthetic_faces`` builder with tfds, so that
``tfds.load('synthetic_faces/tiny', data_dir=...)`` works after ``import jfr.data``.
"""

from jfr.data import synthetic_faces  # noqa: F401  (registers the builder)
