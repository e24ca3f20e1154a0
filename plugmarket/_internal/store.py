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
  store (``.tmp-*``, :meth:`Store.stage`) and renamed into place
  (:meth:`Store.place`). :meth:`Store.put` fsyncs every file and folder of
  the entry before the rename and the store folder after it. The installer
  renames first and fsyncs the entries, the store folder, its journal and
  its generation file in one batch, before ``current`` names the generation:
  an entry a power cut leaves torn then belongs to a transaction that never
  committed, and the installer reuses an entry without a download only when
  a committed generation names it (docs/decisions/0008-transactions.md).
  An entry is removed by renaming it to ``.trash-*`` first and deleting that.
  Anything starting with ``.`` in the store is debris of an interrupted write
  or removal, safe to delete under the home lock.
- The fsyncs of a batch run concurrently
  (:func:`plugmarket._internal.durable.sync_all`); the order a power cut
  needs (contents before the rename that publishes them, the rename before
  whatever refers to it) comes from waiting for a whole batch before the next
  step, never from the order inside a batch.
- An entry is immutable once written. Only the installer writes or removes
  entries, always under the home lock; readers need no lock.
- Archives go through the same checks as any other source
  (:func:`plugmarket.sources.unpack_artifact`).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from plugmarket._internal.cachedir import tree_sha256, write_error
from plugmarket._internal.durable import fsync_dir, sync_all
from plugmarket.errors import InstallError, IntegrityError, PlugmarketError
from plugmarket.manifest import Manifest, parse_manifest

if TYPE_CHECKING:
    from plugmarket.settings import Settings
    from plugmarket.sources import PluginFiles

__all__ = [
    "SHA256",
    "Staged",
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
_KEEP = 8 << 20  # bytes: unpacked contents hashed from memory; past that, read back
_TMP_TRIES = 10_000  # names tried for a temporary folder, as tempfile.mkdtemp
_serial = itertools.count(1)  # temporary folders made by this process


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


@dataclass(frozen=True)
class Staged:
    """An artifact unpacked into a temporary folder of the store, not in place yet.

    Until :meth:`Store.place` renames it, :attr:`tmp` is debris: recovery and
    :meth:`Store.discard` delete it.

    Attributes:
        sha256: The entry it becomes.
        tmp: The temporary folder (``store/.tmp-*``).
        entry: The entry as it will read once placed (path already final).
        unsynced: Files not fsynced yet, relative to the entry's folder.
        folders: Folders not fsynced yet, relative to the entry's folder.
    """

    sha256: str
    tmp: Path
    entry: StoreEntry
    unsynced: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    def to_sync(self, *, placed: bool) -> tuple[list[Path], list[Path]]:
        """The files and folders still to fsync, under the temporary or the final name."""
        base = self.entry.path if placed else self.tmp
        return [base / f for f in self.unsynced], [base / d for d in self.folders]


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

        :meth:`stage`, :meth:`place` and :meth:`sync_root` in one call; the
        installer calls them itself, to unpack while it downloads the next
        artifact and to fsync the store folder once for all its entries.

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
            SourceError, ArchiveError, ManifestError: the artifact was refused, or
                the store cannot be written (nothing is left in the store).
        """
        if self.has(sha256):
            return self.entry(sha256), False
        staged = self.stage(sha256, data, name, where=where, sync=True)
        try:
            if before_rename is not None:
                before_rename()
            entry, created = self.place(staged)
        except BaseException:
            self.discard(staged)
            raise
        self.sync_root()
        return entry, created

    def stage(
        self, sha256: str, data: bytes, name: str, *, where: str, sync: bool = True
    ) -> Staged:
        """Unpack verified artifact bytes into a new temporary folder of the store.

        With ``sync``, every file and folder in the temporary folder is on the
        disk when this returns (fsynced concurrently, in one batch); without,
        :meth:`Staged.to_sync` lists what the caller must fsync before anything
        refers to the entry. Safe to call from several threads at once, each
        with its own artifact.

        The artifact is unpacked straight into ``<tmp>/tree``
        (:func:`plugmarket.sources.unpack_artifact`), and the tree digest is
        made from the bytes as they were written (read back past ``_KEEP``
        bytes, or from the disk if a name is not ASCII, which a file system
        may store in another form), so nothing is renamed or listed again.

        Args:
            sha256: The bytes' sha256, already checked by the caller.
            data: The artifact's bytes.
            name: Its file name (the suffix decides how it is read).
            where: Where it came from, for messages.
            sync: fsync the rest of the entry here.

        Returns:
            The staged entry.

        Raises:
            SourceError, ArchiveError, ManifestError: the artifact was refused, or
                the store cannot be written (the temporary folder is removed).
        """
        from plugmarket.sources import unpack_artifact

        try:
            tmp = self._make_tmp(sha256)
        except OSError as exc:
            raise write_error(self.root, exc) from exc
        tree = os.path.join(tmp, TREE)
        try:
            # Nothing is flushed while unpacking: unpack_artifact writes only under
            # tree and names every file it wrote; those files, their folders and the
            # record are fsynced in one concurrent batch, here or by the caller.
            os.mkdir(tree)
            unpacked = unpack_artifact(
                data, name, Path(tree), self.settings, sha256=sha256, where=where, keep=_KEEP
            )
            files = unpacked.files
            written = sorted(unpacked.written, key=_first)
            if all(rel.isascii() for rel, _ in written):
                digest = tree_sha256(
                    (rel, _read(os.path.join(tree, rel)) if kept is None else kept)
                    for rel, kept in written
                )
            else:  # a file system may keep a non-ASCII name in another form: hash what it kept
                _, digest = tree_digest(Path(tree))
            record = {
                "format": FORMAT,
                "sha256": sha256,
                "size": len(data),
                "top": files.top,
                "tree": digest,
                "files": len(written),
                "member": unpacked.member,
                "manifest": files.manifest.to_dict(),
            }
            body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
            with open(os.path.join(tmp, RECORD), "xb") as out:
                out.write(body)
            unsynced = [RECORD, *(f"{TREE}/{rel}" for rel, _ in written)]
            folders = _folders(rel for rel, _ in written)
            if sync:
                sync_all([Path(tmp, f) for f in unsynced], [Path(tmp, d) for d in folders])
                unsynced, folders = [], []
        except OSError as exc:
            remove_tree(Path(tmp))
            raise write_error(self.root, exc) from exc
        except BaseException:
            remove_tree(Path(tmp))
            raise
        final = self.root / sha256
        member = unpacked.member
        where_manifest = str(final / TREE / member) if member else str(final)
        entry = StoreEntry(
            sha256,
            final,
            files.top,
            digest,
            len(data),
            dataclasses.replace(files.manifest, path=where_manifest),
        )
        return Staged(sha256, Path(tmp), entry, tuple(unsynced), tuple(folders))

    def _make_tmp(self, sha256: str) -> str:
        """Make a new temporary folder in the store (and the store, if missing).

        Its name is unique without a random part: this process's id and a
        counter, the next one tried if the name is taken (by debris of a dead
        process that had the same id, or by another host sharing the home).
        """
        root = os.fspath(self.root)
        for _ in range(_TMP_TRIES):
            path = os.path.join(root, f".tmp-{sha256[:16]}-{os.getpid()}-{next(_serial)}")
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                continue
            except FileNotFoundError:  # the home's first entry
                self.root.mkdir(parents=True, exist_ok=True)
                continue
            return path
        raise FileExistsError(errno.EEXIST, "no free name for a temporary folder", root)

    def place(self, staged: Staged) -> tuple[StoreEntry, bool]:
        """Rename a staged entry into place (the store folder is not fsynced yet).

        Returns:
            The entry, and whether this call created it (False if another
            writer stored the same artifact first; the staged copy is discarded).

        Raises:
            SourceError: the store cannot be written.
        """
        final = self.root / staged.sha256
        self._records.pop(staged.sha256, None)
        try:
            os.rename(staged.tmp, final)
        except OSError as exc:
            if not self.has(staged.sha256):
                raise write_error(self.root, exc) from exc
            self.discard(staged)
            return self.entry(staged.sha256), False
        self._records[staged.sha256] = staged.entry
        return staged.entry, True

    def sync_root(self) -> None:
        """fsync the store folder, so entries renamed into it survive a power cut."""
        fsync_dir(self.root)

    def discard(self, staged: Staged) -> None:
        """Delete a staged entry that will not be placed (nothing if already placed)."""
        remove_tree(staged.tmp)

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
    entries = list(_walk(folder))
    return len(entries), tree_sha256((rel, _read(full)) for rel, full in entries)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _first(item: tuple[str, bytes | None]) -> str:
    return item[0]


def _folders(files: Iterable[str]) -> list[str]:
    """The entry's folders (``.``, ``tree`` and every folder holding a file under it)."""
    found = {".", TREE}
    for rel in files:
        cut = rel.rfind("/")
        while cut > 0 and (folder := f"{TREE}/{rel[:cut]}") not in found:
            found.add(folder)
            cut = rel.rfind("/", 0, cut)
    return sorted(found)


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
