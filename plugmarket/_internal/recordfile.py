"""Small JSON record files in the home, shared safely by several processes.

The statistics and the reviews are JSON documents changed by read, change,
write: :func:`update` holds a :class:`filelock.FileLock` on ``<file>.lock``
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
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from plugmarket.errors import PlugmarketError

__all__ = [
    "LOCK_TIMEOUT",
    "dumps",
    "dumps_compact",
    "load",
    "loads",
    "locked",
    "record_error",
    "update",
    "write_atomic",
]

log = logging.getLogger("plugmarket.records")
T = TypeVar("T")

LOCK_TIMEOUT = 60.0  # seconds to wait for another process's write (each takes milliseconds)
# What a decoder raises when a document has the wrong shape.
SHAPE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, PlugmarketError)


def record_error(path: Path, what: str, exc: OSError) -> PlugmarketError:
    """The error for a record that cannot be read or written."""
    return PlugmarketError(
        f"cannot {what} {path}: {exc.strerror or exc}",
        hint="Check that plugmarket's home folder is writable and has free space.",
    )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the lock file beside ``path`` (creating the folder if needed).

    Raises:
        PlugmarketError: the folder cannot be written, or another process held
            the lock for longer than :data:`LOCK_TIMEOUT`.
    """
    from filelock import FileLock, Timeout

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path.with_name(path.name + ".lock"), timeout=LOCK_TIMEOUT)
        lock.acquire()
    except Timeout as exc:
        raise PlugmarketError(
            f"{path} stayed locked by another process for {LOCK_TIMEOUT:.0f} seconds",
            hint="Another plugmarket process may be stopped (suspended); resume or end it.",
        ) from exc
    except OSError as exc:
        raise record_error(path, "lock", exc) from exc
    try:
        yield
    finally:
        lock.release()


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
