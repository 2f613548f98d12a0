"""Use a trained run on your own faces (``python -m jfr.infer COMMAND --workdir=RUN``).

Modules: :mod:`.inputs` (files, folders, lists, landmarks, alignment, crop policy),
:mod:`.loading` (the run's model and which command it supports), :mod:`.thresholds` (the
``eval/thresholds.json`` contract), :mod:`.recognize` (embed, verify, search),
:mod:`.explain`, :mod:`.aggregate` (FAN), :mod:`.face_maps` (attributes, filters),
:mod:`.templates`, :mod:`.export`, :mod:`.commands` (each command writing its outputs) and
``__main__`` (the absl entry).
"""
