"""Real registries on disk for the registry client's tests, built with the publisher's tools.

:func:`make_registry` creates a key pair and publishes a few small plugins
with :func:`plugmarket.publish.publish`; the returned :class:`TestRegistry`
publishes more, keeps copies of earlier states, and re-signs or rewrites
files to stage attacks (rollback, freeze, mix-and-match, tampering, a bad
signature, a crafted index). :class:`Clock` is the client's settable clock:
tests move it instead of sleeping.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from plugmarket._internal import registry_format as fmt
from plugmarket._internal.signing import generate_keypair, load_private_key, sign
from plugmarket.publish import PublishResult, publish, sign_index, yank
from plugmarket.registry import RegistryClient
from plugmarket.settings import RegistryConfig, Settings

T0 = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)  # when the test registries are published


class Clock:
    """A settable clock for ``RegistryClient(now=...)``."""

    def __init__(self, start: datetime = T0 + timedelta(minutes=1)) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclass
class TestRegistry:
    """A signed registry folder and the means to change it."""

    root: Path
    key: Path
    pub: Path
    work: Path
    now: datetime = T0
    published: list[PublishResult] = field(default_factory=list)

    __test__ = False  # not a pytest test class

    def publish(
        self,
        plugin_id: str,
        version: str,
        *,
        summary: str = "",
        tags: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
        requires: tuple[str, ...] = (),
        capabilities: tuple[str, ...] = ("display",),
        channel: str = "stable",
        expires_in: timedelta = timedelta(days=30),
        key: Path | None = None,
    ) -> PublishResult:
        """Write a single-file plugin and publish it (one second after the last publish)."""
        manifest = {
            "id": plugin_id,
            "version": version,
            "name": plugin_id.replace("-", " ").title(),
            "summary": summary or f"The {plugin_id} plugin",
            "tags": list(tags),
            "categories": list(categories),
            "requires": list(requires),
            "capabilities": list(capabilities),
        }
        folder = self.work / f"{plugin_id}-{version}"
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / f"{plugin_id.replace('-', '_')}.py"
        source.write_text(
            f"__plugin__ = {manifest!r}\n\n\ndef activate(ctx):\n    return {version!r}\n"
        )
        self.now += timedelta(seconds=1)
        result = publish(
            source,
            self.root,
            key=key or self.key,
            channel=channel,
            now=self.now,
            expires_in=expires_in,
        )
        self.published.append(result)
        return result

    def yank(self, plugin_id: str, version: str, reason: str = "broken") -> PublishResult:
        self.now += timedelta(seconds=1)
        return yank(self.root, plugin_id, version, reason, key=self.key, now=self.now)

    def renew(self, expires_in: timedelta = timedelta(days=30)) -> PublishResult:
        """Re-sign with a new version and expiry (the registry's scheduled job)."""
        self.now += timedelta(seconds=1)
        return sign_index(self.root, self.key, expires_in=expires_in, now=self.now)

    # --- states and attacks ------------------------------------------------------

    def files(self) -> dict[str, bytes]:
        """Every file of the registry (path relative to the root -> bytes)."""
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }

    def restore(self, files: dict[str, bytes]) -> None:
        """Put earlier files back (a server or mirror replaying an old state)."""
        for rel, data in files.items():
            (self.root / rel).write_bytes(data)

    def index(self) -> fmt.Index:
        return fmt.decode_index((self.root / fmt.INDEX_FILE).read_bytes(), registry="test")

    def write_index(self, index_bytes: bytes, *, key: Path | None = None) -> None:
        """Replace ``index.json`` with ``index_bytes``, signed by ``key`` (default: ours)."""
        private = load_private_key(key or self.key)
        (self.root / fmt.SIGNATURE_FILE).write_bytes(sign(index_bytes, private))
        (self.root / fmt.INDEX_FILE).write_bytes(index_bytes)

    def write_raw_index(self, data: dict[str, object], *, key: Path | None = None) -> None:
        """A hand-made index (fields the encoder would never write), signed."""
        self.write_index(fmt.canonical_json(data), key=key)

    def rewrite(
        self,
        entries: Callable[[fmt.IndexEntry], fmt.IndexEntry] = lambda e: e,
        *,
        expires: datetime | None = None,
    ) -> fmt.Index:
        """Rewrite every index entry with ``entries``, bump the version, sign with our key."""
        old = self.index()
        self.now += timedelta(seconds=1)
        new = replace(
            old,
            version=old.version + 1,
            generated=self.now,
            expires=expires or self.now + timedelta(days=30),
            plugins=MappingProxyType({pid: entries(e) for pid, e in old.plugins.items()}),
        )
        self.write_index(fmt.encode_index(new))
        return new

    def rewrite_detail(
        self, plugin_id: str, change: Callable[[fmt.PluginDetail], fmt.PluginDetail]
    ) -> None:
        """Change a detail file, pin the new bytes in a new signed index version."""
        path = self.detail_path(plugin_id)
        detail = fmt.decode_detail(path.read_bytes(), registry="test", plugin_id=plugin_id)
        data = fmt.encode_detail(change(detail))
        path.write_bytes(data)
        pin = fmt.Artifact(url=fmt.detail_path(plugin_id), sha256=sha256(data), size=len(data))
        self.rewrite(lambda e: replace(e, detail=pin) if e.id == plugin_id else e)

    def index_json(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((self.root / fmt.INDEX_FILE).read_bytes())
        return loaded

    def artifact_path(self, plugin_id: str, version: str) -> Path:
        return self.root / "artifacts" / plugin_id / f"{plugin_id}-{version}.zip"

    def detail_path(self, plugin_id: str) -> Path:
        return self.root / fmt.detail_path(plugin_id)

    def new_key(self, name: str) -> tuple[Path, Path]:
        """A second key pair (for staging a signature by an untrusted key)."""
        return generate_keypair(self.work / name)

    # --- client settings ------------------------------------------------------------

    def config(
        self, url: str | None = None, *, name: str = "test", priority: int = 0
    ) -> RegistryConfig:
        return RegistryConfig(
            url=url or str(self.root), name=name, trusted_keys=(str(self.pub),), priority=priority
        )

    def settings(self, home: Path, url: str | None = None, **changes: object) -> Settings:
        """Settings for one client of this registry (served at ``url``, or the folder)."""
        return Settings(home=home, registries=(self.config(url),)).replace(**changes)


def make_registry(base: Path, name: str = "registry") -> TestRegistry:
    """A signed registry with four plugins, five versions, two channels and a dependency.

    - ``csv-tools`` 1.0.0 and 1.1.0 (stable), 2.0.0b1 (beta)
    - ``table-lib`` 0.3.0, required by ``sql-magic`` 1.0.0
    - ``cell-timer`` 0.1.0
    """
    root = base / name
    work = base / f"{name}-work"
    work.mkdir(parents=True)
    key, pub = generate_keypair(work / "registry")
    reg = TestRegistry(root=root, key=key, pub=pub, work=work)
    reg.publish("csv-tools", "1.0.0", summary="Preview CSV files as tables", tags=("csv", "table"))
    reg.publish(
        "csv-tools",
        "1.1.0",
        summary="Preview CSV files as tables",
        tags=("csv", "table"),
        categories=("data",),
    )
    reg.publish(
        "csv-tools",
        "2.0.0b1",
        summary="Preview CSV files as tables",
        tags=("csv", "table"),
        categories=("data",),
        channel="beta",
    )
    reg.publish("table-lib", "0.3.0", summary="Render rows as HTML tables", tags=("table",))
    reg.publish(
        "sql-magic",
        "1.0.0",
        summary="Run SQLite queries in a cell magic",
        tags=("sql", "sqlite"),
        categories=("data",),
        requires=("table-lib>=0.3",),
        capabilities=("display", "ipython.magics"),
    )
    reg.publish(
        "cell-timer",
        "0.1.0",
        summary="Time every cell with IPython events",
        tags=("timer",),
        capabilities=("ipython.events",),
    )
    return reg


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Clients:
    """Makes registry clients for one test and closes them (and their sockets) afterwards."""

    def __init__(self) -> None:
        self.made: list[RegistryClient] = []

    def __call__(
        self, settings: Settings, now: Callable[[], datetime] | None = None
    ) -> RegistryClient:
        client = RegistryClient(settings, now=now or Clock())
        self.made.append(client)
        return client

    def close(self) -> None:
        for client in self.made:
            client.close()
