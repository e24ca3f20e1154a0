"""The commit's batch runs on its own thread while the live plugins are swapped.

``durable.sync_soon`` carries the caller's watch to the batch thread (one
``syncfs`` there) and leaves none behind; ``Installer._commit`` always waits
for that batch before anything else, whether the swap or the batch failed,
and undoes both; the home's fsync after the commit point runs once the
journal is gone and is over before the operation returns.

A write error cannot be staged on a real disk: the tests that need one wrap
``durable.sync_all`` so that the commit's batch really flushes, then reports
EIO. Every other part is real: an ext4 home under ``tmp_path``, built
artifacts, the loader and a real IPython shell.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plugmarket import loader
from plugmarket._internal import durable, journal, syncfs
from plugmarket._internal.installed import Generation
from plugmarket.errors import ActivationError, InstallError, PlugmarketError
from plugmarket.host import IPythonHost
from plugmarket.installer import Installer
from plugmarket.live import LiveSet
from plugmarket.marketplace import Marketplace
from plugmarket.plan import Plan
from plugmarket.settings import Settings
from tests.support.artifacts import Artifact, fetch, make_artifact, tree
from tests.support.flushes import Flushes, make_batch
from tests.support.plugins import USES_ALPHA, hello_source

MAGICS = ["ipython.magics"]
WAIT = 60.0  # seconds a staged wait may take before the test fails instead of hanging


@pytest.fixture
def arts(tmp_path: Path) -> dict[str, Artifact]:
    where = tmp_path / "registry"
    return {
        "hello-1": make_artifact(where, "hello", "1.0", hello_source("1"), capabilities=MAGICS),
        "hello-2": make_artifact(
            where, "hello", "2.0", hello_source("2", broken=True), capabilities=MAGICS
        ),
        "hello-3": make_artifact(where, "hello", "3.0", hello_source("3"), capabilities=MAGICS),
        "alpha-1": make_artifact(where, "alpha", "1.0", "VALUE = 1\n"),
        "beta-1": make_artifact(
            where, "beta", "1.0", USES_ALPHA, requires=["alpha>=1"], capabilities=MAGICS
        ),
    }


def _live_hello(home: Path, shell: Any, hello: Artifact) -> tuple[Installer, LiveSet]:
    """An installer and a live set in the real shell, with hello 1.0 installed and live."""
    settings = Settings(home=home)
    inst, live = Installer(settings, faults=""), LiveSet(settings, host=IPythonHost(shell))
    inst.apply(Plan("install", (hello.add(grants=MAGICS),)), fetch, reason="1", live=live)
    assert shell.run_cell("%hello").result == "hello from 1"
    return inst, live


def _loaded() -> dict[str, str]:
    return {pid: str(lp.version) for pid, lp in loader.loaded().items()}


def _on_old_generation(inst: Installer, home: Path, before: dict[str, bytes | None]) -> None:
    """The disk is exactly as it was on generation 1: nothing above it, nothing left over."""
    assert tree(home) == before
    assert inst.current().number == 1 and inst.gens.numbers() == [1]
    assert inst.store.names() == [inst.current().plugins["hello"].sha256]
    assert not journal.pending(home) and inst.check().problems == ()
    assert "generation-temp-written" not in inst.steps  # nothing got as far as publishing


# --- 1. sync_soon ------------------------------------------------------------------------


def _batch_thread_state() -> tuple[int, object]:
    """The batch thread's ident and the watch it holds now, asked on that thread itself."""
    probe = durable._batch_pool().submit(
        lambda: (threading.get_ident(), getattr(durable._watched, "watch", None))
    )
    return probe.result(timeout=WAIT)


def test_sync_soon_carries_the_watch_to_the_batch_thread_and_leaves_none_there(
    ext4: Path, flushes: Flushes
) -> None:
    files, folders = make_batch(ext4)
    here = threading.get_ident()
    st = os.stat(ext4)
    with durable.watching(ext4):
        watch = durable._watched.watch
        assert watch is not None
        durable.sync_soon(files, folders).result(timeout=WAIT)
        os.fstat(watch.fd)  # the caller's watch is still open
    # One syncfs on a copy of the caller's watch (the same folder), on another thread;
    # no fsync at all.
    assert flushes.fsyncs() == [] and flushes.syncfs == [0]
    call = flushes.calls[0]
    assert call.folder == (st.st_dev, st.st_ino) and call.fd != watch.fd
    assert call.thread != here
    batch_thread, left = _batch_thread_state()
    assert batch_thread == call.thread and left is None  # the watch (closed by now) is gone
    # Submitted outside watching, the same thread falls back to the batch's fsyncs.
    durable.sync_soon(files, folders).result(timeout=WAIT)
    assert flushes.syncfs == [0] and flushes.fsyncs() == sorted(files + folders)


def test_sync_soon_hands_the_batchs_error_to_its_future_and_still_resets_the_watch(
    ext4: Path, flushes: Flushes
) -> None:
    files, folders = make_batch(ext4)
    gone = ext4 / "gone"
    with durable.watching(ext4):
        future = durable.sync_soon([*files, gone], folders)  # raises nothing here
        error = future.exception(timeout=WAIT)
    assert isinstance(error, FileNotFoundError) and error.filename == str(gone)
    # A path it could not check is not trusted: the fsyncs ran, every one, then it failed.
    assert flushes.syncfs == [] and flushes.fsyncs() == sorted(files + folders)
    assert _batch_thread_state()[1] is None


def test_sync_soon_returns_once_its_batch_waits_for_the_disk(
    ext4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller goes on (to the live swap) only once the batch thread has reached the
    disk wait: otherwise the caller's Python holds the GIL the batch needs to start."""
    files, folders = make_batch(ext4)
    events: list[str] = []
    release = threading.Event()
    real_sync_all = durable.sync_all

    def sync_all(
        files: Sequence[Path],
        folders: Sequence[Path],
        *,
        waiting: Callable[[], object] | None = None,
    ) -> None:
        def begun() -> None:
            events.append("batch waits for the disk")
            if waiting is not None:
                waiting()

        real_sync_all(files, folders, waiting=begun)

    def slow_disk(fd: int) -> int:
        assert release.wait(WAIT), "the test never released the disk"
        return 0

    monkeypatch.setattr(durable, "sync_all", sync_all)
    monkeypatch.setattr(syncfs, "_syncfs", lambda: slow_disk)
    monkeypatch.setattr(syncfs, "DIRTY_LIMIT", sys.maxsize)
    with durable.watching(ext4):
        future = durable.sync_soon(files, folders)
        events.append("sync_soon returned")
        assert not future.done()  # the disk is still "busy"
        release.set()
        assert future.result(WAIT) is None
    assert events == ["batch waits for the disk", "sync_soon returned"]


def test_sync_soon_returns_when_its_batch_fails_before_waiting(
    ext4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(files: Sequence[Path], folders: Sequence[Path], **_: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(durable, "sync_all", broken)
    future = durable.sync_soon([ext4 / "f"], [ext4])
    error = future.exception(WAIT)
    assert isinstance(error, OSError) and error.errno == errno.EIO


def _main_waits_in(function: str) -> bool:
    """Whether the main thread is blocked in a wait that ``function`` itself called
    (``Event.wait`` or ``Future.exception``, then ``Condition.wait``): not in one deeper
    down, such as a new pool thread's start."""
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    names = []
    while frame is not None and len(names) < 3:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return len(names) == 3 and names[0] == "wait" and names[2] == function


@pytest.fixture
def interrupt_main() -> Iterator[Callable[[str], None]]:
    """``interrupt(function)``: from another thread, once the main thread is blocked in a
    wait inside ``function``, interrupt it with a real SIGINT (a notebook's Ctrl-C);
    returns when the KeyboardInterrupt has been raised there (once only)."""
    assert threading.current_thread() is threading.main_thread(), "run on the main thread"
    delivered = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if not delivered.is_set():
            delivered.set()
            raise KeyboardInterrupt

    def interrupt(function: str) -> None:
        while not _main_waits_in(function):  # it gets there: the test calls it next
            os.sched_yield()
        # A signal that lands just before the main thread enters the lock's system call
        # is only seen after that call returns, so it is sent again until it is seen.
        main = threading.main_thread().ident or 0
        while not delivered.is_set():
            signal.pthread_kill(main, signal.SIGINT)
            delivered.wait(0.01)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_interrupted_sync_soon_waits_for_its_batch_before_raising(
    ext4: Path, monkeypatch: pytest.MonkeyPatch, interrupt_main: Callable[[str], None]
) -> None:
    """A Ctrl-C while the caller waits for the batch to reach the disk: the caller's
    cleanup (an undo removing what the batch flushes) must not start before the batch
    has ended, so the interrupt is raised only then."""
    files, folders = make_batch(ext4)
    events: list[str] = []
    real_sync_all = durable.sync_all

    def sync_all(files: Sequence[Path], folders: Sequence[Path], **_: Any) -> None:
        interrupt_main("_once_begun")  # before `waiting` is called: the caller waits
        real_sync_all(files, folders)
        events.append("batch ended")

    monkeypatch.setattr(durable, "sync_all", sync_all)
    with pytest.raises(KeyboardInterrupt):
        durable.sync_soon(files, folders)
    events.append("interrupt raised")
    assert events == ["batch ended", "interrupt raised"]


def test_outcome_waits_through_an_interrupt_and_raises_it_after(
    interrupt_main: Callable[[str], None],
) -> None:
    job: Future[None] = Future()

    def interrupt_then_end() -> None:
        interrupt_main("outcome")
        job.set_exception(OSError(errno.EIO, "the batch failed"))

    helper = threading.Thread(target=interrupt_then_end)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        durable.outcome(job)
    assert job.done()  # the interrupt came through only once the job had ended
    helper.join(WAIT)
    error = durable.outcome(job)  # and without one, what the job raised is returned
    assert isinstance(error, OSError) and error.errno == errno.EIO


def test_sync_soon_run_inline_at_shutdown_keeps_the_callers_watch(
    ext4: Path, flushes: Flushes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the interpreter is shutting down the pool refuses work and the batch runs on
    the caller's thread: the caller's own watch must be there afterwards."""
    refusing = ThreadPoolExecutor(1)
    refusing.shutdown()  # a real executor that refuses work, as at shutdown
    monkeypatch.setattr(durable, "_batch_pool", lambda: refusing)
    files, folders = make_batch(ext4)
    with durable.watching(ext4):
        watch = durable._watched.watch
        future = durable.sync_soon(files, folders)
        assert future.done() and future.exception() is None
        assert durable._watched.watch is watch
        assert flushes.calls[-1].thread == threading.get_ident()  # it ran here
        os.fstat(watch.fd)  # and the caller's descriptor is still open


def test_an_error_reported_to_the_batchs_copy_marks_the_callers_watch(
    ext4: Path, flushes: Flushes
) -> None:
    """The copy shares the descriptor's error sample, so the kernel reports an error to
    one of them only: the caller's watch must know it saw one."""
    files, folders = make_batch(ext4)
    flushes.syncfs_result = -1
    with durable.watching(ext4):
        watch = durable._watched.watch
        assert watch is not None and not watch.failed
        assert durable.sync_soon(files, folders).result(WAIT) is None  # the fsyncs did it
        assert watch.failed
    assert flushes.syncfs == [-1] and flushes.fsyncs() == sorted(files + folders)


def test_fsync_dir_soon_is_not_waited_for_but_settle_waits_for_it(
    ext4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The home's fsync after the commit point runs on the pool while the caller goes
    on (to its records, and back to the user); ``settle`` waits for it."""
    events: list[str] = []
    release = threading.Event()
    threads: list[int] = []

    def slow_fsync_dir(folder: Path) -> None:
        threads.append(threading.get_ident())
        assert release.wait(WAIT), "the test never released the fsync"
        events.append("fsync done")

    monkeypatch.setattr(durable, "fsync_dir", slow_fsync_dir)
    durable.fsync_dir_soon(ext4)
    events.append("fsync_dir_soon returned")
    settled = ThreadPoolExecutor(1).submit(durable.settle)
    assert not settled.done()  # nothing to do but wait: it waits
    release.set()
    assert settled.result(WAIT) is None
    events.append("settled")
    assert events == ["fsync_dir_soon returned", "fsync done", "settled"]
    assert threads != [threading.get_ident()]


# --- 2, 3. a write error in the commit's batch ------------------------------------------


def _commit_batch(
    target: Path, hold: Callable[[], AbstractContextManager[object]]
) -> Callable[..., None]:
    """``durable.sync_all`` with the commit's batch (the one flushing ``target``) run
    inside ``hold()``, after telling the caller it waits for the disk, as the real one
    does; every other batch is the real one."""
    real_sync_all = durable.sync_all

    def sync_all(
        files: Sequence[Path],
        folders: Sequence[Path],
        *,
        waiting: Callable[[], object] | None = None,
    ) -> None:
        if target not in [Path(f) for f in files]:
            real_sync_all(files, folders, waiting=waiting)
            return
        if waiting is not None:
            waiting()
        with hold():
            real_sync_all(files, folders)

    return sync_all


class FailingBatch:
    """The commit's batch (the one flushing generation ``number``'s file) waits until the
    live swap has returned, really flushes, then reports EIO, as a write-back error would.

    Waiting for the swap makes the undo of a swap that really happened certain; the live
    set's ``sync`` notes what was loaded after each call (the swap, then the undo's).
    """

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, inst: Installer, live: LiveSet, number: int
    ) -> None:
        self.swapped = threading.Event()
        self.seen: list[tuple[int, dict[str, str]]] = []
        self.failed_on: list[int] = []
        target = inst.gens.path(number)
        real_live_sync = live.sync

        @contextmanager
        def after_the_swap_then_eio() -> Iterator[None]:
            assert self.swapped.wait(WAIT), "the live swap never returned"
            yield  # the batch really flushes here
            self.failed_on.append(threading.get_ident())
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(target))

        def live_sync(generation: Generation, files: Any) -> Any:
            try:
                return real_live_sync(generation, files)
            finally:
                self.seen.append((generation.number, _loaded()))
                self.swapped.set()

        monkeypatch.setattr(durable, "sync_all", _commit_batch(target, after_the_swap_then_eio))
        monkeypatch.setattr(live, "sync", live_sync)


def _says_the_home_could_not_be_written(exc: InstallError, home: Path, op: str) -> None:
    assert exc.step == op and str(home) in exc.message
    assert "writable" in exc.hint and "free space" in exc.hint
    cause = exc.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.EIO


def test_a_write_error_in_the_batch_of_an_update_puts_the_old_version_back_live(
    shell: Any, home: Path, arts: dict[str, Artifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, live = _live_hello(home, shell, arts["hello-1"])
    before = tree(home)
    staged = FailingBatch(monkeypatch, inst, live, number=2)
    update = Plan("update", (arts["hello-3"].change("1.0", grants=MAGICS),))
    with pytest.raises(InstallError) as info:
        inst.apply(update, fetch, reason="update hello", live=live)
    _says_the_home_could_not_be_written(info.value, home, "update")
    # The batch failed on its own thread, after 3.0 had really been swapped in.
    assert len(staged.failed_on) == 1 and staged.failed_on != [threading.get_ident()]
    assert staged.seen == [(2, {"hello": "3.0"}), (1, {"hello": "1.0"})]
    # The kernel: the old version is active and its magic works.
    assert _loaded() == {"hello": "1.0"} and live.generation == 1
    assert shell.run_cell("%hello").result == "hello from 1"
    _on_old_generation(inst, home, before)


def test_a_write_error_in_the_batch_of_an_install_leaves_nothing_of_it_loaded(
    shell: Any, home: Path, arts: dict[str, Artifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, live = _live_hello(home, shell, arts["hello-1"])
    before = tree(home)
    staged = FailingBatch(monkeypatch, inst, live, number=2)
    install = Plan("install", (arts["alpha-1"].add(), arts["beta-1"].add(grants=MAGICS)))
    with pytest.raises(InstallError) as info:
        inst.apply(install, fetch, reason="install beta", live=live)
    _says_the_home_could_not_be_written(info.value, home, "install")
    assert len(staged.failed_on) == 1
    assert staged.seen == [
        (2, {"hello": "1.0", "alpha": "1.0", "beta": "1.0"}),
        (1, {"hello": "1.0"}),
    ]
    assert _loaded() == {"hello": "1.0"} and live.generation == 1
    assert not shell.run_cell("%ask").success
    assert shell.run_cell("%hello").result == "hello from 1"
    _on_old_generation(inst, home, before)


# --- 4. a swap that fails while the batch runs ------------------------------------------


class WaitedFuture(Future[None]):
    """The batch's future as the commit sees it: it notes when someone waits on it."""

    def __init__(self, held: HeldBatch) -> None:
        super().__init__()
        self.held = held

    def result(self, timeout: float | None = None) -> None:
        self.held.note("waited")
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.held.note("waited")
        return super().exception(timeout)


class HeldBatch:
    """What happened, in order, around the commit's batch; the batch is held until the
    commit either waits on its future or enters the undo, whichever comes first."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.events: list[str] = []

    def note(self, event: str) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.cond:
            ok = self.cond.wait_for(
                lambda: "waited" in self.events or "undo-started" in self.events, WAIT
            )
        assert ok, "the commit neither waited for its batch nor undid"
        yield
        self.note("batch-finished")


def test_a_failed_swap_waits_for_the_batch_before_the_undo_removes_what_it_flushes(
    shell: Any, home: Path, arts: dict[str, Artifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch is held until the commit does one of two things: wait on the batch's
    future (a wrapper around ``sync_soon`` hands back a future that notes that) or enter
    ``Installer._undo`` (wrapped to note it). A commit that waits releases the batch by
    waiting, and enters the undo only after the batch finished; a commit that went
    straight from the failed swap to the undo releases it only from inside the undo, so
    "undo-started" comes before "batch-finished" every time, never by chance. Had the
    commit done neither, the batch's timeout would fail the test instead of hanging it.
    """
    inst, live = _live_hello(home, shell, arts["hello-1"])
    before = tree(home)
    record = HeldBatch()
    target = inst.gens.path(2)
    real_sync_soon = durable.sync_soon
    real_undo, real_live_sync = Installer._undo, live.sync

    def sync_soon(files: Sequence[Path], folders: Sequence[Path]) -> Future[None]:
        seen = WaitedFuture(record)

        def copy(done: Future[None]) -> None:
            error = done.exception()
            if error is None:
                seen.set_result(None)
            else:
                seen.set_exception(error)

        real_sync_soon(files, folders).add_done_callback(copy)
        return seen

    def live_sync(generation: Generation, files: Any) -> Any:
        try:
            return real_live_sync(generation, files)
        except InstallError:
            record.note("swap-failed")
            raise

    def undo(self: Installer, *args: Any) -> None:
        record.note("undo-started")
        real_undo(self, *args)

    monkeypatch.setattr(durable, "sync_all", _commit_batch(target, record.held))
    monkeypatch.setattr(durable, "sync_soon", sync_soon)
    monkeypatch.setattr(Installer, "_undo", undo)
    monkeypatch.setattr(live, "sync", live_sync)
    update = Plan("update", (arts["hello-2"].change("1.0", grants=MAGICS),))
    with pytest.raises(InstallError) as info:
        inst.apply(update, fetch, reason="update hello", live=live)
    assert record.events == ["swap-failed", "waited", "batch-finished", "undo-started"]
    assert info.value.step == "live" and info.value.plugin_id == "hello"
    assert isinstance(info.value.__cause__, ActivationError)
    assert "version 2 cannot start" in str(info.value.__cause__.__cause__)
    assert _loaded() == {"hello": "1.0"} and live.generation == 1
    assert shell.run_cell("%hello").result == "hello from 1"
    _on_old_generation(inst, home, before)


# --- 5. the home's fsync after the commit point -----------------------------------------


@dataclass
class HomeFsync:
    """One fsync_dir of the home: where and when it ran."""

    thread: int
    journal_there: bool
    current: str
    finished: bool = False


def test_an_install_returns_without_waiting_for_the_homes_fsync_which_follows_the_journal(
    ext4: Path, home: Path, shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsync that puts the commit point's rename on the disk starts once the journal
    is gone, on the pool; the install returns, live and audited, while it is held, and
    ``close`` waits for it."""
    assert home.is_relative_to(ext4)
    monkeypatch.setattr(syncfs, "DIRTY_LIMIT", sys.maxsize)  # the batch is one syncfs
    market = Marketplace(home, host=IPythonHost(shell))
    where = market.installer.home
    release, entered = threading.Event(), threading.Event()
    fsyncs: list[HomeFsync] = []
    real_dir = durable.fsync_dir

    def fsync_dir(folder: Path) -> None:
        if Path(folder) != where:
            real_dir(folder)
            return
        current = (where / "current").read_text() if (where / "current").exists() else ""
        seen = HomeFsync(threading.get_ident(), journal.path(where).exists(), current.strip())
        fsyncs.append(seen)
        if not seen.journal_there:  # a batch's fsync (a fallback) is waited for inside
            entered.set()
            assert release.wait(WAIT), "the test never released the fsync"
        real_dir(folder)
        seen.finished = True

    monkeypatch.setattr(durable, "fsync_dir", fsync_dir)
    try:
        market.install("csv-preview", yes=True)
        assert "csv_preview" in shell.magics_manager.magics["line"]  # live meanwhile
        assert market.audit(1)[0].result == "ok"
        assert entered.wait(WAIT)  # started by the install (maybe after it returned)...
        assert [f.finished for f in fsyncs] == [False]  # ...and still held
    finally:
        release.set()
        market.close()
    assert [(f.finished, f.journal_there, f.current) for f in fsyncs] == [(True, False, "1")]
    assert fsyncs[0].thread != threading.get_ident()  # on the pool
    assert Marketplace(home, live=False).check().problems == ()


# --- 6. unpacking while the next artifact downloads -------------------------------------


def _two_needed(arts: dict[str, Artifact]) -> Plan:
    return Plan("install", (arts["alpha-1"].add(explicit=False), arts["beta-1"].add()))


def test_several_artifacts_unpack_on_the_job_thread_and_a_lone_one_here(
    home: Path, arts: dict[str, Artifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = Installer(Settings(home=home), faults="")
    real_stage = inst.store.stage
    unpacked_on: dict[str, int] = {}

    def stage(sha256: str, *args: Any, **kwargs: Any) -> Any:
        unpacked_on[sha256] = threading.get_ident()
        return real_stage(sha256, *args, **kwargs)

    monkeypatch.setattr(inst.store, "stage", stage)
    inst.apply(Plan("install", (arts["hello-1"].add(),)), fetch, reason="one")
    assert unpacked_on == {arts["hello-1"].sha256: threading.get_ident()}
    unpacked_on.clear()
    inst.apply(_two_needed(arts), fetch, reason="two")
    job_thread, _ = _batch_thread_state()
    assert unpacked_on == {arts["alpha-1"].sha256: job_thread, arts["beta-1"].sha256: job_thread}
    assert set(inst.current().plugins) == {"hello", "alpha", "beta"}
    assert inst.check().problems == ()


def test_an_interrupted_download_waits_for_the_unpacking_before_the_undo(
    home: Path,
    arts: dict[str, Artifact],
    monkeypatch: pytest.MonkeyPatch,
    interrupt_main: Callable[[str], None],
) -> None:
    """A Ctrl-C while the second artifact downloads and the first one unpacks on the job
    thread: the undo, which removes the store's temporary folders, starts only once that
    unpacking has ended, and the home is left as it was."""
    inst = Installer(Settings(home=home), faults="")
    inst.apply(Plan("install", (arts["hello-1"].add(),)), fetch, reason="1")
    before = tree(home)
    events: list[str] = []
    real_stage, real_undo = inst.store.stage, inst._undo
    first = arts["alpha-1"].sha256

    def stage(sha256: str, *args: Any, **kwargs: Any) -> Any:
        if sha256 != first:
            return real_stage(sha256, *args, **kwargs)
        interrupt_main("second_download")
        # Unpack only once the main thread has moved on: to wait for this (as it must),
        # or to the undo (which it must not start yet).
        while not (_main_waits_in("outcome") or "undo" in events):
            os.sched_yield()
        staged = real_stage(sha256, *args, **kwargs)
        events.append("unpacked")
        return staged

    def undo(*args: Any) -> None:
        events.append("undo")
        real_undo(*args)

    never = threading.Event()

    def second_download(item: Any) -> bytes:
        never.wait(WAIT)  # the Ctrl-C lands here
        raise AssertionError("the download was not interrupted")

    monkeypatch.setattr(inst.store, "stage", stage)
    monkeypatch.setattr(inst, "_undo", undo)
    with pytest.raises(KeyboardInterrupt):
        inst.apply(
            _two_needed(arts),
            lambda item: second_download(item) if item.id == "beta" else fetch(item),
            reason="2",
        )
    assert events == ["unpacked", "undo"]
    assert tree(home) == before  # no temporary folder left in the store
    assert inst.current().number == 1 and not journal.pending(home)
    assert inst.check().problems == ()


def test_a_refused_artifact_stops_the_downloads_after_it(
    home: Path, arts: dict[str, Artifact], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = Installer(Settings(home=home), faults="")
    broken = tmp_path / "registry" / "broken-1.0.zip"
    broken.write_bytes(b"not a zip archive")
    bad = Artifact("broken", "1.0", broken)
    refused = threading.Event()
    real_soon = durable.soon
    jobs: list[Future[Any]] = []

    def soon(job: Callable[[], Any]) -> Future[Any]:
        future = real_soon(job)
        if not jobs:  # the broken artifact's unpacking: done (and failed) sets the event
            future.add_done_callback(lambda _: refused.set())
        jobs.append(future)
        return future

    fetched: list[str] = []

    def fetch_each(item: Any) -> bytes:
        fetched.append(item.id)
        if item.id == "alpha":  # the broken one has been refused by the time this is in
            assert refused.wait(WAIT), "the broken artifact was never unpacked"
        return fetch(item)

    monkeypatch.setattr(durable, "soon", soon)
    plan = Plan("install", (bad.add(), arts["alpha-1"].add(), arts["hello-1"].add()))
    with pytest.raises(PlugmarketError) as refusal:
        inst.apply(plan, fetch_each, reason="three")
    assert "broken" in refusal.value.message
    assert fetched == ["broken", "alpha"]  # hello was never downloaded
    assert inst.current().number == 0 and inst.store.names() == []
    assert not journal.pending(home) and inst.check().problems == ()
