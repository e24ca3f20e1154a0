"""Hostile-archive checks and the content-addressed unpack of zip and wheel plugins.

Everything an archive says about itself is checked from its central directory
*before* a byte is unpacked: member names (no absolute paths, no ``..``, ``.``
or empty components, no backslashes, colons or control characters, no
duplicates after Unicode normalisation and case-folding, no file that is also
a folder), member types (regular files and folders only: no symbolic links,
devices or FIFOs), the entry count and the declared total size, encryption,
compiled parts (``.so``, ``.pyd``, ``.dylib``, ``.dll``), and bytecode that
would shadow a shipped ``.py``. For a wheel, its ``WHEEL`` file must say
``Root-Is-Purelib: true`` with a ``py3-none-any``-style tag.

Invariants:

- A refused archive raises :class:`~plugmarket.errors.ArchiveError` naming the
  archive and the member, and nothing has been written anywhere.
- ``ZipFile.extract``/``extractall`` are never used (they rewrite ``../``
  silently); each member is written by :func:`unpack` to a path built from
  checked components, with ``O_EXCL | O_NOFOLLOW``, while the size cap is
  enforced on the bytes actually inflated (a header that lies is caught).
- Bytecode (``*.pyc``, ``*.pyo``, ``__pycache__/``) and a wheel's ``.data/``
  folder are never unpacked.
- :func:`unpack` writes into a fresh folder: one that
  :func:`plugmarket._internal.cachedir.store_tree` renames into place, or the
  store's temporary folder (:func:`plugmarket.sources.unpack_artifact`).
"""

from __future__ import annotations

import email.parser
import io
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.tags import Tag, parse_tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from plugmarket._internal import durable
from plugmarket._internal.cachedir import write_error
from plugmarket.errors import ArchiveError

__all__ = [
    "Listing",
    "WheelInfo",
    "check_members",
    "check_wheel",
    "open_zip",
    "package_candidates",
    "read_member",
    "unpack",
]

_COMPILED = re.compile(r"\.(so|pyd|dylib|dll)(\.[0-9][0-9.]*)?$", re.IGNORECASE)
_BYTECODE_SUFFIXES = (".pyc", ".pyo")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\:]")
_MAX_NAME = 1024  # characters in one member name
_MAX_DEPTH = 64  # folders deep
_CHUNK = 64 * 1024
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


@dataclass(frozen=True)
class Listing:
    """What a checked archive will unpack.

    Attributes:
        source: The archive, for messages.
        files: ``(relative posix path, member)`` for every file to write, in order.
        names: Every checked path (files and folders, no trailing slash).
        skipped: Members that are valid but not unpacked (bytecode, ``.data/``).
        declared_size: The sum of the members' declared uncompressed sizes.
    """

    source: str
    files: tuple[tuple[str, zipfile.ZipInfo], ...]
    names: frozenset[str]
    skipped: tuple[str, ...]
    declared_size: int


@dataclass(frozen=True)
class WheelInfo:
    """What a pure-Python wheel's ``.dist-info`` says about it."""

    name: str
    version: str
    dist_info: str
    summary: str
    requires_dist: tuple[str, ...]
    top_level: tuple[str, ...]  # from top_level.txt, if the wheel has one


def refuse(source: str, member: str, reason: str, hint: str = "") -> ArchiveError:
    """The one shape of a refusal: the archive, the member, the reason."""
    return ArchiveError(
        f"{source}: refused the archive because member {member!r} {reason}",
        source=source,
        member=member,
        hint=hint or "Do not use this archive; rebuild it from the plugin's source folder.",
    )


def open_zip(data: bytes, *, source: str, max_entries: int) -> zipfile.ZipFile:
    """Open archive bytes, refusing an oversized central directory before it is parsed.

    Raises:
        ArchiveError: the bytes are not a zip archive, or declare too many entries.
    """
    declared = _declared_entries(data)
    if declared is not None and declared > max_entries:
        raise _too_many(source, f"#{max_entries + 1}", max_entries)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ArchiveError(
            f"{source}: not a readable zip archive ({exc})",
            source=source,
            hint="Check that the file is a complete .zip or .whl.",
        ) from exc


def check_members(
    zf: zipfile.ZipFile, *, source: str, max_entries: int, max_unpacked: int
) -> Listing:
    """Check every member from the central directory; nothing is read or written.

    Args:
        zf: The open archive.
        source: The archive's name, for messages.
        max_entries: The most members allowed.
        max_unpacked: The most bytes the declared sizes may add up to.

    Returns:
        The files to unpack and the members skipped.

    Raises:
        ArchiveError: naming the first member that breaks a rule.
    """
    infos = zf.infolist()
    if len(infos) > max_entries:
        raise _too_many(source, infos[max_entries].orig_filename, max_entries)
    seen: dict[str, str] = {}
    names: set[str] = set()
    files: list[tuple[str, zipfile.ZipInfo]] = []
    file_keys: dict[str, str] = {}
    folder_keys: set[str] = set()
    skipped: list[str] = []
    total = 0
    for info in infos:
        raw = info.orig_filename
        path = _check_name(source, raw)
        _check_type(source, info, raw)
        key = _fold(path)
        if key in seen:
            raise refuse(source, raw, f"has the same name as {seen[key]!r}", _DUP_HINT)
        seen[key] = raw
        names.add(path)
        parts = path.split("/")
        folder_keys.update(_fold("/".join(parts[:i])) for i in range(1, len(parts)))
        total += info.file_size
        if total > max_unpacked:
            raise refuse(
                source,
                raw,
                f"brings the declared unpacked size past the {max_unpacked} bytes allowed "
                "(max_unpacked_size)",
                "This looks like a zip bomb; if the plugin really is this large, ask an admin "
                "to raise max_unpacked_size.",
            )
        if _COMPILED.search(path):
            raise refuse(
                source,
                raw,
                "is compiled code: the archive has compiled parts, and plugmarket loads "
                "pure-Python plugins only",
                "Use a pure-Python version of the plugin (a py3-none-any wheel).",
            )
        if info.is_dir():
            continue
        if _is_bytecode(path) or _is_wheel_data(path):
            skipped.append(raw)
            continue
        file_keys[key] = raw
        files.append((path, info))
    for key, raw in file_keys.items():
        if key in folder_keys:
            raise refuse(source, raw, "is a file and also a folder of other members", _DUP_HINT)
    shipped = frozenset(key for key in file_keys if key.endswith(".py"))
    for raw in skipped:
        shadowed = _shadowed_source(_fold(raw.rstrip("/")))
        if shadowed is not None and shadowed in shipped:
            raise refuse(
                source,
                raw,
                f"is bytecode for {shadowed!r}: a shipped .pyc could run instead of the "
                "reviewed .py",
                "Rebuild the archive without __pycache__ folders and .pyc files.",
            )
    return Listing(
        source=source,
        files=tuple(files),
        names=frozenset(names),
        skipped=tuple(skipped),
        declared_size=total,
    )


def check_wheel(zf: zipfile.ZipFile, listing: Listing, *, filename: str | None = None) -> WheelInfo:
    """Check that a wheel is pure Python and read its ``.dist-info``.

    Args:
        zf: The open wheel, already passed through :func:`check_members`.
        listing: What :func:`check_members` returned.
        filename: The wheel's file name, if known; its name and version must
            match the ``.dist-info`` folder.

    Returns:
        The wheel's name, version, summary, ``Requires-Dist`` and ``top_level.txt``.

    Raises:
        ArchiveError: no single ``.dist-info``, no ``WHEEL``/``METADATA``, or compiled parts.
    """
    source = listing.source
    dist_infos = sorted(
        {p.split("/", 1)[0] for p in listing.names if p.split("/", 1)[0].endswith(".dist-info")}
    )
    if len(dist_infos) != 1:
        raise refuse(
            source,
            ", ".join(dist_infos) or "*.dist-info",
            f"shows {len(dist_infos)} .dist-info folders where a wheel has exactly one",
            _REBUILD_HINT,
        )
    dist_info = dist_infos[0]
    member = f"{dist_info}/WHEEL"
    headers = email.parser.Parser().parsestr(_read_dist_file(zf, listing, member))
    purelib = (headers.get("Root-Is-Purelib") or "").strip().lower()
    if purelib != "true":
        raise refuse(
            source,
            member,
            f"says Root-Is-Purelib: {purelib or '(missing)'}: the wheel has compiled parts, "
            "and plugmarket loads pure-Python plugins only",
            "Use a pure-Python (py3-none-any) wheel of the plugin.",
        )
    raw_tags = [t.strip() for t in headers.get_all("Tag") or [] if t.strip()]
    _check_pure_tags(source, member, [t for raw in raw_tags for t in parse_tag(raw)], raw_tags)
    named: tuple[str, str] | None = None
    if filename is not None:
        try:
            file_name, file_version, _, file_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise refuse(source, filename, f"is not a valid wheel file name ({exc})") from exc
        _check_pure_tags(source, filename, file_tags, [filename])
        named = (file_name, str(file_version))
    meta = email.parser.Parser().parsestr(
        _read_dist_file(zf, listing, f"{dist_info}/METADATA"), headersonly=True
    )
    name, version = (meta.get("Name") or "").strip(), (meta.get("Version") or "").strip()
    stem_name, _, stem_version = dist_info[: -len(".dist-info")].partition("-")
    if not name or not version or not _same_dist(stem_name, stem_version, name, version):
        raise refuse(
            source,
            f"{dist_info}/METADATA",
            f"names {name!r} {version!r}, which does not match the folder {dist_info!r}",
            _REBUILD_HINT,
        )
    if named is not None and not _same_dist(*named, name, version):
        raise refuse(
            source,
            f"{dist_info}/METADATA",
            f"names {name!r} {version!r}, but the file is called {filename!r}",
            "The wheel was renamed or its contents swapped; do not use it.",
        )
    top_level: tuple[str, ...] = ()
    if f"{dist_info}/top_level.txt" in listing.names:
        text = _read_dist_file(zf, listing, f"{dist_info}/top_level.txt")
        top_level = tuple(line.strip() for line in text.splitlines() if line.strip())
    return WheelInfo(
        name=name,
        version=version,
        dist_info=dist_info,
        summary=(meta.get("Summary") or "").strip(),
        requires_dist=tuple(r.strip() for r in meta.get_all("Requires-Dist") or []),
        top_level=top_level,
    )


def package_candidates(listing: Listing) -> dict[str, str]:
    """Importable top-level names in a checked archive: ``{name: "package" | "module"}``."""
    found: dict[str, str] = {}
    for path, _ in listing.files:
        first, _, rest = path.partition("/")
        if first.endswith((".dist-info", ".data")):
            continue
        if (
            not rest
            and first.endswith(".py")
            and first != "__init__.py"
            and _importable(first[:-3])
        ):
            found.setdefault(first[:-3], "module")
        elif rest == "__init__.py" and _importable(first):
            found[first] = "package"
    return found


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, source: str, limit: int) -> bytes:
    """Read one checked member into memory, at most ``limit`` bytes.

    Raises:
        ArchiveError: the member is corrupt, or inflates past ``limit`` or its declared size.
    """
    out = bytearray()
    for chunk in _inflate(zf, info, source=source, limit=limit):
        out += chunk
    return bytes(out)


def unpack(
    zf: zipfile.ZipFile,
    listing: Listing,
    dest: Path,
    *,
    max_unpacked: int,
    prefix: str = "",
    sync: bool = True,
    keep: int = 0,
) -> list[tuple[str, bytes | None]]:
    """Write the checked files of ``listing`` under ``dest`` (an empty folder).

    With ``sync``, each file is fsynced as it is closed, or, under
    :func:`plugmarket._internal.durable.deferred`, noted for the caller's batch;
    without, nothing is flushed and the caller fsyncs what this returns.

    Args:
        zf: The open archive.
        listing: What :func:`check_members` returned for ``zf``.
        dest: A fresh, empty folder.
        max_unpacked: The most bytes to write in all, counted as they inflate.
        prefix: A folder to put everything in (``"pkg/"``), or ``""``.
        sync: fsync (or note) each file written.
        keep: The most bytes of contents to return, in all.

    Returns:
        Every file written, in the listing's order, as ``(path relative to
        dest, contents)``; the contents while they add up to at most ``keep``
        bytes, ``None`` after that.

    Raises:
        ArchiveError: a member is corrupt or inflates past its declared size or the cap.
        SourceError: the folder cannot be written.
    """
    base = os.path.abspath(dest)
    budget = max_unpacked
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)
    made = {base}  # folders known to exist: one mkdir per folder, not per file
    written: list[tuple[str, bytes | None]] = []
    for path, info in listing.files:
        rel = prefix + path
        target = os.path.join(base, *rel.split("/"))
        # Unreachable after the name checks; normpath so that a ".." would be seen here too.
        if os.path.commonpath([base, os.path.normpath(target)]) != base:
            raise refuse(listing.source, info.orig_filename, "would be written outside the folder")
        try:
            folder = os.path.dirname(target)
            if folder not in made:
                try:
                    os.mkdir(folder)
                except OSError:  # a parent is missing, or it was made as one
                    os.makedirs(folder, exist_ok=True)
                made.add(folder)
            fd = os.open(target, flags, 0o644)
        except OSError as exc:
            raise write_error(dest, exc) from exc
        chunks: list[bytes] | None = [] if keep > 0 else None
        with os.fdopen(fd, "wb") as out:
            for chunk in _inflate(zf, info, source=listing.source, limit=budget):
                budget -= len(chunk)
                if chunks is not None:
                    chunks.append(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise write_error(dest, exc) from exc
            try:
                if sync:
                    durable.fsync_written(out, target)
            except OSError as exc:
                raise write_error(dest, exc) from exc
        kept = None
        if chunks is not None:
            kept = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            keep -= len(kept)
            if keep < 0:
                kept = None
        written.append((rel, kept))
    return written


# --- the rules --------------------------------------------------------------

_REBUILD_HINT = "This is not a valid wheel; rebuild it with `python -m build --wheel`."
_DUP_HINT = "Names that differ only in case or Unicode form unpack over each other; rebuild it."


def _check_name(source: str, raw: str) -> str:
    bad = _BAD_CHARS.search(raw)
    if bad is not None:
        what = {"\\": "a backslash", ":": "a colon", "\x00": "a NUL byte"}.get(
            bad.group(), "a control character"
        )
        raise refuse(source, raw, f"has {what} in its name", _NAME_HINT)
    if raw.startswith("/"):
        raise refuse(source, raw, "is an absolute path", _NAME_HINT)
    if len(raw) > _MAX_NAME:
        raise refuse(source, raw[:80] + "...", f"has a name longer than {_MAX_NAME} characters")
    path = raw[:-1] if raw.endswith("/") else raw
    parts = path.split("/")
    if len(parts) > _MAX_DEPTH:
        raise refuse(source, raw, f"is more than {_MAX_DEPTH} folders deep")
    for part in parts:
        if part in ("", ".", ".."):
            shown = {"": "an empty", ".": "a '.'", "..": "a '..'"}[part]
            raise refuse(source, raw, f"has {shown} path component", _NAME_HINT)
    return path


_NAME_HINT = "This archive tries to write outside its folder (a zip-slip attack); do not use it."


def _check_type(source: str, info: zipfile.ZipInfo, raw: str) -> None:
    if info.flag_bits & 0x1:
        raise refuse(source, raw, "is encrypted", "plugmarket reads unencrypted archives only.")
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise refuse(
            source,
            raw,
            "is a symbolic link",
            "Links can point anywhere on disk; an archive of a plugin holds plain files only.",
        )
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR) or (kind == stat.S_IFDIR) != info.is_dir():
        raise refuse(source, raw, f"is not a plain file or folder (mode {mode:o})")


def _fold(path: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", path).casefold())


def _is_bytecode(path: str) -> bool:
    return path.endswith(_BYTECODE_SUFFIXES) or "__pycache__" in path.split("/")


def _is_wheel_data(path: str) -> bool:
    return path.split("/", 1)[0].endswith(".data")


def _shadowed_source(key: str) -> str | None:
    """The ``.py`` (folded) that bytecode at ``key`` would stand in for, if any."""
    p = PurePosixPath(key)
    if not p.name.endswith(_BYTECODE_SUFFIXES):
        return None
    if p.parent.name == "__pycache__":
        return str(p.parent.parent / (p.name.split(".", 1)[0] + ".py"))
    return str(p.with_suffix(".py"))


def _importable(name: str) -> bool:
    return name.isidentifier() and name.isascii()


def _check_pure_tags(source: str, member: str, tags: Iterable[Tag], shown: list[str]) -> None:
    tags = list(tags)
    impure = [t for t in tags if t.abi != "none" or t.platform != "any"]
    if impure or not any(re.fullmatch(r"py3\d*", t.interpreter) for t in tags):
        raise refuse(
            source,
            member,
            f"gives the tags {', '.join(shown) or '(none)'}: the wheel has compiled parts or "
            "is not for Python 3, and plugmarket loads pure-Python plugins only",
            "Use a py3-none-any wheel of the plugin.",
        )


def _same_dist(name: str, version: str, other_name: str, other_version: str) -> bool:
    return canonicalize_name(name) == canonicalize_name(other_name) and _norm_version(
        version
    ) == _norm_version(other_version)


def _norm_version(text: str) -> str:
    try:
        return str(Version(text))
    except InvalidVersion:
        return text.replace("_", "-")


def _read_dist_file(zf: zipfile.ZipFile, listing: Listing, path: str) -> str:
    info = next((i for p, i in listing.files if p == path), None)
    if info is None:
        raise refuse(
            listing.source,
            path,
            "is missing: a wheel's .dist-info must hold WHEEL and METADATA",
            _REBUILD_HINT,
        )
    data = read_member(zf, info, source=listing.source, limit=info.file_size)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(listing.source, path, "is not UTF-8 text") from exc


def _inflate(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, source: str, limit: int
) -> Iterator[bytes]:
    """A member's bytes, stopped at its declared size or ``limit``, whatever the header says."""
    raw = info.orig_filename
    read = 0
    try:
        with zf.open(info) as member:
            while chunk := member.read(_CHUNK):
                read += len(chunk)
                if read > info.file_size or read > limit:
                    raise refuse(
                        source,
                        raw,
                        f"inflates past {min(info.file_size, limit)} bytes "
                        "(its declared size or what is left of max_unpacked_size)",
                        "This is a zip bomb whose header lies about its size; do not use it.",
                    )
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise refuse(
            source, raw, f"cannot be read: {exc}", "The archive is corrupt or was tampered with."
        ) from exc


def _too_many(source: str, member: str, max_entries: int) -> ArchiveError:
    return refuse(
        source,
        member,
        f"is past the {max_entries} entries allowed (max_archive_entries)",
        "An archive with this many entries is not a plugin; ask an admin to raise "
        "max_archive_entries if it really is.",
    )


def _declared_entries(data: bytes) -> int | None:
    """The entry count in the end-of-central-directory record, read without parsing it all."""
    pos = data.rfind(_EOCD, max(0, len(data) - (1 << 16) - 22))
    if pos < 0 or pos + 22 > len(data):
        return None
    (total,) = struct.unpack_from("<H", data, pos + 10)
    if total != 0xFFFF:
        return int(total)
    loc = pos - 20
    if loc < 0 or data[loc : loc + 4] != _EOCD64_LOCATOR:
        return None
    (offset,) = struct.unpack_from("<Q", data, loc + 8)
    if offset + 56 > len(data) or data[offset : offset + 4] != _EOCD64:
        return None
    (total64,) = struct.unpack_from("<Q", data, offset + 32)
    return int(total64)
