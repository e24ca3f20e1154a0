"""A generation file a power cut left above ``current``, with its journal lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugmarket._internal import journal
from plugmarket.errors import InstallError
from plugmarket.installer import Installer
from plugmarket.plan import Plan
from plugmarket.settings import Settings
from tests.support.artifacts import Artifact, CountingFetch, fetch, make_artifact, remove


def test_a_generation_a_power_cut_left_above_current_is_never_committed_later(
    home: Path, tmp_path: Path
) -> None:
    where = tmp_path / "registry"
    alpha = make_artifact(where, "alpha", "1.0")
    gamma: Artifact = make_artifact(where, "gamma", "1.0")
    inst = Installer(Settings(home=home), faults="")
    counting = CountingFetch()
    fetched = counting.ids

    inst.apply(Plan("install", (alpha.add(),)), counting, reason="install alpha")
    # What a power cut during generation 2's batch may leave: the batch's fsyncs run
    # side by side, so generations/2.json and its folder reached the disk, gamma's
    # file did not (torn), the journal (never fsynced before the batch) is lost, and
    # `current` still names generation 1.
    inst.apply(Plan("install", (gamma.add(),)), counting, reason="install gamma")
    inst.gens.switch(1)
    module = next(inst.store.path(gamma.sha256).rglob("*.py"))
    module.write_bytes(module.read_bytes()[:5])
    assert not journal.pending(home) and inst.gens.numbers() == [1, 2]
    with pytest.raises(InstallError, match="generation 2 is not kept"):
        inst.switch_to(2)  # it never was current (and the leftover is gone now)
    assert inst.gens.numbers() == [1] and inst.store.names() == [alpha.sha256]

    # Had the next transaction numbered itself above the leftover (3), generation 2
    # would then sit below `current` and read as a kept, committed generation.
    inst.apply(Plan("uninstall", (remove("alpha", "1.0"),)), counting, reason="uninstall")
    inst.apply(Plan("install", (gamma.add(),)), counting, reason="install gamma again")
    assert fetched == ["alpha", "gamma", "gamma"]  # the torn entry is stored anew
    assert inst.store.verify(gamma.sha256) is None
    # The leftover was removed before the uninstall, which took its number.
    kept = [g.reason for g in inst.generations()]
    assert kept == ["install alpha", "uninstall", "install gamma again"]
    assert inst.check().problems == ()


def test_generations_no_power_cut_leaves_are_left_for_check_not_swept_away(
    home: Path, tmp_path: Path
) -> None:
    where = tmp_path / "registry"
    alpha, beta = make_artifact(where, "alpha", "1.0"), make_artifact(where, "beta", "1.0")
    inst = Installer(Settings(home=home), faults="")
    inst.apply(Plan("install", (alpha.add(),)), fetch, reason="install alpha")
    inst.apply(Plan("install", (beta.add(),)), fetch, reason="install beta")
    (home / "current").unlink()  # lost: generation 0 reads as current, two files above it
    with pytest.raises(InstallError, match="check --repair"):
        inst.gc()
    assert inst.gens.numbers() == [1, 2]
    assert sorted(inst.store.names()) == sorted([alpha.sha256, beta.sha256])
    assert {p.kind for p in inst.check().problems} == {"uncommitted", "unreferenced"}  # kept


def test_a_power_cut_that_loses_the_last_switch_after_pruning_finds_the_old_set_whole(
    home: Path, tmp_path: Path
) -> None:
    """The home's fsync after the commit rename runs while the transaction tidies up
    (prunes, collects, removes its journal): a power cut may keep the tidying and lose
    the rename. The generation before must then be whole and current, and the new one
    above it is recovered as never committed."""
    where = tmp_path / "registry"
    alpha, beta = make_artifact(where, "alpha", "1.0"), make_artifact(where, "beta", "1.0")
    inst = Installer(Settings(home=home), faults="", keep=2)
    inst.apply(Plan("install", (alpha.add(),)), fetch, reason="install alpha")
    inst.apply(Plan("install", (beta.add(),)), fetch, reason="install beta")
    inst.apply(Plan("uninstall", (remove("beta", "1.0"),)), fetch, reason="uninstall beta")
    # Generation 1 was pruned, and beta's entry kept: generation 2 still names it.
    assert inst.gens.numbers() == [2, 3] and not journal.pending(home)
    assert sorted(inst.store.names()) == sorted([alpha.sha256, beta.sha256])

    inst.gens.switch(2)  # what the power cut leaves: the rename to 3 never reached the disk
    assert inst.check(repair=False).problems != ()  # generation 3 above current
    assert inst.current().number == 2

    inst.apply(
        Plan("install", (make_artifact(where, "gamma", "1.0").add(),)),
        fetch,
        reason="install gamma",
    )  # recovers first: 3 is removed, then a new 3
    kept = {g.number: sorted(g.plugins) for g in inst.generations()}
    assert kept == {2: ["alpha", "beta"], 3: ["alpha", "beta", "gamma"]}
    assert inst.store.verify(beta.sha256) is None and inst.check().problems == ()
