"""One flush for a whole batch, where Linux can be trusted with it: ``syncfs(2)``.

On ext4 nearly every fsync of a new file or folder commits the file
system's journal and flushes the disk's cache, so a batch of 14 fsyncs (one
small install) costs about 9 cache flushes and a 5-deep chain about 28.
``syncfs`` writes back and commits the whole file system once: 2 flushes
for either (benchmarks/README.md). It is used in place of a batch's fsyncs
only where it is as sound as they are:

- **Linux 5.8 or later.** Before 5.8, ``syncfs`` did not report write-back
  errors at all.
- **A local journaling file system** (ext3/ext4, XFS), read from
  ``/proc/self/mountinfo`` by the device number, at each transaction (device
  numbers are reused after an unmount). On these, ``syncfs`` commits the
  journal and flushes the disk's cache, as fsync does. Network and FUSE file
  systems, and anything unknown, keep their fsyncs; so does Btrfs, whose
  ``stat`` gives a subvolume's own device number, never the mounted one.
- **Every path of the batch on that one device,** checked path by path.
- **Little dirty memory** (:data:`DIRTY_LIMIT`, from ``/proc/meminfo``).
  ``syncfs`` waits for every dirty page of the file system, so right after a
  notebook wrote a large file the batch keeps its fsyncs instead.
- **Errors since the transaction began.** The descriptor :func:`open_watch`
  opens before the transaction writes anything samples the file system's
  error sequence, so every write-back error after that is reported to this
  ``syncfs``, whoever else saw it. An error may be another program's, so
  the caller then fsyncs each of its own files, which report only their own.
  That report is used up by the first ``syncfs`` that sees it, so a watch that
  saw an error flushes nothing more (:attr:`Watch.failed`).

Invariants:

- :func:`flush` returns True only if ``syncfs`` returned 0 after the checks;
  anything else (a refusal, an error, no ``syncfs`` in the C library) is
  False, and the caller's fsyncs run as before.
- Nothing here raises: each check that cannot be made means "not trusted".
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DIRTY_LIMIT", "TRUSTED_TYPES", "Watch", "covers", "flush", "open_watch"]

DIRTY_LIMIT = 8 * 1024 * 1024  # bytes dirty or in write-back machine-wide; above it, fsyncs
TRUSTED_TYPES = frozenset({"ext3", "ext4", "xfs"})
FIRST_REPORTING = (5, 8)  # the first Linux whose syncfs reports write-back errors


@dataclass
class Watch:
    """A folder's file system, opened before a transaction writes: ``fd`` samples its
    write-back errors from then on; ``dev`` is its device number; ``failed`` is set
    once a ``syncfs`` through it reported an error (which no later one would)."""

    fd: int
    dev: int
    failed: bool = False

    def copy(self) -> Watch:
        """The same watch on a descriptor of its own (the same error sample), for
        another thread to use and close whatever happens to this one."""
        return Watch(os.dup(self.fd), self.dev, self.failed)

    def close(self) -> None:
        os.close(self.fd)


def open_watch(folder: Path) -> Watch | None:
    """Open ``folder``'s file system for :func:`flush`, or None where ``syncfs``
    is not trusted there (another system, an older Linux, another file system)."""
    if _syncfs() is None:
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        dev = os.fstat(fd).st_dev
    except OSError:
        dev = -1
    if dev == -1 or fs_type(dev) not in TRUSTED_TYPES:
        os.close(fd)
        return None
    return Watch(fd, dev)


def covers(watch: Watch, paths: Iterable[Path]) -> bool:
    """Whether every path exists on the watched device."""
    try:
        return all(os.stat(path).st_dev == watch.dev for path in paths)
    except OSError:
        return False


def flush(watch: Watch) -> bool:
    """``syncfs`` the watched file system; whether it was done and reported no error."""
    syncfs = _syncfs()
    if syncfs is None or watch.failed or dirty_bytes() > DIRTY_LIMIT:
        return False
    if syncfs(watch.fd) != 0:
        watch.failed = True
        return False
    return True


def dirty_bytes(meminfo: str = "/proc/meminfo") -> int:
    """Bytes dirty or under write-back on the whole machine (unknown: unlimited)."""
    found: dict[bytes, int] = {}
    try:
        with open(meminfo, "rb") as handle:
            for line in handle:
                if line.startswith((b"Dirty:", b"Writeback:")):
                    name, amount = line.split()[:2]
                    found[name] = int(amount) * 1024
    except (OSError, ValueError):
        return sys.maxsize
    return sum(found.values()) if len(found) == 2 else sys.maxsize


def fs_type(dev: int, mountinfo: str = "/proc/self/mountinfo") -> str:
    """The file system type mounted from device ``dev`` ("" if not found)."""
    wanted = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields, _, tail = line.partition(" - ")
                parts = fields.split()
                if len(parts) > 2 and parts[2] == wanted and tail:
                    return tail.split()[0]
    except OSError:
        pass
    return ""


def kernel_reports_errors(release: str) -> bool:
    """Whether a Linux ``release`` ("6.1.0-13-amd64") reports syncfs write-back errors."""
    try:
        major, minor = (int(part) for part in release.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= FIRST_REPORTING


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs``, where it is trusted (the GIL is released while it waits)."""
    if not sys.platform.startswith("linux") or not kernel_reports_errors(os.uname().release):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function
