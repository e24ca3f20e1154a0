"""Plugins defined in code (``%%plugin define``): their artifact, manifest and plan item.

:meth:`plugmarket.marketplace.Marketplace.define` orchestrates a definition; this
module holds what it decides along the way, as pure functions that return
values or raise a :class:`~plugmarket.errors.PlugmarketError`. A defined plugin
is recorded with the registry :data:`~plugmarket._internal.installed.LOCAL`.

Invariants:

- The artifact is the user's code byte for byte, with a ``__plugin__`` literal
  appended (never prepended, so tracebacks keep the cell's line numbers) only
  when the code has none.
- A ``__plugin__`` literal in the code is the manifest: the id, ``--version``
  and ``--grant`` given must agree with it.
- A defined plugin never replaces one installed from a registry, and no
  registry carries it to update from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from plugmarket._internal.installed import LOCAL
from plugmarket.capabilities import Grants, parse_capability
from plugmarket.errors import InstallError, ManifestError, PlugmarketError
from plugmarket.plan import PlanItem

if TYPE_CHECKING:
    from plugmarket._internal.installed import InstalledPlugin
    from plugmarket.errors import CapabilityDenied
    from plugmarket.manifest import Manifest

__all__ = [
    "code_artifact",
    "defined_item",
    "is_local",
    "not_granted",
    "read_code",
    "refuse_local",
    "refuse_replacing",
]


def is_local(plugin: InstalledPlugin) -> bool:
    """Whether ``plugin`` was defined in code rather than installed from a registry."""
    return plugin.registry == LOCAL


def refuse_local(plugin: InstalledPlugin, operation: str) -> None:
    """Refuse ``operation`` (an update) on a plugin defined in code.

    Raises:
        InstallError: ``plugin`` was defined in code.
    """
    if is_local(plugin):
        raise InstallError(
            f"{plugin.id} was defined in code; no registry carries it to {operation} from",
            plugin_id=plugin.id,
            step=operation,
            hint=f"Change its code and run `%%plugin define {plugin.id}` again.",
        )


def refuse_replacing(plugin_id: str, old: InstalledPlugin | None) -> None:
    """Refuse to define ``plugin_id`` over a plugin installed from a registry.

    Raises:
        InstallError: ``old`` came from a registry.
    """
    if old is not None and old.registry != LOCAL:
        raise InstallError(
            f"{plugin_id} is installed from the registry {old.registry!r}; "
            "a plugin defined in code cannot replace it",
            plugin_id=plugin_id,
            step="define",
            hint=f"Pick another id, or uninstall {plugin_id} first.",
        )


def code_artifact(code: str, plugin_id: str, version: str | None, caps: Sequence[str]) -> bytes:
    """The code as a one-module artifact, with a ``__plugin__`` literal appended if it has none.

    Appended, not prepended, so line numbers in tracebacks are the cell's.
    """
    import re

    if re.search(r"^__plugin__\s*(:[^=]*)?=", code, re.M):
        return code.encode()
    literal = {"id": plugin_id, "version": version or "0.0.0", "capabilities": list(caps)}
    return f"{code.rstrip()}\n\n__plugin__ = {literal!r}\n".encode()


def read_code(
    code: str, plugin_id: str, version: str | None, named: Sequence[str]
) -> tuple[bytes, Manifest]:
    """The artifact for ``code`` and its manifest, checked against how it was defined.

    Args:
        code: The module's source.
        plugin_id: The id it is defined as (already validated).
        version: The version it is defined as, if given.
        named: The capabilities granted by naming them (``--grant``), normalised.

    Raises:
        ManifestError: the manifest is invalid, or its literal disagrees with the
            id, version or grants given.
    """
    from plugmarket.manifest import read_manifest_text

    data = code_artifact(code, plugin_id, version, named)
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
    _agrees_with_literal(plugin_id, manifest, version, named)
    return data, manifest


def defined_item(
    plugin_id: str,
    old: InstalledPlugin | None,
    manifest: Manifest,
    named: Sequence[str],
    data: bytes,
) -> PlanItem:
    """The plan item that installs ``data`` as ``plugin_id``: an add, or a change of ``old``.

    Its new capabilities are those the manifest requests beyond what ``named``
    and ``old``'s grants already cover: the ones that still need consent.
    """
    import hashlib

    requested = tuple(str(c) for c in manifest.capabilities)
    before = Grants((*named, *(old.grants if old is not None else ())))
    new = tuple(c for c in requested if not before.covers(parse_capability(c)))
    return PlanItem(
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


def not_granted(plugin_id: str, exc: PlugmarketError) -> InstallError | None:
    """The error to raise when ``plugin_id``'s own activation was denied a capability.

    None when ``exc`` has no capability denial of ``plugin_id`` behind it.
    """
    denied = _denial_in(exc)
    if denied is None or denied.plugin_id != plugin_id:
        return None
    return InstallError(
        f"{plugin_id} was not defined: its code needs {denied.capability!r} "
        f"({denied.operation} {denied.target}), which it was not granted",
        plugin_id=plugin_id,
        step="define",
        hint=f"Define it again with --grant {denied.capability} if you trust it.",
    )


def _denial_in(exc: BaseException) -> CapabilityDenied | None:
    """The capability denial behind ``exc`` (its chain of causes), if there is one."""
    from plugmarket.errors import CapabilityDenied

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, CapabilityDenied):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _agrees_with_literal(
    plugin_id: str, manifest: Manifest, version: str | None, named: Sequence[str]
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
