"""The audit log and the statistics: real files in a tmp home, real concurrent processes,
and the damage a crash or a hand edit leaves behind."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from plugmarket._internal.records import AuditLog, Stats
from plugmarket.errors import CapabilityDenied, PlugmarketError
from plugmarket.host import PlainHost
from plugmarket.loader import load
from plugmarket.results import AuditEntries, AuditEntry, PluginChange, PluginStats, StatsTable
from plugmarket.settings import Settings
from plugmarket.sources import Source
from tests.support.plugins import write_plugin

WORKERS = 4
EACH = 50


def run_together(script: str, argv: Sequence[Sequence[str]]) -> None:
    """Run one process per argv, all released at once: each prints 'ready' and waits on
    stdin; the test writes to every stdin only when all are ready (a real barrier)."""
    prelude = "import sys\nprint('ready', flush=True)\nsys.stdin.readline()\n"
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", prelude + textwrap.dedent(script), *args],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for args in argv
        ]
        try:
            for p in procs:
                assert p.stdout is not None
                assert p.stdout.readline().strip() == "ready"
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                _, err = p.communicate(timeout=90)
                assert p.returncode == 0, err
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()


# --- audit log: writing and reading ------------------------------------------------------


def test_entries_read_back_newest_first_with_every_field(home: Path) -> None:
    log = AuditLog(home)
    log.append(
        AuditLog.entry(
            "install",
            "csv-preview",
            surface="cli",
            plugins=[
                PluginChange("csv-preview", "", "1.0.0", ("display",)),
                PluginChange("table-kit", "", "2.1.0"),
            ],
            generation=3,
        )
    )
    log.append(
        AuditEntry(
            operation="update",
            surface="magic",
            subject="csv-preview",
            plugins=(PluginChange("csv-preview", "1.0.0", "1.1.0", ("display",)),),
            result="error: the new version raised in activate",
        )
    )
    entries = log.read()
    assert [e.operation for e in entries] == ["update", "install"]
    update, install = entries
    assert install.plugins == (
        PluginChange("csv-preview", "", "1.0.0", ("display",)),
        PluginChange("table-kit", "", "2.1.0"),
    )
    assert install.ok and install.generation == 3 and install.surface == "cli"
    assert not update.ok and update.result.startswith("error: ")
    assert update.plugins[0].old_version == "1.0.0"
    assert update.time.tzinfo is not None and update.time.utcoffset().total_seconds() == 0
    import getpass
    import os
    import socket

    assert (install.user, install.pid, install.host) == (
        getpass.getuser(),
        os.getpid(),
        socket.gethostname(),
    )
    assert entries.notes == ()


def test_log_lines_are_json_with_the_documented_fields(home: Path) -> None:
    AuditLog(home).append(AuditLog.entry("rate", "todo", note="4 stars"))
    (line,) = (home / "audit.log").read_bytes().splitlines()
    obj = json.loads(line)
    assert set(obj) == {
        "v",
        "time",
        "user",
        "pid",
        "host",
        "surface",
        "operation",
        "subject",
        "plugins",
        "result",
        "denial",
        "generation",
        "note",
    }
    assert obj["result"] == "ok" and obj["note"] == "4 stars"
    assert datetime.fromisoformat(obj["time"]).tzinfo is not None


def test_limit_counts_entries_and_none_reads_all(home: Path) -> None:
    log = AuditLog(home)
    for i in range(5):
        log.append(AuditLog.entry("enable", f"p{i}"))
    assert [e.subject for e in log.read(2)] == ["p4", "p3"]
    assert len(log.read(None)) == 5
    assert log.read(0) == []
    with pytest.raises(PlugmarketError, match="audit limit -1"):
        log.read(-1)


def test_reading_a_long_log_crosses_block_boundaries(home: Path) -> None:
    log = AuditLog(home)
    for i in range(700):
        log.append(AuditLog.entry("grant", f"plugin-{i}", note="x" * 100))
    assert (home / "audit.log").stat().st_size > 3 * 64 * 1024
    every = log.read(None)
    assert [e.subject for e in every] == [f"plugin-{i}" for i in reversed(range(700))]
    assert [e.subject for e in log.read(3)] == ["plugin-699", "plugin-698", "plugin-697"]


def test_empty_or_missing_log_reads_as_nothing(home: Path) -> None:
    entries = AuditLog(home / "not-yet").read()
    assert isinstance(entries, AuditEntries) and entries == []
    assert repr(entries) == "(the audit log is empty)"


def test_unknown_surface_is_refused() -> None:
    with pytest.raises(PlugmarketError, match="surface 'gui'"):
        AuditEntry(operation="install", surface="gui")


def test_unwritable_home_is_a_plugmarket_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file where the home folder should be")
    with pytest.raises(PlugmarketError, match="cannot lock"):
        AuditLog(home).append(AuditLog.entry("install", "x"))


# --- audit log: capability denials --------------------------------------------------------


def test_denials_from_a_real_plugin_are_logged(tmp_path: Path, home: Path) -> None:
    pkg = write_plugin(
        tmp_path, "snoop", "def attempt():\n    return open('/etc/hostname').read()\n"
    )
    log = AuditLog(home)
    plugin = load(
        Source.local(pkg), settings=Settings(home=home), host=PlainHost(), audit=log.sink("magic")
    )
    with pytest.raises(CapabilityDenied):
        plugin.module.attempt()
    (entry,) = log.read()
    assert entry.operation == "denied" and entry.surface == "magic"
    assert entry.denial is not None
    assert (entry.denial.plugin_id, entry.denial.operation, entry.denial.target) == (
        "snoop",
        "open",
        "/etc/hostname",
    )
    assert entry.denial.capability == "fs.read:/etc/hostname"
    assert entry.result.startswith("error: plugin 'snoop' was denied open")


def test_denial_is_never_lost_to_an_unwritable_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    denied = CapabilityDenied(plugin_id="p", capability="net", operation="connect", target="x:80")
    with caplog.at_level(logging.WARNING, logger="plugmarket.records"):
        entry = AuditLog(home).denial(denied, surface="api")
    assert entry.denial is not None and entry.denial.capability == "net"
    assert "could not record a capability denial" in caplog.text


# --- audit log: damage ---------------------------------------------------------------------


def test_half_written_last_line_is_skipped_and_never_glued_to_the_next(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(home)
    log.append(AuditLog.entry("install", "first"))
    whole = (home / "audit.log").read_bytes()
    with open(home / "audit.log", "ab") as f:
        f.write(whole[: len(whole) // 2])  # a crash in the middle of the next append
    with caplog.at_level(logging.WARNING, logger="plugmarket.records"):
        entries = log.read()
    assert [e.subject for e in entries] == ["first"]
    assert entries.notes == ("skipped the unfinished last line (a write in progress or cut short)",)
    assert "unfinished last line" in caplog.text

    log.append(AuditLog.entry("install", "second"))
    entries = log.read()
    assert [e.subject for e in entries] == ["second", "first"]
    assert entries.notes == ("skipped 1 damaged line(s) (cut short by a crash?)",)
    assert "note: skipped 1 damaged line(s)" in repr(entries)


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json at all",
        b"\xff\xfe\x00 invalid utf-8",
        b'{"v": 1, "operation": "install"}',  # JSON of the wrong shape
        b'{"v": 2, "future": true}',  # a newer format
        b"[1, 2, 3]",
        b'{"v": 1, "v": 1}',  # repeated key
        b"[" * 100_000,  # nested deep enough to break a naive parser
    ],
)
def test_damaged_lines_in_the_middle_are_skipped(home: Path, garbage: bytes) -> None:
    log = AuditLog(home)
    log.append(AuditLog.entry("install", "before"))
    with open(home / "audit.log", "ab") as f:
        f.write(garbage + b"\n")
    log.append(AuditLog.entry("install", "after"))
    entries = log.read()
    assert [e.subject for e in entries] == ["after", "before"]
    assert len(entries.notes) == 1 and "1 damaged line" in entries.notes[0]


# --- audit log: several processes ----------------------------------------------------------

APPENDER = """
from plugmarket._internal.records import AuditLog
home, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = AuditLog(home)
for i in range(count):
    log.append(AuditLog.entry("install", f"plugin-{worker}", note=f"{worker}:{i}" + "x" * 500))
"""


def test_concurrent_appends_lose_and_interleave_nothing(home: Path) -> None:
    run_together(APPENDER, [(str(home), str(w), str(EACH)) for w in range(WORKERS)])
    raw = (home / "audit.log").read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == WORKERS * EACH
    notes = [json.loads(line)["note"].rstrip("x") for line in lines]  # every line intact
    assert sorted(notes) == sorted(f"{w}:{i}" for w in range(WORKERS) for i in range(EACH))
    for w in range(WORKERS):  # each process's own lines stay in its order
        mine = [n for n in notes if n.startswith(f"{w}:")]
        assert mine == [f"{w}:{i}" for i in range(EACH)]
    entries = AuditLog(home).read(None)
    assert len(entries) == WORKERS * EACH and entries.notes == ()
    assert len({e.pid for e in entries}) == WORKERS


# --- statistics ------------------------------------------------------------------------------


def test_events_are_counted_and_timed(home: Path) -> None:
    stats = Stats(home)
    stats.record("csv-preview", "install", seconds=0.5)
    stats.record("csv-preview", "load", seconds=0.004)
    stats.record("csv-preview", "load", seconds=0.002)
    stats.record("csv-preview", "load")
    stats.record("csv-preview", "update")
    after = stats.record("todo", "uninstall")
    assert after == PluginStats("todo", uninstalls=1, last_used=after.last_used) and isinstance(
        after.last_used, datetime
    )

    got = stats.get("csv-preview")
    assert (got.installs, got.updates, got.uninstalls, got.loads) == (1, 1, 0, 3)
    timing = got.load_time
    assert (timing.count, timing.last, timing.best) == (2, 0.002, 0.002)
    assert timing.total == pytest.approx(0.006) and timing.mean == pytest.approx(0.003)
    assert got.times["install"].count == 1
    assert "3 load(s)" in repr(got) and "mean 3.0 ms" in repr(got)

    table = stats.get()
    assert isinstance(table, StatsTable) and sorted(table) == ["csv-preview", "todo"]
    assert stats.get("never-seen") == PluginStats("never-seen")


def test_stats_survive_a_new_process_reading_them(home: Path) -> None:
    Stats(home).record("units", "load", seconds=0.01)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from plugmarket._internal.records import Stats; "
            "s = Stats(sys.argv[1]).get('units'); print(s.loads, s.load_time.best)",
            str(home),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["1", "0.01"]


@pytest.mark.parametrize(
    ("plugin_id", "event", "seconds", "message"),
    [
        ("ok", "explode", None, "event 'explode'"),
        ("ok", "load", -1.0, "-1.0 is not a number of seconds"),
        ("ok", "load", float("nan"), "nan is not a number"),
        ("ok", "load", "fast", "'fast' is not a number"),
        ("../../etc", "load", None, "not a valid plugin id"),
    ],
)
def test_invalid_events_are_refused(
    home: Path, plugin_id: str, event: str, seconds: object, message: str
) -> None:
    with pytest.raises(PlugmarketError, match=message):
        Stats(home).record(plugin_id, event, seconds)  # type: ignore[arg-type]
    assert not (home / "stats.json").exists() and not (home / "stats.log").exists()


def test_one_transaction_counts_every_plugin_in_one_write(home: Path) -> None:
    stats = Stats(home)
    stats.record("base", "install")
    after = stats.record_many(
        [("chain-top", "install"), ("base", "update"), ("old", "uninstall")], seconds=0.02
    )
    assert sorted(after) == ["base", "chain-top", "old"]
    assert (after["base"].installs, after["base"].updates) == (1, 1)
    assert after["base"].times["update"].last == 0.02
    assert stats.get("old").uninstalls == 1 and stats.get("chain-top").installs == 1
    assert stats.record_many([]) == {}


def test_a_transaction_and_the_loads_after_it_count_in_one_write_each_with_its_time(
    home: Path,
) -> None:
    stats = Stats(home)
    stats.record("lib", "install", seconds=0.5)
    after = stats.record_each(
        [("app", "install", 0.03), ("lib", "load", 0.002), ("app", "load", 0.004)]
    )
    assert (after["app"].installs, after["app"].loads) == (1, 1)
    assert after["app"].times["install"].last == 0.03
    assert after["app"].times["load"].last == 0.004
    assert after["lib"].times["load"].last == 0.002 and after["lib"].installs == 1
    assert Stats(home).get("app") == after["app"]  # as a new reader reads the file
    assert stats.record_each([]) == {}
    with pytest.raises(PlugmarketError, match="load time of -1"):
        stats.record_each([("app", "load", -1)])
    assert Stats(home).get("app") == after["app"]


def test_a_batch_with_one_invalid_event_counts_nothing(home: Path) -> None:
    stats = Stats(home)
    stats.record("kept", "install")
    before = (home / "stats.log").read_bytes()
    with pytest.raises(PlugmarketError, match="event 'explode'"):
        stats.record_many([("fine", "install"), ("kept", "explode")])
    assert (home / "stats.log").read_bytes() == before


STATS_WORKER = """
from plugmarket._internal import stats as stats_module
from plugmarket._internal.records import Stats
home, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
stats_module.COMPACT_AT = int(sys.argv[4])
stats = Stats(home)
for i in range(count):
    stats.record("shared", "load", seconds=0.25)
    stats.record(f"own-{worker}", "install")
"""


@pytest.mark.parametrize("fold_at", [1 << 30, 4000], ids=["no-fold", "folding"])
def test_concurrent_records_add_up_exactly(home: Path, fold_at: int) -> None:
    run_together(
        STATS_WORKER, [(str(home), str(w), str(EACH), str(fold_at)) for w in range(WORKERS)]
    )
    if fold_at < (1 << 30):  # the log was folded into the table, several times over
        assert (home / "stats.log").stat().st_size <= fold_at + 200
        assert json.loads((home / "stats.json").read_bytes())["log"]["upto"] > 0
    stats = Stats(home)
    shared = stats.get("shared")
    assert shared.loads == WORKERS * EACH
    assert shared.load_time.count == WORKERS * EACH
    assert shared.load_time.total == 0.25 * WORKERS * EACH  # exact: quarters add exactly
    for w in range(WORKERS):
        assert stats.get(f"own-{w}").installs == EACH
    assert not list(home.glob(".stats.*.tmp-*"))


def test_a_long_log_is_folded_into_the_table_and_counts_stay_exact(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugmarket._internal import stats as stats_module

    monkeypatch.setattr(stats_module, "COMPACT_AT", 600)
    stats = Stats(home)
    for i in range(40):
        stats.record_each([("app", "load", 0.5), (f"p{i % 3}", "install", None)])
    log = (home / "stats.log").read_bytes()
    assert len(log) <= 600 + 200 and log.count(b"\n") < 10  # started again after each fold
    assert json.loads((home / "stats.json").read_bytes())["plugins"]["app"]["loads"] > 30
    got = Stats(home).get()
    assert got["app"].loads == 40 and got["app"].load_time.total == 20.0
    assert [got[f"p{k}"].installs for k in range(3)] == [14, 13, 13]


def _loads_then_fold_next(
    home: Path, monkeypatch: pytest.MonkeyPatch, loads: int, seconds: float
) -> tuple[Stats, Callable[..., None]]:
    """Statistics with ``loads`` loads of "app", whose next write folds the log; and the
    real ``recordfile.write_atomic``, for a test that stands in for it."""
    from plugmarket._internal import recordfile
    from plugmarket._internal import stats as stats_module

    stats = Stats(home)
    for _ in range(loads):
        stats.record("app", "load", seconds)
    monkeypatch.setattr(stats_module, "COMPACT_AT", 100)
    return stats, recordfile.write_atomic


def test_a_fold_cut_short_between_its_two_writes_counts_nothing_twice(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugmarket._internal import recordfile

    stats, real = _loads_then_fold_next(home, monkeypatch, 5, 0.25)
    writes: list[Path] = []

    def die_before_the_new_log(path: Path, data: bytes, *, fsync: bool) -> None:
        writes.append(path)
        if path.name == "stats.log":  # the table is written; the process dies here
            raise PlugmarketError("killed")
        real(path, data, fsync=fsync)

    monkeypatch.setattr(recordfile, "write_atomic", die_before_the_new_log)
    assert stats.record("app", "load", 0.25).loads == 6  # the fold's failure only warns
    assert [p.name for p in writes] == ["stats.json", "stats.log"]
    table = json.loads((home / "stats.json").read_bytes())
    assert table["plugins"]["app"]["loads"] == 6  # the whole old log is in the table...
    assert (home / "stats.log").stat().st_size == table["log"]["upto"]  # ...and still there
    assert Stats(home).get("app").loads == 6  # counted once
    monkeypatch.setattr(recordfile, "write_atomic", real)
    assert stats.record("app", "load", 0.25).loads == 7  # the next write folds again
    assert Stats(home).get("app").load_time.total == 7 * 0.25


def test_a_reader_that_meets_two_folds_between_its_reads_counts_nothing_twice(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugmarket._internal import stats as stats_module

    writer = Stats(home)
    for _ in range(3):
        writer.record("app", "load", 0.5)
    monkeypatch.setattr(stats_module, "COMPACT_AT", 50)  # every write folds
    real_load = stats_module._load_table
    met: list[int] = []

    def load_table_after_two_folds(path: Path) -> Any:
        if not met:  # between the reader's read of the log and of the table
            met.append(1)
            before = (home / "stats.log").read_bytes().partition(b"\n")[0]
            for _ in range(2):
                writer.record("app", "load", 0.5)  # each write folds: the log is long
            assert (home / "stats.log").read_bytes().partition(b"\n")[0] != before
        return real_load(path)

    monkeypatch.setattr(stats_module, "_load_table", load_table_after_two_folds)
    got = Stats(home).get("app")
    assert met and (got.loads, got.load_time.total) == (5, 2.5)


def test_a_failed_fold_warns_and_the_events_stay_counted(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from plugmarket._internal import recordfile
    from plugmarket._internal import stats as stats_module

    monkeypatch.setattr(stats_module, "COMPACT_AT", 100)
    real = recordfile.write_atomic

    def disk_full(path: Path, data: bytes, *, fsync: bool) -> None:
        raise recordfile.record_error(path, "write", OSError(28, "No space left on device"))

    monkeypatch.setattr(recordfile, "write_atomic", disk_full)
    with caplog.at_level(logging.WARNING, logger="plugmarket.records"):
        assert Stats(home).record("app", "install").installs == 1
        assert Stats(home).record("app", "install").installs == 2  # not counted twice
    assert "could not fold" in caplog.text and "No space left" in caplog.text
    assert not (home / "stats.json").exists()
    monkeypatch.setattr(recordfile, "write_atomic", real)
    assert Stats(home).record("app", "install").installs == 3  # and this one folds
    assert json.loads((home / "stats.json").read_bytes())["plugins"]["app"]["installs"] == 3


def test_a_write_under_way_is_not_counted_nor_warned_about(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats = Stats(home)
    stats.record("app", "install")
    with open(home / "stats.log", "ab") as f:
        f.write(b'{"at":"2026-01-01T00:00:00+00:00","events":[["app","install",null]]}')
    with caplog.at_level(logging.WARNING, logger="plugmarket.records"):
        assert Stats(home).get("app").installs == 1  # its newline is not written yet
    assert caplog.text == ""


def test_the_records_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from filelock import FileLock, Timeout

    from plugmarket._internal import recordfile

    monkeypatch.setattr(recordfile, "LOCK_TIMEOUT", 5.0)  # a deadlock fails fast
    other: list[str] = []

    def try_from_another_thread() -> None:
        lock = FileLock(
            home / recordfile.RECORDS_LOCK, timeout=recordfile.LOCK_TIMEOUT, is_singleton=True
        )
        try:
            lock.acquire(timeout=0)
        except Timeout:
            other.append("excluded")
        else:
            lock.release()
            other.append("got it")

    with recordfile.locked_records(home):
        # A denial audited while this thread writes the records (a plugin's logging
        # handler, say, when a statistics warning is logged) takes it again.
        AuditLog(home).denial(
            CapabilityDenied(plugin_id="p", capability="net", operation="connect", target="x:80")
        )
        thread = threading.Thread(target=try_from_another_thread)
        thread.start()
        thread.join()
    assert other == ["excluded"]
    assert [e.operation for e in AuditLog(home).read()] == ["denied"]


def test_a_denial_audited_while_this_thread_waits_for_the_records_lock_is_a_warning(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from plugmarket._internal import recordfile

    class AuditsWhileWaiting(logging.Handler):
        fired = False

        def emit(self, record: logging.LogRecord) -> None:
            if not self.fired and "ttempting" in record.getMessage():  # filelock's, waiting
                self.fired = True
                AuditLog(home).denial(
                    CapabilityDenied(plugin_id="p", capability="net", operation="connect")
                )

    handler = AuditsWhileWaiting()
    filelock_log = logging.getLogger("filelock")
    filelock_log.addHandler(handler)
    try:
        with (
            caplog.at_level(logging.DEBUG, logger="filelock"),
            recordfile.locked_records(home),
        ):
            AuditLog(home).append_locked(AuditLog.entry("install", "x"))
    finally:
        filelock_log.removeHandler(handler)
    assert handler.fired and "could not record a capability denial" in caplog.text
    assert [e.operation for e in AuditLog(home).read()] == ["install"]


def test_a_line_appended_by_this_thread_during_a_fold_is_counted_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugmarket._internal import recordfile

    stats, real = _loads_then_fold_next(home, monkeypatch, 3, 0.5)

    nested: list[int] = []

    def nested_append_first(path: Path, data: bytes, *, fsync: bool) -> None:
        if path.name == "stats.json" and not nested:  # the fold read the log; then, from
            nested.append(1)  # a logging handler say, this thread appends (no new fold)
            stats.append_locked([("other", "install", None)])
        real(path, data, fsync=fsync)

    monkeypatch.setattr(recordfile, "write_atomic", nested_append_first)
    assert stats.record("app", "load", 0.5).loads == 4
    monkeypatch.setattr(recordfile, "write_atomic", real)
    assert b'"other"' in (home / "stats.log").read_bytes()  # kept: not in the table yet
    got = Stats(home).get()
    assert (got["app"].loads, got["other"].installs) == (4, 1)
    assert stats.record("app", "load", 0.5).loads == 5  # the next write folds it all
    got = Stats(home).get()
    assert (got["app"].loads, got["other"].installs) == (5, 1)


def test_statistics_of_an_operation_whose_audit_line_fails_are_still_counted(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugmarket._internal.bookkeeping import Bookkeeping
    from plugmarket.plan import Plan, PlanItem

    def refuse(self: AuditLog, entry: AuditEntry) -> None:
        raise PlugmarketError("the audit log is full")

    monkeypatch.setattr(AuditLog, "append_locked", refuse)
    books = Bookkeeping(home, "api")
    plan = Plan("install", (PlanItem("add", "app", "", "1.0"),))
    with (
        pytest.raises(PlugmarketError, match="audit log is full"),
        books.operation("install", "app", lambda: 1),
    ):
        books.transaction(plan, 0.25)
    assert Stats(home).get("app").installs == 1


def test_a_log_line_cut_short_is_skipped_and_the_next_write_is_kept(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats = Stats(home)
    stats.record("app", "install")
    with open(home / "stats.log", "ab") as f:
        f.write(b'{"at":"2026-01-01T00:00:00+00:00","events":[["app","lo')  # killed mid-write
    with caplog.at_level(logging.WARNING, logger="plugmarket.records"):
        assert stats.record("app", "load", 0.5).loads == 1
    assert "skipped 1 damaged line" in caplog.text
    assert Stats(home).get("app").installs == 1


@pytest.mark.parametrize("damage", [b"", b"\x00\x00\x00", b'{"v": 9, "log": "x"}\n'])
def test_a_log_whose_first_line_is_damaged_is_moved_aside(
    home: Path, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (home / "stats.log").write_bytes(damage + b'{"at":"2026-01-01T00:00:00+00:00","events":[]}\n')
    stats = Stats(home)
    with caplog.at_level(logging.WARNING, logger="plugmarket.records"):
        assert stats.get() == {}
        assert "stats.log is damaged" in caplog.text
        assert stats.record("app", "install").installs == 1
    assert (home / "stats.log.damaged").read_bytes().startswith(damage)
    assert Stats(home).get("app").installs == 1


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b'{"format": 1, "plugins": {"a": {"installs": 3',  # cut short
        b"\x00\x00\x00\x00",  # a power loss can leave zeros
        b'{"format": 1, "plugins": {"a": {"installs": -3}}}',  # the wrong shape
        b'{"format": 1, "plugins": {"../x": {}}}',
        b'{"format": 99, "plugins": {}}',
        b"[]",
    ],
)
def test_damaged_stats_file_is_rebuilt_from_nothing(
    home: Path, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = home / "stats.json"
    path.write_bytes(damage)
    stats = Stats(home)
    with caplog.at_level(logging.WARNING, logger="plugmarket.records"):
        assert stats.get() == {}
        assert "is damaged" in caplog.text
        after = stats.record("a", "install")
    assert after.installs == 1
    assert "started it again" in caplog.text
    assert (home / "stats.json.damaged").read_bytes() == damage  # kept for a look
    assert not path.exists() and Stats(home).get("a").installs == 1


def test_temp_files_a_crashed_writer_left_are_removed(home: Path) -> None:
    leftovers = [home / ".stats.json.tmp-crashed", home / ".stats.log.tmp-crashed"]
    for leftover in leftovers:
        leftover.write_text('{"half": ')
    Stats(home).record("a", "load")
    assert not any(leftover.exists() for leftover in leftovers)
    assert Stats(home).get("a").loads == 1


# --- rendering ---------------------------------------------------------------------------


def test_audit_entries_render_as_text_and_escaped_html(home: Path) -> None:
    log = AuditLog(home)
    log.append(
        AuditLog.entry(
            "update",
            "csv-preview",
            plugins=[PluginChange("csv-preview", "0.9.0", "1.0.0")],
            note="<script>alert(1)</script>",
        )
    )
    entries = log.read()
    text = repr(entries)
    assert "update csv-preview 0.9.0 → 1.0.0" in text and text.endswith(": ok")
    page = entries._repr_html_()
    assert "<table>" in page and "&lt;script&gt;" in page and "<script>" not in page
    assert entries[0]._repr_html_().count("<tr>") == 2


def test_stats_render_as_text_and_html(home: Path) -> None:
    Stats(home).record("units", "load", seconds=0.0123)
    table = Stats(home).get()
    assert repr(table).startswith("units: 0 install(s)") and "mean 12.3 ms" in repr(table)
    assert "<td>units</td>" in table._repr_html_()
    assert "<td>units</td>" in table["units"]._repr_html_()
    assert repr(StatsTable()) == "(no statistics yet)"


def test_entry_time_is_utc(home: Path) -> None:
    AuditLog(home).append(AuditLog.entry("disable", "x"))
    (entry,) = AuditLog(home).read()
    assert entry.time.tzinfo is not None
    assert entry.time.astimezone(UTC) <= datetime.now(UTC)
