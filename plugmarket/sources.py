"""Plugin sources: where a plugin is, turned into a folder on disk with a validated manifest.

A :class:`Source` says where a plugin is (a local path, a URL, a string of
code, or a requirement on a PEP 503/691 simple index); :meth:`Source.materialize`
returns :class:`PluginFiles`: a folder ``root`` holding the plugin's top-level
module or package ``top``, its validated manifest and the sha256 of what it
came from. Nothing here imports or runs plugin code: manifests are read as
TOML or as a literal, and the loader imports what this module returns.

Invariants:

- A local ``.py`` file or package folder is used in place; everything else
  (archives, downloaded files, code strings) lives in the content-addressed
  cache ``<home>/cache/sources/<key>/``, written to a temporary folder beside
  it and renamed into place, never rewritten, and reused by the next
  materialize (so the loader's bytecode caches survive). The installer's
  store is the one exception: :func:`unpack_artifact` writes a verified
  artifact straight into a folder the store made and owns, and names every
  file it wrote, so the store fsyncs and hashes them without listing again.
- A package folder used in place is listed, hashed and its manifest read
  again whenever any stamp (inode, size, modification or change time) of it,
  a subfolder or a file changed; while none did, a load costs one ``stat``
  each. Stamps younger than the file system's clock tick vouch for nothing.
- Archives are checked by :mod:`plugmarket._internal.archive` before anything
  is unpacked, and their manifest is read from the archive before anything is
  written: a refused archive leaves no trace.
- Every download goes through :func:`plugmarket._internal.fetch.fetch`, bounded in
  size and time and limited to the allowed origins; index artifacts are always
  hash-checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import stat
import time
import types
import urllib.parse
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement

from plugmarket._internal import archive, cachedir
from plugmarket._internal.fetch import fetch
from plugmarket._internal.filetimes import settled
from plugmarket.errors import ManifestError, SourceError
from plugmarket.manifest import (
    MANIFEST_FILE,
    Manifest,
    normalize_id,
    parse_manifest,
    read_manifest,
    read_manifest_text,
    validate_id,
)
from plugmarket.settings import shown_url

if TYPE_CHECKING:
    import httpx

    from plugmarket.settings import Settings

__all__ = ["PluginFiles", "Source", "Unpacked", "unpack_artifact"]

_LITERAL = re.compile(r"^__plugin__\s*(:[^=]*)?=", re.M)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_ARCHIVES = (".zip", ".whl")


@dataclass(frozen=True)
class PluginFiles:
    """A plugin on disk, ready for the loader.

    Attributes:
        root: A folder that contains the plugin's top-level code.
        top: The module or package inside ``root``: ``root/<top>.py`` or
            ``root/<top>/__init__.py``.
        manifest: The plugin's validated manifest.
        sha256: The sha256 of the artifact's bytes (of the code string's UTF-8
            bytes; for a local folder, of its files: sorted relative paths and contents).
        origin: Where it came from, for messages and the audit log.
        stamps: For a package folder used in place: every file the loader sees,
            by full path, with its (inode, size, mtime, ctime) as checked when
            this value was returned; ``None`` otherwise.
    """

    root: Path
    top: str
    manifest: Manifest
    sha256: str
    origin: str
    stamps: Mapping[str, tuple[int, int, int, int]] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(frozen=True)
class Source:
    """Where a plugin is. Build one with :meth:`local`, :meth:`url`, :meth:`code` or :meth:`index`.

    Attributes:
        kind: ``"local"``, ``"url"``, ``"code"`` or ``"index"``.
        target: The path, URL or requirement.
        sha256: The pinned sha256 of a URL's bytes, if any.
        index_url: The simple index an ``index`` source searches.
        id: The plugin id of a ``code`` source.
        version: The fallback version of a ``code`` source.
        text: The code of a ``code`` source.
    """

    kind: str
    target: str
    sha256: str | None = None
    index_url: str = ""
    id: str = ""
    version: str = ""
    text: str = field(default="", repr=False)

    @classmethod
    def local(cls, path: str | Path) -> Source:
        """A ``.py`` file, a package folder, a ``.zip`` of a package, or a pure-Python ``.whl``."""
        return cls("local", str(Path(path).expanduser().absolute()))

    @classmethod
    def url(cls, url: str, sha256: str | None = None) -> Source:
        """A ``.py``, ``.zip`` or ``.whl`` at an https, http or file URL, optionally hash-pinned.

        Raises:
            SourceError: the scheme is not supported or the pin is not a sha256.
        """
        if urllib.parse.urlsplit(url).scheme not in ("https", "http", "file"):
            raise SourceError(
                f"{shown_url(url)}: not an https, http or file URL",
                source=shown_url(url),
                hint="Give a full URL such as https://example.com/plugin.whl.",
            )
        if sha256 is not None and not _SHA256.match(sha256):
            raise SourceError(
                f"{shown_url(url)}: the pin {sha256!r} is not a sha256 (64 hexadecimal digits)",
                source=shown_url(url),
                hint="Copy the sha256 the publisher gives, or leave the pin out.",
            )
        return cls("url", url, sha256=sha256.lower() if sha256 else None)

    @classmethod
    def code(cls, code: str, id: str, version: str = "0.0.0") -> Source:
        """A plugin given as a string of Python code.

        Its manifest is the code's ``__plugin__`` literal if it has one (whose
        id must be ``id``), else ``{"id": id, "version": version}``.

        Raises:
            ManifestError: ``id`` is not a valid plugin id.
        """
        return cls("code", f"code:{validate_id(id)}", id=id, version=version, text=code)

    @classmethod
    def index(cls, requirement: str, index_url: str) -> Source:
        """The best pure-Python wheel matching ``requirement`` on a PEP 503/691 simple index.

        Raises:
            SourceError: the requirement or the index URL is malformed.
        """
        try:
            req = Requirement(requirement)
        except InvalidRequirement as exc:
            raise SourceError(
                f"{requirement!r} is not a requirement such as 'name>=1.0,<2'",
                source=requirement,
                hint="Write a distribution name, optionally followed by a version specifier.",
            ) from exc
        if req.url or req.marker:
            raise SourceError(
                f"{requirement!r}: an index requirement takes no URL or marker",
                source=requirement,
                hint="Write a distribution name, optionally followed by a version specifier.",
            )
        if urllib.parse.urlsplit(index_url).scheme not in ("https", "http", "file"):
            raise SourceError(
                f"{shown_url(index_url)}: not an https, http or file URL of a simple index",
                source=shown_url(index_url),
                hint="Give the index's simple URL, such as https://pypi.example.com/simple/.",
            )
        return cls("index", requirement, index_url=index_url)

    @functools.cached_property
    def origin(self) -> str:
        """Where the plugin comes from, as recorded in :attr:`PluginFiles.origin`
        (a URL without the credentials it may carry)."""
        if self.kind == "local":
            return Path(self.target).as_uri()
        if self.kind == "index":
            return f"index:{self.target}@{shown_url(self.index_url)}"
        return shown_url(self.target)

    def materialize(self, settings: Settings, *, client: httpx.Client | None = None) -> PluginFiles:
        """Put the plugin on disk (or find it there) and read its manifest.

        Args:
            settings: Caps, allowed origins, and the home whose cache is used.
            client: The ``httpx.Client`` for downloads (one is made if absent).

        Returns:
            The folder, top-level name, manifest, sha256 and origin.

        Raises:
            SourceError: the source cannot be read or downloaded, or holds no plugin.
            ArchiveError: the archive was refused (nothing was written).
            IntegrityError: downloaded bytes differ from the pin or the index's hash,
                or exceed ``max_plugin_size``.
            ManifestError: the manifest is missing or invalid.
        """
        if self.kind == "local":
            known = _unchanged_folder(self.target, self.origin)
            if known is not None:
                return known
            return _local(Path(self.target), settings, self.origin)
        if self.kind == "code":
            return _code(self, settings)
        if self.kind == "url":
            body = fetch(
                self.target,
                client=client,
                max_bytes=settings.max_plugin_size,
                deadline=settings.download_deadline,
                allowed_origins=settings.allowed_origins,
                expected_sha256=self.sha256,
            ).body
            name = urllib.parse.unquote(urllib.parse.urlsplit(self.target).path.rsplit("/")[-1])
            return _artifact(body, name, shown_url(self.target), self.origin, settings)
        from plugmarket._internal.simpleindex import find_wheel

        found = find_wheel(self.target, self.index_url, settings, client)
        body = fetch(
            found.url,
            client=client,
            max_bytes=settings.max_plugin_size,
            deadline=settings.download_deadline,
            allowed_origins=found.allowed_origins,
            expected_sha256=found.sha256,
        ).body
        return _artifact(body, found.filename, shown_url(found.url), self.origin, settings)


# --- local sources ----------------------------------------------------------------


def _local(path: Path, settings: Settings, origin: str) -> PluginFiles:
    if not path.exists():
        raise SourceError(
            f"{path}: no such file or folder",
            source=str(path),
            hint="Check the path; relative paths are taken from the current folder.",
        )
    if path.is_dir():
        top = _module_name(path.name, path)
        if not (path / "__init__.py").is_file():
            raise SourceError(
                f"{path}: the folder has no __init__.py, so it is not a package",
                source=str(path),
                hint="Point at the package folder (the one with __init__.py) or at a .py file.",
            )
        return _folder(path, top, origin)
    if path.suffix == ".py":
        top = _module_name(path.stem, path)
        body = fetch(str(path), max_bytes=settings.max_plugin_size).body
        manifest = read_manifest_text(_utf8(body, str(path)), path=str(path), toml=False)
        return PluginFiles(path.parent, top, manifest, hashlib.sha256(body).hexdigest(), origin)
    if path.suffix in _ARCHIVES:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size, str(settings.home))
        known = _archive_memo.get(key)
        if known is not None and os.path.isdir(known.root):
            return known
        body = fetch(str(path), max_bytes=settings.max_plugin_size).body
        files = _artifact(body, path.name, str(path), origin, settings)
        _archive_memo[key] = files
        return files
    raise SourceError(
        f"{path}: not a .py file, a package folder, a .zip or a .whl",
        source=str(path),
        hint="Give the plugin's module, its package folder, or an archive of it.",
    )


# (archive path, mtime, size, home) -> what it unpacked to, checked once per change.
_archive_memo: dict[tuple[str, int, int, str], PluginFiles] = {}

# A folder used in place is re-read only when one of its stamps changed: the
# stamps of the folder, of every subfolder (a file added, removed or renamed
# changes its folder's) and of every file (a file written changes its own).
_Stamp = tuple[str, int, int, int, int, int]  # path, mode, inode, size, mtime, ctime
# (folder, origin) -> (stamps, files)
_folder_memo: dict[tuple[str, str], tuple[tuple[_Stamp, ...], PluginFiles]] = {}
# A stamp this close to the moment the folder was read may be followed by a change
# that leaves it as it is (filetimes.settled): such a folder is read again at every
# load until its stamps are older.


def _stamp(path: str, st: os.stat_result) -> _Stamp:
    return (path, st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _unchanged_folder(target: str, origin: str) -> PluginFiles | None:
    """The folder's files as last read, if no stamp of it changed since (one
    ``stat`` per folder and file, no listing, no reading)."""
    known = _folder_memo.get((target, origin))
    if known is None:
        return None
    stamps, files = known
    try:
        for stamp in stamps:
            st = os.stat(stamp[0])
            if (
                st.st_mtime_ns != stamp[4]
                or st.st_ctime_ns != stamp[5]
                or st.st_size != stamp[3]
                or st.st_ino != stamp[2]
                or st.st_mode != stamp[1]
            ):
                return None
    except OSError:
        return None  # gone: the full read says what is wrong
    return files


def _folder_files(folder: Path) -> tuple[list[tuple[str, str]], list[_Stamp]]:
    """(path relative to the folder's parent, full path) of the files the loader
    sees, sorted, and the stamps of those files and of every folder listed."""
    entries: list[tuple[str, str]] = []
    root = str(folder)
    stamps = [_stamp(root, os.stat(root))]
    parent = len(str(folder.parent)) + 1
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        pending.append(entry.path)
                        stamps.append(_stamp(entry.path, entry.stat()))
                elif not entry.name.endswith((".pyc", ".pyo")):
                    entries.append((entry.path[parent:], entry.path))
                    stamps.append(_stamp(entry.path, entry.stat()))
    entries.sort()
    return entries, stamps


def _folder(folder: Path, top: str, origin: str) -> PluginFiles:
    """A package folder used in place: the digest of its files (bytecode caches
    left out) and its manifest, read again only when a stamp changed."""
    key = (str(folder), origin)
    started = time.time_ns()
    try:
        files, stamps = _folder_files(folder)
        known = _folder_memo.get(key)
        if known is not None and known[0] == tuple(stamps):
            return known[1]
        digest = cachedir.tree_sha256((rel, Path(full).read_bytes()) for rel, full in files)
    except OSError as exc:
        raise SourceError(
            f"{folder}: cannot read the plugin's files: {exc.strerror or exc}",
            source=str(folder),
            hint="Check the folder's permissions.",
        ) from exc
    by_path = {stamp[0]: stamp[2:] for stamp in stamps if not stat.S_ISDIR(stamp[1])}
    result = PluginFiles(
        folder.parent, top, read_manifest(folder), digest, origin, types.MappingProxyType(by_path)
    )
    if settled((ns for stamp in stamps for ns in stamp[4:]), started):
        _folder_memo[key] = (tuple(stamps), result)
    else:
        _folder_memo.pop(key, None)
    return result


# --- code and single files ----------------------------------------------------------


def _code(src: Source, settings: Settings) -> PluginFiles:
    module = _module_name(src.id.replace("-", "_"), src.target)
    try:
        data = src.text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SourceError(
            f"{src.target}: the code cannot be encoded as UTF-8 ({exc.reason})",
            source=src.target,
            hint="Remove lone surrogate characters from the code.",
        ) from exc
    if _LITERAL.search(src.text):
        manifest = read_manifest_text(src.text, path=src.target, toml=False)
        if manifest.id != src.id:
            raise ManifestError(
                f"{src.target}: the code's __plugin__ literal says id {manifest.id!r}, "
                f"but it was given as {src.id!r}",
                path=src.target,
                field="id",
                found=manifest.id,
                allowed=src.id,
                hint="Make the literal's id and the id you pass the same.",
            )
    else:
        manifest = parse_manifest({"id": src.id, "version": src.version}, path=src.target)
    return _single_file(data, f"{module}.py", manifest, src.target, settings)


def _single_file(
    data: bytes, name: str, manifest: Manifest, origin: str, settings: Settings
) -> PluginFiles:
    """Store one module in the cache, keyed by its name and bytes."""
    _check_module_size(data, origin, settings)

    def fill(tmp: Path) -> None:
        (tmp / name).write_bytes(data)

    root, _ = cachedir.store_tree(_cache(settings), cachedir.tree_sha256([(name, data)]), fill)
    manifest = dataclasses.replace(manifest, path=str(root / name))
    return PluginFiles(root, name[:-3], manifest, hashlib.sha256(data).hexdigest(), origin)


def _check_module_size(data: bytes, origin: str, settings: Settings) -> None:
    if len(data) > settings.max_plugin_size:
        raise SourceError(
            f"{origin}: the code is {len(data)} bytes, more than max_plugin_size "
            f"({settings.max_plugin_size})",
            source=origin,
            hint="Split the plugin, or ask an admin to raise max_plugin_size.",
        )


@dataclass(frozen=True)
class Unpacked:
    """An artifact unpacked by :func:`unpack_artifact` into the caller's folder.

    Attributes:
        files: The plugin; its root is the folder.
        member: Where its manifest was read (or made) from, relative to the folder.
        written: Every file written, as ``(posix path relative to the folder,
            contents)``, the contents ``None`` past the ``keep`` bytes asked for.
    """

    files: PluginFiles
    member: str
    written: tuple[tuple[str, bytes | None], ...]


def unpack_artifact(
    data: bytes,
    name: str,
    dest: Path,
    settings: Settings,
    *,
    sha256: str = "",
    where: str = "",
    origin: str = "",
    keep: int = 0,
) -> Unpacked:
    """Check an artifact's bytes and unpack them straight into ``dest``.

    The same archive checks and manifest rules as :meth:`Source.materialize`
    apply; the installer's store uses this for artifacts it has already
    verified by hash. ``dest`` is an empty folder the caller made and owns:
    nothing here is fsynced (the caller fsyncs :attr:`Unpacked.written` and
    the folders holding them), and on any failure the caller removes ``dest``
    (a refused archive is refused before anything is written, but one that
    inflates past what it declares is stopped part-way).

    Args:
        data: The artifact's bytes.
        name: Its file name; the suffix (``.py``, ``.zip``, ``.whl``) decides how it is read.
        dest: The empty folder that receives the plugin.
        settings: The caps on unpacked size and entry count.
        sha256: The bytes' sha256, if the caller already has it.
        where: Where the artifact came from, for messages (default: ``name``).
        origin: Recorded as :attr:`PluginFiles.origin` (default: ``where``).
        keep: The most bytes of file contents to hand back in :attr:`Unpacked.written`.

    Returns:
        The unpacked plugin (its root ``dest``) and the files written.

    Raises:
        SourceError: the name has no known suffix, or the folder cannot be written.
        ArchiveError: the archive was refused.
        ManifestError: the manifest is missing or invalid.
    """
    where = where or name
    origin = origin or where
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    if name.endswith(".py"):
        module, manifest = _module_file(data, name, where)
        _check_module_size(data, origin, settings)
        target = f"{module}.py"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(os.path.join(dest, target), flags | getattr(os, "O_BINARY", 0), 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except OSError as exc:
            raise cachedir.write_error(dest, exc) from exc
        manifest = dataclasses.replace(manifest, path=os.path.join(dest, target))
        files = PluginFiles(dest, module, manifest, sha256, origin)
        return Unpacked(files, target, ((target, data if keep >= len(data) else None),))
    if not name.endswith(_ARCHIVES):
        raise _unknown_kind(where, name)
    with _checked_archive(data, name, where, settings) as (zf, listing, layout):
        top, prefix, manifest, member = layout
        written = archive.unpack(
            zf,
            listing,
            dest,
            max_unpacked=settings.max_unpacked_size,
            prefix=prefix,
            sync=False,
            keep=keep,
        )
    manifest = dataclasses.replace(manifest, path=os.path.join(dest, prefix + member))
    return Unpacked(
        PluginFiles(dest, top, manifest, sha256, origin), prefix + member, tuple(written)
    )


def _artifact(data: bytes, name: str, where: str, origin: str, settings: Settings) -> PluginFiles:
    """A downloaded or local ``.py``, ``.zip`` or ``.whl``, by its file name, in the cache."""
    if name.endswith(".py"):
        module, manifest = _module_file(data, name, where)
        return _single_file(data, f"{module}.py", manifest, origin, settings)
    if name.endswith(_ARCHIVES):
        return _unpack_archive(data, name, where, origin, settings)
    raise _unknown_kind(where, name)


def _module_file(data: bytes, name: str, where: str) -> tuple[str, Manifest]:
    module = _module_name(name[:-3], where)
    return module, read_manifest_text(_utf8(data, where), path=where, toml=False)


def _unknown_kind(where: str, name: str) -> SourceError:
    return SourceError(
        f"{where}: the file name {name!r} does not end in .py, .zip or .whl",
        source=where,
        hint="plugmarket reads a plugin as a module (.py), a zip of a package, or a wheel.",
    )


# --- archives ----------------------------------------------------------------------


_Layout = tuple[str, str, Manifest, str]  # top, prefix, manifest, member (see _layout)


@contextlib.contextmanager
def _checked_archive(
    data: bytes, name: str, where: str, settings: Settings
) -> Iterator[tuple[zipfile.ZipFile, archive.Listing, _Layout]]:
    """The open archive, checked, with its layout and manifest read from it."""
    with archive.open_zip(data, source=where, max_entries=settings.max_archive_entries) as zf:
        listing = archive.check_members(
            zf,
            source=where,
            max_entries=settings.max_archive_entries,
            max_unpacked=settings.max_unpacked_size,
        )
        wheel = archive.check_wheel(zf, listing, filename=name) if name.endswith(".whl") else None
        yield zf, listing, _layout(zf, listing, wheel)


def _unpack_archive(
    data: bytes, name: str, where: str, origin: str, settings: Settings
) -> PluginFiles:
    sha = hashlib.sha256(data).hexdigest()
    with _checked_archive(data, name, where, settings) as (zf, listing, layout):
        top, prefix, manifest, member = layout

        def fill(tmp: Path) -> None:
            archive.unpack(zf, listing, tmp, max_unpacked=settings.max_unpacked_size, prefix=prefix)

        root, _ = cachedir.store_tree(_cache(settings), sha, fill)
    manifest = dataclasses.replace(manifest, path=str(root / (prefix + member)))
    return PluginFiles(root, top, manifest, sha, origin)


def _layout(
    zf: zipfile.ZipFile, listing: archive.Listing, wheel: archive.WheelInfo | None
) -> tuple[str, str, Manifest, str]:
    """Choose the top-level name and read the manifest, from the archive itself.

    Returns:
        ``(top, prefix, manifest, member)``: ``prefix`` is ``"<top>/"`` when the
        archive holds a package's contents at its root, else ``""``; ``member``
        is where the manifest was read (or synthesized from).
    """
    source = listing.source
    files = dict(listing.files)
    if "__init__.py" in files and wheel is None:
        for member in (MANIFEST_FILE, "__init__.py"):
            manifest = _manifest_member(zf, listing, files, member)
            if manifest is not None:
                top = _module_name(manifest.id.replace("-", "_"), source)
                return top, f"{top}/", manifest, member
        raise _no_manifest(source, "__init__.py")
    top = _choose_top(archive.package_candidates(listing), listing, wheel)
    kind = "package" if f"{top}/__init__.py" in files else "module"
    places = (
        [f"{top}/{MANIFEST_FILE}", f"{top}/__init__.py", MANIFEST_FILE]
        if kind == "package"
        else [f"{top}.py", MANIFEST_FILE]
    )
    for member in places:
        manifest = _manifest_member(zf, listing, files, member)
        if manifest is not None:
            return top, "", manifest, member
    if wheel is None:
        raise _no_manifest(source, places[0])
    return top, "", _synthesize(wheel, source), f"{wheel.dist_info}/METADATA"


def _choose_top(
    found: dict[str, str], listing: archive.Listing, wheel: archive.WheelInfo | None
) -> str:
    if len(found) == 1:
        return next(iter(found))
    names = sorted(found)
    rules = [[n for n in names if f"{n}/{MANIFEST_FILE}" in listing.names]]
    if wheel is not None:
        rules.append([n for n in names if n in wheel.top_level])
        rules.append([n for n in names if normalize_id(n) == normalize_id(wheel.name)])
    for chosen in rules:
        if len(chosen) == 1:
            return chosen[0]
    what = ", ".join(names) if names else "none"
    raise SourceError(
        f"{listing.source}: expected one top-level package or module, found {len(names)} "
        f"({what}), and none of them is marked as the plugin",
        source=listing.source,
        hint=f"Put the plugin in one package, with a {MANIFEST_FILE} inside it.",
    )


def _manifest_member(
    zf: zipfile.ZipFile, listing: archive.Listing, files: dict[str, zipfile.ZipInfo], member: str
) -> Manifest | None:
    info = files.get(member)
    if info is None:
        return None
    data = archive.read_member(zf, info, source=listing.source, limit=info.file_size)
    path = f"{listing.source}!/{member}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text", path=path, hint="Save it as UTF-8.") from exc
    is_toml = member.endswith(".toml")
    if not is_toml and not _LITERAL.search(text):
        return None
    return read_manifest_text(text, path=path, toml=is_toml)


def _synthesize(wheel: archive.WheelInfo, source: str) -> Manifest:
    """A manifest for an ordinary published library: its name and version, nothing more."""
    description = f"The Python distribution {wheel.name} {wheel.version}, used as a plugin."
    if wheel.requires_dist:
        description += (
            " Its Python dependencies are not installed by plugmarket (Requires-Dist: "
            + "; ".join(wheel.requires_dist)
            + ")."
        )
    data = {
        "id": normalize_id(wheel.name),
        "version": wheel.version,
        "name": wheel.name,
        "summary": wheel.summary[:1000],
        "description": description[:60_000],
    }
    return parse_manifest(data, path=f"{source}!/{wheel.dist_info}/METADATA")


def _no_manifest(source: str, member: str) -> ManifestError:
    return ManifestError(
        f"{source}: no manifest found (neither {MANIFEST_FILE} nor a `__plugin__` literal "
        f"in {member})",
        path=source,
        hint=f"Add a {MANIFEST_FILE} beside the package's __init__.py.",
    )


# --- helpers -----------------------------------------------------------------------


def _cache(settings: Settings) -> Path:
    return Path(settings.home) / "cache" / "sources"


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{where}: the module is not UTF-8 text", source=where, hint="Save it as UTF-8."
        ) from exc


def _module_name(name: str, where: object) -> str:
    if not (name.isidentifier() and name.isascii()):
        raise SourceError(
            f"{where}: {name!r} cannot be a Python module name",
            source=str(where),
            hint="Rename it to letters, digits and underscores, not starting with a digit.",
        )
    return name
