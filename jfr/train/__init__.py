"""jfr.train."""
