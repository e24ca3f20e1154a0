"""The content-addressed store: unpacked artifacts under ``<home>/store/<sha256>/``.

An entry is named by the sha256 of the artifact's bytes and holds::

    <sha256>/tree/        the unpacked plugin (``tree/<top>.py`` or ``tree/<top>/``)
    <sha256>/entry.json   {format, sha256, size, top, tree, files, manifest, member}

``tree`` in the record is the digest of the unpacked files (sorted relative
paths and contents), so :meth:`Store.verify` can tell whether anything in the
entry changed since it was written, and ``manifest`` is the validated
manifest, so :meth:`Store.files` gives the loader what it needs without
reading the plugin again.

Invariants:

- An entry is complete or absent: it is filled in a temporary folder in the
  store (``.tmp-*``, by :func:`plugmarket._internal.cachedir.store_tree`) and
  renamed into place; it is removed by renaming it to ``.trash-*`` first and
  deleting that. Anything starting with ``.`` in the store is debris of an
  interrupted write or removal, safe to delete under the home lock.
- An entry is immutable once written. Only the installer writes or removes
  entries, always under the home lock; readers need no lock.
- Archives go through the same checks as any other source
  (:func:`plugmarket.sources.unpack_artifact`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from plugmarket.errors import InstallError, IntegrityError, PlugmarketError
from plugmarket.manifest import Manifest, parse_manifest

if TYPE_CHECKING:
    from plugmarket.settings import Settings
    from plugmarket.sources import PluginFiles

__all__ = [
    "SHA256",
    "Store",
    "StoreEntry",
    "artifact_name",
    "check_artifact",
    "fsync_dir",
    "remove_tree",
    "tree_digest",
]

SHA256 = re.compile(r"^[0-9a-f]{64}$")
FORMAT = 1
RECORD = "entry.json"
TREE = "tree"
_KNOWN_SUFFIXES = (".py", ".zip", ".whl")


@dataclass(frozen=True)
class StoreEntry:
    """One stored, unpacked artifact.

    Attributes:
        sha256: The artifact's sha256 (the entry's name).
        path: The entry's folder.
        top: The top-level module or package inside :attr:`root`.
        tree: The digest of the unpacked files, as written.
        size: The artifact's size in bytes.
        manifest: The plugin's validated manifest.
    """

    sha256: str
    path: Path
    top: str
    tree: str
    size: int
    manifest: Manifest

    @property
    def root(self) -> Path:
        """The folder the loader imports ``top`` from."""
        return self.path / TREE


class Store:
    """The content-addressed store of one home.

    Records are cached in memory (entries never change), but whether an entry
    exists is always asked of the disk: another process may have collected it.

    Args:
        root: The store folder (``<home>/store``).
        settings: Caps on unpacked size and archive entries.
    """

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self._records: dict[str, StoreEntry] = {}

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def has(self, sha256: str) -> bool:
        """Whether the entry exists on disk (an entry there is always complete)."""
        return (self.root / sha256 / RECORD).is_file()

    def names(self) -> list[str]:
        """The sha256 of every entry, sorted."""
        return sorted(n for n in self._listing() if SHA256.match(n))

    def debris(self) -> list[Path]:
        """Leftovers of interrupted writes and removals, and anything else not an entry."""
        return [self.root / n for n in sorted(self._listing()) if not SHA256.match(n)]

    def entry(self, sha256: str) -> StoreEntry:
        """The entry for ``sha256``, read from its record (cached: entries never change).

        Raises:
            InstallError: there is no such entry, or its record is damaged.
        """
        path = self.root / sha256
        known = self._records.get(sha256)
        if known is not None and os.path.isdir(path):  # another process may have collected it
            return known
        try:
            raw = (path / RECORD).read_bytes()
        except FileNotFoundError as exc:
            raise InstallError(
                f"the store has no entry {sha256[:12]}: the plugin's files are missing",
                step="read store",
                hint="Run `plugmarket check --repair`, then install the plugin again.",
            ) from exc
        except OSError as exc:
            raise _io_error(path, exc, "read store") from exc
        entry = _decode_record(raw, path)
        self._records[sha256] = entry
        return entry

    def files(self, sha256: str, origin: str = "") -> PluginFiles:
        """The stored plugin as the loader takes it.

        Raises:
            InstallError: the entry is missing or damaged.
        """
        from plugmarket.sources import PluginFiles

        entry = self.entry(sha256)
        return PluginFiles(entry.root, entry.top, entry.manifest, sha256, origin or str(entry.root))

    def put(
        self,
        sha256: str,
        data: bytes,
        name: str,
        *,
        where: str,
        before_rename: Callable[[], None] | None = None,
    ) -> tuple[StoreEntry, bool]:
        """Unpack verified artifact bytes into the entry ``sha256`` (if it is not there yet).

        Args:
            sha256: The bytes' sha256, already checked by the caller.
            data: The artifact's bytes.
            name: Its file name (the suffix decides how it is read).
            where: Where it came from, for messages.
            before_rename: Called when the entry is complete in its temporary
                folder, just before it is renamed into place (a fault-injection point).

        Returns:
            The entry, and whether this call created it.

        Raises:
            SourceError, ArchiveError, ManifestError: the artifact was refused
                (nothing is left in the store).
        """
        from plugmarket._internal import cachedir
        from plugmarket.sources import unpack_artifact

        def fill(tmp: Path) -> None:
            files = unpack_artifact(data, name, tmp, self.settings, where=where)
            os.rename(files.root, tmp / TREE)
            tree = tmp / TREE
            member = ""
            with contextlib.suppress(ValueError):
                member = Path(files.manifest.path).relative_to(files.root).as_posix()
            count, digest = tree_digest(tree)
            record = {
                "format": FORMAT,
                "sha256": sha256,
                "size": len(data),
                "top": files.top,
                "tree": digest,
                "files": count,
                "member": member,
                "manifest": files.manifest.to_dict(),
            }
            body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
            with open(tmp / RECORD, "xb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            _sync_tree(tmp, files=not name.endswith((".zip", ".whl")))
            if before_rename is not None:
                before_rename()

        _, created = cachedir.store_tree(self.root, sha256, fill)
        self._records.pop(sha256, None)
        return self.entry(sha256), created

    def remove(self, sha256: str) -> bool:
        """Remove an entry: rename it out of the way (atomic), then delete it.

        Returns:
            Whether there was an entry to remove.

        Raises:
            OSError: the store cannot be written.
        """
        self._records.pop(sha256, None)
        trash = self.root / f".trash-{sha256[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.root / sha256, trash)
        except FileNotFoundError:
            return False
        fsync_dir(self.root)
        remove_tree(trash)
        return True

    def verify(self, sha256: str) -> str | None:
        """What is wrong with an entry, or None if its files are as they were written."""
        try:
            self._records.pop(sha256, None)
            entry = self.entry(sha256)
        except PlugmarketError as exc:
            return exc.message
        if entry.sha256 != sha256:
            return f"its record names another artifact ({entry.sha256[:12]})"
        try:
            _, digest = tree_digest(entry.root)
        except OSError as exc:
            return f"its files cannot be read: {exc.strerror or exc}"
        except ValueError as exc:
            return str(exc)
        if digest != entry.tree:
            return "its files changed since they were stored"
        if not (
            (entry.root / f"{entry.top}.py").is_file()
            or (entry.root / entry.top / "__init__.py").is_file()
        ):
            return f"its top-level module {entry.top!r} is missing"
        return None

    def _listing(self) -> list[str]:
        try:
            return os.listdir(self.root)
        except FileNotFoundError:
            return []


def check_artifact(
    data: bytes, *, sha256: str, size: int, limit: int, what: str, where: str
) -> None:
    """Check artifact bytes against their pinned sha256 and size, and the size cap.

    Args:
        data: The bytes.
        sha256: The pinned hash (lower-case hex).
        size: The pinned size in bytes (0: not pinned).
        limit: ``max_plugin_size``.
        what: The artifact for messages (``"csv-preview 1.0"``).
        where: Its URL or path.

    Raises:
        IntegrityError: the bytes are too many, or differ from the pins.
    """
    if len(data) > limit:
        raise IntegrityError(
            f"{where}: the artifact of {what} is {len(data)} bytes, more than "
            f"max_plugin_size ({limit})",
            subject=where,
            expected=f"at most {limit} bytes",
            actual=f"{len(data)} bytes",
            hint="Nothing was installed. Ask an admin to raise max_plugin_size if you "
            "trust this plugin.",
        )
    if size and len(data) != size:
        raise IntegrityError(
            f"{where}: the artifact of {what} is {len(data)} bytes, but its registry pins {size}",
            subject=where,
            expected=f"{size} bytes",
            actual=f"{len(data)} bytes",
            hint="Nothing was installed. The artifact was changed or cut short; "
            "try again, and tell the registry's admin if it persists.",
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"{where}: the artifact of {what} has sha256 {actual}, but its registry pins {sha256}",
            subject=where,
            expected=sha256,
            actual=actual,
            hint="Nothing was installed. The artifact was changed after it was published "
            "or tampered with on the way; tell the registry's admin.",
        )


def artifact_name(url: str, data: bytes, plugin_id: str) -> str:
    """The file name an artifact is read as: its URL's last part, else guessed from the bytes."""
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if name.endswith(_KNOWN_SUFFIXES):
        return name
    return plugin_id.replace("-", "_") + (".zip" if data[:4] == b"PK\x03\x04" else ".py")


def tree_digest(folder: Path) -> tuple[int, str]:
    """The number of files under ``folder`` and the digest of their paths and contents.

    Raises:
        OSError: a file cannot be read.
        ValueError: the tree holds something other than plain files and folders.
    """
    digest = hashlib.sha256()
    count = 0
    for rel, full in _walk(folder):
        with open(full, "rb") as handle:
            data = handle.read()
        digest.update(b"%s\0%d\0" % (rel.encode("utf-8", "surrogateescape"), len(data)))
        digest.update(data)
        count += 1
    return count, digest.hexdigest()


def _walk(folder: Path) -> Iterator[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    base = len(str(folder)) + 1
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as it:
            for item in it:
                if item.is_symlink():
                    raise ValueError(f"it holds a link, {item.path[base:]!r}")
                if item.is_dir():
                    pending.append(item.path)
                elif item.is_file():
                    entries.append((item.path[base:].replace(os.sep, "/"), item.path))
                else:
                    raise ValueError(f"it holds {item.path[base:]!r}, not a plain file")
    entries.sort()
    return iter(entries)


def _sync_tree(folder: Path, *, files: bool) -> None:
    """fsync every folder under ``folder``, and its files if ``files`` (entries must
    survive a power cut; the archive unpacker already syncs the files it writes)."""
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames if files else ():
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(folder: Path) -> None:
    """fsync a folder so renames in it survive a power cut (best effort where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Delete a folder or file, whatever state an interrupted write left it in."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _decode_record(raw: bytes, path: Path) -> StoreEntry:
    try:
        obj: Any = json.loads(raw)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError("unknown record format")
        sha, top, tree, size = obj["sha256"], obj["top"], obj["tree"], obj["size"]
        if not all(isinstance(v, str) for v in (sha, top, tree)) or type(size) is not int:
            raise ValueError("a field has the wrong type")
        member = obj.get("member", "")
        where = str(path / TREE / member) if isinstance(member, str) and member else str(path)
        manifest = parse_manifest(obj["manifest"], path=where)
    except (ValueError, KeyError, TypeError, PlugmarketError) as exc:
        raise InstallError(
            f"the store entry {path.name[:12]} is damaged: {exc}",
            step="read store",
            hint="Run `plugmarket check --repair`, then install the plugin again.",
        ) from exc
    return StoreEntry(sha, path, top, tree, size, manifest)


def _io_error(path: Path, exc: OSError, step: str) -> InstallError:
    return InstallError(
        f"{path}: cannot read the plugin store: {exc.strerror or exc}",
        step=step,
        hint="Check that plugmarket's home folder is readable.",
    )
