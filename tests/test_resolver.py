"""The resolver: each rule on an in-memory catalog, then through the real registry client."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import resolvelib

from plugmarket._internal.installed import Generation
from plugmarket.errors import PlugmarketError, ResolutionError
from plugmarket.registry import RegistryClient
from plugmarket.resolver import RegistryCatalog, Resolution, resolve, rollout_bucket
from plugmarket.settings import RegistryConfig, Settings, demo_registry_path
from tests.support.catalog import MemoryCatalog, installed, plugin
from tests.support.registry import make_registry

EMPTY = Generation(number=0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def catalog() -> MemoryCatalog:
    """csv-preview needs table-kit 1.x; sql-kit 2 needs table-kit 2; units has a history."""
    cat = MemoryCatalog()
    cat.add("table-kit", "1.0.0", capabilities=())
    cat.add("table-kit", "1.5.0", capabilities=())
    cat.add("table-kit", "2.0.0", capabilities=())
    cat.add(
        "csv-preview",
        "1.0.0",
        requires=["table-kit>=1,<2"],
        capabilities=["fs.read", "display"],
    )
    cat.add("sql-kit", "1.0.0", requires=["table-kit<2"])
    cat.add("sql-kit", "2.0.0", requires=["table-kit>=2"])
    cat.add("units", "1.0.0")
    cat.add("units", "1.1.0")
    cat.add("units", "1.2.0", yanked=True)
    cat.add("units", "1.3.0b1", channel="beta")
    cat.add("units", "1.4.0", host=">=2")
    return cat


def run(
    requests: list[str], catalog: MemoryCatalog, settings: Settings, **kw: object
) -> Resolution:
    kw.setdefault("installed", EMPTY)
    return resolve(requests, catalog=catalog, settings=settings, **kw)  # type: ignore[arg-type]


def versions(res: Resolution) -> dict[str, str]:
    return {pid: str(offer.version) for pid, offer in res.chosen.items()}


# --------------------------------------------------------------------------- choosing


def test_a_request_pulls_in_its_dependency_and_the_plan_lists_both(catalog, settings):
    res = run(["csv-preview"], catalog, settings)

    assert versions(res) == {"csv-preview": "1.0.0", "table-kit": "1.5.0"}
    assert res.requested == ("csv-preview",)
    assert res.kept == ()
    assert [(i.action, i.id) for i in res.plan.items] == [
        ("add", "table-kit"),
        ("add", "csv-preview"),
    ]  # dependencies first
    item = res.plan.item("csv-preview")
    assert item is not None
    offer = res.chosen["csv-preview"]
    assert item.capabilities == ("fs.read", "display")
    assert item.grants == ("fs.read", "display")
    assert item.new_capabilities == ("fs.read", "display")
    assert (item.registry, item.sha256, item.size, item.url) == (
        "main",
        offer.info.artifact.sha256,
        offer.info.artifact.size,
        offer.info.artifact.url,
    )
    assert item.explicit and item.reason == "requested"
    dep = res.plan.item("table-kit")
    assert dep is not None
    assert not dep.explicit and dep.reason == "required by csv-preview"
    assert res.plan.needs_consent


def test_version_ranges_choose_the_newest_version_that_fits(catalog, settings):
    assert versions(run(["units"], catalog, settings)) == {"units": "1.1.0"}
    assert versions(run(["units<1.1"], catalog, settings)) == {"units": "1.0.0"}
    assert versions(run(["Units >= 1.0, != 1.1.0"], catalog, settings)) == {"units": "1.0.0"}


def test_two_requests_on_one_plugin_must_both_hold(catalog, settings):
    res = run(["sql-kit", "table-kit<2"], catalog, settings)
    assert versions(res) == {"sql-kit": "1.0.0", "table-kit": "1.5.0"}


def test_the_higher_priority_registry_wins_for_the_same_version():
    cat = MemoryCatalog({"company": 10, "public": 0})
    cat.add("units", "1.0.0", registry="public")
    cat.add("units", "1.0.0", registry="company")
    cat.add("units", "0.9.0", registry="company")
    settings = Settings(home=Path("/nonexistent"))

    res = run(["units"], cat, settings)
    assert res.chosen["units"].registry == "company"
    assert res.plan.items[0].registry == "company"


def test_a_version_only_a_lower_priority_registry_has_is_still_a_candidate():
    cat = MemoryCatalog({"company": 10, "public": 0})
    cat.add("units", "1.0.0", registry="company")
    cat.add("units", "2.0.0", registry="public")
    res = run(["units"], cat, Settings(home=Path("/nonexistent")))
    assert (str(res.chosen["units"].version), res.chosen["units"].registry) == ("2.0.0", "public")


def test_a_version_for_another_host_api_is_never_chosen_even_pinned(catalog, settings):
    assert versions(run(["units>=1.1"], catalog, settings)) == {"units": "1.1.0"}
    with pytest.raises(ResolutionError) as err:
        run(["units==1.4.0"], catalog, settings)
    assert "1.4.0 needs plugin API >=2 (this plugmarket has 1.0)" in str(err.value)
    assert err.value.conflicts == (("you", "units==1.4.0"),)


def test_the_stable_channel_sees_no_beta_and_no_pre_release(catalog, settings):
    assert versions(run(["units>=1.1"], catalog, settings)) == {"units": "1.1.0"}
    with pytest.raises(ResolutionError) as err:
        run(["units>=1.3.0b1"], catalog, settings)
    assert "1.3.0b1 is on the beta channel" in str(err.value)


def test_the_beta_channel_sees_beta_pre_releases_and_stable(catalog, settings):
    beta = settings.replace(channel="beta")
    assert versions(run(["units"], catalog, beta)) == {"units": "1.3.0b1"}
    assert versions(run(["table-kit"], catalog, beta)) == {"table-kit": "2.0.0"}


def test_a_pre_release_on_the_stable_channel_is_offered_on_beta_only():
    cat = MemoryCatalog()
    cat.add("units", "1.0.0")
    cat.add("units", "2.0.0rc1")  # published on stable, but a pre-release
    stable = Settings(home=Path("/nonexistent"))
    assert versions(run(["units"], cat, stable)) == {"units": "1.0.0"}
    assert versions(run(["units"], cat, stable.replace(channel="beta"))) == {"units": "2.0.0rc1"}


def test_an_exact_pin_accepts_a_version_on_another_channel(catalog, settings):
    assert versions(run(["units==1.3.0b1"], catalog, settings)) == {"units": "1.3.0b1"}


def test_a_yanked_version_is_never_chosen_unless_pinned_exactly(catalog, settings):
    # The newest stable release is 1.2.0, yanked: ranges pass over it...
    assert versions(run(["units>=1.1"], catalog, settings)) == {"units": "1.1.0"}
    with pytest.raises(ResolutionError) as err:
        run(["units>1.1"], catalog, settings)
    assert "1.2.0 is yanked (broken)" in str(err.value)
    # ...a wildcard is not an exact pin...
    with pytest.raises(ResolutionError):
        run(["units==1.2.*"], catalog, settings)
    # ...and == or === pins it.
    assert versions(run(["units==1.2.0"], catalog, settings)) == {"units": "1.2.0"}
    assert versions(run(["units===1.2.0"], catalog, settings)) == {"units": "1.2.0"}


def test_a_dependency_pinned_exactly_on_a_yanked_version_is_accepted(settings):
    cat = MemoryCatalog()
    cat.add("table-kit", "1.0.0", yanked=True)
    cat.add("table-kit", "1.1.0")
    cat.add("csv-preview", "1.0.0", requires=["table-kit==1.0.0"])
    assert versions(run(["csv-preview"], cat, settings))["table-kit"] == "1.0.0"


def _users(plugin_id: str, version: str, share: float) -> tuple[str, str]:
    """One user id inside the rollout share and one outside it."""
    inside = outside = ""
    for n in range(1000):
        user = f"user-{n}"
        digest = hashlib.sha256(f"{user}:{plugin_id}:{version}".encode()).hexdigest()
        bucket = int(digest[:8], 16) / 16**8
        assert rollout_bucket(user, plugin_id, version) == bucket
        if bucket < share:
            inside = inside or user
        else:
            outside = outside or user
        if inside and outside:
            return inside, outside
    raise AssertionError("no users on both sides of the share")


def test_a_rollout_offers_a_version_to_the_users_whose_bucket_is_below_its_share(settings):
    cat = MemoryCatalog()
    cat.add("units", "1.0.0")
    cat.add("units", "1.1.0", rollout=0.3)
    inside, outside = _users("units", "1.1.0", 0.3)

    got_in = run(["units"], cat, settings.replace(user_id=inside))
    got_out = run(["units"], cat, settings.replace(user_id=outside))
    assert versions(got_in) == {"units": "1.1.0"}
    assert versions(got_out) == {"units": "1.0.0"}
    # The same user always gets the same answer.
    assert versions(run(["units"], cat, settings.replace(user_id=outside))) == {"units": "1.0.0"}
    # An exact pin overrides the rollout.
    pinned = run(["units==1.1.0"], cat, settings.replace(user_id=outside))
    assert versions(pinned) == {"units": "1.1.0"}


def test_a_rollout_share_of_zero_offers_the_version_to_nobody(settings):
    cat = MemoryCatalog()
    cat.add("units", "1.0.0")
    cat.add("units", "1.1.0", rollout=0.0)
    with pytest.raises(ResolutionError) as err:
        run(["units>=1.1"], cat, settings.replace(user_id="anyone"))
    assert "1.1.0 is not yet rolled out to you" in str(err.value)


def test_no_user_id_buckets_as_anonymous(settings):
    cat = MemoryCatalog()
    cat.add("units", "1.0.0")
    cat.add("units", "1.1.0", rollout=0.5)
    expected = "1.1.0" if rollout_bucket("anonymous", "units", "1.1.0") < 0.5 else "1.0.0"
    assert versions(run(["units"], cat, settings.replace(user_id=""))) == {"units": expected}


# --------------------------------------------------------------------------- installed set


def test_an_installed_plugin_keeps_its_version_when_it_fits(catalog, settings):
    have = installed(plugin("units", "1.0.0"))
    res = run(["units"], catalog, settings, installed=have)
    assert res.chosen == {}
    assert res.kept == ("units",)
    assert res.plan.empty and not res.plan.needs_consent


def test_an_installed_dependency_is_preferred_over_a_newer_one(catalog, settings):
    have = installed(plugin("table-kit", "1.0.0", explicit=False, requested=(), grants=()))
    res = run(["csv-preview"], catalog, settings, installed=have)
    assert versions(res) == {"csv-preview": "1.0.0"}
    assert res.kept == ("table-kit",)


def test_a_request_with_a_new_range_moves_an_installed_plugin(catalog, settings):
    have = installed(plugin("units", "1.0.0", grants=("display",)))
    res = run(["units>=1.1"], catalog, settings, installed=have)
    item = res.plan.item("units")
    assert item is not None
    assert (item.action, item.old_version, item.new_version) == ("change", "1.0.0", "1.1.0")
    assert item.new_capabilities == ()  # display was granted before


def test_upgrade_moves_the_listed_plugins_to_the_newest_version(catalog, settings):
    have = installed(
        plugin("units", "1.0.0"),
        plugin("table-kit", "1.0.0"),
    )
    res = run([], catalog, settings, installed=have, upgrade=["units"], operation="update")
    assert versions(res) == {"units": "1.1.0"}
    assert res.kept == ("table-kit",)
    assert res.plan.operation == "update"

    every = run([], catalog, settings, installed=have, upgrade=True, operation="update")
    assert versions(every) == {"units": "1.1.0", "table-kit": "2.0.0"}
    assert all(i.action == "change" and i.reason == "requested" for i in every.plan.items)


def test_upgrade_keeps_a_plugin_already_at_the_newest_version(catalog, settings):
    have = installed(plugin("units", "1.1.0"))
    res = run([], catalog, settings, installed=have, upgrade=True)
    assert res.plan.empty and res.kept == ("units",)


def test_a_locked_installed_plugin_that_does_not_fit_is_a_conflict_naming_the_update(settings):
    cat = MemoryCatalog()
    cat.add("table-kit", "1.0.0")
    cat.add("table-kit", "2.0.0")
    cat.add("csv-preview", "1.0.0", requires=["table-kit>=2"])
    have = installed(plugin("table-kit", "1.0.0", explicit=False))

    with pytest.raises(ResolutionError) as err:
        run(["csv-preview"], cat, settings, installed=have)
    assert err.value.message == (
        "csv-preview 1.0.0 requires table-kit>=2, but table-kit 1.0.0 is installed; "
        "update table-kit too"
    )
    assert err.value.conflicts == (("csv-preview", "table-kit>=2"),)
    assert "plugmarket update table-kit" in err.value.hint
    assert isinstance(err.value.__cause__, resolvelib.ResolutionImpossible)

    res = run(["csv-preview"], cat, settings, installed=have, upgrade=["table-kit"])
    item = res.plan.item("table-kit")
    assert item is not None
    assert (item.action, item.new_version, item.reason) == (
        "change",
        "2.0.0",
        "required by csv-preview",
    )
    assert not item.explicit


def test_installed_plugins_requirements_are_constraints(catalog, settings):
    have = installed(
        plugin("sql-kit", "1.0.0", requires=["table-kit<2"]),
        plugin("table-kit", "1.0.0", explicit=False),
    )
    with pytest.raises(ResolutionError) as err:
        run(["table-kit>=2"], catalog, settings, installed=have)
    assert err.value.message == (
        "you asked for table-kit>=2 and sql-kit 1.0.0 requires table-kit<2: "
        "no version of table-kit satisfies both"
    )
    assert set(err.value.conflicts) == {("you", "table-kit>=2"), ("sql-kit", "table-kit<2")}


def test_two_plugins_needing_incompatible_versions_are_named_with_what_each_requires(
    catalog, settings
):
    with pytest.raises(ResolutionError) as err:
        run(["csv-preview", "sql-kit>=2"], catalog, settings)
    message = err.value.message
    assert "csv-preview 1.0.0 requires table-kit<2,>=1" in message
    assert "sql-kit 2.0.0 requires table-kit>=2" in message
    assert message.endswith("no version of table-kit satisfies both")
    assert set(err.value.conflicts) == {
        ("csv-preview", "table-kit<2,>=1"),
        ("sql-kit", "table-kit>=2"),
    }
    # Left to choose, the resolver finds the sql-kit that fits.
    assert versions(run(["csv-preview", "sql-kit"], catalog, settings))["sql-kit"] == "1.0.0"


def test_a_request_nothing_satisfies_says_what_the_registry_has(catalog, settings):
    with pytest.raises(ResolutionError) as err:
        run(["units>=2"], catalog, settings)
    assert err.value.message.startswith(
        "you asked for units>=2, but the registry 'main' has units 1.0.0 and 1.1.0"
    )
    assert err.value.conflicts == (("you", "units>=2"),)


# --------------------------------------------------------------------------- removal


def test_removing_a_plugin_another_installed_plugin_requires_names_the_dependents(
    catalog, settings
):
    have = installed(
        plugin("csv-preview", "1.0.0", requires=["table-kit>=1,<2"]),
        plugin("sql-kit", "1.0.0", requires=["Table_Kit<2"]),
        plugin("table-kit", "1.0.0"),
    )
    with pytest.raises(ResolutionError) as err:
        run([], catalog, settings, installed=have, remove=["table-kit"], operation="uninstall")
    assert err.value.message == (
        "cannot uninstall table-kit: table-kit is required by csv-preview and sql-kit, "
        "which stay installed"
    )
    assert err.value.conflicts == (
        ("csv-preview", "table-kit>=1,<2"),
        ("sql-kit", "Table_Kit<2"),
    )
    assert "Uninstall csv-preview and sql-kit first" in err.value.hint

    res = run([], catalog, settings, installed=have, remove=["table-kit", "csv-preview", "sql-kit"])
    assert [i.id for i in res.plan.items if i.action == "remove"][-1] == "table-kit"
    assert res.plan.items[0].id in ("csv-preview", "sql-kit")


def test_uninstall_removes_dependencies_nothing_else_needs(catalog, settings):
    have = installed(
        plugin("csv-preview", "1.0.0", requires=["table-kit>=1,<2"], grants=("fs.read",)),
        plugin("table-kit", "1.0.0", explicit=False),
        plugin("units", "1.0.0"),
    )
    res = run([], catalog, settings, installed=have, remove=["csv-preview"], operation="uninstall")
    assert [(i.action, i.id, i.reason) for i in res.plan.items] == [
        ("remove", "csv-preview", "requested"),
        ("remove", "table-kit", "no longer required"),
    ]
    assert res.plan.items[0].grants == ("fs.read",)
    assert res.kept == ("units",)
    assert not res.plan.needs_consent


def test_uninstall_keeps_a_dependency_another_plugin_still_needs(catalog, settings):
    have = installed(
        plugin("csv-preview", "1.0.0", requires=["table-kit>=1,<2"]),
        plugin("sql-kit", "1.0.0", requires=["table-kit<2"]),
        plugin("table-kit", "1.0.0", explicit=False),
    )
    res = run([], catalog, settings, installed=have, remove=["csv-preview"])
    assert [(i.action, i.id) for i in res.plan.items] == [("remove", "csv-preview")]
    assert res.kept == ("sql-kit", "table-kit")


def test_uninstalling_what_is_not_installed_is_refused(catalog, settings):
    with pytest.raises(ResolutionError) as err:
        run([], catalog, settings, installed=installed(plugin("units", "1.0.0")), remove=["todo"])
    assert "cannot uninstall todo: not installed (installed: units)" in str(err.value)


def test_a_request_that_needs_a_plugin_being_removed_is_refused(catalog, settings):
    have = installed(plugin("table-kit", "1.0.0"))
    with pytest.raises(ResolutionError) as err:
        run(["csv-preview"], catalog, settings, installed=have, remove=["table-kit"])
    assert "table-kit is being uninstalled" in err.value.message


# --------------------------------------------------------------------------- capabilities


def test_a_version_asking_beyond_the_admin_cap_is_refused_and_the_plan_says_so(settings):
    cat = MemoryCatalog()
    cat.add("csv-preview", "1.0.0", capabilities=["display"])
    cat.add("csv-preview", "2.0.0", capabilities=["display", "fs.write:~/out"])
    capped = settings.replace(capability_cap=("display", "fs.read"))

    res = run(["csv-preview"], cat, capped)
    assert versions(res) == {"csv-preview": "1.0.0"}
    assert res.plan.skipped == (
        "csv-preview 2.0.0 was not offered: it requests fs.write:~/out, "
        "beyond what the admin allows",
    )
    with pytest.raises(ResolutionError) as err:
        run(["csv-preview==2.0.0"], cat, capped)  # a pin does not lift the cap
    assert "2.0.0 requests fs.write:~/out, beyond what the admin allows" in err.value.message
    assert "admin" in err.value.hint
    # A cap that covers the scope lets it through.
    wide = settings.replace(capability_cap=("display", "fs.write"))
    assert versions(run(["csv-preview"], cat, wide)) == {"csv-preview": "2.0.0"}


def test_an_update_lists_only_capabilities_not_granted_before_as_new(settings):
    cat = MemoryCatalog()
    cat.add("http-get", "1.0.0", capabilities=["net:api.github.com"])
    cat.add("http-get", "1.1.0", capabilities=["net:api.github.com", "display"])
    have = installed(plugin("http-get", "1.0.0", grants=("net:api.github.com",), requested=()))
    res = run([], cat, settings, installed=have, upgrade=["http-get"])
    item = res.plan.item("http-get")
    assert item is not None
    assert item.grants == ("net:api.github.com", "display")
    assert item.new_capabilities == ("display",)
    assert res.plan.needs_consent


# --------------------------------------------------------------------------- bad input


def test_an_unknown_id_is_refused_with_close_ids_suggested(catalog, settings):
    with pytest.raises(ResolutionError) as err:
        run(["csv-previw"], catalog, settings)
    assert err.value.message == (
        "no plugin 'csv-previw' in any configured registry. Did you mean csv-preview?"
    )
    with pytest.raises(ResolutionError) as err:
        run(["zzz"], catalog, settings)
    assert "Did you mean" not in err.value.message


def test_a_dependency_no_registry_has_is_named_with_who_requires_it(settings):
    cat = MemoryCatalog()
    cat.add("csv-preview", "1.0.0", requires=["tabel-kit>=1"])
    with pytest.raises(ResolutionError) as err:
        run(["csv-preview"], cat, settings)
    assert err.value.message == (
        "csv-preview 1.0.0 requires tabel-kit>=1, but no configured registry has a plugin "
        "'tabel-kit'"
    )


@pytest.mark.parametrize("text", ["units>>1", "../etc", "", "units[extra"])
def test_a_request_that_is_not_a_requirement_is_refused(catalog, settings, text):
    with pytest.raises(ResolutionError) as err:
        run([text], catalog, settings)
    assert "is not a plugin requirement" in err.value.message
    assert isinstance(err.value, PlugmarketError)


def test_a_request_for_an_installed_dependency_keeps_it_and_marks_it_requested(catalog, settings):
    have = installed(plugin("table-kit", "1.0.0", explicit=False))
    res = run(["table-kit"], catalog, settings, installed=have)
    assert res.plan.empty
    assert res.requested == ("table-kit",)
    assert res.kept == ("table-kit",)


def test_each_plugin_is_looked_up_once(catalog, settings):
    run(["csv-preview", "sql-kit"], catalog, settings)
    assert sorted(catalog.asked) == ["csv-preview", "sql-kit", "table-kit"]


# --------------------------------------------------------------------------- real registries


def test_the_demo_registry_resolves_through_the_real_client(tmp_path):
    settings = Settings(home=tmp_path / "home")
    with RegistryClient(settings) as client, RegistryCatalog(client) as catalog:
        res = resolve(["csv-preview"], catalog=catalog, installed=EMPTY, settings=settings)
        assert versions(res) == {"csv-preview": "1.0.0", "table-kit": "1.0.0"}
        assert {i.registry for i in res.plan.items} == {"demo"}
        detail = client.details("csv-preview").detail.get("1.0.0")
        assert detail is not None
        item = res.plan.item("csv-preview")
        assert item is not None
        assert (item.sha256, item.size, item.url) == (
            detail.artifact.sha256,
            detail.artifact.size,
            detail.artifact.url,
        )
        # csv-preview 0.9.0 is yanked: only an exact pin chooses it.
        with pytest.raises(ResolutionError) as err:
            resolve(["csv-preview<1"], catalog=catalog, installed=EMPTY, settings=settings)
        assert "0.9.0 is yanked" in err.value.message
        pinned = resolve(
            ["csv-preview==0.9.0"], catalog=catalog, installed=EMPTY, settings=settings
        )
        assert versions(pinned)["csv-preview"] == "0.9.0"
        with pytest.raises(ResolutionError) as err:
            resolve(["units>=2"], catalog=catalog, installed=EMPTY, settings=settings)
        assert err.value.message.startswith(
            "you asked for units>=2, but the registry 'demo' has units 1.0.0 and 1.1.0"
        )
        beta = settings.replace(channel="beta")
        res = resolve(["json-viewer"], catalog=catalog, installed=EMPTY, settings=beta)
        assert versions(res) == {"json-viewer": "2.0.0b1"}


def test_versions_from_every_configured_registry_are_candidates(tmp_path):
    extra = make_registry(tmp_path / "extra")
    extra.publish("units", "3.0.0", capabilities=("ipython.magics",))
    mirror = tmp_path / "mirror"
    shutil.copytree(demo_registry_path(), mirror)
    demo = demo_registry_path()
    settings = Settings(
        home=tmp_path / "home",
        registries=(
            RegistryConfig(
                str(demo), name="demo", trusted_keys=(str(demo / "demo.pub"),), priority=5
            ),
            RegistryConfig(str(mirror), name="mirror", trusted_keys=(str(demo / "demo.pub"),)),
            extra.config(name="extra", priority=-1),
        ),
    )
    with RegistryClient(settings) as client, RegistryCatalog(client) as catalog:
        offers = catalog.candidates("units")
        assert [(str(o.version), o.registry) for o in offers] == [
            ("1.0.0", "demo"),
            ("1.1.0", "demo"),
            ("1.0.0", "mirror"),
            ("1.1.0", "mirror"),
            ("3.0.0", "extra"),
        ]
        res = resolve(["units", "csv-preview"], catalog=catalog, installed=EMPTY, settings=settings)
        assert (str(res.chosen["units"].version), res.chosen["units"].registry) == (
            "3.0.0",
            "extra",
        )
        assert res.chosen["csv-preview"].registry == "demo"  # same version in mirror: demo wins
        assert catalog.candidates("no-such-plugin") == ()


def test_a_search_that_runs_out_of_steps_is_a_resolution_error_naming_the_requests(
    catalog, settings
):
    with pytest.raises(ResolutionError) as err:
        run(["csv-preview", "sql-kit"], catalog, settings, max_rounds=2)
    assert err.value.message.startswith(
        "gave up after 2 steps looking for versions of csv-preview and sql-kit that fit together"
    )
    assert err.value.conflicts == (("you", "csv-preview"), ("you", "sql-kit"))
    assert isinstance(err.value.__cause__, resolvelib.ResolutionTooDeep)


def test_a_requirement_whose_marker_does_not_hold_here_is_left_out(settings):
    cat = MemoryCatalog()
    cat.add("table-kit", "1.0.0")
    cat.add("csv-preview", "1.0.0", requires=["table-kit; python_version < '3'"])
    assert versions(run(["csv-preview"], cat, settings)) == {"csv-preview": "1.0.0"}
    have = installed(
        plugin("csv-preview", "1.0.0", requires=["table-kit; python_version < '3'"]),
        plugin("table-kit", "1.0.0", explicit=False),
    )
    res = run([], cat, settings, installed=have)
    assert [(i.action, i.id, i.reason) for i in res.plan.items] == [
        ("remove", "table-kit", "no longer required")
    ]
