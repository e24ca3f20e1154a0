"""The home lock: kernels, terminals and the server extension take turns.

One lock per home (``<home>/lock``), taken by every transaction, recovery,
garbage collection and check. It is a ``filelock.FileLock``: an ``flock`` on
the file, which the operating system releases when the holder's process
ends however it ends, so a dead holder never leaves a stale lock behind.
Beside it, ``<home>/lock.info`` names the holder (pid, host, operation,
since), written after each acquisition, so a process that cannot get the
lock in time can say who has it.

The lock is re-entrant within one thread of one :class:`HomeLock`; other
threads and other processes wait (:meth:`HomeLock.attempt` takes it only if
it is free at once, for work a holder does anyway). On NFS, Linux clients carry ``flock`` to
the server as a byte-range lock (NLM for NFSv3, the protocol's own locks for
v4), so kernels on several machines of a JupyterHub exclude each other, and a
crashed client's lock is released when its lease expires. A file system that
refuses locks makes acquisition fail with an ``InstallError`` rather than
fall back to an unsafe lock (see docs/decisions/0008-transactions.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import filelock

from plugmarket.errors import InstallError

__all__ = ["HomeLock"]


class HomeLock:
    """The lock of one home.

    Args:
        home: The home folder (created if missing when the lock is first taken).
        timeout: Seconds to wait for another holder before giving up.
    """

    def __init__(self, home: Path, timeout: float) -> None:
        self.home = home
        self.path = home / "lock"
        self.info_path = home / "lock.info"
        self.timeout = timeout
        self._lock = filelock.FileLock(str(self.path), timeout=timeout, fallback_to_soft=False)
        self._depth = threading.local()

    @property
    def held(self) -> bool:
        """Whether this thread holds the lock through this object."""
        return int(getattr(self._depth, "n", 0)) > 0

    @contextmanager
    def hold(self, operation: str) -> Iterator[None]:
        """Hold the lock for the block (re-entrant in one thread).

        Raises:
            InstallError: another process held it for longer than the timeout
                (naming that process), or the file system refuses locks.
        """
        depth = int(getattr(self._depth, "n", 0))
        if depth == 0:
            self._acquire(operation)
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                self._lock.release()

    @contextmanager
    def attempt(self, operation: str) -> Iterator[bool]:
        """Hold the lock for the block if it can be had at once; yields whether it is held.

        For work that another holder will do anyway (recovering a home at
        start-up: every transaction recovers first), so nobody waits for it.

        Raises:
            InstallError: the file system refuses locks.
        """
        depth = int(getattr(self._depth, "n", 0))
        if depth == 0 and not self._acquire(operation, timeout=0):
            yield False
            return
        self._depth.n = depth + 1
        try:
            yield True
        finally:
            self._depth.n = depth
            if depth == 0:
                self._lock.release()

    def holder(self) -> str:
        """Who holds (or last held) the lock, from ``lock.info``, as one phrase."""
        try:
            info = json.loads(self.info_path.read_bytes())
            return (
                f"pid {int(info['pid'])} on {info['host']!s} "
                f"({info['operation']!s} since {info['since']!s})"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that left no information"

    def _acquire(self, operation: str, timeout: float | None = None) -> bool:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=timeout)
        except filelock.Timeout:
            if timeout == 0:
                return False
            raise InstallError(
                f"the plugmarket home {self.home} is locked by {self.holder()}; "
                f"waited {self.timeout:g} s",
                step="lock",
                hint="Wait for that operation to finish and try again. A process that died "
                "releases the lock by itself; if that process is on another machine of a "
                "shared (NFS) home, its lock ends when the server notices it is gone.",
            ) from None
        except OSError as exc:
            raise InstallError(
                f"cannot lock the plugmarket home {self.home}: {exc.strerror or exc}",
                step="lock",
                hint="Check the folder is writable. On NFS, the server must offer locking "
                "(NFSv4, or NFSv3 with lockd running).",
            ) from exc
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "operation": operation,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        # Rewritten in place, without a temporary file and a rename (two fewer file
        # operations on every transaction): a reader that catches it half-written
        # only names "a process that left no information" (see holder()).
        with contextlib.suppress(OSError):  # only messages use it
            self.info_path.write_text(json.dumps(info) + "\n", encoding="utf-8")
        return True
