"""The registry's files as typed values: strict decoding at the boundary, canonical encoding.

A registry is static files: ``index.json`` (every plugin's summary, as columns,
pinning each plugin's detail file by sha256 and size), ``plugins/<id>.json``
(every version, pinning each artifact by sha256 and size) and
``index.json.sig`` (see :mod:`plugmarket._internal.signing`).
docs/registry-format.md describes every field; this is format 2.

Invariants:

- Untrusted bytes are decoded once, here, into frozen values; nothing further
  in sees a dict. Decoding is strict: a BOM, invalid UTF-8, ``NaN`` or
  ``Infinity``, a duplicate key or plugin id, an unknown field, a wrong type,
  an unknown ``format`` or a plugin id that could become a path (``../x``,
  ``a/b``) is a :class:`~plugmarket.errors.RegistryError` naming the registry,
  the file, the field and what was found.
- Every value of the index is checked when it is decoded
  (:mod:`plugmarket._internal.index_columns`); the per-plugin
  :class:`IndexEntry` objects are then built from the checked columns when
  first asked for (:class:`IndexPlugins`), which cannot fail. A search over
  10,000 plugins builds only the entries it shows.
- Encoding is canonical (sorted keys, compact separators, UTF-8, a trailing
  newline), so the same registry state always gives the same bytes, and
  ``decode(encode(x)) == x``.
- Times are timezone-aware UTC, written as ``YYYY-MM-DDTHH:MM:SSZ``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar, overload

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from plugmarket._internal.index_columns import IndexColumns, columns_json, decode_columns
from plugmarket._internal.json_fields import (
    CHANNEL_PATTERN,
    MAX_ITEMS,
    Fields,
    loads_strict,
)
from plugmarket.errors import RegistryError
from plugmarket.manifest import validate_id

__all__ = [
    "CHANNEL_PATTERN",
    "DETAIL_DIR",
    "FORMAT",
    "INDEX_FILE",
    "SIGNATURE_FILE",
    "STABLE",
    "Artifact",
    "Index",
    "IndexColumns",
    "IndexEntry",
    "IndexPlugins",
    "PluginDetail",
    "VersionInfo",
    "canonical_json",
    "decode_detail",
    "decode_index",
    "detail_path",
    "encode_detail",
    "encode_index",
    "format_time",
    "index_columns",
    "loads_strict",
]

#: The format version this plugmarket reads and writes.
FORMAT = 2
INDEX_FILE = "index.json"
SIGNATURE_FILE = "index.json.sig"
DETAIL_DIR = "plugins"
STABLE = "stable"
_MAX_VERSIONS = 10_000  # versions of one plugin


@dataclass(frozen=True)
class Artifact:
    """A file pinned by its hash and size: an artifact, or a plugin's detail file.

    ``url`` is relative to the registry's base, or an absolute https/http URL.
    """

    url: str
    sha256: str
    size: int  # bytes


@dataclass(frozen=True)
class VersionInfo:
    """One published version of a plugin, as ``plugins/<id>.json`` lists it."""

    version: Version
    requires: tuple[Requirement, ...]
    host: SpecifierSet
    capabilities: tuple[str, ...]
    channel: str
    rollout: float | None  # share of users (0..1) offered this version; None: everyone
    yanked: bool
    yanked_reason: str
    published: datetime
    artifact: Artifact
    summary: str = ""


@dataclass(frozen=True)
class PluginDetail:
    """The contents of ``plugins/<id>.json``: a plugin and all its versions (oldest first)."""

    id: str
    name: str
    summary: str
    description: str
    authors: tuple[str, ...]
    license: str
    homepage: str
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    versions: tuple[VersionInfo, ...]

    def latest(self, channel: str = STABLE) -> VersionInfo | None:
        """The newest version a user on ``channel`` is offered, ignoring rollout.

        Yanked versions are never offered. A channel other than ``stable`` also
        sees stable versions; pre-releases are offered only on channels other
        than ``stable``.
        """
        best: VersionInfo | None = None
        for info in self.versions:
            if info.yanked or info.channel not in (channel, STABLE):
                continue
            if channel == STABLE and info.version.is_prerelease:
                continue
            if best is None or info.version > best.version:
                best = info
        return best

    def get(self, version: Version | str) -> VersionInfo | None:
        """The entry for ``version`` (yanked or not), if it was published."""
        wanted = version if isinstance(version, Version) else Version(version)
        return next((v for v in self.versions if v.version == wanted), None)

    def channels(self) -> tuple[str, ...]:
        """Every channel some version was published on, sorted, ``stable`` included."""
        return tuple(sorted({STABLE, *(v.channel for v in self.versions)}))


@dataclass(frozen=True)
class IndexEntry:
    """One plugin's summary in ``index.json``; ``detail`` pins ``plugins/<id>.json``."""

    id: str
    name: str
    summary: str
    latest: Mapping[str, str]  # channel -> version
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    rating: float | None  # 0..5 stars; None: not rated
    ratings_count: int
    downloads: int
    capabilities: tuple[str, ...]
    updated: datetime
    detail: Artifact


@dataclass(frozen=True)
class Index:
    """The contents of ``index.json``."""

    format: int
    version: int  # only ever goes up
    expires: datetime
    generated: datetime
    plugins: Mapping[str, IndexEntry] = field(default_factory=lambda: MappingProxyType({}))


def detail_path(plugin_id: str) -> str:
    """Where a plugin's detail file lives, relative to the registry's base."""
    return f"{DETAIL_DIR}/{validate_id(plugin_id)}.json"


def format_time(value: datetime) -> str:
    """A time as the registry writes it: UTC, whole seconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- decoding


def _artifact(f: Fields, where: str, value: object) -> Artifact:
    obj = f.obj(where, value, _ARTIFACT)
    return Artifact(
        url=f.url(f"{where}.url", obj["url"]),
        sha256=f.sha256(f"{where}.sha256", obj["sha256"]),
        size=f.integer(f"{where}.size", obj["size"]),
    )


def _format(f: Fields, obj: dict[str, Any]) -> int:
    value = obj["format"]
    if type(value) is not int or value != FORMAT:
        older = type(value) is int and value < FORMAT
        raise RegistryError(
            f"registry {f.registry!r}: {f.file} has format {value!r}; "
            f"this plugmarket reads format {FORMAT}",
            registry=f.registry,
            file=f.file,
            hint="The registry was written by an older plugmarket; ask its maintainer to "
            "rebuild it with a current one."
            if older
            else "Upgrade plugmarket, or ask the registry's maintainer which format it serves.",
        )
    return value


_ARTIFACT = frozenset({"url", "sha256", "size"})
_INDEX = frozenset({"format", "version", "expires", "generated", "plugins"})


def decode_index(data: bytes, *, registry: str) -> Index:
    """Decode ``index.json`` bytes into an :class:`Index`, checking every value.

    Args:
        data: The file's bytes, exactly as served.
        registry: The registry's name or URL, for messages.

    Raises:
        RegistryError: the bytes are not a valid index; the message names the
            field and what was found.
    """
    f = Fields(registry, INDEX_FILE)
    obj = f.obj("the index", loads_strict(data, registry=registry, file=INDEX_FILE), _INDEX)
    fmt = _format(f, obj)
    version = f.integer("version", obj["version"], minimum=1)
    expires = f.time("expires", obj["expires"])
    generated = f.time("generated", obj["generated"])
    plugins = IndexPlugins(decode_columns(f, obj["plugins"]))
    return Index(format=fmt, version=version, expires=expires, generated=generated, plugins=plugins)


class IndexPlugins(Mapping[str, IndexEntry]):
    """A decoded index's plugins: checked columns, each :class:`IndexEntry` built on first use.

    Every value was checked when the index was decoded, so building an entry
    cannot fail; an entry, once built, is kept, so it is the same object each
    time. ``columns`` serves whoever needs every plugin at once (the search
    table) without building 10,000 objects.
    """

    __slots__ = ("_built", "_rows", "columns")

    def __init__(self, columns: IndexColumns) -> None:
        self.columns = columns
        self._rows = dict(zip(columns.ids, range(len(columns.ids)), strict=True))
        self._built: dict[str, IndexEntry] = {}

    def __getitem__(self, plugin_id: str) -> IndexEntry:
        entry = self._built.get(plugin_id)
        if entry is None:
            entry = self._built.setdefault(plugin_id, self._entry(self._rows[plugin_id]))
        return entry

    @overload
    def get(self, plugin_id: str, /) -> IndexEntry | None: ...
    @overload
    def get(self, plugin_id: str, /, default: IndexEntry | _T) -> IndexEntry | _T: ...

    def get(self, plugin_id: str, default: object = None) -> object:
        """The entry of ``plugin_id``, or ``default`` if the index has no such plugin."""
        return self[plugin_id] if plugin_id in self._rows else default

    def __contains__(self, plugin_id: object) -> bool:
        return plugin_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns.ids)

    def __len__(self) -> int:
        return len(self.columns.ids)

    def __repr__(self) -> str:
        return f"<IndexPlugins: {len(self)} plugins>"

    def _entry(self, row: int) -> IndexEntry:
        c = self.columns
        plugin_id = c.ids[row]
        detail = _built(
            Artifact,
            {
                "url": detail_path(plugin_id),
                "sha256": c.detail_sha256[row],
                "size": c.detail_sizes[row],
            },
        )
        return _built(
            IndexEntry,
            {
                "id": plugin_id,
                "name": c.names[row],
                "summary": c.summaries[row],
                "latest": MappingProxyType(c.latest_of(row)),
                "categories": tuple(c.categories[row]),
                "tags": tuple(c.tags[row]),
                "rating": c.ratings[row],
                "ratings_count": c.ratings_counts[row],
                "downloads": c.downloads[row],
                "capabilities": tuple(c.capabilities[row]),
                "updated": c.updated[row],
                "detail": detail,
            },
        )


def index_columns(plugins: Mapping[str, IndexEntry]) -> IndexColumns:
    """The plugins of an index as columns: kept by a decoded index, computed for a built one."""
    if isinstance(plugins, IndexPlugins):
        return plugins.columns
    return IndexColumns.from_entries(plugins)


_T = TypeVar("_T")


def _built(cls: type[_T], values: dict[str, Any]) -> _T:
    """An instance of a frozen dataclass without its generated ``__init__``.

    That ``__init__`` sets each field through ``object.__setattr__``. Only for
    entries built from checked columns, with every field given; equality,
    hashing and repr are the dataclass's own.
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


_DETAIL = frozenset({"format", "id", "versions"})
_DETAIL_OPT = frozenset(
    {"name", "summary", "description", "authors", "license", "homepage", "categories", "tags"}
)
_VERSION_REQ = frozenset({"version", "channel", "published", "artifact"})
_VERSION_OPT = frozenset(
    {"requires", "host", "capabilities", "rollout", "yanked", "yanked_reason", "summary"}
)


def decode_detail(
    data: bytes, *, registry: str, plugin_id: str, file: str | None = None
) -> PluginDetail:
    """Decode ``plugins/<id>.json`` bytes into a :class:`PluginDetail`.

    Args:
        data: The file's bytes, exactly as served.
        registry: The registry's name or URL, for messages.
        plugin_id: The id the caller asked for; the file must describe it.
        file: The file's path for messages (default ``plugins/<plugin_id>.json``).

    Raises:
        RegistryError: the bytes are not a valid detail file, or describe
            another plugin; or ``plugin_id`` is not a valid id.
    """
    f = Fields(registry, file or f"{DETAIL_DIR}/{plugin_id}.json")
    f.plugin_id("the requested plugin id", plugin_id)
    raw = loads_strict(data, registry=registry, file=f.file)
    obj = f.obj("the detail", raw, _DETAIL, _DETAIL_OPT)
    _format(f, obj)
    found_id = f.plugin_id("id", obj["id"])
    if found_id != plugin_id:
        f.fail("id", found_id, f"{plugin_id!r}, the plugin this file was fetched for")
    raw_versions = obj["versions"]
    if not isinstance(raw_versions, list) or len(raw_versions) > _MAX_VERSIONS:
        f.fail("versions", type(raw_versions).__name__, "a list of versions")
    versions = tuple(_version_info(f, i, v) for i, v in enumerate(raw_versions))
    seen: set[Version] = set()
    for info in versions:
        if info.version in seen:
            f.fail("versions", str(info.version), "each version listed once")
        seen.add(info.version)
    return PluginDetail(
        id=found_id,
        name=f.text("name", obj.get("name", "")),
        summary=f.text("summary", obj.get("summary", "")),
        description=f.text("description", obj.get("description", "")),
        authors=f.texts("authors", obj.get("authors", [])),
        license=f.text("license", obj.get("license", "")),
        homepage=f.text("homepage", obj.get("homepage", "")),
        categories=f.texts("categories", obj.get("categories", [])),
        tags=f.texts("tags", obj.get("tags", [])),
        versions=tuple(sorted(versions, key=lambda v: v.version)),
    )


def _version_info(f: Fields, i: int, value: object) -> VersionInfo:
    where = f"versions[{i}]"
    obj = f.obj(where, value, _VERSION_REQ, _VERSION_OPT)
    requires = obj.get("requires", [])
    if not isinstance(requires, list) or len(requires) > MAX_ITEMS:
        f.fail(f"{where}.requires", requires, f"a list of at most {MAX_ITEMS} requirements")
    yanked = obj.get("yanked", False)
    if not isinstance(yanked, bool):
        f.fail(f"{where}.yanked", yanked, "true or false")
    rollout = obj.get("rollout")
    return VersionInfo(
        version=f.version(f"{where}.version", obj["version"]),
        requires=tuple(f.requirement(f"{where}.requires[{j}]", r) for j, r in enumerate(requires)),
        host=f.specifier(f"{where}.host", obj.get("host", "")),
        capabilities=f.capabilities(f"{where}.capabilities", obj.get("capabilities", [])),
        channel=f.channel(f"{where}.channel", obj["channel"]),
        rollout=None if rollout is None else f.number(f"{where}.rollout", rollout, 0.0, 1.0),
        yanked=yanked,
        yanked_reason=f.text(f"{where}.yanked_reason", obj.get("yanked_reason", "")),
        published=f.time(f"{where}.published", obj["published"]),
        artifact=_artifact(f, f"{where}.artifact", obj["artifact"]),
        summary=f.text(f"{where}.summary", obj.get("summary", "")),
    )


# --------------------------------------------------------------------------- encoding


def canonical_json(obj: object) -> bytes:
    """``obj`` as canonical JSON bytes: sorted keys, compact, UTF-8, a trailing newline."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


def _artifact_json(a: Artifact) -> dict[str, Any]:
    return {"url": a.url, "sha256": a.sha256, "size": a.size}


def encode_index(index: Index) -> bytes:
    """The canonical bytes of ``index.json`` for ``index`` (format 2: plugins as columns)."""
    return canonical_json(
        {
            "format": index.format,
            "version": index.version,
            "expires": format_time(index.expires),
            "generated": format_time(index.generated),
            "plugins": columns_json(index_columns(index.plugins), format_time),
        }
    )


def encode_detail(detail: PluginDetail) -> bytes:
    """The canonical bytes of ``plugins/<id>.json`` for ``detail`` (versions oldest first)."""
    versions = [
        {
            "version": str(v.version),
            "requires": [str(r) for r in v.requires],
            "host": str(v.host),
            "capabilities": list(v.capabilities),
            "channel": v.channel,
            "rollout": v.rollout,
            "yanked": v.yanked,
            "yanked_reason": v.yanked_reason,
            "published": format_time(v.published),
            "artifact": _artifact_json(v.artifact),
            "summary": v.summary,
        }
        for v in sorted(detail.versions, key=lambda v: v.version)
    ]
    return canonical_json(
        {
            "format": FORMAT,
            "id": detail.id,
            "name": detail.name,
            "summary": detail.summary,
            "description": detail.description,
            "authors": list(detail.authors),
            "license": detail.license,
            "homepage": detail.homepage,
            "categories": list(detail.categories),
            "tags": list(detail.tags),
            "versions": versions,
        }
    )
