"""Rebuild the demo registry shipped in the package from the plugin sources in demo_plugins/.

    .venv/bin/python scripts/build_demo_registry.py           # rewrite plugmarket/demo_registry/
    .venv/bin/python scripts/build_demo_registry.py --check   # exit 1 if it is out of date
    .venv/bin/python scripts/build_demo_registry.py --out DIR # build somewhere else

The registry is made with plugmarket's own publisher (``plugmarket.publish``),
replaying :data:`HISTORY` (publishes and yanks, each at a fixed time), then
setting the ratings and download counts of :data:`STATS`, and signing the
index with the demo key ``demo_plugins/demo.key``.

Invariants:

- Deterministic: the same demo_plugins/ give the same bytes (fixed times,
  reproducible zips, canonical JSON, Ed25519's deterministic signatures), so
  ``tests/test_demo_registry.py`` can rebuild into a temporary folder and
  compare byte for byte.
- ``expires`` is :data:`EXPIRES`, years ahead: a registry inside an installed
  package cannot be re-signed on a schedule (docs/decisions/0005-demo-registry.md).
- The target folder is replaced whole, by rename, only after a complete build.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import filecmp
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "demo_plugins"
KEY = PLUGINS / "demo.key"
TARGET = REPO / "plugmarket" / "demo_registry"
PUBLIC_KEY = "demo.pub"
RELEASES_DIR = "releases"  # demo_plugins/<id>/releases/<version>/<package>/: other versions
#: Far ahead on purpose: see docs/decisions/0005-demo-registry.md.
EXPIRES = datetime(2036, 1, 1, tzinfo=UTC)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Publish:
    """Publish ``plugin_id`` ``version`` on ``channel`` at ``when``."""

    plugin_id: str
    version: str
    when: str
    channel: str = "stable"


@dataclass(frozen=True)
class Yank:
    """Yank ``plugin_id`` ``version`` at ``when``, saying why."""

    plugin_id: str
    version: str
    when: str
    reason: str


@dataclass(frozen=True)
class Stats:
    """What the index shows for a plugin: stars (0-5), how many rated, downloads."""

    rating: float
    ratings: int
    downloads: int


#: The registry's history, in order. Times are UTC.
HISTORY: tuple[Publish | Yank, ...] = (
    Publish("table-kit", "1.0.0", "2025-03-03T09:00:00"),
    Publish("csv-preview", "0.9.0", "2025-03-10T10:00:00"),
    Publish("csv-preview", "1.0.0", "2025-03-24T10:00:00"),
    Yank(
        "csv-preview",
        "0.9.0",
        "2025-03-24T10:05:00",
        "reads the whole file before showing the first rows, so a large CSV can exhaust "
        "the kernel's memory; use 1.0.0",
    ),
    Publish("sqlite-magic", "1.0.0", "2025-04-02T14:30:00"),
    Publish("cell-timer", "1.0.0", "2025-04-14T08:15:00"),
    Publish("json-viewer", "1.0.0", "2025-05-05T16:00:00"),
    Publish("http-get", "1.0.0", "2025-05-19T11:20:00"),
    Publish("units", "1.0.0", "2025-06-02T09:45:00"),
    Publish("todo", "1.0.0", "2025-06-16T13:00:00"),
    Publish("regex-tester", "1.0.0", "2025-07-01T10:30:00"),
    Publish("units", "1.1.0", "2025-08-04T09:00:00"),
    Publish("json-viewer", "2.0.0b1", "2025-09-01T12:00:00", channel="beta"),
)

#: Ratings and downloads shown in the index, set after the history.
STATS: dict[str, Stats] = {
    "table-kit": Stats(4.6, 31, 6420),
    "csv-preview": Stats(4.5, 88, 4870),
    "sqlite-magic": Stats(4.7, 64, 3310),
    "cell-timer": Stats(4.8, 142, 9150),
    "json-viewer": Stats(4.4, 57, 5230),
    "http-get": Stats(4.2, 29, 1980),
    "units": Stats(4.6, 73, 2760),
    "todo": Stats(4.1, 38, 1540),
    "regex-tester": Stats(4.5, 22, 1210),
}
STATS_WHEN = "2025-10-01T00:00:00"


def package_folder(plugin_id: str, version: str) -> Path:
    """The package folder holding ``plugin_id`` ``version`` in demo_plugins/.

    The current version is ``demo_plugins/<id>/<package>/``; any other is
    ``demo_plugins/<id>/releases/<version>/<package>/``.

    Raises:
        SystemExit: no folder holds that version.
    """
    from plugmarket.manifest import read_manifest

    base = PLUGINS / plugin_id
    candidates = [p for p in sorted(base.glob("*/plugin.toml")) if p.parent.name != RELEASES_DIR]
    candidates += sorted((base / RELEASES_DIR / version).glob("*/plugin.toml"))
    for toml in candidates:
        manifest = read_manifest(toml.parent)
        if manifest.id == plugin_id and str(manifest.version) == version:
            return toml.parent
    raise SystemExit(f"demo_plugins/{plugin_id}: no package folder holds version {version}")


def _set_stats(registry: Path, key: Path, when: datetime) -> None:
    """Write :data:`STATS` into the index as its next version, and sign it.

    The publisher carries ratings and downloads over from one index to the
    next but has no verb to set them, so this writes the index through the
    registry format's own encoder and signs it with ``sign_index``.
    """
    from plugmarket._internal import registry_format as fmt
    from plugmarket._internal.signing import write_atomic
    from plugmarket.publish import sign_index

    path = registry / fmt.INDEX_FILE
    index = fmt.decode_index(path.read_bytes(), registry=str(registry))
    plugins = dict(index.plugins)
    for plugin_id, stats in STATS.items():
        plugins[plugin_id] = dataclasses.replace(
            plugins[plugin_id],
            rating=stats.rating,
            ratings_count=stats.ratings,
            downloads=stats.downloads,
        )
    index = dataclasses.replace(
        index,
        version=index.version + 1,
        generated=when,
        expires=EXPIRES,
        plugins=MappingProxyType(dict(sorted(plugins.items()))),
    )
    write_atomic(path, fmt.encode_index(index))
    sign_index(registry, key)


def build_registry(out: Path, key: Path = KEY) -> Path:
    """Build the demo registry into the empty or new folder ``out``.

    Args:
        out: Where to build (created; must not hold files yet).
        key: The demo private key.

    Returns:
        ``out``.

    Raises:
        SystemExit: ``out`` is not empty, or a version has no source folder.
        PlugmarketError: publishing failed (a bad manifest, for example).
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from plugmarket._internal.signing import load_private_key
    from plugmarket.publish import publish, yank

    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; build_registry writes into a fresh folder")
    for step in HISTORY:
        when = _at(step.when)
        if isinstance(step, Publish):
            publish(
                package_folder(step.plugin_id, step.version),
                out,
                key=key,
                channel=step.channel,
                now=when,
                expires_in=EXPIRES - when,
            )
        else:
            yank(
                out,
                step.plugin_id,
                step.version,
                step.reason,
                key=key,
                now=when,
                expires_in=EXPIRES - when,
            )
    _set_stats(out, key, _at(STATS_WHEN))
    for leftover in out.iterdir():
        if leftover.name.startswith("."):  # the publisher's lock file: not registry content
            leftover.unlink()
    raw = load_private_key(key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    (out / PUBLIC_KEY).write_text(base64.b64encode(raw).decode("ascii") + "\n", encoding="ascii")
    return out


def differences(a: Path, b: Path) -> list[str]:
    """Relative paths whose presence or bytes differ between folders ``a`` and ``b``."""

    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

    left, right = files(a), files(b)
    differ = sorted(left ^ right)
    differ += sorted(
        rel for rel in left & right if not filecmp.cmp(a / rel, b / rel, shallow=False)
    )
    return differ


def _replace_folder(built: Path, target: Path) -> None:
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(built, target)
    if old.exists():
        shutil.rmtree(old)


def main(argv: Sequence[str] | None = None) -> int:
    """Rebuild (or ``--check``) the demo registry. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TARGET, help="default: %(default)s")
    parser.add_argument("--key", type=Path, default=KEY, help="default: %(default)s")
    parser.add_argument(
        "--check", action="store_true", help="build into a temporary folder and compare"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="demo-registry-", dir=args.out.parent) as tmp:
        built = build_registry(Path(tmp) / "registry", args.key)
        if args.check:
            changed = differences(built, args.out) if args.out.exists() else ["(missing)"]
            for rel in changed:
                print(f"out of date: {rel}")
            print(
                "demo registry is up to date" if not changed else f"{len(changed)} file(s) differ"
            )
            return 1 if changed else 0
        _replace_folder(built, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
