"""Where a configured registry lives, and which URLs its files may be fetched from.

A registry is configured as an https/http URL, a ``file://`` URL or a plain
folder path; :class:`Source` normalises it once (a trailing ``index.json`` is
dropped, a URL gets its trailing ``/``, a folder is resolved) and names its
cache folder after the normalised location.

The rules for the URLs a registry's files point to (the format already allows
only paths under the registry's base or absolute https/http URLs):

- a detail file must be on the registry itself: under the folder, or on the
  registry's origin;
- an artifact must be under the folder, on the registry's origin, or on an
  origin listed in ``allowed_origins``. Anything else is refused before a
  byte is requested, and a redirect may only lead to those same origins.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from plugmarket._internal.fetch import origin_of
from plugmarket._internal.http_cache import DiskCache, cache_folder
from plugmarket._internal.registry_format import INDEX_FILE, SIGNATURE_FILE
from plugmarket.errors import RegistryError
from plugmarket.settings import RegistryConfig, shown_url

__all__ = ["Source", "resolve_artifact", "resolve_detail"]


@dataclass(frozen=True)
class Source:
    """One configured registry, normalised.

    Attributes:
        config: The registry as configured.
        key: The normalised location (base URL without credentials, or absolute
            folder path): what the cache and the trusted version are kept under.
        local: True for a folder (or ``file://``) registry, read without a network.
        base: The base URL ending in ``/``, or the folder's path.
        origin: ``scheme://host[:port]`` of a remote registry; ``""`` for a folder.
        cache: The registry's disk cache.
    """

    config: RegistryConfig
    key: str
    local: bool
    base: str
    origin: str
    cache: DiskCache

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def index_url(self) -> str:
        return self._join(INDEX_FILE)

    @property
    def signature_url(self) -> str:
        return self._join(SIGNATURE_FILE)

    def _join(self, name: str) -> str:
        return str(Path(self.base) / name) if self.local else self.base + name

    @classmethod
    def from_config(cls, config: RegistryConfig, home: Path) -> Source:
        """Normalise ``config.url``.

        Raises:
            RegistryError: the URL's scheme is not https, http or file, or it has no host.
        """
        url = config.url.strip()
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018  (read now: a bad one raises)
        except ValueError:
            raise _bad_location(
                config,
                "it cannot be read as a URL (a user name or password holding / ? # @ or : "
                "must be percent-encoded)",
            ) from None
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.hostname:
                raise _bad_location(config, "it has no host name")
            path = parts.path or "/"
            if path.endswith("/" + INDEX_FILE):
                path = path[: -len(INDEX_FILE)]
            if not path.endswith("/"):
                path += "/"
            base = urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))
            key = shown_url(base)  # the cache and the trusted version outlive a new token
            return cls(config, key, False, base, origin_of(base), _cache(home, key))
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise _bad_location(config, "a file URL must not name a host")
            folder = Path(urllib.request.url2pathname(parts.path))
        elif len(scheme) > 1:
            raise _bad_location(config, f"the scheme {scheme!r} is not supported")
        else:
            folder = Path(url).expanduser()
        folder = folder.resolve()
        if folder.name == INDEX_FILE:
            folder = folder.parent
        key = str(folder)
        return cls(config, key, True, key, "", _cache(home, key))


def _cache(home: Path, key: str) -> DiskCache:
    return DiskCache(cache_folder(home, key))


def _bad_location(config: RegistryConfig, why: str) -> RegistryError:
    return RegistryError(
        f"registry {config.label!r}: cannot use {shown_url(config.url)!r}: {why}",
        registry=config.label,
        hint="Use an https URL, an http URL, a file:// URL or a folder path.",
    )


def _inside(source: Source, ref: str, what: str) -> str:
    """The path of ``ref`` under a folder registry, refused if it leads outside."""
    root = Path(source.base)
    path = (root / ref).resolve()
    if not path.is_relative_to(root):
        raise RegistryError(
            f"registry {source.label!r}: the {what} {ref!r} leads outside the registry "
            f"folder ({path})",
            registry=source.label,
            file=ref,
            hint="Tell the registry's maintainer; files must stay inside the registry.",
        )
    return str(path)


def resolve_detail(source: Source, ref: str) -> str:
    """The URL (or path) of a detail file the index points to.

    Raises:
        RegistryError: it is not on the registry itself.
    """
    absolute = urllib.parse.urlsplit(ref).scheme in ("http", "https")
    if source.local and not absolute:
        return _inside(source, ref, "detail file")
    url = urllib.parse.urljoin(source.base, ref)
    if source.local or origin_of(url) != source.origin:
        raise RegistryError(
            f"registry {source.label!r}: the detail file {ref!r} is not on the registry "
            f"({source.key})",
            registry=source.label,
            file=ref,
            hint="Tell the registry's maintainer; detail files must be served by the registry.",
        )
    return url


def resolve_artifact(
    source: Source, ref: str, allowed_origins: tuple[str, ...]
) -> tuple[str, tuple[str, ...]]:
    """The URL (or path) of an artifact, and the origins its download may touch.

    Raises:
        RegistryError: the URL is on an origin that is neither the registry's
            nor in ``allowed_origins``.
    """
    absolute = urllib.parse.urlsplit(ref).scheme in ("http", "https")
    if source.local and not absolute:
        return _inside(source, ref, "artifact"), ()
    url = urllib.parse.urljoin(source.base, ref)
    permitted = tuple(
        dict.fromkeys(
            ([source.origin] if source.origin else []) + [origin_of(a) for a in allowed_origins]
        )
    )
    if origin_of(url) not in permitted:
        raise RegistryError(
            f"registry {source.label!r}: the artifact URL {shown_url(url)} is on the origin "
            f"{origin_of(url)}, which is neither the registry's nor in allowed_origins "
            f"({', '.join(permitted) or 'none'})",
            registry=source.label,
            file=ref,
            hint="Ask an admin to add the origin to allowed_origins if it is trusted.",
        )
    return url, permitted
