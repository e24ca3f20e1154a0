"""Capability gating for in-process plugins: the plugin's own builtins and a
PEP 578 audit hook, sharing one policy per plugin.

This is guard-rails, not a sandbox (see docs/threat-model.md): it stops
plugins that overreach or make mistakes and records what they do; code that
walks Python's object graph can reach ungated builtins and the real modules.

A :class:`Guard` holds one plugin's identity and grants. Plugin code is
recognised by its code objects' file names (registered by the importer and
by the plugin's own ``compile``/``exec``/``eval``) or by the guard's
``running()`` context (host -> plugin calls, such as a C builtin registered
as a callback). An audited event raised while plugin code is on the stack
is checked against the grants of EVERY plugin on the stack, so a plugin
cannot borrow a dependency's grants (no confused deputy).

Invariants: the hook is added once per process and returns at once for
events it does not gate and while no plugin is loaded; while it handles an
event, nested events on the same thread pass (its own I/O, the audit sink).
"""

from __future__ import annotations

import builtins
import contextvars
import functools
import importlib.machinery
import importlib.util
import os
import shutil
import socket
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from plugmarket._internal.gated_modules import (
    SHELL_DOORS,
    GatedImportlib,
    GatedOs,
    GatedSqlite,
    Shielded,
)
from plugmarket._internal.policy import (
    EVENTS,
    FORK_EXEC,
    LOAD_EXTENSION,
    Need,
    PathPolicy,
    decide,
    describe,
    second_path,
)
from plugmarket.capabilities import Grants
from plugmarket.errors import CapabilityDenied

__all__ = ["AuditSink", "Guard", "host_io", "install_hook", "use_namespace_imports"]

F = TypeVar("F", bound=Callable[..., Any])
AuditSink = Callable[[CapabilityDenied], None]
AbsoluteImport = Callable[[str, Sequence[str] | None], types.ModuleType]
RelativeImport = Callable[
    [str, Mapping[str, Any] | None, Sequence[str] | None, int], types.ModuleType | None
]

# The guard whose code the host is running right now (host -> plugin calls).
_current: contextvars.ContextVar[Guard | None] = contextvars.ContextVar(
    "plugmarket_guard", default=None
)
# code file name -> the guard of the plugin it belongs to
_files: dict[str, Guard] = {}
_tls = threading.local()
_hook_lock = threading.Lock()
_hook_installed = False

_real_import = builtins.__import__
_real_open = builtins.open
_real_exec = builtins.exec
_real_eval = builtins.eval
_real_compile = builtins.compile
_real_input = builtins.input


def _no_audit(denial: CapabilityDenied) -> None:
    pass


def _real_absolute(name: str, fromlist: Sequence[str] | None) -> types.ModuleType:
    module = _real_import(name, None, None, fromlist, 0)
    return module if fromlist else sys.modules[name]


def _no_relative(
    name: str, globals: Mapping[str, Any] | None, fromlist: Sequence[str] | None, level: int
) -> types.ModuleType | None:
    return None


# How a plugin's imports of its own and its dependencies' modules are done: the
# importer, which owns the plugin namespaces, puts its short path here.
_import_absolute: AbsoluteImport = _real_absolute
_import_relative: RelativeImport = _no_relative


def _package_of(globals: object) -> object:
    """``globals["__package__"]`` as the real ``__import__`` reads it: a dict's own
    item, whatever a subclass's ``get`` says; ``None`` when ``globals`` is no dict
    (the real ``__import__`` refuses it too)."""
    if issubclass(type(globals), dict):
        return dict.get(cast("dict[str, object]", globals), "__package__")
    return None


def use_namespace_imports(absolute: AbsoluteImport, relative: RelativeImport) -> None:
    """Let plugins' imports inside plugin namespaces go through ``absolute``
    (``name, fromlist -> the module name``) and ``relative`` (``__import__``'s
    arguments -> its result, or ``None`` to let the real ``__import__`` decide)."""
    global _import_absolute, _import_relative
    _import_absolute, _import_relative = absolute, relative


@contextmanager
def host_io() -> Iterator[None]:
    """Let plugmarket's own I/O (bytecode cache, audit log) pass the hook on this thread."""
    previous = getattr(_tls, "busy", False)
    _tls.busy = True
    try:
        yield
    finally:
        _tls.busy = previous


def install_hook() -> None:
    """Add the audit hook to this process (once; audit hooks cannot be removed)."""
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_hook)
            if sys.version_info < (3, 14):
                _audit_fork_exec()
            _hook_installed = True


def _audit_fork_exec() -> None:
    """Make ``_posixsubprocess.fork_exec`` raise an audit event, as 3.14 does.

    subprocess and multiprocessing look the function up on the module at each
    call, so replacing the module attribute covers both; without it a plugin
    could start a process through multiprocessing's spawn with no event at all.
    """
    import _posixsubprocess

    real = _posixsubprocess.fork_exec

    def fork_exec(*args: Any) -> Any:
        argv = args[0] if args and type(args[0]) in (list, tuple) else ()
        sys.audit(FORK_EXEC, " ".join(describe(a) for a in argv))
        return real(*args)

    _posixsubprocess.fork_exec = fork_exec


def _guards_on_stack() -> list[Guard]:
    found: list[Guard] = []
    current = _current.get()
    if current is not None:
        found.append(current)
    files = _files
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        guard = files.get(frame.f_code.co_filename)
        if guard is not None and guard not in found:
            found.append(guard)
        frame = frame.f_back
    return found


# The import system lists every sys.path folder (the current one too) to fill
# its cache when anything new is imported; that listing is not the plugin's.
_IMPORT_LISTING = importlib.machinery.FileFinder._fill_cache.__code__  # type: ignore[attr-defined]
# Standard-library walkers that open folders relative to a descriptor kept in a
# local named ``topfd``; their "open" events do not carry it.
_TOPFD_WALKERS = frozenset(
    f.__code__
    for f in (getattr(shutil, "_rmtree_safe_fd", None), getattr(os, "_fwalk", None))
    if f is not None
)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in EVENTS or (not _files and _current.get() is None):
        return
    if getattr(_tls, "busy", False):
        return
    caller = sys._getframe(1)
    if event == "os.listdir" and caller.f_code is _IMPORT_LISTING:
        return
    guards = _guards_on_stack()
    if not guards:
        return  # host code: nothing written, nothing decided
    _tls.busy = True
    try:
        dir_fd = None
        if event == "open" and caller.f_code in _TOPFD_WALKERS:
            dir_fd = caller.f_locals.get("topfd")
        need = decide(event, args, dir_fd)
        if need is None:
            return
        second = second_path(event, args)
        for guard in guards:
            guard.check(need)
            if second is not None:
                guard.check(second)
    finally:
        _tls.busy = False


def _source_on_stack(path: str) -> bool:
    """Whether ``path`` is the source file of a frame on the current stack."""
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name == path or (name[:1] == "/" and os.path.realpath(name) == path):
            return True
        frame = frame.f_back
    return False


class Guard:
    """One plugin's identity, grants and audit sink, and its gated builtins.

    Args:
        plugin_id: The plugin's id.
        grants: What the plugin was granted.
        root: The folder its code lives in (always readable by it).
        storage: Its private folder (always readable and writable by it).
        audit: Called with every denial before it is raised.
        readable: More folders it may read (its dependencies' code).
    """

    def __init__(
        self,
        plugin_id: str,
        grants: Grants,
        *,
        root: Path | None = None,
        storage: Path | None = None,
        audit: AuditSink = _no_audit,
        readable: tuple[Path, ...] = (),
    ) -> None:
        self.plugin_id = plugin_id
        self.grants = grants
        self.root = root
        self.storage = storage
        self.audit = audit
        self._folders = (tuple(p for p in (root, *readable) if p is not None), storage)
        self._resolved: dict[str, str] = {}  # address -> granted host name it came from
        self._files: set[str] = set()
        self.aliases: dict[str, str] = {}  # top-level import name -> namespace module
        self.namespace = ""  # the plugin's own package, which relative imports stay inside

    def __repr__(self) -> str:
        return f"<Guard {self.plugin_id} {self.grants!r}>"

    @functools.cached_property
    def paths(self) -> PathPolicy:
        """The folders this plugin may always use (resolved on first need)."""
        readable, storage = self._folders
        write = (os.path.realpath(storage),) if storage is not None else ()
        return PathPolicy(readable=tuple(os.path.realpath(p) for p in readable), writable=write)

    # --- decisions -------------------------------------------------------

    def deny(self, capability: str, operation: str, target: str = "") -> CapabilityDenied:
        """Build a denial, hand it to the audit sink, and return it (for ``raise``)."""
        if capability:
            denial = CapabilityDenied(
                plugin_id=self.plugin_id,
                capability=capability,
                operation=operation,
                target=target,
            )
        else:
            denial = CapabilityDenied(
                f"plugin {self.plugin_id!r} was denied {operation}: no capability grants it "
                "(it hands out the host's frames or objects)",
                plugin_id=self.plugin_id,
                operation=operation,
                target=target,
                hint="Plugins cannot use this; run the plugin in process isolation mode "
                "if it truly needs it.",
            )
        with host_io():
            self.audit(denial)
        return denial

    def require(self, capability: str, operation: str, target: str = "") -> None:
        """Raise :class:`CapabilityDenied` unless ``capability`` (a kind) is granted."""
        if not self.grants.has(capability):
            raise self.deny(capability, operation, target)

    def check(self, need: Need) -> None:
        """Raise :class:`CapabilityDenied` unless this plugin may do what ``need`` says."""
        kind = need.kind
        if kind in ("fs.read", "fs.write"):
            if self.paths.allows(self.grants, need):
                return
            if kind == "fs.read" and need.operation == "open" and _source_on_stack(need.target):
                return  # tracebacks, inspect and logging read the code that is running
            scope = need.target
            if kind == "fs.write" and not os.path.lexists(scope):
                # A file being created: the grant that would work names its folder.
                scope = os.path.dirname(scope)
            raise self.deny(f"{kind}:{scope}", need.operation, need.target)
        elif kind == "net" and need.operation == "socket.__new__":
            self.require("net", "create a socket")  # any net grant; connect checks the host
        elif kind == "net":
            if not self._net_allowed(need):
                scope = need.target + (f":{need.port}" if need.port else "")
                raise self.deny(f"net:{scope}", need.operation, scope)
        elif kind == "env":
            if not self.grants.allows_env(need.target):
                raise self.deny(f"env:{need.target}", need.operation, need.target)
        elif kind == "native" and need.operation == LOAD_EXTENSION:
            # C extensions installed in the environment are the admin's choice;
            # native code shipped by a plugin needs the grant.
            if not self.paths.in_environment(need.target):
                self.require(kind, need.operation, need.target)
        elif kind in ("subprocess", "native"):
            self.require(kind, need.operation, need.target)
        else:
            raise self.deny("", need.operation, need.target)

    def _net_allowed(self, need: Need) -> bool:
        host, port = need.target, need.port
        if self.grants.allows_net(host, port):
            if need.operation == "socket.getaddrinfo" and self.grants.capabilities:
                self._remember_addresses(host, port)
            return True
        granted_host = self._resolved.get(host)
        return granted_host is not None and self.grants.allows_net(granted_host, port)

    def _remember_addresses(self, host: str, port: int | None) -> None:
        # A granted name resolves to addresses the later connect() will use.
        if host in self._resolved.values() or not host:
            return
        try:
            infos = socket.getaddrinfo(host, port)
        except OSError:
            return
        for info in infos:
            self._resolved[str(info[4][0])] = host

    # --- attribution -----------------------------------------------------

    def add_file(self, filename: str) -> None:
        """Attribute code compiled from ``filename`` to this plugin."""
        self._files.add(filename)
        _files[filename] = self

    def release(self) -> None:
        """Forget this plugin's files (at unload)."""
        for name in self._files:
            if _files.get(name) is self:
                del _files[name]
        self._files.clear()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Attribute everything done inside to this plugin (host -> plugin calls)."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)

    def wrap(self, fn: F) -> F:
        """``fn``, called under this plugin's attribution (for callbacks the host runs)."""

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self.running():
                return fn(*args, **kwargs)

        del call.__wrapped__  # do not hand the plugin's own function back out
        return call  # type: ignore[return-value]

    # --- the plugin's own builtins ---------------------------------------

    def make_builtins(self) -> dict[str, Any]:
        """A ``__builtins__`` dict whose sensitive entries check this plugin's grants."""
        table = dict(builtins.__dict__)
        table.update(
            __import__=self._import,
            open=self._open,
            exec=self._exec,
            eval=self._eval,
            compile=self._compile,
            input=self._input,
            breakpoint=self._breakpoint,
        )
        # IPython adds these to builtins in a kernel; both would hand out the shell.
        table.pop("get_ipython", None)
        table.pop("display", None)
        return table

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: tuple[str, ...] | list[str] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level == 0:
            top, dot, rest = name.partition(".")
            target = self.aliases.get(top)
            if target is not None:
                module = _import_absolute(target + dot + rest, fromlist)
                return module if fromlist else sys.modules[target]
            need = decide("import", (name,))
            if need is not None:
                self.check(need)
            module = _real_import(name, globals, locals, fromlist, 0)
            return self._shield(name, module, fromlist)
        self._check_relative(name, _package_of(globals), level)
        found = _import_relative(name, globals, fromlist, level)
        if found is not None:
            return found
        return _real_import(name, globals, locals, fromlist, level)

    def _check_relative(self, name: object, package: object, level: object) -> None:
        """Refuse a relative import that climbs out of the plugin's own package.

        ``from ... import x`` in ``plugmarket.plugins.<id>`` would reach
        plugmarket's own modules, and ``from .. import other`` a plugin it
        does not require; its requirements are imported by name instead.
        Only an exact ``str`` name and package and an ``int`` level pass: the
        methods of a subclass are the plugin's code, which the gate never runs,
        and the real import reads the string's characters, not its methods.
        """
        if not self.namespace:
            return
        target = "this relative import"
        if type(name) is str and type(package) is str and type(level) is int and level > 0:
            parts = package.rsplit(".", level - 1)
            base = parts[0] if len(parts) == level else ""
            if base == self.namespace or base.startswith(self.namespace + "."):
                return
            target = repr("." * level + name)
        raise ImportError(
            f"plugin {self.plugin_id!r} may not import {target}: relative imports stay "
            "inside the plugin's own package (import the plugins it requires by name)",
            name=name if type(name) is str and name else None,
        )

    def _shield(self, name: str, module: types.ModuleType, fromlist: object) -> types.ModuleType:
        """The module a plugin gets: the real one, or a gated view of a few front doors."""
        given = module.__name__
        if given in ("os", "posix") and "env" not in self.grants._unscoped:
            return GatedOs(self, module)
        if given == "builtins":
            proxy = types.ModuleType("builtins")
            proxy.__dict__.update(self.make_builtins())
            return proxy
        if given == "importlib":
            return GatedImportlib(self)
        if given == "sqlite3":
            return GatedSqlite(module)
        if given in SHELL_DOORS:
            return Shielded(self, module, SHELL_DOORS[given])
        return module

    def import_module(self, name: str, package: str | None = None) -> types.ModuleType:
        """``importlib.import_module`` as the plugin sees it: through its own ``__import__``."""
        if type(name) is not str:  # a subclass's methods would be the plugin's code
            raise TypeError("import_module() takes the module name as a str")
        if name.startswith("."):
            level = len(name) - len(name.lstrip("."))
            self._check_relative(name[level:], package, level)
            name = importlib.util.resolve_name(name, package)
        top, dot, rest = name.partition(".")
        target = self.aliases.get(top)
        if target is not None:
            return importlib.import_module(target + dot + rest)
        need = decide("import", (name,))
        if need is not None:
            self.check(need)
        return self._shield(name, importlib.import_module(name), ("*",))

    def _open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        # Convert once and use that value, so a path object cannot answer differently
        # when checked and when opened.
        if not isinstance(file, int):
            file = os.fspath(file)
        need = decide("open", (file, mode, 0))
        if need is not None:
            self.check(need)
        return _real_open(file, mode, *args, **kwargs)

    def _compile(self, source: Any, filename: Any, mode: str, *args: Any, **kwargs: Any) -> Any:
        name = os.fsdecode(filename) if isinstance(filename, str | bytes) else repr(filename)
        if name not in self._files:
            name = f"<plugin {self.plugin_id}: {name}>"
            self.add_file(name)
        return _real_compile(source, name, mode, *args, **kwargs)

    def _namespace(
        self, globals: dict[str, Any] | None, locals: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], Mapping[str, Any]]:
        if globals is None:
            caller = sys._getframe(2)
            globals = caller.f_globals
            locals = caller.f_locals if locals is None else locals
        elif locals is None:
            locals = globals
        current = globals.get("__builtins__")
        if current is None or current is builtins or current is builtins.__dict__:
            globals["__builtins__"] = self.make_builtins()
        return globals, locals

    def _exec(
        self,
        source: Any,
        globals: dict[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        /,
        **kwargs: Any,
    ) -> None:
        if isinstance(source, str | bytes):
            source = self._compile(source, "<string>", "exec")
        globals, locals = self._namespace(globals, locals)
        _real_exec(source, globals, locals, **kwargs)

    def _eval(
        self,
        source: Any,
        globals: dict[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        /,
    ) -> Any:
        if isinstance(source, str | bytes):
            source = self._compile(source, "<string>", "eval")
        globals, locals = self._namespace(globals, locals)
        return _real_eval(source, globals, locals)

    def _input(self, prompt: object = "") -> str:
        self.require("display", "input", str(prompt))
        return _real_input(prompt)

    def _breakpoint(self, *args: Any, **kwargs: Any) -> None:
        raise self.deny("", "breakpoint")
