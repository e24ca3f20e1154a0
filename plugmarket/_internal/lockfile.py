"""Lockfiles: the installed set written down exactly, so another home can reproduce it.

A lockfile is JSON (docs/decisions/0006-records.md says why)::

    {
      "format": 1,
      "created": "2024-05-01T12:00:00+00:00",
      "generation": 7,
      "plugins": [
        {"id": "csv-preview", "version": "1.0.0", "sha256": "<64 hex>",
         "grants": ["display"], "enabled": true, "registry": "demo",
         "explicit": true, "origin": "https://..."}
      ]
    }

``created`` is when the locked generation was made, so locking the same
set twice gives the same bytes. ``generation``, ``explicit`` (the user asked
for it, rather than it coming as a dependency) and ``origin`` are optional
when decoding. Applying a lockfile fetches each pinned version and refuses
any artifact whose sha256 differs (the installer's job; this module only
encodes and decodes).

Decoding is strict, because a lockfile comes from elsewhere (a colleague, a
Binder image): unknown fields, repeated keys, repeated plugins, invalid ids,
versions, hashes or capabilities are refused with an
:class:`~plugmarket.errors.InstallError` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from plugmarket._internal.installed import Generation
from plugmarket._internal.json_fields import BAD_TEXT, SHA256, capability_ok, version_ok
from plugmarket._internal.recordfile import dumps, loads
from plugmarket.errors import InstallError
from plugmarket.manifest import ID_PATTERN

__all__ = [
    "LOCK_FORMAT",
    "MAX_LOCK_SIZE",
    "LockSpec",
    "LockedPlugin",
    "decode_lock",
    "encode_lock",
    "read_lock",
]

LOCK_FORMAT = 1
MAX_LOCK_SIZE = 16 * 1024 * 1024  # bytes: far more than any real installed set
_MAX_PLUGINS = 10_000
_MAX_FIELD = 4096  # characters in a registry name or origin
_TOP = frozenset({"format", "created", "plugins"})
_TOP_OPTIONAL = frozenset({"generation"})
_PLUGIN = frozenset({"id", "version", "sha256", "grants", "enabled", "registry"})
_PLUGIN_OPTIONAL = frozenset({"explicit", "origin"})
_HINT = "The lockfile is damaged or was edited by hand; export it again with `plugmarket lock`."


@dataclass(frozen=True)
class LockedPlugin:
    """One pinned plugin: exactly which bytes, and what they are granted."""

    id: str
    version: str
    sha256: str
    grants: tuple[str, ...] = ()
    enabled: bool = True
    registry: str = ""
    explicit: bool = True
    origin: str = ""


@dataclass(frozen=True)
class LockSpec:
    """A decoded lockfile: the plugins, sorted by id."""

    plugins: tuple[LockedPlugin, ...]
    created: datetime
    generation: int | None = None
    format: int = LOCK_FORMAT

    def __iter__(self) -> Iterator[LockedPlugin]:
        return iter(self.plugins)

    def __len__(self) -> int:
        return len(self.plugins)

    def get(self, plugin_id: str) -> LockedPlugin | None:
        """The pin for ``plugin_id``, or None."""
        return next((p for p in self.plugins if p.id == plugin_id), None)

    def __repr__(self) -> str:
        pins = ", ".join(f"{p.id}=={p.version}" for p in self.plugins) or "nothing"
        return f"<LockSpec {len(self.plugins)} plugin(s): {pins}>"


def encode_lock(generation: Generation) -> bytes:
    """The lockfile of a generation: canonical JSON, the same bytes for the same set."""
    return dumps(
        {
            "format": LOCK_FORMAT,
            "created": generation.created.astimezone(UTC).isoformat(),
            "generation": generation.number,
            "plugins": [
                {
                    "id": p.id,
                    "version": p.version,
                    "sha256": p.sha256,
                    "grants": list(p.grants),
                    "enabled": p.enabled,
                    "registry": p.registry,
                    "explicit": p.explicit,
                    "origin": p.origin,
                }
                for _, p in sorted(generation.plugins.items())
            ],
        }
    )


def read_lock(path: Path | str) -> LockSpec:
    """Read and decode the lockfile at ``path`` (at most :data:`MAX_LOCK_SIZE` bytes).

    Raises:
        InstallError: the file cannot be read, is too large, or does not decode.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LOCK_SIZE + 1)
    except OSError as exc:
        raise InstallError(
            f"cannot read the lockfile {path}: {exc.strerror or exc}",
            step="read lockfile",
            hint="Check the path; `plugmarket lock --out FILE` writes one.",
        ) from exc
    return decode_lock(data, path=str(path))


def decode_lock(data: bytes, *, path: str) -> LockSpec:
    """Decode a lockfile strictly.

    Args:
        data: The lockfile's bytes.
        path: Where it came from, for messages.

    Raises:
        InstallError: the bytes are not a lockfile this plugmarket understands;
            the message names the field, what it holds and what was expected.
    """
    if len(data) > MAX_LOCK_SIZE:
        _fail(
            path,
            "the file",
            f"{len(data):,} bytes",
            f"at most {MAX_LOCK_SIZE:,} bytes",
            described=True,
        )
    try:
        obj = loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InstallError(
            f"{path} is not a valid lockfile: it is not valid JSON ({exc})",
            step="read lockfile",
            hint=_HINT,
        ) from exc
    obj = _keys(path, "", obj, _TOP, _TOP_OPTIONAL)
    if obj["format"] != LOCK_FORMAT:
        if type(obj["format"]) is int and obj["format"] > LOCK_FORMAT:
            raise InstallError(
                f"{path} is lockfile format {obj['format']}, newer than this plugmarket "
                f"understands (format {LOCK_FORMAT})",
                step="read lockfile",
                hint="Upgrade plugmarket to apply it.",
            )
        _fail(path, "format", obj["format"], str(LOCK_FORMAT))
    created = _time(path, obj["created"])
    generation = obj.get("generation")
    if generation is not None and (type(generation) is not int or generation < 0):
        _fail(path, "generation", generation, "a whole number >= 0")
    items = obj["plugins"]
    if type(items) is not list or len(items) > _MAX_PLUGINS:
        _fail(path, "plugins", items, f"a list of at most {_MAX_PLUGINS:,} plugins")
    plugins: dict[str, LockedPlugin] = {}
    for i, item in enumerate(items):
        pin = _plugin(path, f"plugins[{i}]", item)
        if pin.id in plugins:
            _fail(path, f"plugins[{i}].id", pin.id, "each plugin once")
        plugins[pin.id] = pin
    return LockSpec(
        plugins=tuple(plugins[k] for k in sorted(plugins)),
        created=created,
        generation=generation,
    )


def _plugin(path: str, where: str, item: object) -> LockedPlugin:
    item = _keys(path, where, item, _PLUGIN, _PLUGIN_OPTIONAL)
    pid = item["id"]
    if type(pid) is not str or not ID_PATTERN.match(pid):
        _fail(path, f"{where}.id", pid, "a plugin id (lower-case letters, digits and '-')")
    version = item["version"]
    if type(version) is not str or not version_ok(version):
        _fail(path, f"{where}.version", version, "a PEP 440 version such as '1.2.0'")
    sha256 = item["sha256"]
    if type(sha256) is not str or not SHA256.match(sha256):
        _fail(path, f"{where}.sha256", sha256, "64 lower-case hex digits")
    grants = item["grants"]
    if type(grants) is not list:
        _fail(path, f"{where}.grants", grants, "a list of capabilities")
    for j, grant in enumerate(grants):
        if type(grant) is not str or not capability_ok(grant):
            _fail(path, f"{where}.grants[{j}]", grant, "a capability such as 'display'")
    if len(set(grants)) != len(grants):
        _fail(path, f"{where}.grants", grants, "each capability once")
    return LockedPlugin(
        id=pid,
        version=version,
        sha256=sha256,
        grants=tuple(grants),
        enabled=_flag(path, f"{where}.enabled", item["enabled"]),
        registry=_text(path, f"{where}.registry", item["registry"]),
        explicit=_flag(path, f"{where}.explicit", item.get("explicit", True)),
        origin=_text(path, f"{where}.origin", item.get("origin", "")),
    )


def _keys(
    path: str, where: str, value: object, required: frozenset[str], optional: frozenset[str]
) -> dict[str, Any]:
    if type(value) is not dict:
        whole = where or "the lockfile"
        _fail(path, whole, f"a {type(value).__name__}", "an object", described=True)
    prefix = f"{where}: " if where else ""
    missing = required - value.keys()
    if missing:
        _fail(
            path,
            f"{prefix}field {min(missing)!r}",
            "missing",
            f"the fields {', '.join(sorted(required))}",
            described=True,
        )
    unknown = value.keys() - required - optional
    if unknown:
        _fail(
            path,
            f"{prefix}field {min(unknown)!r}",
            "not a lockfile field",
            f"only {', '.join(sorted(required | optional))}",
            described=True,
        )
    return value


def _flag(path: str, where: str, value: object) -> bool:
    if type(value) is not bool:
        _fail(path, where, value, "true or false")
    return value


def _text(path: str, where: str, value: object) -> str:
    if type(value) is not str or len(value) > _MAX_FIELD or BAD_TEXT.search(value):
        _fail(path, where, value, f"text of at most {_MAX_FIELD} characters on one line")
    if "\n" in value or "\t" in value:
        _fail(path, where, value, "text on one line")
    return value


def _time(path: str, value: object) -> datetime:
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    _fail(path, "created", value, "a time with a timezone, such as '2024-05-01T12:00:00+00:00'")


def _fail(
    path: str, where: str, found: object, expected: str, *, described: bool = False
) -> NoReturn:
    """Raise the error for field ``where``; ``found`` is a value, or a description."""
    text = str(found) if described else repr(found)
    if len(text) > 80:
        text = text[:77] + "..."
    raise InstallError(
        f"{path} is not a valid lockfile: {where} is {text}; expected {expected}",
        step="read lockfile",
        hint=_HINT,
    )
