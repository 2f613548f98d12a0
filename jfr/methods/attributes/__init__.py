"""Attribute-enhanced face identification (Taherkhani, Nasrabadi, Dawson); see :mod:`.run`."""
