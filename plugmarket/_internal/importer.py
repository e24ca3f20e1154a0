"""Isolated namespaces: each loaded plugin's modules live under
``plugmarket.plugins.<name>`` and are found by one meta-path finder.

Invariants:

- A plugin's modules are only ever in ``sys.modules`` under its namespace;
  nothing lands in the user's top-level names. Its own top-level name (and
  its declared dependencies' names) reach its namespace through the
  plugin's gated ``__import__`` (see gate.py), not through ``sys.path``.
- Every module of a plugin is executed with that plugin's gated builtins,
  and its code is compiled with the source's real path as file name, which
  the plugin's guard claims for attribution.
- Compiled code is cached twice: in memory by (path, mtime, size), and on
  disk content-addressed by the source's sha256 and the interpreter's magic
  number, so neither a second load in the process nor a new process
  recompiles. ``.pyc`` files shipped beside the sources are never used.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import marshal
import os
import sys
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugmarket._internal.gate import Guard, host_io

__all__ = ["PREFIX", "PluginSpace", "claim_namespace", "release_namespace"]

PREFIX = "plugmarket.plugins."
_MAGIC = importlib.util.MAGIC_NUMBER

# (path, mtime_ns, size) -> code, shared by every load in this process
_code_memo: dict[tuple[str, int, int], types.CodeType] = {}
_lock = threading.Lock()


@dataclass(eq=False)
class PluginSpace:
    """One loaded plugin's namespace: where its code is and who it belongs to."""

    namespace: str
    root: Path  # the folder holding ``top``
    top: str  # root/<top>.py or root/<top>/__init__.py
    guard: Guard
    bytecode_dir: Path | None = None
    builtins: dict[str, Any] = field(default_factory=dict)
    is_package: bool = False
    base: str = ""  # root/<top> as a string, for fast lookups
    modules: set[str] = field(default_factory=set)  # every module created in the space

    def __post_init__(self) -> None:
        self.base = os.path.join(self.root, self.top)
        self.is_package = os.path.isfile(os.path.join(self.base, "__init__.py"))

    def module_names(self) -> list[str]:
        """The space's modules now in ``sys.modules`` (all created through its loader)."""
        return [n for n in self.modules if n in sys.modules]


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``plugmarket.plugins.<name>[.sub...]`` in the registered spaces."""

    def __init__(self) -> None:
        self.spaces: dict[str, PluginSpace] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PREFIX):
            return None
        leaf, _, rest = fullname[len(PREFIX) :].partition(".")
        space = self.spaces.get(PREFIX + leaf)
        if space is None:
            return None
        if not space.is_package:
            # A single-file plugin has no submodules.
            return None if rest else self._spec(fullname, space.base + ".py", space)
        candidate = os.path.join(space.base, *rest.split(".")) if rest else space.base
        init = os.path.join(candidate, "__init__.py")
        if os.path.isfile(init):
            return self._spec(fullname, init, space, package=candidate)
        if rest and os.path.isfile(candidate + ".py"):
            return self._spec(fullname, candidate + ".py", space)
        return None

    @staticmethod
    def _spec(
        fullname: str, file: str, space: PluginSpace, package: str | None = None
    ) -> importlib.machinery.ModuleSpec:
        spec = _Spec(
            fullname, _Loader(fullname, file, space), origin=file, is_package=package is not None
        )
        if package is not None:
            spec.submodule_search_locations = [package]
        spec.has_location = True
        return spec


class _Spec(importlib.machinery.ModuleSpec):
    """A plugin module's spec. Its compiled code lives in plugmarket's content-addressed
    cache, not in a ``__pycache__`` beside the source, so ``__cached__`` is None
    (which also spares the import system computing a path nobody uses)."""

    @property
    def cached(self) -> None:
        return None

    @cached.setter
    def cached(self, value: object) -> None:
        pass


class _Loader(importlib.machinery.SourceFileLoader):
    """Runs a plugin module with the plugin's builtins, from cached bytecode."""

    def __init__(self, fullname: str, path: str, space: PluginSpace) -> None:
        super().__init__(fullname, path)
        self.space = space

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        code = _code_memo.get(key)
        if code is None:
            code = self._cached_or_compiled(path)
            with _lock:
                _code_memo[key] = code
        self.space.guard.add_file(path)
        return code

    def _cached_or_compiled(self, path: str) -> types.CodeType:
        source = self.get_data(path)
        cache_dir = self.space.bytecode_dir
        digest = hashlib.sha256(_MAGIC + path.encode() + b"\0" + source).hexdigest()
        cached = cache_dir / f"{digest}.pyc" if cache_dir is not None else None
        if cached is not None:
            try:
                with host_io(), open(cached, "rb") as f:
                    code = marshal.loads(f.read())
                if isinstance(code, types.CodeType):
                    return code
            except (OSError, EOFError, ValueError, TypeError):
                pass  # absent or damaged: compile again
        code = compile(source, path, "exec", dont_inherit=True)
        if cached is not None:
            _write_atomic(cached, marshal.dumps(code))
        return code

    def exec_module(self, module: types.ModuleType) -> None:
        self.space.modules.add(module.__name__)
        module.__builtins__ = self.space.builtins  # type: ignore[attr-defined]
        code = self.get_code(module.__name__)
        exec(code, module.__dict__)


def _write_atomic(target: Path, data: bytes) -> None:
    with host_io():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except OSError:
            pass  # the cache is an optimisation; a read-only home just compiles each time


_finder = _Finder()


def _ensure_finder() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def claim_namespace(
    plugin_id: str, root: Path, top: str, guard: Guard, *, bytecode_dir: Path | None
) -> PluginSpace:
    """Register a fresh namespace for a plugin (``plugmarket.plugins.<id>``, or
    ``<id>__2``... while another version of it is loaded)."""
    _ensure_finder()
    base = PREFIX + plugin_id.replace("-", "_")
    with _lock:
        name, n = base, 1
        while name in _finder.spaces or name in sys.modules:  # another version is loaded
            n += 1
            name = f"{base}__{n}"
        space = PluginSpace(
            namespace=name,
            root=Path(root),
            top=top,
            guard=guard,
            bytecode_dir=bytecode_dir,
            builtins=guard.make_builtins(),
        )
        _finder.spaces[name] = space
    return space


def release_namespace(space: PluginSpace) -> None:
    """Remove every module of the space from ``sys.modules`` and forget the space."""
    with _lock:
        for name in space.module_names():
            del sys.modules[name]
        _finder.spaces.pop(space.namespace, None)
    parent = sys.modules.get(PREFIX[:-1])
    leaf = space.namespace[len(PREFIX) :]
    if parent is not None and leaf in parent.__dict__:
        delattr(parent, leaf)
    space.guard.release()
