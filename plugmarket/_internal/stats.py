"""Local statistics: how often each plugin was installed, updated, uninstalled and
loaded in this home, and how long those took.

Two files in the home, so that counting an event is one append:

- ``stats.log``, JSON Lines: a first line naming the log (``{"v": 1, "log":
  "<id>"}``), then one line per write, ``{"at": "<UTC time>", "events":
  [[plugin id, event, seconds or null], ...]}``. Appends hold the home's
  records lock (``records.lock``, shared with the audit log, so an operation
  writes its audit line and its statistics under one acquisition) and write
  a whole line at once; a line cut short by a crash is skipped.
- ``stats.json``, the table the log is folded into once it passes
  :data:`COMPACT_AT` bytes: the counts, plus which log and how many of its
  bytes are already counted (``"log": {"id": ..., "upto": ...}``). Folding
  writes the table (atomic rename), then replaces the log with a new,
  empty one under a new id; a crash in between leaves the table naming the
  old log, whose counted bytes readers then skip, so nothing counts twice.

Readers take no lock: they read the log, then the table. A table that
names the log read says how much of it it holds; one that names another
holds none of it, unless folds ended between the two reads, and then the
log is another one by now: the reader reads its first line again and, if
so, reads again (after three tries, under the lock). Statistics are a
convenience: nothing is flushed to the disk, and a damaged table or log is
started again from nothing, with a warning, the old one moved aside to
``<file>.damaged``
(docs/decisions/0006-records.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from plugmarket._internal import recordfile
from plugmarket.errors import PlugmarketError
from plugmarket.manifest import validate_id
from plugmarket.results import STAT_EVENTS, PluginStats, StatsTable, Timing

__all__ = ["COMPACT_AT", "STATS_FILE", "STATS_LOG", "Event", "Stats"]

log = logging.getLogger("plugmarket.records")

STATS_FILE = "stats.json"
STATS_LOG = "stats.log"
FORMAT = 1  # the table's "format", and the log's "v"
COMPACT_AT = 256 * 1024  # bytes of log folded into the table (about 2,500 writes)
_TRIES = 3  # lock-free reads before a reader that keeps meeting folds takes the lock
_folding = threading.local()  # .now: this thread is folding (the records lock is re-entrant)
_COUNTS = {"install": "installs", "update": "updates", "uninstall": "uninstalls", "load": "loads"}

Event = tuple[str, str, "float | None"]  # (plugin id, event, seconds or None)


class Stats:
    """The statistics of one home.

    Args:
        home: The plugmarket home (``home/stats.log`` and ``home/stats.json``).
    """

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)
        self.path = self.home / STATS_FILE
        self.log_path = self.home / STATS_LOG

    def __repr__(self) -> str:
        return f"<Stats {str(self.home)!r}>"

    def record(self, plugin_id: str, event: str, seconds: float | None = None) -> PluginStats:
        """Count one ``event`` for a plugin, and how long it took if known.

        Args:
            plugin_id: The plugin.
            event: ``"install"``, ``"update"``, ``"uninstall"`` or ``"load"``.
            seconds: How long it took (a load's time, a transaction's time).

        Returns:
            The plugin's statistics after this event.

        Raises:
            PlugmarketError: the id, event or time is not valid, or the file
                cannot be written.
        """
        return self.record_many([(plugin_id, event)], seconds=seconds)[plugin_id]

    def record_many(
        self, events: Iterable[tuple[str, str]], seconds: float | None = None
    ) -> dict[str, PluginStats]:
        """Count several ``(plugin id, event)`` pairs (one transaction's) in one write.

        Args:
            events: ``(plugin_id, event)`` pairs, events as in :meth:`record`.
            seconds: How long it took, counted for each pair.

        Returns:
            The statistics of each plugin named, after these events.

        Raises:
            PlugmarketError: an id, event or the time is not valid, or the file
                cannot be written (then nothing is counted).
        """
        return self.record_each((plugin_id, event, seconds) for plugin_id, event in events)

    def record_each(self, events: Iterable[Event]) -> dict[str, PluginStats]:
        """Count several ``(plugin id, event, seconds or None)`` events in one write.

        Like :meth:`record_many`, but each event has its own time: a
        transaction's installs and the loads that followed it, recorded
        together. Every event is checked before anything is written.

        Returns:
            The statistics of each plugin named, after these events.

        Raises:
            PlugmarketError: an id, event or time is not valid, or the log
                cannot be written (then nothing is counted); or the files
                cannot be read after (then the events are counted).
        """
        triples = checked(events)
        if not triples:
            return {}
        with recordfile.locked_records(self.home):
            self.append_locked(triples)
            table = self._read(repair=True)
        return {plugin_id: table[plugin_id] for plugin_id, _, _ in triples}

    def append_locked(self, events: Sequence[Event]) -> None:
        """Append ``events`` (already :func:`checked`) as one line, with the home's
        records lock held by the caller; fold the log into the table once it is long.

        Raises:
            PlugmarketError: the log cannot be written.
        """
        if not events:
            return
        line = _line({"at": datetime.now(UTC).isoformat(), "events": [list(e) for e in events]})
        try:
            with open(self.log_path, "a+b", buffering=0) as f:
                size = f.seek(0, os.SEEK_END)
                damaged = size > 0 and _header_id(os.pread(f.fileno(), 256, 0)) is None
                if not damaged:  # a new log starts with the line naming it
                    size = recordfile.append_to(f, line if size else _header() + line)
            if damaged:  # its first line does not name it: start again
                self._damaged(self.log_path, "its first line does not name the log", True)
                size = recordfile.append_line(self.log_path, _header() + line)
        except OSError as exc:
            raise recordfile.record_error(self.log_path, "write", exc) from exc
        if size > COMPACT_AT and not getattr(_folding, "now", False):
            try:
                self._fold()
            except PlugmarketError as exc:  # the events are counted: the next write folds
                log.warning("could not fold %s into %s: %s", self.log_path, self.path, exc)

    @overload
    def get(self, plugin_id: None = None) -> StatsTable: ...
    @overload
    def get(self, plugin_id: str) -> PluginStats: ...

    def get(self, plugin_id: str | None = None) -> PluginStats | StatsTable:
        """One plugin's statistics (zeros if it has none), or every plugin's.

        Raises:
            PlugmarketError: the id is not valid, or a file cannot be read.
        """
        if plugin_id is not None:
            validate_id(plugin_id, field_name="plugin id")
        table = self._read(repair=False)
        if plugin_id is None:
            return StatsTable(table)
        return table.get(plugin_id, PluginStats(plugin_id))

    # --- the two files ---------------------------------------------------------------

    def _read(self, *, repair: bool) -> dict[str, PluginStats]:
        """The table with the log folded in. ``repair`` (records lock held): move a
        damaged table or log aside and remove a crashed writer's temporary files."""
        if repair:
            _remove_leftovers(self.home)
            return self._read_once(self._log_bytes(), repair=True)[0]
        table: dict[str, PluginStats] = {}
        for _ in range(_TRIES):
            log_bytes = self._log_bytes()  # first: see the module's docstring
            table, named = self._read_once(log_bytes, repair=False)
            read_id = _header_id(log_bytes or b"")
            # A table that names the log read says how much of it it holds. Any other
            # holds none of it, unless a fold of that log ended before the table was
            # read; then the log is another one by now: read again.
            if named == read_id or _log_id(self.log_path) == read_id:
                return table
        try:
            with recordfile.locked_records(self.home):  # folds come every ~2,500 writes
                return self._read_once(self._log_bytes(), repair=False)[0]
        except PlugmarketError:  # a read-only home: nobody folds it either
            return table

    def _log_bytes(self) -> bytes | None:
        try:
            return self.log_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise recordfile.record_error(self.log_path, "read", exc) from exc

    def _read_once(
        self, log_bytes: bytes | None, *, repair: bool
    ) -> tuple[dict[str, PluginStats], str | None]:
        """The table with ``log_bytes`` folded in, and the log the table names."""
        table, counted, problem = _load_table(self.path)
        if problem:
            self._damaged(self.path, problem, repair)
        events, problem = _parse_log(log_bytes, counted)
        if problem:
            self._damaged(self.log_path, problem, repair)
        return _fold(table, events), None if counted is None else counted[0]

    def _damaged(self, path: Path, problem: str, repair: bool) -> None:
        if not repair:
            log.warning("%s is damaged (%s); reading it as empty", path, problem)
            return
        aside = path.with_name(path.name + ".damaged")
        try:
            os.replace(path, aside)
        except OSError as exc:
            raise recordfile.record_error(path, "move aside", exc) from exc
        log.warning("%s was damaged (%s); started it again, old copy: %s", path, problem, aside)

    def _fold(self) -> None:
        """Fold the log into the table, then start a new log (records lock held)."""
        _folding.now = True  # an append nested in it (see below) does not fold again
        try:
            self._fold_now()
        finally:
            _folding.now = False

    def _fold_now(self) -> None:
        _remove_leftovers(self.home)
        log_bytes = self._log_bytes() or b""
        log_id = _header_id(log_bytes)
        table = self._read_once(log_bytes, repair=True)[0]
        encoded = _encode(table)
        if log_id is not None:
            encoded["log"] = {"id": log_id, "upto": len(log_bytes)}
        recordfile.write_atomic(self.path, recordfile.dumps_compact(encoded), fsync=False)
        # A line appended meanwhile by this thread (the lock is re-entrant: a denial
        # audited from a logging handler) is not in the table: keep the log, which the
        # table names up to where it was read; the next write folds again.
        if log_id is None or self.log_path.stat().st_size == len(log_bytes):
            recordfile.write_atomic(self.log_path, _header(), fsync=False)


def checked(events: Iterable[Event]) -> list[Event]:
    """``events`` as a list, each checked.

    Raises:
        PlugmarketError: an id, event or time is not valid.
    """
    triples = list(events)
    for plugin_id, event, seconds in triples:
        validate_id(plugin_id, field_name="plugin id")
        if event not in _COUNTS:
            raise PlugmarketError(
                f"statistics event {event!r} is not one of {', '.join(STAT_EVENTS)}",
            )
        if seconds is not None and (
            type(seconds) not in (int, float) or not math.isfinite(seconds) or seconds < 0
        ):
            raise PlugmarketError(f"a {event} time of {seconds!r} is not a number of seconds >= 0")
    return triples


def _line(obj: dict[str, Any]) -> bytes:
    # ASCII only: no byte of a line is ever a newline but the last.
    return (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _header() -> bytes:
    """The first line of a new log, naming it."""
    return _line({"v": FORMAT, "log": secrets.token_hex(8)})


def _log_id(path: Path) -> str | None:
    """The id the log's first line names (None: no log, or a damaged first line)."""
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise recordfile.record_error(path, "read", exc) from exc
    return _header_id(first)


def _header_id(data: bytes) -> str | None:
    """The id a log's first line names (``data`` starts with it), or None."""
    try:
        obj = recordfile.loads(data.partition(b"\n")[0])
        if type(obj["v"]) is not int or obj["v"] != FORMAT:
            return None
        if type(obj["log"]) is not str or not obj["log"]:
            return None
        return str(obj["log"])
    except recordfile.SHAPE_ERRORS:
        return None


def _load_table(path: Path) -> tuple[dict[str, PluginStats], tuple[str, int] | None, str]:
    """The table, the part of a log already in it (id, bytes), and what was wrong."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, None, ""
    except OSError as exc:
        raise recordfile.record_error(path, "read", exc) from exc
    try:
        obj = recordfile.loads(data)
        table = _decode(obj)
        marker = obj.get("log")
        if marker is None:
            return table, None, ""
        log_id, upto = marker["id"], marker["upto"]
        if type(log_id) is not str or type(upto) is not int or upto < 0:
            raise ValueError("log")
        return table, (log_id, upto), ""
    except recordfile.SHAPE_ERRORS as exc:
        return {}, None, f"{type(exc).__name__}: {exc}"


def _parse_log(
    data: bytes | None, counted: tuple[str, int] | None
) -> tuple[list[tuple[datetime, list[Event]]], str]:
    """The log's writes not yet in the table, and what was wrong with the log ("" if nothing).

    Damaged lines (a write cut short) are skipped with a warning; a damaged
    first line makes the whole log unreadable."""
    if not data or b"\n" not in data:  # none yet, or its first line is being written
        return [], ""
    first, _, _ = data.partition(b"\n")
    log_id = _header_id(first)
    if log_id is None:
        return [], "its first line does not name the log"
    start = len(first) + 1
    if counted is not None and counted[0] == log_id:
        start = max(start, counted[1])
    writes = []
    skipped = 0
    # What follows the last newline is a write under way (or one a crash cut short,
    # which the next write ends): not counted, and not worth a warning.
    for line in data[start:].split(b"\n")[:-1]:
        if not line:
            continue
        try:
            writes.append(_decode_write(line))
        except recordfile.SHAPE_ERRORS:
            skipped += 1
    if skipped:
        log.warning("%s: skipped %d damaged line(s)", STATS_LOG, skipped)
    return writes, ""


def _decode_write(line: bytes) -> tuple[datetime, list[Event]]:
    obj = recordfile.loads(line)
    at = _time(obj["at"])
    events: list[Event] = []
    for plugin_id, event, seconds in obj["events"]:
        validate_id(plugin_id)
        _known_event(event)
        events.append((plugin_id, event, None if seconds is None else _seconds(seconds)))
    return at, events


def _fold(
    table: dict[str, PluginStats], writes: list[tuple[datetime, list[Event]]]
) -> dict[str, PluginStats]:
    for at, events in writes:
        for plugin_id, event, seconds in events:
            old = table.get(plugin_id, PluginStats(plugin_id))
            counted: dict[str, Any] = {_COUNTS[event]: getattr(old, _COUNTS[event]) + 1}
            if seconds is not None:
                counted["times"] = {**old.times, event: old.times.get(event, Timing()).add(seconds)}
            last = at if old.last_used is None else max(old.last_used, at)
            table[plugin_id] = replace(old, last_used=last, **counted)
    return table


def _remove_leftovers(home: Path) -> None:
    """Temporary files a crashed fold left (the caller holds the records lock)."""
    for name in (STATS_FILE, STATS_LOG):
        for tmp in home.glob(f".{name}.tmp-*"):
            tmp.unlink(missing_ok=True)


def _empty() -> dict[str, PluginStats]:
    return {}


def _encode(table: dict[str, PluginStats]) -> dict[str, Any]:
    plugins = {}
    for pid, s in sorted(table.items()):
        data = s.to_json()
        del data["plugin_id"]
        plugins[pid] = data
    return {"format": FORMAT, "plugins": plugins}


def _decode(obj: Any) -> dict[str, PluginStats]:
    if obj["format"] != FORMAT:
        raise ValueError(f"format {obj['format']!r}")
    table = {}
    for pid, data in obj["plugins"].items():
        validate_id(pid)
        last = data["last_used"]
        table[pid] = PluginStats(
            plugin_id=pid,
            installs=_count(data["installs"]),
            updates=_count(data["updates"]),
            uninstalls=_count(data["uninstalls"]),
            loads=_count(data["loads"]),
            times={event: _timing(t) for event, t in data["times"].items() if _known_event(event)},
            last_used=None if last is None else _time(last),
        )
    return table


def _known_event(event: str) -> bool:
    if event not in _COUNTS:
        raise ValueError(f"unknown event {event!r}")
    return True


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"count {value!r}")
    return value


def _seconds(value: object) -> float:
    if type(value) not in (int, float) or not 0 <= value < math.inf:  # type: ignore[operator]
        raise ValueError(f"seconds {value!r}")
    return float(value)  # type: ignore[arg-type]


def _timing(data: Any) -> Timing:
    count = _count(data["count"])
    last, best = data["last"], data["best"]
    return Timing(
        count=count,
        total=_seconds(data["total"]),
        last=None if last is None else _seconds(last),
        best=None if best is None else _seconds(best),
    )


def _time(value: object) -> datetime:
    if type(value) is not str:
        raise TypeError("time")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("time without a timezone")
    return parsed
