"""The installed set: what one generation holds, and its JSON form on disk.

A :class:`Generation` is immutable and numbered; install, update, uninstall
and rollback build the next one and switch to it atomically (installer.py).
Each :class:`InstalledPlugin` pins its artifact by sha256 (the store keeps
the unpacked files under that hash) and records the capabilities the user
granted, so a generation alone is enough to load the set again, verify it,
or write a lockfile.

Decoding is strict and happens once, here: a generation file that does not
decode is a :class:`~plugmarket.errors.InstallError`, never a half-read dict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from plugmarket.errors import InstallError

__all__ = [
    "FORMAT",
    "LOCAL",
    "Generation",
    "InstalledPlugin",
    "decode_generation",
    "encode_generation",
    "requirement_id",
]

FORMAT = 1
#: The registry label of a plugin defined in code (``%%plugin define``): no registry
#: carries it, so resolution never replaces it with a registry's plugin of that id.
LOCAL = "local"


@dataclass(frozen=True)
class InstalledPlugin:
    """One plugin in a generation.

    Attributes:
        id: The plugin id.
        version: Its version (PEP 440 text).
        sha256: The artifact's sha256; the store keeps its files under it.
        top: The top-level module or package name inside the stored files.
        grants: The capabilities the user granted it.
        requested: The capabilities its manifest requests.
        requires: Its requirements on other plugins (PEP 508 text).
        enabled: Whether kernels load it (disabled: installed, not loaded).
        explicit: Whether the user asked for it (else it came as a dependency).
        registry: The registry it came from ("" for a local source).
        origin: Where its artifact came from (a URL or path), for the record.
    """

    id: str
    version: str
    sha256: str
    top: str
    grants: tuple[str, ...] = ()
    requested: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    enabled: bool = True
    explicit: bool = True
    registry: str = ""
    origin: str = ""

    def replace(self, **changes: Any) -> InstalledPlugin:
        return replace(self, **changes)


@dataclass(frozen=True)
class Generation:
    """A numbered, immutable installed set."""

    number: int
    plugins: Mapping[str, InstalledPlugin] = field(default_factory=dict)
    parent: int | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "plugins", MappingProxyType(dict(self.plugins)))

    def successor(
        self, plugins: Mapping[str, InstalledPlugin], reason: str, *, number: int | None = None
    ) -> Generation:
        """The generation after this one, holding ``plugins``."""
        return Generation(
            number=self.number + 1 if number is None else number,
            plugins=plugins,
            parent=self.number,
            reason=reason,
        )

    def dependents(self, plugin_id: str) -> tuple[str, ...]:
        """Installed plugins that require ``plugin_id``, sorted."""
        return tuple(
            sorted(
                other.id
                for other in self.plugins.values()
                if plugin_id in {requirement_id(r) for r in other.requires}
            )
        )


def requirement_id(requirement: str) -> str:
    """The plugin id a requirement names (``"Table_Kit>=1"`` -> ``"table-kit"``)."""
    from packaging.requirements import Requirement

    from plugmarket.manifest import normalize_id

    return normalize_id(Requirement(requirement).name)


def encode_generation(generation: Generation) -> bytes:
    """Canonical JSON bytes for a generation (sorted keys, one trailing newline)."""
    data = {
        "format": FORMAT,
        "number": generation.number,
        "parent": generation.parent,
        "created": generation.created.astimezone(UTC).isoformat(),
        "reason": generation.reason,
        "plugins": {
            pid: {
                "version": p.version,
                "sha256": p.sha256,
                "top": p.top,
                "grants": list(p.grants),
                "requested": list(p.requested),
                "requires": list(p.requires),
                "enabled": p.enabled,
                "explicit": p.explicit,
                "registry": p.registry,
                "origin": p.origin,
            }
            for pid, p in sorted(generation.plugins.items())
        },
    }
    return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode()


def decode_generation(data: bytes, *, path: str = "") -> Generation:
    """Decode a generation file.

    Raises:
        InstallError: the bytes are not a generation this plugmarket wrote.
    """
    try:
        obj = json.loads(data)
        if obj.get("format") != FORMAT:
            raise ValueError(f"unknown format {obj.get('format')!r}")
        plugins = {
            pid: InstalledPlugin(
                id=_text(pid),
                version=_text(p["version"]),
                sha256=_text(p["sha256"]),
                top=_text(p["top"]),
                grants=_texts(p["grants"]),
                requested=_texts(p["requested"]),
                requires=_texts(p["requires"]),
                enabled=_flag(p["enabled"]),
                explicit=_flag(p["explicit"]),
                registry=_text(p["registry"]),
                origin=_text(p["origin"]),
            )
            for pid, p in obj["plugins"].items()
        }
        number = obj["number"]
        parent = obj["parent"]
        if type(number) is not int or not (parent is None or type(parent) is int):
            raise ValueError("number and parent must be whole numbers")
        return Generation(
            number=number,
            plugins=plugins,
            parent=parent,
            created=datetime.fromisoformat(_text(obj["created"])),
            reason=_text(obj["reason"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InstallError(
            f"{path or 'a generation file'} is damaged: {exc}",
            step="read generation",
            hint="Run `plugmarket check` to repair the home, or roll back.",
        ) from exc


def _text(value: object) -> str:
    if type(value) is not str:
        raise ValueError(f"expected text, found {type(value).__name__}")
    return value


def _texts(value: object) -> tuple[str, ...]:
    if type(value) is not list:
        raise ValueError(f"expected a list, found {type(value).__name__}")
    return tuple(_text(v) for v in value)


def _flag(value: object) -> bool:
    if type(value) is not bool:
        raise ValueError(f"expected true or false, found {value!r}")
    return value
