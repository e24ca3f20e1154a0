"""Record what durable batches flush, through the seams production calls.

``record_flushes`` wraps ``durable.fsync_file``, ``durable.fsync_dir`` and
libc's ``syncfs`` (``syncfs._syncfs``): each wrapper calls the real one, then
notes it. A syncfs result can be replaced (``syncfs_result``) to stage the
write error a real disk cannot be made to report.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plugmarket._internal import durable, syncfs


@dataclass(frozen=True)
class SyncfsCall:
    """One syncfs: its descriptor, what it returned, its thread, and the
    ``(st_dev, st_ino)`` of the folder the descriptor was open on."""

    fd: int
    result: int
    thread: int
    folder: tuple[int, int]


@dataclass
class Flushes:
    """What the batches flushed (each fsync noted once it has returned)."""

    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    folder_threads: list[int] = field(default_factory=list)  # where each folder's ran
    calls: list[SyncfsCall] = field(default_factory=list)
    syncfs_result: int | None = None  # what syncfs reports instead of the real result

    @property
    def syncfs(self) -> list[int]:
        """The result of each syncfs, in order."""
        return [call.result for call in self.calls]

    def fsyncs(self) -> list[Path]:
        return sorted(self.files + self.folders)


def record_flushes(monkeypatch: pytest.MonkeyPatch) -> Flushes:
    """Record every flush from here on, with nothing owed from earlier code."""
    real_syncfs = syncfs._syncfs()
    assert real_syncfs is not None, f"syncfs is not trusted on Linux {os.uname().release}"
    durable.sync_all([], [])  # pays what earlier code in this process owed
    record = Flushes()
    real_file, real_dir = durable.fsync_file, durable.fsync_dir

    def fsync_file(path: Path) -> None:
        real_file(path)
        record.files.append(Path(path))  # list.append is atomic: pool threads share it

    def fsync_dir(folder: Path) -> None:
        real_dir(folder)
        record.folders.append(Path(folder))
        record.folder_threads.append(threading.get_ident())

    def counted(fd: int) -> int:
        try:
            st = os.fstat(fd)
            folder = (st.st_dev, st.st_ino)
        except OSError:  # not open: the real syncfs reports EBADF
            folder = (-1, -1)
        result = real_syncfs(fd)
        if record.syncfs_result is not None:
            result = record.syncfs_result
        record.calls.append(SyncfsCall(fd, result, threading.get_ident(), folder))
        return result

    monkeypatch.setattr(durable, "fsync_file", fsync_file)
    monkeypatch.setattr(durable, "fsync_dir", fsync_dir)
    monkeypatch.setattr(syncfs, "_syncfs", lambda: counted)
    # Other programs on a shared machine can leave more than the real limit dirty at
    # any moment; the limit itself has its own test.
    monkeypatch.setattr(syncfs, "DIRTY_LIMIT", sys.maxsize)
    return record


def on_ext4(path: Path) -> Path:
    """``path``, checked to be on ext4 (a file system syncfs is trusted on)."""
    kind = syncfs.fs_type(os.stat(path).st_dev)
    assert kind == "ext4", f"these tests need {path} on ext4, not {kind!r}"
    assert syncfs._syncfs() is not None, f"syncfs is not trusted on Linux {os.uname().release}"
    return path


def make_batch(folder: Path, n: int = 3) -> tuple[list[Path], list[Path]]:
    """``n`` new files in a new subfolder of ``folder``: the files and both folders."""
    sub = folder / "batch"
    sub.mkdir()
    files = []
    for i in range(n):
        path = sub / f"f{i}"
        path.write_bytes(b"x" * (i + 1))
        files.append(path)
    return files, [folder, sub]
