"""Render rows as an aligned text table, Markdown, CSV or JSON: the formats the CLI prints."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from zoo.errors import ZooError

FORMATS = ("table", "markdown", "csv", "json")
BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ZooError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def format_bytes(count: int) -> str:
    """Bytes in binary units, as memory is sized: 97,517,568 -> '93.0 MiB'."""
    value, unit = float(count), 0
    while value >= 1024 and unit < len(BINARY_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {BINARY_UNITS[unit]}"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table",
           numeric: Sequence[bool] | None = None) -> str:
    """`numeric[i]` right-aligns column i (default: columns whose values are all numbers)."""
    if fmt == "json":
        return json.dumps([dict(zip(headers, row)) for row in rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    if numeric is None:
        numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows) and bool(rows)
                   for i in range(len(headers))]
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric)]
        return ("| " + " | ".join(parts) + " |") if fmt == "markdown" else "  ".join(parts).rstrip()

    if fmt == "markdown":
        rule = "|" + "|".join(("-" * (w + 1) + ":") if right else ("-" * (w + 2)) for w, right in zip(widths, numeric)) + "|"
    elif fmt == "table":
        rule = "  ".join("-" * w for w in widths)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])
