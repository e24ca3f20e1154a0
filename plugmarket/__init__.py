"""plugmarket: a plugin marketplace for Jupyter and IPython.

The public names are re-exported here and imported lazily, so that
``import plugmarket`` (and ``%load_ext plugmarket``) pays only for what a
verb actually uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ActivationError": "plugmarket.errors",
    "ArchiveError": "plugmarket.errors",
    "Capability": "plugmarket.capabilities",
    "CapabilityDenied": "plugmarket.errors",
    "ConsentRequired": "plugmarket.errors",
    "Grants": "plugmarket.capabilities",
    "InstallError": "plugmarket.errors",
    "IntegrityError": "plugmarket.errors",
    "LoadError": "plugmarket.errors",
    "LoadedPlugin": "plugmarket.loader",
    "Manifest": "plugmarket.manifest",
    "Marketplace": "plugmarket.marketplace",
    "ManifestError": "plugmarket.errors",
    "OfflineError": "plugmarket.errors",
    "PluginContext": "plugmarket.context",
    "PluginFiles": "plugmarket.sources",
    "PlugmarketError": "plugmarket.errors",
    "RegistryError": "plugmarket.errors",
    "ResolutionError": "plugmarket.errors",
    "Settings": "plugmarket.settings",
    "SignatureError": "plugmarket.errors",
    "Source": "plugmarket.sources",
    "SourceError": "plugmarket.errors",
    "load": "plugmarket.loader",
    "read_manifest": "plugmarket.manifest",
    "unload": "plugmarket.loader",
}

__all__ = [
    "ActivationError",
    "ArchiveError",
    "Capability",
    "CapabilityDenied",
    "ConsentRequired",
    "Grants",
    "InstallError",
    "IntegrityError",
    "LoadError",
    "LoadedPlugin",
    "Manifest",
    "ManifestError",
    "Marketplace",
    "OfflineError",
    "PluginContext",
    "PluginFiles",
    "PlugmarketError",
    "RegistryError",
    "ResolutionError",
    "Settings",
    "SignatureError",
    "Source",
    "SourceError",
    "load",
    "read_manifest",
    "unload",
]

if TYPE_CHECKING:
    from plugmarket.capabilities import Capability, Grants
    from plugmarket.context import PluginContext
    from plugmarket.errors import (
        ActivationError,
        ArchiveError,
        CapabilityDenied,
        ConsentRequired,
        InstallError,
        IntegrityError,
        LoadError,
        ManifestError,
        OfflineError,
        PlugmarketError,
        RegistryError,
        ResolutionError,
        SignatureError,
        SourceError,
    )
    from plugmarket.loader import LoadedPlugin, load, unload
    from plugmarket.manifest import Manifest, read_manifest
    from plugmarket.marketplace import Marketplace
    from plugmarket.settings import Settings
    from plugmarket.sources import PluginFiles, Source


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext plugmarket``: register ``%plugin`` and ``%%plugin`` (see plugmarket.magics)."""
    from plugmarket.magics import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext plugmarket``: remove the magics and unload every plugin."""
    from plugmarket.magics import unload_ipython_extension as unload

    unload(shell)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plugmarket' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
