"""Durable writes for the installer: fsync helpers and a small fsync thread pool.

A file survives a power cut once its bytes are fsynced and the folder holding
its name is fsynced after the name was made (created or renamed). The
installer's crash-safety argument (docs/decisions/0008-transactions.md) is an
*order* of such steps: everything a generation relies on (its file, the new
store entries, the journal) before ``current`` names it.

Independent fsyncs need no order among themselves, and each one mostly waits
for the disk with the GIL released, so :func:`sync_all` runs a batch of them
concurrently on a process-wide pool of :data:`SYNC_THREADS` threads and
returns only when every one has finished. The order the argument needs comes
from waiting for a whole batch before the next step, never from the order
inside a batch. Other work goes to another thread (:func:`soon`) only where
the two threads then wait for different things: an artifact unpacks, making
its files, while the next one downloads, waiting for the server. Work that is
all Python stays on the caller's thread: on another it only contends for the
GIL, and each hand-off waits for a core on a busy machine.

A small file whose durability can wait for the next batch (the registry's
highest trusted index version) is written without an fsync and noted with
:func:`owe`: the next :func:`sync_all` in the process (an install's commit)
fsyncs it and its folder along with its own files, so it is on the disk
before any generation that relied on it is switched to, without a wait of
its own.

Code that writes many files for one batch (the store unpacking an artifact)
runs under :func:`deferred`: on that thread, :func:`fsync_dir` and
:func:`fsync_written` then note what they would flush instead of flushing it,
and the caller fsyncs all of it in its batch, before anything refers to it.

A transaction runs under :func:`watching` its home: on that thread, a batch
whose every path is on the home's file system is flushed by one ``syncfs``
where Linux can be trusted with it (:mod:`plugmarket._internal.syncfs` says
when), and by its fsyncs everywhere else or if ``syncfs`` reports an error.

The fsync of a folder after the commit point's rename (:func:`fsync_dir_soon`)
runs on the pool while the caller records what it did and returns: nobody
waits for it but :func:`settle` and the interpreter's exit.

Invariants:

- :func:`sync_all` returns or raises only when every fsync of its batch has
  finished, so a caller may clean up whatever the batch names.
- A single fsync never waits for anything, so the pool cannot wait for itself.
- :func:`settle`, and the interpreter's exit, return only once every
  :func:`fsync_dir_soon` started before has finished.
- A forked child makes a new pool on first use (the parent's threads do not
  exist in it); once the interpreter is shutting down and the pool refuses
  work, fsyncs run inline, one after another.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from plugmarket._internal import syncfs

__all__ = [
    "SYNC_THREADS",
    "Deferred",
    "deferred",
    "fsync_dir",
    "fsync_dir_soon",
    "fsync_file",
    "fsync_written",
    "gather",
    "outcome",
    "owe",
    "settle",
    "soon",
    "sync_all",
    "sync_soon",
    "watching",
    "write_temp",
]

SYNC_THREADS = 8  # concurrent fsyncs; each waits for the disk, without the GIL

T = TypeVar("T")

_deferring = threading.local()  # .into: the Deferred collecting this thread's fsyncs
_watched = threading.local()  # .watch: the syncfs.Watch of this thread's transaction


@dataclass
class Deferred:
    """The fsyncs :func:`deferred` held back: the caller must run them (:func:`sync_all`)."""

    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)


@contextmanager
def deferred() -> Iterator[Deferred]:
    """On this thread, note the fsyncs of :func:`fsync_dir` and :func:`fsync_written`
    instead of running them; the caller fsyncs what the result lists, in its batch."""
    outer = getattr(_deferring, "into", None)
    held = Deferred()
    _deferring.into = held
    try:
        yield held
    finally:
        _deferring.into = outer


def fsync_written(handle: BinaryIO, path: str | Path) -> None:
    """Flush and fsync a file just written through ``handle`` (still open), whose name is
    ``path``; under :func:`deferred`, only flush it and note ``path`` for the caller.

    Raises:
        OSError: it cannot be flushed.
    """
    handle.flush()
    held: Deferred | None = getattr(_deferring, "into", None)
    if held is not None:
        held.files.append(Path(path))
        return
    os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """fsync a folder so names made in it survive a power cut (best effort where unsupported).

    Under :func:`deferred`, the folder is noted for the caller instead.
    """
    held: Deferred | None = getattr(_deferring, "into", None)
    if held is not None:
        held.folders.append(Path(folder))
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_dir_soon(folder: Path) -> None:
    """:func:`fsync_dir` on the pool, not waited for: it finishes while the caller
    goes on. :func:`settle` waits for every one started in this process, and so
    does the interpreter's exit (the pool's threads are joined then, after the
    work already queued); a process killed before it ends may lose what it
    would have flushed, and nothing else.
    """
    with _trailing_lock:  # listed as it starts: a settle() on another thread sees it
        _trailing[:] = [f for f in _trailing if not f.done()]
        _trailing.append(_start(functools.partial(fsync_dir, folder)))


def settle() -> None:
    """Wait for every :func:`fsync_dir_soon` this process started (best effort: they
    never raise)."""
    with _trailing_lock:
        started = list(_trailing)
    for future in started:
        outcome(future)


@contextmanager
def watching(folder: Path) -> Iterator[None]:
    """On this thread, flush batches on ``folder``'s file system with one ``syncfs``
    where it is trusted (see :mod:`plugmarket._internal.syncfs`). ``folder`` must
    exist; open it before anything the batches will flush is written."""
    outer = getattr(_watched, "watch", None)
    watch = syncfs.open_watch(folder)
    _watched.watch = watch
    try:
        yield
    finally:
        _watched.watch = outer
        if watch is not None:
            watch.close()


def fsync_file(path: Path) -> None:
    """fsync a file already written and closed.

    Raises:
        OSError: it cannot be opened or flushed.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(path: Path, data: bytes, *, sync: bool = True) -> Path:
    """Write ``data`` to the fixed temporary name beside ``path`` (``.<name>.tmp``).

    With ``sync`` it is fsynced here; otherwise the caller fsyncs it (with
    others, :func:`sync_all`). The caller then renames it over ``path`` and
    fsyncs the folder.

    Returns:
        The temporary file.

    Raises:
        OSError: the folder is not writable or the disk is full.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        if sync:
            out.flush()
            os.fsync(out.fileno())
    return tmp


def owe(path: Path) -> None:
    """Note a file written and renamed into place without an fsync: the next
    :func:`sync_all` in this process fsyncs it and its folder (best effort)."""
    with _owed_lock:
        _owed.add(Path(path))


def sync_all(
    files: Sequence[Path],
    folders: Sequence[Path],
    *,
    waiting: Callable[[], object] | None = None,
) -> None:
    """fsync ``files`` and ``folders`` (best effort, as :func:`fsync_dir`), concurrently,
    with whatever :func:`owe` noted since the last batch.

    Under :func:`watching`, one ``syncfs`` does it all where it is trusted for
    every path (the fsyncs run only if it is not, or reports an error).
    ``waiting`` is called just before the wait for the disk begins.

    Returns when every one is done, so the caller may then rely on all of them.

    Raises:
        OSError: a file could not be flushed (raised after every fsync has finished).
    """
    with _owed_lock:
        owed = sorted(_owed)
        _owed.clear()
    owed_folders = sorted({f.parent for f in owed})
    if files or folders:
        watch: syncfs.Watch | None = getattr(_watched, "watch", None)
        everything = [*files, *folders, *owed, *owed_folders]
        if watch is not None and syncfs.covers(watch, everything):
            if waiting is not None:
                waiting()
                waiting = None
            if syncfs.flush(watch):
                return
    jobs: list[Callable[[], None]] = [functools.partial(fsync_file, f) for f in files]
    jobs += [functools.partial(fsync_dir, d) for d in folders]
    jobs += [functools.partial(_fsync_owed, f) for f in owed]
    jobs += [functools.partial(fsync_dir, d) for d in owed_folders]
    if waiting is not None:
        waiting()
    if jobs:
        gather([_start(job) for job in jobs[1:]], first=jobs[0])


def sync_soon(files: Sequence[Path], folders: Sequence[Path]) -> Future[None]:
    """:func:`sync_all` on another thread (with this thread's :func:`watching`), so the
    caller can work while the disk does; wait for the future (:func:`outcome`) before
    relying on any of it, or removing what it flushes.

    Returns once the batch waits for the disk (or has ended); see :func:`_once_begun`.
    """
    watch: syncfs.Watch | None = getattr(_watched, "watch", None)
    # Its own descriptor (the same error sample): closing the caller's watch cannot
    # pull it from under the batch.
    mine = watch.copy() if watch is not None else None

    def batch(begun: Callable[[], object]) -> None:
        outer = getattr(_watched, "watch", None)  # the caller's own, when run inline
        _watched.watch = mine
        try:
            sync_all(files, folders, waiting=begun)
        finally:
            _watched.watch = outer
            if mine is not None:
                if watch is not None and mine.failed:
                    watch.failed = True  # the error was reported once, to the copy
                mine.close()

    return _once_begun(soon, batch)


def soon(job: Callable[[], T]) -> Future[T]:
    """Run ``job`` on the job thread (where :func:`sync_soon`'s batches run) while the
    caller goes on; wait for it (:func:`outcome`) before removing what it writes.

    For work that waits for the disk or lets the caller wait for something else
    meanwhile (unpacking one artifact while the next downloads). Inline once the
    interpreter is shutting down.
    """
    try:
        return _batch_pool().submit(job)
    except RuntimeError:  # the interpreter is shutting down: the pool takes no more work
        return _inline(job)


def _once_begun(
    submit: Callable[[Callable[[], None]], Future[None]],
    job: Callable[[Callable[[], object]], None],
) -> Future[None]:
    """Submit ``job(begun)`` and return once it has called ``begun`` (just before its
    system call) or ended.

    The job's own Python needs the GIL, which a caller going straight on to Python
    work would hold for up to the interpreter's switch interval (5 ms) before the
    system call even started. If this wait is interrupted (a Ctrl-C), the job is
    waited for before the interruption goes on: the caller's cleanup relies on it.
    """
    begun = threading.Event()
    future = submit(functools.partial(job, begun.set))
    try:
        future.add_done_callback(lambda _: begun.set())  # also if it failed before
        begun.wait()
    except BaseException:
        outcome(future)
        raise
    return future


def outcome(future: Future[T]) -> BaseException | None:
    """Wait for ``future`` to end, even through a Ctrl-C (re-raised once it has ended),
    and return what it raised (None if nothing).

    For jobs whose end the caller's cleanup relies on: it may remove what they flush.
    """
    interrupted: BaseException | None = None
    while True:
        try:
            error = future.exception()
            break
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted
    return error


def _fsync_owed(path: Path) -> None:
    """fsync a file noted by :func:`owe`, best effort: it may be gone (a cache is
    cleared) or refuse (a read-only cache), which is no failure of the batch."""
    with contextlib.suppress(OSError):
        fsync_file(path)


def _start(job: Callable[[], T]) -> Future[T]:
    try:
        return _pool().submit(job)
    except RuntimeError:  # the interpreter is shutting down: the pool takes no more work
        return _inline(job)


def _inline(job: Callable[[], T]) -> Future[T]:
    done: Future[T] = Future()
    try:
        done.set_result(job())
    except BaseException as exc:  # handed to whoever waits, as the pool does
        done.set_exception(exc)
    return done


def gather(futures: Sequence[Future[T]], *, first: Callable[[], T] | None = None) -> list[T]:
    """Wait for every future, running ``first`` on this thread meanwhile.

    Returns:
        The results in order (``first``'s first).

    Raises:
        BaseException: the first failure in that order, once every job has finished.
    """
    results: list[T] = []
    error: BaseException | None = None
    if first is not None:
        try:
            results.append(first())
        except BaseException as exc:
            error = exc
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
    return results


_owed: set[Path] = set()
_owed_lock = threading.Lock()
_trailing: list[Future[None]] = []  # fsync_dir_soon's, until settle() or the exit
_trailing_lock = threading.Lock()
_pool_now: ThreadPoolExecutor | None = None
_batch_pool_now: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _pool_now
    with _pool_lock:
        if _pool_now is None:
            _pool_now = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="plugmarket-sync")
        return _pool_now


def _batch_pool() -> ThreadPoolExecutor:
    """The job thread (:func:`soon`), for :func:`sync_soon`'s batches among others:
    apart from the fsync pool, which batches wait for, so that pool never waits for
    itself. A job here never waits for another job here."""
    global _batch_pool_now
    with _pool_lock:
        if _batch_pool_now is None:
            _batch_pool_now = ThreadPoolExecutor(1, thread_name_prefix="plugmarket-batch")
        return _batch_pool_now


def _forget_pool() -> None:
    global _pool_now, _batch_pool_now, _pool_lock, _owed_lock, _trailing_lock
    _pool_now = _batch_pool_now = None
    _pool_lock = threading.Lock()
    _owed_lock = threading.Lock()
    _trailing_lock = threading.Lock()
    _trailing.clear()  # the parent's threads do not exist here


os.register_at_fork(after_in_child=_forget_pool)
