"""Recovery, pruning, garbage collection and the consistency check of a home.

Everything here runs under the home lock (the installer takes it).

- :func:`recover` finishes or undoes the journaled transaction. ``current``
  decides: if it names the transaction's new generation, the transaction
  committed and only its tidying is left; otherwise its new generation file
  and the store entries it created are removed. Then, whatever the journal
  said (or if it could not be read): generation files newer than ``current``
  are removed (history only grows, so they were never switched to), debris is
  deleted, old generations are pruned and unreferenced entries collected.
  Recovery is itself idempotent: killed part-way, it runs again.
- :func:`prune` keeps the newest ``keep`` generation files, and ``current``
  with its ``keep - 1`` latest ancestors.
- :func:`collect` removes store entries no kept generation references; if a
  generation file cannot be read it removes nothing, since what that
  generation references is unknown.
- :func:`check` reports (and with ``repair`` fixes) what is wrong.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path

from plugmarket._internal import journal
from plugmarket._internal.generations import Generations
from plugmarket._internal.journal import Faults
from plugmarket._internal.store import Store, remove_tree
from plugmarket.errors import InstallError

__all__ = ["CheckProblem", "CheckReport", "check", "collect", "prune", "recover"]

log = logging.getLogger("plugmarket.installer")


@dataclass(frozen=True)
class CheckProblem:
    """One thing :meth:`~plugmarket.installer.Installer.check` found.

    Attributes:
        kind: ``"journal"``, ``"current"``, ``"uncommitted"``, ``"generation"``,
            ``"entry"``, ``"unreferenced"`` or ``"debris"``.
        subject: The file or store entry concerned, relative to the home.
        message: What is wrong, and what to do if it was not repaired.
        repaired: Whether ``check(repair=True)`` fixed it.
    """

    kind: str
    subject: str
    message: str
    repaired: bool = False


@dataclass(frozen=True)
class CheckReport:
    """What a check found and repaired."""

    problems: tuple[CheckProblem, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the home is sound now (nothing found, or everything found repaired)."""
        return all(p.repaired for p in self.problems)

    @property
    def remaining(self) -> tuple[CheckProblem, ...]:
        return tuple(p for p in self.problems if not p.repaired)

    def __str__(self) -> str:
        if not self.problems:
            return "the plugmarket home is sound"
        lines = [
            f"{'repaired' if p.repaired else 'problem'}: {p.subject}: {p.message}"
            for p in self.problems
        ]
        if self.remaining and not any(p.repaired for p in self.problems):
            lines.append("Run `plugmarket check --repair` to fix what can be fixed safely.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<CheckReport {len(self.problems)} problem(s), {len(self.remaining)} remaining>"

    def _repr_html_(self) -> str:
        if not self.problems:
            return "<p>the plugmarket home is sound</p>"
        rows = "".join(
            f"<li><b>{'repaired' if p.repaired else 'problem'}</b> "
            f"<code>{html.escape(p.subject)}</code>: {html.escape(p.message)}</li>"
            for p in self.problems
        )
        return f"<ul>{rows}</ul>"


def recover(home: Path, store: Store, gens: Generations, keep: int, faults: Faults) -> str:
    """Finish or undo the journaled transaction; returns what was done, in words.

    Raises:
        InstallError: ``current`` or a generation file is damaged (check --repair).
        OSError: the home cannot be written (the journal stays for next time).
    """
    try:
        entry = journal.read(home)
    except (OSError, ValueError, KeyError) as exc:
        entry, what = None, f"a damaged journal ({exc})"
    else:
        what = "a transaction that had not begun" if entry is None else entry.describe()
    faults("recovery-started")
    current = gens.current_number()
    if entry is not None and current != entry.new:
        gens.remove(entry.new)
        for sha in entry.created:
            store.remove(sha)
        outcome = f"undid {what}; generation {current} is current"
    else:
        outcome = f"finished {what}; generation {current} is current"
    for number in gens.numbers():
        if number > current:
            gens.remove(number)
    for debris in [*store.debris(), *gens.debris()]:
        remove_tree(debris)
    faults("recovery-undone")
    prune(gens, keep)
    collect(store, gens)
    faults("recovery-collected")
    journal.remove(home)
    faults("recovery-finished")
    log.info("plugmarket recovered its home: %s", outcome)
    return outcome


def prune(gens: Generations, keep: int) -> list[int]:
    """Remove generation files that are neither among the newest ``keep`` nor among
    the ``keep`` latest ancestors of the current one (so ``keep - 1`` rollbacks in
    a row always work, though each adds a generation)."""
    numbers = gens.numbers()
    kept = set(numbers[-keep:])
    number: int | None = gens.current_number()
    for _ in range(keep):
        if number is None or number == 0:
            break
        kept.add(number)
        try:
            number = gens.read(number).parent
        except InstallError:
            break  # a damaged or missing ancestor ends the chain
    drop = [n for n in numbers if n not in kept]
    for n in drop:
        gens.remove(n)
    return drop


def collect(store: Store, gens: Generations) -> list[str]:
    """Remove store entries no kept generation references, and store debris.

    Raises:
        InstallError: a generation file is damaged (nothing was removed).
    """
    referenced = referenced_entries(gens)
    removed = [sha for sha in store.names() if sha not in referenced]
    for sha in removed:
        store.remove(sha)
    for debris in store.debris():
        remove_tree(debris)
    return removed


def referenced_entries(
    gens: Generations, *, upto: int | None = None, skip_damaged: bool = False
) -> set[str]:
    """Every store entry some kept generation references.

    Args:
        gens: The home's generations.
        upto: Only generations numbered at most this (the committed ones: ``current``).
        skip_damaged: A damaged generation other than ``upto`` vouches for nothing
            instead of raising.

    Raises:
        InstallError: a generation file is damaged.
    """
    referenced: set[str] = set()
    for number in gens.numbers():
        if upto is not None and number > upto:
            continue
        try:
            referenced.update(p.sha256 for p in gens.read(number).plugins.values())
        except InstallError:
            if not skip_damaged or number == upto:
                raise
    return referenced


def check(home: Path, store: Store, gens: Generations, keep: int, *, repair: bool) -> CheckReport:
    """Verify a home (under its lock); see :meth:`plugmarket.installer.Installer.check`."""
    found: list[CheckProblem] = []
    interrupted = ""
    if journal.pending(home):
        try:
            entry = journal.read(home)
            interrupted = "one that had not begun" if entry is None else entry.describe()
        except (OSError, ValueError, KeyError) as exc:
            interrupted = f"its journal is damaged ({exc})"
        if repair and _recovered(home, store, gens, keep):
            found.append(
                CheckProblem("journal", journal.NAME, f"a transaction: {interrupted}", True)
            )
            interrupted = ""
    current = _check_current(store, gens, repair, found)
    referenced: set[str] = set()
    users: dict[str, list[str]] = {}
    readable = True
    for number in gens.numbers():
        subject = f"generations/{number}.json"
        if current is not None and number > current:
            message = (
                f"generation {number} is newer than the current generation {current}: "
                "a transaction wrote it and never switched to it"
            )
            found.append(
                CheckProblem("uncommitted", subject, message, repair and gens.remove(number))
            )
            continue
        try:
            generation = gens.read(number)
        except InstallError as exc:
            # a damaged old generation cannot be rolled back to: dropping it loses nothing
            fixed = repair and current is not None and number != current and gens.remove(number)
            readable = readable and fixed
            found.append(CheckProblem("generation", subject, exc.message, fixed))
            continue
        for plugin in generation.plugins.values():
            referenced.add(plugin.sha256)
            users.setdefault(plugin.sha256, []).append(
                f"{plugin.id} {plugin.version} in generation {number}"
            )
    for sha, who in sorted(users.items()):
        problem = store.verify(sha)
        if problem is not None:
            message = (
                f"the files of {', '.join(who)}: {problem}. "
                "Uninstall and install the plugin again, or roll back past those generations."
            )
            found.append(CheckProblem("entry", f"store/{sha}", message))
    if readable:
        for sha in store.names():
            if sha not in referenced:
                fixed = repair and store.remove(sha)
                message = "no kept generation references this store entry"
                found.append(CheckProblem("unreferenced", f"store/{sha}", message, fixed))
    for debris in [*store.debris(), *gens.debris()]:
        if repair:
            remove_tree(debris)
        rel = debris.relative_to(home).as_posix()
        message = "a leftover of an interrupted write or removal"
        found.append(CheckProblem("debris", rel, message, repair))
    if interrupted:  # not recovered above: perhaps it can be now that the rest is repaired
        fixed = repair and _recovered(home, store, gens, keep)
        found.insert(
            0, CheckProblem("journal", journal.NAME, f"a transaction: {interrupted}", fixed)
        )
    return CheckReport(tuple(found))


def _recovered(home: Path, store: Store, gens: Generations, keep: int) -> bool:
    try:
        recover(home, store, gens, keep, Faults(""))
    except (InstallError, OSError) as exc:
        log.warning("could not recover the interrupted transaction yet: %s", exc)
        return False
    return True


def _check_current(
    store: Store, gens: Generations, repair: bool, found: list[CheckProblem]
) -> int | None:
    try:
        current = gens.current_number()
        gens.read(current)
        return current
    except InstallError as exc:
        message = exc.message
    if not repair:
        found.append(CheckProblem("current", "current", message))
        return None
    for number in reversed(gens.numbers()):
        try:
            generation = gens.read(number)
        except InstallError:
            continue
        if all(store.verify(p.sha256) is None for p in generation.plugins.values()):
            gens.switch(number)
            message += f"; now on generation {number}, the newest sound one"
            found.append(CheckProblem("current", "current", message, True))
            return number
    if not gens.numbers():
        gens.current_file.unlink(missing_ok=True)
        found.append(CheckProblem("current", "current", message + "; now empty", True))
        return 0
    found.append(CheckProblem("current", "current", message + "; no sound generation is left"))
    return None
