"""The standard face-recognition benchmarks as evaluators (``jfr.eval.registry`` names them).

| type | module | data |
| --- | --- | --- |
| ``insightface_bin`` | :mod:`jfr.eval.benchmarks.verification` | a ``.bin`` file or a folder of them |
| ``lfw`` | :mod:`jfr.eval.benchmarks.lfw` | a folder with ``lfw/`` and the pair lists |
| ``ytf`` | :mod:`jfr.eval.benchmarks.ytf` | a folder with ``splits.txt`` and ``aligned_images_DB/`` |
| ``ijb`` | :mod:`jfr.eval.benchmarks.ijb` | insightface's ``IJBB`` / ``IJBC`` folder |
| ``ijba`` | :mod:`jfr.eval.benchmarks.ijba` | the IJB-A protocol folders and images |

Each takes ``settings['data']`` (the path), ``flip``, ``batch_size``, optional ``cache``
(path prefix of the embedding cache, e.g. ``<workdir>/cache/<benchmark>_<step>``) and
``progress`` (a progress-bar factory, :mod:`jfr.eval.benchmarks.streaming`); ``context`` is
None. Results carry ``_markdown`` (the report) and ``_roc`` / ``_cmc`` curves for figures.
"""
