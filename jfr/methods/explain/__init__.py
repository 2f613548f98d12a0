"""Explainable face recognition (Xu, Lu, Ebrahimi): joint recognition + reconstruction
training (``trainer``), the Table I analog and the saliency experiments (``evaluate``),
tables and figures (``report``), modes (``run``); see :mod:`jfr.methods.explain.run`."""
