"""The settings the core takes: one frozen value, built once at the edge.

Core modules take a :class:`Settings` and never import traitlets or IPython.
The traitlets ``Configurable`` (``c.Plugmarket.cache_ttl = 600``) and the
environment variables are converted into this value by :func:`from_env` and
the configuration layer; safe caps are on by default.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from plugmarket.errors import PlugmarketError

__all__ = [
    "RegistryConfig",
    "Settings",
    "current_file",
    "default_home",
    "demo_registry_path",
    "from_env",
    "shown_url",
]

KiB = 1024
MiB = 1024 * KiB


def default_home() -> Path:
    """``PLUGMARKET_HOME``, else the platform's user data folder for plugmarket."""
    env = os.environ.get("PLUGMARKET_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("plugmarket", appauthor=False))


def current_file(home: Path) -> Path:
    """The file naming a home's current generation; absent until the first install.

    Its ``stat`` is how every kernel notices that the installed set changed.
    """
    return home / "current"


def shown_url(url: str) -> str:
    """``url`` without the user name and password it may carry
    (``https://user:token@host/r/`` -> ``https://host/r/``): what messages, records
    and cache keys name, so a registry's token is sent to its server and nowhere else."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (a user or password holding a raw "/" reads as a bad port)
    except ValueError:  # not readable as a URL: show nothing of what may be a secret
        return f"{url.partition('://')[0]}://(a URL that cannot be read)"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def demo_registry_path() -> Path:
    """The signed demo registry that ships inside the package."""
    return Path(__file__).parent / "demo_registry"


@dataclass(frozen=True)
class RegistryConfig:
    """One configured registry.

    Attributes:
        url: An https/http/file URL or a plain folder path.
        name: A short name for messages and ``details`` (defaults to the URL,
            without any credentials in it).
        trusted_keys: Ed25519 public keys (base64, or paths to ``.pub`` files)
            whose signature on ``index.json`` is accepted. With keys, a
            signature is always required.
        priority: Higher wins when two registries carry the same plugin id.
    """

    url: str
    name: str = ""
    trusted_keys: tuple[str, ...] = ()
    priority: int = 0

    def __repr__(self) -> str:  # without the credentials the URL may carry
        return (
            f"RegistryConfig(url={shown_url(self.url)!r}, name={self.name!r}, "
            f"trusted_keys={self.trusted_keys!r}, priority={self.priority!r})"
        )

    @property
    def label(self) -> str:
        return self.name or shown_url(self.url)

    def shown(self) -> RegistryConfig:
        """This registry with its URL as :func:`shown_url` gives it (for display)."""
        return replace(self, url=shown_url(self.url))


def _demo_registry() -> RegistryConfig:
    path = demo_registry_path()
    return RegistryConfig(
        url=str(path), name="demo", trusted_keys=(str(path / "demo.pub"),), priority=0
    )


@dataclass(frozen=True)
class Settings:
    """Everything the core needs to know about the user's configuration."""

    home: Path = field(default_factory=default_home)
    enabled: bool = True
    registries: tuple[RegistryConfig, ...] = field(default_factory=lambda: (_demo_registry(),))
    cache_ttl: float = 300.0  # seconds metadata is fresh without asking the server
    require_signature: bool = False  # refuse unsigned indexes even without pinned keys
    # "https://host[:port]" origins downloads may come from, besides a registry's own;
    # empty: a registry's own origin only (and, for a plain URL source, its own).
    allowed_origins: tuple[str, ...] = ()
    offline: bool = False
    http_timeout: float = 10.0  # seconds per connect/read
    download_deadline: float = 120.0  # seconds for a whole download, however it trickles
    max_plugin_size: int = 50 * MiB  # bytes of one downloaded artifact
    max_unpacked_size: int = 200 * MiB  # bytes of one archive once unpacked
    max_archive_entries: int = 10_000
    max_metadata_size: int = 64 * MiB  # bytes of one index or detail file
    capability_cap: tuple[str, ...] | None = None  # the most any plugin may be granted
    auto_update: bool = False
    channel: str = "stable"
    isolation: str = "inprocess"  # or "process"
    activation_timeout: float = 5.0  # seconds activate() may take
    user_id: str = ""  # for rollout buckets; defaults to a stable per-home id

    def replace(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def shown(self) -> Settings:
        """These settings as shown to a user (``config``): registry URLs without
        the credentials they may carry."""
        return replace(self, registries=tuple(r.shown() for r in self.registries))


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def from_env(
    environ: Mapping[str, str] | None = None,
    *,
    home: Path | str | None = None,
    registry: str | None = None,
    base: Settings | None = None,
) -> Settings:
    """Apply ``PLUGMARKET_*`` environment variables (and explicit arguments) to ``base``.

    ``registry`` and ``PLUGMARKET_REGISTRY`` replace the configured registries
    with one, trusted with ``PLUGMARKET_TRUSTED_KEYS`` (comma-separated key
    files or base64 keys).
    """
    env = os.environ if environ is None else environ
    settings = base or Settings()
    changes: dict[str, object] = {}
    if home is not None:
        changes["home"] = Path(home).expanduser()
    elif env.get("PLUGMARKET_HOME"):
        changes["home"] = Path(env["PLUGMARKET_HOME"]).expanduser()
    url = registry or env.get("PLUGMARKET_REGISTRY")
    if url:
        keys = tuple(
            k.strip() for k in env.get("PLUGMARKET_TRUSTED_KEYS", "").split(",") if k.strip()
        )
        changes["registries"] = (RegistryConfig(url=url, trusted_keys=keys),)
    if "PLUGMARKET_REQUIRE_SIGNATURE" in env:
        changes["require_signature"] = _flag(env["PLUGMARKET_REQUIRE_SIGNATURE"])
    if "PLUGMARKET_OFFLINE" in env:
        changes["offline"] = _flag(env["PLUGMARKET_OFFLINE"])
    if env.get("PLUGMARKET_CACHE_TTL"):
        try:
            changes["cache_ttl"] = float(env["PLUGMARKET_CACHE_TTL"])
        except ValueError:
            raise PlugmarketError(
                f"PLUGMARKET_CACHE_TTL is {env['PLUGMARKET_CACHE_TTL']!r}, not a number of seconds",
                hint="Set it to a number such as 600, or unset it.",
            ) from None
    return replace(settings, **changes) if changes else settings  # type: ignore[arg-type]
