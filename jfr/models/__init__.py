"""jfr.models."""
