"""jfr.explain."""
