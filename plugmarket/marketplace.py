"""The facade: the one object every surface (magics, panels, CLI, server) calls.

``Marketplace`` turns a user's verb into a resolved :class:`~plugmarket.plan.Plan`,
asks for consent where the plan adds code or capabilities, hands the plan to
the installer's transaction, keeps this process's live plugins in step, and
records the operation in the audit log and the statistics. It holds no
policy of its own beyond that orchestration: resolution lives in
resolver.py, disk state in installer.py, trust in the registry client, the
consent rules in _internal/consent.py, plugins defined in code in
_internal/defined.py, the audit and statistics writes in
_internal/bookkeeping.py, and the starting settings in _internal/home_settings.py.

Registries, the installer and the records are created on first use, so a
``Marketplace`` costs nothing until a verb needs them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugmarket._internal import defined, durable
from plugmarket._internal.bookkeeping import Bookkeeping
from plugmarket._internal.consent import (
    agreed,
    granted,
    pinned,
    requirement,
    revoked,
    summary,
    within_cap,
)
from plugmarket._internal.home_settings import settings_for, user_id
from plugmarket._internal.installed import LOCAL
from plugmarket.capabilities import parse_capability
from plugmarket.errors import InstallError, PlugmarketError
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
        settings = settings_for(settings, home=home, registry=registry)
        self.settings = settings
        self._books = Bookkeeping(settings.home, surface)  # the home never changes
        self._want_live = live
        self._host = host
        self.progress = progress
        self._registry: RegistryClient | None = None
        self._installer: Installer | None = None
        self._live: LiveSet | None = None
        self._seen_current: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"<Marketplace home={str(self.settings.home)!r}>"

    @property
    def surface(self) -> str:
        """Who is calling, for the audit log (``"api"``, ``"cli"``, ``"magic"``...)."""
        return self._books.surface

    @surface.setter
    def surface(self, surface: str) -> None:
        self._books.surface = surface

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

            self._live = LiveSet(self.settings, host=self._host, audit=self._books.denial)
        return self._live

    def configure(self, key: str, value: str) -> Settings:
        """Change one setting for this Marketplace from now on (``%plugin config KEY VALUE``).

        ``value`` is read and checked as the ``c.Plugmarket`` trait of that name
        is (``registry`` replaces the registries, keeping keys configured for
        that URL). The registry client and the installer are made anew on their
        next use; live plugins stay loaded.

        Raises:
            PlugmarketError: the key cannot change at run time (the home, the
                capability cap...), or the value is invalid.
        """
        from plugmarket.config import change_setting

        self.settings = change_setting(self.settings, key, value)  # never the home
        self.close()
        self._installer = None
        if self._live is not None:
            self._live.settings = self.settings
        return self.settings

    def close(self) -> None:
        """Release the registry client's connections, once the last switch of the
        installed set is on the disk (it is flushed after the operation returns)."""
        durable.settle()
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
        wanted = requirement(plugin_id, version)
        with (
            self._operation("install", plugin_id),
            self.installer.locked("install"),
            self.registry.holding_copies() as write_copies,
        ):
            plan = self._resolve([wanted], operation="install")
            # Asked for by name: no longer only a dependency, so it stays when its user goes.
            pid = normalize_id(plugin_id)
            installed = self.installer.current().plugins.get(pid)
            promote = None
            if installed is not None and not installed.explicit and plan.item(pid) is None:
                promote = {pid: installed.replace(explicit=True)}
            return self._apply(
                plan,
                yes=yes,
                consent=consent,
                reason=f"install {wanted}",
                changes=promote,
                meanwhile=write_copies,
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
            requests = [
                p.id for p in current.plugins.values() if p.explicit and not defined.is_local(p)
            ]
            upgrade: Sequence[str] | bool = True
        else:
            defined.refuse_local(self._require_installed(current, plugin_id), "update")
            requests, upgrade = [requirement(plugin_id, version)], [plugin_id]
        with (
            self._operation("update", plugin_id or "all"),
            self.installer.locked("update"),
            self.registry.holding_copies() as write_copies,
        ):
            plan = self._resolve(requests, operation="update", upgrade=upgrade)
            return self._apply(
                plan,
                yes=yes,
                consent=consent,
                reason=f"update {plugin_id or 'all'}",
                meanwhile=write_copies,
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
                if p.explicit and not defined.is_local(p)
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
                            f"{plugin_id}: {summary(plan)}; "
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
        plugin_id = validate_id(plugin_id, field_name="plugin id")
        named = tuple(str(parse_capability(c)) for c in grants)
        data, manifest = defined.read_code(code, plugin_id, version, named)
        with self._operation("define", plugin_id), self.installer.locked("define"):
            old = self.installer.current().plugins.get(plugin_id)
            defined.refuse_replacing(plugin_id, old)
            self._within_cap(plugin_id, [str(c) for c in manifest.capabilities])
            item = defined.defined_item(plugin_id, old, manifest, named, data)
            needs = [str(r) for r in manifest.requires]
            deps = self._resolve(needs, operation="define") if needs else Plan("define")
            plan = Plan("define", (*(i for i in deps.items if i.id != plugin_id), item))

            def fetch(wanted: PlanItem) -> bytes:
                return data if wanted.id == plugin_id else self._fetch(wanted)

            others = Plan("define", deps.items)
            try:
                return self._apply(
                    plan,
                    yes=yes or not (item.new_capabilities or others.needs_consent),
                    consent=consent,
                    reason=f"define {plugin_id}",
                    fetch=fetch,
                )
            except PlugmarketError as exc:
                refused = defined.not_granted(plugin_id, exc)
                if refused is None:
                    raise
                raise refused from exc

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
        return self._change(plugin_id, "grant", lambda p: granted(p, cap))

    def revoke(self, plugin_id: str, capability: str) -> InstalledPlugin:
        """Take a capability back from an installed plugin."""
        cap = str(parse_capability(capability))
        return self._change(plugin_id, "revoke", lambda p: revoked(plugin_id, p, cap))

    # --- this kernel only ------------------------------------------------------------

    def load(self, plugin_id: str) -> Any:
        """Load an installed plugin into this process (whatever its enabled flag)."""
        live = self._need_live()
        plugin = self._require_installed(self.installer.current(), plugin_id)
        loaded = live.load(plugin, self.installer.files(plugin))
        self._books.loads([plugin.id])
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
        self._books.loads(changed.loaded)
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
            plan = pinned(plan, spec)
            self._apply(plan, yes=yes, consent=consent, reason=f"apply lock {path}")
            for pin in spec.plugins:
                if not pin.enabled:
                    self.disable(pin.id)
            return plan

    # --- records -----------------------------------------------------------------------

    def rate(self, plugin_id: str, stars: int, text: str = "") -> Any:
        """Rate a plugin 1-5 stars, with an optional review (kept in the home)."""
        return self._books.rate(plugin_id, stars, text)

    def reviews(self, plugin_id: str) -> Any:
        """The ratings and reviews kept in this home for a plugin."""
        return self._books.reviews(plugin_id)

    def stats(self, plugin_id: str | None = None) -> Any:
        """Install, update, uninstall and load statistics (one plugin, or all)."""
        return self._books.stats(plugin_id)

    def audit(self, limit: int = 100) -> Any:
        """The newest entries of the audit log."""
        return self._books.read_audit(limit)

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
                rollout_id=functools.partial(user_id, self.settings.home),
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
        meanwhile: Callable[[], object] | None = None,
    ) -> Plan:
        agreed(plan, yes=yes, consent=consent)
        if plan.empty and not changes:
            return plan
        started = time.perf_counter()
        self.installer.apply(
            plan,
            fetch or self._fetch,
            reason=reason,
            live=self.live,
            changes=changes,
            meanwhile=meanwhile,
        )
        self._mark_seen()
        self._books.changed.extend(plan.items)
        self._books.transaction(plan, time.perf_counter() - started)
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
            self._books.changed.append(
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
        within_cap(self.settings.capability_cap, plugin_id, capabilities)

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
        """Audit the operation, whether it succeeds or fails (see Bookkeeping.operation)."""

        def generation() -> int | None:
            return self._installer.current().number if self._installer is not None else None

        with self._books.operation(operation, subject, generation):
            yield
