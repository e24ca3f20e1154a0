"""The registry client: search, details, versions and verified artifacts from signed registries.

One :class:`RegistryClient` per Marketplace. It reads every configured
registry (https/http URLs, ``file://`` URLs and plain folders), highest
priority first, through three layers:

- **memory**: a ``cachetools.TLRUCache`` of each registry's trusted snapshot,
  kept until ``fetched + cache_ttl``. Within that time no file is read and no
  request is made. Search tables and decoded detail files live here too.
- **disk** (remote registries): ``<home>/cache/registry/<sha256(url)[:16]>/``
  holds ``index.json`` with its signature, ``ETag``/``Last-Modified`` and fetch
  time (so a second process sharing the home makes no request within the TTL
  either), detail files by the sha256 the index pins (never revalidated), and
  the highest index version ever trusted (rollback protection across
  processes). See :mod:`plugmarket._internal.http_cache`.
- **network**: :func:`plugmarket._internal.fetch.fetch`, bounded in size and
  time; after the TTL a conditional request, where a 304 renews the fetch time.

Trust is decided by :class:`~plugmarket._internal.trusted_index.TrustedIndex`,
for network and disk copies alike. What is normal is decided here:

- a network failure (refused, timeout, HTTP error) serves the last trusted copy
  with a :class:`StaleDataWarning` (stale-if-error), and that copy is not asked
  for again until the TTL has passed once more;
- offline mode (``settings.offline``) answers from disk only, even past the TTL,
  and raises :class:`~plugmarket.errors.OfflineError` for what is not there;
- an expired index is never served, not even stale or offline;
- any trust failure raises (``SignatureError``, ``IntegrityError``,
  ``RegistryError``, naming the registry and the file) and leaves the last
  trusted state in place: the bad bytes are neither used nor cached.
"""

from __future__ import annotations

import html
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache, TLRUCache

from plugmarket._internal.registry_format import (
    INDEX_FILE,
    Index,
    IndexEntry,
    PluginDetail,
    VersionInfo,
)
from plugmarket._internal.registry_source import Source, resolve_artifact, resolve_detail
from plugmarket._internal.registry_state import RegistryState, Snapshot
from plugmarket._internal.search_index import SORTS, SearchTable
from plugmarket.errors import (
    IntegrityError,
    OfflineError,
    PlugmarketError,
    RegistryError,
)
from plugmarket.manifest import ID_PATTERN
from plugmarket.settings import Settings, shown_url

if TYPE_CHECKING:
    from types import FrameType

    import httpx

    from plugmarket._internal.fetch import Connections, Progress, Sender

__all__ = ["PluginDetails", "RegistryClient", "SearchHit", "StaleDataWarning"]

_log = logging.getLogger("plugmarket")

_DETAILS_KEPT = 1024  # decoded detail files kept in memory
_PACKAGE = str(Path(__file__).resolve().parent)


class StaleDataWarning(UserWarning):
    """A registry could not be reached; its last trusted copy is being used."""


@dataclass(frozen=True, repr=False)
class SearchHit:
    """One plugin found by :meth:`RegistryClient.search`."""

    id: str
    name: str
    summary: str
    version: str  # the latest version on the user's channel ("" if none)
    registry: str  # the registry it comes from
    score: int  # relevance (0 when sorting by something else)
    rating: float | None
    ratings_count: int
    downloads: int
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    capabilities: tuple[str, ...]
    updated: datetime

    def __repr__(self) -> str:
        return f"<SearchHit {self.id} {self.version or '-'} [{self.registry}]: {self.summary}>"

    def _repr_html_(self) -> str:
        return (
            f"<b>{html.escape(self.id)}</b> {html.escape(self.version)} "
            f"<small>[{html.escape(self.registry)}]</small> {html.escape(self.summary)}"
        )


@dataclass(frozen=True, repr=False)
class PluginDetails:
    """A plugin's verified detail file, where it came from, and who else carries it.

    Attributes:
        detail: Every version of the plugin (oldest first), as the registry lists them.
        entry: The plugin's summary in the index (rating, downloads, latest versions).
        registry: The registry it was taken from (the highest priority carrying it).
        also_in: Other registries carrying the same id, highest priority first.
    """

    detail: PluginDetail
    entry: IndexEntry
    registry: str
    also_in: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.detail.id

    @property
    def name(self) -> str:
        return self.detail.name

    @property
    def summary(self) -> str:
        return self.detail.summary

    @property
    def versions(self) -> tuple[VersionInfo, ...]:
        return self.detail.versions

    def __repr__(self) -> str:
        latest = self.detail.latest()
        also = f", also in {', '.join(self.also_in)}" if self.also_in else ""
        return (
            f"<PluginDetails {self.id} {latest.version if latest else '-'} "
            f"[{self.registry}{also}]: {len(self.versions)} version(s)>"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        from plugmarket.results import details_text

        printer.text(details_text(self))  # IPython's terminal shows the whole details

    def _repr_html_(self) -> str:
        from plugmarket.results import details_html

        return details_html(self)


class RegistryClient:
    """Search and read every configured registry, through caches, under trust checks.

    Args:
        settings: Registries, cache TTL, offline mode, size and time caps, home.
        client: An ``httpx.Client`` to send the registries' requests through (by
            default plugmarket's own connections, made on first need and closed
            by :meth:`close`).
        now: The clock (timezone-aware); tests move it instead of sleeping.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._now = now
        self._client: httpx.Client | Connections | None = client
        self._own_client = client is None
        self._lock = threading.RLock()
        self._states = [
            RegistryState(
                Source.from_config(config, settings.home), settings, http=self._http, now=now
            )
            for config in sorted(settings.registries, key=lambda c: -c.priority)
        ]
        # Fresh snapshots by registry, each kept until its fresh_until.
        self._fresh: TLRUCache[str, Snapshot] = TLRUCache(
            maxsize=max(8, 2 * len(self._states)),
            ttu=lambda _key, snap, _now: snap.fresh_until,
            timer=lambda: self._now().timestamp(),
        )
        self._details: LRUCache[tuple[str, str, str], PluginDetail] = LRUCache(_DETAILS_KEPT)
        self._table: tuple[tuple[Index, ...], SearchTable] | None = None

    # --- public API -------------------------------------------------------------

    def search(
        self,
        query: str = "",
        *,
        category: str | None = None,
        tags: Sequence[str] | str = (),
        capabilities: Iterable[str] | None = None,
        min_rating: float | None = None,
        sort: str = "relevance",
        limit: int = 50,
        offset: int = 0,
    ) -> list[SearchHit]:
        """Find plugins in every registry (see :mod:`plugmarket._internal.search_index`).

        Args:
            query: Words to look for in id, name, tags and summary (all must occur).
            category: Only plugins in this category.
            tags: Only plugins carrying all these tags.
            capabilities: Only plugins that request nothing beyond these
                capabilities (``["display"]``: display-only plugins).
            min_rating: Only plugins rated at least this many stars.
            sort: ``relevance``, ``downloads``, ``rating``, ``updated`` or ``name``.
            limit: At most this many hits.
            offset: Skip this many hits first (for paging).

        Returns:
            The hits, best first; an id carried by several registries appears
            once, from the highest-priority one.

        Raises:
            PlugmarketError: ``sort``, ``limit`` or ``offset`` is invalid.
            RegistryError: a registry cannot be read and nothing usable is cached
                (``OfflineError`` in offline mode), or serves an untrusted index.
            SignatureError: an index is unsigned or wrongly signed.
        """
        if sort not in SORTS:
            raise PlugmarketError(
                f"sort must be one of {', '.join(SORTS)}, not {sort!r}",
                hint="Use sort='downloads', for example.",
            )
        if limit < 0 or offset < 0:
            raise PlugmarketError(
                f"limit and offset must not be negative (got {limit}, {offset})",
                hint="Use limit=50, offset=0 for the first page.",
            )
        with self._lock:
            table = self._search_table()
        rows = table.search(
            query,
            category=category,
            tags=(tags,) if isinstance(tags, str) else tags,
            capabilities=capabilities,
            min_rating=min_rating,
            sort=sort,
            limit=limit,
            offset=offset,
        )
        return [self._hit(table.entry(row), table.labels[row], score) for row, score in rows]

    def details(self, plugin_id: str) -> PluginDetails:
        """The verified detail of ``plugin_id`` from the highest-priority registry carrying it.

        Raises:
            RegistryError: the id is invalid or in no registry; a registry or the
                detail file cannot be read (``OfflineError`` when offline and
                not cached); the detail file is malformed.
            IntegrityError: the detail file differs from what the signed index pins.
            SignatureError: an index is unsigned or wrongly signed.
        """
        with self._lock:
            state, snap, also_in = self._locate(plugin_id)
            detail = self._detail(state, snap, plugin_id)
            return PluginDetails(detail, snap.index.plugins[plugin_id], state.source.label, also_in)

    def ids(self) -> frozenset[str]:
        """Every plugin id any configured registry carries (from the trusted indexes)."""
        with self._lock:
            return frozenset().union(*(snap.index.plugins for _, snap in self._snapshots()))

    def versions(self, plugin_id: str) -> list[VersionInfo]:
        """Every published version of ``plugin_id``, newest first (yanked ones included).

        Raises:
            RegistryError, IntegrityError, SignatureError: as :meth:`details`.
        """
        return sorted(self.details(plugin_id).versions, key=lambda v: v.version, reverse=True)

    def fetch_artifact(
        self, plugin_id: str, version: str, *, progress: Progress | None = None
    ) -> bytes:
        """Download a version's artifact, capped by size and time, checked against its pins.

        Args:
            plugin_id: The plugin.
            version: The version whose artifact to fetch.
            progress: Called as ``progress(received, total)`` while it downloads.

        Returns:
            The artifact's bytes, whose size and sha256 are those the signed
            index (through the verified detail file) pins.

        Raises:
            RegistryError: the version does not exist, its URL is on an origin
                that is neither the registry's nor allowed, the download fails or
                takes longer than ``download_deadline``, or offline mode is on
                (``OfflineError``).
            IntegrityError: the bytes differ from the pins, or there are more of
                them than pinned or than ``max_plugin_size`` allows.
        """
        with self._lock:
            state, snap, _ = self._locate(plugin_id)
            detail = self._detail(state, snap, plugin_id)
        source = state.source
        info = _find_version(detail, version, source.label)
        # The detail was verified against the pin of the current trusted index,
        # so its artifact pin is trusted too.
        pin = info.artifact
        if pin.size > self.settings.max_plugin_size:
            raise IntegrityError(
                f"registry {source.label!r}: {plugin_id} {info.version} is {pin.size} bytes, "
                f"more than max_plugin_size ({self.settings.max_plugin_size} bytes)",
                subject=pin.url,
                expected=f"at most {self.settings.max_plugin_size} bytes",
                actual=str(pin.size),
                hint="Raise max_plugin_size if you trust this plugin.",
            )
        url, allowed = resolve_artifact(source, pin.url, self.settings.allowed_origins)
        if self.settings.offline and allowed:
            raise OfflineError(
                f"registry {source.label!r}: {plugin_id} {info.version} must be downloaded "
                f"from {shown_url(url)}, and offline mode is on",
                registry=source.label,
                file=pin.url,
                hint="Turn offline mode off (PLUGMARKET_OFFLINE=0) to download it.",
            )
        return state.download(
            url,
            pin.url,
            max_bytes=self.settings.max_plugin_size,
            allowed=allowed,
            size=pin.size,
            sha256=pin.sha256,
            progress=progress,
        )

    @contextmanager
    def holding_copies(self) -> Iterator[Callable[[], None]]:
        """Hold back writing the cache's copies of fetched detail files for the
        block; yields what writes those held so far.

        A transaction calls it while it waits for its own flush to reach the
        disk, where the writes cost no time; whatever is still held is written
        when the block ends, however it ends. A copy that cannot be written then
        is logged as a warning, not raised: the operation it served is decided,
        and the file is fetched again next time. Re-entrant: an inner block
        leaves the writing to the outer one.
        """
        if any(state.held is not None for state in self._states):
            yield lambda: None
            return
        for state in self._states:
            state.held = []

        def write_held() -> None:
            for state in self._states:
                held, state.held = state.held or [], []
                for write in held:
                    try:
                        write()
                    except OSError as exc:
                        _log.warning(
                            "plugmarket: could not keep a copy from registry %r in its "
                            "cache under %s (%s); it is fetched again next time",
                            state.source.label,
                            state.source.cache.root,
                            exc.strerror or exc,
                        )

        try:
            yield write_held
        finally:
            try:
                write_held()
            finally:
                for state in self._states:
                    state.held = None

    def close(self) -> None:
        """Close the HTTP client this object made (not one passed in)."""
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- snapshots and plugins ----------------------------------------------------

    def _snapshots(self) -> list[tuple[RegistryState, Snapshot]]:
        return [(state, self._snapshot(state)) for state in self._states]

    def _snapshot(self, state: RegistryState) -> Snapshot:
        now = self._now()
        key = state.source.key
        snap = self._fresh.get(key)
        if snap is None or snap.index.expires <= now:
            snap = state.refresh(now)
            self._fresh[key] = snap
            if snap.stale:
                warnings.warn(StaleDataWarning(snap.stale), stacklevel=_caller_level())
        return snap

    def _locate(self, plugin_id: str) -> tuple[RegistryState, Snapshot, tuple[str, ...]]:
        if not isinstance(plugin_id, str) or not ID_PATTERN.fullmatch(plugin_id):
            raise RegistryError(
                f"{plugin_id!r} is not a plugin id, so no registry file is looked up for it",
                hint="Plugin ids are 1-64 lower-case letters, digits and '-', such as 'csv-tools'.",
            )
        holders = [(s, snap) for s, snap in self._snapshots() if plugin_id in snap.index.plugins]
        if not holders:
            names = ", ".join(repr(s.source.label) for s in self._states)
            raise RegistryError(
                f"no plugin {plugin_id!r} in the registries {names}",
                file=INDEX_FILE,
                hint="Search for it (`plugmarket search WORD`) to find the right id.",
            )
        state, snap = holders[0]
        return state, snap, tuple(s.source.label for s, _ in holders[1:])

    def _detail(self, state: RegistryState, snap: Snapshot, plugin_id: str) -> PluginDetail:
        source = state.source
        pin = snap.index.plugins[plugin_id].detail
        key = (source.key, plugin_id, pin.sha256)
        cached = self._details.get(key)
        if cached is not None:
            return cached
        body = None if source.local else source.cache.get_blob(pin.sha256)
        fetched = body is None
        if body is None:
            if self.settings.offline and not source.local:
                raise OfflineError(
                    f"registry {source.label!r}: offline mode is on and {pin.url} "
                    f"({plugin_id}) is not cached",
                    registry=source.label,
                    file=pin.url,
                    hint="Turn offline mode off (PLUGMARKET_OFFLINE=0) to fetch it.",
                )
            url = resolve_detail(source, pin.url)
            body = state.download(
                url,
                pin.url,
                max_bytes=self.settings.max_metadata_size,
                allowed=(),
                size=pin.size,
                sha256=pin.sha256,
            )
        detail = state.trusted.verify_detail(plugin_id, body)
        if fetched and not source.local:
            blob = body
            state.write(lambda: source.cache.put_blob(pin.sha256, blob), copy=True)
        self._details[key] = detail
        return detail

    # --- search helpers -------------------------------------------------------------

    def _search_table(self) -> SearchTable:
        snaps = self._snapshots()
        indexes = tuple(snap.index for _, snap in snaps)
        if self._table is None or not _same(self._table[0], indexes):
            table = SearchTable([(s.source.label, snap.index) for s, snap in snaps])
            self._table = (indexes, table)
        return self._table[1]

    def _hit(self, entry: IndexEntry, label: str, score: int) -> SearchHit:
        return SearchHit(
            id=entry.id,
            name=entry.name,
            summary=entry.summary,
            version=_latest(entry, self.settings.channel),
            registry=label,
            score=score,
            rating=entry.rating,
            ratings_count=entry.ratings_count,
            downloads=entry.downloads,
            categories=entry.categories,
            tags=entry.tags,
            capabilities=entry.capabilities,
            updated=entry.updated,
        )

    def _http(self) -> Sender:
        if self._client is None:
            from plugmarket._internal.fetch import Connections

            self._client = Connections(self.settings.http_timeout)
        return self._client


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside plugmarket."""
    level = 1  # the frame that calls warnings.warn
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    return level


def _same(a: tuple[Index, ...], b: tuple[Index, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _latest(entry: IndexEntry, channel: str) -> str:
    from packaging.version import Version

    candidates = {v for ch, v in entry.latest.items() if ch in (channel, "stable")}
    if len(candidates) < 2:  # most plugins: one version, nothing to compare (and parse)
        return candidates.pop() if candidates else ""
    return max(candidates, key=Version)


def _find_version(detail: PluginDetail, version: str, label: str) -> VersionInfo:
    from packaging.version import InvalidVersion

    try:
        info = detail.get(version)
    except InvalidVersion:
        info = None
    if info is None:
        listed = ", ".join(str(v.version) for v in reversed(detail.versions))
        raise RegistryError(
            f"registry {label!r}: {detail.id} has no version {version!r} (it has {listed})",
            registry=label,
            file=f"plugins/{detail.id}.json",
            hint="Pick one of the listed versions (`plugmarket versions ID`).",
        )
    return info
