"""The live set: the plugins loaded in this process, kept in step with a generation.

A kernel holds one :class:`LiveSet`. :meth:`LiveSet.sync` makes the enabled
plugins of a generation live with their grants: it unloads what the
generation dropped or disabled, swaps what changed (another version, other
grants), and loads what is new, in dependency order (dependents are unloaded
before their dependencies, dependencies are loaded first, and a live plugin
that requires a swapped one is reloaded so it imports the new version).

Invariant: a sync that fails leaves the process as it was. If any plugin
fails to load or activate, everything this sync loaded is unloaded again and
everything it unloaded is loaded again (with its old files and grants), and
the error is raised as an :class:`~plugmarket.errors.InstallError` with the
cause chained, so :meth:`plugmarket.installer.Installer.apply` can undo the
disk switch too.

The user can also load an installed plugin by hand (even a disabled one) or
unload one for this session; a later sync keeps those choices until the
generation drops the plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from plugmarket import loader
from plugmarket.capabilities import Grants
from plugmarket.errors import InstallError, PlugmarketError

if TYPE_CHECKING:
    from plugmarket._internal.gate import AuditSink
    from plugmarket._internal.installed import Generation, InstalledPlugin
    from plugmarket.host import Host
    from plugmarket.loader import LoadedPlugin
    from plugmarket.settings import Settings
    from plugmarket.sources import PluginFiles

__all__ = ["LiveChanges", "LiveSet"]

log = logging.getLogger("plugmarket.live")

FilesOf = Callable[["InstalledPlugin"], "PluginFiles"]


@dataclass(frozen=True)
class LiveChanges:
    """What a sync did; true when it loaded or unloaded anything.

    Attributes:
        loaded: Ids loaded (new, swapped or reloaded), in load order.
        unloaded: Ids unloaded, in unload order.
    """

    loaded: tuple[str, ...] = ()
    unloaded: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.loaded or self.unloaded)


class LiveSet:
    """The plugins this process runs, following the home's generations.

    Args:
        settings: Passed to the loader (home, activation timeout).
        host: The shell plugins register into (default: the running IPython, else plain).
        audit: Called with every capability denial of a live plugin.

    Attributes:
        generation: The number of the generation last synced to (None before the first).
    """

    def __init__(
        self, settings: Settings, host: Host | None = None, *, audit: AuditSink | None = None
    ) -> None:
        self.settings = settings
        self.host = host
        self.audit = audit
        self.generation: int | None = None
        self._pinned: set[str] = set()  # loaded by hand: kept even if disabled
        self._held: set[str] = set()  # unloaded by hand: not reloaded by sync
        self._known: set[str] = set()  # ids of the generation last synced to

    @property
    def plugins(self) -> Mapping[str, LoadedPlugin]:
        """The loaded plugins of this process, by id."""
        return MappingProxyType(dict(loader.loaded()))

    def sync(self, generation: Generation, files: FilesOf) -> LiveChanges:
        """Make the enabled plugins of ``generation`` live, and nothing else it knows of.

        Args:
            generation: The generation to follow.
            files: The stored files of an installed plugin (``Installer.files``).

        Returns:
            What was loaded and unloaded.

        Raises:
            InstallError: a plugin could not be loaded or activated (or its files
                are missing); the process is back as it was before the call.
        """
        plugins = generation.plugins
        self._held &= set(plugins)
        self._pinned &= set(plugins)
        wanted = {
            pid: p
            for pid, p in plugins.items()
            if (p.enabled or pid in self._pinned) and pid not in self._held
        }
        live = dict(loader.loaded())
        known = self._known | set(plugins)  # ids this set manages; others were loaded by hand
        direct = {
            pid
            for pid, lp in live.items()
            if pid in known and (pid not in wanted or not _same(lp, wanted[pid]))
        }
        stale = direct | _dependents(live, direct)
        unload_order = [lp for lp in reversed(_order(live, live.values())) if lp.id in stale]
        to_load = [pid for pid in wanted if pid not in live or pid in stale]
        # a plugin loaded by hand, unloaded only because it requires a swapped one,
        # comes back with its own files and grants
        restore = {pid: live[pid] for pid in stale - direct if pid not in known}
        changes = LiveChanges()
        if unload_order or to_load:
            changes = self._swap(unload_order, to_load, wanted, restore, files)
        self._known = set(plugins)
        self.generation = generation.number
        return changes

    def clear(self) -> list[str]:
        """Unload every plugin loaded in this process, dependents first, and forget the
        generation.

        Every plugin loaded in the process is unloaded, whichever surface loaded
        it, not only those of this live set. One failing unload does not stop the
        others: each plugin is unloaded, the live set is reset, then the first
        failure is raised.

        Returns:
            The ids unloaded, in order. A plugin whose ``deactivate`` fails is
            still unloaded (the loader runs its undo stack regardless).

        Raises:
            LoadError: an unload failed (the others were still done); or whatever
                a plugin's ``deactivate`` raised that the loader does not catch
                (``SystemExit``, ``KeyboardInterrupt``).
        """
        live = dict(loader.loaded())
        order = [lp.id for lp in reversed(_order(live, live.values()))]
        failures: list[BaseException] = []
        try:
            for plugin_id in order:
                if plugin_id not in loader.loaded():
                    continue  # another plugin's deactivate unloaded it
                try:
                    loader.unload(plugin_id)
                except BaseException as exc:  # re-raised below, once every plugin is unloaded
                    failures.append(exc)
        finally:
            self._pinned.clear()
            self._held.clear()
            self._known.clear()
            self.generation = None
        if failures:
            raise failures[0]
        return order

    def load(self, plugin: InstalledPlugin, files: PluginFiles) -> LoadedPlugin:
        """Load an installed plugin into this process by hand (even a disabled one).

        Raises:
            LoadError, ActivationError: as :func:`plugmarket.load`.
        """
        self._held.discard(plugin.id)
        loaded = self._load(files, plugin.grants)
        self._pinned.add(plugin.id)
        return loaded

    def unload(self, plugin_id: str) -> None:
        """Unload a plugin from this process only; syncs leave it unloaded.

        Raises:
            LoadError: it is not loaded, or a loaded plugin requires it.
        """
        loader.unload(plugin_id)
        self._pinned.discard(plugin_id)
        self._held.add(plugin_id)

    # --- the swap ----------------------------------------------------------------

    def _swap(
        self,
        unload_order: list[LoadedPlugin],
        to_load: list[str],
        wanted: Mapping[str, InstalledPlugin],
        restore: Mapping[str, LoadedPlugin],
        files: FilesOf,
    ) -> LiveChanges:
        unloaded: list[LoadedPlugin] = []
        loaded: list[LoadedPlugin] = []
        current = ""
        try:
            for lp in unload_order:
                current = lp.id
                loader.unload(lp)
                unloaded.append(lp)
            for pid in _load_order(wanted, to_load, restore):
                current = pid
                if pid in restore:
                    old = restore[pid]
                    loaded.append(self._load(old.files, old.grants, old.context.config))
                else:
                    loaded.append(self._load(files(wanted[pid]), wanted[pid].grants))
        except PlugmarketError as exc:
            problems = self._put_back(loaded, unloaded)
            restored = (
                "the plugins live before are active again"
                if not problems
                else f"and restoring failed too: {'; '.join(problems)}"
            )
            raise InstallError(
                f"{current} could not be made live: {exc.message}; {restored}",
                plugin_id=current,
                step="live",
                hint=exc.hint or "Nothing changed; see the chained error for the cause.",
            ) from exc
        return LiveChanges(
            loaded=tuple(lp.id for lp in loaded), unloaded=tuple(lp.id for lp in unloaded)
        )

    def _put_back(self, loaded: list[LoadedPlugin], unloaded: list[LoadedPlugin]) -> list[str]:
        problems = []
        for lp in reversed(loaded):
            try:
                loader.unload(lp)
            except PlugmarketError as exc:
                problems.append(f"{lp.id}: {exc.message}")
        for lp in reversed(unloaded):
            try:
                self._load(lp.files, lp.grants, lp.context.config)
            except PlugmarketError as exc:
                problems.append(f"{lp.id}: {exc.message}")
                log.error("could not load %s %s again: %s", lp.id, lp.version, exc)
        return problems

    def _load(
        self,
        files: PluginFiles,
        grants: Iterable[object],
        config: Mapping[str, object] | None = None,
    ) -> LoadedPlugin:
        return loader.load(
            files,
            grants=[str(g) for g in grants],
            host=self.host,
            settings=self.settings,
            audit=self.audit,
            config=config,
        )


def _same(lp: LoadedPlugin, plugin: InstalledPlugin) -> bool:
    return lp.files.sha256 == plugin.sha256 and lp.grants == Grants(plugin.grants)


def _dependents(live: Mapping[str, LoadedPlugin], ids: set[str]) -> set[str]:
    """Live plugins that require (directly or not) any of ``ids``."""
    found: set[str] = set()
    grew = True
    while grew:
        grew = False
        for pid, lp in live.items():
            if pid in ids or pid in found:
                continue
            if any(r in ids or r in found for r in lp.manifest.requirement_ids()):
                found.add(pid)
                grew = True
    return found


def _order(live: Mapping[str, LoadedPlugin], plugins: Iterable[LoadedPlugin]) -> list[LoadedPlugin]:
    """Live plugins, dependencies before the plugins that require them."""
    graph = {lp.id: [r for r in lp.manifest.requirement_ids() if r in live] for lp in plugins}
    return [live[pid] for pid in _topological(graph)]


def _load_order(
    wanted: Mapping[str, InstalledPlugin], ids: list[str], restore: Mapping[str, LoadedPlugin]
) -> list[str]:
    from plugmarket._internal.installed import requirement_id

    graph: dict[str, list[str]] = {}
    for pid in ids:
        graph[pid] = [requirement_id(r) for r in wanted[pid].requires]
    for pid, lp in restore.items():
        graph[pid] = list(lp.manifest.requirement_ids())
    return [pid for pid in _topological(graph) if pid in graph]


def _topological(graph: Mapping[str, list[str]]) -> list[str]:
    """Nodes of ``graph`` (id -> ids it requires), requirements first; cycles broken by name."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        if state.get(node):
            return
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep in graph:
                visit(dep)
        state[node] = 2
        order.append(node)

    for node in sorted(graph):
        visit(node)
    return order
