"""The installer: plans become generations, atomically, crash-safely, one at a time.

Disk state of a home::

    store/<sha256>/        unpacked artifacts, immutable (_internal/store.py)
    generations/<n>.json   numbered installed sets, never rewritten (_internal/generations.py)
    current                the current generation's number: the commit point
    journal.json           present only while a transaction runs (_internal/journal.py)
    lock, lock.info        the home lock and who holds it (_internal/locking.py)

A transaction, under the home lock: journal the intent -> fetch and verify
new artifacts (sha256, size) and put them in the store -> write the next
generation's file, and flush it with the journal and the new entries in one
batch (one ``syncfs`` where trusted), swapping the live plugins (when asked)
meanwhile -> switch ``current`` (rename) -> prune old generations and collect
unreferenced store entries -> remove the journal -> fsync the home. History
only grows: a rollback is a new generation holding an older set. ``current``
is renamed only after all it relies on is on the disk
(docs/decisions/0008-transactions.md).

Invariants:

- The state is always exactly the old generation or the new one: every step
  before the switch is undone on failure (live plugins included), and a
  process killed at any step is recovered by the next :class:`Installer` on
  that home, which finishes or undoes the transaction as ``current`` says.
- The store holds exactly what kept generations reference, once a
  transaction is over (recovered or not).
- Readers (:meth:`Installer.current`, :meth:`Installer.files`) take no lock:
  generation files are written before ``current`` names them and the two
  newest are never pruned.

Every step has a name; ``PLUGMARKET_FAULT=<step>`` kills the process there
(docs/decisions/0008-transactions.md lists them).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

from packaging.version import InvalidVersion, Version

from plugmarket._internal import durable, journal, recovery
from plugmarket._internal.generations import Generations
from plugmarket._internal.installed import Generation, InstalledPlugin
from plugmarket._internal.journal import Faults, Journal
from plugmarket._internal.locking import HomeLock
from plugmarket._internal.recovery import CheckProblem, CheckReport
from plugmarket._internal.store import (
    SHA256,
    Staged,
    Store,
    artifact_name,
    check_artifact,
    remove_tree,
)
from plugmarket.errors import InstallError, IntegrityError, PlugmarketError
from plugmarket.plan import Plan, PlanItem

if TYPE_CHECKING:
    from plugmarket.live import LiveSet
    from plugmarket.settings import Settings
    from plugmarket.sources import PluginFiles

__all__ = ["CheckProblem", "CheckReport", "Installer"]

log = logging.getLogger("plugmarket.installer")

DEFAULT_KEEP = 10  # generations kept; older ones are pruned with what only they reference
DEFAULT_LOCK_TIMEOUT = 60.0  # seconds to wait for another process's transaction


class Installer:
    """The disk state of one home, changed only through transactions.

    Construction recovers a transaction that a dead process left unfinished
    (under the home lock, if it is free at once: a process holding it is alive
    and recovers first itself); a recovery that cannot complete is kept in
    :attr:`recovery_error` for :meth:`check` to report, and every transaction
    tries again first.

    Args:
        settings: The home and the caps on artifacts.
        keep: Generations to keep (default 10, at least 2).
        lock_timeout: Seconds to wait for the home lock (default 60).
        faults: Steps to SIGKILL the process at (default: ``PLUGMARKET_FAULT``).

    Attributes:
        steps: The steps the last transaction passed, in order.
        recovered: What construction recovered (``""`` if nothing).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        keep: int | None = None,
        lock_timeout: float | None = None,
        faults: str | None = None,
    ) -> None:
        self.settings = settings
        self.home = Path(settings.home)
        self.keep = max(2, keep or int(getattr(settings, "keep_generations", DEFAULT_KEEP)))
        timeout = lock_timeout
        if timeout is None:
            timeout = float(getattr(settings, "lock_timeout", DEFAULT_LOCK_TIMEOUT))
        self.store = Store(self.home / "store", settings)
        self.gens = Generations(self.home)
        self.lock = HomeLock(self.home, timeout)
        self._fault_spec = faults
        self.steps: tuple[str, ...] = ()
        self.recovered = ""
        self.recovery_error: InstallError | None = None
        if journal.pending(self.home):
            faults_now = Faults(faults)
            try:
                # A process holding the lock is alive, and recovers first if it
                # goes on to a transaction; readers need no recovery: never wait.
                with self.lock.attempt("recover") as held:
                    if held:
                        self.recovered = self._recover(faults_now)
            except InstallError as exc:
                self.recovery_error = exc
                log.warning("could not recover the plugmarket home: %s", exc)
            finally:
                self.steps = tuple(faults_now.passed)

    # --- reading (no lock) ---------------------------------------------------------

    def current(self) -> Generation:
        """The current generation (number 0, empty, if nothing was installed yet).

        Raises:
            InstallError: ``current`` or its generation file is damaged.
        """
        return self.gens.read(self.gens.current_number())

    def current_marker(self) -> tuple[int, int]:
        """One ``stat`` of ``current``: it differs whenever the current generation changed."""
        return self.gens.marker()

    def generations(self) -> list[Generation]:
        """Every kept generation, oldest first.

        Raises:
            InstallError: a generation file is damaged.
        """
        kept = []
        current = self._current_or_none()
        for number in self.gens.numbers():
            if current is not None and number > current:  # being written: not committed
                break
            if self.gens.path(number).exists():  # not pruned meanwhile
                kept.append(self.gens.read(number))
        return kept

    def files(self, plugin: InstalledPlugin) -> PluginFiles:
        """The stored files of an installed plugin, ready for ``plugmarket.load``.

        Raises:
            InstallError: its store entry is missing or damaged.
        """
        return self.store.files(plugin.sha256, plugin.origin)

    def locked(self, operation: str = "operation") -> AbstractContextManager[None]:
        """Hold the home lock around several calls (re-entrant in this thread).

        The facade resolves and applies under one hold, so no other process
        changes the installed set in between.

        Raises:
            InstallError: the lock could not be had within the timeout.
        """
        return self.lock.hold(operation)

    # --- transactions --------------------------------------------------------------

    def apply(
        self,
        plan: Plan,
        fetch: Callable[[PlanItem], bytes],
        *,
        reason: str,
        live: LiveSet | None = None,
        changes: Mapping[str, InstalledPlugin] | None = None,
        meanwhile: Callable[[], object] | None = None,
    ) -> Generation:
        """Apply a plan (and metadata ``changes``) as the next generation.

        Args:
            plan: What to add, change and remove; built against the current generation.
            fetch: Returns an item's artifact bytes; called only for artifacts
                not in the store, and checked against the item's sha256 and size.
            reason: Recorded in the generation (``"install csv-preview"``).
            live: The process's live plugins, swapped as part of the transaction.
            changes: ``id -> InstalledPlugin`` replacing entries (enable, grant...),
                whose artifacts must already be stored.
            meanwhile: Work to do while the commit's flush waits for the disk, after
                the live swap (the registry's cache writes); it should not raise,
                and what it raises undoes the transaction.

        Returns:
            The new current generation (the current one if nothing changes).

        Raises:
            InstallError: the plan no longer matches the installed set, the home
                cannot be written, the lock cannot be had, or the live swap failed.
            IntegrityError: an artifact differs from its pinned hash or size.
            PlugmarketError: ``fetch`` failed, or an artifact was refused.
            In every case the disk and the live plugins are as they were.
        """
        changes = dict(changes or {})
        with self._transaction(plan.operation or "apply") as faults:
            old = self.current()
            _check_plan(plan, old)
            if plan.empty and all(old.plugins.get(k) == v for k, v in changes.items()):
                return old
            needed: dict[str, PlanItem] = {}
            committed: set[str] | None = None
            for item in plan.items:
                if item.action != "remove":
                    sha = item.sha256.lower()
                    if sha in needed or not self.store.has(sha):
                        needed.setdefault(sha, item)
                        continue
                    # Only an entry a committed generation names was on the disk, whole,
                    # before that generation was switched to; any other may be the torn
                    # leftover of a transaction a power cut stopped: store it anew.
                    if committed is None:  # an older one that cannot be read vouches for none
                        committed = recovery.referenced_entries(
                            self.gens, upto=old.number, skip_damaged=True
                        )
                    if sha not in committed:
                        needed[sha] = item

            def build() -> dict[str, InstalledPlugin]:
                plugins = dict(old.plugins)
                for item in plan.items:
                    if item.action == "remove":
                        plugins.pop(item.id, None)
                    else:
                        plugins[item.id] = self._installed(item, old.plugins.get(item.id))
                for plugin_id, plugin in changes.items():
                    if not self.store.has(plugin.sha256):
                        raise InstallError(
                            f"{plugin_id}: its artifact {plugin.sha256[:12]} is not in the store",
                            plugin_id=plugin_id,
                            step="apply changes",
                            hint="Install the plugin instead of editing its entry.",
                        )
                    plugins[plugin_id] = plugin
                return plugins

            return self._commit(
                faults,
                plan.operation or "apply",
                old,
                build,
                old.number,
                reason,
                live,
                needed,
                fetch,
                meanwhile,
            )

    def rollback(self, *, live: LiveSet | None = None) -> Generation:
        """Switch back to the generation before the current one, as a new generation.

        "Before" is the current generation's ``parent``; a generation made by a
        rollback or switch takes the parent of the one it copies, so repeated
        rollbacks walk further back, and :meth:`switch_to` goes forward again.

        Raises:
            InstallError: there is no earlier generation, it is no longer kept,
                its files are missing, or the live swap failed (nothing changed).
        """
        with self._transaction("rollback") as faults:
            old = self.current()
            if old.parent is None:
                raise InstallError(
                    f"generation {old.number} has no earlier generation to roll back to",
                    step="rollback",
                    hint="See the kept generations with `plugmarket generations`.",
                )
            return self._switch(faults, old, old.parent, live, "rollback")

    def switch_to(self, number: int, *, live: LiveSet | None = None) -> Generation:
        """Make a copy of kept generation ``number`` the current generation.

        Raises:
            InstallError: generation ``number`` is not kept, its files are
                missing, or the live swap failed (nothing changed).
        """
        with self._transaction("switch") as faults:
            old = self.current()
            if number == old.number:
                return old
            if number > old.number:  # the current generation is always the newest
                raise InstallError(
                    f"cannot switch to generation {number}: generation {number} is not kept "
                    f"(the current generation, {old.number}, is the newest)",
                    step="switch",
                    hint="See the kept generations with `plugmarket generations`.",
                )
            return self._switch(faults, old, number, live, "switch")

    def gc(self) -> list[str]:
        """Prune generations beyond the newest ``keep`` and remove store entries none references.

        Returns:
            The sha256 of every store entry removed.

        Raises:
            InstallError: the lock cannot be had, or a generation file is damaged
                (then nothing is removed: what it references is unknown).
        """
        with self._transaction("gc") as faults:
            number = self.gens.current_number()
            entry = Journal.begin("gc", number, number)
            self._write_journal(entry.at("prune"), faults)
            recovery.prune(self.gens, self.keep)
            faults("generations-pruned")
            removed = recovery.collect(self.store, self.gens)
            faults("entries-collected")
            journal.remove(self.home)
            faults("journal-committed")
            return removed

    def check(self, *, repair: bool = False) -> CheckReport:
        """Verify the home; with ``repair``, fix what can be fixed safely.

        Checks: no transaction left unfinished; ``current`` names a readable
        generation and none newer exists; every kept generation's plugins are
        in the store and their files hash to what was stored; no store entry
        is unreferenced; no temporary debris. Repairs: recover the transaction,
        remove uncommitted generations, unreferenced entries and debris, and
        point a damaged ``current`` at the newest sound generation.

        Raises:
            InstallError: the lock cannot be had.
        """
        with self._transaction("check", recover=False):
            report = recovery.check(self.home, self.store, self.gens, self.keep, repair=repair)
            if repair and not journal.pending(self.home):
                self.recovery_error = None
            return report

    # --- the machinery ---------------------------------------------------------------

    @contextmanager
    def _transaction(self, operation: str, *, recover: bool = True) -> Iterator[Faults]:
        faults = Faults(self._fault_spec)
        try:
            # The watch opens before anything is written: it sees every write error after.
            with self.lock.hold(operation), durable.watching(self.home):
                faults("lock-acquired")
                if recover and (journal.pending(self.home) or self._uncommitted_left()):
                    self.recovered = self._recover(faults)
                    self.recovery_error = None
                yield faults
        finally:
            self.steps = tuple(faults.passed)

    def _commit(
        self,
        faults: Faults,
        op: str,
        old: Generation,
        build: Callable[[], Mapping[str, InstalledPlugin]],
        parent: int | None,
        reason: str,
        live: LiveSet | None,
        needed: Mapping[str, PlanItem] | None = None,
        fetch: Callable[[PlanItem], bytes] | None = None,
        meanwhile: Callable[[], object] | None = None,
    ) -> Generation:
        """Steps 2-9 of a transaction (docs/decisions/0008-transactions.md).

        One wait for the disk before the commit point: the journal, the new
        entries (unpacked into temporary store folders without fsyncs, then
        renamed into place), the store folder, the generation file (written in
        place, under a number nothing reads yet), its folder and the staged
        ``current`` are flushed in one batch, which runs while the live plugins
        swap (and ``meanwhile`` runs) and ends before ``current`` is renamed.
        """
        needed = needed or {}
        new_number = max([old.number, *self.gens.numbers()]) + 1
        entry = Journal.begin(op, old.number, new_number, tuple(needed))
        if needed:  # what an interrupted transaction left goes first
            for debris in self.store.debris():
                remove_tree(debris)
            for sha in needed:
                self.store.remove(sha)  # an unreferenced leftover, not to be trusted
        fetching = swapped = False
        try:
            self._start_journal(entry.at("store" if needed else "generation"), faults)
            fetching = True  # an OSError from here on is a download's, not the home's
            staging = self._fetch_and_stage(needed, cast("Callable[[PlanItem], bytes]", fetch))
            fetching = False
            files: list[Path] = [journal.path(self.home)]
            folders: list[Path] = [self.home, self.store.root] if needed else [self.home]
            for i, staged in enumerate(staging, 1):
                faults(f"artifact-unpacked:{i}")
                self.store.place(staged)
                faults(f"artifact-stored:{i}")
                entry_files, entry_folders = staged.to_sync(placed=True)
                files += entry_files
                folders += entry_folders
            generation = Generation(new_number, build(), parent=parent, reason=reason)
            files += [self.gens.stage(generation), self.gens.stage_switch(new_number)]
            folders.append(self.gens.folder)
            if live is None and meanwhile is None:
                durable.sync_all(files, folders)
            else:
                # The live swap reads only the new entries, whole whether or not they
                # are on the disk yet: it runs while the batch waits for the disk.
                batch = durable.sync_soon(files, folders)
                try:
                    if live is not None:
                        live.sync(generation, self.files)
                        swapped = True
                        faults("live-swapped")
                    if meanwhile is not None:
                        meanwhile()
                finally:
                    failed = durable.outcome(batch)  # an undo removes what it flushes
                if failed is not None:
                    raise failed
            faults("generation-temp-written")
            self.gens.publish(new_number)
            faults("generation-written")
            faults("current-temp-written")
            self.gens.publish_switch()
            faults("current-switched")
        except BaseException as exc:
            if self._current_or_none() != new_number:
                self._undo(entry, old, live if swapped else None, exc)
                if isinstance(exc, OSError) and not fetching:
                    raise _write_error(self.home, exc, op) from exc
                raise
        self._finish(entry, faults)
        # Once, after the journal is gone too (an unlink during it would wait for it),
        # and not waited for: the switch is atomic now, and on the disk a flush later
        # (docs/decisions/0008-transactions.md). Until then a power cut finds the
        # generation before whole, and current: tidying keeps at least two, and the
        # next transaction's batch flushes the home before it prunes anything.
        durable.fsync_dir_soon(self.home)
        return generation

    def _fetch_and_stage(
        self, needed: Mapping[str, PlanItem], fetch: Callable[[PlanItem], bytes]
    ) -> list[Staged]:
        """Download each needed artifact and unpack it into a temporary store folder.

        With several, each unpacks on the job thread while the next downloads:
        making its files and waiting for the server overlap (a lone one unpacks
        here, where a hand-off would only add a wait). Returns or raises only
        once no unpacking runs, so an undo can remove every folder made.

        Raises:
            OSError: a download's own failure, untranslated (see :meth:`_commit`).
        """
        staging: list[Staged] = []
        unpacking: list[Future[Staged]] = []
        try:
            for sha, item in needed.items():
                for done in (f for f in unpacking if f.done()):
                    done.result()  # an artifact refused: download no more
                data = self._download(item, fetch)
                name, where = artifact_name(item.url, data, item.id), item.url or item.id
                stage = functools.partial(
                    self.store.stage, sha, data, name, where=where, sync=False
                )
                if len(needed) == 1:
                    staging.append(stage())
                else:
                    unpacking.append(durable.soon(stage))
        finally:
            for future in unpacking:
                durable.outcome(future)
            if len(needed) > 1:
                # The job thread runs its jobs in turn: once this one has run, so has
                # an unpacking a Ctrl-C kept from being listed above.
                durable.outcome(durable.soon(lambda: None))
        return staging + [future.result() for future in unpacking]

    def _start_journal(self, entry: Journal, faults: Faults) -> None:
        """Write the journal, not fsynced: the commit's batch flushes it with the rest.

        From here on a process killed at any point leaves a journal for
        recovery. A power cut before the batch may lose it, and with it the
        record of what this transaction created; what it leaves is never
        trusted all the same (see :meth:`apply` and docs/decisions/0008).

        Raises:
            InstallError: the home cannot be written (nothing is left behind).
        """
        try:
            try:
                journal.write_temp(self.home, entry)
            except FileNotFoundError:  # the home's first transaction
                self.home.mkdir(parents=True, exist_ok=True)
                journal.write_temp(self.home, entry)
        except OSError as exc:
            journal.remove(self.home)
            raise _write_error(self.home, exc, entry.op) from exc
        faults("journal-temp-written")
        faults("journal-written")

    def _uncommitted_left(self) -> bool:
        """Whether a generation file above ``current`` is on the disk with no journal:
        what a power cut before a transaction's batch may leave (its journal was not
        fsynced yet). It was never current; recovery removes it and what it named.

        A power cut leaves at most one, numbered ``current + 1`` (recovery clears
        any before a transaction takes its number). More, or another number, means
        ``current`` itself was lost or damaged: that is for ``check --repair`` to
        judge, never for a transaction to sweep away.

        Raises:
            InstallError: generation files above ``current`` that no power cut leaves.
        """
        current = self._current_or_none()
        if current is None:
            return False
        above = [n for n in self.gens.numbers() if n > current]
        if not above:
            return False
        if above != [current + 1]:
            raise InstallError(
                f"the plugmarket home {self.home} has generations "
                f"{', '.join(map(str, above))} above the current one ({current}): "
                "its `current` file was lost or damaged",
                step="recover",
                hint="Run `plugmarket check` to see the home, and `plugmarket check --repair` "
                "to repair it; nothing was changed.",
            )
        return True

    def _switch(
        self, faults: Faults, old: Generation, number: int, live: LiveSet | None, op: str
    ) -> Generation:
        try:
            target = self.gens.read(number)
        except InstallError as exc:
            raise InstallError(
                f"cannot {op} to generation {number}: {exc.message}",
                step=op,
                hint="See the kept generations with `plugmarket generations`.",
            ) from exc
        missing = sorted(p.id for p in target.plugins.values() if not self.store.has(p.sha256))
        if missing:
            raise InstallError(
                f"cannot {op} to generation {number}: the files of {', '.join(missing)} "
                "are no longer in the store",
                step=op,
                hint="Run `plugmarket check`; install those plugins again instead.",
            )
        plugins = dict(target.plugins)
        reason = f"{'rollback' if op == 'rollback' else 'switch'} to {number}"
        return self._commit(faults, op, old, lambda: plugins, target.parent, reason, live)

    def _write_journal(self, entry: Journal, faults: Faults) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            journal.write(self.home, entry, fault=faults, durable=True)
        except OSError as exc:
            journal.remove(self.home)
            raise _write_error(self.home, exc, entry.op) from exc
        faults("journal-written")

    def _undo(
        self, entry: Journal, old: Generation, live: LiveSet | None, cause: BaseException
    ) -> None:
        """Put everything back as it was before ``entry`` began (the switch did not happen)."""
        if live is not None:
            try:
                live.sync(old, self.files)
            except PlugmarketError as exc:
                log.error(
                    "could not restore the live plugins of generation %d: %s", old.number, exc
                )
        try:
            self.gens.remove(entry.new)
            for sha in entry.created:
                self.store.remove(sha)
            for debris in [*self.store.debris(), *self.gens.debris()]:
                remove_tree(debris)
            journal.remove(self.home)
        except OSError as exc:
            # The journal stays: the next Installer on this home finishes the undo.
            cause.add_note(
                f"plugmarket could not undo everything yet ({exc}); it will on next start"
            )

    def _finish(self, entry: Journal, faults: Faults) -> None:
        """After the switch: prune, collect, commit. Failures here are recovered later."""
        try:
            if len(self.gens.numbers()) > self.keep:
                recovery.prune(self.gens, self.keep)
                faults("generations-pruned")
                recovery.collect(self.store, self.gens)
                faults("entries-collected")
            journal.remove(self.home)
            faults("journal-committed")
        except (OSError, InstallError) as exc:
            log.warning("generation %d is current; tidying up failed (%s)", entry.new, exc)

    def _recover(self, faults: Faults) -> str:
        try:
            return recovery.recover(self.home, self.store, self.gens, self.keep, faults)
        except OSError as exc:
            raise _write_error(self.home, exc, "recover") from exc

    def _current_or_none(self) -> int | None:
        try:
            return self.gens.current_number()
        except InstallError:
            return None

    def _download(self, item: PlanItem, fetch: Callable[[PlanItem], bytes]) -> bytes:
        data = bytes(fetch(item))
        check_artifact(
            data,
            sha256=item.sha256.lower(),
            size=item.size,
            limit=self.settings.max_plugin_size,
            what=f"{item.id} {item.new_version}".strip(),
            where=item.url or item.id,
        )
        return data

    def _installed(self, item: PlanItem, previous: InstalledPlugin | None) -> InstalledPlugin:
        entry = self.store.entry(item.sha256.lower())
        manifest = entry.manifest
        try:
            same_version = not item.new_version or Version(item.new_version) == manifest.version
        except InvalidVersion:
            same_version = False
        if manifest.id != item.id or not same_version:
            raise IntegrityError(
                f"the artifact for {item.id} {item.new_version} holds {manifest.id} "
                f"{manifest.version}",
                subject=item.url or item.id,
                expected=f"{item.id} {item.new_version}",
                actual=f"{manifest.id} {manifest.version}",
                hint="Nothing was installed. The registry's record and its artifact disagree; "
                "tell the registry's admin.",
            )
        return InstalledPlugin(
            id=item.id,
            version=item.new_version or str(manifest.version),
            sha256=entry.sha256,
            top=entry.top,
            grants=tuple(item.grants),
            requested=tuple(str(c) for c in manifest.capabilities),
            requires=tuple(str(r) for r in manifest.requires),
            enabled=previous.enabled if previous is not None else True,
            explicit=item.explicit or (previous is not None and previous.explicit),
            registry=item.registry,
            origin=item.url,
        )


def _check_plan(plan: Plan, current: Generation) -> None:
    """Refuse a plan made against another installed set, or one without pinned hashes."""
    for item in plan.items:
        installed = current.plugins.get(item.id)
        stale = ""
        if item.action == "add" and installed is not None:
            stale = f"it adds {item.id}, which is now installed ({installed.version})"
        elif item.action in ("change", "remove") and installed is None:
            stale = f"it {item.action}s {item.id}, which is no longer installed"
        elif (
            item.action in ("change", "remove")
            and installed is not None
            and item.old_version
            and installed.version != item.old_version
        ):
            stale = f"it expects {item.id} {item.old_version}, but {installed.version} is installed"
        elif item.action not in ("add", "change", "remove"):
            stale = f"its action {item.action!r} for {item.id} is not add, change or remove"
        if stale:
            raise InstallError(
                f"the plan for {plan.operation} no longer fits the installed set: {stale}",
                plugin_id=item.id,
                step="check plan",
                hint="Another kernel or terminal changed the plugins meanwhile; run the "
                "operation again.",
            )
        if item.action != "remove" and not SHA256.match(item.sha256.lower()):
            raise InstallError(
                f"the plan gives {item.id} no sha256 to verify its artifact "
                f"(found {item.sha256!r})",
                plugin_id=item.id,
                step="check plan",
                hint="Plans come from the resolver, which pins every artifact's hash.",
            )


def _write_error(home: Path, exc: OSError, op: str) -> InstallError:
    return InstallError(
        f"{op}: cannot write the plugmarket home {home}: {exc.strerror or exc}",
        step=op,
        hint="Nothing changed. Check that the folder is writable and has free space.",
    )
