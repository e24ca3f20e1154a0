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
  (:mod:`plugmarket._internal.registry_folder` does the locking and writing,
  :mod:`plugmarket._internal.artifact_build` the builds.)
- An artifact, once pinned by an index, is never rewritten: publishing a
  version again with different bytes is refused.
- Builds are reproducible: the same plugin files give the same zip bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import Version

from plugmarket._internal import registry_format as fmt
from plugmarket._internal.artifact_build import artifact_bytes, artifact_manifest, build
from plugmarket._internal.registry_folder import (
    ARTIFACT_DIR,
    commit,
    locked,
    private_key,
    read_detail,
    read_file,
    utc_now,
    write_file,
)
from plugmarket.errors import IntegrityError, PlugmarketError, RegistryError, SignatureError
from plugmarket.manifest import Manifest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "DEFAULT_EXPIRES",
    "PublishResult",
    "VerifyReport",
    "artifact_manifest",
    "build",
    "publish",
    "sign_index",
    "verify_registry",
    "yank",
]

#: How long a published index stays valid unless told otherwise.
DEFAULT_EXPIRES = timedelta(days=30)


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
    now = utc_now(now)
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
    data, source = artifact_bytes(Path(path_or_artifact))
    manifest = artifact_manifest(data, source=source)
    pid, version = manifest.id, manifest.version
    sha256 = hashlib.sha256(data).hexdigest()
    rel = f"{ARTIFACT_DIR}/{pid}/{pid}-{version}.zip"
    with locked(root) as state:
        private = private_key(state, key)
        detail = read_detail(state, pid)
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
                write_file(target, data, registry=str(root))
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
        index_version, keyid = commit(state, detail, private, now=now, expires_in=expires_in)
    signed = f", signed by {keyid}" if keyid else ", unsigned"
    return PublishResult(
        pid, version, f"{done}: index version {index_version}{signed}", index_version, True, keyid
    )


def _share(rollout: float | None) -> str:
    return "everyone" if rollout is None else f"{rollout:.0%}"


def _merge(
    detail: fmt.PluginDetail | None, manifest: Manifest, info: fmt.VersionInfo
) -> fmt.PluginDetail:
    versions = (*(detail.versions if detail else ()), info)
    # The plugin's name, summary and description follow its newest stable version, so
    # a beta's text is not what stable users read; before any stable, the newest.
    stable = [v for v in versions if v.channel == fmt.STABLE and not v.version.is_prerelease]
    leader = max(stable or versions, key=lambda v: v.version)
    if leader is not info and detail is not None:
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
    now = utc_now(now)
    if not reason.strip():
        raise RegistryError(
            "a yank needs a reason", registry=str(root), hint="Pass --reason 'what is wrong'."
        )
    with locked(root) as state:
        private = private_key(state, key)
        detail = read_detail(state, plugin_id)
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
        index_version, keyid = commit(state, detail, private, now=now, expires_in=expires_in)
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
    with locked(root) as state:
        if state.index is None:
            raise RegistryError(
                f"registry {root} has no {fmt.INDEX_FILE}",
                registry=str(root),
                file=fmt.INDEX_FILE,
                hint="Publish a plugin first: `plugmarket publish PATH --registry FOLDER`.",
            )
        if expires_in is not None:
            version, _ = commit(state, None, private, now=utc_now(now), expires_in=expires_in)
            message = f"renewed and signed index version {version} with key {kid}"
        else:
            index_bytes = read_file(root / fmt.INDEX_FILE, registry=root)
            others = tuple(e for e in state.sig_entries if e[0] != kid)
            write_file(
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
    now = utc_now(now)
    index_bytes = read_file(root / fmt.INDEX_FILE, registry=root)
    sig_path = root / fmt.SIGNATURE_FILE
    sig_bytes = read_file(sig_path, registry=root) if sig_path.exists() else None
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
    for pid, entry in index.plugins.items():  # a detail file is always plugins/<id>.json
        try:
            detail = trusted.verify_detail(pid, read_file(root / entry.detail.url, registry=root))
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
                trusted.check_artifact(info, read_file(file, registry=root))
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
