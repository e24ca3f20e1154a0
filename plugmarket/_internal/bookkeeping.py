"""The records one :class:`~plugmarket.marketplace.Marketplace` keeps as it works.

:class:`Bookkeeping` writes the audit log entry of each operation (with the
plugins it changed) and of each capability denial, counts installs, updates,
uninstalls and loads in the statistics, and reads the records back for the
facade's record verbs. The record files themselves are those of
:mod:`plugmarket._internal.records`, imported on first use so that making a
``Marketplace`` stays cheap.

Invariants:

- Every operation is audited, whether it succeeds or fails, except one that
  stopped to ask for consent (nothing happened yet). Failing to write the
  audit log is an error.
- Statistics are a convenience: failing to write them, after a committed
  operation, is logged as a warning on the ``plugmarket`` logger, never
  reported as the operation's failure.
- What an operation counts is written when it ends, with its audit line,
  under one acquisition of the home's records lock (two appends); what is
  counted outside an operation (a kernel following the current generation)
  is written at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from plugmarket.errors import ConsentRequired, PlugmarketError
from plugmarket.plan import Plan, PlanItem

__all__ = ["Bookkeeping"]

_log = logging.getLogger("plugmarket")


class Bookkeeping:
    """Audit and statistics writes for one home, on behalf of one surface.

    Args:
        home: The home whose records are written.
        surface: Who is calling, for the audit log (``"api"``, ``"cli"``, ``"magic"``...).
    """

    def __init__(self, home: Path, surface: str) -> None:
        self.home = home
        self.surface = surface
        self.changed: list[PlanItem] = []  # what the operation under way changed, for the audit
        # The statistics of the operation under way, written with its audit line
        # (None: no operation, each is written at once).
        self._counted: list[tuple[str, str, float | None]] | None = None

    @contextmanager
    def operation(
        self, operation: str, subject: str, generation: Callable[[], int | None]
    ) -> Iterator[None]:
        """Record the operation in the audit log, whether it succeeds or fails, with the
        plugins it changed (versions, grants) and the generation it left current; and
        the statistics it counted, in the same write (one lock, two appends).

        Args:
            operation: The verb (``"install"``, ``"rollback"``...).
            subject: What it was asked for (a plugin id, ``"all"``, a path).
            generation: Gives the current generation's number after success, if known.
        """
        # An operation may run others (apply_lock): each writes its own records.
        outer, self.changed = self.changed, []
        outer_counted, self._counted = self._counted, []
        entry = None
        try:
            try:
                yield
            except ConsentRequired:
                raise  # nothing happened yet: the surface asks and calls again
            except PlugmarketError as exc:
                entry = self._entry(operation, subject, f"error: {exc.message}")
                raise
            entry = self._entry(
                operation, subject, "ok", changed=self.changed, generation=generation()
            )
        finally:
            counted, self._counted = self._counted, outer_counted
            self.changed = outer + self.changed  # the enclosing operation changed them too
            self._write(entry, counted)

    def denial(self, denial: Any) -> None:
        """Append a capability denial to the audit log (the live set's audit callback)."""
        from plugmarket._internal.records import AuditLog

        AuditLog(self.home).denial(denial, surface=self.surface)

    def read_audit(self, limit: int) -> Any:
        """The newest ``limit`` entries of the audit log."""
        from plugmarket._internal.records import AuditLog

        return AuditLog(self.home).read(limit)

    def rate(self, plugin_id: str, stars: int, text: str) -> Any:
        """Keep a rating (and review) of ``plugin_id``, and audit it."""
        from plugmarket._internal.records import Reviews

        review = Reviews(self.home).rate(plugin_id, stars, text)
        self._write(self._entry("rate", plugin_id, "ok", note=f"{stars} stars"), ())
        return review

    def reviews(self, plugin_id: str) -> Any:
        """The ratings and reviews kept for ``plugin_id``."""
        from plugmarket._internal.records import Reviews

        return Reviews(self.home).reviews(plugin_id)

    def stats(self, plugin_id: str | None) -> Any:
        """The statistics of one plugin, or of all."""
        from plugmarket._internal.records import Stats

        return Stats(self.home).get(plugin_id)

    def loads(self, plugin_ids: Iterable[str]) -> None:
        """Count a load, with its time, for each of these plugins now live here."""
        from plugmarket import loader

        live = loader.loaded()
        self._count([(pid, "load", live[pid].load_seconds) for pid in plugin_ids if pid in live])

    def transaction(self, plan: Plan, seconds: float) -> None:
        """Count the transaction, and the loads it made live here (written with the
        operation's audit line)."""
        from plugmarket import loader

        events = {"add": "install", "change": "update", "remove": "uninstall"}
        live = loader.loaded()
        each: list[tuple[str, str, float | None]]
        each = [(item.id, events[item.action], seconds) for item in plan.items]
        each += [
            (item.id, "load", live[item.id].load_seconds)
            for item in plan.items
            if item.action != "remove" and item.id in live
        ]
        self._count(each)

    def _count(self, events: list[tuple[str, str, float | None]]) -> None:
        if self._counted is not None:
            self._counted += events
        elif events:
            self._write(None, events)

    def _entry(
        self,
        operation: str,
        subject: str,
        result: str,
        *,
        changed: Sequence[PlanItem] = (),
        generation: int | None = None,
        note: str = "",
    ) -> Any:
        from plugmarket._internal.records import AuditLog
        from plugmarket.results import PluginChange

        plugins = [
            PluginChange(i.id, i.old_version, i.new_version, i.grants if i.new_version else ())
            for i in changed
        ]
        return AuditLog.entry(
            operation,
            subject,
            result,
            surface=self.surface,
            plugins=plugins,
            generation=generation,
            note=note,
        )

    def _write(self, entry: Any, counted: Sequence[tuple[str, str, float | None]]) -> None:
        """Append the audit ``entry`` (if any) and the ``counted`` statistics under one
        acquisition of the records lock.

        Raises:
            PlugmarketError: the audit line cannot be written (statistics only warn).
        """
        from plugmarket._internal import recordfile
        from plugmarket._internal.records import AuditLog, Stats
        from plugmarket._internal.stats import checked

        if entry is None and not counted:
            return
        if entry is None:
            with _only_warn("statistics"), recordfile.locked_records(self.home):
                Stats(self.home).append_locked(checked(counted))
            return
        with recordfile.locked_records(self.home):
            try:
                AuditLog(self.home).append_locked(entry)
            finally:  # a committed transaction is counted even if its audit line fails
                if counted:
                    with _only_warn("statistics"):
                        Stats(self.home).append_locked(checked(counted))


@contextmanager
def _only_warn(what: str) -> Iterator[None]:
    """Statistics are a convenience: failing to write them, after a committed
    operation, is logged instead of reported as the operation's failure."""
    try:
        yield
    except PlugmarketError as exc:
        _log.warning("plugmarket: could not record %s: %s", what, exc)
