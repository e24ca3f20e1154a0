"""An in-memory resolver catalog and installed set, for the resolver's tests.

:class:`MemoryCatalog` holds :class:`~plugmarket.resolver.Offer` values built
from real :class:`~plugmarket._internal.registry_format.VersionInfo` entries
(through ``registry_states.version_info``), and answers the resolver's
``Catalog`` protocol in registry priority order, as ``RegistryCatalog`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from plugmarket._internal.installed import Generation, InstalledPlugin
from plugmarket.resolver import Offer
from tests.support.registry_states import version_info


class MemoryCatalog:
    """Plugins by id, from registries ranked by ``priorities`` (higher first)."""

    def __init__(self, priorities: dict[str, int] | None = None) -> None:
        self.priorities = priorities or {"main": 0}
        self.offers: dict[str, list[Offer]] = {}
        self.asked: list[str] = []

    def add(
        self,
        plugin_id: str,
        version: str,
        *,
        requires: Iterable[str] = (),
        host: str = ">=1.0,<2",
        capabilities: Iterable[str] = ("display",),
        channel: str = "stable",
        rollout: float | None = None,
        yanked: bool = False,
        registry: str = "main",
    ) -> Offer:
        payload = f"{registry}:{plugin_id}:{version}".encode()
        info = replace(
            version_info(plugin_id, version, payload, channel=channel, yanked=yanked),
            requires=tuple(Requirement(r) for r in requires),
            host=SpecifierSet(host),
            capabilities=tuple(capabilities),
            rollout=rollout,
        )
        offer = Offer(plugin_id, Version(version), info, registry)
        self.offers.setdefault(plugin_id, []).append(offer)
        return offer

    def candidates(self, plugin_id: str) -> tuple[Offer, ...]:
        self.asked.append(plugin_id)
        offers = self.offers.get(plugin_id, [])
        return tuple(sorted(offers, key=lambda o: -self.priorities[o.registry]))

    def ids(self) -> set[str]:
        return set(self.offers)


def installed(*plugins: InstalledPlugin) -> Generation:
    """A generation holding ``plugins``."""
    return Generation(number=1, plugins={p.id: p for p in plugins})


def plugin(
    plugin_id: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    grants: Iterable[str] = ("display",),
    requested: Iterable[str] = ("display",),
    explicit: bool = True,
) -> InstalledPlugin:
    """An installed plugin from the ``main`` registry."""
    return InstalledPlugin(
        id=plugin_id,
        version=version,
        sha256=f"{plugin_id}-{version}".encode().hex().ljust(64, "0")[:64],
        top=plugin_id.replace("-", "_"),
        grants=tuple(grants),
        requested=tuple(requested),
        requires=tuple(requires),
        explicit=explicit,
        registry="main",
    )
