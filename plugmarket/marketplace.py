"""The facade: the one object every surface (magics, panels, CLI, server) calls.

``Marketplace`` turns a user's verb into a resolved :class:`~plugmarket.plan.Plan`,
asks for consent where the plan adds code or capabilities, hands the plan to
the installer's transaction, keeps this process's live plugins in step, and
records the operation in the audit log and the statistics. It holds no
policy of its own beyond that orchestration: resolution lives in
resolver.py, disk state in installer.py, trust in the registry client.

Registries, the installer and the records are created on first use, so a
``Marketplace`` costs nothing until a verb needs them.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugmarket._internal.installed import LOCAL
from plugmarket.capabilities import Grants, parse_capability
from plugmarket.errors import ConsentRequired, InstallError, ManifestError, PlugmarketError
from plugmarket.manifest import normalize_id, validate_id
from plugmarket.plan import Plan, PlanItem
from plugmarket.settings import Settings

if TYPE_CHECKING:
    from plugmarket._internal.fetch import Progress
    from plugmarket._internal.installed import Generation, InstalledPlugin
    from plugmarket.host import Host
    from plugmarket.installer import Installer
    from plugmarket.live import LiveSet
    from plugmarket.registry import PluginDetails, RegistryClient, SearchHit
    from plugmarket.results import InstalledList

__all__ = ["LOCAL", "Marketplace"]

_log = logging.getLogger("plugmarket")

ProgressFactory = Callable[[str, int], "Progress"]


class Marketplace:
    """Search, install, update, uninstall and roll back plugins in one home.

    Args:
        home: Where all state lives (default: ``PLUGMARKET_HOME``, then the
            platform's user data folder).
        registry: A registry URL or folder that replaces the configured ones.
        settings: Settings to use as they are (``home``/``registry`` still apply).
        live: Keep this process's loaded plugins in step with the installed
            set (a kernel, a script); the terminal CLI and the server pass False.
        host: The shell plugins register into (default: the running IPython,
            else a plain host).
        surface: Who is calling, for the audit log (``"api"``, ``"cli"``, ``"magic"``...).
        progress: Makes a download progress callback for ``(plugin id, size)``; also
            the ``progress`` attribute, which a surface may set while it runs a verb.
    """

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        registry: str | None = None,
        settings: Settings | None = None,
        live: bool = True,
        host: Host | None = None,
        surface: str = "api",
        progress: ProgressFactory | None = None,
    ) -> None:
        from plugmarket.settings import from_env

        if settings is None:
            settings = _configured(home=home, registry=registry)
        else:
            settings = from_env({}, home=home, registry=registry, base=settings)
        if not settings.user_id:
            settings = settings.replace(user_id=_user_id(settings.home))
        self.settings = settings
        self.surface = surface
        self._want_live = live
        self._host = host
        self.progress = progress
        self._registry: RegistryClient | None = None
        self._installer: Installer | None = None
        self._live: LiveSet | None = None
        self._seen_current: tuple[int, int] | None = None
        self._changed: list[PlanItem] = []  # what the operation under way changed, for the audit

    def __repr__(self) -> str:
        return f"<Marketplace home={str(self.settings.home)!r}>"

    # --- parts, made on first use ------------------------------------------------

    @property
    def registry(self) -> RegistryClient:
        if self._registry is None:
            from plugmarket.registry import RegistryClient

            self._registry = RegistryClient(self.settings)
        return self._registry

    @property
    def installer(self) -> Installer:
        if self._installer is None:
            from plugmarket.installer import Installer

            self._installer = Installer(self.settings)
        return self._installer

    @property
    def live(self) -> LiveSet | None:
        """This process's live plugins, or None when this Marketplace loads nothing."""
        if self._want_live and self._live is None:
            from plugmarket.live import LiveSet

            self._live = LiveSet(self.settings, host=self._host, audit=self._record_denial)
        return self._live

    def reconfigure(self, settings: Settings) -> None:
        """Use ``settings`` from now on (``%plugin config``); the home must stay the same.

        The registry client and the installer are made anew on their next use;
        the live plugins stay loaded.
        """
        if settings.home != self.settings.home:
            raise PlugmarketError(
                "the home cannot change while plugins from it are live",
                hint="Set PLUGMARKET_HOME (or c.Plugmarket.home) and restart the kernel.",
            )
        self.close()
        self.settings = settings
        self._installer = None
        if self._live is not None:
            self._live.settings = settings

    def close(self) -> None:
        """Release the registry client's connections."""
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    # --- reading -------------------------------------------------------------------

    def search(
        self,
        query: str = "",
        *,
        category: str | None = None,
        tags: Sequence[str] = (),
        sort: str = "relevance",
        limit: int = 50,
    ) -> list[SearchHit]:
        """Plugins matching ``query`` in every configured registry."""
        from plugmarket.results import SearchResults

        hits = self.registry.search(query, category=category, tags=tags, sort=sort, limit=limit)
        return SearchResults(hits, query=query)

    def details(self, plugin_id: str) -> PluginDetails:
        """A plugin's details: every version, capabilities, rating, where it comes from."""
        return self.registry.details(validate_id(plugin_id, field_name="plugin id"))

    def versions(self, plugin_id: str) -> list[Any]:
        """Every version of a plugin, newest first (yanked ones included, marked)."""
        from plugmarket.results import VersionList

        plugin_id = validate_id(plugin_id, field_name="plugin id")
        return VersionList(self.registry.versions(plugin_id), plugin_id=plugin_id)

    def installed(self) -> InstalledList:
        """The plugins of the current generation."""
        from plugmarket.results import InstalledList

        current = self.installer.current()
        return InstalledList(current.plugins.values(), generation=current.number)

    def generations(self) -> list[Generation]:
        """Every kept generation, oldest first."""
        return self.installer.generations()

    # --- changing the installed set ---------------------------------------------

    def install(
        self,
        plugin_id: str,
        version: str | None = None,
        *,
        yes: bool = False,
        consent: Plan | None = None,
    ) -> Plan:
        """Install a plugin (and what it requires), and make it live.

        Args:
            plugin_id: The plugin.
            version: An exact version (default: the newest allowed).
            yes: Consent to the plan.
            consent: The plan the user saw and agreed to (a surface that showed a
                ``ConsentRequired`` plan passes it back with ``yes=True``): if the
                plan resolved now adds code or capabilities that one did not
                show, consent is asked again.

        Raises:
            ConsentRequired: the plan adds code or capabilities and ``yes`` is False
                (or it goes beyond ``consent``); its ``plan`` says what would happen.
            ResolutionError: no consistent set of versions exists.
            PlugmarketError: a download, check, or activation failed; nothing changed.
        """
        requirement = _requirement(plugin_id, version)
        with self._operation("install", plugin_id), self.installer.locked("install"):
            plan = self._resolve([requirement], operation="install")
            # Asked for by name: no longer only a dependency, so it stays when its user goes.
            wanted = normalize_id(plugin_id)
            installed = self.installer.current().plugins.get(wanted)
            promote = None
            if installed is not None and not installed.explicit and plan.item(wanted) is None:
                promote = {wanted: installed.replace(explicit=True)}
            return self._apply(
                plan, yes=yes, consent=consent, reason=f"install {requirement}", changes=promote
            )

    def update(
        self,
        plugin_id: str | None = None,
        version: str | None = None,
        *,
        yes: bool = False,
        consent: Plan | None = None,
    ) -> Plan:
        """Update one plugin (or every installed one) to the newest version it may have.

        An update that asks for capabilities beyond those granted needs consent
        again; one that does not is applied at once. Plugins defined in code are
        left as they are (define them again to change them). ``consent`` is as
        for :meth:`install`.
        """
        current = self.installer.current()
        if plugin_id is None:
            requests = [p.id for p in current.plugins.values() if p.explicit and not _local(p)]
            upgrade: Sequence[str] | bool = True
        else:
            _refuse_local(self._require_installed(current, plugin_id), "update")
            requests, upgrade = [_requirement(plugin_id, version)], [plugin_id]
        with self._operation("update", plugin_id or "all"), self.installer.locked("update"):
            plan = self._resolve(requests, operation="update", upgrade=upgrade)
            return self._apply(
                plan, yes=yes, consent=consent, reason=f"update {plugin_id or 'all'}"
            )

    def auto_update(self) -> Plan:
        """Apply every update that needs no new consent; skip (and say so) the others.

        Each installed plugin's update is resolved on its own, so one that would
        bring new code (a new dependency) or new capabilities is skipped whole,
        with what it would have dragged in.
        """
        from plugmarket.errors import ResolutionError

        applied: list[PlanItem] = []
        skipped: list[str] = []
        with self._operation("auto_update", "all"):
            explicit = sorted(
                p.id
                for p in self.installer.current().plugins.values()
                if p.explicit and not _local(p)
            )
            for plugin_id in explicit:
                with self.installer.locked("auto update"):
                    if plugin_id not in self.installer.current().plugins:
                        continue  # removed meanwhile
                    try:
                        plan = self._resolve([plugin_id], operation="update", upgrade=[plugin_id])
                    except ResolutionError as exc:
                        skipped.append(f"{plugin_id}: {exc.message}")
                        continue
                    if plan.needs_consent:
                        skipped.append(
                            f"{plugin_id}: {_summary(plan)}; "
                            f"run `plugmarket update {plugin_id}` to review it"
                        )
                        continue
                    self._apply(plan, yes=True, reason=f"auto update {plugin_id}")
                    applied.extend(plan.items)
        return Plan("auto_update", tuple(applied), skipped=tuple(skipped))

    def uninstall(self, plugin_id: str) -> Plan:
        """Remove a plugin, and dependencies nothing else needs, from disk and kernel.

        Raises:
            ResolutionError: another installed plugin requires it (named in the message).
            InstallError: it is not installed.
        """
        current = self.installer.current()
        self._require_installed(current, plugin_id)
        with self._operation("uninstall", plugin_id), self.installer.locked("uninstall"):
            plan = self._resolve([], operation="uninstall", remove=[plugin_id])
            return self._apply(plan, yes=True, reason=f"uninstall {plugin_id}")

    def define(
        self,
        code: str,
        plugin_id: str,
        version: str | None = None,
        *,
        grants: Sequence[str] = (),
        yes: bool = False,
        consent: Plan | None = None,
    ) -> Plan:
        """Install a plugin written as a string of code (``%%plugin define``), and make it live.

        The code is a module with ``activate(ctx)``. Its manifest is its own
        ``__plugin__`` literal, else one made of ``plugin_id``, ``version``
        (default ``0.0.0``) and ``grants`` as the capabilities it requests.
        Defining an installed id again (a new version, or the same one with new
        code) is an update, hot-swapped. Plugins it requires come from the
        registries, as for an install.

        Consent: the user wrote the code, so adding it needs none; the
        capabilities listed in ``grants`` are granted by naming them. Any other
        capability it requests (its ``__plugin__`` literal's), and any plugin
        it brings from a registry, needs ``yes`` (``consent`` as for :meth:`install`).
        With a ``__plugin__`` literal, ``version`` and ``grants`` must agree with it.

        Raises:
            ManifestError: the id, version, a capability or the literal is invalid.
            ConsentRequired: it requests capabilities not named in ``grants``.
            InstallError: the id is installed from a registry, or is beyond the admin's cap.
            ResolutionError: what it requires cannot be installed.
        """
        import hashlib

        from plugmarket.manifest import read_manifest_text

        plugin_id = validate_id(plugin_id, field_name="plugin id")
        named = tuple(str(parse_capability(c)) for c in grants)
        data = _code_artifact(code, plugin_id, version, named)
        manifest = read_manifest_text(data.decode(), path=f"code:{plugin_id}", toml=False)
        if manifest.id != plugin_id:
            raise ManifestError(
                f"code:{plugin_id}: the code's __plugin__ literal says id {manifest.id!r}, "
                f"but it was defined as {plugin_id!r}",
                path=f"code:{plugin_id}",
                field="id",
                found=manifest.id,
                allowed=plugin_id,
                hint="Make the literal's id and the id you define the same.",
            )
        requested = tuple(str(c) for c in manifest.capabilities)
        _agrees_with_literal(plugin_id, manifest, version, named)
        with self._operation("define", plugin_id), self.installer.locked("define"):
            old = self.installer.current().plugins.get(plugin_id)
            if old is not None and old.registry != LOCAL:
                raise InstallError(
                    f"{plugin_id} is installed from the registry {old.registry!r}; "
                    "a plugin defined in code cannot replace it",
                    plugin_id=plugin_id,
                    step="define",
                    hint=f"Pick another id, or uninstall {plugin_id} first.",
                )
            self._within_cap(plugin_id, requested)
            before = Grants((*named, *(old.grants if old is not None else ())))
            new = tuple(c for c in requested if not before.covers(parse_capability(c)))
            needs = [str(r) for r in manifest.requires]
            deps = self._resolve(needs, operation="define") if needs else Plan("define")
            item = PlanItem(
                "change" if old is not None else "add",
                plugin_id,
                old_version=old.version if old is not None else "",
                new_version=str(manifest.version),
                capabilities=requested,
                grants=requested,
                new_capabilities=new,
                registry=LOCAL,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
            plan = Plan("define", (*(i for i in deps.items if i.id != plugin_id), item))

            def fetch(wanted: PlanItem) -> bytes:
                return data if wanted.id == plugin_id else self._fetch(wanted)

            others = Plan("define", deps.items)
            try:
                return self._apply(
                    plan,
                    yes=yes or not (new or others.needs_consent),
                    consent=consent,
                    reason=f"define {plugin_id}",
                    fetch=fetch,
                )
            except PlugmarketError as exc:
                denied = _denial_in(exc)
                if denied is None or denied.plugin_id != plugin_id:
                    raise
                raise InstallError(
                    f"{plugin_id} was not defined: its code needs {denied.capability!r} "
                    f"({denied.operation} {denied.target}), which it was not granted",
                    plugin_id=plugin_id,
                    step="define",
                    hint=f"Define it again with --grant {denied.capability} if you trust it.",
                ) from exc

    def rollback(self) -> Generation:
        """Switch back to the previous generation (as a new one), on disk and live."""
        with self._operation("rollback", ""):
            generation = self.installer.rollback(live=self.live)
            self._mark_seen()
            return generation

    def enable(self, plugin_id: str) -> InstalledPlugin:
        """Keep a plugin installed and load it again."""
        return self._change(plugin_id, "enable", lambda p: p.replace(enabled=True))

    def disable(self, plugin_id: str) -> InstalledPlugin:
        """Keep a plugin installed but stop loading it."""
        return self._change(plugin_id, "disable", lambda p: p.replace(enabled=False))

    def grant(self, plugin_id: str, capability: str) -> InstalledPlugin:
        """Grant an installed plugin one more capability (within the admin's cap)."""
        cap = parse_capability(capability)
        self._within_cap(plugin_id, (str(cap),))

        def add(p: InstalledPlugin) -> InstalledPlugin:
            return p.replace(grants=Grants((*p.grants, cap)).as_strings())

        return self._change(plugin_id, "grant", add)

    def revoke(self, plugin_id: str, capability: str) -> InstalledPlugin:
        """Take a capability back from an installed plugin."""
        cap = str(parse_capability(capability))

        def drop(p: InstalledPlugin) -> InstalledPlugin:
            if cap not in p.grants:
                raise InstallError(
                    f"{plugin_id} was not granted {cap}",
                    plugin_id=plugin_id,
                    hint=f"Its grants are: {', '.join(p.grants) or 'none'}.",
                )
            return p.replace(grants=tuple(g for g in p.grants if g != cap))

        return self._change(plugin_id, "revoke", drop)

    # --- this kernel only ------------------------------------------------------------

    def load(self, plugin_id: str) -> Any:
        """Load an installed plugin into this process (whatever its enabled flag)."""
        live = self._need_live()
        plugin = self._require_installed(self.installer.current(), plugin_id)
        loaded = live.load(plugin, self.installer.files(plugin))
        self._record_loads([plugin.id])
        return loaded

    def unload(self, plugin_id: str) -> None:
        """Unload a plugin from this process only; the installed set is unchanged."""
        self._need_live().unload(plugin_id)

    def sync(self) -> bool:
        """Bring this process's live plugins in step with the home's current generation.

        One ``stat`` when nothing changed; returns whether anything was loaded or unloaded.
        """
        live = self.live
        if live is None:
            return False
        marker = self.installer.current_marker()
        if marker == self._seen_current and live.generation is not None:
            return False
        current = self.installer.current()
        changed = live.sync(current, self.installer.files)
        self._seen_current = marker
        self._record_loads(changed.loaded)
        return bool(changed)

    # --- lockfiles ---------------------------------------------------------------------

    def lock(self) -> bytes:
        """The current set as a lockfile: ids, versions, sha256 and grants."""
        from plugmarket._internal.records import encode_lock

        return encode_lock(self.installer.current())

    def apply_lock(
        self, path: str | Path, *, yes: bool = False, consent: Plan | None = None
    ) -> Plan:
        """Install exactly the set a lockfile names, verified by hash
        (``consent`` as for :meth:`install`).

        Raises:
            IntegrityError: a registry's artifact for a pinned version has another hash.
            ConsentRequired: the lockfile grants capabilities and ``yes`` is False.
        """
        from plugmarket._internal.records import read_lock

        spec = read_lock(Path(path))
        with self._operation("apply_lock", str(path)), self.installer.locked("apply lock"):
            locked = {p.id for p in spec.plugins}
            extra = [pid for pid in self.installer.current().plugins if pid not in locked]
            plan = self._resolve(
                [f"{p.id}==={p.version}" for p in spec.plugins],
                operation="apply_lock",
                upgrade=True,
                remove=extra,  # the set becomes exactly the lockfile's
            )
            plan = _pinned(plan, spec)
            self._apply(plan, yes=yes, consent=consent, reason=f"apply lock {path}")
            for pinned in spec.plugins:
                if not pinned.enabled:
                    self.disable(pinned.id)
            return plan

    # --- records -----------------------------------------------------------------------

    def rate(self, plugin_id: str, stars: int, text: str = "") -> Any:
        """Rate a plugin 1-5 stars, with an optional review (kept in the home)."""
        from plugmarket._internal.records import Reviews

        review = Reviews(self.settings.home).rate(plugin_id, stars, text)
        self._audit("rate", plugin_id, "ok", note=f"{stars} stars")
        return review

    def reviews(self, plugin_id: str) -> Any:
        """The ratings and reviews kept in this home for a plugin."""
        from plugmarket._internal.records import Reviews

        return Reviews(self.settings.home).reviews(plugin_id)

    def stats(self, plugin_id: str | None = None) -> Any:
        """Install, update, uninstall and load statistics (one plugin, or all)."""
        from plugmarket._internal.records import Stats

        return Stats(self.settings.home).get(plugin_id)

    def audit(self, limit: int = 100) -> Any:
        """The newest entries of the audit log."""
        from plugmarket._internal.records import AuditLog

        return AuditLog(self.settings.home).read(limit)

    def check(self, *, repair: bool = False) -> Any:
        """Verify the store and generations; repair what a crash left when asked."""
        return self.installer.check(repair=repair)

    # --- the machinery --------------------------------------------------------------

    def _resolve(self, requests: Sequence[str], *, operation: str, **options: Any) -> Plan:
        from plugmarket.resolver import RegistryCatalog, resolve

        with RegistryCatalog(self.registry) as catalog:
            resolution = resolve(
                list(requests),
                catalog=catalog,
                installed=self.installer.current(),
                settings=self.settings,
                operation=operation,
                **options,
            )
        return resolution.plan

    def _apply(
        self,
        plan: Plan,
        *,
        yes: bool,
        reason: str,
        changes: Mapping[str, InstalledPlugin] | None = None,
        fetch: Callable[[PlanItem], bytes] | None = None,
        consent: Plan | None = None,
    ) -> Plan:
        if consent is not None and not _covered(plan, consent):
            raise ConsentRequired(
                f"{plan.operation} changed since you agreed to it: {_summary(plan)}",
                plan=plan,
                hint="Nothing was changed. Review the new plan, then agree to it again.",
            )
        if plan.needs_consent and not yes:
            raise ConsentRequired(
                f"{plan.operation} needs your consent: {_summary(plan)}",
                plan=plan,
                hint="Review the plan, then run it again with yes=True (`--yes`).",
            )
        if plan.empty and not changes:
            return plan
        started = time.perf_counter()
        self.installer.apply(
            plan, fetch or self._fetch, reason=reason, live=self.live, changes=changes
        )
        self._mark_seen()
        self._changed.extend(plan.items)
        self._record_stats(plan, time.perf_counter() - started)
        return plan

    def _fetch(self, item: PlanItem) -> bytes:
        progress = self.progress(item.id, item.size) if self.progress is not None else None
        return self.registry.fetch_artifact(item.id, item.new_version, progress=progress)

    def _change(
        self, plugin_id: str, operation: str, edit: Callable[[InstalledPlugin], InstalledPlugin]
    ) -> InstalledPlugin:
        with self._operation(operation, plugin_id), self.installer.locked(operation):
            plugin = self._require_installed(self.installer.current(), plugin_id)
            changed = edit(plugin)
            self._changed.append(
                PlanItem(
                    "change", plugin_id, plugin.version, changed.version, grants=changed.grants
                )
            )
            if changed != plugin:
                self.installer.apply(
                    Plan(operation),
                    self._fetch,
                    reason=f"{operation} {plugin_id}",
                    live=self.live,
                    changes={plugin_id: changed},
                )
                self._mark_seen()
            return changed

    def _within_cap(self, plugin_id: str, capabilities: Sequence[str]) -> None:
        cap = self.settings.capability_cap
        if cap is None:
            return
        missing = Grants(cap).missing(parse_capability(c) for c in capabilities)
        if missing:
            raise InstallError(
                f"{plugin_id} cannot be granted {', '.join(str(c) for c in missing)}: "
                "beyond what your administrator allows any plugin",
                plugin_id=plugin_id,
                step="grant",
                hint="Ask your administrator, who sets capability_cap.",
            )

    def _require_installed(self, generation: Generation, plugin_id: str) -> InstalledPlugin:
        plugin_id = normalize_id(plugin_id)
        plugin = generation.plugins.get(plugin_id)
        if plugin is None:
            raise InstallError(
                f"{plugin_id} is not installed",
                plugin_id=plugin_id,
                hint="See what is installed with `plugmarket list`.",
            )
        return plugin

    def _need_live(self) -> LiveSet:
        live = self.live
        if live is None:
            raise PlugmarketError(
                "this Marketplace does not load plugins into its process (live=False)",
                hint="Use a Marketplace created with live=True, in the kernel.",
            )
        return live

    def _mark_seen(self) -> None:
        if self._live is not None:
            self._seen_current = self.installer.current_marker()

    @contextmanager
    def _operation(self, operation: str, subject: str) -> Iterator[None]:
        """Record the operation in the audit log, whether it succeeds or fails, with the
        plugins it changed (versions, grants) and the generation it left current."""
        self._changed = []
        try:
            yield
        except ConsentRequired:
            raise  # nothing happened yet: the surface asks and calls again
        except PlugmarketError as exc:
            self._audit(operation, subject, f"error: {exc.message}")
            raise
        generation = self._installer.current().number if self._installer is not None else None
        self._audit(operation, subject, "ok", changed=self._changed, generation=generation)

    def _audit(
        self,
        operation: str,
        subject: str,
        result: str,
        *,
        changed: Sequence[PlanItem] = (),
        generation: int | None = None,
        note: str = "",
    ) -> None:
        from plugmarket._internal.records import AuditLog
        from plugmarket.results import PluginChange

        plugins = [
            PluginChange(i.id, i.old_version, i.new_version, i.grants if i.new_version else ())
            for i in changed
        ]
        AuditLog(self.settings.home).append(
            AuditLog.entry(
                operation,
                subject,
                result,
                surface=self.surface,
                plugins=plugins,
                generation=generation,
                note=note,
            )
        )

    def _record_denial(self, denial: Any) -> None:
        from plugmarket._internal.records import AuditLog

        AuditLog(self.settings.home).denial(denial, surface=self.surface)

    def _record_loads(self, plugin_ids: Iterable[str]) -> None:
        with _only_warn("load statistics"):
            self._write_loads(plugin_ids)

    def _write_loads(self, plugin_ids: Iterable[str]) -> None:
        """Count a load, with its time, for each of these plugins now live here."""
        from plugmarket import loader
        from plugmarket._internal.records import Stats

        live = loader.loaded()
        Stats(self.settings.home).record_each(
            (pid, "load", live[pid].load_seconds) for pid in plugin_ids if pid in live
        )

    def _record_stats(self, plan: Plan, seconds: float) -> None:
        with _only_warn("statistics"):
            self._write_stats(plan, seconds)

    def _write_stats(self, plan: Plan, seconds: float) -> None:
        """Count the transaction, and the loads it made live here, in one write."""
        from plugmarket import loader
        from plugmarket._internal.records import Stats

        events = {"add": "install", "change": "update", "remove": "uninstall"}
        live = loader.loaded()
        each = [(item.id, events[item.action], seconds) for item in plan.items]
        each += [
            (item.id, "load", live[item.id].load_seconds)
            for item in plan.items
            if item.action != "remove" and item.id in live
        ]
        Stats(self.settings.home).record_each(each)


@contextmanager
def _only_warn(what: str) -> Iterator[None]:
    """Statistics are a convenience: failing to write them, after a committed
    operation, is logged instead of reported as the operation's failure."""
    try:
        yield
    except PlugmarketError as exc:
        _log.warning("plugmarket: could not record %s: %s", what, exc)


def _local(plugin: InstalledPlugin) -> bool:
    return plugin.registry == LOCAL


def _refuse_local(plugin: InstalledPlugin, operation: str) -> None:
    if _local(plugin):
        raise InstallError(
            f"{plugin.id} was defined in code; no registry carries it to {operation} from",
            plugin_id=plugin.id,
            step=operation,
            hint=f"Change its code and run `%%plugin define {plugin.id}` again.",
        )


def _covered(plan: Plan, shown: Plan) -> bool:
    """Whether every addition and new capability of ``plan`` was in the plan shown."""
    for item in plan.items:
        if not (item.action == "add" or item.new_capabilities):
            continue
        seen = shown.item(item.id)
        if seen is None or (seen.action, seen.new_version) != (item.action, item.new_version):
            return False
        if not set(item.new_capabilities) <= set(seen.new_capabilities):
            return False
    return True


def _denial_in(exc: BaseException) -> Any:
    """The capability denial behind ``exc`` (its chain of causes), if there is one."""
    from plugmarket.errors import CapabilityDenied

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, CapabilityDenied):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _agrees_with_literal(
    plugin_id: str, manifest: Any, version: str | None, named: Sequence[str]
) -> None:
    """With a ``__plugin__`` literal in the code, ``--version`` and ``--grant`` must match it."""
    where = f"code:{plugin_id}"
    if version is not None and manifest.version != _version_or_none(version):
        raise ManifestError(
            f"{where}: the code's __plugin__ literal says version {manifest.version}, "
            f"but it was defined as {version}",
            path=where,
            field="version",
            found=version,
            allowed=str(manifest.version),
            hint="Change the version in the literal, or leave --version out.",
        )
    requested = Grants(str(c) for c in manifest.capabilities)
    extra = [c for c in named if not requested.covers(parse_capability(c))]
    if extra:
        raise ManifestError(
            f"{where}: --grant {', '.join(extra)} is not among the capabilities its "
            "__plugin__ literal requests",
            path=where,
            field="capabilities",
            found=extra,
            allowed=", ".join(str(c) for c in manifest.capabilities) or "none",
            hint="Add it to the literal's capabilities, or leave that --grant out.",
        )


def _version_or_none(text: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return None


def _pinned(plan: Plan, spec: Any) -> Plan:
    """The plan with each plugin's grants from the lockfile, after checking that the
    registry's artifact is the very one the lockfile pins."""
    from dataclasses import replace

    from plugmarket.errors import IntegrityError

    pins = {p.id: p for p in spec.plugins}
    items = []
    for item in plan.items:
        pin = pins.get(item.id)
        if pin is None or item.action == "remove":
            items.append(item)
            continue
        if item.sha256 and item.sha256 != pin.sha256:
            raise IntegrityError(
                f"{item.id} {item.new_version}: the registry's artifact is not the one the "
                "lockfile pins",
                subject=item.id,
                expected=pin.sha256,
                actual=item.sha256,
                hint="The registry changed this version's bytes; do not trust it.",
            )
        granted = tuple(pin.grants)
        new = tuple(c for c in granted if c not in _already_granted(plan, item.id))
        items.append(replace(item, grants=granted, new_capabilities=new, explicit=pin.explicit))
    return Plan(plan.operation, tuple(items), skipped=plan.skipped)


def _already_granted(plan: Plan, plugin_id: str) -> tuple[str, ...]:
    item = plan.item(plugin_id)
    if item is None or item.action == "add":
        return ()
    return tuple(c for c in item.grants if c not in item.new_capabilities)


def _code_artifact(code: str, plugin_id: str, version: str | None, caps: Sequence[str]) -> bytes:
    """The code as a one-module artifact, with a ``__plugin__`` literal appended if it has none.

    Appended, not prepended, so line numbers in tracebacks are the cell's.
    """
    import re

    if re.search(r"^__plugin__\s*(:[^=]*)?=", code, re.M):
        return code.encode()
    literal = {"id": plugin_id, "version": version or "0.0.0", "capabilities": list(caps)}
    return f"{code.rstrip()}\n\n__plugin__ = {literal!r}\n".encode()


def _configured(*, home: str | Path | None, registry: str | None) -> Settings:
    from plugmarket.config import load_settings

    return load_settings(home=home, registry=registry)


def _requirement(plugin_id: str, version: str | None) -> str:
    plugin_id = validate_id(normalize_id(plugin_id), field_name="plugin id")
    return plugin_id if version is None else f"{plugin_id}=={version}"


def _summary(plan: Plan) -> str:
    return "; ".join(item.describe() for item in plan.items)


def _user_id(home: Path) -> str:
    """A stable id for this home, for rollout buckets (made once, kept in the home)."""
    path = home / "user-id"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".user-id.{os.getpid()}.{uuid.uuid4().hex}")
        tmp.write_text(f"{getpass.getuser()}@{socket.gethostname()}/{uuid.uuid4().hex}\n")
        try:
            os.link(tmp, path)  # atomic, and refused if another process made it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
