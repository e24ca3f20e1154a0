"""Capabilities: parse, match and cap them. Pure; no I/O beyond ``expanduser``.

A capability is a kind with an optional scope, written ``kind[:scope]``:

=====================  ==============================================
``fs.read[:glob]``     read files (the glob's scope, or any file)
``fs.write[:glob]``    create, change or delete files
``net[:host[:port]]``  connect and resolve names (``*.example.com`` allowed)
``subprocess``         start processes (``subprocess``, ``os.system``, ...)
``env[:NAME]``         read or change environment variables
``native``             ``ctypes``, C extensions, ``cffi``
``ipython.magics``     register magics
``ipython.events``     subscribe to IPython events
``ipython.namespace``  push names into the user namespace
``display``            display objects and register display formatters
=====================  ==============================================

Path scopes: a scope without glob characters grants that path and everything
below it; ``*`` and ``?`` never cross ``/``; ``**`` crosses any number of
folders. ``~`` is the user's home. Paths are compared after the caller has
resolved them (symlinks and ``..`` followed), so a link inside a granted
folder that points outside it is not granted.

A :class:`Grants` value is immutable: the gate holds it where plugin code
cannot widen it in place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from plugmarket.errors import ManifestError

__all__ = [
    "KINDS",
    "SCOPED_KINDS",
    "Capability",
    "Grants",
    "parse_capabilities",
    "parse_capability",
]

#: Every capability kind plugmarket knows.
KINDS = frozenset(
    {
        "fs.read",
        "fs.write",
        "net",
        "subprocess",
        "env",
        "native",
        "ipython.magics",
        "ipython.events",
        "ipython.namespace",
        "display",
    }
)
#: Kinds that take a scope after a colon.
SCOPED_KINDS = frozenset({"fs.read", "fs.write", "net", "env"})

_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\Z|^\*\Z")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}\Z")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\*?\Z")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Capability:
    """One capability: ``kind`` and an optional ``scope`` (``""`` means unscoped)."""

    kind: str
    scope: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.scope}" if self.scope else self.kind

    def covers(self, other: Capability) -> bool:
        """Whether granting ``self`` also grants everything ``other`` asks for."""
        if self.kind != other.kind:
            return False
        if not self.scope or self.scope == other.scope:
            return True
        if not other.scope:
            return False
        if self.kind in ("fs.read", "fs.write"):
            # A literal path under the grant; or the same glob with a longer prefix.
            return _path_rule(self.scope).matches(_expand(other.scope).rstrip("*/") or "/")
        if self.kind == "net":
            host, port = _split_host_port(other.scope)
            return _net_rule(self.scope).matches(host, port)
        if self.kind == "env":
            return _env_matches(self.scope, other.scope)
        return False


def parse_capability(text: str) -> Capability:
    """Parse ``kind[:scope]`` into a :class:`Capability`.

    Raises:
        ManifestError: the kind is unknown, or the scope is malformed or not
            allowed for that kind.
    """
    if not isinstance(text, str) or not text.strip():
        raise ManifestError(
            f"capability {text!r} is not a non-empty string",
            field="capabilities",
            found=text,
            allowed="kind[:scope], for example 'fs.read:~/data/*' or 'net:api.example.com'",
        )
    text = text.strip()
    kind, sep, scope = text.partition(":")
    if kind not in KINDS:
        raise ManifestError(
            f"unknown capability kind {kind!r} in {text!r}",
            field="capabilities",
            found=text,
            allowed=", ".join(sorted(KINDS)),
        )
    if sep and kind not in SCOPED_KINDS:
        raise ManifestError(
            f"capability {kind!r} takes no scope, found {text!r}",
            field="capabilities",
            found=text,
            allowed=kind,
        )
    if sep and not scope:
        raise ManifestError(
            f"capability {text!r} has an empty scope",
            field="capabilities",
            found=text,
            allowed=f"{kind} or {kind}:<scope>",
        )
    if scope:
        _check_scope(kind, scope, text)
    return Capability(kind, scope)


def parse_capabilities(items: Iterable[str]) -> tuple[Capability, ...]:
    """Parse many capabilities, dropping exact duplicates and keeping order."""
    seen: dict[Capability, None] = {}
    for item in items:
        seen.setdefault(parse_capability(item), None)
    return tuple(seen)


def _check_scope(kind: str, scope: str, text: str) -> None:
    if "\x00" in scope:
        raise ManifestError(
            f"capability {text!r} contains a NUL byte", field="capabilities", found=text
        )
    if kind == "net":
        host, port = _split_host_port(scope)
        if port is not None and not 0 < port < 65536:
            raise ManifestError(
                f"capability {text!r} has a port outside 1-65535",
                field="capabilities",
                found=text,
                allowed="net:host or net:host:port",
            )
        if not (_HOST.match(host) or _IPV4.match(host) or ":" in host):
            raise ManifestError(
                f"capability {text!r} does not name a host",
                field="capabilities",
                found=text,
                allowed="net:host, net:*.domain, net:host:port, net:[::1]:port",
            )
    elif kind == "env" and not _ENV_NAME.match(scope):
        raise ManifestError(
            f"capability {text!r} does not name an environment variable",
            field="capabilities",
            found=text,
            allowed="env:NAME or env:PREFIX*",
        )


def _split_host_port(scope: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port or None)."""
    if scope.startswith("["):
        host, _, rest = scope[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = scope.partition(":")
    if port:
        try:
            return host.lower(), int(port)
        except ValueError:
            return host.lower(), -1
    return host.lower(), None


def _expand(path: str) -> str:
    return os.path.expanduser(path)


def _env_matches(pattern: str, name: str) -> bool:
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


@dataclass(frozen=True, slots=True)
class _PathRule:
    prefix: str  # a literal directory or file: it and everything below it
    pattern: re.Pattern[str] | None  # or a compiled glob

    def matches(self, path: str) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(path) is not None
        return path == self.prefix or path.startswith(
            self.prefix if self.prefix.endswith("/") else self.prefix + "/"
        )


def _glob_to_regex(glob: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            # "dir/**" also matches "dir" itself.
            if out and out[-1] == "/" and i + 2 == len(glob):
                out[-1] = "(?:/.*)?"
            else:
                out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _path_rule(scope: str) -> _PathRule:
    path = _expand(scope)
    if not os.path.isabs(path):
        # Relative scopes are anchored at the current directory when granted.
        path = os.path.join(os.getcwd(), path)
    path = os.path.normpath(path) + ("/" if path.endswith("/") and path != "/" else "")
    if _GLOB_CHARS.intersection(path):
        return _PathRule(prefix="", pattern=_glob_to_regex(path))
    return _PathRule(prefix=path.rstrip("/") or "/", pattern=None)


@dataclass(frozen=True, slots=True)
class _NetRule:
    host: str  # "" = any host; "*.x.org" = x.org and its subdomains
    port: int | None

    def matches(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        if not self.host or self.host == "*":
            return True
        host = host.lower().rstrip(".")
        if self.host.startswith("*."):
            base = self.host[2:]
            return host == base or host.endswith("." + base)
        return host == self.host


def _net_rule(scope: str) -> _NetRule:
    host, port = _split_host_port(scope)
    return _NetRule(host=host, port=port)


class Grants:
    """An immutable set of granted capabilities with fast checks.

    The checks take already-normalised targets: an absolute, resolved path;
    a host name and port; an environment variable name.
    """

    def __init__(self, caps: Iterable[Capability | str] = ()) -> None:
        parsed = (parse_capability(c) if isinstance(c, str) else c for c in caps)
        self.capabilities: tuple[Capability, ...] = tuple(dict.fromkeys(parsed))

    def __iter__(self) -> Iterator[Capability]:
        return iter(self.capabilities)

    def __len__(self) -> int:
        return len(self.capabilities)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grants) and set(self.capabilities) == set(other.capabilities)

    def __hash__(self) -> int:
        return hash(frozenset(self.capabilities))

    def __repr__(self) -> str:
        return f"Grants({[str(c) for c in self.capabilities]!r})"

    def as_strings(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.capabilities)

    @cached_property
    def _kinds(self) -> frozenset[str]:
        return frozenset(c.kind for c in self.capabilities)

    @cached_property
    def _unscoped(self) -> frozenset[str]:
        return frozenset(c.kind for c in self.capabilities if not c.scope)

    @cached_property
    def _paths(self) -> dict[str, tuple[_PathRule, ...]]:
        rules: dict[str, list[_PathRule]] = {"fs.read": [], "fs.write": []}
        for c in self.capabilities:
            if c.kind in rules and c.scope:
                rules[c.kind].append(_path_rule(c.scope))
        # Writing a file implies being able to read it back.
        rules["fs.read"].extend(rules["fs.write"])
        return {k: tuple(v) for k, v in rules.items()}

    @cached_property
    def _nets(self) -> tuple[_NetRule, ...]:
        return tuple(_net_rule(c.scope) for c in self.capabilities if c.kind == "net" and c.scope)

    def has(self, kind: str) -> bool:
        """Whether any capability of ``kind`` is granted (scoped or not)."""
        return kind in self._kinds

    def allows_path(self, kind: str, path: str) -> bool:
        """Whether ``kind`` (``fs.read`` or ``fs.write``) covers an absolute ``path``."""
        if kind in self._unscoped or (kind == "fs.read" and "fs.write" in self._unscoped):
            return True
        return any(rule.matches(path) for rule in self._paths.get(kind, ()))

    def allows_net(self, host: str, port: int | None = None) -> bool:
        """Whether a connection to ``host`` (and ``port``, if known) is granted."""
        if "net" in self._unscoped:
            return True
        return any(rule.matches(host, port) for rule in self._nets)

    def allows_env(self, name: str) -> bool:
        """Whether reading or changing the environment variable ``name`` is granted."""
        if "env" in self._unscoped:
            return True
        return any(
            _env_matches(c.scope, name) for c in self.capabilities if c.kind == "env" and c.scope
        )

    def covers(self, requested: Capability) -> bool:
        """Whether these grants already include everything ``requested`` asks for."""
        return any(c.covers(requested) for c in self.capabilities)

    def missing(self, requested: Iterable[Capability]) -> tuple[Capability, ...]:
        """The requested capabilities these grants do not cover, in order."""
        return tuple(r for r in requested if not self.covers(r))
