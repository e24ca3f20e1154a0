"""Table Kit: render rows as an HTML table or an aligned text table.

A library plugin: it defines no ``activate``, needs no capability, and other
plugins import it by its top-level name (``import table_kit``) once they
declare ``requires = ["table-kit>=1.0,<2"]``.

Every cell is shown with ``str`` (``None`` as an empty cell) and escaped in
HTML, so a value can never inject markup. Numbers are right-aligned.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Table", "html_table", "table", "text_table"]

DEFAULT_MAX_ROWS = 50
DEFAULT_MAX_WIDTH = 40  # characters of one text-table cell before it is cut


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Table:
    """Rows and column names, shown as HTML in a notebook and as text elsewhere.

    Attributes:
        columns: The column names.
        rows: The rows, each a tuple as long as ``columns``.
        max_rows: How many rows are shown; the rest are counted in a note.
        caption: A line shown above the table (may be empty).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    max_rows: int = DEFAULT_MAX_ROWS
    caption: str = ""

    def _shown(self) -> tuple[tuple[tuple[object, ...], ...], int]:
        shown = self.rows[: max(self.max_rows, 0)]
        return shown, len(self.rows) - len(shown)

    def to_html(self) -> str:
        """The table as an HTML ``<table>``, every cell escaped."""
        shown, hidden = self._shown()
        out = ['<table class="table-kit">']
        if self.caption:
            out.append(f"<caption>{html.escape(self.caption)}</caption>")
        out.append(
            "<thead><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
            + "</tr></thead>"
        )
        out.append("<tbody>")
        for row in shown:
            cells = []
            for value in row:
                style = ' style="text-align: right"' if _is_number(value) else ""
                cells.append(f"<td{style}>{html.escape(_cell(value))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        if hidden:
            out.append(f"<p><em>{hidden} more row{'s' if hidden != 1 else ''} not shown</em></p>")
        return "".join(out)

    def to_text(self, max_width: int = DEFAULT_MAX_WIDTH) -> str:
        """The table as aligned text, cells cut to ``max_width`` characters."""
        shown, hidden = self._shown()

        def cut(text: str) -> str:
            text = text.replace("\n", " ")
            return text if len(text) <= max_width else text[: max_width - 1] + "…"

        header = [cut(c) for c in self.columns]
        body = [[cut(_cell(v)) for v in row] for row in shown]
        widths = [len(h) for h in header]
        for row in body:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
        numeric = [
            bool(shown) and all(_is_number(r[i]) or r[i] is None for r in shown)
            for i in range(len(self.columns))
        ]

        def line(cells: Sequence[str]) -> str:
            parts = [
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(cells, widths, numeric, strict=True)
            ]
            return "  ".join(parts).rstrip()

        lines = [self.caption] if self.caption else []
        lines.append(line(header))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(line(row) for row in body)
        if hidden:
            lines.append(f"({hidden} more row{'s' if hidden != 1 else ''} not shown)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()


def table(
    rows: Iterable[Sequence[object] | Mapping[str, object]],
    columns: Sequence[str] | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    caption: str = "",
) -> Table:
    """Build a :class:`Table`.

    Args:
        rows: Sequences (one value per column) or mappings (column name -> value).
        columns: The column names. Default: the keys of the mappings in first-seen
            order, or ``1, 2, 3, ...`` for sequences.
        max_rows: How many rows to show.
        caption: A line shown above the table.

    Returns:
        The table. Short rows are padded with empty cells.

    Raises:
        ValueError: a row is longer than the columns.
    """
    materialized = list(rows)
    if columns is None:
        names: dict[str, None] = {}
        width = 0
        for row in materialized:
            if isinstance(row, Mapping):
                names.update(dict.fromkeys(str(k) for k in row))
            else:
                width = max(width, len(row))
        columns = list(names) or [str(i + 1) for i in range(width)]
    cols = tuple(str(c) for c in columns)
    out: list[tuple[object, ...]] = []
    for number, row in enumerate(materialized, start=1):
        if isinstance(row, Mapping):
            values = tuple(row.get(c) for c in cols)
        else:
            if len(row) > len(cols):
                raise ValueError(
                    f"row {number} has {len(row)} values but the table has {len(cols)} columns"
                )
            values = tuple(row) + (None,) * (len(cols) - len(row))
        out.append(values)
    return Table(cols, tuple(out), max_rows=max_rows, caption=caption)


def html_table(
    rows: Iterable[Sequence[object] | Mapping[str, object]],
    columns: Sequence[str] | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    caption: str = "",
) -> str:
    """``table(...).to_html()``: the rows as an HTML table (see :func:`table`)."""
    return table(rows, columns, max_rows=max_rows, caption=caption).to_html()


def text_table(
    rows: Iterable[Sequence[object] | Mapping[str, object]],
    columns: Sequence[str] | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    caption: str = "",
    max_width: int = DEFAULT_MAX_WIDTH,
) -> str:
    """``table(...).to_text()``: the rows as aligned text (see :func:`table`)."""
    return table(rows, columns, max_rows=max_rows, caption=caption).to_text(max_width)
