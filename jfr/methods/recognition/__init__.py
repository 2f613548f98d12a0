"""Plain face recognition: backbone + margin head (``configs/baseline.py``)."""
