"""SIGKILL at every step of install, update, uninstall, rollback, gc and recovery.

Each case builds the old state in this process, runs the operation in a child
with ``PLUGMARKET_FAULT=<step>``, checks the child died of SIGKILL, then opens
the home again (which recovers it) and checks: the installed set is exactly
the old one (killed before ``current`` switched) or the new one (after), the
check finds nothing, every installed plugin loads, and the store holds
exactly what kept generations reference.

The step lists below are the contract; each operation is also run once
without a fault, and the steps it passes must be exactly its list, so no step
can be added without being crash-tested.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plugmarket import loader
from plugmarket._internal import journal
from plugmarket._internal.installed import Generation, requirement_id
from plugmarket._internal.recovery import referenced_entries
from plugmarket.installer import Installer
from plugmarket.plan import Plan, PlanItem
from plugmarket.settings import Settings
from tests.support.artifacts import Artifact, fetch, make_artifact, remove
from tests.support.crash_op import item_to_json

ROOT = Path(__file__).resolve().parent.parent

TXN_HEAD = ["lock-acquired", "journal-temp-written", "journal-written"]
TXN_SWITCH = ["current-temp-written", "current-switched"]
GENERATION = ["generation-temp-written", "generation-written"]

STEPS = {
    "install": [
        *TXN_HEAD,
        "artifact-unpacked:1",
        "artifact-stored:1",
        "artifact-unpacked:2",
        "artifact-stored:2",
        *GENERATION,
        *TXN_SWITCH,
        "journal-committed",
    ],
    "update": [
        *TXN_HEAD,
        "artifact-unpacked:1",
        "artifact-stored:1",
        "live-swapped",
        *GENERATION,
        *TXN_SWITCH,
        "generations-pruned",
        "entries-collected",
        "journal-committed",
    ],
    "uninstall": [*TXN_HEAD, "live-swapped", *GENERATION, *TXN_SWITCH, "journal-committed"],
    "rollback": [*TXN_HEAD, "live-swapped", *GENERATION, *TXN_SWITCH, "journal-committed"],
    "gc": [*TXN_HEAD, "generations-pruned", "entries-collected", "journal-committed"],
}
RECOVERY = ["recovery-started", "recovery-undone", "recovery-collected", "recovery-finished"]


@dataclass
class Scenario:
    """An old state to build, and an operation that changes it."""

    setup: list[Plan]
    op: str
    items: list[PlanItem] = field(default_factory=list)
    keep: int = 10
    live: bool = False


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    where = tmp_path_factory.mktemp("registry")
    return {
        "alpha-1": make_artifact(where, "alpha", "1.0"),
        "alpha-2": make_artifact(where, "alpha", "2.0", capabilities=["display"]),
        "beta-1": make_artifact(
            where,
            "beta",
            "1.0",
            "import alpha\ndef activate(ctx):\n    pass\n",
            requires=["alpha>=1"],
        ),
        "gamma-1": make_artifact(where, "gamma", "1.0"),
    }


def scenario(name: str, a: dict[str, Artifact]) -> Scenario:
    alpha, beta, gamma = a["alpha-1"], a["beta-1"], a["gamma-1"]
    if name == "install":  # two new artifacts, one requiring an installed plugin
        return Scenario([Plan("i", (alpha.add(),))], "apply", [beta.add(), gamma.add()])
    if name == "update":  # a live swap, and a commit that prunes and collects
        setup = [
            Plan("i", (gamma.add(),)),
            Plan("i", (remove("gamma", "1.0"), alpha.add(), beta.add())),
        ]
        items = [a["alpha-2"].change("1.0", grants=["display"])]
        return Scenario(setup, "apply", items, keep=2, live=True)
    if name == "uninstall":
        setup = [Plan("i", (alpha.add(), beta.add()))]
        return Scenario(setup, "apply", [remove("beta", "1.0")], live=True)
    if name == "rollback":
        setup = [Plan("i", (alpha.add(),)), Plan("i", (beta.add(),))]
        return Scenario(setup, "rollback", live=True)
    assert name == "gc"
    setup = [Plan("i", (gamma.add(),)), Plan("u", (remove("gamma", "1.0"), alpha.add()))]
    return Scenario([*setup, Plan("i", (beta.add(),))], "gc", keep=2)


def _prepare(home: Path, sc: Scenario) -> Generation:
    inst = Installer(Settings(home=home), faults="")
    for plan in sc.setup:
        inst.apply(plan, fetch, reason="setup")
    return inst.current()


def _run_child(home: Path, sc: Scenario, fault: str) -> subprocess.CompletedProcess[str]:
    spec = home.parent / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "home": str(home),
                "op": sc.op,
                "keep": sc.keep,
                "live": sc.live,
                "items": [item_to_json(i) for i in sc.items],
            }
        )
    )
    env = {**os.environ, "PLUGMARKET_FAULT": fault}
    return subprocess.run(
        [sys.executable, "-m", "tests.support.crash_op", str(spec)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _installed(generation: Generation) -> dict[str, tuple[str, str, tuple[str, ...], bool]]:
    return {
        pid: (p.version, p.sha256, p.grants, p.enabled) for pid, p in generation.plugins.items()
    }


def _expect_sound(home: Path, expected: Generation) -> None:
    """The checks every crash case ends with."""
    inst = Installer(Settings(home=home), faults="")
    assert inst.recovery_error is None
    current = inst.current()
    assert _installed(current) == _installed(expected)
    report = inst.check()
    assert report.problems == (), str(report)
    assert not journal.pending(home)
    assert set(inst.store.names()) == referenced_entries(inst.gens)
    assert inst.store.debris() == [] and inst.gens.debris() == []
    # every installed plugin loads, dependencies first
    pending = dict(current.plugins)
    while pending:
        ready = [
            p
            for p in pending.values()
            if all(requirement_id(r) in loader.loaded() for r in p.requires)
        ]
        assert ready, f"unloadable set {sorted(pending)}"
        for plugin in ready:
            loader.load(inst.files(plugin), grants=plugin.grants, settings=inst.settings)
            del pending[plugin.id]


def _expected_after_success(home: Path, sc: Scenario, tmp_path: Path) -> Generation:
    """The new state: the same operation run to the end on a copy of the home."""
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(home, twin)
    done = _run_child(twin, sc, "")
    assert done.returncode == 0, done.stderr
    return Installer(Settings(home=twin), faults="").current()


CASES = [(op, step) for op, steps in STEPS.items() for step in steps]


@pytest.mark.parametrize("op", sorted(STEPS))
def test_each_operation_passes_exactly_its_listed_steps(
    op: str, arts: dict[str, Artifact], home: Path
) -> None:
    sc = scenario(op, arts)
    _prepare(home, sc)
    done = _run_child(home, sc, "")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == STEPS[op]


@pytest.mark.parametrize(("op", "step"), CASES, ids=[f"{o}@{s}" for o, s in CASES])
def test_sigkill_at_every_step_leaves_the_old_or_the_new_generation(
    op: str, step: str, arts: dict[str, Artifact], home: Path, tmp_path: Path
) -> None:
    sc = scenario(op, arts)
    old = _prepare(home, sc)
    new = _expected_after_success(home, sc, tmp_path)
    if op != "gc":
        assert _installed(new) != _installed(old)
    killed = _run_child(home, sc, step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    switched = STEPS[op].index(step) >= STEPS[op].index("current-switched") if op != "gc" else True
    _expect_sound(home, new if switched else old)


RECOVERY_CASES = [
    (interrupted, step)
    for interrupted in ("artifact-stored:2", "current-switched")
    for step in RECOVERY
]


@pytest.mark.parametrize(
    ("interrupted", "step"), RECOVERY_CASES, ids=[f"{i}+{s}" for i, s in RECOVERY_CASES]
)
def test_sigkill_during_recovery_is_recovered_on_the_next_start(
    interrupted: str, step: str, arts: dict[str, Artifact], home: Path, tmp_path: Path
) -> None:
    sc = scenario("install", arts)
    old = _prepare(home, sc)
    new = _expected_after_success(home, sc, tmp_path)
    assert _run_child(home, sc, interrupted).returncode == -signal.SIGKILL
    assert journal.pending(home)
    recovering = Scenario([], "recover")
    killed = _run_child(home, recovering, step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    _expect_sound(home, new if interrupted == "current-switched" else old)


def test_recovery_passes_exactly_its_listed_steps(arts: dict[str, Artifact], home: Path) -> None:
    sc = scenario("install", arts)
    _prepare(home, sc)
    assert _run_child(home, sc, "generation-written").returncode == -signal.SIGKILL
    done = _run_child(home, Scenario([], "recover"), "")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == RECOVERY
