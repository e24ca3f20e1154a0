"""Load a plugin from a source into its own namespace, activate it; and back.

``load`` = materialize the source -> check the manifest and dependencies ->
claim a namespace -> import the top module under the plugin's guard ->
``activate(ctx)`` with a time limit. ``unload`` = ``deactivate(ctx)`` ->
undo every registration in reverse -> remove every module of the plugin.

Invariant: a load that fails at any step leaves nothing behind: no module
in ``sys.modules``, no registration in the shell, no name in the user's
namespace, no claimed file for attribution.

The loader knows nothing of registries or the store; it keeps a process-wide
table of what is loaded, so that plugins can import their declared
dependencies and the installer can swap versions.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import Version

from plugmarket._internal.gate import AuditSink, Guard, install_hook
from plugmarket._internal.importer import (
    PluginSpace,
    claim_namespace,
    import_module,
    release_namespace,
)
from plugmarket.capabilities import Capability, Grants
from plugmarket.errors import ActivationError, CapabilityDenied, LoadError, PlugmarketError
from plugmarket.manifest import HOST_API_VERSION, Manifest, normalize_id
from plugmarket.settings import Settings, from_env

if TYPE_CHECKING:
    from plugmarket.context import PluginContext
    from plugmarket.host import Host
    from plugmarket.sources import PluginFiles, Source

__all__ = ["LoadedPlugin", "load", "loaded", "unload"]

log = logging.getLogger("plugmarket.loader")

_loaded: dict[str, LoadedPlugin] = {}
_table_lock = threading.RLock()


@dataclass(eq=False)
class LoadedPlugin:
    """A plugin live in this process.

    Attributes:
        id: The plugin id.
        version: Its version.
        module: Its top module (``plugmarket.plugins.<id>``).
        grants: What it was granted.
        manifest: Its manifest.
        files: Where its code is.
        load_seconds: How long the load took, activation included.
    """

    id: str
    version: Version
    module: types.ModuleType
    grants: Grants
    manifest: Manifest
    files: PluginFiles
    context: PluginContext = field(repr=False)
    space: PluginSpace = field(repr=False)
    guard: Guard = field(repr=False)
    load_seconds: float = 0.0

    def __repr__(self) -> str:
        return f"<LoadedPlugin {self.id} {self.version} as {self.module.__name__}>"


def loaded() -> Mapping[str, LoadedPlugin]:
    """The plugins loaded in this process, by id (a read-only snapshot)."""
    with _table_lock:
        return types.MappingProxyType(dict(_loaded))


def _default_audit(denial: CapabilityDenied) -> None:
    log.warning("%s", denial.message)


def load(
    source: Source | PluginFiles,
    *,
    grants: Iterable[str | Capability] = (),
    host: Host | None = None,
    settings: Settings | None = None,
    audit: AuditSink | None = None,
    config: Mapping[str, object] | None = None,
) -> LoadedPlugin:
    """Load ``source`` into its own namespace and activate it.

    Args:
        source: A :class:`~plugmarket.Source`, or files already materialized.
        grants: The capabilities the plugin is granted (nothing by default).
        host: The shell to register into; the running IPython, else a plain host.
        settings: plugmarket's settings (from the environment by default).
        audit: Called with every capability denial.
        config: The plugin's own settings (``ctx.config``).

    Returns:
        The loaded plugin.

    Raises:
        LoadError: the plugin is already loaded, needs another host API,
            lacks a dependency, or its code fails to import.
        ActivationError: its ``activate`` raised or ran out of time.
        PlugmarketError: the source could not be materialized (see ``Source``).
    """
    started = time.perf_counter()
    settings = settings or from_env()
    files = source.materialize(settings) if hasattr(source, "materialize") else source
    manifest = files.manifest
    granted = Grants(grants)
    with _table_lock:
        if manifest.id in _loaded:
            other = _loaded[manifest.id]
            raise LoadError(
                f"plugin {manifest.id!r} is already loaded (version {other.version})",
                plugin_id=manifest.id,
                hint="Unload it first, or update it to swap versions.",
            )
        deps = _dependencies(manifest)
    if not manifest.supports_host():
        raise LoadError(
            f"plugin {manifest.id!r} {manifest.version} needs plugin API {manifest.host}, "
            f"but this plugmarket offers {HOST_API_VERSION}",
            plugin_id=manifest.id,
            hint="Install a version of the plugin made for this plugmarket, or upgrade plugmarket.",
        )
    storage, bytecode_dir = _home_paths(settings.home, manifest.id)
    guard = Guard(
        manifest.id,
        granted,
        root=files.root,
        storage=storage,
        audit=audit or _default_audit,
        readable=tuple(d.files.root for d in deps),
    )
    install_hook()
    space = claim_namespace(
        manifest.id,
        files.root,
        files.top,
        guard,
        bytecode_dir=bytecode_dir,
        stamps=files.stamps,
    )
    guard.namespace = space.namespace
    guard.aliases = {files.top: space.namespace}
    for dep in deps:
        guard.aliases[dep.files.top] = dep.space.namespace
        guard.aliases.setdefault(dep.id.replace("-", "_"), dep.space.namespace)

    from plugmarket.context import PluginContext
    from plugmarket.host import current_host

    ctx = PluginContext(
        manifest.id,
        str(manifest.version),
        host=host or current_host(),
        guard=guard,
        storage=storage,
        config=config or {},
    )
    try:
        try:
            module = _import(space, manifest)
        finally:
            space.stamps = None  # later imports (lazy, reload) look at the files as they are
        _activate(module, ctx, guard, manifest, settings.activation_timeout)
    except BaseException:
        ctx.close()
        release_namespace(space)
        raise
    plugin = LoadedPlugin(
        id=manifest.id,
        version=manifest.version,
        module=module,
        grants=granted,
        manifest=manifest,
        files=files,
        context=ctx,
        space=space,
        guard=guard,
        load_seconds=time.perf_counter() - started,
    )
    with _table_lock:
        _loaded[manifest.id] = plugin
    return plugin


def unload(plugin: LoadedPlugin | str) -> None:
    """Deactivate a plugin and remove every trace of it from the process.

    Whatever the plugin's ``deactivate`` does or fails to do, every
    registration it made through its context is undone, and every module
    of its namespace is removed. A failing ``deactivate`` is logged, not
    raised, so unload always completes.

    Raises:
        LoadError: the plugin is not loaded, or another loaded plugin requires it.
    """
    with _table_lock:
        plugin_id = plugin if isinstance(plugin, str) else plugin.id
        current = _loaded.get(plugin_id)
        if current is None or (not isinstance(plugin, str) and current is not plugin):
            raise LoadError(f"plugin {plugin_id!r} is not loaded", plugin_id=plugin_id)
        users = [p.id for p in _loaded.values() if plugin_id in p.manifest.requirement_ids()]
        if users:
            raise LoadError(
                f"plugin {plugin_id!r} cannot be unloaded: {', '.join(sorted(users))} require it",
                plugin_id=plugin_id,
                hint="Unload those plugins first.",
            )
        del _loaded[plugin_id]
    entry = _entry_module(current.module, current.manifest)
    deactivate = getattr(entry, "deactivate", None)
    try:
        if callable(deactivate):
            try:
                with current.guard.running():
                    deactivate(current.context)
            except Exception:
                log.exception("plugin %r raised in deactivate(); cleaning up anyway", plugin_id)
    finally:  # even a SystemExit or KeyboardInterrupt from deactivate() leaves no trace
        try:
            current.context.close()
        finally:
            release_namespace(current.space)


def _dependencies(manifest: Manifest) -> list[LoadedPlugin]:
    deps: list[LoadedPlugin] = []
    for req in manifest.requires:
        dep_id = normalize_id(req.name)
        dep = _loaded.get(dep_id)
        if dep is None:
            raise LoadError(
                f"plugin {manifest.id!r} requires {str(req)!r}, which is not loaded",
                plugin_id=manifest.id,
                hint=f"Load {dep_id!r} first (installing resolves this for you).",
            )
        if not req.specifier.contains(dep.version, prereleases=True):
            raise LoadError(
                f"plugin {manifest.id!r} requires {str(req)!r}, but {dep_id} {dep.version} "
                "is loaded",
                plugin_id=manifest.id,
                hint=f"Load a version of {dep_id!r} that matches {req.specifier}.",
            )
        deps.append(dep)
    return deps


def _import(space: PluginSpace, manifest: Manifest) -> types.ModuleType:
    try:
        module = import_module(space.namespace)
        if manifest.entry:
            import_module(f"{space.namespace}.{manifest.entry}")
        return module
    except PlugmarketError as exc:
        if isinstance(exc, CapabilityDenied):
            raise LoadError(
                f"plugin {manifest.id!r} failed while importing: {exc.message}",
                plugin_id=manifest.id,
                hint=exc.hint,
            ) from exc
        raise
    except BaseException as exc:
        raise LoadError(
            f"plugin {manifest.id!r} failed while importing: {type(exc).__name__}: {exc}",
            plugin_id=manifest.id,
            hint="The plugin's code is broken; see the chained error for where.",
        ) from exc


def _entry_module(module: types.ModuleType, manifest: Manifest) -> types.ModuleType:
    if manifest.entry:
        return sys.modules.get(f"{module.__name__}.{manifest.entry}", module)
    return module


class _ActivationTimeout(BaseException):
    """Raised into a running ``activate`` when its time is up (not an Exception,
    so a plugin's ``except Exception`` cannot swallow it)."""


def _activate(
    module: types.ModuleType,
    ctx: PluginContext,
    guard: Guard,
    manifest: Manifest,
    timeout: float,
) -> None:
    activate: Callable[[Any], object] | None = getattr(
        _entry_module(module, manifest), "activate", None
    )
    if activate is None:
        return  # a library plugin
    if not callable(activate):
        raise ActivationError(
            f"plugin {manifest.id!r}: `activate` is not a function",
            plugin_id=manifest.id,
            hint="Define `def activate(ctx): ...` in the plugin's module.",
        )
    try:
        with guard.running(), _time_limit(timeout):
            activate(ctx)
    except _ActivationTimeout:
        raise ActivationError(
            f"plugin {manifest.id!r}: activate() took longer than {timeout:g} s and was stopped",
            plugin_id=manifest.id,
            hint="The plugin hangs or does slow work at activation; report it to its author.",
        ) from None
    except PlugmarketError as exc:
        raise ActivationError(
            f"plugin {manifest.id!r}: activate() failed: {exc.message}",
            plugin_id=manifest.id,
            hint=exc.hint,
        ) from exc
    except Exception as exc:
        raise ActivationError(
            f"plugin {manifest.id!r}: activate() raised {type(exc).__name__}: {exc}",
            plugin_id=manifest.id,
            hint="Nothing of the plugin was kept. See the chained error for where it failed.",
        ) from exc


# ``signal.signal`` turns the handler it returns into a ``Handlers`` member, which
# for a function costs a raised and caught ValueError: 3 of the 4 us a time limit
# took. ``_signal`` is the C module behind ``signal``, with the same functions.
_sig: Any = sys.modules.get("_signal", signal)
_HAS_TIMER = hasattr(_sig, "setitimer")


class _time_limit:
    """Interrupt the block after ``seconds`` (main thread on POSIX; elsewhere no limit)."""

    __slots__ = ("armed", "previous", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = (
            seconds > 0 and _HAS_TIMER and threading.current_thread() is threading.main_thread()
        )
        self.previous: Any = None

    def __enter__(self) -> None:
        if self.armed:
            self.previous = _sig.signal(signal.SIGALRM, self._expire)
            _sig.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            _sig.setitimer(signal.ITIMER_REAL, 0)
            _sig.signal(signal.SIGALRM, self.previous)

    @staticmethod
    def _expire(signum: int, frame: object) -> None:
        raise _ActivationTimeout()


def storage_path(settings: Settings, plugin_id: str) -> Path:
    """The private folder of ``plugin_id`` under the home."""
    return _home_paths(settings.home, plugin_id)[0]


@functools.lru_cache(maxsize=256)
def _home_paths(home: Path, plugin_id: str) -> tuple[Path, Path]:
    """A plugin's storage folder and the bytecode cache (each ``/`` on a Path costs
    about 1 us, a tenth of what a load may spend outside the plugin's code)."""
    return home / "data" / plugin_id, home / "cache" / "bytecode"
