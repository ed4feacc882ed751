"""Aligned plain-text tables for the summaries commands print.

Column widths come from the cells themselves, so no value, however long, runs into its
neighbour; numbers are right-aligned (their digits line up under the header's last letter),
text is left-aligned, and columns are two spaces apart. Output is plain text: it reads the
same in a terminal, a log file and a CI job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number
from typing import Any

__all__ = ["MISSING", "format_table", "format_value"]

# Shown for a metric that was not computed (None or NaN), never an empty cell: an empty cell
# would shift a reader's eye to the next column.
MISSING = "—"
_GAP = "  "


def format_value(value: Any, digits: int = 4) -> str:
    """A cell's text: floats to ``digits`` significant digits (whole numbers from ``10**digits``
    up), ``None``/NaN as :data:`MISSING`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # Large values whole, with thousands separators: "12,346", not "1.235e+04".
        return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    indent: int = 0,
    title: str | None = None,
    digits: int = 4,
) -> str:
    """Rows under a header, each column as wide as its widest cell.

    Parameters
    ----------
    header
        Column names.
    rows
        One sequence of cell values per row, as long as ``header``; numbers are formatted with
        :func:`format_value` and right-aligned, anything else is left-aligned text. A column
        whose cells are all numbers (or missing) is right-aligned, header included.
    indent
        Spaces before every line.
    title
        An optional line above the header (not indented).
    digits
        Significant digits of floats.

    Returns
    -------
    str
        The table, lines joined by newlines, without a trailing newline.
    """
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a table row has {len(row)} cells for {len(header)} columns: {row!r}")
    cells = [[format_value(v, digits) for v in row] for row in rows]
    numeric = [
        bool(rows) and all(_is_number(r[c]) or cells[i][c] == MISSING for i, r in enumerate(rows))
        for c in range(len(header))
    ]
    widths = [max([len(h), *(len(r[c]) for r in cells)]) for c, h in enumerate(header)]

    def line(texts: Sequence[str]) -> str:
        parts = [t.rjust(w) if num else t.ljust(w) for t, w, num in zip(texts, widths, numeric, strict=True)]
        return (" " * indent + _GAP.join(parts)).rstrip()

    lines = [title] if title else []
    lines.append(line(list(header)))
    lines.extend(line(r) for r in cells)
    return "\n".join(lines)
