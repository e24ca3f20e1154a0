"""A generation file a power cut left above ``current``, with its journal lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugmarket._internal import journal
from plugmarket.errors import InstallError
from plugmarket.installer import Installer
from plugmarket.plan import Plan, PlanItem
from plugmarket.settings import Settings
from tests.support.artifacts import Artifact, fetch, make_artifact, remove


def test_a_generation_a_power_cut_left_above_current_is_never_committed_later(
    home: Path, tmp_path: Path
) -> None:
    where = tmp_path / "registry"
    alpha = make_artifact(where, "alpha", "1.0")
    gamma: Artifact = make_artifact(where, "gamma", "1.0")
    inst = Installer(Settings(home=home), faults="")
    fetched: list[str] = []

    def counting(item: PlanItem) -> bytes:
        fetched.append(item.id)
        return fetch(item)

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
