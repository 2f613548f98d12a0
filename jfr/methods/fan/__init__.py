"""Face Aggregation Network (Hörmann et al., ICIP 2021): ``configs/fan.py``; modes in :mod:`.run`."""
