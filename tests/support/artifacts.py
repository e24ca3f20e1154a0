"""Artifacts built from small plugins, and hand-made plan items that install them.

The installer's tests build plans by hand (the resolver is tested on its own):
each artifact is a real reproducible zip from ``plugmarket.publish.build``,
and ``fetch`` reads it from the folder the plan item's URL names.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from plugmarket.plan import PlanItem
from plugmarket.publish import build
from tests.support.plugins import write_plugin


@dataclass(frozen=True)
class Artifact:
    """A built plugin artifact on disk."""

    id: str
    version: str
    path: Path

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def add(self, *, grants: Iterable[str] = (), explicit: bool = True) -> PlanItem:
        return self._item("add", "", grants, explicit)

    def change(self, old_version: str, *, grants: Iterable[str] = ()) -> PlanItem:
        return self._item("change", old_version, grants, True)

    def _item(self, action: str, old: str, grants: Iterable[str], explicit: bool) -> PlanItem:
        data = self.data
        return PlanItem(
            action,
            self.id,
            old_version=old,
            new_version=self.version,
            grants=tuple(grants),
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            url=self.path.as_uri(),
            registry="test",
            explicit=explicit,
        )


def remove(plugin_id: str, old_version: str) -> PlanItem:
    return PlanItem("remove", plugin_id, old_version=old_version)


def make_artifact(
    where: Path,
    plugin_id: str,
    version: str = "1.0",
    code: str = "def activate(ctx):\n    pass\n",
    *,
    requires: Iterable[str] = (),
    capabilities: Iterable[str] = (),
) -> Artifact:
    """Build ``<where>/artifacts/<id>-<version>.zip`` from a package plugin."""
    src = where / "src" / f"{plugin_id}-{version}"
    package = write_plugin(
        src, plugin_id, code, version=version, requires=requires, capabilities=capabilities
    )
    path = build(package, where / "artifacts")
    return Artifact(plugin_id, version, path)


def fetch(item: PlanItem) -> bytes:
    """Read a plan item's artifact from the file its URL names."""
    from urllib.parse import unquote, urlsplit

    return Path(unquote(urlsplit(item.url).path)).read_bytes()


class CountingFetch:
    """:func:`fetch`, noting the id of each item fetched (``ids``), in order."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, item: PlanItem) -> bytes:
        self.ids.append(item.id)
        return fetch(item)


def tree(home: Path) -> dict[str, bytes | None]:
    """Every file under ``home`` (folders as None), except the lock's own files and caches."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(home):
        rel_dir = os.path.relpath(dirpath, home)
        if rel_dir.split(os.sep)[0] == "cache":
            continue
        for name in dirnames:
            found[os.path.normpath(os.path.join(rel_dir, name))] = None
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel not in ("lock", "lock.info"):
                found[rel] = Path(dirpath, name).read_bytes()
    return found
