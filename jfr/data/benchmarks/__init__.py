"""Readers of the published face-recognition benchmark files (no model code here).

| module | what it reads |
| --- | --- |
| :mod:`jfr.data.benchmarks.verification_bin` | insightface verification ``.bin`` sets (restricted unpickler) |
| :mod:`jfr.data.benchmarks.lfw` | LFW ``pairs.txt`` / ``pairsDevTrain.txt`` / ``pairsDevTest.txt``, the ``lfw/`` folder, 5-point files |
| :mod:`jfr.data.benchmarks.ytf` | YouTube Faces ``splits.txt`` and ``aligned_images_DB/`` |
| :mod:`jfr.data.benchmarks.ijb` | IJB-B / IJB-C in insightface's layout (``meta/``, ``loose_crop/``) |

The evaluators built on them are in :mod:`jfr.eval.benchmarks`.
"""
