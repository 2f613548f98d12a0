"""Interpretable face recognition (Yin et al., ICCV 2019): SAD / FAD on a hypercolumn CASIA-Net
(``configs/interpretable.py``). :mod:`~jfr.methods.interpretable.run` is the entry point."""
