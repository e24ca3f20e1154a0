"""CSV Preview: ``%csv_preview PATH [--rows N] [--delimiter C]``.

Shows the first rows of a CSV file as a :mod:`table_kit` table. Invariants:
the file is read as a stream and reading stops after the rows shown (plus
one, to know whether there are more), so memory does not grow with the
file; the file is opened with the plugin's gated ``open``, so a path outside
the user's ``fs.read`` grant is refused before a byte is read.
"""

from __future__ import annotations

import csv
import shlex
from typing import TYPE_CHECKING

import table_kit

if TYPE_CHECKING:
    from plugmarket.context import PluginContext

try:
    from IPython.core.error import UsageError
except ImportError:  # outside IPython: the same one-line error, without IPython's class
    UsageError = ValueError  # type: ignore[assignment,misc]

DEFAULT_ROWS = 10
MAX_ROWS = 10_000
_SNIFF_BYTES = 64 * 1024  # characters read to guess the delimiter
_DELIMITERS = ",;\t|"
USAGE = "usage: %csv_preview PATH [--rows N] [--delimiter C]"


def parse_args(line: str) -> tuple[str, int, str | None]:
    """Split the magic's line into ``(path, rows, delimiter)``.

    Raises:
        UsageError: the line is not ``PATH [--rows N] [--delimiter C]``.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc}; {USAGE}") from None
    path: str | None = None
    rows = DEFAULT_ROWS
    delimiter: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--rows", "-n", "--delimiter", "-d"):
            if i + 1 >= len(words):
                raise UsageError(f"{word} needs a value; {USAGE}")
            value = words[i + 1]
            if word in ("--rows", "-n"):
                if not value.isdigit() or not 0 < int(value) <= MAX_ROWS:
                    raise UsageError(f"--rows takes a number from 1 to {MAX_ROWS}, not {value!r}")
                rows = int(value)
            else:
                value = "\t" if value in ("\\t", "tab") else value
                if len(value) != 1:
                    raise UsageError(f"--delimiter takes one character, not {value!r}")
                delimiter = value
            i += 2
        elif path is None and not word.startswith("--"):
            path = word
            i += 1
        else:
            raise UsageError(f"unexpected {word!r}; {USAGE}")
    if path is None:
        raise UsageError(USAGE)
    return path, rows, delimiter


def _numeric(text: str) -> bool:
    try:
        float(text.strip().replace(",", "."))  # "2,5" is a number in much of Europe
    except ValueError:
        return False
    return True


def guess_delimiter(sample: str) -> str:
    """The delimiter that splits the sample's lines into the most columns, the same on each.

    Python's ``csv.Sniffer`` prefers ``,`` whenever it is consistent, which
    misreads ``1;2,5;x`` (semicolons between decimal commas); this does not.
    """
    lines = sample.splitlines()
    if len(sample) >= _SNIFF_BYTES:
        lines = lines[:-1]  # the last line may have been cut
    lines = [line for line in lines[:50] if line.strip()]
    best, best_columns = ",", 1
    for delimiter in _DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        if len(counts) == 1 and (columns := counts.pop()) > best_columns:
            best, best_columns = delimiter, columns
    return best


def preview(path: str, rows: int = DEFAULT_ROWS, delimiter: str | None = None) -> table_kit.Table:
    """The first ``rows`` rows of the CSV file at ``path``, as a table.

    The delimiter is guessed from the start of the file unless given; a first
    row without numbers in it is taken as the header.

    Raises:
        UsageError: the file does not exist, is not text, or is not CSV.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if delimiter is None:
                delimiter = guess_delimiter(f.read(_SNIFF_BYTES))
                f.seek(0)
            reader = csv.reader(f, delimiter=delimiter)
            first = next(reader, None)
            if first is None:
                return table_kit.table([], [], caption=f"{path}: empty file")
            header = not any(_numeric(cell) for cell in first)
            columns = first if header else []
            body: list[list[str]] = [] if header else [first]
            more = False
            for row in reader:
                if len(body) == rows:
                    more = True
                    break
                body.append(row)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; is it really a CSV file?") from None
    except csv.Error as exc:
        raise UsageError(f"{path}: not valid CSV ({exc})") from None
    width = max([len(columns), *(len(r) for r in body)])
    columns = list(columns) + [f"column {i + 1}" for i in range(len(columns), width)]
    note = f"{path}: first {len(body)} rows" + (" (more follow)" if more else "")
    return table_kit.table(body, columns, max_rows=rows, caption=note)


def activate(ctx: PluginContext) -> None:
    """Register ``%csv_preview``."""

    def csv_preview(line: str) -> None:
        path, rows, delimiter = parse_args(line)
        ctx.display(preview(path, rows, delimiter))

    ctx.register_magic(csv_preview, "csv_preview")
