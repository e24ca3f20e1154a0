"""The public surface is exactly the documented names, and they all resolve."""

from __future__ import annotations

import subprocess
import sys

import plugmarket

PUBLIC = {
    # the facade's building blocks (DESIGN.md, "Public names")
    "Capability",
    "Grants",
    "LoadedPlugin",
    "Manifest",
    "Marketplace",
    "PluginContext",
    "PluginFiles",
    "Settings",
    "Source",
    "load",
    "read_manifest",
    "unload",
    # the error tree (plugmarket.errors)
    "ActivationError",
    "ArchiveError",
    "CapabilityDenied",
    "ConsentRequired",
    "InstallError",
    "IntegrityError",
    "LoadError",
    "ManifestError",
    "OfflineError",
    "PlugmarketError",
    "RegistryError",
    "ResolutionError",
    "SignatureError",
    "SourceError",
}


def test_all_is_exactly_the_public_names() -> None:
    assert set(plugmarket.__all__) == PUBLIC
    assert set(plugmarket._EXPORTS) == PUBLIC  # the lazy map and the literal agree


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert plugmarket.__all__ == sorted(plugmarket.__all__)
    for name in plugmarket.__all__:
        assert getattr(plugmarket, name) is not None, name


def test_import_is_lazy() -> None:
    code = (
        "import sys, plugmarket\n"
        "heavy = {'httpx', 'cryptography', 'IPython', 'ipywidgets', 'resolvelib', 'traitlets'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
