"""The trusted state of one registry: a pure component that checks and always raises.

Modelled on python-tuf's ``trusted_metadata_set``: no I/O, no clock (the
caller passes ``now``), no decisions about what is normal. The registry
client fetches bytes and hands them here; this class says whether they can be
trusted, and keeps the last trusted index.

The rules, and the attack each one stops:

- **Signature** (where the registry has trusted keys, or ``require_signature``
  is on): a trusted key signed the exact bytes of ``index.json``. Stops
  tampering with the index and unsigned substitutes.
- **Expiry**: ``expires`` is after ``now``. Stops a freeze attack (serving an
  old, validly signed index forever so that fixes never arrive).
- **Version**: never lower than the last trusted one (in this object or the
  ``last_version`` the client remembered), and an equal version must have the
  same bytes. Stops a rollback attack (an older, validly signed index).
- **Pins**: a detail file must have the size and sha256 the trusted index
  pins; an artifact must have those its verified detail pins. Stops
  mix-and-match (files from different registry states), tampering, and endless
  data (the pinned size bounds every download).

Invariant: on any failure the previously trusted index stays as ``.index``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from plugmarket._internal.registry_format import (
    INDEX_FILE,
    SIGNATURE_FILE,
    Artifact,
    Index,
    PluginDetail,
    VersionInfo,
    decode_detail,
    decode_index,
    format_time,
)
from plugmarket.errors import IntegrityError, RegistryError, SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["TrustedIndex"]


class TrustedIndex:
    """The last trusted index of one registry, and the checks that replace it.

    Args:
        registry: The registry's name or URL, for messages.
        trusted_keys: Public keys whose signature on ``index.json`` is
            accepted. With any key, a signature is required.
        require_signature: Refuse an unsigned index even without keys (and
            then every index, since no signature can be checked).
        last_version: The highest index version the client trusted before
            (persisted across processes); a lower one is a rollback.
        now: The time the client starts at (recorded as ``reference_time``).
    """

    def __init__(
        self,
        registry: str,
        *,
        trusted_keys: Sequence[Ed25519PublicKey],
        require_signature: bool,
        last_version: int | None = None,
        now: datetime,
    ) -> None:
        self.registry = registry
        self.trusted_keys = tuple(trusted_keys)
        self.require_signature = require_signature or bool(self.trusted_keys)
        self.last_version = last_version
        self.reference_time = now
        self._index: Index | None = None
        self._index_sha256 = ""
        self._keyid: str | None = None
        self._details: dict[str, PluginDetail] = {}

    @property
    def index(self) -> Index | None:
        """The trusted index, or None before the first successful update."""
        return self._index

    @property
    def index_sha256(self) -> str:
        """The sha256 of the trusted index's bytes ('' before the first update)."""
        return self._index_sha256

    @property
    def keyid(self) -> str | None:
        """The id of the key that signed the trusted index (None: unsigned or unchecked)."""
        return self._keyid

    def update_index(self, index_bytes: bytes, sig_bytes: bytes | None, *, now: datetime) -> Index:
        """Check ``index.json`` (and its signature) and make it the trusted index.

        Args:
            index_bytes: The exact bytes served as ``index.json``.
            sig_bytes: The bytes served as ``index.json.sig``, or None if absent.
            now: The current time, for the expiry check.

        Returns:
            The new trusted index.

        Raises:
            SignatureError: a signature is required and is missing, by an
                untrusted key, or does not match the bytes.
            RegistryError: the index is malformed, expired (freeze), older than
                the last trusted one (rollback), or the same version with
                different bytes.
        """
        keyid: str | None = None
        if self.require_signature:
            if sig_bytes is None:
                raise SignatureError(
                    f"registry {self.registry!r}: {INDEX_FILE} is unsigned "
                    f"(no {SIGNATURE_FILE}), expected a signature by "
                    f"{self._expected_keys()}",
                    registry=self.registry,
                    file=SIGNATURE_FILE,
                    hint="Ask the registry's maintainer to sign it (`plugmarket index sign`); "
                    "unsigned registries are refused because signatures are required.",
                )
            if not self.trusted_keys:
                raise SignatureError(
                    f"registry {self.registry!r}: signatures are required but no trusted "
                    "key is configured for it, so no signature can be accepted",
                    registry=self.registry,
                    file=SIGNATURE_FILE,
                    hint="Add the registry's public key to its trusted_keys "
                    "(or PLUGMARKET_TRUSTED_KEYS).",
                )
            from plugmarket._internal.signing import verify

            keyid = verify(index_bytes, sig_bytes, self.trusted_keys, registry=self.registry)

        index = decode_index(index_bytes, registry=self.registry)
        if index.expires <= now:
            raise RegistryError(
                f"registry {self.registry!r}: {INDEX_FILE} version {index.version} expired at "
                f"{format_time(index.expires)} (now {format_time(now)}); refusing it, since "
                "serving an expired index is how a freeze attack hides updates",
                registry=self.registry,
                file=INDEX_FILE,
                hint="Ask the registry's maintainer to re-sign it "
                "(`plugmarket index sign --expires-days N`), or check this machine's clock.",
            )
        floor = max(self.last_version or 0, self._index.version if self._index is not None else 0)
        if index.version < floor:
            raise RegistryError(
                f"registry {self.registry!r}: {INDEX_FILE} has version {index.version}, "
                f"expected at least {floor}, the last version trusted; refusing the older "
                "index (rollback attack)",
                registry=self.registry,
                file=INDEX_FILE,
                hint="The server or a cache in between serves stale data; try again later "
                "or tell the registry's maintainer.",
            )
        digest = hashlib.sha256(index_bytes).hexdigest()
        if self._index is not None and index.version == self._index.version:
            if digest != self._index_sha256:
                raise RegistryError(
                    f"registry {self.registry!r}: {INDEX_FILE} version {index.version} has "
                    f"sha256 {digest}, expected {self._index_sha256}, the trusted index of the "
                    "same version; a registry must bump the version on every change",
                    registry=self.registry,
                    file=INDEX_FILE,
                    hint="Tell the registry's maintainer; publish with `plugmarket publish`, "
                    "which bumps the version.",
                )
        else:
            self._details = {}
        self._index = index
        self._index_sha256 = digest
        self._keyid = keyid
        self.last_version = max(floor, index.version)
        return index

    def _expected_keys(self) -> str:
        if not self.trusted_keys:
            return "a trusted key"
        from plugmarket._internal.signing import key_id

        return "one of the keys " + ", ".join(sorted(key_id(k) for k in self.trusted_keys))

    def _trusted(self) -> Index:
        if self._index is None:
            raise RegistryError(
                f"registry {self.registry!r}: no trusted {INDEX_FILE} yet",
                registry=self.registry,
                file=INDEX_FILE,
                hint="Load the index before asking for plugin details.",
            )
        return self._index

    def verify_detail(self, plugin_id: str, data: bytes) -> PluginDetail:
        """Check a plugin's detail file against the trusted index's pin, then decode it.

        Args:
            plugin_id: The plugin the file was fetched for.
            data: The bytes served at the index entry's ``detail.url``.

        Returns:
            The decoded detail, whose every version the index's ``latest`` names exists.

        Raises:
            RegistryError: no trusted index, the plugin is not in it, or the file
                is malformed, describes another plugin or lacks a version the
                index names.
            IntegrityError: the size or sha256 differs from the pin.
        """
        index = self._trusted()
        entry = index.plugins.get(plugin_id)
        if entry is None:
            raise RegistryError(
                f"registry {self.registry!r}: plugin {plugin_id!r} is not in {INDEX_FILE} "
                f"version {index.version}",
                registry=self.registry,
                file=INDEX_FILE,
                hint="Search the registry for the right id.",
            )
        pin = entry.detail
        self._check_pin(pin, data, what=f"the detail file of {plugin_id!r}")
        detail = decode_detail(data, registry=self.registry, plugin_id=plugin_id, file=pin.url)
        for channel, version in entry.latest.items():
            if detail.get(version) is None:
                raise RegistryError(
                    f"registry {self.registry!r}: {pin.url} lists no version {version}, "
                    f"which {INDEX_FILE} names as the latest on channel {channel!r}",
                    registry=self.registry,
                    file=pin.url,
                    hint="The registry is inconsistent; tell its maintainer "
                    "(`plugmarket index verify`).",
                )
        self._details[plugin_id] = detail
        return detail

    def artifact_pin(self, detail_version: VersionInfo) -> Artifact:
        """The pin (url, sha256, size) an artifact must match, from a verified detail.

        Raises:
            RegistryError: ``detail_version`` does not come from a detail file
                verified against the current trusted index.
        """
        for detail in self._details.values():
            if detail_version in detail.versions:
                return detail_version.artifact
        raise RegistryError(
            f"registry {self.registry!r}: version {detail_version.version} does not come from "
            f"a detail file verified against the trusted {INDEX_FILE}",
            registry=self.registry,
            file=detail_version.artifact.url,
            hint="Fetch the plugin's details again before downloading its artifact.",
        )

    def check_artifact(self, detail_version: VersionInfo, data: bytes) -> Artifact:
        """Check downloaded artifact bytes against their pin.

        Raises:
            RegistryError: as :meth:`artifact_pin`.
            IntegrityError: the size or sha256 differs from the pin.
        """
        pin = self.artifact_pin(detail_version)
        self._check_pin(pin, data, what=f"the artifact of version {detail_version.version}")
        return pin

    def _check_pin(self, pin: Artifact, data: bytes, *, what: str) -> None:
        if len(data) != pin.size:
            raise IntegrityError(
                f"registry {self.registry!r}: {pin.url} ({what}) is {len(data)} bytes, "
                f"expected {pin.size} as pinned by the signed index",
                subject=f"{self.registry}/{pin.url}",
                expected=str(pin.size),
                actual=str(len(data)),
                hint="The file was changed or mixed with another registry state; "
                "try again later, and tell the registry's maintainer if it persists.",
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != pin.sha256:
            raise IntegrityError(
                f"registry {self.registry!r}: {pin.url} ({what}) has sha256 {digest}, "
                f"expected {pin.sha256} as pinned by the signed index",
                subject=f"{self.registry}/{pin.url}",
                expected=pin.sha256,
                actual=digest,
                hint="The file was tampered with or mixed with another registry state; "
                "do not use it, and tell the registry's maintainer.",
            )
