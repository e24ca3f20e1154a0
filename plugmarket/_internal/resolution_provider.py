"""The resolvelib provider behind :mod:`plugmarket.resolver`: what may be chosen, and why not.

resolvelib (the backtracking resolver pip uses) asks this provider four
things: which versions of a plugin could satisfy the requirements gathered so
far (:meth:`PluginProvider.find_matches`), whether a pinned version satisfies
a requirement, a version's own requirements, and which plugin to decide next.
Everything plugmarket-specific lives in :class:`Policy`, a pure function of
one version offered by a registry:

- a version whose ``host`` range excludes :data:`~plugmarket.manifest.HOST_API_VERSION`,
  or that requests capabilities beyond the admin's cap, is never offered, not
  even when pinned;
- otherwise an exact pin (``==1.2.0``, ``===1.2.0``) accepts the version
  whatever its channel, yanked flag or rollout share;
- otherwise it must be on a channel the user sees (``stable`` sees stable
  final releases; any other channel sees itself and stable, pre-releases
  included), not yanked, and rolled out to the user's bucket.

Installed plugins are candidates too. A plugin the caller did not allow to
move is *locked*: its installed version is its only candidate, so a
requirement it does not meet is a conflict the message names ("update
table-kit too"). Candidates and requirements are created once per version and
reused, because resolvelib identifies a result's parents by object identity.

Which plugin to decide next matters more than anything else for speed on
large graphs: the provider decides first what caused the last backtrack, then
what took part in the most conflicts so far (counted by the reporter it
hands to resolvelib), then the plugin with the fewest versions left.

Invariants: no I/O beyond the catalog's ``candidates`` (called once per id);
nothing here raises: :func:`explain` and :func:`unknown_plugin` build the
:class:`~plugmarket.errors.ResolutionError` the resolver raises at its boundary.
"""

from __future__ import annotations

import difflib
import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider, BaseReporter

from plugmarket._internal.installed import InstalledPlugin
from plugmarket._internal.registry_format import STABLE
from plugmarket.capabilities import Grants, parse_capabilities
from plugmarket.errors import ResolutionError
from plugmarket.manifest import HOST_API_VERSION, ID_PATTERN, normalize_id

if TYPE_CHECKING:
    from resolvelib.structs import RequirementInformation

    from plugmarket.resolver import Catalog, Offer

__all__ = [
    "ANONYMOUS",
    "Candidate",
    "PluginProvider",
    "Policy",
    "Refusal",
    "Req",
    "explain",
    "parse_requirement",
    "rollout_bucket",
    "unknown_plugin",
]

#: The user id rollout buckets use when the settings give none.
ANONYMOUS = "anonymous"
REQUEST, INSTALLED, DEPENDENCY = "request", "installed", "dependency"


def rollout_bucket(user_id: str, plugin_id: str, version: Version | str) -> float:
    """The user's stable place in ``[0, 1)`` for one version's rollout.

    A version with rollout share ``r`` is offered to the users whose bucket is
    below ``r``; the hash makes the bucket stable across kernels and machines
    sharing a user id, and independent between versions.
    """
    digest = hashlib.sha256(f"{user_id}:{plugin_id}:{version}".encode()).hexdigest()
    return int(digest[:8], 16) / 16**8


@dataclass(frozen=True, eq=False)
class Req:
    """One requirement on a plugin: who asked (``origin``) and for what.

    Attributes:
        id: The plugin id it names (normalised).
        specifier: The versions it accepts.
        text: The requirement as written, for messages.
        origin: ``"request"`` (the user), ``"installed"`` (an explicit
            installed plugin staying in the set) or ``"dependency"``.
        pinned: The version an exact pin (``==X`` without a wildcard, ``===X``)
            names, else None.
    """

    id: str
    specifier: SpecifierSet
    text: str
    origin: str = DEPENDENCY
    pinned: Version | None = None


def parse_requirement(text: str, origin: str = DEPENDENCY) -> Req | None:
    """A :class:`Req` from PEP 508 text, or None if the text is not a plugin requirement.

    Extras are ignored (plugins have none). A plugin's own requirements whose
    environment marker does not hold here are dropped (see :func:`_applies`).
    """
    req = _parse(text)
    if req is None:
        return None
    plugin_id = normalize_id(req.name)
    if not ID_PATTERN.match(plugin_id):
        return None
    return _req(req, plugin_id, text, origin)


def _parse(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _req(req: Requirement, plugin_id: str, text: str, origin: str) -> Req:
    pinned: Version | None = None
    specs = list(req.specifier)
    if len(specs) == 1 and (
        specs[0].operator == "===" or (specs[0].operator == "==" and "*" not in specs[0].version)
    ):
        try:
            pinned = Version(specs[0].version)
        except InvalidVersion:
            pinned = None
    return Req(plugin_id, req.specifier, text, origin, pinned)


def _applies(req: Requirement) -> bool:
    return req.marker is None or bool(req.marker.evaluate({"extra": ""}))


class Candidate:
    """One version a plugin could have: a registry's offer, or the installed one.

    Created once per (plugin, version, source) by the provider, so identity
    is equality.
    """

    __slots__ = ("_deps", "id", "installed", "offer", "version")

    def __init__(
        self,
        plugin_id: str,
        version: Version,
        *,
        offer: Offer | None = None,
        installed: InstalledPlugin | None = None,
    ) -> None:
        self.id = plugin_id
        self.version = version
        self.offer = offer
        self.installed = installed
        self._deps: tuple[Req, ...] | None = None

    def dependencies(self) -> tuple[Req, ...]:
        """This version's requirements on other plugins (parsed once)."""
        if self._deps is None:
            if self.offer is not None:
                reqs = [r for r in self.offer.info.requires if _applies(r)]
                self._deps = tuple(_req(r, normalize_id(r.name), str(r), DEPENDENCY) for r in reqs)
            else:
                assert self.installed is not None
                parsed = (_parse(t) for t in self.installed.requires)
                self._deps = tuple(
                    _req(r, normalize_id(r.name), str(r), DEPENDENCY)
                    for r in parsed
                    if r is not None and _applies(r)
                )
        return self._deps

    def __repr__(self) -> str:
        where = "installed" if self.offer is None else self.offer.registry
        return f"<Candidate {self.id} {self.version} [{where}]>"


@dataclass(frozen=True)
class Refusal:
    """Why a version is not offered: ``kind`` for code, ``why`` for people.

    Kinds: ``host``, ``cap`` (refused even when pinned), ``yanked``,
    ``channel``, ``prerelease``, ``rollout`` (lifted by an exact pin).
    """

    kind: str
    why: str


@dataclass(frozen=True)
class Policy:
    """What the user may be offered: channel, rollout bucket, the admin's capability cap."""

    channel: str = STABLE
    user_id: str | Callable[[], str] = ANONYMOUS  # or made when first needed (a home's id)
    cap: Grants | None = None

    def _user(self) -> str:
        return self.user_id() if callable(self.user_id) else self.user_id

    def refusal(self, offer: Offer, *, pinned: bool) -> Refusal | None:
        """Why ``offer`` is not offered to this user (None: it is), in a few words.

        Args:
            offer: One version from one registry.
            pinned: Whether a requirement pins exactly this version.
        """
        info = offer.info
        if not info.host.contains(HOST_API_VERSION, prereleases=True):
            return Refusal(
                "host", f"needs plugin API {info.host} (this plugmarket has {HOST_API_VERSION})"
            )
        if self.cap is not None:
            missing = self.cap.missing(parse_capabilities(info.capabilities))
            if missing:
                listed = ", ".join(str(c) for c in missing)
                return Refusal("cap", f"requests {listed}, beyond what the admin allows")
        if pinned:
            return None
        if info.yanked:
            why = f" ({info.yanked_reason})" if info.yanked_reason else ""
            return Refusal("yanked", f"yanked{why}")
        if self.channel == STABLE:
            if info.channel != STABLE:
                return Refusal("channel", f"on the {info.channel} channel")
            if offer.version.is_prerelease:
                return Refusal("prerelease", "a pre-release")
        elif info.channel not in (self.channel, STABLE):
            return Refusal("channel", f"on the {info.channel} channel")
        share = info.rollout
        rolled_out = (
            share is None
            or share >= 1
            or rollout_bucket(self._user(), offer.id, offer.version) < share
        )
        if not rolled_out:
            return Refusal("rollout", "not yet rolled out to you")
        return None


class PluginProvider(AbstractProvider[Req, Candidate, str]):
    """resolvelib's view of the catalog, the installed set and the policy.

    Args:
        catalog: Every version of every plugin, highest-priority registry first.
        policy: Channel, rollout bucket and capability cap.
        installed: The installed plugins staying in the set (removed ones left out).
        locked: Installed ids that must keep their installed version.
        upgrade: Installed ids that prefer the newest version (others that may
            move, such as requested ones, prefer their installed version).
        removed: Ids being uninstalled; they have no candidates.
    """

    def __init__(
        self,
        catalog: Catalog,
        policy: Policy,
        *,
        installed: Mapping[str, InstalledPlugin],
        locked: frozenset[str],
        upgrade: frozenset[str],
        removed: frozenset[str],
    ) -> None:
        self.catalog = catalog
        self.policy = policy
        self.installed = installed
        self.locked = locked
        self.upgrade = upgrade
        self.removed = removed
        self._offers: dict[str, tuple[Candidate, ...]] = {}
        self._installed: dict[str, Candidate | None] = {}
        self._refusals: dict[tuple[int, bool], Refusal | None] = {}
        self.conflicts: Counter[str] = Counter()  # plugin id -> conflicts it took part in

    # --- candidates ------------------------------------------------------------------

    def offers(self, plugin_id: str) -> tuple[Candidate, ...]:
        """Every version the registries carry, newest first, one per version.

        When two registries carry the same version, the first (highest
        priority) one is kept.
        """
        cached = self._offers.get(plugin_id)
        if cached is None:
            seen: dict[Version, Candidate] = {}
            for offer in self.catalog.candidates(plugin_id):
                if offer.version not in seen:
                    seen[offer.version] = Candidate(plugin_id, offer.version, offer=offer)
            cached = tuple(sorted(seen.values(), key=lambda c: c.version, reverse=True))
            self._offers[plugin_id] = cached
        return cached

    def installed_candidate(self, plugin_id: str) -> Candidate | None:
        """The installed version as a candidate (None if not installed or unreadable)."""
        if plugin_id not in self._installed:
            plugin = self.installed.get(plugin_id)
            candidate = None
            if plugin is not None:
                try:
                    candidate = Candidate(plugin_id, Version(plugin.version), installed=plugin)
                except InvalidVersion:
                    candidate = None
            self._installed[plugin_id] = candidate
        return self._installed[plugin_id]

    def refusal(self, candidate: Candidate, *, pinned: bool) -> Refusal | None:
        """Why a registry's candidate is not offered (cached :meth:`Policy.refusal`)."""
        assert candidate.offer is not None
        key = (id(candidate), pinned)
        if key not in self._refusals:
            self._refusals[key] = self.policy.refusal(candidate.offer, pinned=pinned)
        return self._refusals[key]

    def eligible(self, plugin_id: str, pins: Iterable[Version] = ()) -> list[Candidate]:
        """Every candidate the rules allow, most preferred first, before version ranges."""
        if plugin_id in self.removed:
            return []
        current = self.installed_candidate(plugin_id)
        if current is not None and plugin_id in self.locked:
            return [current]
        pinned = set(pins)
        offers = [
            c
            for c in self.offers(plugin_id)
            if self.refusal(c, pinned=c.version in pinned) is None
            and (current is None or c.version != current.version)
        ]
        if current is None:
            return offers
        if plugin_id in self.upgrade:
            # Newest first; the installed version wins a tie (no change).
            newer = [c for c in offers if c.version > current.version]
            older = [c for c in offers if c.version < current.version]
            return [*newer, current, *older]
        return [current, *offers]

    def refusals(
        self, plugin_id: str, pins: Iterable[Version] = ()
    ) -> list[tuple[Version, Refusal]]:
        """Every registry version of ``plugin_id`` not offered, newest first, with why."""
        pinned = set(pins)
        out = []
        for c in self.offers(plugin_id):
            refusal = self.refusal(c, pinned=c.version in pinned)
            if refusal is not None:
                out.append((c.version, refusal))
        return out

    # --- resolvelib's interface -------------------------------------------------------

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        return requirement_or_candidate.id

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[Req, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[Req, Candidate]],
    ) -> Any:
        # Decide first what caused the last backtrack, then what took part in
        # the most conflicts so far, then the plugin with the fewest versions
        # left (a locked or pinned one has one: cheap and certain), then what
        # the user asked for, then by name for a stable order. Without the
        # first three keys, some requests on tests/test_resolver_scale.py's
        # 1,000-plugin graph backtracked for minutes.
        cause = any(
            i.requirement.id == identifier or (i.parent is not None and i.parent.id == identifier)
            for i in backtrack_causes
        )
        left = sum(1 for _ in candidates[identifier])
        root = any(i.parent is None for i in information[identifier])
        return (not cause, -self.conflicts[identifier], left, not root, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        reqs = list(requirements[identifier])
        bad = {id(c) for c in incompatibilities[identifier]}
        pins = [r.pinned for r in reqs if r.pinned is not None]
        return [
            c
            for c in self.eligible(identifier, pins)
            if id(c) not in bad and all(r.specifier.contains(c.version, True) for r in reqs)
        ]

    def reporter(self) -> BaseReporter[Req, Candidate, str]:
        """A reporter for resolvelib that counts each plugin's conflicts for the preference."""
        return _ConflictCounter(self.conflicts)

    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> tuple[Req, ...]:
        return candidate.dependencies()


class _ConflictCounter(BaseReporter[Req, Candidate, str]):
    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts

    def resolving_conflicts(
        self, causes: Collection[RequirementInformation[Req, Candidate]]
    ) -> None:
        for info in causes:
            self.counts[info.requirement.id] += 1
            if info.parent is not None:
                self.counts[info.parent.id] += 1


# --------------------------------------------------------------------------- explanations


def unknown_plugin(plugin_id: str, known: Iterable[str]) -> ResolutionError:
    """The error for a requested id that no configured registry carries."""
    close = difflib.get_close_matches(plugin_id, sorted(known), n=3, cutoff=0.6)
    suggestion = f" Did you mean {_or(close)}?" if close else ""
    return ResolutionError(
        f"no plugin {plugin_id!r} in any configured registry.{suggestion}",
        conflicts=[("you", plugin_id)],
        hint="Search for it (`plugmarket search WORD`), or add the registry that carries it.",
    )


def explain(
    causes: Iterable[RequirementInformation[Req, Candidate]], provider: PluginProvider
) -> ResolutionError:
    """Turn resolvelib's causes into a :class:`ResolutionError` a notebook user can act on.

    One sentence per plugin in conflict, naming who requires what of it and
    what the registries have (and why the versions left out were left out).
    """
    groups: dict[str, dict[tuple[str, int], tuple[Req, Candidate | None]]] = {}
    for info in causes:
        req, parent = info.requirement, info.parent
        groups.setdefault(req.id, {})[(req.text, id(parent))] = (req, parent)
    sentences: list[str] = []
    conflicts: list[tuple[str, str]] = []
    hints: dict[str, None] = {}
    for pid in sorted(groups):
        pairs = list(groups[pid].values())
        sentence, hint = _sentence(pid, pairs, provider)
        sentences.append(sentence)
        hints[hint] = None
        conflicts += [
            ("you" if parent is None else parent.id, req.text)
            for req, parent in pairs
            if req.origin != INSTALLED
        ]
    # Sentences start with a plugin id or "you": lower case, as ids are.
    return ResolutionError("; ".join(sentences), conflicts=conflicts, hint=" ".join(hints))


def _sentence(
    pid: str, pairs: list[tuple[Req, Candidate | None]], provider: PluginProvider
) -> tuple[str, str]:
    asks = [
        f"you asked for {req.text}"
        if parent is None
        else f"{parent.id} {parent.version} requires {req.text}"
        for req, parent in pairs
        if req.origin != INSTALLED
    ]
    reqs = [req for req, _ in pairs]
    current = provider.installed_candidate(pid)
    who = _and(asks) if asks else f"{pid} is installed"
    if pid in provider.removed:
        return (
            f"{who}, but {pid} is being uninstalled",
            f"Uninstall what requires {pid} too, or keep {pid}.",
        )
    if current is None and not provider.offers(pid):
        return (
            f"{who}, but no configured registry has a plugin {pid!r}",
            "Add the registry that carries it, or ask the plugin's author.",
        )
    unmet = [r for r in reqs if current and not r.specifier.contains(current.version, True)]
    if pid in provider.locked and current is not None and unmet:
        return (
            f"{who}, but {pid} {current.version} is installed; update {pid} too",
            f"Update {pid} too (`plugmarket update {pid}`), or ask for versions that fit "
            f"{pid} {current.version}.",
        )
    pins = [r.pinned for r in reqs if r.pinned is not None]
    eligible = provider.eligible(pid, pins)
    alone = all(any(r.specifier.contains(c.version, True) for c in eligible) for r in reqs)
    texts = {r.text for r in reqs if r.origin != INSTALLED}
    if alone and len(texts) > 1:
        return (
            f"{who}: no version of {pid} satisfies {'both' if len(texts) == 2 else 'all of them'}",
            "Ask for other versions of the plugins that require it, or leave one of them out.",
        )
    if alone:
        return (
            f"{who}, but no version of {pid} that fits works with the rest of the set "
            f"({_have(pid, eligible, provider, pins)})",
            "Ask for other versions, or leave out one of the plugins in conflict.",
        )
    refused = provider.refusals(pid, pins)
    if any(r.kind == "cap" for _, r in refused):
        hint = "The admin's capability cap refuses those capabilities: ask the admin, or pick "
        hint += "another plugin."
    else:
        liftable = [v for v, r in refused if r.kind in _LIFTED_BY_PIN]
        hint = "Ask for a version that is offered" + (
            f"; an exact pin such as {pid}=={liftable[0]} accepts a yanked, beta or "
            "not yet rolled-out version."
            if liftable
            else "."
        )
    return f"{who}, but {_have(pid, eligible, provider, pins)}", hint


def _have(
    pid: str, eligible: Sequence[Candidate], provider: PluginProvider, pins: Sequence[Version]
) -> str:
    offered = sorted({c.version for c in eligible if c.offer is not None})
    labels = sorted({c.offer.registry for c in eligible if c.offer is not None})
    quoted = _and([repr(label) for label in labels])
    if offered:
        where = (
            f"the registry {quoted} has" if len(labels) == 1 else f"the registries {quoted} have"
        )
        have = f"{where} {pid} {_and([str(v) for v in offered])}"
    else:
        have = f"no version of {pid} is offered to you"
    current = provider.installed_candidate(pid)
    notes = [f"{current.version} is installed"] if current is not None else []
    refused = sorted(provider.refusals(pid, pins), key=lambda vr: vr[0])
    notes += [
        f"{version} is {r.why}" if r.kind in _LIFTED_BY_PIN else f"{version} {r.why}"
        for version, r in refused
    ]
    return have + (f" ({'; '.join(notes)})" if notes else "")


_LIFTED_BY_PIN = frozenset({"yanked", "channel", "prerelease", "rollout"})


def _and(items: Sequence[str]) -> str:
    return "".join(items) if len(items) < 2 else f"{', '.join(items[:-1])} and {items[-1]}"


def _or(items: Sequence[str]) -> str:
    return "".join(items) if len(items) < 2 else f"{', '.join(items[:-1])} or {items[-1]}"
