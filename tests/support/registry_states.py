"""Registry states in memory, for tests of the format and the trust rules.

:class:`RegistryState` holds plugins and their artifact bytes and renders
``index.json``, ``plugins/<id>.json`` and a signature with the real encoder and
signer, so a test can stage an old state, a newer one, and serve pieces of
each (mix-and-match) without touching the disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from plugmarket._internal import registry_format as fmt
from plugmarket._internal.signing import sign

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def version_info(
    plugin_id: str,
    version: str,
    payload: bytes,
    *,
    channel: str = "stable",
    yanked: bool = False,
    rollout: float | None = None,
) -> fmt.VersionInfo:
    """A version whose artifact pin matches ``payload``."""
    return fmt.VersionInfo(
        version=Version(version),
        requires=(),
        host=SpecifierSet(">=1.0"),
        capabilities=("display",),
        channel=channel,
        rollout=rollout,
        yanked=yanked,
        yanked_reason="broken" if yanked else "",
        published=NOW,
        artifact=fmt.Artifact(
            url=f"artifacts/{plugin_id}/{plugin_id}-{version}.zip",
            sha256=hashlib.sha256(payload).hexdigest(),
            size=len(payload),
        ),
        summary=f"{plugin_id} {version}",
    )


def detail(plugin_id: str, *versions: fmt.VersionInfo) -> fmt.PluginDetail:
    return fmt.PluginDetail(
        id=plugin_id,
        name=plugin_id.title(),
        summary=f"The {plugin_id} plugin",
        description="",
        authors=("Ada",),
        license="MIT",
        homepage="",
        categories=("data",),
        tags=("csv",),
        versions=versions,
    )


@dataclass
class RegistryState:
    """One state of a registry: its version, expiry and plugin details."""

    version: int = 1
    expires: datetime = NOW + timedelta(days=30)
    details: dict[str, fmt.PluginDetail] = field(default_factory=dict)

    def detail_bytes(self, plugin_id: str) -> bytes:
        return fmt.encode_detail(self.details[plugin_id])

    def index(self) -> fmt.Index:
        plugins = {}
        for pid, d in sorted(self.details.items()):
            data = self.detail_bytes(pid)
            latest = {ch: str(v.version) for ch in d.channels() if (v := d.latest(ch))}
            plugins[pid] = fmt.IndexEntry(
                id=pid,
                name=d.name,
                summary=d.summary,
                latest=MappingProxyType(latest),
                categories=d.categories,
                tags=d.tags,
                rating=4.5,
                ratings_count=2,
                downloads=10,
                capabilities=("display",),
                updated=NOW,
                detail=fmt.Artifact(
                    fmt.detail_path(pid), hashlib.sha256(data).hexdigest(), len(data)
                ),
            )
        return fmt.Index(
            format=fmt.FORMAT,
            version=self.version,
            expires=self.expires,
            generated=NOW,
            plugins=MappingProxyType(plugins),
        )

    def index_bytes(self) -> bytes:
        return fmt.encode_index(self.index())

    def signature(self, key: Ed25519PrivateKey) -> bytes:
        return sign(self.index_bytes(), key)

    def next(self, **changes: object) -> RegistryState:
        """A copy with the version bumped (and ``changes`` applied)."""
        new = replace(self, version=self.version + 1, details=dict(self.details))
        return replace(new, **changes)  # type: ignore[arg-type]
