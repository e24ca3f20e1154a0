"""Find the demo plugins' sources and load them, dependencies first, with their grants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from plugmarket import loader
from plugmarket.host import Host
from plugmarket.loader import LoadedPlugin, load, unload
from plugmarket.manifest import Manifest, read_manifest
from plugmarket.settings import Settings
from plugmarket.sources import Source

REPO = Path(__file__).resolve().parents[2]
DEMO_PLUGINS = REPO / "demo_plugins"
DEMO_REGISTRY = REPO / "plugmarket" / "demo_registry"
BUILD_SCRIPT = REPO / "scripts" / "build_demo_registry.py"


def source_folder(plugin_id: str, version: str | None = None) -> Path:
    """The package folder of a demo plugin: the current one, or ``releases/<version>/``."""
    base = DEMO_PLUGINS / plugin_id
    if version is None:
        found = [p.parent for p in base.glob("*/plugin.toml") if p.parent.name != "releases"]
    else:
        found = [p.parent for p in (base / "releases" / version).glob("*/plugin.toml")]
        found += [
            p.parent
            for p in base.glob("*/plugin.toml")
            if str(read_manifest(p.parent).version) == version
        ]
    assert len(found) == 1, f"{plugin_id} {version or '(current)'}: found {found}"
    return found[0]


def declared(manifest: Manifest) -> list[str]:
    """The capabilities a manifest requests, as grant strings."""
    return [str(c) for c in manifest.capabilities]


def load_demo(
    plugin_id: str,
    settings: Settings,
    host: Host,
    *,
    grants: Iterable[str] | None = None,
    version: str | None = None,
    config: Mapping[str, object] | None = None,
) -> LoadedPlugin:
    """Load a demo plugin from its source folder; its dependencies first, with their own grants.

    ``grants=None`` grants exactly what the manifest requests.
    """
    folder = source_folder(plugin_id, version)
    manifest = read_manifest(folder)
    for dep in manifest.requirement_ids():
        if dep not in loader.loaded():
            load_demo(dep, settings, host)
    return load(
        Source.local(folder),
        grants=declared(manifest) if grants is None else grants,
        host=host,
        settings=settings,
        config=config,
    )


def unload_all() -> None:
    """Unload every loaded plugin, dependents before what they require."""
    while loader.loaded():
        for plugin_id, plugin in list(loader.loaded().items()):
            users = [
                p for p in loader.loaded().values() if plugin_id in p.manifest.requirement_ids()
            ]
            if not users:
                unload(plugin)
