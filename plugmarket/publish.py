"""The publisher's tools: build an artifact, add it to a registry folder, yank, sign, verify.

A registry is a folder of static files (docs/registry-format.md). These
functions change one in place, for a web server, a bucket sync or a shared
folder to serve.

Invariants:

- Every file is written atomically (temporary file in the same folder,
  fsync, rename), in an order that keeps every published state consistent:
  the artifact, then the plugin's detail file, then ``index.json.sig``
  (signing the new index and still carrying the previous index's signature),
  then ``index.json``. A reader that fetches the index first and its
  signature second always finds a matching signature.
- Publishers on one folder take turns through a file lock
  (``.plugmarket-publish.lock`` in the folder).
- An artifact, once pinned by an index, is never rewritten: publishing a
  version again with different bytes is refused.
- Builds are reproducible: the same plugin files give the same zip bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from packaging.version import Version

from plugmarket._internal import registry_format as fmt
from plugmarket.errors import (
    IntegrityError,
    PlugmarketError,
    RegistryError,
    SignatureError,
    SourceError,
)
from plugmarket.manifest import MANIFEST_FILE, Manifest, read_manifest, read_manifest_text

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "DEFAULT_EXPIRES",
    "PublishResult",
    "VerifyReport",
    "build",
    "publish",
    "sign_index",
    "verify_registry",
    "yank",
]

#: How long a published index stays valid unless told otherwise.
DEFAULT_EXPIRES = timedelta(days=30)
LOCK_FILE = ".plugmarket-publish.lock"
ARTIFACT_DIR = "artifacts"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache"})
_MAX_FILES = 10_000  # files in one plugin
_MAX_BYTES = 64 * 1024 * 1024  # bytes in one plugin
_MAX_MANIFEST = 1024 * 1024  # bytes read for a manifest inside an artifact
_LOCK_TIMEOUT = 120.0  # seconds to wait for another publisher


@dataclass(frozen=True)
class PublishResult:
    """What a publish or yank did to a registry."""

    plugin_id: str
    version: Version
    message: str
    index_version: int  # the index version now served
    changed: bool  # False: nothing needed to change
    keyid: str | None = None  # the key that signed the index, if signed

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify_registry`; ``problems`` is empty when all is well."""

    registry: str
    index_version: int
    expires: datetime
    keyid: str | None  # the key whose signature verified; None: unsigned or not checked
    plugins: int
    versions: int
    artifacts: int  # artifacts checked (absolute URLs are not fetched)
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        signed = f"signed by {self.keyid}" if self.keyid else "signature not checked"
        head = (
            f"registry {self.registry}: index version {self.index_version}, {signed}, "
            f"expires {fmt.format_time(self.expires)}; {self.plugins} plugins, "
            f"{self.versions} versions, {self.artifacts} artifacts checked"
        )
        if self.ok:
            return head + "; all match"
        return head + f"; {len(self.problems)} problem(s): " + "; ".join(self.problems)

    def raise_for_problems(self) -> None:
        """Raise :class:`IntegrityError` listing every problem, if there is any."""
        if self.problems:
            raise IntegrityError(
                f"registry {self.registry}: {len(self.problems)} problem(s): "
                + "; ".join(self.problems),
                subject=self.registry,
                expected="every file matching the signed index",
                actual=self.problems[0],
                hint="Re-publish the affected versions or restore the files from a backup.",
            )


# --------------------------------------------------------------------------- build


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
    _write(out, buffer.getvalue(), registry=str(out.parent))
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


# --------------------------------------------------------------------------- registry state


@dataclass
class _State:
    root: Path
    index: fmt.Index | None
    sig_entries: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        return str(self.root)


def _read(path: Path, *, registry: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RegistryError(
            f"registry {registry}: cannot read {path.relative_to(registry)}: {exc.strerror or exc}",
            registry=str(registry),
            file=path.name,
        ) from exc


def _write(path: Path, data: bytes, *, registry: str) -> None:
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
def _locked(root: Path) -> Iterator[_State]:
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
            index = fmt.decode_index(_read(index_path, registry=root), registry=str(root))
        sig_path = root / fmt.SIGNATURE_FILE
        entries: tuple[tuple[str, str], ...] = ()
        if sig_path.exists():
            entries = signature_entries(_read(sig_path, registry=root), registry=str(root))
        yield _State(root, index, entries)
    finally:
        lock.release()


def _detail(state: _State, plugin_id: str) -> fmt.PluginDetail | None:
    entry = state.index.plugins.get(plugin_id) if state.index else None
    if entry is None:
        return None
    data = _read(state.root / entry.detail.url, registry=state.root)
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


def _entry(
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


def _commit(
    state: _State,
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
        _write(state.root / fmt.detail_path(detail.id), detail_bytes, registry=state.label)
        plugins[detail.id] = _entry(detail, plugins.get(detail.id), detail_bytes, now)
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
        _write(state.root / fmt.SIGNATURE_FILE, sig, registry=state.label)
    _write(state.root / fmt.INDEX_FILE, index_bytes, registry=state.label)
    return index.version, keyid


def _private_key(state: _State, key: Path | str | None) -> Ed25519PrivateKey | None:
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


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC).replace(microsecond=0)
    if now.tzinfo is None:
        raise RegistryError("now must be a timezone-aware time", hint="Pass datetime.now(UTC).")
    return now.astimezone(UTC).replace(microsecond=0)


# --------------------------------------------------------------------------- publish, yank


def publish(
    path_or_artifact: Path | str,
    registry: Path | str,
    *,
    key: Path | str | None,
    channel: str = fmt.STABLE,
    rollout: float | None = None,
    now: datetime | None = None,
    expires_in: timedelta = DEFAULT_EXPIRES,
) -> PublishResult:
    """Add a plugin version to a registry folder (creating the registry if needed).

    The artifact is copied to ``artifacts/<id>/<id>-<version>.zip``, the version
    added to ``plugins/<id>.json``, the index entry rewritten, the index version
    bumped, its expiry set to ``now + expires_in``, and the index signed if a key
    is given. Publishing the same bytes again only updates the version's
    channel and rollout share (say, promoting a beta to stable), or does nothing.

    Args:
        path_or_artifact: A plugin file or folder (built first), or a built ``.zip``.
        registry: The registry folder.
        key: The registry's private key (``NAME.key``); required once a registry is signed.
        channel: The channel the version is offered on (``stable``, ``beta``, ...).
        rollout: The share of users (0 < share <= 1) offered the version; None: everyone.
        now: The publish time (default: the current time).
        expires_in: How long the new index stays valid.

    Returns:
        What was done.

    Raises:
        RegistryError: the version exists with different bytes or is yanked, the
            registry is signed and no key was given, or a file cannot be written.
        IntegrityError: the registry's files do not match its index.
        ManifestError, SourceError: the plugin or artifact is invalid.
        SignatureError: the key cannot be read.
    """
    root = Path(registry)
    now = _now(now)
    if not fmt.CHANNEL_PATTERN.match(channel):
        raise RegistryError(
            f"channel {channel!r} is not a valid channel name",
            registry=str(root),
            hint="Use lower-case letters, digits and '-', such as 'stable' or 'beta'.",
        )
    if rollout is not None and not 0.0 < rollout <= 1.0:
        raise RegistryError(
            f"rollout share {rollout} is outside (0, 1]",
            registry=str(root),
            hint="Pass a share such as 0.2 for 20% of users, or leave it out for everyone.",
        )
    data, source = _artifact_bytes(Path(path_or_artifact))
    manifest = artifact_manifest(data, source=source)
    pid, version = manifest.id, manifest.version
    sha256 = hashlib.sha256(data).hexdigest()
    rel = f"{ARTIFACT_DIR}/{pid}/{pid}-{version}.zip"
    with _locked(root) as state:
        private = _private_key(state, key)
        detail = _detail(state, pid)
        existing = detail.get(version) if detail else None
        if existing is not None and detail is not None:
            if existing.artifact.sha256 != sha256:
                raise RegistryError(
                    f"registry {root}: {pid} {version} is already published with sha256 "
                    f"{existing.artifact.sha256}, and {source} has sha256 {sha256}",
                    registry=str(root),
                    file=existing.artifact.url,
                    hint="A published version never changes; bump the version in the manifest.",
                )
            if existing.yanked:
                raise RegistryError(
                    f"registry {root}: {pid} {version} was yanked ({existing.yanked_reason})",
                    registry=str(root),
                    file=fmt.detail_path(pid),
                    hint="Publish a new version instead.",
                )
            if (existing.channel, existing.rollout) == (channel, rollout):
                return PublishResult(
                    pid,
                    version,
                    f"{pid} {version} is already published on {channel} with the same bytes; "
                    "nothing changed",
                    state.index.version if state.index else 0,
                    changed=False,
                )
            moved = replace(existing, channel=channel, rollout=rollout)
            detail = replace(
                detail, versions=tuple(moved if v is existing else v for v in detail.versions)
            )
            done = f"moved {pid} {version} to channel {channel} (rollout {_share(rollout)})"
        else:
            target = root / rel
            if not (target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256):
                _write(target, data, registry=str(root))
            info = fmt.VersionInfo(
                version=version,
                requires=manifest.requires,
                host=manifest.host,
                capabilities=tuple(str(c) for c in manifest.capabilities),
                channel=channel,
                rollout=rollout,
                yanked=False,
                yanked_reason="",
                published=now,
                artifact=fmt.Artifact(url=rel, sha256=sha256, size=len(data)),
                summary=manifest.summary,
            )
            detail = _merge(detail, manifest, info)
            done = f"published {pid} {version} on {channel} (rollout {_share(rollout)})"
        index_version, keyid = _commit(state, detail, private, now=now, expires_in=expires_in)
    signed = f", signed by {keyid}" if keyid else ", unsigned"
    return PublishResult(
        pid, version, f"{done}: index version {index_version}{signed}", index_version, True, keyid
    )


def _share(rollout: float | None) -> str:
    return "everyone" if rollout is None else f"{rollout:.0%}"


def _artifact_bytes(path: Path) -> tuple[bytes, str]:
    if path.suffix == ".zip" and path.is_file():
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc}", source=str(path)) from exc
    import tempfile

    with tempfile.TemporaryDirectory(prefix="plugmarket-build-") as tmp:
        built = build(path, Path(tmp))
        return built.read_bytes(), str(path)


def _merge(
    detail: fmt.PluginDetail | None, manifest: Manifest, info: fmt.VersionInfo
) -> fmt.PluginDetail:
    versions = (*(detail.versions if detail else ()), info)
    newest = detail is None or all(info.version >= v.version for v in detail.versions)
    if not newest and detail is not None:
        return replace(detail, versions=tuple(sorted(versions, key=lambda v: v.version)))
    return fmt.PluginDetail(
        id=manifest.id,
        name=manifest.name,
        summary=manifest.summary,
        description=manifest.description,
        authors=manifest.authors,
        license=manifest.license,
        homepage=manifest.homepage,
        categories=manifest.categories,
        tags=manifest.tags,
        versions=tuple(sorted(versions, key=lambda v: v.version)),
    )


def yank(
    registry: Path | str,
    plugin_id: str,
    version: str,
    reason: str,
    *,
    key: Path | str | None,
    now: datetime | None = None,
    expires_in: timedelta = DEFAULT_EXPIRES,
) -> PublishResult:
    """Mark a published version as yanked: kept for lockfiles, never offered as latest.

    Raises:
        RegistryError: the plugin or version is not in the registry, the reason is
            empty, or the registry is signed and no key was given.
        IntegrityError: the registry's files do not match its index.
    """
    root = Path(registry)
    now = _now(now)
    if not reason.strip():
        raise RegistryError(
            "a yank needs a reason", registry=str(root), hint="Pass --reason 'what is wrong'."
        )
    with _locked(root) as state:
        private = _private_key(state, key)
        detail = _detail(state, plugin_id)
        info = detail.get(version) if detail else None
        if detail is None or info is None:
            raise RegistryError(
                f"registry {root}: {plugin_id} {version} is not published there",
                registry=str(root),
                file=fmt.detail_path(plugin_id) if detail else fmt.INDEX_FILE,
                hint="Check the id and version (`plugmarket index verify` lists the registry).",
            )
        if info.yanked and info.yanked_reason == reason:
            return PublishResult(
                plugin_id,
                info.version,
                f"{plugin_id} {info.version} is already yanked; nothing changed",
                state.index.version if state.index else 0,
                changed=False,
            )
        new = replace(info, yanked=True, yanked_reason=reason)
        detail = replace(detail, versions=tuple(new if v is info else v for v in detail.versions))
        index_version, keyid = _commit(state, detail, private, now=now, expires_in=expires_in)
    return PublishResult(
        plugin_id,
        info.version,
        f"yanked {plugin_id} {info.version}: index version {index_version}"
        + (f", signed by {keyid}" if keyid else ", unsigned"),
        index_version,
        True,
        keyid,
    )


def sign_index(
    registry: Path | str,
    key: Path | str,
    *,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> PublishResult:
    """Sign a registry's index; with ``expires_in``, first renew its expiry.

    Renewing rewrites the index with the next version and ``expires = now +
    expires_in`` (run it from a scheduled job so clients never see the index
    expire). Without it, the current bytes are signed as they are.

    Raises:
        RegistryError: there is no index, or a file cannot be written.
        SignatureError: the key cannot be read.
    """
    from plugmarket._internal.signing import key_id, load_private_key, sign

    root = Path(registry)
    private = load_private_key(key)
    kid = key_id(private.public_key())
    with _locked(root) as state:
        if state.index is None:
            raise RegistryError(
                f"registry {root} has no {fmt.INDEX_FILE}",
                registry=str(root),
                file=fmt.INDEX_FILE,
                hint="Publish a plugin first: `plugmarket publish PATH --registry FOLDER`.",
            )
        if expires_in is not None:
            version, _ = _commit(state, None, private, now=_now(now), expires_in=expires_in)
            message = f"renewed and signed index version {version} with key {kid}"
        else:
            index_bytes = _read(root / fmt.INDEX_FILE, registry=root)
            others = tuple(e for e in state.sig_entries if e[0] != kid)
            _write(
                root / fmt.SIGNATURE_FILE,
                sign(index_bytes, private, keep=others),
                registry=str(root),
            )
            version = state.index.version
            message = f"signed index version {version} with key {kid}"
    return PublishResult("", Version("0"), message, version, True, kid)


# --------------------------------------------------------------------------- verify


def verify_registry(
    registry: Path | str,
    trusted_keys: Sequence[Ed25519PublicKey] = (),
    *,
    now: datetime | None = None,
) -> VerifyReport:
    """Check a registry folder the way a client would, and list every problem.

    Checks the signature (when keys are given), the expiry, every detail file
    against the index's pins, and every local artifact's size and sha256
    against its detail file.

    Raises:
        RegistryError: there is no readable, well-formed index at all.
    """
    from plugmarket._internal.trusted_index import TrustedIndex

    root = Path(registry)
    now = _now(now)
    index_bytes = _read(root / fmt.INDEX_FILE, registry=root)
    sig_path = root / fmt.SIGNATURE_FILE
    sig_bytes = _read(sig_path, registry=root) if sig_path.exists() else None
    problems: list[str] = []
    trusted = TrustedIndex(
        str(root), trusted_keys=trusted_keys, require_signature=bool(trusted_keys), now=now
    )
    try:
        index = trusted.update_index(index_bytes, sig_bytes, now=now)
    except (SignatureError, RegistryError) as exc:
        index = fmt.decode_index(index_bytes, registry=str(root))
        problems.append(exc.message)
        # Go on checking the files against what the index pins.
        trusted = TrustedIndex(str(root), trusted_keys=(), require_signature=False, now=now)
        trusted.update_index(index_bytes, None, now=index.expires - timedelta(seconds=1))
    versions = artifacts = 0
    for pid, entry in index.plugins.items():
        try:
            detail = trusted.verify_detail(pid, _read(root / entry.detail.url, registry=root))
        except PlugmarketError as exc:
            problems.append(exc.message)
            continue
        for info in detail.versions:
            versions += 1
            if "://" in info.artifact.url:
                continue
            artifacts += 1
            try:
                file = root / info.artifact.url
                size = file.stat().st_size if file.exists() else -1
                if size != info.artifact.size:
                    problems.append(
                        f"{info.artifact.url} is {size if size >= 0 else 'missing'}"
                        f"{' bytes' if size >= 0 else ''}, expected {info.artifact.size} bytes"
                    )
                    continue
                trusted.check_artifact(info, _read(file, registry=root))
            except PlugmarketError as exc:
                problems.append(exc.message)
    return VerifyReport(
        registry=str(root),
        index_version=index.version,
        expires=index.expires,
        keyid=trusted.keyid,
        plugins=len(index.plugins),
        versions=versions,
        artifacts=artifacts,
        problems=tuple(problems),
    )
