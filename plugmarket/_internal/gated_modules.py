"""The modules a plugin sees in place of a few real ones: front doors checked.

``Guard._shield`` hands these out from the plugin's own ``__import__``:
``os``/``posix`` (environment reads, ``dir_fd`` opens, special files),
``os.path.expandvars``, ``importlib.import_module`` (through the plugin's
gate), ``sqlite3`` (no ATTACH), and IPython's ``get_ipython`` (refused: the
shell is never lent). Every other attribute is the real module's. These are
front doors only: a plugin that walks the object graph reaches the real
modules (docs/threat-model.md).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import types
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from plugmarket._internal.policy import Need, decide, describe, normalize_path

if TYPE_CHECKING:
    from plugmarket._internal.gate import Guard

__all__ = ["SHELL_DOORS", "GatedImportlib", "GatedOs", "GatedSqlite", "Shielded"]


class _GatedEnviron(MutableMapping[str, str]):
    """``os.environ`` as a plugin without an unscoped ``env`` grant sees it."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    def check(self, name: str | bytes, operation: str) -> None:
        name = os.fsdecode(name)  # posix.environ has bytes keys
        if not self._guard.grants.allows_env(name):
            raise self._guard.deny(f"env:{name}", operation, name)

    def __getitem__(self, name: str) -> str:
        self.check(name, "read an environment variable")
        return os.environ[name]

    def __setitem__(self, name: str, value: str) -> None:
        self.check(name, "set an environment variable")
        os.environ[name] = value

    def __delitem__(self, name: str) -> None:
        self.check(name, "unset an environment variable")
        del os.environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter([n for n in os.environ if self._guard.grants.allows_env(n)])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


class GatedOs(types.ModuleType):
    """``os`` (or ``posix``) as a plugin without an unscoped ``env`` grant sees it:
    environment reads, ``dir_fd`` opens and special files are checked here."""

    def __init__(self, guard: Guard, base: types.ModuleType) -> None:
        super().__init__(base.__name__, base.__doc__)
        environ = _GatedEnviron(guard)
        self.__dict__.update(_guard=guard, _base=base, environ=environ)
        self.__dict__["path"] = _GatedPath(guard, environ)

    def __getattr__(self, name: str) -> Any:
        guard: Guard = self.__dict__["_guard"]
        environ: _GatedEnviron = self.__dict__["environ"]
        if name == "getenv":

            def getenv(key: str, default: str | None = None) -> str | None:
                return environ.get(key, default)

            return getenv
        if name in ("environb", "getenvb"):
            raise guard.deny("env", f"os.{name}")
        if name == "open":
            return functools.partial(_open_at, guard, self.__dict__["_base"].open)
        if name in ("mkfifo", "mknod"):
            return functools.partial(_make_special, guard, name, getattr(os, name))
        return getattr(self.__dict__["_base"], name)


def _open_at(
    guard: Guard,
    real_open: Any,
    path: Any,
    flags: int,
    mode: int = 0o777,
    *,
    dir_fd: int | None = None,
) -> int:
    """``os.open``: a path relative to ``dir_fd`` is checked, and opened, as absolute."""
    if dir_fd is None:
        return int(real_open(path, flags, mode))
    need = decide("open", (path, None, flags), dir_fd)
    if need is not None:
        guard.check(need)
    resolved = normalize_path(path, dir_fd)
    if not resolved:
        return int(real_open(path, flags, mode, dir_fd=dir_fd))
    return int(real_open(resolved, flags, mode))


def _make_special(
    guard: Guard, name: str, real: Any, path: Any, *args: Any, dir_fd: int | None = None
) -> None:
    """``os.mkfifo``/``os.mknod``, which raise no audit event: they create files."""
    target = normalize_path(path, dir_fd)
    guard.check(Need("fs.write", target if target else describe(path), f"os.{name}"))
    real(path, *args, dir_fd=dir_fd)


class _GatedPath(types.ModuleType):
    """``os.path`` as a plugin sees it: ``expandvars`` reads through the gated environment."""

    def __init__(self, guard: Guard, environ: _GatedEnviron) -> None:
        super().__init__(os.path.__name__, os.path.__doc__)
        self.__dict__.update(_guard=guard, _environ=environ)

    def __getattr__(self, name: str) -> Any:
        if name == "expandvars":
            return self._expandvars
        return getattr(os.path, name)

    def _expandvars(self, path: Any) -> Any:
        text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
        environ: _GatedEnviron = self.__dict__["_environ"]
        for match in _ENV_REFERENCE.finditer(text):
            name = match.group(1) or match.group(2)
            environ.check(name, "read an environment variable")
        return os.path.expandvars(path)


_ENV_REFERENCE = re.compile(r"\$(?:(\w+)|\{([^}]*)\})")

# Modules whose named attributes would hand a plugin the real IPython shell.
SHELL_DOORS: dict[str, frozenset[str]] = {
    "IPython": frozenset({"get_ipython"}),
    "IPython.core.getipython": frozenset({"get_ipython"}),
}


class Shielded(types.ModuleType):
    """A module with a few attributes refused (the shell's front doors)."""

    def __init__(self, guard: Guard, base: types.ModuleType, hidden: frozenset[str]) -> None:
        super().__init__(base.__name__, base.__doc__)
        self.__dict__.update(_guard=guard, _base=base, _hidden=hidden)

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__["_hidden"]:
            raise self.__dict__["_guard"].deny(
                "", f"{self.__name__}.{name}", "the IPython shell is not lent to plugins"
            )
        return getattr(self.__dict__["_base"], name)


class GatedImportlib(types.ModuleType):
    """``importlib`` as a plugin sees it: ``import_module`` goes through its gate."""

    def __init__(self, guard: Guard) -> None:
        super().__init__("importlib", importlib.__doc__)
        self.__dict__.update(_guard=guard, import_module=guard.import_module)

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib, name)


class GatedSqlite(types.ModuleType):
    """``sqlite3`` as a plugin sees it: its connections cannot ATTACH other files,
    which SQLite would open in C, unseen by the gate (the plugin could raise the
    limit again itself: guard-rails)."""

    def __init__(self, base: types.ModuleType) -> None:
        super().__init__(base.__name__, base.__doc__)
        self.__dict__["_base"] = base

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_base"], name)

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        base = self.__dict__["_base"]
        connection = base.connect(*args, **kwargs)
        connection.setlimit(base.SQLITE_LIMIT_ATTACHED, 0)
        return connection
