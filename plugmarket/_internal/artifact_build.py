"""Reproducible plugin artifacts: build a zip from a plugin, read the manifest back out.

An artifact is a zip whose root holds the plugin as an importable name, the
way a wheel does: a package folder ``pkg/`` (with ``pkg/__init__.py`` and
``pkg/plugin.toml`` or a ``__plugin__`` literal), or one module ``name.py``.

Invariant: the same plugin files give the same bytes, whatever their mtimes,
permissions, caches or the order the file system lists them in: entries are
sorted, dated 1980-01-01, mode 0644, deflated at level 9, and ``__pycache__``,
``*.pyc``/``*.pyo``, hidden files and version-control folders are left out.
Symbolic links are refused.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from plugmarket._internal.signing import write_atomic
from plugmarket.errors import SourceError
from plugmarket.manifest import MANIFEST_FILE, Manifest, read_manifest, read_manifest_text

__all__ = ["artifact_bytes", "artifact_manifest", "build"]

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache"})
_MAX_FILES = 10_000  # files in one plugin
_MAX_BYTES = 64 * 1024 * 1024  # bytes in one plugin
_MAX_MANIFEST = 1024 * 1024  # bytes read for a manifest inside an artifact


def build(path: Path | str, out_dir: Path | str) -> Path:
    """Build the reproducible artifact ``<id>-<version>.zip`` of a plugin.

    A single-file plugin ``name.py`` becomes a zip holding ``name.py``; a package
    folder becomes a zip holding it under its own name (or the id with ``_`` for
    ``-`` when the folder's name is not importable). Entries are sorted, dated
    1980-01-01, mode 0644, and ``__pycache__``, ``*.pyc`` and hidden files are
    left out, so the same files always give the same bytes.

    Args:
        path: A plugin's ``.py`` file or package folder.
        out_dir: Where to write the zip (created if needed).

    Returns:
        The artifact's path.

    Raises:
        ManifestError: the plugin has no valid manifest.
        SourceError: the plugin cannot be read, holds a symbolic link, or is too big.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if path.is_file():
        files = [(path.name, path)]
    else:
        top = path.name if path.name.isidentifier() else manifest.id.replace("-", "_")
        files = [(f"{top}/{rel}", file) for rel, file in _walk(path)]
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, file in sorted(files):
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise SourceError(f"cannot read {file}: {exc}", source=str(path)) from exc
            total += len(data)
            if total > _MAX_BYTES:
                raise SourceError(
                    f"{path} holds more than {_MAX_BYTES // (1024 * 1024)} MiB of files",
                    source=str(path),
                    hint="Leave data files out of the plugin, or point build at the "
                    "package folder rather than a parent folder.",
                )
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o100644 << 16
            info.create_system = 3  # unix, so the mode bits mean the same everywhere
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)
    out = Path(out_dir) / f"{manifest.id}-{manifest.version}.zip"
    try:
        write_atomic(out, buffer.getvalue())
    except OSError as exc:
        raise SourceError(
            f"cannot write {out}: {exc.strerror or exc}",
            source=str(path),
            hint="Check that the output folder is writable and the disk is not full.",
        ) from exc
    return out


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    count = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for entry in [*dirs, *names]:
            if (Path(folder) / entry).is_symlink():
                raise SourceError(
                    f"{Path(folder) / entry} is a symbolic link; artifacts hold regular files only",
                    source=str(root),
                    hint="Replace the link by the file it points to, or remove it.",
                )
        for name in sorted(names):
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            count += 1
            if count > _MAX_FILES:
                raise SourceError(
                    f"{root} holds more than {_MAX_FILES} files",
                    source=str(root),
                    hint="Point build at the plugin's package folder.",
                )
            file = Path(folder) / name
            yield file.relative_to(root).as_posix(), file


def artifact_manifest(data: bytes, *, source: str) -> Manifest:
    """Read the manifest inside an artifact zip, without running or unpacking anything.

    The manifest is ``<pkg>/plugin.toml`` or the ``__plugin__`` literal of
    ``<pkg>/__init__.py`` for a package, or of the one top-level ``.py`` module.

    Raises:
        SourceError: the bytes are not a zip holding one plugin.
        ManifestError: the manifest is invalid.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        files = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    except (zipfile.BadZipFile, ValueError) as exc:
        raise SourceError(f"{source} is not a zip archive", source=source) from exc
    tomls = [n for n in files if n.count("/") == 1 and n.endswith(f"/{MANIFEST_FILE}")]
    inits = [n for n in files if n.count("/") == 1 and n.endswith("/__init__.py")]
    modules = [n for n in files if "/" not in n and n.endswith(".py")]
    for name in sorted(tomls) + sorted(inits) + sorted(modules):
        info = files[name]
        if info.file_size > _MAX_MANIFEST:
            continue
        try:
            text = zf.read(info).decode("utf-8")
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError) as exc:
            raise SourceError(f"{source}: cannot read {name}: {exc}", source=source) from exc
        if name.endswith(".toml") or "__plugin__" in text:
            return read_manifest_text(text, path=f"{source}!{name}", toml=name.endswith(".toml"))
    raise SourceError(
        f"{source} holds no plugin manifest (a package's {MANIFEST_FILE} or a "
        "`__plugin__` literal)",
        source=source,
        hint="Build the artifact with `plugmarket build`.",
    )


def artifact_bytes(path: Path) -> tuple[bytes, str]:
    """The bytes of a built ``.zip``, or of a fresh build of a plugin file or folder.

    Returns:
        The artifact's bytes and a name for messages.

    Raises:
        ManifestError, SourceError: as :func:`build`.
    """
    if path.suffix == ".zip" and path.is_file():
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc}", source=str(path)) from exc
    with tempfile.TemporaryDirectory(prefix="plugmarket-build-") as tmp:
        built = build(path, Path(tmp))
        return built.read_bytes(), str(path)
