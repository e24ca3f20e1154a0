"""The resolver: requirements, installed set and registries in; a plan or an explained conflict out.

:func:`resolve` is pure: it reads the catalog (every version of every plugin,
from every configured registry) and the installed generation, and returns a
:class:`Resolution` holding the versions chosen and the :class:`~plugmarket.plan.Plan`
that would get there. Nothing is downloaded or written. The search itself is
resolvelib's (the backtracking resolver pip uses); the rules of what may be
chosen are in :mod:`plugmarket._internal.resolution_provider`, and
docs/decisions/0007-resolution.md gives the reasons.

Invariants:

- Every requirement of every plugin in the resulting set (the user's requests,
  the installed plugins that stay, and what they pull in) holds.
- An installed plugin the caller did not allow to move keeps its version; a
  requirement it does not meet is a conflict, never a silent change.
- A version whose host range excludes this plugmarket, or that requests
  capabilities beyond the admin's cap, is never chosen; yanked, other-channel
  and not-yet-rolled-out versions are chosen only when pinned exactly.
- Every failure is a :class:`~plugmarket.errors.ResolutionError` whose message
  names each plugin and what it requires, and whose ``conflicts`` hold the
  ``(requirer, requirement)`` pairs (``"you"`` for the user's own requests).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

import resolvelib
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from plugmarket._internal.installed import LOCAL, Generation, InstalledPlugin
from plugmarket._internal.registry_format import VersionInfo
from plugmarket._internal.resolution_provider import (
    ANONYMOUS,
    INSTALLED,
    REQUEST,
    Candidate,
    PluginProvider,
    Policy,
    Req,
    explain,
    parse_requirement,
    rollout_bucket,
    unknown_plugin,
)
from plugmarket.capabilities import Grants, parse_capability
from plugmarket.errors import ResolutionError
from plugmarket.manifest import normalize_id
from plugmarket.plan import ADD, CHANGE, REMOVE, Plan, PlanItem
from plugmarket.settings import Settings

if TYPE_CHECKING:
    from plugmarket.registry import RegistryClient

__all__ = ["Catalog", "Offer", "RegistryCatalog", "Resolution", "resolve", "rollout_bucket"]

#: resolvelib's rounds (one decision or one backjump each) before giving up: a
#: few seconds at most, where every solvable request on the 1,000-plugin test
#: graph needs a few hundred.
MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class Offer:
    """One version of one plugin, as one registry offers it.

    Attributes:
        id: The plugin id.
        version: The version.
        info: The registry's entry for it (requirements, host range,
            capabilities, channel, rollout, yanked flag, artifact pin).
        registry: The label of the registry it comes from.
    """

    id: str
    version: Version
    info: VersionInfo
    registry: str


class Catalog(Protocol):
    """What the resolver needs from the registries."""

    def candidates(self, plugin_id: str) -> Sequence[Offer]:
        """Every version of ``plugin_id`` in every registry, highest-priority registry first.

        An id no registry carries gives an empty sequence.
        """
        ...

    def ids(self) -> Collection[str]:
        """Every plugin id the registries carry (for "did you mean" suggestions)."""
        ...


class RegistryCatalog:
    """A :class:`Catalog` over a :class:`~plugmarket.registry.RegistryClient`.

    Details come from the client's caches; a plugin that several registries
    carry is read from each (through a client limited to that registry), so
    versions only a lower-priority registry has are candidates too. Close it
    (or use it as a context manager) to close those extra clients.

    Args:
        client: The registry client of the marketplace.
    """

    def __init__(self, client: RegistryClient) -> None:
        self._client = client
        self._ids: frozenset[str] | None = None
        self._others: dict[str, RegistryClient] = {}

    def ids(self) -> frozenset[str]:
        """Every id in every registry (read once per catalog)."""
        if self._ids is None:
            self._ids = self._client.ids()
        return self._ids

    def candidates(self, plugin_id: str) -> tuple[Offer, ...]:
        """Every version of ``plugin_id``, from each registry carrying it, by priority.

        Raises:
            RegistryError, IntegrityError, SignatureError: a registry cannot be
                read or serves something untrusted (see ``RegistryClient.details``).
        """
        if plugin_id not in self.ids():
            return ()
        first = self._client.details(plugin_id)
        offers = [Offer(plugin_id, v.version, v, first.registry) for v in first.versions]
        for label in first.also_in:
            other = self._other(label)
            if other is not None:
                details = other.details(plugin_id)
                offers += [
                    Offer(plugin_id, v.version, v, details.registry) for v in details.versions
                ]
        return tuple(offers)

    def _other(self, label: str) -> RegistryClient | None:
        if label not in self._others:
            from plugmarket.registry import RegistryClient

            settings = self._client.settings
            config = next((c for c in settings.registries if c.label == label), None)
            if config is None:
                return None
            self._others[label] = RegistryClient(settings.replace(registries=(config,)))
        return self._others[label]

    def close(self) -> None:
        """Close the clients this catalog made (not the one passed in)."""
        for other in self._others.values():
            other.close()
        self._others.clear()

    def __enter__(self) -> RegistryCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Resolution:
    """The outcome of :func:`resolve`.

    Attributes:
        chosen: Plugins of the resulting set that come from a registry and are
            new or change version, by id.
        kept: Installed plugins left exactly as they are, sorted.
        plan: What applying it adds, changes and removes, in that order of
            application (removals first, then dependencies before dependents).
        requested: The ids the user asked for (they are explicit afterwards,
            even those already installed as a dependency).
    """

    chosen: Mapping[str, Offer]
    kept: tuple[str, ...]
    plan: Plan
    requested: tuple[str, ...] = field(default=())


def resolve(
    requests: Sequence[str],
    *,
    catalog: Catalog,
    installed: Generation,
    settings: Settings,
    upgrade: Collection[str] | bool = (),
    remove: Collection[str] = (),
    operation: str = "install",
    max_rounds: int = MAX_ROUNDS,
    rollout_id: Callable[[], str] | None = None,
) -> Resolution:
    """Find versions satisfying the requests, the installed set and every rule, as a plan.

    Args:
        requests: PEP 508 requirements the user asked for (``"csv-preview"``,
            ``"units>=1.1"``, ``"units==1.0.0"``). A requested plugin that is
            installed may change version; it keeps its version if that fits.
        catalog: Every version of every plugin (see :class:`RegistryCatalog`).
        installed: The current generation.
        settings: ``channel``, ``user_id`` (rollout bucket; ``"anonymous"`` if
            empty) and ``capability_cap``.
        upgrade: Installed ids allowed to move to newer versions (they prefer
            the newest that fits); True for all. Installed plugins neither
            requested nor listed here keep their version.
        remove: Ids being uninstalled; their requirements go away, and
            dependencies nothing else needs go with them.
        operation: The plan's operation (``"install"``, ``"update"``, ...).
        max_rounds: resolvelib's budget of decisions and backjumps before it
            gives up (about half a millisecond each on a 1,000-plugin graph).
        rollout_id: Gives the rollout bucket's id when ``settings.user_id`` is
            empty (a home's stable id); called only if a version is being
            rolled out, at most once.

    Returns:
        The chosen versions, the plugins kept and the plan.

    Raises:
        ResolutionError: a request is not a valid requirement or names a plugin
            no registry has; a plugin to remove is not installed or another
            plugin that stays requires it; no set of versions satisfies every
            requirement (the message says who requires what); or the search
            took more than ``max_rounds`` steps.
        RegistryError, IntegrityError, SignatureError: the catalog could not
            read a registry.
    """
    current = dict(installed.plugins)
    removed = _removals(remove, installed)
    roots = [_request(text) for text in requests]
    asked = tuple(dict.fromkeys(r.id for r in roots))
    for pid in asked:
        if pid in removed:
            raise ResolutionError(
                f"{pid} is both requested and being uninstalled",
                conflicts=[("you", pid)],
                hint="Ask for one or the other.",
            )
    staying = {pid: p for pid, p in current.items() if pid not in removed}
    movable = set(staying) if upgrade is True else {normalize_id(u) for u in upgrade or ()}
    # A plugin defined in code keeps its code: no registry's plugin of that id replaces it.
    local = {pid for pid, p in staying.items() if p.registry == LOCAL}
    movable -= local
    provider = PluginProvider(
        catalog,
        _policy(settings, rollout_id),
        installed=staying,
        locked=frozenset((set(staying) - movable - set(asked)) | local),
        upgrade=frozenset(movable & set(staying)),
        removed=frozenset(removed),
    )
    for pid in asked:
        if pid not in staying and not provider.offers(pid):
            raise unknown_plugin(pid, catalog.ids())
    roots += [
        Req(pid, _ANY, pid, INSTALLED)
        for pid, p in sorted(staying.items())
        if p.explicit and pid not in asked
    ]
    resolver: resolvelib.Resolver[Req, Candidate, str] = resolvelib.Resolver(
        provider, provider.reporter()
    )
    try:
        result = resolver.resolve(roots, max_rounds=max_rounds)
    except resolvelib.ResolutionImpossible as exc:
        raise explain(exc.causes, provider) from exc
    except resolvelib.ResolutionTooDeep as exc:
        tangled = [pid for pid, _ in provider.conflicts.most_common(3)]
        most = f"; the plugins most often in conflict were {_and(tangled)}" if tangled else ""
        raise ResolutionError(
            f"gave up after {exc.round_count} steps looking for versions of "
            f"{_and(list(asked)) or 'the installed plugins'} that fit together{most}",
            conflicts=[("you", r.text) for r in roots if r.origin == REQUEST],
            hint="Pin the versions of some of them (`plugin==version`), allow updates of "
            "installed plugins, or ask for fewer plugins at once.",
        ) from exc
    mapping: dict[str, Candidate] = dict(result.mapping)
    # Who requires each plugin: only parents that are in the result themselves.
    parents = {
        pid: sorted(
            {
                i.parent.id
                for i in crit.information
                if i.parent is not None and mapping.get(i.parent.id) is i.parent
            }
        )
        for pid, crit in result.criteria.items()
        if pid in mapping
    }
    return _resolution(mapping, parents, current, removed, asked, provider, operation=operation)


# --------------------------------------------------------------------------- helpers

_ANY = SpecifierSet()


def _policy(settings: Settings, rollout_id: Callable[[], str] | None) -> Policy:
    cap = None if settings.capability_cap is None else Grants(settings.capability_cap)
    user: str | Callable[[], str] = settings.user_id or ANONYMOUS
    if not settings.user_id and rollout_id is not None:
        user = functools.cache(rollout_id)
    return Policy(channel=settings.channel, user_id=user, cap=cap)


def _request(text: str) -> Req:
    req = parse_requirement(text, REQUEST) if isinstance(text, str) else None
    if req is None:
        raise ResolutionError(
            f"{text!r} is not a plugin requirement",
            conflicts=[("you", str(text))],
            hint="Write a plugin id, optionally with versions: csv-preview, units>=1.1, "
            "units==1.0.0.",
        )
    return req


def _removals(remove: Collection[str], installed: Generation) -> set[str]:
    removed = {normalize_id(r) for r in remove}
    missing = sorted(removed - set(installed.plugins))
    if missing:
        have = ", ".join(sorted(installed.plugins)) or "nothing"
        raise ResolutionError(
            f"cannot uninstall {_and(missing)}: not installed (installed: {have})",
            conflicts=[("you", m) for m in missing],
            hint="Check the id with `plugmarket list`.",
        )
    blocking: list[tuple[str, str]] = []
    for pid in sorted(removed):
        for dep in installed.dependents(pid):
            if dep not in removed:
                text = next((t for t in installed.plugins[dep].requires if _names(t, pid)), pid)
                blocking.append((dep, text))
    if blocking:
        by_target: dict[str, list[str]] = {}
        for dep, text in blocking:
            by_target.setdefault(_target(text), []).append(dep)
        parts = [
            f"{target} is required by {_and(deps)}, which stay{'s' if len(deps) == 1 else ''} "
            "installed"
            for target, deps in sorted(by_target.items())
        ]
        dependents = sorted({d for d, _ in blocking})
        raise ResolutionError(
            f"cannot uninstall {_and(sorted(removed))}: {'; '.join(parts)}",
            conflicts=blocking,
            hint=f"Uninstall {_and(dependents)} first, or together with it.",
        )
    return removed


def _names(requirement: str, plugin_id: str) -> bool:
    req = parse_requirement(requirement)
    return req is not None and req.id == plugin_id


def _target(requirement: str) -> str:
    req = parse_requirement(requirement)
    return req.id if req is not None else requirement


def _and(items: Sequence[str]) -> str:
    return "".join(items) if len(items) < 2 else f"{', '.join(items[:-1])} and {items[-1]}"


def _resolution(
    mapping: Mapping[str, Candidate],
    parents: Mapping[str, list[str]],
    current: Mapping[str, InstalledPlugin],
    removed: set[str],
    asked: tuple[str, ...],
    provider: PluginProvider,
    *,
    operation: str,
) -> Resolution:
    chosen = {pid: c.offer for pid, c in mapping.items() if c.offer is not None}
    kept = tuple(sorted(pid for pid, c in mapping.items() if c.offer is None))
    gone = [pid for pid in current if pid not in mapping]
    items = [_removal(current[pid], pid in removed) for pid in _dependents_first(gone, current)]
    for pid in _dependencies_first(chosen, mapping):
        old = current.get(pid)
        explicit = pid in asked or (old is not None and old.explicit)
        # An explicit plugin moved by the user's own request or update is
        # "requested"; anything else is there for the first plugin needing it.
        by_user = explicit and (pid in asked or pid in provider.upgrade)
        needed_by = parents.get(pid)
        reason = f"required by {needed_by[0]}" if needed_by and not by_user else "requested"
        items.append(_change(chosen[pid], old, explicit=explicit, reason=reason))
    plan = Plan(operation, tuple(items), skipped=_passed_over(mapping, provider))
    return Resolution(MappingProxyType(chosen), kept, plan, asked)


def _removal(old: InstalledPlugin, requested: bool) -> PlanItem:
    return PlanItem(
        REMOVE,
        old.id,
        old_version=old.version,
        capabilities=old.requested,
        grants=old.grants,
        registry=old.registry,
        explicit=old.explicit,
        reason="requested" if requested else "no longer required",
    )


def _change(offer: Offer, old: InstalledPlugin | None, *, explicit: bool, reason: str) -> PlanItem:
    caps = offer.info.capabilities
    before = Grants(old.grants if old is not None else ())
    new = tuple(c for c in caps if not before.covers(parse_capability(c)))
    pin = offer.info.artifact
    return PlanItem(
        ADD if old is None else CHANGE,
        offer.id,
        old_version=old.version if old is not None else "",
        new_version=str(offer.version),
        capabilities=caps,
        grants=caps,
        new_capabilities=new,
        registry=offer.registry,
        sha256=pin.sha256,
        size=pin.size,
        url=pin.url,
        explicit=explicit,
        reason=reason,
    )


def _dependencies_first(ids: Iterable[str], mapping: Mapping[str, Candidate]) -> list[str]:
    """``ids`` ordered so every plugin comes after what it requires (cycles: by name)."""
    wanted = set(ids)
    order: list[str] = []
    seen: set[str] = set()
    for start in sorted(wanted):
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(r.id for r in mapping[start].dependencies())))]
        while stack:
            pid, deps = stack[-1]
            dep = next((d for d in deps if d in mapping and d not in seen), None)
            if dep is None:
                stack.pop()
                if pid in wanted:
                    order.append(pid)
            else:
                seen.add(dep)
                stack.append((dep, iter(sorted(r.id for r in mapping[dep].dependencies()))))
    return order


def _dependents_first(ids: Iterable[str], current: Mapping[str, InstalledPlugin]) -> list[str]:
    """Installed ``ids`` ordered so every plugin comes before what it requires."""
    mapping = {pid: Candidate(pid, Version("0"), installed=p) for pid, p in current.items()}
    return list(reversed(_dependencies_first(ids, mapping)))


def _passed_over(mapping: Mapping[str, Candidate], provider: PluginProvider) -> tuple[str, ...]:
    """Notes on newer versions refused for the host range or the admin's cap.

    Those refusals hold even for a pinned version, so the user should learn why
    the plan stops short (an auto update that stays put, say). Locked plugins
    are not looked at: nothing was going to move them.
    """
    notes = []
    for pid in sorted(mapping):
        if pid in provider.locked:
            continue
        version = mapping[pid].version
        for newer, refusal in provider.refusals(pid):
            if newer > version and refusal.kind in ("host", "cap"):
                notes.append(f"{pid} {newer} was not offered: it {refusal.why}")
    return tuple(notes)
