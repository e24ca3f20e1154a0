"""Small JSON record files in the home, shared safely by several processes.

The reviews are JSON documents changed by read, change, write:
:func:`update` holds a :class:`filelock.FileLock` on ``<file>.lock``
beside the record for the whole cycle, writes the new document to a
temporary file in the same folder and renames it over the old one. So a
reader (which takes no lock) sees the old document or the new one, never a
mix, and two processes never lose each other's changes. The installer's own
home lock is not needed and not taken.

A document that does not decode (cut short by a power loss, edited by hand)
is never fatal: readers treat it as empty with a logged warning, and the
next :func:`update` moves it aside to ``<file>.damaged`` and starts from
nothing (docs/decisions/0006-records.md says why). Temporary files a crashed
writer left are removed by the next writer, which holds the lock, so none of
them can still be in use.

The append-only records (the audit log and the statistics' log) are written
under one lock of the home, :data:`RECORDS_LOCK`, one whole line per
:func:`append_line`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TypeVar

from plugmarket.errors import PlugmarketError

__all__ = [
    "LOCK_TIMEOUT",
    "RECORDS_LOCK",
    "append_line",
    "append_to",
    "dumps",
    "dumps_compact",
    "load",
    "loads",
    "locked",
    "locked_records",
    "record_error",
    "update",
    "write_atomic",
]

log = logging.getLogger("plugmarket.records")
T = TypeVar("T")

LOCK_TIMEOUT = 60.0  # seconds to wait for another process's write (each takes milliseconds)
# The one lock of the append-only records (the audit log and the statistics'
# log), so that an operation appends to both under one acquisition.
RECORDS_LOCK = "records.lock"
# What a decoder raises when a document has the wrong shape.
SHAPE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, PlugmarketError)


def record_error(path: Path, what: str, exc: OSError) -> PlugmarketError:
    """The error for a record that cannot be read or written."""
    return PlugmarketError(
        f"cannot {what} {path}: {exc.strerror or exc}",
        hint="Check that plugmarket's home folder is writable and has free space.",
    )


def locked_records(home: Path) -> AbstractContextManager[None]:
    """Hold the home's :data:`RECORDS_LOCK` (see :func:`locked`), under which the audit
    log and the statistics' log are appended to.

    Re-entrant in a thread (one ``FileLock`` object per process): a capability
    denial audited while this thread writes records (from a logging handler a
    statistics warning reaches) appends its line instead of waiting for
    itself. Only appends nest safely; the statistics' fold checks that none
    came in while it ran (see :mod:`plugmarket._internal.stats`).
    """
    return _locked_file(home / RECORDS_LOCK, reentrant=True)


def locked(path: Path) -> AbstractContextManager[None]:
    """Hold the lock file beside ``path``, ``<name>.lock`` (creating the folder if needed).

    Raises:
        PlugmarketError: the folder cannot be written, or another process held
            the lock for longer than :data:`LOCK_TIMEOUT`.
    """
    return _locked_file(path.with_name(path.name + ".lock"), reentrant=False)


@contextmanager
def _locked_file(lock_path: Path, *, reentrant: bool) -> Iterator[None]:
    """Hold the lock file ``lock_path`` (creating the folder if needed).

    Raises:
        PlugmarketError: the folder cannot be written, or another process held
            the lock for longer than :data:`LOCK_TIMEOUT`.
    """
    from filelock import FileLock, Timeout

    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # A singleton is re-entrant in a thread, and still exclusive across threads
        # (each has its own descriptor) and processes.
        lock = FileLock(lock_path, timeout=LOCK_TIMEOUT, is_singleton=reentrant)
        lock.acquire()
    except RuntimeError as exc:  # filelock: taken again while this thread waits for it
        raise PlugmarketError(
            f"{lock_path} was asked for again while this thread waited for it",
            hint="Something logged while plugmarket waited for its records; try again.",
        ) from exc
    except Timeout as exc:
        raise PlugmarketError(
            f"{lock_path} stayed locked by another process for {LOCK_TIMEOUT:.0f} seconds",
            hint="Another plugmarket process may be stopped (suspended); resume or end it.",
        ) from exc
    except OSError as exc:
        raise record_error(lock_path, "lock", exc) from exc
    try:
        yield
    finally:
        lock.release()


def append_line(path: Path, line: bytes) -> int:
    """Append one whole line (ASCII, ending in its only newline) to ``path``, with the
    lock that guards it held by the caller; returns the file's size after.

    Raises:
        OSError: the file cannot be written (the caller names the record).
    """
    with open(path, "a+b", buffering=0) as f:
        return append_to(f, line)


def append_to(f: BinaryIO, line: bytes) -> int:
    """:func:`append_line` to a file already open for appending and reading (``a+b``).

    The line goes out in one append. If the file does not end in a newline (a
    process was killed mid-write), that line is ended first, so the broken
    line is skipped by readers and never glued to this one.
    """
    size = f.seek(0, os.SEEK_END)
    if size:
        f.seek(size - 1)
        if f.read(1) != b"\n":
            line = b"\n" + line
    view = memoryview(line)
    while view:
        written = f.write(view)
        view = view[written or 0 :]
    return size + len(line)


def loads(data: bytes) -> Any:
    """Parse JSON strictly: UTF-8 without BOM, no NaN/Infinity, no repeated keys.

    Raises:
        ValueError: the bytes are not such JSON (the caller translates it).
    """
    if data[:3] == b"\xef\xbb\xbf":
        raise ValueError("it starts with a byte order mark")

    def constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is not a JSON number")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise ValueError(f"key {key!r} appears twice in one object")
                seen.add(key)
        return obj

    try:
        return json.loads(data.decode("utf-8"), parse_constant=constant, object_pairs_hook=pairs)
    except RecursionError as exc:
        raise ValueError("it is nested too deeply") from exc


def dumps(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, ASCII, one trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=1, allow_nan=False) + "\n").encode()


def dumps_compact(obj: Any) -> bytes:
    """:func:`dumps` without indentation: json's C encoder, about 4x faster, for records
    rewritten on every operation that nobody diffs (the statistics)."""
    return (json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()


def write_atomic(path: Path, data: bytes, *, fsync: bool) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Args:
        path: The file to replace.
        data: Its new bytes.
        fsync: Flush the file and its folder to the disk, so the new bytes
            survive a power loss as well as a crash.

    Raises:
        PlugmarketError: the folder cannot be written.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    except OSError as exc:
        raise record_error(path, "write", exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if fsync and hasattr(os, "O_DIRECTORY"):
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise record_error(path, "write", exc) from exc


def load(path: Path, decode: Callable[[Any], T], empty: Callable[[], T]) -> T:
    """The decoded record at ``path``; ``empty()`` when it is missing or damaged.

    ``decode`` gets the parsed JSON and raises ``ValueError``, ``KeyError``,
    ``TypeError``, ``AttributeError`` or ``PlugmarketError`` when its shape is wrong.

    Raises:
        PlugmarketError: the file exists but cannot be read.
    """
    value, problem = _load(path, decode)
    if problem:
        log.warning("%s is damaged (%s); reading it as empty", path, problem)
    return empty() if value is None else value


def update(
    path: Path,
    decode: Callable[[Any], T],
    empty: Callable[[], T],
    change: Callable[[T], T],
    encode: Callable[[T], Any],
    *,
    fsync: bool = False,
    dump: Callable[[Any], bytes] = dumps,
) -> T:
    """Read, change and write the record at ``path`` under its lock.

    A damaged record is moved aside to ``<name>.damaged`` and ``change`` gets
    ``empty()``. ``dump`` turns the encoded value into the file's bytes
    (default :func:`dumps`).

    Returns:
        The new value, as written.

    Raises:
        PlugmarketError: the record cannot be locked, read or written; or what
            ``change`` raised (then nothing is written).
    """
    with locked(path):
        _remove_leftovers(path)
        current, problem = _load(path, decode)
        if problem:
            aside = path.with_name(path.name + ".damaged")
            try:
                os.replace(path, aside)
            except OSError as exc:
                raise record_error(path, "move aside", exc) from exc
            log.warning("%s was damaged (%s); started it again, old copy: %s", path, problem, aside)
        value = change(empty() if current is None else current)
        write_atomic(path, dump(encode(value)), fsync=fsync)
        return value


def _load(path: Path, decode: Callable[[Any], T]) -> tuple[T | None, str]:
    """The decoded value (None when missing or damaged) and what was wrong ("" if nothing)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        raise record_error(path, "read", exc) from exc
    try:
        return decode(loads(data)), ""
    except SHAPE_ERRORS as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _remove_leftovers(path: Path) -> None:
    """Remove temporary files a crashed writer left (the caller holds the lock)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        tmp.unlink(missing_ok=True)
