"""One registry's trusted state across memory, disk and network: what is normal is decided here.

:class:`RegistryState` turns "give me this registry's index" into the
cheapest trusted answer:

1. the last trusted snapshot, or the disk copy (which another process may have
   refreshed), if it was fetched within ``cache_ttl``: no request;
2. offline (``settings.offline``), the newest trusted copy however old, or
   :class:`~plugmarket.errors.OfflineError`;
3. otherwise a request, conditional when a cached copy exists: a 304 renews
   the copy's fetch time; a 200 goes through
   :class:`~plugmarket._internal.trusted_index.TrustedIndex` and, once trusted,
   is written to disk with its signature and validators;
4. when the request fails (refused, timeout, HTTP error, too slow), the last
   trusted copy is served and the caller is told so (stale-if-error).

Invariants: an expired index is never returned; a disk copy is verified like a
downloaded one before it is used; bytes that fail a trust check are neither
used nor cached, and the previous trusted state stays in place.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from plugmarket._internal.fetch import Fetched, Progress, Sender, fetch
from plugmarket._internal.http_cache import CacheEntry
from plugmarket._internal.registry_format import INDEX_FILE, SIGNATURE_FILE, Index, format_time
from plugmarket._internal.registry_source import Source
from plugmarket._internal.trusted_index import TrustedIndex
from plugmarket.errors import (
    IntegrityError,
    OfflineError,
    PlugmarketError,
    RegistryError,
    SignatureError,
)
from plugmarket.settings import Settings, shown_url

__all__ = ["RegistryState", "Snapshot", "labelled"]

_MAX_SIGNATURE = 64 * 1024  # bytes of index.json.sig
# Bodies are hashed as sent, so ask servers not to compress them on the fly.
_IDENTITY = {"Accept-Encoding": "identity"}


@dataclass(frozen=True)
class Snapshot:
    """A registry's trusted index, and until when it is fresh.

    ``stale`` is the reason it was served from cache after a failed request
    (empty when it is fresh or was just revalidated).
    """

    index: Index
    digest: str  # sha256 of the index bytes
    signature: bytes | None  # the index.json.sig that was verified with it
    fetched: float  # POSIX seconds: fetched or revalidated
    fresh_until: float  # POSIX seconds
    stale: str = ""


class RegistryState:
    """The trust state and cached copies of one registry.

    Args:
        source: The registry.
        settings: TTL, offline mode, caps, signature policy.
        http: Returns what the registry's requests are sent through (made on first need).
        now: The clock.
    """

    def __init__(
        self,
        source: Source,
        settings: Settings,
        *,
        http: Callable[[], Sender],
        now: Callable[[], datetime],
    ) -> None:
        self.source = source
        self.settings = settings
        self._http = http
        self._now = now
        self._trust: TrustedIndex | None = None
        self.last: Snapshot | None = None  # the last trusted snapshot, fresh or not
        # Detail files waiting to be written (RegistryClient.holding_copies).
        self.held: list[Callable[[], object]] | None = None

    def refresh(self, now: datetime) -> Snapshot:
        """The cheapest trusted snapshot at ``now`` (see the module's docstring).

        Raises:
            OfflineError: offline, and no unexpired trusted copy is cached.
            RegistryError: the index cannot be fetched and no unexpired trusted
                copy exists; or it is malformed, expired (freeze) or older than
                the last trusted one (rollback).
            SignatureError: a required signature is missing, untrusted or wrong.
            IntegrityError: the server sent more than ``max_metadata_size``.
        """
        snap = self._refresh(now)
        self.last = replace(snap, stale="")
        return snap

    def _refresh(self, now: datetime) -> Snapshot:
        t = now.timestamp()
        ttl = self.settings.cache_ttl
        best = self.last
        why = "no trusted copy is cached"
        if best is not None and best.index.expires <= now:
            why = f"the cached copy expired at {format_time(best.index.expires)}"
            best = None
        entry = None if self.source.local else self.source.cache.get(INDEX_FILE)
        if entry is not None:
            adopted, problem = self._adopt(entry, now)
            if adopted is None:
                entry, why = None, f"the cached copy is not trusted: {problem}"
            else:
                best = adopted
        if best is not None and best.fetched <= t < best.fetched + ttl:
            return replace(best, fresh_until=best.fetched + ttl)
        if self.settings.offline and not self.source.local:
            if best is not None:
                return replace(best, fresh_until=t + ttl)
            raise OfflineError(
                f"registry {self.source.label!r}: offline mode is on and {why}",
                registry=self.source.label,
                file=INDEX_FILE,
                hint="Turn offline mode off (PLUGMARKET_OFFLINE=0) to fetch the registry.",
            )
        headers = entry.conditional_headers() if entry is not None else {}
        got = self._fetch_meta(self.source.index_url, INDEX_FILE, headers=headers)
        if isinstance(got, RegistryError):
            return self._stale(best, now, got, why)
        if got.status == 304 and entry is not None and best is not None:
            self.write(lambda: self.source.cache.touch(INDEX_FILE, entry, fetched=t))
            return replace(best, fetched=t, fresh_until=t + ttl)
        digest = hashlib.sha256(got.body).hexdigest()
        if best is not None and best.digest == digest:
            # The same bytes as the trusted copy (a server without validators).
            sig: bytes | None = best.signature
            index = best.index
        else:
            sig, missing = self._signature()
            try:
                index = self.trusted.update_index(got.body, sig, now=now)
            except SignatureError as exc:
                if missing is not None:
                    raise exc from missing
                raise
        if not self.source.local:
            extra = {"signature": base64.b64encode(sig).decode("ascii")} if sig else {}
            self.write(
                lambda: self.source.cache.put(
                    INDEX_FILE,
                    got.body,
                    url=shown_url(got.url),
                    fetched=t,
                    etag=got.etag,
                    last_modified=got.last_modified,
                    extra=extra,
                    sha256=digest,
                ),
            )
        self._remember(index.version)
        return Snapshot(index, digest, sig, t, t + ttl)

    def _adopt(self, entry: CacheEntry, now: datetime) -> tuple[Snapshot | None, str]:
        """The disk copy as a trusted snapshot, or (None, why) if it is not trusted."""
        digest = hashlib.sha256(entry.body).hexdigest()
        last = self.last
        if last is not None and last.digest == digest:
            if last.index.expires <= now:
                return None, f"it expired at {format_time(last.index.expires)}"
            return replace(last, fetched=entry.fetched), ""
        sig_text = entry.extra.get("signature")
        try:
            sig = base64.b64decode(sig_text, validate=True) if sig_text else None
        except ValueError:
            sig = None
        try:
            index = self.trusted.update_index(entry.body, sig, now=now)
        except PlugmarketError as exc:
            # Expired, rolled back, or no longer signed by a trusted key: never used.
            if not self.settings.offline:
                self.source.cache.discard(INDEX_FILE)
            return None, exc.message
        self._remember(index.version)
        ttl = self.settings.cache_ttl
        return Snapshot(index, digest, sig, entry.fetched, entry.fetched + ttl), ""

    def _stale(
        self,
        best: Snapshot | None,
        now: datetime,
        error: RegistryError,
        why: str,
    ) -> Snapshot:
        if best is None:
            raise RegistryError(
                f"registry {self.source.label!r}: cannot fetch {INDEX_FILE} ({error.message}), "
                f"and {why}",
                registry=self.source.label,
                file=INDEX_FILE,
                hint="Check the registry's URL and your connection, then try again.",
            ) from error
        trusted_at = format_time(datetime.fromtimestamp(best.fetched, UTC))
        stale = (
            f"registry {self.source.label!r}: cannot fetch {INDEX_FILE} ({error.message}); "
            f"using the copy trusted at {trusted_at} (version {best.index.version}, "
            f"expires {format_time(best.index.expires)})"
        )
        # Not asked for again within the TTL: a dead server is not waited on per search.
        return replace(best, fresh_until=now.timestamp() + self.settings.cache_ttl, stale=stale)

    def _signature(self) -> tuple[bytes | None, RegistryError | None]:
        """``index.json.sig`` where one is needed: (bytes or None, why it is missing)."""
        trust = self.trusted
        if not trust.require_signature:
            return None, None
        got = self._fetch_meta(self.source.signature_url, SIGNATURE_FILE, cap=_MAX_SIGNATURE)
        if isinstance(got, RegistryError):
            return None, got
        return got.body, None

    def _fetch_meta(
        self,
        url: str,
        file: str,
        *,
        headers: dict[str, str] | None = None,
        cap: int | None = None,
    ) -> Fetched | RegistryError:
        """GET a registry metadata file; a transport or HTTP failure is returned, not raised.

        Raises:
            IntegrityError: more bytes than allowed (endless data), labelled with the registry.
        """
        try:
            return fetch(
                url,
                client=None if self.source.local else self._http(),
                max_bytes=cap or self.settings.max_metadata_size,
                deadline=self.settings.download_deadline,
                headers={**_IDENTITY, **(headers or {})},
                error=RegistryError,
            )
        except IntegrityError as exc:
            raise labelled(exc, self.source, file) from exc
        except RegistryError as exc:
            return exc

    @property
    def trusted(self) -> TrustedIndex:
        """The registry's trust state (made on first use, with the persisted last version)."""
        trust = self._trust
        if trust is None:
            from plugmarket._internal.signing import load_public_key

            keys = [load_public_key(k) for k in self.source.config.trusted_keys]
            last = self.source.cache.read_state().get("version")
            known = last if isinstance(last, int) and not isinstance(last, bool) else None
            trust = TrustedIndex(
                self.source.label,
                trusted_keys=keys,
                require_signature=self.settings.require_signature,
                last_version=known,
                now=self._now(),
            )
            self._trust = trust
        return trust

    def _remember(self, version: int) -> None:
        """Persist the highest trusted index version (rollback protection across processes)."""
        state = self.source.cache.read_state()
        known = state.get("version")
        if not isinstance(known, int) or version > known:
            new = {**state, "version": version, "url": self.source.key}
            self.write(lambda: self.source.cache.write_state(new))
        else:  # another process may have written it, its fsync owed to a batch of its own
            self.source.cache.owe_state()

    def write(self, write: Callable[[], object], *, copy: bool = False) -> None:
        """Run a cache write, translating a disk failure.

        A copy of a detail file (``copy``) waits instead while the client holds
        copies back (:meth:`~plugmarket.registry.RegistryClient.holding_copies`).
        Only those may wait: each is named by its own sha256, so no write can
        land out of order with another. The index's copy must stay in step with
        the trusted version written beside it (an offline process would take a
        copy older than that version for a rollback).
        """
        if copy and self.held is not None:
            self.held.append(write)
            return
        try:
            write()
        except OSError as exc:
            raise RegistryError(
                f"cannot write the registry cache under {self.source.cache.root}: "
                f"{exc.strerror or exc}",
                registry=self.source.label,
                hint="Check that PLUGMARKET_HOME is writable and the disk is not full.",
            ) from exc

    def download(
        self,
        url: str,
        file: str,
        *,
        max_bytes: int,
        allowed: tuple[str, ...],
        size: int,
        sha256: str,
        progress: Progress | None = None,
    ) -> bytes:
        """Fetch a pinned file (detail or artifact), bounded and checked against its pin.

        Raises:
            IntegrityError: the size or sha256 differs, or the body is longer than allowed.
            RegistryError: the request fails or takes longer than ``download_deadline``.
        """
        try:
            return fetch(
                url,
                client=self._http() if url.startswith(("http:", "https:")) else None,
                max_bytes=max_bytes,
                deadline=self.settings.download_deadline,
                allowed_origins=allowed,
                headers=_IDENTITY,
                expected_size=size,
                expected_sha256=sha256,
                error=RegistryError,
                progress=progress,
            ).body
        except IntegrityError as exc:
            raise labelled(exc, self.source, file) from exc
        except RegistryError as exc:
            raise RegistryError(
                f"registry {self.source.label!r}: cannot fetch {file}: {exc.message}",
                registry=self.source.label,
                file=file,
                hint=exc.hint,
            ) from exc


def labelled(exc: IntegrityError, source: Source, file: str) -> IntegrityError:
    """``exc`` again, its message naming the registry and the file."""
    return IntegrityError(
        f"registry {source.label!r}: {file}: {exc.message}",
        subject=f"{source.label}/{file}",
        expected=exc.expected,
        actual=exc.actual,
        hint=exc.hint,
    )
