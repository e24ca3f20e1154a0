"""A terminal tour of plugmarket on the demo registry shipped inside the package.

No network: the registry is a signed folder inside the package. Everything
is written to a fresh temporary home, which is printed and removed at the end.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import plugmarket
from plugmarket import CapabilityDenied, Settings, Source
from plugmarket.host import PlainHost
from plugmarket.registry import RegistryClient


def step(text: str) -> None:
    print(f"\n== {text}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="plugmarket-demo-"))
    try:
        return tour(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tour(work: Path) -> int:
    settings = Settings(home=work / "home")
    shown: list[object] = []
    host = PlainHost(sink=shown.append)
    client = RegistryClient(settings)

    step("search the demo registry for 'csv' (signature and hashes checked)")
    for hit in client.search("csv"):
        print(f"  {hit.id:14} {hit.version:8} {hit.summary}")

    step("details of csv-preview")
    details = client.details("csv-preview")
    for version in details.versions:
        yanked = f"  (yanked: {version.yanked_reason})" if version.yanked else ""
        print(f"  {version.version}  capabilities: {', '.join(version.capabilities)}{yanked}")

    step("fetch and load table-kit, then csv-preview, granting only what it needs")
    data = work / "data"
    data.mkdir()
    (data / "cities.csv").write_text("city,country,population\nLyon,FR,522250\nOsaka,JP,2753862\n")
    loaded = []
    for plugin_id, grants in (
        ("table-kit", []),
        ("csv-preview", [f"fs.read:{data}", "ipython.magics", "display"]),
    ):
        latest = client.details(plugin_id).detail.latest()
        assert latest is not None
        artifact = work / f"{plugin_id}-{latest.version}.zip"
        artifact.write_bytes(client.fetch_artifact(plugin_id, str(latest.version)))
        plugin = plugmarket.load(
            Source.local(artifact), grants=grants, host=host, settings=settings
        )
        loaded.append(plugin)
        print(f"  loaded {plugin.id} {plugin.version} as {plugin.module.__name__}")

    step(f"%csv_preview {data / 'cities.csv'}")
    host.run_magic("csv_preview", str(data / "cities.csv"))
    print("  " + str(shown[-1]).replace("\n", "\n  "))

    step("csv-preview may only read the granted folder: /etc/hostname is refused")
    try:
        host.run_magic("csv_preview", "/etc/hostname")
    except CapabilityDenied as denied:
        print(f"  CapabilityDenied: {denied.message}")

    step("unload: the magic and every module of both plugins are gone")
    for plugin in reversed(loaded):
        plugmarket.unload(plugin)
    left = [m for m in sys.modules if m.startswith("plugmarket.plugins.")]
    print(f"  magics left: {sorted(host.magics['line'])}; plugin modules left: {left}")
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
