"""A plan: what an install, update, uninstall or lock application would change.

The resolver produces a :class:`Plan` before anything is written; the
facade shows it, asks for consent (``ConsentRequired`` carries it), and the
installer applies exactly it. A plan is an immutable value with a text repr
for terminals and an HTML table for notebooks, so every surface shows the
same thing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Plan", "PlanItem"]

ADD, CHANGE, REMOVE = "add", "change", "remove"


@dataclass(frozen=True)
class PlanItem:
    """One plugin the plan adds, changes or removes.

    Attributes:
        action: ``"add"``, ``"change"`` or ``"remove"``.
        id: The plugin id.
        old_version: The installed version ("" when adding).
        new_version: The version it will have ("" when removing).
        capabilities: What the new version requests.
        grants: What it will be granted if the plan is applied.
        new_capabilities: Requested and not granted before: these need consent.
        registry: Where the new version comes from ("" for local sources).
        sha256: The new artifact's pinned hash ("" when removing).
        size: The new artifact's size in bytes.
        url: Where the new artifact is fetched from.
        explicit: Whether the user asked for this plugin (else a dependency).
        reason: Why it is in the plan (``"requested"``, ``"required by csv-preview"``).
    """

    action: str
    id: str
    old_version: str = ""
    new_version: str = ""
    capabilities: tuple[str, ...] = ()
    grants: tuple[str, ...] = ()
    new_capabilities: tuple[str, ...] = ()
    registry: str = ""
    sha256: str = ""
    size: int = 0
    url: str = ""
    explicit: bool = True
    reason: str = "requested"

    def describe(self) -> str:
        if self.action == ADD:
            change = f"add {self.id} {self.new_version}"
        elif self.action == REMOVE:
            change = f"remove {self.id} {self.old_version}"
        else:
            change = f"change {self.id} {self.old_version} -> {self.new_version}"
        caps = f" [{', '.join(self.capabilities)}]" if self.capabilities else ""
        new = f" (new: {', '.join(self.new_capabilities)})" if self.new_capabilities else ""
        why = "" if self.reason == "requested" else f" ({self.reason})"
        return f"{change}{caps}{new}{why}"


@dataclass(frozen=True)
class Plan:
    """Everything an operation would change, in the order it applies.

    Attributes:
        operation: ``"install"``, ``"update"``, ``"uninstall"``, ``"apply_lock"``...
        items: The plugins added, changed or removed.
        skipped: Notes on what was left out (an auto update needing consent, say).
    """

    operation: str
    items: tuple[PlanItem, ...] = ()
    skipped: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.items

    @property
    def needs_consent(self) -> bool:
        """Adding code, or granting capabilities not granted before, needs consent."""
        return any(i.action == ADD or i.new_capabilities for i in self.items)

    def item(self, plugin_id: str) -> PlanItem | None:
        return next((i for i in self.items if i.id == plugin_id), None)

    def __str__(self) -> str:
        if self.empty:
            return f"{self.operation}: nothing to do"
        lines = [f"{self.operation}:"] + [f"  {i.describe()}" for i in self.items]
        lines += [f"  skipped: {note}" for note in self.skipped]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Plan {self.operation}: {len(self.items)} change(s)>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))  # IPython's terminal shows the whole plan

    def _repr_html_(self) -> str:
        from plugmarket.results import badges

        if self.empty:
            return f"<p>{html.escape(self.operation)}: nothing to do</p>"
        rows = []
        for i in self.items:
            versions = html.escape(
                i.new_version
                if i.action == ADD
                else i.old_version
                if i.action == REMOVE
                else f"{i.old_version} → {i.new_version}"
            )
            caps = badges(i.capabilities, new=i.new_capabilities)
            rows.append(
                f"<tr><td>{html.escape(i.action)}</td><td><b>{html.escape(i.id)}</b></td>"
                f"<td>{versions}</td><td>{caps}</td><td>{html.escape(i.reason)}</td></tr>"
            )
        skipped = "".join(f"<p><i>skipped: {html.escape(n)}</i></p>" for n in self.skipped)
        return (
            f"<p><b>{html.escape(self.operation)}</b></p><table><tr><th>action</th>"
            "<th>plugin</th><th>version</th><th>capabilities</th><th>why</th></tr>"
            + "".join(rows)
            + f"</table>{skipped}"
        )
