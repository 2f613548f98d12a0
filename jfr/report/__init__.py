"""The report layer: figures in one style, Markdown tables, results files, a phase timer.

| module | names |
| --- | --- |
| :mod:`jfr.report.figures` | ``save_figure``, ``new_figure``, ``image_grid``, ``saliency_overlay``, ``show_image``, ``roc_figure``, ``cmc_figure``, ``curves_figure`` |
| :mod:`jfr.report.tables` | ``markdown_table``, ``percent`` |
| :mod:`jfr.report.results` | ``write_results``, ``write_json`` |
| :mod:`jfr.report.timer` | ``PhaseTimer`` |
| :mod:`jfr.report.intervals` | ``bootstrap``, ``paired_difference``, ``mean_interval``, ``paired_mean_difference``, ``with_ci95``, ``comparison``, ``comparisons_table``, ``format_interval`` |
"""

from jfr.report.figures import (  # noqa: F401
  cmc_figure,
  curves_figure,
  image_grid,
  new_figure,
  roc_figure,
  saliency_overlay,
  save_figure,
  show_image,
)
from jfr.report.results import write_json, write_results  # noqa: F401
from jfr.report.tables import markdown_table, percent  # noqa: F401
from jfr.report.timer import PhaseTimer  # noqa: F401
