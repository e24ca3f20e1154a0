"""Strict JSON for registry files: parsing untrusted bytes and checking each field.

:func:`loads_strict` parses bytes the standard ``json`` module would accept too
generously (a BOM, ``NaN``/``Infinity``, duplicate keys, runaway nesting).
:class:`Fields` checks one value at a time and raises a
:class:`~plugmarket.errors.RegistryError` naming the registry, the file, the
field, what was found and what was expected. The ``*_ok`` predicates are the
cached fast checks the index decoder's bulk checks use; every predicate is at
least as strict as the matching :class:`Fields` method. Patterns are applied
with ``fullmatch``: a ``$`` anchor alone would let a trailing newline through.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import VERSION_PATTERN, InvalidVersion, Version

from plugmarket.capabilities import parse_capability
from plugmarket.errors import ManifestError, RegistryError
from plugmarket.manifest import ID_PATTERN, normalize_id, validate_id

__all__ = [
    "BAD_TEXT",
    "CHANNEL_PATTERN",
    "MAX_ITEMS",
    "MAX_TEXT",
    "RELATIVE_URL",
    "SHA256",
    "Fields",
    "capability_ok",
    "channel_ok",
    "loads_strict",
    "parse_time",
    "version_ok",
]

#: What a channel name may look like.
CHANNEL_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A relative URL is a plain path under the registry's base: no scheme, no host,
# no query, no '%' (which could spell '..'), and no segment starting with '.'.
RELATIVE_URL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*(/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$")
#: Control characters other than tab and newline, and lone surrogates.
BAD_TEXT = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff]")
MAX_TEXT = 64 * 1024  # characters in one text field
MAX_ITEMS = 256  # entries in one list field (tags, capabilities, requires...)
_VERSION = re.compile(r"^\s*" + VERSION_PATTERN + r"\s*$", re.VERBOSE | re.IGNORECASE)


def loads_strict(data: bytes, *, registry: str, file: str) -> Any:
    """Parse JSON bytes strictly: UTF-8 without BOM, no NaN/Infinity, no duplicate keys.

    Raises:
        RegistryError: naming the registry and the file, with what was wrong.
    """
    fields = Fields(registry, file)
    if data[:3] == b"\xef\xbb\xbf":
        fields.fail("the start of the file", "a UTF-8 byte order mark", "JSON without a BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(
            f"registry {registry!r}: {file} is not UTF-8 ({exc.reason} at byte {exc.start})",
            registry=registry,
            file=file,
        ) from exc

    def constant(name: str) -> NoReturn:
        fields.fail("a number", name, "a finite number (NaN and Infinity are not JSON)")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    fields.fail(f"key {key!r}", "repeated in one object", "each key once")
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


@lru_cache(maxsize=4096)
def capability_ok(text: str) -> bool:
    """Whether ``text`` is a valid capability (cached: registries repeat a few)."""
    try:
        parse_capability(text)
    except ManifestError:
        return False
    return True


@lru_cache(maxsize=4096)
def version_ok(text: str) -> bool:
    """Whether ``text`` is a PEP 440 version (cached: registries repeat many)."""
    return _VERSION.fullmatch(text) is not None


@lru_cache(maxsize=256)
def channel_ok(text: str) -> bool:
    """Whether ``text`` is a valid channel name."""
    return CHANNEL_PATTERN.fullmatch(text) is not None


def parse_time(value: object) -> datetime | None:
    """A timezone-aware time from ISO 8601 text, in UTC; None when it is not one."""
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    return None


class Fields:
    """Checks fields of one registry file; every failure names registry, file and field."""

    __slots__ = ("file", "registry")

    def __init__(self, registry: str, file: str) -> None:
        self.registry = registry
        self.file = file

    def fail(self, where: str, found: object, expected: str) -> NoReturn:
        """Raise the :class:`RegistryError` for field ``where``."""
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

    def obj(
        self,
        where: str,
        value: object,
        required: frozenset[str],
        optional: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, type(value).__name__, "an object")
        missing = required - value.keys()
        if missing:
            self.fail(f"{where}.{min(missing)}", "missing", "the field to be present")
        unknown = value.keys() - required - optional
        if unknown:
            self.fail(
                f"{where}.{min(unknown)}",
                "an unknown field",
                f"only {', '.join(sorted(required | optional))}",
            )
        return value

    def text(self, where: str, value: object) -> str:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            self.fail(where, value, f"a string of at most {MAX_TEXT} characters")
        bad = BAD_TEXT.search(value)
        if bad is not None:
            what = "lone surrogates" if bad.group() >= "\ud800" else "control characters"
            self.fail(where, value, f"text without {what}")
        return value

    def texts(self, where: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            self.fail(where, value, f"a list of at most {MAX_ITEMS} strings")
        return tuple(self.text(f"{where}[{i}]", v) for i, v in enumerate(value))

    def capabilities(self, where: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            self.fail(where, value, f"a list of at most {MAX_ITEMS} capabilities")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not capability_ok(item):
                self.fail(
                    f"{where}[{i}]", item, "a capability such as 'display' or 'net:api.example.com'"
                )
        return tuple(value)

    def integer(self, where: str, value: object, *, minimum: int = 0) -> int:
        if type(value) is not int or value < minimum:
            self.fail(where, value, f"an integer >= {minimum}")
        return value

    def number(self, where: str, value: object, low: float, high: float) -> float:
        if type(value) not in (int, float) or not low <= value <= high:  # type: ignore[operator]
            self.fail(where, value, f"a number from {low} to {high}")
        return float(value)  # type: ignore[arg-type]

    def time(self, where: str, value: object) -> datetime:
        parsed = parse_time(value)
        if parsed is None:
            self.fail(where, value, "a UTC time such as '2024-05-01T12:00:00Z'")
        return parsed

    def plugin_id(self, where: str, value: object) -> str:
        # fullmatch: ID_PATTERN's '$' would also accept a trailing newline.
        if isinstance(value, str) and ID_PATTERN.fullmatch(value):
            return value
        self.fail(where, value, "a plugin id (lower-case letters, digits, '-'; never a path)")

    def version_text(self, where: str, value: object) -> str:
        if not isinstance(value, str) or not version_ok(value):
            self.fail(where, value, "a PEP 440 version such as '1.2.0'")
        return value

    def version(self, where: str, value: object) -> Version:
        try:
            if isinstance(value, str):
                return Version(value)
        except InvalidVersion:
            pass
        self.fail(where, value, "a PEP 440 version such as '1.2.0'")

    def channel(self, where: str, value: object) -> str:
        if not isinstance(value, str) or not channel_ok(value):
            self.fail(where, value, "a channel name such as 'stable' or 'beta'")
        return value

    def requirement(self, where: str, value: object) -> Requirement:
        try:
            if isinstance(value, str):
                req = Requirement(value)
                if not (req.url or req.marker or req.extras):
                    validate_id(normalize_id(req.name))
                    return req
        except (InvalidRequirement, ManifestError):
            pass
        self.fail(where, value, "a plugin id with an optional specifier, such as 'table-kit>=1'")

    def specifier(self, where: str, value: object) -> SpecifierSet:
        try:
            if isinstance(value, str):
                return SpecifierSet(value)
        except InvalidSpecifier:
            pass
        self.fail(where, value, "a version specifier such as '>=1.0,<2'")

    def url(self, where: str, value: object) -> str:
        if isinstance(value, str) and len(value) <= 2048:
            if RELATIVE_URL.fullmatch(value):
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
        self.fail(
            where,
            value,
            "a path relative to the registry (no '..', no leading '/') or an https/http URL",
        )

    def sha256(self, where: str, value: object) -> str:
        if not isinstance(value, str) or not SHA256.fullmatch(value):
            self.fail(where, value, "64 lower-case hex digits")
        return value
