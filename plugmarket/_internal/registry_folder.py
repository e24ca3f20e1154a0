"""A registry folder on disk, as the publisher changes it: locked, read, written in order.

Invariants:

- Publishers on one folder take turns through a file lock
  (``.plugmarket-publish.lock`` in the folder).
- Every file is written atomically (temporary file in the same folder, fsync,
  rename), in an order that keeps every served state consistent: artifacts,
  then the plugin's detail file, then ``index.json.sig`` (signing the new
  index and still carrying the previous index's signature), then ``index.json``.
  A reader that fetches the index first and its signature second always finds
  a matching signature.
- What the folder already holds is checked before it is built on: a detail
  file whose hash differs from the index's pin stops the change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from plugmarket._internal import registry_format as fmt
from plugmarket.errors import IntegrityError, RegistryError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "ARTIFACT_DIR",
    "LOCK_FILE",
    "State",
    "commit",
    "index_entry",
    "locked",
    "private_key",
    "read_detail",
    "read_file",
    "utc_now",
    "write_file",
]

LOCK_FILE = ".plugmarket-publish.lock"
ARTIFACT_DIR = "artifacts"
_LOCK_TIMEOUT = 120.0  # seconds to wait for another publisher


@dataclass
class State:
    root: Path
    index: fmt.Index | None
    sig_entries: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        return str(self.root)


def read_file(path: Path, *, registry: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RegistryError(
            f"registry {registry}: cannot read {path.relative_to(registry)}: {exc.strerror or exc}",
            registry=str(registry),
            file=path.name,
        ) from exc


def write_file(path: Path, data: bytes, *, registry: str) -> None:
    from plugmarket._internal.signing import write_atomic

    try:
        write_atomic(path, data)
    except OSError as exc:
        raise RegistryError(
            f"cannot write {path}: {exc.strerror or exc}",
            registry=registry,
            file=path.name,
            hint="Check that the folder exists, is writable and the disk is not full.",
        ) from exc


@contextmanager
def locked(root: Path) -> Iterator[State]:
    from filelock import FileLock, Timeout

    from plugmarket._internal.signing import signature_entries

    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(root / LOCK_FILE), timeout=_LOCK_TIMEOUT)
        lock.acquire()
    except Timeout as exc:
        raise RegistryError(
            f"registry {root}: another publisher has held the lock for {_LOCK_TIMEOUT:.0f} s",
            registry=str(root),
            file=LOCK_FILE,
            hint="Wait for the other publish to finish and try again.",
        ) from exc
    except OSError as exc:
        raise RegistryError(
            f"registry {root}: cannot create or lock the folder: {exc.strerror or exc}",
            registry=str(root),
        ) from exc
    try:
        index_path = root / fmt.INDEX_FILE
        index = None
        if index_path.exists():
            index = fmt.decode_index(read_file(index_path, registry=root), registry=str(root))
        sig_path = root / fmt.SIGNATURE_FILE
        entries: tuple[tuple[str, str], ...] = ()
        if sig_path.exists():
            entries = signature_entries(read_file(sig_path, registry=root), registry=str(root))
        yield State(root, index, entries)
    finally:
        lock.release()


def read_detail(state: State, plugin_id: str) -> fmt.PluginDetail | None:
    entry = state.index.plugins.get(plugin_id) if state.index else None
    if entry is None:
        return None
    data = read_file(state.root / entry.detail.url, registry=state.root)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.detail.sha256 or len(data) != entry.detail.size:
        raise IntegrityError(
            f"registry {state.root}: {entry.detail.url} has sha256 {digest} ({len(data)} bytes), "
            f"expected {entry.detail.sha256} ({entry.detail.size} bytes) as the index pins; "
            "it changed outside plugmarket or an earlier publish was interrupted",
            subject=f"{state.root}/{entry.detail.url}",
            expected=entry.detail.sha256,
            actual=digest,
            hint="Restore the file from a backup (or check it by hand) before publishing; "
            "`plugmarket index verify` lists every mismatch.",
        )
    return fmt.decode_detail(data, registry=state.label, plugin_id=plugin_id)


def index_entry(
    detail: fmt.PluginDetail, previous: fmt.IndexEntry | None, detail_bytes: bytes, now: datetime
) -> fmt.IndexEntry:
    latest = {ch: str(v.version) for ch in detail.channels() if (v := detail.latest(ch))}
    head = detail.latest() or max(detail.versions, key=lambda v: v.version)
    return fmt.IndexEntry(
        id=detail.id,
        name=detail.name,
        summary=detail.summary,
        latest=MappingProxyType(latest),
        categories=detail.categories,
        tags=detail.tags,
        rating=previous.rating if previous else None,
        ratings_count=previous.ratings_count if previous else 0,
        downloads=previous.downloads if previous else 0,
        capabilities=head.capabilities,
        updated=now,
        detail=fmt.Artifact(
            url=fmt.detail_path(detail.id),
            sha256=hashlib.sha256(detail_bytes).hexdigest(),
            size=len(detail_bytes),
        ),
    )


def commit(
    state: State,
    detail: fmt.PluginDetail | None,
    private: Ed25519PrivateKey | None,
    *,
    now: datetime,
    expires_in: timedelta,
) -> tuple[int, str | None]:
    """Write the detail, then the signature, then the index; return (version, keyid)."""
    plugins = dict(state.index.plugins) if state.index else {}
    if detail is not None:
        detail_bytes = fmt.encode_detail(detail)
        write_file(state.root / fmt.detail_path(detail.id), detail_bytes, registry=state.label)
        plugins[detail.id] = index_entry(detail, plugins.get(detail.id), detail_bytes, now)
    index = fmt.Index(
        format=fmt.FORMAT,
        version=(state.index.version + 1) if state.index else 1,
        expires=now + expires_in,
        generated=now,
        plugins=MappingProxyType(dict(sorted(plugins.items()))),
    )
    index_bytes = fmt.encode_index(index)
    keyid = None
    if private is not None:
        from plugmarket._internal.signing import key_id, sign

        keyid = key_id(private.public_key())
        sig = sign(index_bytes, private, keep=state.sig_entries[:1])
        write_file(state.root / fmt.SIGNATURE_FILE, sig, registry=state.label)
    write_file(state.root / fmt.INDEX_FILE, index_bytes, registry=state.label)
    return index.version, keyid


def private_key(state: State, key: Path | str | None) -> Ed25519PrivateKey | None:
    if key is None:
        if state.sig_entries:
            raise RegistryError(
                f"registry {state.root} is signed ({fmt.SIGNATURE_FILE} exists), "
                "so a change must be signed too",
                registry=state.label,
                file=fmt.SIGNATURE_FILE,
                hint="Pass the registry's private key with --key NAME.key.",
            )
        return None
    from plugmarket._internal.signing import load_private_key

    return load_private_key(key)


def utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC).replace(microsecond=0)
    if now.tzinfo is None:
        raise RegistryError("now must be a timezone-aware time", hint="Pass datetime.now(UTC).")
    return now.astimezone(UTC).replace(microsecond=0)
