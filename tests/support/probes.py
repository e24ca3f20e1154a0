"""Probe plugins for the gate's red-team tests.

A probe is a one-function plugin: ``attempt()`` runs a body of test code as the
plugin, either at import or when the test calls it later. Every probe's
``activate(ctx)`` keeps ``CTX`` and ``STORAGE`` (its private folder, created)
as module globals, so bodies can use them. Probes are written under the test's
tmp_path and loaded with a fresh home; nothing is written anywhere else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from plugmarket.errors import CapabilityDenied, LoadError
from plugmarket.host import Host, PlainHost
from plugmarket.loader import LoadedPlugin, load, unload
from plugmarket.settings import Settings
from plugmarket.sources import Source
from tests.support.plugins import write_plugin

_serial = itertools.count()

_PRELUDE = """
STORAGE = ""
CTX = None
def activate(ctx):
    global STORAGE, CTX
    STORAGE = str(ctx.storage)
    CTX = ctx
"""


def probe_code(body: str, *, at_import: bool = False, extra: str = "") -> str:
    """The source of a probe plugin whose ``attempt()`` runs ``body``."""
    code = _PRELUDE + extra + "\ndef attempt():\n"
    code += "".join(f"    {line}\n" for line in body.splitlines())
    if at_import:
        code += "RESULT = attempt()\n"
    return code


def write_probe(
    where: Path,
    body: str,
    *,
    plugin_id: str = "probe",
    at_import: bool = False,
    extra: str = "",
    requires: Iterable[str] = (),
) -> Path:
    """Write a probe plugin in a fresh folder under ``where``; returns its package folder."""
    folder = where / f"probe-{next(_serial)}"
    code = probe_code(body, at_import=at_import, extra=extra)
    return write_plugin(folder, plugin_id, code, requires=requires)


def load_probe(
    where: Path,
    home: Path,
    body: str,
    grants: Iterable[str] = (),
    *,
    plugin_id: str = "probe",
    at_import: bool = False,
    extra: str = "",
    host: Host | None = None,
    audit: Callable[[CapabilityDenied], None] | None = None,
    requires: Iterable[str] = (),
) -> LoadedPlugin:
    """Write and load a probe; the caller unloads it."""
    package = write_probe(
        where, body, plugin_id=plugin_id, at_import=at_import, extra=extra, requires=requires
    )
    return load(
        Source.local(package),
        settings=Settings(home=home),
        host=host or PlainHost(),
        grants=list(grants),
        audit=audit,
    )


def run_probe(
    where: Path,
    home: Path,
    body: str,
    grants: Iterable[str] = (),
    *,
    at_import: bool = False,
    extra: str = "",
) -> object:
    """Load a probe, return what ``attempt()`` returned (at import or called now), unload it."""
    plugin = load_probe(where, home, body, grants, at_import=at_import, extra=extra)
    try:
        return plugin.module.RESULT if at_import else plugin.module.attempt()
    finally:
        unload(plugin)


def probe_denied(
    where: Path,
    home: Path,
    body: str,
    grants: Iterable[str] = (),
    *,
    at_import: bool = False,
    extra: str = "",
) -> CapabilityDenied:
    """Run a probe that must be denied; return the denial (unwrapped from a LoadError)."""
    if at_import:
        with pytest.raises(LoadError) as info:
            run_probe(where, home, body, grants, at_import=True, extra=extra)
        cause = info.value.__cause__
        assert isinstance(cause, CapabilityDenied), repr(cause)
        return cause
    with pytest.raises(CapabilityDenied) as denied:
        run_probe(where, home, body, grants, extra=extra)
    return denied.value
