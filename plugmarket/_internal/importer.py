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
- A plugin's own imports (its top module, relative imports, its own and its
  dependencies' top-level names) take a short path that creates the module
  from its spec and runs it under importlib's per-module lock, with the same
  attributes, ``sys.modules`` order and failure clean-up as importlib's own
  ``_find_and_load``; anything unusual (a module being initialized by another
  thread, a ``None`` entry, a name outside the spaces) goes through importlib.
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
import time
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from plugmarket._internal.filetimes import settled
from plugmarket._internal.gate import Guard, host_io, use_namespace_imports

__all__ = [
    "PREFIX",
    "PluginSpace",
    "claim_namespace",
    "import_absolute",
    "import_module",
    "import_relative",
    "release_namespace",
]

PREFIX = "plugmarket.plugins."
_MAGIC = importlib.util.MAGIC_NUMBER
# importlib's own helpers, so the short path locks, imports parents and handles
# ``from pkg import sub`` exactly as ``import`` does. They are private to
# importlib: without them every import takes importlib's path.
_bootstrap = sys.modules["importlib._bootstrap"]
_ModuleLockManager: Any = getattr(_bootstrap, "_ModuleLockManager", None)
_handle_fromlist: Any = getattr(_bootstrap, "_handle_fromlist", None)
_gcd_import: Callable[[str], types.ModuleType] = getattr(
    _bootstrap, "_gcd_import", importlib.import_module
)

# (path, inode, size, mtime_ns, ctime_ns) -> code, shared by every load in this process
_code_memo: dict[tuple[str, int, int, int, int], types.CodeType] = {}
_lock = threading.Lock()
_SEP = os.sep
_INIT = os.sep + "__init__.py"
# The modules whose bodies this thread is running (inside ``_create``).
_running = threading.local()
Stamps = Mapping[str, tuple[int, int, int, int]]  # path -> (inode, size, mtime_ns, ctime_ns)


@dataclass(eq=False)
class PluginSpace:
    """One loaded plugin's namespace: where its code is and who it belongs to."""

    namespace: str
    root: Path  # the folder holding ``top``
    top: str  # root/<top>.py or root/<top>/__init__.py
    guard: Guard
    bytecode_dir: Path | None = None
    builtins: dict[str, Any] = field(default_factory=dict)
    # The files as the source checked them moments ago, trusted while the plugin
    # loads (the loader drops them then); ``None``: ask the file system.
    stamps: Stamps | None = None
    is_package: bool = False
    base: str = ""  # root/<top> as a string, for fast lookups
    modules: set[str] = field(default_factory=set)  # every module created in the space

    def __post_init__(self) -> None:
        self.base = os.path.join(self.root, self.top)
        self.is_package = self.is_file(self.base + _INIT)

    def is_file(self, path: str) -> bool:
        """Whether ``path`` is a file of the plugin."""
        stamps = self.stamps
        return path in stamps if stamps is not None else os.path.isfile(path)

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
        candidate = space.base + _SEP + rest.replace(".", _SEP) if rest else space.base
        init = candidate + _INIT
        if space.is_file(init):
            return self._spec(fullname, init, space, package=candidate)
        if rest and space.is_file(candidate + ".py"):
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


_SPECS = (_Spec, importlib.machinery.ModuleSpec)  # whose ``parent`` is not a plugin's code


class _Loader(importlib.machinery.SourceFileLoader):
    """Runs a plugin module with the plugin's builtins, from cached bytecode."""

    def __init__(self, fullname: str, path: str, space: PluginSpace) -> None:
        super().__init__(fullname, path)
        self.space = space

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.path  # this loader's only module (get_filename checks just that)
        stamps = self.space.stamps
        stamp = stamps.get(path) if stamps is not None else None
        code = _code_memo.get((path, *stamp)) if stamp is not None else None
        if code is None:
            before = _stamp(path)
            code = _code_memo.get(before)
            if code is None:
                code = self._cached_or_compiled(path)
                # Memoized only if the file did not change while it was read and a
                # later change is sure to show in its times (filetimes.settled).
                if _stamp(path) == before and settled(before[3:], time.time_ns()):
                    with _lock:
                        _code_memo[before] = code
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


def _stamp(path: str) -> tuple[str, int, int, int, int]:
    st = os.stat(path)
    return (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


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


def import_module(name: str) -> types.ModuleType:
    """``importlib.import_module(name)`` for a module in a plugin namespace."""
    return _load(name)


def import_absolute(name: str, fromlist: Sequence[str] | None = ()) -> types.ModuleType:
    """Import ``name`` (a module in a plugin namespace) as ``__import__(name,
    fromlist=fromlist)`` would, but return the module ``name`` itself."""
    if _handle_fromlist is None:
        __import__(name, None, None, fromlist, 0)
        return sys.modules[name]
    _audit_import(name)
    module = _load(name)
    if fromlist and hasattr(module, "__path__"):
        return _handle_fromlist(module, fromlist, _load)  # type: ignore[no-any-return]
    return module


def import_relative(
    name: str,
    globals: Mapping[str, Any] | None,
    fromlist: Sequence[str] | None,
    level: int,
) -> types.ModuleType | None:
    """``__import__(name, globals, None, fromlist, level)`` for a relative import
    made by a plugin module inside its namespace; ``None`` when the import is
    anything else (the real ``__import__`` then decides, with its own errors)."""
    if not issubclass(type(globals), dict) or _handle_fromlist is None:
        return None
    # The dict's own items, as the real __import__ reads them (and as the gate
    # checked them): a subclass's get, like any method of the plugin's, is not run.
    own = cast("dict[str, object]", globals)
    package, spec = dict.get(own, "__package__"), dict.get(own, "__spec__")
    if type(package) is not str or type(spec) not in _SPECS:
        return None
    if cast(importlib.machinery.ModuleSpec, spec).parent != package:
        return None
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        return None
    absname = f"{bits[0]}.{name}" if name else bits[0]
    if not absname.startswith(PREFIX):
        return None
    _audit_import(absname)
    module = _load(absname)
    if fromlist:
        if hasattr(module, "__path__"):
            return _handle_fromlist(module, fromlist, _load)  # type: ignore[no-any-return]
        return module
    if not name:
        return module
    cut_off = len(name) - len(name.partition(".")[0])
    return sys.modules[module.__name__[: len(module.__name__) - cut_off]]


use_namespace_imports(import_absolute, import_relative)


def _audit_import(name: str) -> None:
    # The event ``__import__`` raises before it loads a module (importlib.import_module
    # and submodules named in a fromlist raise none).
    if name not in sys.modules:
        sys.audit("import", name, None, sys.path, sys.meta_path, sys.path_hooks)


def _load(name: str) -> types.ModuleType:
    """importlib's ``_find_and_load(name)``, short for modules of a plugin space."""
    module = sys.modules.get(name)
    if module is not None:
        if not getattr(getattr(module, "__spec__", None), "_initializing", False):
            return module
        if name in getattr(_running, "names", ()):
            # This thread holds its lock and is running its body (a package importing
            # its own submodules): importlib would take the lock again and return it.
            return module
    if module is None and name not in sys.modules and _ModuleLockManager is not None:
        with _ModuleLockManager(name):
            if name not in sys.modules:
                return _create(name)
    return _gcd_import(name)


def _create(name: str) -> types.ModuleType:
    """importlib's ``_find_and_load_unlocked`` + ``_load_unlocked``, with the caller
    holding ``name``'s module lock."""
    parent, _, child = name.rpartition(".")
    if parent not in sys.modules:
        if parent.startswith(PREFIX):
            _load(parent)
        else:
            _gcd_import(parent)
        if name in sys.modules:  # the parent imported it
            return sys.modules[name]
    parent_module = sys.modules[parent]
    parent_spec = getattr(parent_module, "__spec__", None)
    spec = _finder.find_spec(name) if hasattr(parent_module, "__path__") else None
    if spec is None:
        return _gcd_import(name)  # importlib raises the error it always raises
    loader = spec.loader
    assert isinstance(loader, _Loader)
    # The attributes and their order are module_from_spec's for a file-based spec
    # without a cached file.
    module = types.ModuleType(name)
    module.__loader__ = loader
    module.__package__ = spec.parent
    module.__spec__ = spec
    if spec.submodule_search_locations is not None:
        module.__path__ = spec.submodule_search_locations
    module.__file__ = spec.origin
    pending = getattr(parent_spec, "_uninitialized_submodules", None)
    if pending is not None:
        pending.append(child)
    running: set[str] | None = getattr(_running, "names", None)
    if running is None:
        running = _running.names = set()
    spec._initializing = True  # type: ignore[attr-defined]
    running.add(name)
    try:
        sys.modules[name] = module
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        module = sys.modules.pop(name)  # it may have replaced itself
        sys.modules[name] = module
    finally:
        running.discard(name)
        spec._initializing = False  # type: ignore[attr-defined]
        if pending is not None:
            pending.pop()
    try:
        setattr(sys.modules[parent], child, module)
    except AttributeError:
        warnings.warn(
            f"Cannot set an attribute on {parent!r} for child module {child!r}",
            ImportWarning,
            stacklevel=2,
        )
    return module


def _ensure_finder() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def claim_namespace(
    plugin_id: str,
    root: Path,
    top: str,
    guard: Guard,
    *,
    bytecode_dir: Path | None,
    stamps: Stamps | None = None,
) -> PluginSpace:
    """Register a fresh namespace for a plugin (``plugmarket.plugins.<id>``, or
    ``<id>__2``... while another version of it is loaded).

    ``stamps`` are the plugin's files as its source just checked them: until the
    caller sets ``space.stamps`` to ``None``, modules are found and their memoized
    code looked up by them instead of by asking the file system again."""
    _ensure_finder()
    base = PREFIX + plugin_id.replace("-", "_")
    with _lock:
        name, n = base, 1
        while name in _finder.spaces or name in sys.modules:  # another version is loaded
            n += 1
            name = f"{base}__{n}"
        space = PluginSpace(
            namespace=name,
            root=root if isinstance(root, Path) else Path(root),
            top=top,
            guard=guard,
            bytecode_dir=bytecode_dir,
            builtins=guard.make_builtins(),
            stamps=stamps,
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
