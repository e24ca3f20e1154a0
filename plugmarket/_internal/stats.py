"""Local statistics: how often each plugin was installed, updated, uninstalled and
loaded in this home, and how long those took.

``<home>/stats.json`` is one compact JSON document, changed under its own
lock by read, change, atomic rename (recordfile.py), so counts from several
processes add up exactly. Statistics are a convenience: the file is not
flushed to the disk on each change, and a damaged file is started again
from nothing, with a warning (docs/decisions/0006-records.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from plugmarket._internal import recordfile
from plugmarket.errors import PlugmarketError
from plugmarket.manifest import validate_id
from plugmarket.results import STAT_EVENTS, PluginStats, StatsTable, Timing

__all__ = ["STATS_FILE", "Stats"]

STATS_FILE = "stats.json"
FORMAT = 1
_COUNTS = {"install": "installs", "update": "updates", "uninstall": "uninstalls", "load": "loads"}


class Stats:
    """The statistics of one home.

    Args:
        home: The plugmarket home; the statistics are ``home/stats.json``.
    """

    def __init__(self, home: Path | str) -> None:
        self.path = Path(home) / STATS_FILE

    def __repr__(self) -> str:
        return f"<Stats {str(self.path)!r}>"

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

        One read and one write of the file under its lock, however many
        plugins a transaction touched; every pair is checked before anything
        is written.

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

    def record_each(
        self, events: Iterable[tuple[str, str, float | None]]
    ) -> dict[str, PluginStats]:
        """Count several ``(plugin id, event, seconds or None)`` events in one write.

        Like :meth:`record_many`, but each event has its own time: a
        transaction's installs and the loads that followed it, recorded
        together (one lock, one read, one write of the file).

        Returns:
            The statistics of each plugin named, after these events.

        Raises:
            PlugmarketError: an id, event or time is not valid, or the file
                cannot be written (then nothing is counted).
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
                raise PlugmarketError(
                    f"a {event} time of {seconds!r} is not a number of seconds >= 0"
                )
        now = datetime.now(UTC)

        def change(table: dict[str, PluginStats]) -> dict[str, PluginStats]:
            for plugin_id, event, seconds in triples:
                old = table.get(plugin_id, PluginStats(plugin_id))
                counted: dict[str, Any] = {_COUNTS[event]: getattr(old, _COUNTS[event]) + 1}
                if seconds is not None:
                    timing = old.times.get(event, Timing()).add(float(seconds))
                    counted["times"] = {**old.times, event: timing}
                table[plugin_id] = replace(old, last_used=now, **counted)
            return table

        if not triples:
            return {}
        # Compact JSON: the file is rewritten on every operation and read by
        # plugmarket only; the C encoder takes a quarter of the indented one's time.
        table = recordfile.update(
            self.path, _decode, _empty, change, _encode, dump=recordfile.dumps_compact
        )
        return {plugin_id: table[plugin_id] for plugin_id, _, _ in triples}

    @overload
    def get(self, plugin_id: None = None) -> StatsTable: ...
    @overload
    def get(self, plugin_id: str) -> PluginStats: ...

    def get(self, plugin_id: str | None = None) -> PluginStats | StatsTable:
        """One plugin's statistics (zeros if it has none), or every plugin's.

        Raises:
            PlugmarketError: the id is not valid, or the file cannot be read.
        """
        if plugin_id is not None:
            validate_id(plugin_id, field_name="plugin id")
        table = recordfile.load(self.path, _decode, _empty)
        if plugin_id is None:
            return StatsTable(table)
        return table.get(plugin_id, PluginStats(plugin_id))


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
