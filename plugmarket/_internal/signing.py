"""Ed25519 keys and the signature file ``index.json.sig``.

Files:

- ``NAME.key``: the private key as unencrypted PKCS#8 PEM (what ``openssl
  pkey`` reads), created with mode 0600 from the first byte: it is written to
  a temporary file opened with that mode and linked into place, so it is never
  world-readable, never half-written and never overwrites an existing key.
- ``NAME.pub``: the raw 32-byte public key in base64 on one line.
- ``index.json.sig``: canonical JSON ``{"signatures": [{"keyid": ..., "sig":
  ...}, ...]}``, each an Ed25519 signature over the exact bytes of
  ``index.json``. More than one entry lets a publisher keep the previous
  index's signature while the new index replaces it (see
  docs/registry-format.md, "Write order") and lets a registry rotate keys.

A key id is the first 16 hex digits of the sha256 of the raw public key.
Verification accepts an index when any signature by a trusted key verifies.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from plugmarket._internal.durable import fsync_dir
from plugmarket._internal.registry_format import SIGNATURE_FILE, canonical_json, loads_strict
from plugmarket.errors import RegistryError, SignatureError

__all__ = [
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign",
    "signature_entries",
    "verify",
    "write_atomic",
]

_MAX_SIGNATURES = 8
# 32 bytes in base64: 43 characters and one '='. A file name never looks like this.
_B64_KEY = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix.

    The bytes go to a temporary file in the same folder, are fsynced, and the
    file is renamed over ``path`` (or, with ``exclusive``, hard-linked to it so
    an existing file is never replaced). The folder is fsynced afterwards.

    Args:
        path: Where the file ends up.
        data: Its complete contents.
        mode: The file's permission bits, set before any data is written, so
            the data is never readable more widely (default 0644: registry
            files are meant to be served).
        exclusive: Refuse to replace an existing file.

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists.
        OSError: the folder is not writable or the disk is full.
    """
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp created the file 0600; set ``mode`` before any byte is written.
            # (The umask is not applied: reading it means changing it, which races
            # with other threads.)
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def generate_keypair(name_path: Path | str) -> tuple[Path, Path]:
    """Create an Ed25519 key pair: ``NAME.key`` (mode 0600) and ``NAME.pub``.

    Args:
        name_path: The path without suffix, such as ``keys/demo``.

    Returns:
        The paths of the private and the public key.

    Raises:
        SignatureError: either file already exists, or cannot be written.
    """
    base = Path(name_path)
    key_path = base.with_name(base.name + ".key")
    pub_path = base.with_name(base.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists():
            raise SignatureError(
                f"{path} already exists; a key is never overwritten",
                file=str(path),
                hint="Choose another name, or move the old key away first.",
            )
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        write_atomic(key_path, pem, mode=0o600, exclusive=True)
        write_atomic(pub_path, _public_b64(private.public_key()).encode() + b"\n", exclusive=True)
    except OSError as exc:
        raise SignatureError(
            f"cannot write the key pair {key_path} / {pub_path}: {exc}",
            file=str(key_path),
            hint="Check that the folder exists and is writable.",
        ) from exc
    return key_path, pub_path


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _public_b64(public: Ed25519PublicKey) -> str:
    return base64.b64encode(_raw(public)).decode("ascii")


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's id: the first 16 hex digits of the sha256 of its raw 32 bytes."""
    return hashlib.sha256(_raw(public_key)).hexdigest()[:16]


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    """Read a private key written by :func:`generate_keypair`.

    Raises:
        SignatureError: the file is missing, unreadable or not an Ed25519 key.
    """
    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SignatureError(
            f"cannot read the private key {path}: {exc.strerror or exc}",
            file=str(path),
            hint="Pass the NAME.key file written by `plugmarket keygen NAME`.",
        ) from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(
            f"{path} is not an unencrypted PEM private key",
            file=str(path),
            hint="Pass the NAME.key file written by `plugmarket keygen NAME`.",
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 key",
            file=str(path),
            hint="Create a key with `plugmarket keygen NAME`.",
        )
    return key


def load_public_key(text_or_path: Path | str) -> Ed25519PublicKey:
    """Read a public key from a ``.pub`` file's path or its base64 text.

    Raises:
        SignatureError: neither a readable ``.pub`` file nor 32 base64-encoded bytes.
    """
    text = str(text_or_path).strip()
    source = "the key text"
    path = Path(text).expanduser()
    if isinstance(text_or_path, Path) or not _B64_KEY.match(text):
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SignatureError(
                f"cannot read the public key file {path}: {exc}",
                file=str(path),
                hint="Pass a NAME.pub file or its base64 contents.",
            ) from exc
        source = str(path)
    try:
        raw = base64.b64decode(text, validate=True)
        if len(raw) != 32:
            raise ValueError(f"{len(raw)} bytes")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(
            f"{source} is not an Ed25519 public key (32 bytes in base64): {text[:60]!r}",
            file=source if source != "the key text" else "",
            hint="Pass a NAME.pub file written by `plugmarket keygen` or its one-line contents.",
        ) from exc


def sign(
    index_bytes: bytes, private_key: Ed25519PrivateKey, *, keep: Sequence[tuple[str, str]] = ()
) -> bytes:
    """The contents of ``index.json.sig`` for ``index_bytes``.

    Args:
        index_bytes: The exact bytes of ``index.json``.
        private_key: The registry's signing key.
        keep: Further ``(keyid, sig)`` entries to carry (the previous index's
            signature during a publish); entries equal to the new one are dropped.

    Returns:
        Canonical JSON ``{"signatures": [{"keyid": ..., "sig": ...}, ...]}``.
    """
    entry = (key_id(private_key.public_key()), base64.b64encode(private_key.sign(index_bytes)))
    entries = [(entry[0], entry[1].decode("ascii"))]
    for kid, sig in keep:
        if (kid, sig) not in entries and len(entries) < _MAX_SIGNATURES:
            entries.append((kid, sig))
    return canonical_json({"signatures": [{"keyid": k, "sig": s} for k, s in entries]})


def signature_entries(sig_bytes: bytes, *, registry: str = "") -> tuple[tuple[str, str], ...]:
    """The ``(keyid, sig)`` entries of an ``index.json.sig`` file, strictly decoded.

    Raises:
        SignatureError: the file is not a valid signature file.
    """
    try:
        obj = loads_strict(sig_bytes, registry=registry, file=SIGNATURE_FILE)
    except RegistryError as exc:
        raise SignatureError(exc.message, registry=registry, file=SIGNATURE_FILE) from exc
    items = obj.get("signatures") if isinstance(obj, dict) and len(obj) == 1 else None
    if not isinstance(items, list) or not 0 < len(items) <= _MAX_SIGNATURES:
        raise _bad_sig_file(registry, "an object with a 'signatures' list")
    entries: list[tuple[str, str]] = []
    for item in items:
        if (
            not isinstance(item, dict)
            or set(item) != {"keyid", "sig"}
            or not isinstance(item["keyid"], str)
            or not isinstance(item["sig"], str)
        ):
            raise _bad_sig_file(registry, "entries of the form {'keyid': ..., 'sig': ...}")
        entries.append((item["keyid"], item["sig"]))
    return tuple(entries)


def _bad_sig_file(registry: str, expected: str) -> SignatureError:
    return SignatureError(
        f"registry {registry!r}: {SIGNATURE_FILE} is malformed; expected {expected}",
        registry=registry,
        file=SIGNATURE_FILE,
        hint="Re-sign the index with `plugmarket index sign`.",
    )


def verify(
    index_bytes: bytes,
    sig_bytes: bytes,
    trusted_keys: Sequence[Ed25519PublicKey],
    *,
    registry: str = "",
) -> str:
    """Check that a trusted key signed ``index_bytes``.

    Args:
        index_bytes: The exact bytes of ``index.json``.
        sig_bytes: The bytes of ``index.json.sig``.
        trusted_keys: The public keys whose signature is accepted.
        registry: The registry's name, for messages.

    Returns:
        The key id whose signature verified.

    Raises:
        SignatureError: the file is malformed, no entry is by a trusted key, or
            no trusted signature verifies over these bytes.
    """
    entries = signature_entries(sig_bytes, registry=registry)
    trusted = {key_id(k): k for k in trusted_keys}
    tried: list[str] = []
    for kid, sig in entries:
        key = trusted.get(kid)
        if key is None:
            continue
        tried.append(kid)
        try:
            key.verify(base64.b64decode(sig, validate=True), index_bytes)
        except (InvalidSignature, binascii.Error, ValueError):
            continue
        return kid
    signed_by = ", ".join(k for k, _ in entries)
    if not tried:
        raise SignatureError(
            f"registry {registry!r}: {SIGNATURE_FILE} is signed by key {signed_by}, "
            f"expected one of the trusted keys {', '.join(sorted(trusted)) or '(none)'}",
            registry=registry,
            file=SIGNATURE_FILE,
            hint="Trust the registry's public key (PLUGMARKET_TRUSTED_KEYS or the "
            "registry's trusted_keys), or stop using a registry you do not trust.",
        )
    raise SignatureError(
        f"registry {registry!r}: the signature by key {', '.join(tried)} does not match "
        f"the bytes of index.json; the index was changed after it was signed",
        registry=registry,
        file=SIGNATURE_FILE,
        hint="Do not use this registry until its maintainer re-signs it "
        "(`plugmarket index sign`); the index may have been tampered with.",
    )
