"""jfr: face recognition research methods in JAX/Flax.

Importing ``jfr.data`` registers the ``synthetic_faces`` tfds builder.
"""

__version__ = "0.1.0"
