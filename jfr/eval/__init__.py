"""jfr.eval."""
