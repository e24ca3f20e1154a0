"""CSV Preview 0.9.0: ``%csv_preview PATH [ROWS]``.

Yanked: it reads the whole file before showing the first rows, so a large
CSV can exhaust the kernel's memory. 1.0.0 reads only the rows it shows.
Kept in the registry so that lockfiles naming it still resolve.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import table_kit

if TYPE_CHECKING:
    from plugmarket.context import PluginContext


def preview(path: str, rows: int = 10) -> table_kit.Table:
    """The first ``rows`` rows of the CSV file at ``path`` (the first row is the header)."""
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()  # the whole file: the reason this version was yanked
    records = list(csv.reader(io.StringIO(text)))
    if not records:
        return table_kit.table([], [])
    return table_kit.table(records[1 : rows + 1], records[0], max_rows=rows)


def activate(ctx: PluginContext) -> None:
    """Register ``%csv_preview``."""

    def csv_preview(line: str) -> None:
        path, _, rows = line.strip().partition(" ")
        ctx.display(preview(path, int(rows) if rows.strip() else 10))

    ctx.register_magic(csv_preview, "csv_preview")
