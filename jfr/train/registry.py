"""Moved to :mod:`jfr.methods.registry` (kept as a re-export)."""

from jfr.methods.registry import METHODS as TRAINERS  # noqa: F401
from jfr.methods.registry import run  # noqa: F401
