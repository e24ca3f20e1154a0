"""The resolver on a generated registry of 1,000 plugins with shared dependencies.

The graph is seeded, so every run sees the same registry. Each plugin has one
to six versions; each version requires up to three plugins further down the
graph, half of them from a small pool of widely shared "core" plugins, with
version ranges. Version 1.0.0 of every plugin only requires ranges that admit
1.0.0, so "everything at 1.0.0" is always a solution: every request for
unconstrained ids is solvable, and the resolver must backtrack from the
newest versions to find one. Some versions are yanked or on the beta channel.
Four plugins form an unsolvable conflict: ``clash-app`` requires
``clash-left`` and ``clash-right``, which require ``clash-core>=3`` and
``clash-core<2``.

Timing is not asserted here (speed belongs to benchmarks); run with
``--durations`` to see it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
from packaging.version import Version

from plugmarket._internal.installed import Generation, InstalledPlugin
from plugmarket.errors import ResolutionError
from plugmarket.resolver import Offer, Resolution, resolve
from plugmarket.settings import Settings
from tests.support.catalog import MemoryCatalog

SEED = 20240501
PLUGINS = 1000
CORE = 100  # the last CORE generated plugins are the shared "core" dependencies
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "3.0.0"]
EMPTY = Generation(number=0)


def _range(rng: random.Random, k: int, mine: list[str], theirs: list[str]) -> str:
    """The range version ``mine[k]`` of a plugin puts on a dependency with versions ``theirs``.

    Newer versions tend to need newer dependencies (the lower bound moves up
    with ``k``), a quarter cap the dependency below its next major version, and
    version 1.0.0 (``k == 0``) always admits the dependency's 1.0.0.
    """
    lo = Version(
        theirs[max(0, min(len(theirs) - 1, k * len(theirs) // len(mine) - rng.randint(0, 1)))]
    )
    roll = rng.random()
    if roll < 0.6:
        return f">={lo}"
    if roll < 0.85:
        return f">={lo},<{lo.major + 1}"
    if roll < 0.95:
        return ""
    return f"<{lo.major + 1}"


def build_catalog(seed: int = SEED) -> MemoryCatalog:
    rng = random.Random(seed)
    cat = MemoryCatalog()
    ids = [f"p{i:04d}" for i in range(PLUGINS - 4)]
    have = {pid: VERSIONS[: rng.randint(1, len(VERSIONS))] for pid in ids}
    # Layers, as plugin ecosystems grow: 600 apps on libraries on a shared core.
    libs, core = ids[600 : PLUGINS - 4 - CORE], ids[-CORE:]
    for pid in ids:
        if pid in core:
            pool, most = [c for c in core if c > pid], 1
        elif pid in libs:
            pool, most = [*core, *(lib for lib in libs if lib > pid)], 2
        else:
            pool, most = [*core, *libs], 3
        deps = sorted(set(rng.sample(pool, min(len(pool), rng.randint(0, most)))))
        for k, version in enumerate(have[pid]):
            baseline = k == 0
            requires = [f"{d}{_range(rng, k, have[pid], have[d])}" for d in deps]
            yanked = not baseline and rng.random() < 0.05
            channel = "beta" if not baseline and rng.random() < 0.05 else "stable"
            cat.add(pid, version, requires=requires, yanked=yanked, channel=channel)
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        cat.add("clash-core", version)
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        cat.add("clash-left", version, requires=["clash-core>=3", rng.choice(core)])
        cat.add("clash-right", version, requires=["clash-core<2", rng.choice(core)])
    cat.add("clash-app", "1.0.0", requires=["clash-left", "clash-right"])
    assert len(cat.ids()) == PLUGINS
    return cat


@pytest.fixture(scope="module")
def catalog() -> MemoryCatalog:
    return build_catalog()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def check_consistent(
    chosen: Mapping[str, Offer], requests: list[str], kept: Mapping[str, InstalledPlugin] = {}
) -> None:
    """Every request and every requirement of every plugin in the set holds."""
    from packaging.requirements import Requirement

    versions = {pid: o.version for pid, o in chosen.items()}
    versions |= {pid: Version(p.version) for pid, p in kept.items() if pid not in versions}
    for text in requests:
        req = Requirement(text)
        assert req.specifier.contains(versions[req.name], prereleases=True), text
    requirements = [(o.id, r) for o in chosen.values() for r in o.info.requires]
    requirements += [
        (p.id, Requirement(t)) for pid, p in kept.items() if pid not in chosen for t in p.requires
    ]
    for requirer, req in requirements:
        assert req.name in versions, f"{requirer} requires {req}, which is missing"
        assert req.specifier.contains(versions[req.name], prereleases=True), (requirer, str(req))
    # A yanked or beta version is there only because a requirement pins it exactly.
    pinned = {(r.name, str(r.specifier)) for _, r in requirements}
    for offer in chosen.values():
        if offer.info.yanked or offer.info.channel != "stable":
            assert (offer.id, f"=={offer.version}") in pinned, offer


def batches(count: int, size: int, seed: int) -> list[list[str]]:
    """``count`` lists of ``size`` distinct generated ids (apps, libraries and core alike)."""
    rng = random.Random(seed)
    ids = [f"p{i:04d}" for i in range(PLUGINS - 4)]
    return [rng.sample(ids, size) for _ in range(count)]


@pytest.mark.parametrize("requests", batches(8, 40, seed=7))
def test_solvable_requests_resolve_to_a_set_where_every_requirement_holds(
    catalog, settings, requests
):
    res = resolve(requests, catalog=catalog, installed=EMPTY, settings=settings)
    assert set(requests) <= set(res.chosen)
    assert len(res.chosen) > len(requests)  # dependencies came along...
    users = Counter(r.name for o in res.chosen.values() for r in o.info.requires)
    assert users.most_common(1)[0][1] >= 3  # ...some of them shared
    check_consistent(res.chosen, requests)
    assert {i.id for i in res.plan.items} == set(res.chosen)
    assert all(i.action == "add" for i in res.plan.items)
    # The plan installs every plugin after what it requires.
    position = {item.id: n for n, item in enumerate(res.plan.items)}
    for offer in res.chosen.values():
        for req in offer.info.requires:
            assert position[req.name] < position[offer.id]


def installed_from(res: Resolution, explicit: list[str]) -> Generation:
    return Generation(
        number=1,
        plugins={
            pid: InstalledPlugin(
                id=pid,
                version=str(o.version),
                sha256=o.info.artifact.sha256,
                top=pid,
                requires=tuple(str(r) for r in o.info.requires),
                explicit=pid in explicit,
            )
            for pid, o in res.chosen.items()
        },
    )


@pytest.fixture(scope="module")
def baseline(catalog: MemoryCatalog) -> tuple[list[str], Generation]:
    """40 explicit plugins installed with their dependencies, everything at 1.0.0."""
    (explicit,) = batches(1, 40, seed=13)
    settings = Settings(home=Path("/nonexistent"))
    res = resolve(explicit, catalog=_only_baseline(catalog), installed=EMPTY, settings=settings)
    assert {str(o.version) for o in res.chosen.values()} == {"1.0.0"}
    return explicit, installed_from(res, explicit)


def test_a_second_install_keeps_the_installed_versions_and_every_requirement(
    catalog, settings, baseline
):
    _, have = baseline
    (second,) = batches(1, 40, seed=11)
    more = resolve(second, catalog=catalog, installed=have, settings=settings)
    assert not set(more.chosen) & set(have.plugins)  # nothing installed was allowed to move
    assert set(more.kept) <= set(have.plugins)
    check_consistent(more.chosen, second, kept=dict(have.plugins))


def test_updating_everything_moves_up_and_keeps_every_requirement(catalog, settings, baseline):
    explicit, have = baseline
    res = resolve([], catalog=catalog, installed=have, settings=settings, upgrade=True)
    moved = [i for i in res.plan.items if i.action == "change"]
    assert len(moved) > len(have.plugins) // 2
    assert all(Version(i.new_version) > Version(i.old_version) for i in moved)
    staying = {pid: p for pid, p in have.plugins.items() if pid in res.kept}
    check_consistent(res.chosen, explicit, kept=staying)


def test_an_installed_version_that_blocks_a_request_is_named(catalog, settings):
    first, second = batches(2, 30, seed=11)
    res = resolve(first, catalog=catalog, installed=EMPTY, settings=settings)
    have = installed_from(res, first)
    with pytest.raises(ResolutionError) as err:
        resolve(second, catalog=catalog, installed=have, settings=settings)
    message = err.value.message
    assert "is installed; update" in message
    blocked = message.rsplit("update ", 1)[1].removesuffix(" too")
    assert blocked in have.plugins
    assert f"but {blocked} {have.plugins[blocked].version} is installed" in message
    # Allowed to move everything, the resolver finds a set.
    fixed = resolve(second, catalog=catalog, installed=have, settings=settings, upgrade=True)
    staying = {pid: p for pid, p in have.plugins.items() if pid in fixed.kept}
    check_consistent(fixed.chosen, second, kept=staying)


def _only_baseline(catalog: MemoryCatalog) -> MemoryCatalog:
    """The same catalog with only version 1.0.0 of every plugin."""
    baseline = MemoryCatalog()
    for pid, offers in catalog.offers.items():
        baseline.offers[pid] = [o for o in offers if str(o.version) == "1.0.0"]
    return baseline


def test_the_unsolvable_request_is_explained_by_naming_the_plugins_in_conflict(catalog, settings):
    with pytest.raises(ResolutionError) as err:
        resolve(
            ["clash-app", *batches(1, 30, seed=17)[0]],
            catalog=catalog,
            installed=EMPTY,
            settings=settings,
        )
    message = err.value.message
    assert "clash-left 1." in message and "requires clash-core>=3" in message
    assert "clash-right 1." in message and "requires clash-core<2" in message
    assert "no version of clash-core satisfies both" in message
    requirers = {who for who, _ in err.value.conflicts}
    assert {"clash-left", "clash-right"} <= requirers
    assert {req for _, req in err.value.conflicts} >= {"clash-core>=3", "clash-core<2"}
