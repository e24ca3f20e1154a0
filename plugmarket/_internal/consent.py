"""The pure rules of consent: what a plan asks for, and whether the user agreed to it.

Each function takes plans, settings values or a lockfile's pins and either
returns a value or raises a :class:`~plugmarket.errors.PlugmarketError`; none
reads or writes anything. :class:`~plugmarket.marketplace.Marketplace` calls them
between resolving a plan and handing it to the installer.

Invariants:

- A plan agreed to covers a plan resolved later only if every addition and
  every new capability of the later one was shown, at the same version.
- A lockfile's grants replace the plan's only after its pinned sha256 has been
  checked against the registry's artifact.
- No capability beyond the administrator's ``capability_cap`` is ever granted.
- A plan that adds code or capabilities is applied only with ``yes``; a
  ``ConsentRequired`` raised here means nothing has changed yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from plugmarket.capabilities import Capability, Grants, parse_capability
from plugmarket.errors import ConsentRequired, InstallError
from plugmarket.manifest import normalize_id, validate_id
from plugmarket.plan import Plan

if TYPE_CHECKING:
    from plugmarket._internal.installed import InstalledPlugin

__all__ = [
    "agreed",
    "covered",
    "granted",
    "pinned",
    "requirement",
    "revoked",
    "summary",
    "within_cap",
]


def requirement(plugin_id: str, version: str | None) -> str:
    """The requirement a user asked for: ``id``, or ``id==version`` with a version."""
    plugin_id = validate_id(normalize_id(plugin_id), field_name="plugin id")
    return plugin_id if version is None else f"{plugin_id}=={version}"


def summary(plan: Plan) -> str:
    """Every item of ``plan`` in one line, as a consent message shows it."""
    return "; ".join(item.describe() for item in plan.items)


def covered(plan: Plan, shown: Plan) -> bool:
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


def agreed(plan: Plan, *, yes: bool, consent: Plan | None) -> None:
    """Refuse ``plan`` unless the user agreed to it.

    Args:
        plan: The plan about to be applied.
        yes: The user consents to it.
        consent: The plan the user was shown and agreed to, if any.

    Raises:
        ConsentRequired: ``plan`` goes beyond ``consent``, or it needs consent and
            ``yes`` is False; its ``plan`` is what would happen.
    """
    if consent is not None and not covered(plan, consent):
        raise ConsentRequired(
            f"{plan.operation} changed since you agreed to it: {summary(plan)}",
            plan=plan,
            hint="Nothing was changed. Review the new plan, then agree to it again.",
        )
    if plan.needs_consent and not yes:
        raise ConsentRequired(
            f"{plan.operation} needs your consent: {summary(plan)}",
            plan=plan,
            hint="Review the plan, then run it again with yes=True (`--yes`).",
        )


def granted(plugin: InstalledPlugin, cap: Capability) -> InstalledPlugin:
    """``plugin`` with ``cap`` added to its grants."""
    return plugin.replace(grants=Grants((*plugin.grants, cap)).as_strings())


def revoked(plugin_id: str, plugin: InstalledPlugin, cap: str) -> InstalledPlugin:
    """``plugin`` (asked for as ``plugin_id``) without the grant ``cap``.

    Raises:
        InstallError: ``plugin`` was not granted ``cap``.
    """
    if cap not in plugin.grants:
        raise InstallError(
            f"{plugin_id} was not granted {cap}",
            plugin_id=plugin_id,
            hint=f"Its grants are: {', '.join(plugin.grants) or 'none'}.",
        )
    return plugin.replace(grants=tuple(g for g in plugin.grants if g != cap))


def within_cap(cap: Sequence[str] | None, plugin_id: str, capabilities: Sequence[str]) -> None:
    """Refuse ``capabilities`` for ``plugin_id`` if any is beyond the admin's ``cap``.

    Raises:
        InstallError: one of them is not covered by ``cap`` (None means no cap).
    """
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


def pinned(plan: Plan, spec: Any) -> Plan:
    """The plan with each plugin's grants from the lockfile, after checking that the
    registry's artifact is the very one the lockfile pins.

    Raises:
        IntegrityError: a planned artifact's sha256 is not the one the lockfile pins.
    """
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
