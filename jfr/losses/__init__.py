"""jfr.losses."""
