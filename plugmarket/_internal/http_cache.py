"""The registry client's on-disk cache: bodies with their validators and fetch time.

One :class:`DiskCache` per registry, in its own folder
(``<home>/cache/registry/<sha256(url)[:16]>/``). It holds three kinds of files:

- **Entries** (``index.json``): the body in ``<name>`` and a small JSON sidecar
  ``<name>.meta`` with the body's sha256 and size, the URL it came from, its
  ``ETag``/``Last-Modified`` validators, the time it was fetched (or last
  revalidated with a 304), and a few extra strings (the index's signature
  rides there, so the pair is written and read together).
- **Blobs** (``blobs/<sha256>``): content-addressed bodies, named by the
  sha256 a signed index pins. They never need revalidation.
- **State** (``state.json``): small facts that must outlive the process, such
  as the highest index version ever trusted for the registry (rollback
  protection across processes).

Invariants:

- Every write is atomic: a temporary file in the same folder, then
  ``os.replace``. A reader sees the old file or the new one, never half of one.
  Only the trusted-version state is fsynced; bodies are checked on every read.
- Nothing read back is trusted unless it hashes to what was recorded: an entry
  whose body does not match its sidecar's sha256 and size (corrupted,
  truncated, or a body and sidecar from two different writes) and a blob whose
  content does not match its name are reported as missing and removed, so the
  caller fetches them again.
- The cache only stores and checks bytes. Whether the bytes are *trusted*
  (signature, expiry, rollback) is decided above it, every time they are read.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugmarket._internal.durable import owe

__all__ = ["CacheEntry", "DiskCache", "atomic_write", "cache_folder"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_META_VERSION = 1
_MAX_META = 64 * 1024  # bytes of one sidecar; anything larger is not ours


@dataclass(frozen=True)
class CacheEntry:
    """A cached body with what is needed to revalidate it.

    Attributes:
        body: The bytes exactly as the server sent them.
        url: Where they came from.
        fetched: When they were fetched or last revalidated (POSIX seconds).
        etag: The server's ``ETag``, if it sent one.
        last_modified: The server's ``Last-Modified``, if it sent one.
        extra: Small strings stored with the body (for the index: its signature).
    """

    body: bytes
    url: str
    fetched: float
    etag: str | None = None
    last_modified: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def conditional_headers(self) -> dict[str, str]:
        """``If-None-Match``/``If-Modified-Since`` headers that revalidate this body."""
        headers: dict[str, str] = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def cache_folder(home: Path, registry_url: str) -> Path:
    """The cache folder of the registry at ``registry_url`` under ``home``."""
    digest = hashlib.sha256(registry_url.encode("utf-8")).hexdigest()[:16]
    return home / "cache" / "registry" / digest


def atomic_write(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (temp file, ``os.replace``).

    ``durable`` adds an ``fsync`` before the rename. Cached bodies do without:
    every read checks them against their recorded sha256, so a file a crash
    left short is refetched, never trusted. The trusted-version state, which
    rollback protection rests on, is owed to the next durable batch
    (:meth:`DiskCache.write_state`).
    """
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _create_temp(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path`` (``.<name>.<pid>.<thread>.<n>.tmp``), open
    for writing, and its name; the folder is made on the first write into it.

    Unique without a random part, as the store's temporary folders are
    (``tempfile.mkstemp`` spends tens of microseconds making a random one):
    a name taken by a dead process with the same id is skipped.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)  # no newline translation
    stem = f"{path.parent}{os.sep}.{path.name}.{os.getpid()}.{threading.get_ident()}"
    made = False
    while True:
        tmp = f"{stem}.{next(_temp_numbers)}.tmp"
        try:
            return os.open(tmp, flags, 0o600), tmp  # as mkstemp made them: private
        except FileExistsError:
            continue
        except FileNotFoundError:
            if made:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
            made = True


_temp_numbers = itertools.count()


class DiskCache:
    """Bodies, blobs and state of one registry, stored under ``root``.

    Reads never raise for a missing, unreadable or damaged file: they return
    ``None`` (or ``{}`` for state) and the caller fetches again. Writes raise
    ``OSError`` if the disk refuses them; the client translates that.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- entries: body + sidecar --------------------------------------------

    def get(self, name: str) -> CacheEntry | None:
        """The entry ``name``, or ``None`` if absent or damaged (a damaged one is removed)."""
        body_path, meta_path = self._paths(name)
        try:
            raw_meta = _read_capped(meta_path, _MAX_META)
            if raw_meta is None:
                return None
            meta = json.loads(raw_meta)
            body = body_path.read_bytes()
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            self.discard(name)
            return None
        entry = _entry_from_meta(meta, body)
        if entry is None:
            self.discard(name)
        return entry

    def put(
        self,
        name: str,
        body: bytes,
        *,
        url: str,
        fetched: float,
        etag: str | None = None,
        last_modified: str | None = None,
        extra: Mapping[str, str] | None = None,
        sha256: str | None = None,
    ) -> CacheEntry:
        """Store ``body`` as ``name`` with its validators; the body first, then its sidecar.

        A crash between the two writes leaves a sidecar that does not match the
        body, which the next :meth:`get` detects. ``sha256`` is the body's, if
        the caller has it already (a wrong one only makes the entry unreadable).
        """
        body_path, meta_path = self._paths(name)
        entry = CacheEntry(body, url, fetched, etag, last_modified, dict(extra or {}))
        atomic_write(body_path, body)
        atomic_write(meta_path, _meta_bytes(entry, sha256))
        return entry

    def touch(self, name: str, entry: CacheEntry, *, fetched: float) -> CacheEntry:
        """Record a 304 for ``entry`` at ``fetched``: only the sidecar is rewritten."""
        _, meta_path = self._paths(name)
        renewed = CacheEntry(
            entry.body, entry.url, fetched, entry.etag, entry.last_modified, entry.extra
        )
        atomic_write(meta_path, _meta_bytes(renewed))
        return renewed

    def discard(self, name: str) -> None:
        """Remove the entry ``name`` (both files), if present."""
        for path in self._paths(name):
            with contextlib.suppress(OSError):
                path.unlink()

    # --- content-addressed blobs ----------------------------------------------

    def get_blob(self, sha256: str) -> bytes | None:
        """The blob whose sha256 is ``sha256``, or ``None`` if absent or damaged."""
        path = self._blob_path(sha256)
        try:
            body = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(body).hexdigest() != sha256:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return body

    def put_blob(self, sha256: str, body: bytes) -> None:
        """Store ``body`` under its sha256 (which the caller has already checked)."""
        atomic_write(self._blob_path(sha256), body)

    # --- small persistent state -----------------------------------------------

    def read_state(self) -> dict[str, Any]:
        """The registry's persisted state (``{}`` if none or unreadable)."""
        raw = _read_capped(self.root / "state.json", _MAX_META)
        if raw is None:
            return {}
        try:
            state = json.loads(raw)
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, state: Mapping[str, Any]) -> None:
        """Replace the persisted state atomically.

        Its fsync (and its folder's) is owed to the process's next durable
        batch (:func:`plugmarket._internal.durable.owe`): an install's journal,
        written before any store entry, so the highest trusted version is on
        the disk before a generation that relied on it can be switched to. A
        power cut between a search and the next install can forget it, as if
        that index had not been seen; an older index must still be signed and
        unexpired to be taken then.
        """
        data = json.dumps(dict(state), sort_keys=True).encode("utf-8")
        atomic_write(self.root / "state.json", data)
        self.owe_state()

    def owe_state(self) -> None:
        """Owe the persisted state's fsync to this process's next durable batch (a state
        another process wrote may still wait for that process's batch)."""
        owe(self.root / "state.json")

    # --- paths ----------------------------------------------------------------

    def _paths(self, name: str) -> tuple[Path, Path]:
        if not _NAME.match(name) or name.endswith(".meta"):
            raise ValueError(f"not a cache entry name: {name!r}")  # a bug in the caller
        return self.root / name, self.root / f"{name}.meta"

    def _blob_path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")  # a bug in the caller
        return self.root / "blobs" / sha256


def _read_capped(path: Path, cap: int) -> bytes | None:
    try:
        with path.open("rb") as f:
            data = f.read(cap + 1)
    except OSError:
        return None
    return None if len(data) > cap else data


def _meta_bytes(entry: CacheEntry, sha256: str | None = None) -> bytes:
    meta = {
        "v": _META_VERSION,
        "url": entry.url,
        "sha256": sha256 or hashlib.sha256(entry.body).hexdigest(),
        "size": len(entry.body),
        "fetched": entry.fetched,
        "etag": entry.etag,
        "last_modified": entry.last_modified,
        "extra": dict(entry.extra),
    }
    return json.dumps(meta, sort_keys=True).encode("utf-8")


def _entry_from_meta(meta: object, body: bytes) -> CacheEntry | None:
    """Rebuild an entry from its sidecar, or ``None`` if the two do not belong together."""
    if not isinstance(meta, dict) or meta.get("v") != _META_VERSION:
        return None
    url, fetched, etag, modified, extra = (
        meta.get("url"),
        meta.get("fetched"),
        meta.get("etag"),
        meta.get("last_modified"),
        meta.get("extra"),
    )
    if (
        meta.get("size") != len(body)
        or meta.get("sha256") != hashlib.sha256(body).hexdigest()
        or not isinstance(url, str)
        or not isinstance(fetched, int | float)
        or isinstance(fetched, bool)
        or not isinstance(etag, str | None)
        or not isinstance(modified, str | None)
        or not isinstance(extra, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items())
    ):
        return None
    return CacheEntry(body, url, float(fetched), etag, modified, extra)
