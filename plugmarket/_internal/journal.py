"""The write-ahead journal of the installer's transactions, and fault injection.

``<home>/journal.json`` exists exactly while a transaction is under way. It
is written (in place, under the home lock) before the transaction writes
anything else, and it is durable (the file and the home fsynced side by side:
one wait for the disk, not two) before anything is renamed into place. A
journal cut short by a power cut is a journal that cannot be read, which
recovery handles (below).
It names the transaction (a random id), the operation, the old and new
generation numbers, the store entries the transaction creates (those absent
when it began), the step it began with, and who runs it (pid, host). It is
written once and removed when the transaction commits.

Recovery (``Installer`` construction) reads it: ``current`` decides the
outcome, because switching ``current`` is the single atomic commit point.

- ``current`` is the new generation: finish (prune old generations, collect
  unreferenced store entries), then remove the journal.
- otherwise: undo (remove the new generation's file and every store entry
  the transaction created), then remove the journal.

Either way the home is exactly the old generation or the new one. A journal
that cannot be read at all is handled the same way without its list: every
generation newer than ``current`` is removed and unreferenced entries are
collected, which is correct because the current generation is always the
newest.

Fault injection: ``PLUGMARKET_FAULT=<step>`` (or ``<step>,<step>``) makes the
process SIGKILL itself when it reaches that step, so tests can stop a
transaction at every point; see docs/decisions/0008-transactions.md for the
list of steps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plugmarket._internal.durable import sync_all

__all__ = [
    "FAULT_ENV",
    "Faults",
    "Journal",
    "commit_temp",
    "read",
    "remove",
    "write",
    "write_temp",
]

FAULT_ENV = "PLUGMARKET_FAULT"
FORMAT = 1
NAME = "journal.json"


@dataclass(frozen=True)
class Journal:
    """One transaction's intent and progress.

    Attributes:
        txn: A random id for the transaction.
        op: What it does (``"install"``, ``"update"``, ``"rollback"``, ``"gc"``...).
        old: The generation current when it began.
        new: The generation it creates (``old`` for a garbage collection).
        created: The store entries it creates (absent when it began).
        step: The step it began with (for messages; recovery never needs it).
        pid: The process running it.
        host: The machine running it.
        started: When it began (UTC, ISO 8601).
    """

    txn: str
    op: str
    old: int
    new: int
    created: tuple[str, ...] = ()
    step: str = "begun"
    pid: int = 0
    host: str = ""
    started: str = ""

    @classmethod
    def begin(cls, op: str, old: int, new: int, created: tuple[str, ...] = ()) -> Journal:
        return cls(
            txn=os.urandom(8).hex(),
            op=op,
            old=old,
            new=new,
            created=created,
            pid=os.getpid(),
            host=socket.gethostname(),
            started=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def at(self, step: str) -> Journal:
        return replace(self, step=step)

    def describe(self) -> str:
        """One line for messages: what was interrupted, and where."""
        change = f"generation {self.old}" if self.new == self.old else f"{self.old} -> {self.new}"
        return (
            f"{self.op} ({change}) by pid {self.pid} on {self.host or 'an unknown host'}, "
            f"begun {self.started or 'at an unknown time'} at step {self.step!r}"
        )


def path(home: Path) -> Path:
    return home / NAME


def write(home: Path, journal: Journal, *, fault: Faults | None = None, durable: bool) -> None:
    """Write the journal, ``durable`` (fsynced with its folder) or not.

    Garbage collection writes its journal durably; a transaction writes it
    with :func:`write_temp` and flushes it in its commit's batch (see
    :meth:`plugmarket.installer.Installer._commit`).

    Raises:
        OSError: the home cannot be written.
    """
    write_temp(home, journal)
    if durable:
        commit_temp(home, fault=fault)


def write_temp(home: Path, journal: Journal) -> None:
    """The journal, written but not fsynced.

    From here on :func:`pending` is true, so a process killed at any later
    point leaves a journal for recovery (the page cache outlives a killed
    process); a transaction flushes it in its commit's batch.

    Raises:
        OSError: the home cannot be written.
    """
    path(home).write_bytes(_encode(journal))


def commit_temp(home: Path, *, fault: Faults | None = None) -> None:
    """Make a journal written by :func:`write_temp` durable: fsync it and the home, together.

    No rename: a journal is only written by the lock holder, when none is
    pending, so it needs no temporary name; the two fsyncs need no order
    between them, only both to have returned.

    Raises:
        OSError: the home cannot be written.
    """
    if fault is not None:
        fault("journal-temp-written")
    sync_all([path(home)], [home])


def _encode(journal: Journal) -> bytes:
    data = asdict(journal)
    data["format"] = FORMAT
    data["created"] = list(journal.created)
    return json.dumps(data, sort_keys=True).encode() + b"\n"


def read(home: Path) -> Journal | None:
    """The journal, or None if there is none.

    Raises:
        ValueError: there is a journal, but it cannot be decoded.
        OSError: it cannot be read.
    """
    try:
        raw = path(home).read_bytes()
    except FileNotFoundError:
        return None
    obj: Any = json.loads(raw)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError("unknown journal format")
    created = obj["created"]
    if not isinstance(created, list) or not all(isinstance(c, str) for c in created):
        raise ValueError("'created' is not a list of store entries")
    for key in ("old", "new", "pid"):
        if type(obj[key]) is not int:
            raise ValueError(f"{key!r} is not a whole number")
    for key in ("txn", "op", "step", "host", "started"):
        if not isinstance(obj[key], str):
            raise ValueError(f"{key!r} is not text")
    return Journal(
        txn=obj["txn"],
        op=obj["op"],
        old=obj["old"],
        new=obj["new"],
        created=tuple(created),
        step=obj["step"],
        pid=obj["pid"],
        host=obj["host"],
        started=obj["started"],
    )


def pending(home: Path) -> bool:
    """Whether a journal is on disk: one ``stat`` call."""
    return path(home).exists()


def remove(home: Path) -> None:
    """Remove the journal (the transaction is over)."""
    path(home).unlink(missing_ok=True)


class Faults:
    """Fault injection and a record of the steps a transaction passed.

    Args:
        spec: Step names to die at, comma-separated (default: ``PLUGMARKET_FAULT``).
    """

    def __init__(self, spec: str | None = None) -> None:
        raw = os.environ.get(FAULT_ENV, "") if spec is None else spec
        self.targets = frozenset(s.strip() for s in raw.split(",") if s.strip())
        self.passed: list[str] = []

    def __call__(self, step: str) -> None:
        """Record ``step``; if it is a target, SIGKILL this process at once."""
        self.passed.append(step)
        if step in self.targets:
            os.kill(os.getpid(), signal.SIGKILL)
