"""The audit log: every marketplace operation and every capability denial, append-only.

``<home>/audit.log`` holds one JSON object per line (JSON Lines), oldest
first. Invariants:

- Lines are only ever appended, never rewritten or removed.
- Each append holds the home's records lock ``records.lock`` (a
  :class:`filelock.FileLock`, shared with the statistics' log so that an
  operation writes both under one acquisition) and writes its whole line in
  one append, so lines from several processes never interleave, on a local
  disk or NFS.
- A line cut short by a crash is never glued to the next entry: an append
  that finds the file not ending in a newline ends the broken line first.
- Readers take no lock and never fail on a damaged line: it is skipped and
  counted in the result's ``notes``.

The log survives a crash of the process (each line is written before
:meth:`AuditLog.append` returns) but is not flushed to the disk on every
line: after a power loss the last lines may be missing (see
docs/decisions/0006-records.md).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from plugmarket._internal.recordfile import (
    SHAPE_ERRORS,
    append_line,
    loads,
    locked_records,
    record_error,
)
from plugmarket.errors import CapabilityDenied, PlugmarketError
from plugmarket.results import AuditEntries, AuditEntry, Denial, PluginChange

__all__ = ["AUDIT_FILE", "AuditLog"]

log = logging.getLogger("plugmarket.records")

AUDIT_FILE = "audit.log"
LINE_FORMAT = 1  # the "v" of each line
_BLOCK = 64 * 1024  # bytes read at a time, from the end


class AuditLog:
    """The audit log of one home.

    Args:
        home: The plugmarket home; the log is ``home/audit.log``.
    """

    def __init__(self, home: Path | str) -> None:
        self.path = Path(home) / AUDIT_FILE

    def __repr__(self) -> str:
        return f"<AuditLog {str(self.path)!r}>"

    @staticmethod
    def entry(
        operation: str,
        subject: str = "",
        result: str = "ok",
        *,
        surface: str = "api",
        plugins: Iterable[PluginChange] = (),
        generation: int | None = None,
        note: str = "",
    ) -> AuditEntry:
        """An entry for an operation done now by this process (see :class:`AuditEntry`)."""
        return AuditEntry(
            operation=operation,
            surface=surface,
            subject=subject,
            plugins=tuple(plugins),
            result=result,
            generation=generation,
            note=note,
        )

    def append(self, entry: AuditEntry) -> None:
        """Add ``entry`` at the end of the log.

        Raises:
            PlugmarketError: the log cannot be written.
        """
        with locked_records(self.path.parent):
            self.append_locked(entry)

    def append_locked(self, entry: AuditEntry) -> None:
        """:meth:`append`, with the home's records lock already held by the caller.

        Raises:
            PlugmarketError: the log cannot be written.
        """
        try:
            append_line(self.path, _dumps({"v": LINE_FORMAT, **entry.to_json()}))
        except OSError as exc:
            raise record_error(self.path, "write", exc) from exc

    def denial(self, denied: CapabilityDenied, *, surface: str = "api") -> AuditEntry:
        """Record a capability denial. Never raises: a log that cannot be written is
        reported through logging, so the plugin still sees the denial itself.

        Returns:
            The entry (written, or not if the log could not be written).
        """
        entry = AuditEntry(
            operation="denied",
            surface=surface,
            subject=denied.plugin_id,
            result=f"error: {denied.message}",
            denial=Denial(
                plugin_id=denied.plugin_id,
                capability=denied.capability,
                operation=denied.operation,
                target=denied.target,
            ),
        )
        try:
            self.append(entry)
        except PlugmarketError as exc:
            log.warning("could not record a capability denial (%s): %s", exc, denied.message)
        return entry

    def sink(self, surface: str = "api") -> Callable[[CapabilityDenied], None]:
        """A callable for the loader's ``audit=`` argument that records each denial."""

        def record(denied: CapabilityDenied) -> None:
            self.denial(denied, surface=surface)

        return record

    def read(self, limit: int | None = 100) -> AuditEntries:
        """The newest entries, newest first.

        Args:
            limit: At most this many entries (None: all of them).

        Returns:
            The entries; ``notes`` says how many damaged lines were skipped.

        Raises:
            PlugmarketError: ``limit`` is negative, or the log exists but
                cannot be read.
        """
        if limit is not None and (type(limit) is not int or limit < 0):
            raise PlugmarketError(
                f"audit limit {limit!r} is not a whole number >= 0",
                hint="Ask for, say, the last 100 entries.",
            )
        entries: list[AuditEntry] = []
        damaged = unfinished = 0
        try:
            with open(self.path, "rb") as f:
                lines = _lines_backwards(f)
                last = next(lines)
                if last.strip():
                    unfinished = 1  # being written now, or cut short by a crash
                for line in lines:
                    if limit is not None and len(entries) >= limit:
                        break
                    if not line.strip():
                        continue
                    entry = _decode_line(line)
                    if entry is None:
                        damaged += 1
                    else:
                        entries.append(entry)
        except FileNotFoundError:
            return AuditEntries()
        except OSError as exc:
            raise record_error(self.path, "read", exc) from exc
        notes = []
        if unfinished:
            notes.append("skipped the unfinished last line (a write in progress or cut short)")
        if damaged:
            notes.append(f"skipped {damaged} damaged line(s) (cut short by a crash?)")
        for note in notes:
            log.warning("%s: %s", self.path, note)
        return AuditEntries(entries, notes=notes)


def _dumps(obj: dict[str, Any]) -> bytes:
    # ASCII only: no byte of a line is ever a newline but the last.
    return (json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _lines_backwards(f: IO[bytes]) -> Iterator[bytes]:
    """The file's lines from the last to the first; the first item is what follows
    the last newline (empty when the file ends with one)."""
    pos = f.seek(0, os.SEEK_END)
    rest = b""
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        pieces = (f.read(step) + rest).split(b"\n")
        rest = pieces[0]
        yield from reversed(pieces[1:])
    yield rest


def _decode_line(line: bytes) -> AuditEntry | None:
    try:
        obj = loads(line)
        if obj["v"] != LINE_FORMAT:
            raise ValueError(f"line format {obj['v']!r}")
        denial = obj["denial"]
        generation = obj["generation"]
        if generation is not None and type(generation) is not int:
            raise ValueError("generation")
        time = datetime.fromisoformat(_text(obj["time"]))
        if time.tzinfo is None:
            raise ValueError("time without a timezone")
        pid = obj["pid"]
        if type(pid) is not int:
            raise ValueError("pid")
        return AuditEntry(
            operation=_text(obj["operation"]),
            surface=_text(obj["surface"]),
            subject=_text(obj["subject"]),
            plugins=tuple(
                PluginChange(
                    id=_text(p["id"]),
                    old_version=_text(p["old"]),
                    new_version=_text(p["new"]),
                    grants=tuple(_text(g) for g in _list(p["grants"])),
                )
                for p in _list(obj["plugins"])
            ),
            result=_text(obj["result"]),
            denial=None
            if denial is None
            else Denial(
                plugin_id=_text(denial["plugin_id"]),
                capability=_text(denial["capability"]),
                operation=_text(denial["operation"]),
                target=_text(denial["target"]),
            ),
            generation=generation,
            note=_text(obj["note"]),
            time=time,
            user=_text(obj["user"]),
            pid=pid,
            host=_text(obj["host"]),
        )
    except SHAPE_ERRORS:
        return None


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"expected text, found {type(value).__name__}")
    return value


def _list(value: object) -> list[Any]:
    if type(value) is not list:
        raise TypeError(f"expected a list, found {type(value).__name__}")
    return value
