"""Identity-specific activation patterns (Ferrari, Berretti, Del Bimbo): Tables I and II on an
IJB-A(-like) protocol. The method is :mod:`jfr.templates`; this package trains the descriptor
network, extracts descriptors and runs the experiment (see :mod:`jfr.methods.templates.run`)."""
