"""The installer's transactions: apply, rollback, switch, gc, check, the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from plugmarket._internal import journal
from plugmarket._internal.generations import EMPTY
from plugmarket._internal.installed import Generation
from plugmarket.errors import ArchiveError, InstallError, IntegrityError
from plugmarket.installer import Installer
from plugmarket.plan import Plan, PlanItem
from plugmarket.settings import Settings
from tests.support.artifacts import Artifact, CountingFetch, fetch, make_artifact, remove, tree

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def arts(tmp_path: Path) -> dict[str, Artifact]:
    where = tmp_path / "registry"
    return {
        "alpha-1": make_artifact(where, "alpha", "1.0", capabilities=["display"]),
        "alpha-2": make_artifact(where, "alpha", "2.0", capabilities=["display", "net"]),
        "beta-1": make_artifact(
            where,
            "beta",
            "1.0",
            "import alpha\ndef activate(ctx):\n    pass\n",
            requires=["alpha>=1"],
        ),
        "gamma-1": make_artifact(where, "gamma", "1.0"),
    }


def _installer(home: Path, **kwargs: object) -> Installer:
    return Installer(Settings(home=home), faults="", **kwargs)  # type: ignore[arg-type]


def _versions(generation: Generation) -> dict[str, str]:
    return {pid: p.version for pid, p in generation.plugins.items()}


def test_a_fresh_home_is_on_the_empty_generation_zero(home: Path) -> None:
    inst = _installer(home)
    assert inst.current() == inst.current() == EMPTY
    assert inst.current().plugins == {} and inst.current().parent is None
    assert inst.generations() == []
    assert inst.check().problems == ()


def test_install_records_what_the_artifact_says_and_what_was_granted(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    item = arts["alpha-1"].add(grants=["display"])
    generation = inst.apply(Plan("install", (item,)), fetch, reason="install alpha")
    assert generation.number == 1 and generation.parent == 0
    assert generation.reason == "install alpha" and inst.current() == generation
    alpha = generation.plugins["alpha"]
    assert (alpha.version, alpha.sha256, alpha.top) == ("1.0", arts["alpha-1"].sha256, "alpha")
    assert alpha.grants == ("display",) and alpha.requested == ("display",)
    assert alpha.registry == "test" and alpha.origin == item.url and alpha.enabled
    assert inst.files(alpha).manifest.id == "alpha"
    assert inst.store.names() == [arts["alpha-1"].sha256]
    assert not journal.pending(home) and inst.check().problems == ()
    # The committing object keeps the generation it wrote; a new reader decodes the same.
    assert _installer(home).current() == inst.current() == inst.generations()[-1]


def test_readers_skip_a_generation_file_a_transaction_is_still_writing(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    first = inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install alpha")
    # The next generation is written in place before current names it: half of it here.
    (home / "generations" / "2.json").write_bytes(b'{"format": 1, "number": 2, "plug')
    assert _installer(home).generations() == [first] and _installer(home).current() == first
    # A transaction that died there is undone by recovery, which removes the file.
    journal.write(home, journal.Journal.begin("install", 1, 2), durable=False)
    recovered = _installer(home)
    assert "undid" in recovered.recovered and not (home / "generations" / "2.json").exists()
    assert recovered.check().problems == ()


def test_update_keeps_the_enabled_flag_and_uninstall_keeps_the_artifact_for_rollback(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install")
    off = inst.current().plugins["alpha"].replace(enabled=False)
    inst.apply(Plan("disable"), fetch, reason="disable alpha", changes={"alpha": off})
    updated = inst.apply(Plan("update", (arts["alpha-2"].change("1.0"),)), fetch, reason="up")
    assert updated.plugins["alpha"].version == "2.0"
    assert updated.plugins["alpha"].enabled is False
    assert updated.plugins["alpha"].requested == ("display", "net")
    gone = inst.apply(Plan("uninstall", (remove("alpha", "2.0"),)), fetch, reason="uninstall")
    assert gone.plugins == {} and gone.number == 4
    # both artifacts stay: kept generations still reference them
    assert set(inst.store.names()) == {arts["alpha-1"].sha256, arts["alpha-2"].sha256}
    assert inst.check().problems == ()


def test_an_artifact_already_in_the_store_is_not_fetched_again(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install")
    inst.apply(Plan("uninstall", (remove("alpha", "1.0"),)), fetch, reason="uninstall")
    counting = CountingFetch()
    fetched = counting.ids

    again = inst.apply(Plan("install", (arts["alpha-1"].add(),)), counting, reason="again")
    assert fetched == [] and _versions(again) == {"alpha": "1.0"}


def test_nothing_to_do_makes_no_generation(home: Path, arts: dict[str, Artifact]) -> None:
    inst = _installer(home)
    first = inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install")
    same = inst.apply(
        Plan("enable"), fetch, reason="enable", changes={"alpha": first.plugins["alpha"]}
    )
    assert same == first and [g.number for g in inst.generations()] == [1]


def test_tampered_artifact_leaves_everything_as_before(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install")
    before = tree(home)
    good = arts["gamma-1"].add()

    def tampered(item: PlanItem) -> bytes:
        data = bytearray(fetch(item))
        data[len(data) // 2] ^= 1  # one bit flipped on the way
        return bytes(data)

    plan = Plan("install", (arts["beta-1"].add(), good))
    with pytest.raises(IntegrityError) as exc:
        inst.apply(plan, tampered, reason="install")
    assert exc.value.expected == arts["beta-1"].sha256
    assert tree(home) == before
    assert _versions(inst.current()) == {"alpha": "1.0"} and inst.check().problems == ()


def test_an_artifact_that_holds_another_plugin_is_refused(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    before = tree(home)
    gamma = arts["gamma-1"]
    lying = PlanItem(
        "add",
        "alpha",
        new_version="1.0",
        sha256=gamma.sha256,
        size=len(gamma.data),
        url=gamma.path.as_uri(),
    )
    with pytest.raises(IntegrityError) as exc:
        inst.apply(Plan("install", (lying,)), fetch, reason="install")
    assert exc.value.actual == "gamma 1.0"
    assert {k: v for k, v in tree(home).items() if k != "store"} == before
    assert inst.store.names() == [] and inst.store.debris() == []
    assert inst.current().number == 0 and not journal.pending(home)


def test_a_refused_archive_leaves_nothing_behind(tmp_path: Path, home: Path) -> None:
    item = _zip_slip_item(tmp_path)
    inst = _installer(home)
    with pytest.raises(ArchiveError):
        inst.apply(Plan("install", (item,)), fetch, reason="install")
    assert inst.store.names() == [] and inst.store.debris() == [] and inst.generations() == []
    assert not journal.pending(home) and inst.check().problems == ()


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        (lambda a: Plan("install", (a["alpha-2"].add(),)), "now installed"),
        (lambda a: Plan("update", (a["gamma-1"].change("0.9"),)), "no longer installed"),
        (lambda a: Plan("update", (a["alpha-2"].change("0.5"),)), "expects alpha 0.5"),
        (lambda a: Plan("uninstall", (remove("gamma", "1.0"),)), "no longer installed"),
    ],
)
def test_a_plan_made_against_another_installed_set_is_refused(
    home: Path,
    arts: dict[str, Artifact],
    plan: Callable[[dict[str, Artifact]], Plan],
    why: str,
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install")
    before = tree(home)
    with pytest.raises(InstallError, match=why) as exc:
        inst.apply(plan(arts), fetch, reason="stale")
    assert exc.value.step == "check plan"
    assert tree(home) == before


def test_rollback_walks_back_as_new_generations_and_switch_to_goes_forward(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
    inst.apply(Plan("install", (arts["beta-1"].add(),)), fetch, reason="2")
    inst.apply(Plan("update", (arts["alpha-2"].change("1.0"),)), fetch, reason="3")
    back = inst.rollback()
    assert back.number == 4 and back.reason == "rollback to 2"
    assert _versions(back) == {"alpha": "1.0", "beta": "1.0"}
    further = inst.rollback()
    assert further.number == 5 and _versions(further) == {"alpha": "1.0"}
    empty = inst.rollback()
    assert empty.number == 6 and empty.plugins == {}
    with pytest.raises(InstallError, match="no earlier generation"):
        inst.rollback()
    forward = inst.switch_to(3)
    assert forward.number == 7 and _versions(forward) == {"alpha": "2.0", "beta": "1.0"}
    assert _versions(inst.rollback()) == {"alpha": "1.0", "beta": "1.0"}
    assert [g.number for g in inst.generations()] == list(range(1, 9))
    with pytest.raises(InstallError, match="generation 42 is not kept"):
        inst.switch_to(42)
    assert inst.current().number == 8 and inst.check().problems == ()


def test_gc_prunes_old_generations_and_the_entries_only_they_used(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
    inst.apply(Plan("install", (arts["gamma-1"].add(),)), fetch, reason="2")
    inst.apply(Plan("update", (arts["alpha-2"].change("1.0"),)), fetch, reason="3")
    inst.apply(Plan("uninstall", (remove("gamma", "1.0"),)), fetch, reason="4")
    assert inst.gc() == [] and len(inst.store.names()) == 3
    narrow = _installer(home, keep=2)
    assert narrow.gc() == [arts["alpha-1"].sha256]
    assert [g.number for g in narrow.generations()] == [3, 4]
    # with keep=2 every transaction prunes as it commits
    narrow.apply(Plan("install", (arts["beta-1"].add(),)), fetch, reason="5")
    assert [g.number for g in narrow.generations()] == [4, 5]
    assert set(narrow.store.names()) == {arts["alpha-2"].sha256, arts["beta-1"].sha256}
    with pytest.raises(InstallError, match="generation 1 is not kept"):
        narrow.switch_to(1)
    assert narrow.check().problems == ()


def test_as_many_rollbacks_in_a_row_as_generations_kept_work(home: Path, tmp_path: Path) -> None:
    inst = _installer(home, keep=4)
    steps = [make_artifact(tmp_path / "steps", f"s{i}") for i in range(6)]
    for art in steps:
        inst.apply(Plan("install", (art.add(),)), fetch, reason=art.id)
    for left in (5, 4, 3):
        assert len(inst.rollback().plugins) == left
    assert sorted(inst.current().plugins) == ["s0", "s1", "s2"]
    assert inst.check().problems == ()


def test_check_reports_tampered_store_files_and_does_not_pretend_to_repair_them(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    generation = inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
    files = inst.files(generation.plugins["alpha"])
    (files.root / "alpha" / "__init__.py").write_text("import os\n")
    report = inst.check(repair=True)
    assert [(p.kind, p.repaired) for p in report.problems] == [("entry", False)]
    assert "alpha 1.0 in generation 1" in report.problems[0].message
    assert not report.ok and "problem: store/" in str(report)


def test_check_repair_removes_debris_unreferenced_entries_and_uncommitted_generations(
    home: Path, arts: dict[str, Artifact], tmp_path: Path
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
    stray = _installer(tmp_path / "elsewhere")
    stray.apply(Plan("install", (arts["gamma-1"].add(),)), fetch, reason="x")
    os.rename(stray.store.path(arts["gamma-1"].sha256), inst.store.path(arts["gamma-1"].sha256))
    (inst.store.root / ".tmp-abcdef-123").mkdir()
    (inst.store.root / ".trash-abcdef-456").mkdir()
    (inst.gens.folder / ".7.json.tmp").write_text("{")
    (home / ".current.tmp").write_text("9")
    inst.gens.path(5).write_bytes(
        inst.gens.path(1).read_bytes().replace(b'"number":1', b'"number":5')
    )
    found = inst.check()
    kinds = sorted(p.kind for p in found.problems)
    assert kinds == ["debris", "debris", "debris", "debris", "uncommitted", "unreferenced"]
    assert not found.ok and not any(p.repaired for p in found.problems)
    repaired = inst.check(repair=True)
    assert sorted(p.kind for p in repaired.problems) == kinds and repaired.ok
    assert inst.check().problems == ()
    assert inst.store.names() == [arts["alpha-1"].sha256]
    assert [g.number for g in inst.generations()] == [1]


def test_check_repair_points_a_damaged_current_at_the_newest_sound_generation(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
    inst.apply(Plan("install", (arts["gamma-1"].add(),)), fetch, reason="2")
    (home / "current").write_text("garbage")
    with pytest.raises(InstallError, match="not a number"):
        inst.current()
    report = inst.check(repair=True)
    assert [(p.kind, p.repaired) for p in report.problems] == [("current", True)]
    assert "now on generation 2" in report.problems[0].message
    assert _versions(inst.current()) == {"alpha": "1.0", "gamma": "1.0"}


def test_a_damaged_journal_is_recovered_by_what_current_says(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
    (home / "journal.json").write_text("{half a journal")
    inst.gens.path(2).write_bytes(
        inst.gens.path(1).read_bytes().replace(b'"number":1', b'"number":2')
    )
    again = _installer(home)
    assert "damaged journal" in again.recovered
    assert not journal.pending(home) and [g.number for g in again.generations()] == [1]
    assert again.check().problems == ()


def test_check_repair_drops_a_damaged_old_generation_then_finishes_the_journal(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
    inst.apply(Plan("install", (arts["gamma-1"].add(),)), fetch, reason="2")
    inst.gens.path(1).write_text("{damaged")
    journal.write(home, journal.Journal.begin("gc", 2, 2), durable=True)
    reopened = _installer(home)
    assert reopened.recovery_error is not None  # what generation 1 references is unknown
    with pytest.raises(InstallError, match="damaged"):
        reopened.gc()
    report = reopened.check(repair=True)
    assert [(p.kind, p.repaired) for p in report.problems] == [
        ("journal", True),
        ("generation", True),
    ]
    assert report.ok and reopened.check().problems == ()
    assert [g.number for g in reopened.generations()] == [2]
    assert reopened.store.names() == sorted([arts["alpha-1"].sha256, arts["gamma-1"].sha256])


def test_an_entry_collected_by_another_process_is_fetched_again(
    home: Path, arts: dict[str, Artifact]
) -> None:
    kernel = _installer(home)
    first = kernel.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
    kernel.files(first.plugins["alpha"])  # the kernel has read (and cached) the entry
    terminal = _installer(home, keep=2)
    terminal.apply(Plan("uninstall", (remove("alpha", "1.0"),)), fetch, reason="2")
    terminal.apply(Plan("install", (arts["gamma-1"].add(),)), fetch, reason="3")
    assert not terminal.store.has(arts["alpha-1"].sha256)
    counting = CountingFetch()
    fetched = counting.ids

    again = kernel.apply(Plan("install", (arts["alpha-1"].add(),)), counting, reason="4")
    assert fetched == ["alpha"]
    assert kernel.files(again.plugins["alpha"]).root.is_dir()
    assert kernel.check().problems == ()


def test_two_threads_take_turns_and_lose_no_update(
    home: Path, arts: dict[str, Artifact], tmp_path: Path
) -> None:
    extra = [make_artifact(tmp_path / "more", f"p{i}") for i in range(8)]
    errors: list[BaseException] = []

    def worker(mine: list[Artifact]) -> None:
        inst = _installer(home)
        try:
            for art in mine:
                with inst.locked("test"):  # plan and apply under one hold
                    inst.apply(Plan("install", (art.add(),)), fetch, reason=art.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(extra[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    inst = _installer(home)
    assert sorted(inst.current().plugins) == sorted(a.id for a in extra)
    assert [g.number for g in inst.generations()] == list(range(1, 9))
    assert inst.check().problems == ()


def _hold_lock_in_child(home: Path) -> subprocess.Popen[str]:
    code = (
        "import sys\n"
        "from plugmarket.installer import Installer\n"
        "from plugmarket.settings import Settings\n"
        "inst = Installer(Settings(home=sys.argv[1]))\n"
        "with inst.locked('install csv-tools'):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_a_locked_home_names_the_holder_and_a_released_lock_lets_the_next_in(
    home: Path, arts: dict[str, Artifact]
) -> None:
    child = _hold_lock_in_child(home)
    try:
        inst = _installer(home, lock_timeout=0.1)
        with pytest.raises(InstallError) as exc:
            inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1")
        assert exc.value.step == "lock"
        assert (
            f"pid {child.pid} on " in exc.value.message and "install csv-tools" in exc.value.message
        )
        assert inst.current().number == 0 and not journal.pending(home)
    finally:
        child.communicate("\n")
    assert inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1").number == 1


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(
    home: Path, arts: dict[str, Artifact]
) -> None:
    child = _hold_lock_in_child(home)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    inst = _installer(home, lock_timeout=0.1)
    assert inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="1").number == 1
    info = json.loads((home / "lock.info").read_text())
    assert info["pid"] == os.getpid()


def test_a_download_that_fails_after_the_journal_leaves_nothing_and_keeps_its_error(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install")
    before = tree(home)

    def second_is_gone(item: PlanItem) -> bytes:
        if item.id == "gamma":
            raise FileNotFoundError(item.url)  # the fetcher's own error, not the home's
        return fetch(item)

    plan = Plan("install", (arts["beta-1"].add(), arts["gamma-1"].add()))
    with pytest.raises(FileNotFoundError):
        inst.apply(plan, second_is_gone, reason="install")
    assert tree(home) == before and not journal.pending(home)
    assert _versions(inst.current()) == {"alpha": "1.0"} and inst.check().problems == ()


def test_a_refused_archive_beside_one_being_unpacked_leaves_nothing_behind(
    tmp_path: Path, home: Path, arts: dict[str, Artifact]
) -> None:
    slip = _zip_slip_item(tmp_path)
    inst = _installer(home)
    plan = Plan("install", (arts["alpha-1"].add(), slip, arts["gamma-1"].add()))
    with pytest.raises(ArchiveError):
        inst.apply(plan, fetch, reason="install")
    assert inst.store.names() == [] and inst.store.debris() == [] and inst.generations() == []
    assert not journal.pending(home) and inst.check().problems == ()


def test_a_temporary_store_folder_a_power_cut_left_goes_with_the_next_install(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install")
    left = home / "store" / f".tmp-{arts['gamma-1'].sha256[:16]}-lost"
    (left / "tree").mkdir(parents=True)  # unpacked, but its journal never reached the disk
    assert not journal.pending(home)
    inst.apply(Plan("install", (arts["gamma-1"].add(),)), fetch, reason="install")
    assert inst.store.debris() == [] and inst.check().problems == ()


def test_start_up_does_not_wait_for_a_live_lock_holder_to_recover(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst = _installer(home)
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), fetch, reason="install")
    child = _hold_lock_in_child(home)
    try:  # what a transaction killed before the child took the lock would have left
        journal.write(home, journal.Journal.begin("install", 1, 2), durable=True)
        (home / "generations" / "2.json").write_bytes(
            (home / "generations" / "1.json").read_bytes().replace(b'"number":1', b'"number":2')
        )
        started = _installer(home, lock_timeout=3600)  # would wait an hour
        assert started.recovered == "" and started.recovery_error is None
        assert journal.pending(home) and _versions(started.current()) == {"alpha": "1.0"}
    finally:
        child.communicate("\n")
    started.apply(Plan("install", (arts["gamma-1"].add(),)), fetch, reason="install")
    assert "undid install (1 -> 2)" in started.recovered  # the transaction recovered first
    assert _versions(started.current()) == {"alpha": "1.0", "gamma": "1.0"}
    assert started.check().problems == ()


def _zip_slip_item(folder: Path) -> PlanItem:
    """A plan item whose artifact is a zip with a ``../`` member (a zip-slip attack)."""
    import hashlib
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("slip/__init__.py", "__plugin__ = {'id': 'slip', 'version': '1'}\n")
        zf.writestr("slip/../../escape.py", "x = 1\n")
    path = folder / "slip-1.zip"
    path.write_bytes(buffer.getvalue())
    return PlanItem(
        "add",
        "slip",
        new_version="1",
        sha256=hashlib.sha256(buffer.getvalue()).hexdigest(),
        url=path.as_uri(),
    )


def test_installing_from_the_demo_registry_works_in_a_home_reached_through_a_symbolic_link(
    linked_home: Path, home: Path
) -> None:
    from plugmarket.marketplace import Marketplace

    market = Marketplace(linked_home, live=False)
    try:
        market.install("units", yes=True)
        assert {p.id: p.version for p in market.installed()} == {"units": "1.1.0"}
    finally:
        market.close()
    assert [p.name for p in (home / "store").iterdir() if not p.name.startswith(".")]
    assert Marketplace(home, live=False).installed()[0].id == "units"  # the real path reads it


def _alpha_installed_then_removed(
    home: Path, arts: dict[str, Artifact]
) -> tuple[Installer, CountingFetch]:
    """Generation 1 with alpha, generation 2 without it (its entry still stored)."""
    inst = _installer(home)
    counting = CountingFetch()
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), counting, reason="install alpha")
    inst.apply(Plan("uninstall", (remove("alpha", "1.0"),)), counting, reason="uninstall")
    return inst, counting


def test_only_entries_a_committed_generation_names_are_reused_without_a_download(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst, counting = _alpha_installed_then_removed(home, arts)
    fetched = counting.ids
    # Generation 1 still names alpha's entry: reinstalling it downloads nothing.
    inst.apply(Plan("install", (arts["alpha-1"].add(),)), counting, reason="again")
    assert fetched == ["alpha"]
    # A whole-looking entry no generation names, as a transaction that a power cut
    # stopped before its journal reached the disk may leave it, with a torn file.
    gamma = arts["gamma-1"]
    entry, _ = inst.store.put(gamma.sha256, gamma.path.read_bytes(), gamma.path.name, where="x")
    module = next(entry.root.rglob("*.py"))
    module.write_bytes(module.read_bytes()[:5])
    assert inst.store.verify(gamma.sha256) is not None  # torn
    generation = inst.apply(Plan("install", (gamma.add(),)), counting, reason="install gamma")
    assert fetched == ["alpha", "gamma"]  # stored anew, not trusted
    assert inst.store.verify(generation.plugins["gamma"].sha256) is None
    assert inst.check().problems == ()


def test_a_damaged_older_generation_vouches_for_no_entry_but_blocks_nothing(
    home: Path, arts: dict[str, Artifact]
) -> None:
    inst, counting = _alpha_installed_then_removed(home, arts)
    fetched = counting.ids
    inst.gens.path(1).write_text("{ damaged")
    generation = inst.apply(Plan("install", (arts["alpha-1"].add(),)), counting, reason="again")
    assert fetched == ["alpha", "alpha"]  # generation 1 named the entry, but cannot be read
    assert inst.store.verify(generation.plugins["alpha"].sha256) is None
