"""Markdown tables: one formatter for every results table of jfr."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence


def format_value(value: Any) -> str:
  """Floats with 4 decimals, everything else as ``str``; ``None`` as an empty cell."""
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.4f}"
  return str(value)


def markdown_table(
  rows: Sequence[Mapping[str, Any]],
  columns: Sequence[str],
  *,
  headers: Sequence[str] | None = None,
  formats: Mapping[str, Callable[[Any], str]] | None = None,
) -> str:
  """A Markdown table of ``rows`` (dicts) with the given column keys.

  Args:
    rows: one dict per row; a missing key is an empty cell.
    columns: the keys to show, in order.
    headers: column titles (default: the keys).
    formats: key -> formatter for that column (default :func:`format_value`).
  """
  if headers is not None and len(headers) != len(columns):
    raise ValueError(f"headers: expected {len(columns)} titles, got {len(headers)}")
  formats = formats or {}
  titles = list(headers) if headers is not None else list(columns)
  lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    cells = [formats.get(c, format_value)(row.get(c)) for c in columns]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def percent(x: float | None, digits: int = 1) -> str:
  """``0.1234 -> '12.3'`` (empty for ``None``)."""
  return "" if x is None else f"{100.0 * x:.{digits}f}"
