"""One ``syncfs`` for a transaction's batch where Linux can be trusted with it.

The checks that decide trust (kernel, file system type, one device, dirty
memory), the batch falling back to its fsyncs wherever one fails or ``syncfs``
reports an error, the thread-local watch, and the fsync after the commit point,
which nobody waits for but ``settle`` and the interpreter's exit.

These tests rely on this machine's layout, as CI's: pytest's ``tmp_path`` on
ext4 (trusted) and ``/dev/shm`` on tmpfs (another device, not trusted). Each
test that relies on it asserts it first, so another layout fails saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugmarket._internal import durable, syncfs
from plugmarket.marketplace import Marketplace
from tests.support.flushes import Flushes, make_batch
from tests.support.httpserver import LoopbackServer
from tests.support.registry import TestRegistry

SHM = Path("/dev/shm")


def _type_of(path: Path) -> str:
    return syncfs.fs_type(os.stat(path).st_dev)


@pytest.fixture
def shm() -> Iterator[Path]:
    """A new folder on /dev/shm (tmpfs: another device, not trusted), removed afterwards."""
    assert SHM.is_dir() and _type_of(SHM) == "tmpfs", "these tests need /dev/shm on tmpfs"
    folder = Path(tempfile.mkdtemp(prefix="plugmarket-syncfs-", dir=SHM))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


# --- pure parsing, on hand-written files ----------------------------------------------

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 master:2 - ext4 /dev/vda rw,discard
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683656k
41 27 8:17 / /mnt/8:18 rw,relatime shared:5 propagate_from:1 unbindable - xfs /dev/sdb1 rw
44 27 8:19 / /mnt/broken rw,relatime no separator here
"""


def test_fs_type_reads_the_type_of_the_mount_whose_device_matches(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    where = str(mountinfo)
    assert syncfs.fs_type(os.makedev(254, 0), mountinfo=where) == "ext4"  # optional fields
    assert syncfs.fs_type(os.makedev(0, 27), mountinfo=where) == "tmpfs"
    assert syncfs.fs_type(os.makedev(8, 17), mountinfo=where) == "xfs"  # three optional fields
    # 8:18 only appears in a mount point; 8:19's line has no " - " and no type.
    assert syncfs.fs_type(os.makedev(8, 18), mountinfo=where) == ""
    assert syncfs.fs_type(os.makedev(8, 19), mountinfo=where) == ""
    assert syncfs.fs_type(os.makedev(9, 9), mountinfo=where) == ""  # not mounted
    assert syncfs.fs_type(os.makedev(254, 0), mountinfo=str(tmp_path / "missing")) == ""


def test_dirty_bytes_adds_dirty_and_writeback_in_bytes(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal:       24683656 kB\n"
        "Dirty:                28 kB\n"
        "Writeback:             4 kB\n"
        "AnonPages:       1000000 kB\n"
        "WritebackTmp:      99999 kB\n"
    )
    assert syncfs.dirty_bytes(meminfo=str(meminfo)) == (28 + 4) * 1024
    # The machine's own is read too (a number, not "unknown").
    assert 0 <= syncfs.dirty_bytes() < sys.maxsize


@pytest.mark.parametrize(
    "text",
    [
        "Dirty:  lots kB\nWriteback: 0 kB\n",
        "Dirty: 12 kB\nWriteback:\n",
        "MemTotal: 1 kB\n",  # neither figure: unknown, not zero
        "Dirty: 12 kB\n",
    ],
)
def test_dirty_bytes_that_cannot_be_read_count_as_unlimited(tmp_path: Path, text: str) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(text)
    assert syncfs.dirty_bytes(meminfo=str(meminfo)) == sys.maxsize
    assert syncfs.dirty_bytes(meminfo=str(tmp_path / "missing")) == sys.maxsize


@pytest.mark.parametrize(
    ("release", "reports"),
    [
        ("5.7.0", False),
        ("5.7.19-200.fc32.x86_64", False),
        ("4.19.0", False),
        ("5.8", True),
        ("5.10.0+", True),
        ("6.1.0-13-amd64", True),
        ("6.18.44-fc-v769", True),
        ("garbage", False),
        ("6", False),
        ("", False),
    ],
)
def test_kernel_reports_errors_from_linux_5_8(release: str, reports: bool) -> None:
    assert syncfs.kernel_reports_errors(release) is reports


# --- the watch and its checks, on this machine's file systems -------------------------


def test_a_watch_opens_only_on_a_trusted_file_system_that_exists(ext4: Path, shm: Path) -> None:
    assert syncfs.kernel_reports_errors(os.uname().release), "these tests need Linux 5.8+"
    watch = syncfs.open_watch(ext4)
    assert watch is not None
    try:
        assert watch.dev == os.stat(ext4).st_dev == os.fstat(watch.fd).st_dev
    finally:
        watch.close()
    with pytest.raises(OSError):
        os.fstat(watch.fd)
    assert syncfs.open_watch(shm) is None  # tmpfs: not trusted
    assert syncfs.open_watch(ext4 / "missing") is None


def test_no_watch_without_a_trusted_syncfs(ext4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syncfs, "_syncfs", lambda: None)  # an older Linux, another system
    assert syncfs.open_watch(ext4) is None


def test_covers_only_paths_that_exist_on_the_watched_device(ext4: Path, shm: Path) -> None:
    files, folders = make_batch(ext4)
    elsewhere = shm / "f"
    elsewhere.write_bytes(b"x")
    watch = syncfs.open_watch(ext4)
    assert watch is not None
    try:
        assert syncfs.covers(watch, [*files, *folders])
        assert not syncfs.covers(watch, [*files, elsewhere, *folders])
        assert not syncfs.covers(watch, [*files, ext4 / "gone"])
    finally:
        watch.close()


def test_flush_runs_syncfs_only_below_the_dirty_limit_and_reports_its_error(
    ext4: Path, flushes: Flushes, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = syncfs.open_watch(ext4)
    assert watch is not None
    try:
        assert syncfs.flush(watch) is True and flushes.syncfs == [0]
        monkeypatch.setattr(syncfs, "DIRTY_LIMIT", -1)  # read at each call
        assert syncfs.flush(watch) is False and flushes.syncfs == [0]  # not even tried
        monkeypatch.setattr(syncfs, "DIRTY_LIMIT", sys.maxsize)
        # A real error from the kernel: a descriptor that is not open (EBADF).
        closed = syncfs.Watch(-1, watch.dev)
        assert syncfs.flush(closed) is False and flushes.syncfs == [0, -1]
        # The kernel reports an error to a descriptor once: that watch flushes no more.
        assert closed.failed
        flushes.syncfs_result = -1
        assert syncfs.flush(watch) is False and watch.failed
        flushes.syncfs_result = None
        assert syncfs.flush(watch) is False and flushes.syncfs == [0, -1, -1]  # not tried
    finally:
        watch.close()


# --- sync_all: one syncfs or the fsync batch ------------------------------------------


def test_a_watched_batch_all_on_the_home_file_system_is_one_syncfs(
    ext4: Path, flushes: Flushes
) -> None:
    files, folders = make_batch(ext4)
    with durable.watching(ext4):
        durable.sync_all(files, folders)
    assert flushes.syncfs == [0] and flushes.fsyncs() == []


def test_a_batch_outside_a_watch_is_fsynced(ext4: Path, flushes: Flushes) -> None:
    files, folders = make_batch(ext4)
    durable.sync_all(files, folders)
    assert flushes.syncfs == [] and flushes.fsyncs() == sorted(files + folders)


def test_a_batch_with_a_path_on_another_file_system_is_fsynced(
    ext4: Path, shm: Path, flushes: Flushes
) -> None:
    files, folders = make_batch(ext4)
    elsewhere = shm / "f"
    elsewhere.write_bytes(b"x")
    with durable.watching(ext4):
        durable.sync_all([*files, elsewhere], folders)
        durable.sync_all(files, [*folders, shm])
    assert flushes.syncfs == []
    assert sorted(flushes.files) == sorted([*files, elsewhere, *files])
    assert sorted(flushes.folders) == sorted([*folders, *folders, shm])


def test_a_batch_is_fsynced_when_syncfs_reports_an_error(ext4: Path, flushes: Flushes) -> None:
    # A write-back error cannot be staged for real: syncfs says -1 after really running.
    flushes.syncfs_result = -1
    files, folders = make_batch(ext4)
    with durable.watching(ext4):
        durable.sync_all(files, folders)
    assert flushes.syncfs == [-1] and flushes.fsyncs() == sorted(files + folders)


def test_a_batch_is_fsynced_when_too_much_memory_is_dirty(
    ext4: Path, flushes: Flushes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syncfs, "DIRTY_LIMIT", -1)
    files, folders = make_batch(ext4)
    with durable.watching(ext4):
        durable.sync_all(files, folders)
    assert flushes.syncfs == [] and flushes.fsyncs() == sorted(files + folders)


def test_a_missing_file_in_a_watched_batch_is_still_an_error(ext4: Path, flushes: Flushes) -> None:
    files, folders = make_batch(ext4)
    with durable.watching(ext4), pytest.raises(FileNotFoundError):
        durable.sync_all([*files, ext4 / "gone"], folders)
    assert flushes.syncfs == [] and flushes.fsyncs() == sorted(files + folders)


def test_owed_files_decide_with_themake_batch(ext4: Path, shm: Path, flushes: Flushes) -> None:
    files, folders = make_batch(ext4)
    owed_here = ext4 / "state.json"
    owed_here.write_bytes(b"{}")
    durable.owe(owed_here)
    with durable.watching(ext4):
        durable.sync_all(files, folders)  # everything on ext4: the syncfs flushes it too
        assert flushes.syncfs == [0] and flushes.fsyncs() == []
        owed_there = shm / "state.json"
        owed_there.write_bytes(b"{}")
        durable.owe(owed_there)
        durable.sync_all(files, folders)  # an owed file on tmpfs: everything is fsynced
    assert flushes.syncfs == [0]
    assert sorted(flushes.files) == sorted([*files, owed_there])
    assert sorted(flushes.folders) == sorted([*folders, shm])
    flushes.files.clear()
    flushes.folders.clear()
    durable.sync_all(files[:1], [])  # each owed file was paid once
    assert flushes.fsyncs() == files[:1]


def test_an_owed_file_removed_since_keeps_the_batch_whole(ext4: Path, flushes: Flushes) -> None:
    files, folders = make_batch(ext4)
    cleared = ext4 / "cache" / "state.json"
    cleared.parent.mkdir()
    cleared.write_bytes(b"{}")
    durable.owe(cleared)
    cleared.unlink()  # a cleared cache: nothing of it to flush, and no failure
    with durable.watching(ext4):
        durable.sync_all(files, folders)
    assert flushes.syncfs == []  # a path that cannot be checked is not trusted
    assert sorted(flushes.files) == sorted(files)
    assert sorted(flushes.folders) == sorted([*folders, cleared.parent])


# --- watching: thread-local, nested, closed -------------------------------------------


def _watch_here() -> syncfs.Watch | None:
    watch: syncfs.Watch | None = getattr(durable._watched, "watch", None)
    return watch


def test_watching_nests_restores_the_outer_watch_and_closes_its_own(ext4: Path, shm: Path) -> None:
    assert _watch_here() is None
    (ext4 / "sub").mkdir()
    with durable.watching(ext4):
        outer = _watch_here()
        assert outer is not None and outer.dev == os.stat(ext4).st_dev
        with durable.watching(shm):
            assert _watch_here() is None  # tmpfs: batches there are fsynced
        assert _watch_here() is outer
        with durable.watching(ext4 / "sub"):
            inner = _watch_here()
            assert inner is not None and inner.fd != outer.fd
        with pytest.raises(OSError):
            os.fstat(inner.fd)
        assert _watch_here() is outer
        os.fstat(outer.fd)  # still open
    assert _watch_here() is None
    with pytest.raises(OSError):
        os.fstat(outer.fd)


def test_watching_closes_its_watch_when_the_block_raises(ext4: Path) -> None:
    seen: list[syncfs.Watch | None] = []
    with pytest.raises(RuntimeError, match="boom"), durable.watching(ext4):
        seen.append(_watch_here())
        raise RuntimeError("boom")
    assert seen[0] is not None and _watch_here() is None
    with pytest.raises(OSError):
        os.fstat(seen[0].fd)


def test_another_thread_inside_a_watch_fsyncs_its_batches(ext4: Path, flushes: Flushes) -> None:
    files, folders = make_batch(ext4)
    seen: list[syncfs.Watch | None] = []

    def elsewhere() -> None:
        seen.append(_watch_here())
        durable.sync_all(files, folders)

    with durable.watching(ext4):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert _watch_here() is not None
    assert seen == [None]
    assert flushes.syncfs == [] and flushes.fsyncs() == sorted(files + folders)


# --- the fsync after the commit point: not waited for ------------------------------------


class HeldFsync:
    """An fsync_dir that starts, then waits until the test releases it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished: list[Path] = []
        self.threads: list[int] = []

    def __call__(self, folder: Path) -> None:
        self.threads.append(threading.get_ident())
        self.started.set()
        assert self.release.wait(60), "the test never released the fsync"
        self.finished.append(folder)


def test_fsync_dir_soon_runs_on_the_pool_and_settle_waits_for_every_one_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldFsync()
    monkeypatch.setattr(durable, "fsync_dir", held)
    durable.fsync_dir_soon(tmp_path)
    durable.fsync_dir_soon(tmp_path / "other")
    assert held.started.wait(60)  # running on the pool while the caller goes on
    assert held.finished == [] and threading.get_ident() not in held.threads
    held.release.set()
    durable.settle()
    assert sorted(held.finished) == [tmp_path, tmp_path / "other"]
    durable.settle()  # nothing left: returns at once


EXIT_WAITS = """
import sys
from pathlib import Path
from plugmarket._internal import durable

marker = Path(sys.argv[1])

def held_fsync_dir(folder):
    sys.stdin.read()  # until the test closes the pipe; the process is exiting meanwhile
    marker.write_text("flushed")

durable.fsync_dir = held_fsync_dir
durable.fsync_dir_soon(marker.parent)
print("returned", marker.exists(), flush=True)
"""


def test_the_interpreters_exit_waits_for_an_fsync_dir_soon(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", EXIT_WAITS, str(marker)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().split() == ["returned", "False"]  # went on at once
        assert child.poll() is None and not marker.exists()  # its exit waits for the fsync
    finally:
        child.stdin.close()  # the fsync ends
    assert child.wait(60) == 0
    child.stdout.close()
    assert marker.read_text() == "flushed"


# --- end to end: an install on a watched ext4 home ------------------------------------


def test_an_install_commits_with_one_syncfs_and_is_whole(
    ext4: Path,
    home: Path,
    registry: TestRegistry,
    served: LoopbackServer,
    flushes: Flushes,
) -> None:
    assert home.is_relative_to(ext4)
    market = Marketplace(settings=registry.settings(home, served.url()), live=False)
    try:
        market.install("sql-magic", yes=True)  # with its dependency, table-lib
        current = market.installer.current()
        assert current.number == 1
        assert {p: i.version for p, i in current.plugins.items()} == {
            "sql-magic": "1.0.0",
            "table-lib": "0.3.0",
        }
        assert flushes.syncfs and all(r == 0 for r in flushes.syncfs)
        assert flushes.files == []  # no batch fell back to its fsyncs
        # Only the fsync after the commit point's rename: on the pool, not waited for.
        durable.settle()
        assert flushes.folders == [home]
        assert flushes.folder_threads != [threading.get_ident()]
        assert market.check().problems == ()
    finally:
        market.close()
    again = Marketplace(settings=registry.settings(home, served.url()), live=False)
    try:
        assert [p.id for p in again.installed()] == ["sql-magic", "table-lib"]
    finally:
        again.close()
