"""The installer's durable-write helpers: concurrent fsyncs and jobs that are always waited for."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from plugmarket._internal import durable

ROOT = Path(__file__).resolve().parent.parent


def test_gather_returns_results_in_order_with_the_first_job_run_here() -> None:
    here = threading.get_ident()
    ran_on: list[int] = []

    def first() -> str:
        ran_on.append(threading.get_ident())
        return "first"

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(lambda n=n: n * n) for n in range(5)]
        assert durable.gather(futures, first=first) == ["first", 0, 1, 4, 9, 16]
    assert ran_on == [here]


def test_gather_raises_the_first_failure_only_once_every_job_has_finished() -> None:
    failed = threading.Event()
    finished: list[str] = []

    def fails() -> None:
        failed.set()
        raise OSError("disk full")

    def slower() -> None:  # still running when the first job fails
        failed.wait()
        finished.append("slower")

    def also_fails() -> None:
        failed.wait()
        raise ValueError("second failure")

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(fails), pool.submit(slower), pool.submit(also_fails)]
        with pytest.raises(OSError, match="disk full"):
            durable.gather(futures)
        assert finished == ["slower"] and all(f.done() for f in futures)


def test_sync_all_flushes_everything_and_reports_a_file_it_cannot_flush(tmp_path: Path) -> None:
    files = []
    for n in range(4):
        path = tmp_path / f"f{n}"
        path.write_bytes(b"x" * n)
        files.append(path)
    durable.sync_all(files, [tmp_path, tmp_path / "no-such-folder"])  # folders: best effort
    with pytest.raises(FileNotFoundError):
        durable.sync_all([*files, tmp_path / "gone"], [tmp_path])
    durable.sync_all([], [])


def test_deferred_notes_this_threads_fsyncs_for_the_callers_batch(tmp_path: Path) -> None:
    written = tmp_path / "a.py"
    with durable.deferred() as held:
        with open(written, "wb") as out:
            out.write(b"x = 1\n")
            durable.fsync_written(out, written)
        durable.fsync_dir(tmp_path)
        with durable.deferred() as inner:  # a nested deferral collects its own
            durable.fsync_dir(tmp_path / "inner")
        other: list[durable.Deferred | None] = []

        def elsewhere() -> None:  # another thread flushes as usual
            durable.fsync_dir(tmp_path)
            with durable.deferred() as mine:
                pass
            other.append(mine)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert written.read_bytes() == b"x = 1\n"  # flushed to the file, for the batch to fsync
    assert held.files == [written] and held.folders == [tmp_path]
    assert inner.files == [] and inner.folders == [tmp_path / "inner"]
    assert other[0] is not None and other[0].folders == []
    durable.sync_all(held.files, held.folders)
    with open(written, "ab") as out:  # outside a deferral it fsyncs at once
        out.write(b"y = 2\n")
        durable.fsync_written(out, written)
    assert written.read_bytes() == b"x = 1\ny = 2\n"


def test_write_temp_writes_the_fixed_temporary_name_beside_the_file(tmp_path: Path) -> None:
    tmp = durable.write_temp(tmp_path / "current", b"7\n")
    assert tmp == tmp_path / ".current.tmp" and tmp.read_bytes() == b"7\n"
    assert not (tmp_path / "current").exists()


FORKED = """
import os, sys, threading
from plugmarket._internal import durable
durable.sync_all([], [sys.argv[1], sys.argv[1]])  # the parent's pool exists now
pid = os.fork()
if pid == 0:
    durable.sync_all([], [sys.argv[1], sys.argv[1]])  # would hang on the parent's threads
    ok = any(t.name.startswith("plugmarket-sync") for t in threading.enumerate())
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def _run(script: str, folder: Path) -> str:
    """Run ``script`` in a new interpreter with ``folder`` as its argument; its output."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_forked_child_makes_its_own_pool(tmp_path: Path) -> None:
    assert _run(FORKED, tmp_path) == "0"


AT_EXIT = """
import atexit, sys
from plugmarket._internal import durable
durable.sync_all([], [sys.argv[1], sys.argv[1]])  # the pool exists, then refuses work
def late():
    durable.sync_all([], [sys.argv[1], sys.argv[1], sys.argv[1]])
    print("synced", flush=True)
atexit.register(late)
"""


def test_work_started_while_the_interpreter_shuts_down_runs_inline(tmp_path: Path) -> None:
    assert _run(AT_EXIT, tmp_path) == "synced"


def test_an_owed_file_is_fsynced_with_its_folder_by_the_next_batch_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugmarket._internal.http_cache import DiskCache

    flushed: list[Path] = []
    real_file, real_dir = durable.fsync_file, durable.fsync_dir
    monkeypatch.setattr(durable, "fsync_file", lambda p: (flushed.append(p), real_file(p)))
    monkeypatch.setattr(durable, "fsync_dir", lambda p: (flushed.append(p), real_dir(p)))
    cache = DiskCache(tmp_path / "registry")
    cache.write_state({"version": 7})  # the trusted version: owed, not flushed yet
    assert flushed == [] and cache.read_state() == {"version": 7}
    batch = tmp_path / "journal"
    batch.write_bytes(b"{}")
    durable.sync_all([batch], [])
    state = tmp_path / "registry" / "state.json"
    assert sorted(map(str, flushed)) == sorted(map(str, [batch, state, state.parent]))
    flushed.clear()
    durable.sync_all([batch], [])  # paid once
    assert flushed == [batch]
    cache.write_state({"version": 8})
    cache.root.joinpath("state.json").unlink()  # a cleared cache: nothing to flush, no error
    durable.sync_all([], [])
    assert flushed[1:] == [state, state.parent]
