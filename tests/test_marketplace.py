"""The facade end to end on the demo registry shipped in the package: consent, install,
update, uninstall, rollback, enable/disable, grants, lockfiles, records, kernel sync."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plugmarket import loader
from plugmarket.errors import (
    ConsentRequired,
    InstallError,
    IntegrityError,
    PlugmarketError,
    ResolutionError,
)
from plugmarket.host import PlainHost
from plugmarket.marketplace import Marketplace


@pytest.fixture
def host() -> PlainHost:
    return PlainHost()


@pytest.fixture
def market(home: Path, host: PlainHost) -> Iterator[Marketplace]:
    m = Marketplace(home, host=host)
    yield m
    m.close()


def test_install_asks_consent_with_the_whole_plan(market: Marketplace) -> None:
    with pytest.raises(ConsentRequired) as info:
        market.install("csv-preview")
    plan = info.value.plan
    assert {(i.action, i.id, i.new_version) for i in plan.items} == {
        ("add", "csv-preview", "1.0.0"),
        ("add", "table-kit", "1.0.0"),
    }
    item = plan.item("csv-preview")
    assert item is not None and set(item.capabilities) == {"fs.read", "ipython.magics", "display"}
    assert market.installed() == []  # nothing happened
    assert not loader.loaded()


def test_install_makes_the_plugin_live_and_records_it(
    market: Marketplace, host: PlainHost, home: Path
) -> None:
    market.install("csv-preview", yes=True)
    assert {p.id: p.version for p in market.installed()} == {
        "csv-preview": "1.0.0",
        "table-kit": "1.0.0",
    }
    assert set(loader.loaded()) == {"csv-preview", "table-kit"}
    assert "csv_preview" in host.magics["line"]
    preview = next(p for p in market.installed() if p.id == "csv-preview")
    assert set(preview.grants) == {"fs.read", "ipython.magics", "display"}
    assert not next(p for p in market.installed() if p.id == "table-kit").explicit
    operations = [(e.operation, e.result) for e in market.audit()]
    assert ("install", "ok") in operations
    assert market.stats("csv-preview").installs == 1


def test_a_yanked_version_is_only_taken_when_pinned(market: Marketplace) -> None:
    market.install("csv-preview", yes=True)
    assert next(p for p in market.installed() if p.id == "csv-preview").version == "1.0.0"
    market.uninstall("csv-preview")
    market.install("csv-preview", "0.9.0", yes=True)
    assert next(p for p in market.installed() if p.id == "csv-preview").version == "0.9.0"


def test_update_hot_swaps_without_new_consent(market: Marketplace, host: PlainHost) -> None:
    market.install("units", "1.0.0", yes=True)
    assert loader.loaded()["units"].version.public == "1.0.0"
    plan = market.update("units")  # same capabilities: no consent needed
    assert [(i.action, i.old_version, i.new_version) for i in plan.items] == [
        ("change", "1.0.0", "1.1.0")
    ]
    assert loader.loaded()["units"].version.public == "1.1.0"
    assert "units" in host.magics["line"]


def test_uninstall_refuses_a_required_plugin_and_names_who_needs_it(
    market: Marketplace,
) -> None:
    market.install("csv-preview", yes=True)
    with pytest.raises(ResolutionError, match="csv-preview"):
        market.uninstall("table-kit")
    market.uninstall("csv-preview")
    assert market.installed() == []  # the unused dependency went with it
    assert not loader.loaded()


def test_rollback_restores_the_previous_set_live(market: Marketplace) -> None:
    market.install("units", "1.0.0", yes=True)
    market.update("units")
    market.rollback()
    assert {p.id: p.version for p in market.installed()} == {"units": "1.0.0"}
    assert loader.loaded()["units"].version.public == "1.0.0"
    numbers = [g.number for g in market.generations()]
    assert numbers == sorted(numbers) and len(numbers) >= 3


def test_disable_unloads_and_enable_loads_again(market: Marketplace, host: PlainHost) -> None:
    market.install("todo", yes=True)
    market.disable("todo")
    assert "todo" not in loader.loaded() and "todo" not in host.magics["line"]
    assert not next(p for p in market.installed() if p.id == "todo").enabled
    market.enable("todo")
    assert "todo" in loader.loaded()


def test_grant_and_revoke_change_what_the_live_plugin_may_do(market: Marketplace) -> None:
    market.install("todo", yes=True)
    market.grant("todo", "fs.read:/srv/shared")
    assert "fs.read:/srv/shared" in loader.loaded()["todo"].grants.as_strings()
    market.revoke("todo", "fs.read:/srv/shared")
    assert "fs.read:/srv/shared" not in loader.loaded()["todo"].grants.as_strings()
    with pytest.raises(InstallError, match="was not granted"):
        market.revoke("todo", "fs.read:/srv/shared")


def test_the_admins_cap_refuses_a_plugin_outright(home: Path) -> None:
    from plugmarket.config import load_settings

    capped = load_settings(home=home).replace(capability_cap=("ipython.magics", "display"))
    market = Marketplace(settings=capped, host=PlainHost())
    with pytest.raises(ResolutionError, match=r"fs\.read"):
        market.install("csv-preview", yes=True)
    market.install("todo", yes=True)
    with pytest.raises(InstallError, match="administrator"):
        market.grant("todo", "subprocess")


def test_a_lockfile_reproduces_the_set_on_a_fresh_home(market: Marketplace, tmp_path: Path) -> None:
    market.install("csv-preview", yes=True)
    market.install("units", "1.0.0", yes=True)
    market.disable("units")
    lock = tmp_path / "plugins.lock"
    lock.write_bytes(market.lock())
    for plugin in reversed(list(loader.loaded().values())):
        loader.unload(plugin)
    fresh = Marketplace(tmp_path / "fresh-home", host=PlainHost())
    with pytest.raises(ConsentRequired):
        fresh.apply_lock(lock)
    fresh.apply_lock(lock, yes=True)
    mine = {(p.id, p.version, p.sha256, p.grants, p.enabled) for p in market.installed()}
    assert {(p.id, p.version, p.sha256, p.grants, p.enabled) for p in fresh.installed()} == mine


def test_a_lockfile_whose_hash_the_registry_does_not_match_is_refused(
    market: Marketplace, tmp_path: Path
) -> None:
    market.install("todo", yes=True)
    lock = tmp_path / "plugins.lock"
    lock.write_bytes(market.lock().replace(market.installed()[0].sha256.encode(), b"0" * 64))
    fresh = Marketplace(tmp_path / "fresh-home", host=PlainHost())
    with pytest.raises(IntegrityError):
        fresh.apply_lock(lock, yes=True)
    assert fresh.installed() == []


def test_a_kernel_follows_an_install_made_elsewhere(home: Path, host: PlainHost) -> None:
    kernel = Marketplace(home, host=host)
    assert kernel.sync() in (True, False)  # first sync: in step with an empty set
    assert kernel.sync() is False  # nothing changed: nothing read but one stat
    terminal = Marketplace(home, live=False, surface="cli")
    terminal.install("todo", yes=True)
    assert "todo" not in loader.loaded()  # the terminal loads nothing
    assert kernel.sync() is True
    assert "todo" in loader.loaded() and "todo" in host.magics["line"]
    terminal.uninstall("todo")
    assert kernel.sync() is True
    assert "todo" not in loader.loaded()


def test_ratings_and_reviews_are_kept_and_validated(market: Marketplace) -> None:
    market.rate("units", 5, "handy")
    market.rate("units", 4)  # the same user rating again replaces it
    reviews = market.reviews("units")
    assert [r.stars for r in reviews] == [4]
    with pytest.raises(PlugmarketError) as info:
        market.rate("units", 6)
    assert "5" in str(info.value)  # says what is allowed


def test_failures_are_in_the_audit_log(market: Marketplace) -> None:
    with pytest.raises(ResolutionError):
        market.install("no-such-plugin", yes=True)
    assert any(e.operation == "install" and e.result.startswith("error") for e in market.audit())


def test_auto_update_applies_what_needs_no_new_consent_and_says_what_it_skipped(
    tmp_path: Path, home: Path
) -> None:
    from plugmarket._internal.signing import generate_keypair
    from plugmarket.publish import publish
    from plugmarket.settings import RegistryConfig, Settings
    from tests.support.plugins import write_plugin

    registry = tmp_path / "registry"
    key, pub = generate_keypair(tmp_path / "team")

    def release(plugin_id: str, version: str, **kwargs: object) -> None:
        folder = write_plugin(
            tmp_path / f"{plugin_id}-{version}", plugin_id, version=version, **kwargs
        )
        publish(folder, registry, key=key)

    release("quiet", "1.0")
    release("greedy", "1.0")
    release("helper", "1.0")
    registries = (RegistryConfig(str(registry), trusted_keys=(str(pub),)),)
    # No metadata TTL: the new releases below must be seen at once.
    settings = Settings(home=home, registries=registries, cache_ttl=0)
    market = Marketplace(settings=settings, host=PlainHost())
    market.install("quiet", yes=True)
    market.install("greedy", yes=True)
    release("quiet", "1.1")  # a hot fix: same capabilities
    release("greedy", "1.1", requires=["helper"])  # same capabilities, but new code comes along
    plan = market.auto_update()
    assert [(i.id, i.new_version) for i in plan.items] == [("quiet", "1.1")]
    assert any("greedy" in note for note in plan.skipped)
    assert {p.id: p.version for p in market.installed()} == {"quiet": "1.1", "greedy": "1.0"}


def test_installing_a_dependency_by_name_keeps_it_when_its_user_goes(
    market: Marketplace,
) -> None:
    market.install("csv-preview", yes=True)
    market.install("table-kit", yes=True)  # already there as a dependency
    assert next(p for p in market.installed() if p.id == "table-kit").explicit
    market.uninstall("csv-preview")
    assert [p.id for p in market.installed()] == ["table-kit"]


def test_syncing_to_a_lockfile_makes_the_set_exactly_the_lockfiles(
    market: Marketplace, tmp_path: Path
) -> None:
    market.install("units", "1.0.0", yes=True)
    lock = tmp_path / "plugins.lock"
    lock.write_bytes(market.lock())
    market.install("todo", yes=True)
    market.update("units")
    market.apply_lock(lock, yes=True)
    assert {p.id: p.version for p in market.installed()} == {"units": "1.0.0"}
    assert set(loader.loaded()) == {"units"}


def test_the_audit_log_records_versions_grants_and_the_generation(market: Marketplace) -> None:
    market.install("units", "1.0.0", yes=True)
    market.update("units")
    update, install = market.audit()[:2]
    assert (install.operation, update.operation) == ("install", "update")
    assert [(p.id, p.old_version, p.new_version) for p in update.plugins] == [
        ("units", "1.0.0", "1.1.0")
    ]
    assert set(install.plugins[0].grants) == {"ipython.magics", "ipython.namespace"}
    assert update.generation == market.installer.current().number


def test_load_times_are_recorded(market: Marketplace, home: Path, host: PlainHost) -> None:
    market.install("todo", yes=True)
    stats = market.stats("todo")
    assert stats.loads == 1
    kernel = Marketplace(home, host=host)  # another kernel on the same home
    market.unload("todo")
    kernel.sync()
    assert market.stats("todo").loads == 2


def test_a_lockfile_keeps_which_plugins_came_as_dependencies(
    market: Marketplace, tmp_path: Path
) -> None:
    market.install("csv-preview", yes=True)
    lock = tmp_path / "plugins.lock"
    lock.write_bytes(market.lock())
    for plugin in reversed(list(loader.loaded().values())):
        loader.unload(plugin)
    fresh = Marketplace(tmp_path / "fresh-home", host=PlainHost())
    fresh.apply_lock(lock, yes=True)
    assert {p.id: p.explicit for p in fresh.installed()} == {
        "csv-preview": True,
        "table-kit": False,
    }
    fresh.uninstall("csv-preview")
    assert fresh.installed() == []


def test_statistics_that_cannot_be_written_do_not_fail_a_committed_install(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (home / "stats.log").mkdir()  # where the statistics go cannot be written
    market = Marketplace(home, live=False)
    plan = market.install("units", yes=True)
    assert plan.item("units") is not None
    assert [p.id for p in market.installed()] == ["units"]
    assert market.audit(1)[0].result == "ok"
    assert "could not record statistics" in caplog.text


def test_applying_a_lockfile_with_a_disabled_plugin_audits_everything_it_changed(
    home: Path, tmp_path: Path
) -> None:
    market = Marketplace(home, live=False)
    market.install("csv-preview", yes=True)
    market.disable("csv-preview")
    lockfile = tmp_path / "plugins.lock"
    lockfile.write_bytes(market.lock())
    other = Marketplace(tmp_path / "other", live=False)
    other.apply_lock(lockfile, yes=True)
    entry = next(e for e in other.audit(10) if e.operation == "apply_lock")
    assert entry.result == "ok"
    assert {p.id for p in entry.plugins} == {"csv-preview", "table-kit"}


def test_the_homes_rollout_id_is_made_only_when_a_version_is_being_rolled_out(
    tmp_path: Path, home: Path
) -> None:
    from plugmarket._internal.resolution_provider import rollout_bucket
    from plugmarket._internal.signing import generate_keypair
    from plugmarket.publish import publish
    from plugmarket.settings import RegistryConfig, Settings
    from tests.support.plugins import write_plugin

    registry = tmp_path / "registry"
    key, pub = generate_keypair(tmp_path / "team")
    for plugin_id, version, share in [("plain", "1.0", None), ("units", "1.0", None)]:
        publish(
            write_plugin(tmp_path / f"{plugin_id}-{version}", plugin_id, version=version),
            registry,
            key=key,
            rollout=share,
        )
    publish(
        write_plugin(tmp_path / "units-1.1", "units", version="1.1"), registry, key=key, rollout=0.5
    )
    registries = (RegistryConfig(str(registry), trusted_keys=(str(pub),)),)
    market = Marketplace(settings=Settings(home=home, registries=registries), host=PlainHost())
    market.install("plain", yes=True)
    assert not (home / "user-id").exists()  # nothing was being rolled out
    market.install("units", yes=True)
    made = (home / "user-id").read_text().strip()
    assert made
    expected = "1.1" if rollout_bucket(made, "units", "1.1") < 0.5 else "1.0"
    assert {p.id: p.version for p in market.installed()}["units"] == expected
    # The same home keeps its id, so it keeps its answer.
    again = Marketplace(settings=Settings(home=home, registries=registries), host=PlainHost())
    assert again.update("units", yes=True).empty
    assert (home / "user-id").read_text().strip() == made
