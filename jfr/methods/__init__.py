"""One package per method: ``jfr.methods.<name>`` with ``trainer``, ``evaluate``, ``report``
and ``run`` (the modes; the only module :mod:`jfr.methods.registry` names)."""
