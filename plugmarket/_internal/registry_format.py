"""The registry's files as typed values: strict decoding at the boundary, canonical encoding.

A registry is static files: ``index.json`` (one summary per plugin, pinning each
plugin's detail file by sha256 and size), ``plugins/<id>.json`` (every version,
pinning each artifact by sha256 and size) and ``index.json.sig`` (see
:mod:`plugmarket._internal.signing`). docs/registry-format.md describes every field.

Invariants:

- Untrusted bytes are decoded once, here, into frozen dataclasses; nothing
  further in sees a dict. Decoding is strict: a BOM, invalid UTF-8, ``NaN`` or
  ``Infinity``, a duplicate key, an unknown field, a wrong type, an unknown
  ``format`` or a plugin id that could become a path (``../x``, ``a/b``) is a
  :class:`~plugmarket.errors.RegistryError` naming the registry, the file, the
  field and what was found.
- Encoding is canonical (sorted keys, compact separators, UTF-8, a trailing
  newline), so the same registry state always gives the same bytes, and
  ``decode(encode(x)) == x``.
- Times are timezone-aware UTC, written as ``YYYY-MM-DDTHH:MM:SSZ``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import VERSION_PATTERN, InvalidVersion, Version

from plugmarket.capabilities import parse_capability
from plugmarket.errors import ManifestError, RegistryError
from plugmarket.manifest import normalize_id, validate_id

__all__ = [
    "CHANNEL_PATTERN",
    "DETAIL_DIR",
    "FORMAT",
    "INDEX_FILE",
    "SIGNATURE_FILE",
    "STABLE",
    "Artifact",
    "Index",
    "IndexEntry",
    "PluginDetail",
    "VersionInfo",
    "canonical_json",
    "decode_detail",
    "decode_index",
    "detail_path",
    "encode_detail",
    "encode_index",
    "format_time",
    "loads_strict",
]

#: The format version this plugmarket reads and writes.
FORMAT = 1
INDEX_FILE = "index.json"
SIGNATURE_FILE = "index.json.sig"
DETAIL_DIR = "plugins"
STABLE = "stable"
#: What a channel name may look like.
CHANNEL_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^\s*" + VERSION_PATTERN + r"\s*$", re.VERBOSE | re.IGNORECASE)
# A relative URL is a plain path under the registry's base: no scheme, no host,
# no query, no '%' (which could spell '..'), and no segment starting with '.'.
_RELATIVE_URL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*(/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$")
_MAX_TEXT = 64 * 1024  # characters in one text field
_MAX_ITEMS = 256  # entries in one list field (tags, capabilities, requires...)
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


class _Ctx:
    """Where a value came from, for error messages."""

    __slots__ = ("file", "registry")

    def __init__(self, registry: str, file: str) -> None:
        self.registry = registry
        self.file = file

    def fail(self, where: str, found: object, expected: str) -> NoReturn:
        shown = repr(found)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise RegistryError(
            f"registry {self.registry!r}: {self.file}: {where} is {shown}; expected {expected}",
            registry=self.registry,
            file=self.file,
            hint="The registry served a malformed file; tell its maintainer "
            "(`plugmarket index verify` checks a registry folder).",
        )


def loads_strict(data: bytes, *, registry: str, file: str) -> Any:
    """Parse JSON bytes strictly: UTF-8 without BOM, no NaN/Infinity, no duplicate keys.

    Raises:
        RegistryError: naming the registry and the file, with what was wrong.
    """
    ctx = _Ctx(registry, file)
    if data[:3] == b"\xef\xbb\xbf":
        ctx.fail("the start of the file", "a UTF-8 byte order mark", "JSON without a BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(
            f"registry {registry!r}: {file} is not UTF-8 ({exc.reason} at byte {exc.start})",
            registry=registry,
            file=file,
        ) from exc

    def constant(name: str) -> NoReturn:
        ctx.fail("a number", name, "a finite number (NaN and Infinity are not JSON)")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    ctx.fail(f"key {key!r}", "repeated in one object", "each key once")
                seen.add(key)
        return obj

    try:
        return json.loads(text, parse_constant=constant, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise RegistryError(
            f"registry {registry!r}: {file} is not valid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})",
            registry=registry,
            file=file,
        ) from exc
    except RecursionError as exc:
        raise RegistryError(
            f"registry {registry!r}: {file} is nested too deeply to be a registry file",
            registry=registry,
            file=file,
        ) from exc


def _obj(
    ctx: _Ctx,
    where: str,
    value: object,
    required: frozenset[str],
    optional: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    if not isinstance(value, dict):
        ctx.fail(where, type(value).__name__, "an object")
    missing = required - value.keys()
    if missing:
        ctx.fail(f"{where}.{min(missing)}", "missing", "the field to be present")
    unknown = value.keys() - required - optional
    if unknown:
        ctx.fail(
            f"{where}.{min(unknown)}",
            "an unknown field",
            f"only {', '.join(sorted(required | optional))}",
        )
    return value


def _str(ctx: _Ctx, where: str, value: object, *, empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT or (not empty and not value):
        ctx.fail(where, value, f"a {'' if empty else 'non-empty '}string of at most {_MAX_TEXT}")
    if not value.isprintable() and any(ord(c) < 32 and c not in "\n\t" for c in value):
        ctx.fail(where, value, "text without control characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            ctx.fail(where, value, "text without lone surrogates")
    return value


def _strs(
    ctx: _Ctx, where: str, value: object, check: Callable[[_Ctx, str, object], str] | None = None
) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        ctx.fail(where, value, f"a list of at most {_MAX_ITEMS} strings")
    one = check or _str
    return tuple(one(ctx, f"{where}[{i}]", v) for i, v in enumerate(value))


def _int(ctx: _Ctx, where: str, value: object, *, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        ctx.fail(where, value, f"an integer >= {minimum}")
    return value


def _number(ctx: _Ctx, where: str, value: object, low: float, high: float) -> float:
    if type(value) not in (int, float) or not low <= value <= high:  # type: ignore[operator]
        ctx.fail(where, value, f"a number from {low} to {high}")
    return float(value)  # type: ignore[arg-type]


def _time(ctx: _Ctx, where: str, value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    ctx.fail(where, value, "a UTC time such as '2024-05-01T12:00:00Z'")


def _plugin_id(ctx: _Ctx, where: str, value: object) -> str:
    try:
        return validate_id(value)
    except ManifestError:
        ctx.fail(where, value, "a plugin id (lower-case letters, digits, '-'; never a path)")


def _version_text(ctx: _Ctx, where: str, value: object) -> str:
    if not isinstance(value, str) or not _VERSION.match(value):
        ctx.fail(where, value, "a PEP 440 version such as '1.2.0'")
    return value


def _version(ctx: _Ctx, where: str, value: object) -> Version:
    try:
        if isinstance(value, str):
            return Version(value)
    except InvalidVersion:
        pass
    ctx.fail(where, value, "a PEP 440 version such as '1.2.0'")


def _channel(ctx: _Ctx, where: str, value: object) -> str:
    if not isinstance(value, str) or not CHANNEL_PATTERN.match(value):
        ctx.fail(where, value, "a channel name such as 'stable' or 'beta'")
    return value


@lru_cache(maxsize=4096)
def _capability_ok(text: str) -> bool:
    try:
        parse_capability(text)
    except ManifestError:
        return False
    return True


def _capability(ctx: _Ctx, where: str, value: object) -> str:
    if not isinstance(value, str) or not _capability_ok(value):
        ctx.fail(where, value, "a capability such as 'display' or 'net:api.example.com'")
    return value


def _requirement(ctx: _Ctx, where: str, value: object) -> Requirement:
    try:
        if isinstance(value, str):
            req = Requirement(value)
            if not (req.url or req.marker or req.extras):
                validate_id(normalize_id(req.name))
                return req
    except (InvalidRequirement, ManifestError):
        pass
    ctx.fail(where, value, "a plugin id with an optional specifier, such as 'table-kit>=1,<2'")


def _specifier(ctx: _Ctx, where: str, value: object) -> SpecifierSet:
    try:
        if isinstance(value, str):
            return SpecifierSet(value)
    except InvalidSpecifier:
        pass
    ctx.fail(where, value, "a version specifier such as '>=1.0,<2'")


def _url(ctx: _Ctx, where: str, value: object) -> str:
    if isinstance(value, str) and len(value) <= 2048:
        if _RELATIVE_URL.match(value):
            return value
        parts = urlsplit(value)
        if (
            parts.scheme in ("https", "http")
            and parts.hostname
            and "@" not in parts.netloc
            and value.isascii()
            and value.isprintable()
            and " " not in value
        ):
            return value
    ctx.fail(
        where,
        value,
        "a path relative to the registry (no '..', no leading '/') or an https/http URL",
    )


_ARTIFACT = frozenset({"url", "sha256", "size"})


def _artifact(ctx: _Ctx, where: str, value: object) -> Artifact:
    obj = _obj(ctx, where, value, _ARTIFACT)
    sha = obj["sha256"]
    if not isinstance(sha, str) or not _SHA256.match(sha):
        ctx.fail(f"{where}.sha256", sha, "64 lower-case hex digits")
    return Artifact(
        url=_url(ctx, f"{where}.url", obj["url"]),
        sha256=sha,
        size=_int(ctx, f"{where}.size", obj["size"]),
    )


def _format(ctx: _Ctx, obj: dict[str, Any]) -> int:
    value = obj["format"]
    if type(value) is not int or value != FORMAT:
        raise RegistryError(
            f"registry {ctx.registry!r}: {ctx.file} has format {value!r}; "
            f"this plugmarket reads format {FORMAT}",
            registry=ctx.registry,
            file=ctx.file,
            hint="Upgrade plugmarket, or ask the registry's maintainer which format it serves.",
        )
    return value


_INDEX = frozenset({"format", "version", "expires", "generated", "plugins"})
_ENTRY = frozenset({"name", "summary", "latest", "updated", "detail"})
_ENTRY_OPT = frozenset(
    {"categories", "tags", "rating", "ratings_count", "downloads", "capabilities"}
)


def decode_index(data: bytes, *, registry: str) -> Index:
    """Decode ``index.json`` bytes into an :class:`Index`.

    Args:
        data: The file's bytes, exactly as served.
        registry: The registry's name or URL, for messages.

    Raises:
        RegistryError: the bytes are not a valid index; the message names the
            field and what was found.
    """
    ctx = _Ctx(registry, INDEX_FILE)
    obj = _obj(ctx, "the index", loads_strict(data, registry=registry, file=INDEX_FILE), _INDEX)
    fmt = _format(ctx, obj)
    raw_plugins = obj["plugins"]
    if not isinstance(raw_plugins, dict):
        ctx.fail("plugins", type(raw_plugins).__name__, "an object of plugin id -> summary")
    plugins: dict[str, IndexEntry] = {}
    for key in sorted(raw_plugins):
        plugin_id = _plugin_id(ctx, f"plugins key {key!r}", key)
        plugins[plugin_id] = _entry(ctx, plugin_id, raw_plugins[key])
    return Index(
        format=fmt,
        version=_int(ctx, "version", obj["version"], minimum=1),
        expires=_time(ctx, "expires", obj["expires"]),
        generated=_time(ctx, "generated", obj["generated"]),
        plugins=MappingProxyType(plugins),
    )


def _entry(ctx: _Ctx, plugin_id: str, value: object) -> IndexEntry:
    where = f"plugins[{plugin_id!r}]"
    obj = _obj(ctx, where, value, _ENTRY, _ENTRY_OPT)
    raw_latest = obj["latest"]
    if not isinstance(raw_latest, dict) or len(raw_latest) > _MAX_ITEMS:
        ctx.fail(f"{where}.latest", raw_latest, "an object of channel -> version")
    latest = {
        _channel(ctx, f"{where}.latest key", ch): _version_text(ctx, f"{where}.latest.{ch}", v)
        for ch, v in sorted(raw_latest.items())
    }
    rating = obj.get("rating")
    return IndexEntry(
        id=plugin_id,
        name=_str(ctx, f"{where}.name", obj["name"]),
        summary=_str(ctx, f"{where}.summary", obj["summary"]),
        latest=MappingProxyType(latest),
        categories=_strs(ctx, f"{where}.categories", obj.get("categories", [])),
        tags=_strs(ctx, f"{where}.tags", obj.get("tags", [])),
        rating=None if rating is None else _number(ctx, f"{where}.rating", rating, 0.0, 5.0),
        ratings_count=_int(ctx, f"{where}.ratings_count", obj.get("ratings_count", 0)),
        downloads=_int(ctx, f"{where}.downloads", obj.get("downloads", 0)),
        capabilities=_strs(ctx, f"{where}.capabilities", obj.get("capabilities", []), _capability),
        updated=_time(ctx, f"{where}.updated", obj["updated"]),
        detail=_artifact(ctx, f"{where}.detail", obj["detail"]),
    )


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
    ctx = _Ctx(registry, file or f"{DETAIL_DIR}/{plugin_id}.json")
    _plugin_id(ctx, "the requested plugin id", plugin_id)
    raw = loads_strict(data, registry=registry, file=ctx.file)
    obj = _obj(ctx, "the detail", raw, _DETAIL, _DETAIL_OPT)
    _format(ctx, obj)
    found_id = _plugin_id(ctx, "id", obj["id"])
    if found_id != plugin_id:
        ctx.fail("id", found_id, f"{plugin_id!r}, the plugin this file was fetched for")
    raw_versions = obj["versions"]
    if not isinstance(raw_versions, list) or len(raw_versions) > _MAX_VERSIONS:
        ctx.fail("versions", type(raw_versions).__name__, "a list of versions")
    versions = tuple(_version_info(ctx, i, v) for i, v in enumerate(raw_versions))
    seen: set[Version] = set()
    for info in versions:
        if info.version in seen:
            ctx.fail("versions", str(info.version), "each version listed once")
        seen.add(info.version)
    return PluginDetail(
        id=found_id,
        name=_str(ctx, "name", obj.get("name", "")),
        summary=_str(ctx, "summary", obj.get("summary", "")),
        description=_str(ctx, "description", obj.get("description", "")),
        authors=_strs(ctx, "authors", obj.get("authors", [])),
        license=_str(ctx, "license", obj.get("license", "")),
        homepage=_str(ctx, "homepage", obj.get("homepage", "")),
        categories=_strs(ctx, "categories", obj.get("categories", [])),
        tags=_strs(ctx, "tags", obj.get("tags", [])),
        versions=tuple(sorted(versions, key=lambda v: v.version)),
    )


def _version_info(ctx: _Ctx, i: int, value: object) -> VersionInfo:
    where = f"versions[{i}]"
    obj = _obj(ctx, where, value, _VERSION_REQ, _VERSION_OPT)
    requires = obj.get("requires", [])
    if not isinstance(requires, list) or len(requires) > _MAX_ITEMS:
        ctx.fail(f"{where}.requires", requires, f"a list of at most {_MAX_ITEMS} requirements")
    yanked = obj.get("yanked", False)
    if not isinstance(yanked, bool):
        ctx.fail(f"{where}.yanked", yanked, "true or false")
    rollout = obj.get("rollout")
    return VersionInfo(
        version=_version(ctx, f"{where}.version", obj["version"]),
        requires=tuple(
            _requirement(ctx, f"{where}.requires[{j}]", r) for j, r in enumerate(requires)
        ),
        host=_specifier(ctx, f"{where}.host", obj.get("host", "")),
        capabilities=_strs(ctx, f"{where}.capabilities", obj.get("capabilities", []), _capability),
        channel=_channel(ctx, f"{where}.channel", obj["channel"]),
        rollout=None if rollout is None else _number(ctx, f"{where}.rollout", rollout, 0.0, 1.0),
        yanked=yanked,
        yanked_reason=_str(ctx, f"{where}.yanked_reason", obj.get("yanked_reason", "")),
        published=_time(ctx, f"{where}.published", obj["published"]),
        artifact=_artifact(ctx, f"{where}.artifact", obj["artifact"]),
        summary=_str(ctx, f"{where}.summary", obj.get("summary", "")),
    )


# --------------------------------------------------------------------------- encoding


def canonical_json(obj: object) -> bytes:
    """``obj`` as canonical JSON bytes: sorted keys, compact, UTF-8, a trailing newline."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


def _artifact_json(a: Artifact) -> dict[str, Any]:
    return {"url": a.url, "sha256": a.sha256, "size": a.size}


def encode_index(index: Index) -> bytes:
    """The canonical bytes of ``index.json`` for ``index``."""
    plugins = {
        pid: {
            "name": e.name,
            "summary": e.summary,
            "latest": dict(e.latest),
            "categories": list(e.categories),
            "tags": list(e.tags),
            "rating": e.rating,
            "ratings_count": e.ratings_count,
            "downloads": e.downloads,
            "capabilities": list(e.capabilities),
            "updated": format_time(e.updated),
            "detail": _artifact_json(e.detail),
        }
        for pid, e in index.plugins.items()
    }
    return canonical_json(
        {
            "format": index.format,
            "version": index.version,
            "expires": format_time(index.expires),
            "generated": format_time(index.generated),
            "plugins": plugins,
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
