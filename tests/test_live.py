"""The live set in a real IPython shell: installs, swaps, failed updates, following the home."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugmarket import loader
from plugmarket._internal import journal
from plugmarket.errors import ActivationError, InstallError
from plugmarket.host import IPythonHost
from plugmarket.installer import Installer
from plugmarket.live import LiveChanges, LiveSet
from plugmarket.plan import Plan
from plugmarket.settings import Settings
from tests.support.artifacts import Artifact, fetch, make_artifact, remove
from tests.support.plugins import USES_ALPHA, hello_source

MAGICS = ["ipython.magics"]


@pytest.fixture
def arts(tmp_path: Path) -> dict[str, Artifact]:
    where = tmp_path / "registry"
    return {
        "hello-1": make_artifact(where, "hello", "1.0", hello_source("1"), capabilities=MAGICS),
        "hello-2": make_artifact(where, "hello", "2.0", hello_source("2", broken=True)),
        "hello-3": make_artifact(where, "hello", "3.0", hello_source("3"), capabilities=MAGICS),
        "alpha-1": make_artifact(where, "alpha", "1.0", "VALUE = 1\n"),
        "alpha-2": make_artifact(where, "alpha", "2.0", "VALUE = 2\n"),
        "beta-1": make_artifact(where, "beta", "1.0", USES_ALPHA, requires=["alpha>=1"]),
    }


def _setup(home: Path, shell: Any) -> tuple[Installer, LiveSet]:
    settings = Settings(home=home)
    return Installer(settings, faults=""), LiveSet(settings, host=IPythonHost(shell))


def test_a_failed_update_leaves_the_old_version_live_and_the_disk_on_the_old_generation(
    shell: Any, home: Path, arts: dict[str, Artifact]
) -> None:
    inst, live = _setup(home, shell)
    install = Plan("install", (arts["hello-1"].add(grants=MAGICS),))
    inst.apply(install, fetch, reason="install hello", live=live)
    assert shell.run_cell("%hello").result == "hello from 1"
    update = Plan("update", (arts["hello-2"].change("1.0", grants=MAGICS),))
    with pytest.raises(InstallError) as exc:
        inst.apply(update, fetch, reason="update hello", live=live)
    assert exc.value.step == "live" and exc.value.plugin_id == "hello"
    assert isinstance(exc.value.__cause__, ActivationError)
    assert "version 2 cannot start" in str(exc.value.__cause__.__cause__)
    # the kernel: the old version is active and its magic works
    assert str(loader.loaded()["hello"].version) == "1.0"
    assert shell.run_cell("%hello").result == "hello from 1"
    # the disk: still generation 1, nothing of version 2 kept
    current = inst.current()
    assert current.number == 1 and current.plugins["hello"].version == "1.0"
    assert [g.number for g in inst.generations()] == [1]
    assert inst.store.names() == [arts["hello-1"].sha256]
    assert not journal.pending(home) and inst.check().problems == ()
    assert live.generation == 1


def test_an_update_swaps_the_plugin_in_the_running_shell(
    shell: Any, home: Path, arts: dict[str, Artifact]
) -> None:
    inst, live = _setup(home, shell)
    inst.apply(Plan("install", (arts["hello-1"].add(grants=MAGICS),)), fetch, reason="1", live=live)
    inst.apply(
        Plan("update", (arts["hello-3"].change("1.0", grants=MAGICS),)),
        fetch,
        reason="2",
        live=live,
    )
    assert shell.run_cell("%hello").result == "hello from 3"
    assert str(loader.loaded()["hello"].version) == "3.0" and live.generation == 2
    inst.rollback(live=live)
    assert shell.run_cell("%hello").result == "hello from 1" and live.generation == 3
    inst.apply(Plan("uninstall", (remove("hello", "1.0"),)), fetch, reason="4", live=live)
    assert "hello" not in loader.loaded()
    assert not shell.run_cell("%hello").success


def test_swapping_a_dependency_reloads_the_plugins_that_import_it(
    shell: Any, home: Path, arts: dict[str, Artifact]
) -> None:
    inst, live = _setup(home, shell)
    plan = Plan("install", (arts["alpha-1"].add(), arts["beta-1"].add(grants=MAGICS)))
    inst.apply(plan, fetch, reason="1", live=live)
    assert shell.run_cell("%ask").result == "alpha says 1"
    generation = inst.apply(Plan("update", (arts["alpha-2"].change("1.0"),)), fetch, reason="2")
    changes = live.sync(generation, inst.files)
    assert changes == LiveChanges(loaded=("alpha", "beta"), unloaded=("beta", "alpha"))
    assert shell.run_cell("%ask").result == "alpha says 2"


def test_a_kernel_follows_an_install_made_elsewhere_at_its_next_sync(
    shell: Any, home: Path, arts: dict[str, Artifact]
) -> None:
    inst, live = _setup(home, shell)
    assert not live.sync(inst.current(), inst.files) and live.generation == 0
    seen = inst.current_marker()
    terminal = Installer(Settings(home=home), faults="")  # another process, in effect
    terminal.apply(Plan("install", (arts["hello-1"].add(grants=MAGICS),)), fetch, reason="t")
    assert inst.current_marker() != seen
    changes = live.sync(inst.current(), inst.files)
    assert changes.loaded == ("hello",) and live.generation == 1
    assert shell.run_cell("%hello").result == "hello from 1"
    assert not live.sync(inst.current(), inst.files)


def test_disable_unloads_and_choices_made_by_hand_survive_later_syncs(
    shell: Any, home: Path, arts: dict[str, Artifact]
) -> None:
    inst, live = _setup(home, shell)
    plan = Plan("install", (arts["hello-1"].add(grants=MAGICS), arts["alpha-1"].add()))
    inst.apply(plan, fetch, reason="1", live=live)
    hello = inst.current().plugins["hello"]
    inst.apply(
        Plan("disable"),
        fetch,
        reason="2",
        live=live,
        changes={"hello": hello.replace(enabled=False)},
    )
    assert "hello" not in loader.loaded()
    # loaded by hand though disabled: a later sync keeps it
    live.load(inst.current().plugins["hello"], inst.files(hello))
    # unloaded by hand: a later sync leaves it unloaded
    live.unload("alpha")
    inst.apply(Plan("install", (arts["beta-1"].add(grants=MAGICS),)), fetch, reason="3")
    with pytest.raises(InstallError, match="beta could not be made live"):
        live.sync(inst.current(), inst.files)  # beta needs alpha, held back by hand
    assert set(loader.loaded()) == {"hello"} and live.generation == 2
    inst.apply(Plan("uninstall", (remove("beta", "1.0"),)), fetch, reason="4")
    live.sync(inst.current(), inst.files)
    assert set(loader.loaded()) == {"hello"} and live.generation == 4
    assert shell.run_cell("%hello").result == "hello from 1"


def test_clear_unloads_every_plugin_and_resets_even_when_one_unload_fails(
    shell: Any, home: Path, arts: dict[str, Artifact], tmp_path: Path
) -> None:
    """The loader logs an Exception from deactivate, but SystemExit passes through it."""
    quitter = make_artifact(
        tmp_path / "registry",
        "quitter",
        "1.0",
        "import alpha\n"
        "def activate(ctx):\n    pass\n"
        "def deactivate(ctx):\n    raise SystemExit(3)\n",
        requires=["alpha>=1"],
    )
    inst, live = _setup(home, shell)
    plan = Plan(
        "install", (arts["hello-1"].add(grants=MAGICS), arts["alpha-1"].add(), quitter.add())
    )
    inst.apply(plan, fetch, reason="1", live=live)
    live.unload("hello")  # held back by hand
    assert set(loader.loaded()) == {"alpha", "quitter"} and live.generation == 1
    with pytest.raises(SystemExit):
        live.clear()  # quitter goes first (it requires alpha) and fails
    assert loader.loaded() == {}  # alpha was still unloaded
    assert live.generation is None
    # nothing held back by hand survives: the next sync loads the whole generation again
    assert set(live.sync(inst.current(), inst.files).loaded) == {"hello", "alpha", "quitter"}
    assert shell.run_cell("%hello").result == "hello from 1"
    with pytest.raises(SystemExit):
        live.clear()
    assert loader.loaded() == {}
