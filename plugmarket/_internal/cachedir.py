"""Content-addressed cache folders, written atomically and never rewritten.

An entry ``<cache>/<key>/`` is filled in a temporary folder beside it
(``<cache>/.tmp-*``) and renamed into place, so an entry is complete or
absent. A second writer that loses the race discards its copy and uses the
winner's. A failed fill removes its temporary folder and any cache folders
the call created, leaving no trace.

:func:`tree_sha256` is the one definition of a tree's digest, used for cache
keys, local package folders and store entries alike.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from plugmarket._internal.durable import fsync_dir
from plugmarket.errors import SourceError

__all__ = ["store_tree", "tree_sha256", "write_error"]


def store_tree(cache: Path, key: str, fill: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cache entry ``cache/key``, filled by ``fill`` if it does not exist yet.

    ``fill`` writes into a temporary folder beside the entry, which is then
    renamed into place; if ``fill`` raises, the temporary folder and any cache
    folders this call created are removed, so a failure leaves no trace.

    Returns:
        The entry's path, and whether this call created it.

    Raises:
        SourceError: the cache cannot be written; or whatever ``fill`` raised.
    """
    final = cache / key
    if final.is_dir():
        return final, False
    created = [p for p in (cache, *cache.parents) if not p.exists()]
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=cache))
    except OSError as exc:
        _remove_empty(created)
        raise write_error(cache, exc) from exc
    try:
        fill(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process stored it first
            return final, False
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise write_error(cache, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    fsync_dir(cache)
    return final, True


def tree_sha256(entries: Iterable[tuple[str, bytes]]) -> str:
    """The digest of a tree of files, given as ``(relative posix path, contents)``.

    For each file, in the order of its path (the caller sorts): the path as
    UTF-8 (``surrogateescape``, so any name read from the disk works), a NUL,
    its length in decimal, a NUL, and its contents.
    """
    digest = hashlib.sha256()
    for rel, data in entries:
        digest.update(b"%s\0%d\0" % (rel.encode("utf-8", "surrogateescape"), len(data)))
        digest.update(data)
    return digest.hexdigest()


def write_error(where: Path, exc: OSError) -> SourceError:
    """The error for a cache folder that cannot be written."""
    return SourceError(
        f"{where}: cannot write the plugin cache: {exc.strerror or exc}",
        source=str(where),
        hint="Check that plugmarket's home folder is writable and has free space.",
    )


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return
