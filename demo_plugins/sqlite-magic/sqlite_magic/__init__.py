"""SQLite Magic: ``%%sql [DB] [--readonly]`` cells and ``%sql QUERY`` lines.

Invariants:

- SQLite opens database files in C, out of sight of plugmarket's gate, so
  this plugin opens the file with its gated ``open`` first (``"ab"`` to
  write, ``"rb"`` for ``--readonly``): a path outside the user's ``fs.write``
  or ``fs.read`` grant is refused before SQLite touches it.
- One connection per database, kept until the plugin is unloaded; the
  in-memory database (no path) lives as long as the plugin.
- Statements run in order; the rows of the last one that returns rows are
  shown as a :mod:`table_kit` table. A failing statement rolls back the
  cell's open transaction and is reported in one line.
"""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import table_kit

if TYPE_CHECKING:
    from plugmarket.context import PluginContext

try:
    from IPython.core.error import UsageError
except ImportError:  # outside IPython
    UsageError = ValueError  # type: ignore[assignment,misc]

MEMORY = ":memory:"
DEFAULT_MAX_ROWS = 100
USAGE = "usage: %%sql [DB_PATH] [--readonly]  (then SQL in the cell); or %sql QUERY"


def split_statements(sql: str) -> list[str]:
    """Split ``sql`` into complete statements, as SQLite itself sees them.

    Raises:
        UsageError: the text ends inside an unfinished statement.
    """
    statements: list[str] = []
    buffer = ""
    for char in sql:
        buffer += char
        # A ';' inside a string or a comment does not end a statement; SQLite knows.
        if char == ";" and sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    rest = buffer.strip()
    if rest:
        if not sqlite3.complete_statement(rest + "\n;"):
            raise UsageError(f"unfinished SQL statement: {rest[:80]!r}")
        statements.append(rest)
    return [s for s in statements if s.strip(" ;\n\t")]


class Databases:
    """The open connections, by path (``:memory:`` for the in-memory one)."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, bool], sqlite3.Connection] = {}
        self.current: tuple[str, bool] = (MEMORY, False)

    def connect(self, path: str, readonly: bool) -> sqlite3.Connection:
        key = (path, readonly)
        conn = self.connections.get(key)
        if conn is None:
            if path == MEMORY:
                conn = sqlite3.connect(MEMORY)
            else:
                file = Path(path).expanduser().absolute()
                try:
                    # The gated open: refused unless the user granted this path.
                    open(file, "rb" if readonly else "ab").close()
                except FileNotFoundError:
                    raise UsageError(f"{path}: no such database file") from None
                except IsADirectoryError:
                    raise UsageError(f"{path} is a folder, not a database file") from None
                uri = file.as_uri() + ("?mode=ro" if readonly else "")
                conn = sqlite3.connect(uri, uri=True)
            self.connections[key] = conn
        self.current = key
        return conn

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()


def run(conn: sqlite3.Connection, sql: str, max_rows: int = DEFAULT_MAX_ROWS) -> object:
    """Run every statement of ``sql``; return a table of the last rows, or a summary line.

    Raises:
        UsageError: a statement fails (the open transaction is rolled back).
    """
    result: object = None
    changed = 0
    for statement in split_statements(sql):
        try:
            cursor = conn.execute(statement)
            if cursor.description is not None:
                columns = [d[0] for d in cursor.description]
                rows = cursor.fetchmany(max_rows + 1)
                result = table_kit.table(rows, columns, max_rows=max_rows)
            elif cursor.rowcount > 0:
                changed += cursor.rowcount
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            raise UsageError(f"SQL error in {statement[:60]!r}: {exc}") from None
    if conn.in_transaction:
        conn.commit()
    if result is None:
        return f"{changed} row{'s' if changed != 1 else ''} changed" if changed else "done"
    return result


def parse_args(line: str) -> tuple[str, bool]:
    """``[DB_PATH] [--readonly]`` -> ``(path, readonly)``.

    Raises:
        UsageError: anything else on the line.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc}; {USAGE}") from None
    readonly = "--readonly" in words
    rest = [w for w in words if w != "--readonly"]
    if len(rest) > 1 or any(w.startswith("-") for w in rest):
        raise UsageError(USAGE)
    return (rest[0] if rest else MEMORY), readonly


def activate(ctx: PluginContext) -> None:
    """Register ``%%sql`` and ``%sql``."""
    databases = Databases()
    ctx.add_cleanup(databases.close)
    limit = ctx.config.get("max_rows", DEFAULT_MAX_ROWS)
    max_rows = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_ROWS

    def show(result: object) -> None:
        if isinstance(result, table_kit.Table):
            ctx.display(result)
        else:
            print(result)

    def sql_cell(line: str, cell: str) -> None:
        path, readonly = parse_args(line)
        show(run(databases.connect(path, readonly), cell, max_rows))

    def sql_line(line: str) -> None:
        if not line.strip():
            raise UsageError(USAGE)
        show(run(databases.connect(*databases.current), line, max_rows))

    ctx.register_magic(sql_cell, "sql", kind="cell")
    ctx.register_magic(sql_line, "sql", kind="line")
