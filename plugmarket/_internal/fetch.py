"""Bounded downloads: the one place plugmarket's bytes cross the network.

Every request made here has a per-read timeout *and* a total deadline (a
trickling server cannot hold a download open forever), a byte cap enforced
while streaming (an endless body is cut off, never buffered), and redirects
followed by hand so that each hop is checked against the allowed origins
(httpx's own redirect following would not ask). ``file://`` URLs and plain
paths are read from disk under the same cap.

Failures are raised as the caller's error class (``SourceError`` for
plugin sources, ``RegistryError`` for registries), with the foreign
exception chained; a size or hash that differs from what was pinned is an
:class:`~plugmarket.errors.IntegrityError`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from plugmarket.errors import IntegrityError, PlugmarketError, SourceError
from plugmarket.settings import shown_url

if TYPE_CHECKING:
    import httpx

__all__ = ["Connections", "Fetched", "Progress", "Sender", "fetch", "origin_allowed", "origin_of"]

#: ``progress(received_bytes, total_bytes_or_None)``, called as a download streams.
Progress = Callable[[int, int | None], None]

_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Fetched:
    """What a request returned.

    ``status`` is 200 or 304 (304 only when conditional headers were sent);
    ``url`` is the final URL after redirects; ``headers`` are lower-cased.
    """

    url: str
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        """``Last-Modified``, if it can revalidate this body; else None.

        A time with one-second resolution names one version only if the file
        was not changed again in that second. So, as RFC 7232 section 2.2.2
        says, it is used only when the response's ``Date`` is at least a
        second later: otherwise a file published twice within a second (a
        static server such as ``python -m http.server``) would be answered
        "not modified" with the first version.
        """
        modified = _http_time(self.headers.get("last-modified"))
        date = _http_time(self.headers.get("date"))
        if modified is None or date is None or date - modified < 1:
            return None
        return self.headers["last-modified"]


def _http_time(value: str | None) -> float | None:
    """An HTTP date as a POSIX timestamp (None if absent or unreadable)."""
    if not value:
        return None
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one loads the CA bundle
    (about 15 ms), which every new client would otherwise pay again."""
    import httpx

    return httpx.create_ssl_context()


class Sender(Protocol):
    """What :func:`fetch` sends through: :class:`Connections`, or an ``httpx.Client``."""

    @property
    def headers(self) -> httpx.Headers: ...

    def send(
        self, request: httpx.Request, *, stream: bool = ..., follow_redirects: bool = ...
    ) -> httpx.Response: ...

    def close(self) -> None: ...


class Connections:
    """plugmarket's own HTTP connections: httpx's transport (its connection pool, TLS,
    timeouts) for each proxy route, without ``httpx.Client``'s layer above it.

    A request to a registry or an index needs little of what that layer adds:
    no cookies (a static file server's cookie would only let it recognise the
    next request), no event hooks, and redirects :func:`fetch` follows itself;
    credentials in a URL (``https://user:token@host/``) are sent as Basic auth,
    as ``httpx.Client`` sends them (and :func:`fetch` again after a redirect
    within the origin). On loopback that layer cost a sixth of each request
    (docs/decisions/0014-registry-downloads.md). Proxies come from the
    environment variables ``httpx.Client`` reads too (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), as :mod:`urllib.request`
    reads them (``getproxies``, ``proxy_bypass``), on the first request to each
    origin. Thread-safe; once closed, it sends nothing more.

    Args:
        timeout: Seconds each connect, read, write and wait for a pooled connection may take.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        import httpx

        self.headers = httpx.Headers(
            {
                "Accept": "*/*",
                "Accept-Encoding": "identity",
                "Connection": "keep-alive",
                "User-Agent": "plugmarket",
            }
        )
        self._timeout = httpx.Timeout(timeout).as_dict()
        self._by_origin: dict[tuple[bytes, str, int | None], httpx.HTTPTransport] = {}
        self._by_proxy: dict[str | None, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()
        self._closed = False

    def send(
        self, request: httpx.Request, *, stream: bool = True, follow_redirects: bool = False
    ) -> httpx.Response:
        """Send ``request`` as it is; the response streams (read it, then close it).

        ``stream`` and ``follow_redirects`` are ``httpx.Client.send``'s, and only
        ``stream=True, follow_redirects=False`` is offered.
        """
        if not stream or follow_redirects:
            raise ValueError("Connections only streams, and never follows redirects")
        url = request.url
        if (url.username or url.password) and "authorization" not in request.headers:
            import httpx

            request = next(httpx.BasicAuth(url.username, url.password).auth_flow(request))
        request.extensions.setdefault("timeout", self._timeout)
        return self._transport(url).handle_request(request)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            transports = list(self._by_proxy.values())
            self._by_origin.clear()
            self._by_proxy.clear()
        for transport in transports:
            transport.close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transport(self, url: httpx.URL) -> httpx.HTTPTransport:
        origin = (url.raw_scheme, url.host, url.port)
        transport = self._by_origin.get(origin)
        if transport is not None:
            return transport
        import httpx

        proxy = _proxy_for(url)
        with self._lock:
            if self._closed:  # a transport error: the caller reports it as a failed download
                raise httpx.TransportError("plugmarket's connections were closed")
            transport = self._by_proxy.get(proxy)
            if transport is None:
                transport = httpx.HTTPTransport(verify=_tls_context(), proxy=proxy)
                self._by_proxy[proxy] = transport
            self._by_origin[origin] = transport
        return transport


def _proxy_for(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url``'s origin, or None to go direct."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    host = url.host if url.port is None else f"{url.host}:{url.port}"  # NO_PROXY may name ports
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, default ports dropped."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def origin_allowed(url: str, allowed: tuple[str, ...], start: str | None = None) -> bool:
    """Whether ``url`` may be fetched: its origin is allowed, or (with no list) same-origin.

    With an empty ``allowed`` list any first URL is allowed, and a redirect
    (``start`` given) must stay on ``start``'s origin.
    """
    origin = origin_of(url)
    if allowed:
        return origin in {origin_of(a) for a in allowed}
    return start is None or origin == origin_of(start)


def fetch(
    url: str,
    *,
    client: Sender | None = None,
    max_bytes: int,
    deadline: float = 120.0,
    allowed_origins: tuple[str, ...] = (),
    headers: Mapping[str, str] | None = None,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    error: type[PlugmarketError] = SourceError,
    progress: Progress | None = None,
) -> Fetched:
    """GET ``url`` (http, https, file, or a plain path) under plugmarket's bounds.

    Args:
        url: What to fetch.
        client: What to send through (:class:`Connections`, or an ``httpx.Client``);
            a :class:`Connections` is made, and closed after, if absent.
        max_bytes: The most bytes to accept; more is an error, found while streaming.
        deadline: Seconds the whole download may take, redirects included.
        allowed_origins: Origins that may be contacted; empty means the first
            URL's origin and no other.
        headers: Extra request headers (``If-None-Match``, ...).
        expected_size: If pinned, the body must be exactly this long.
        expected_sha256: If pinned, the body's sha256 must match.
        error: The error class for transport failures.
        progress: Called as ``progress(received, total)`` while the body streams
            (``total`` is the pinned or declared size, or None).

    Returns:
        The final URL, status (200, or 304 for a conditional request) and body.

    Raises:
        IntegrityError: the body is longer than pinned/capped, or its hash differs.
        PlugmarketError: (of class ``error``) the URL is refused, the server fails,
            the connection drops, or the deadline passes.
    """
    cap = max_bytes if expected_size is None else min(max_bytes, expected_size)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and url[1:3] == ":\\"):
        result = _fetch_file(url, cap, error)
    elif parts.scheme in ("http", "https"):
        if not origin_allowed(url, allowed_origins):
            raise error(
                f"{shown_url(url)}: the origin {origin_of(url)} is not in the allowed origins",
                hint="Ask an admin to add it to allowed_origins, or use another source.",
            )
        result = _fetch_http(
            url,
            client=client,
            cap=cap,
            deadline=deadline,
            allowed=allowed_origins,
            headers=headers or {},
            error=error,
            progress=progress,
            total=expected_size,
        )
    else:
        raise error(
            f"{shown_url(url)}: unsupported URL scheme {parts.scheme!r}",
            hint="Use an https, http or file URL, or a folder path.",
        )
    if result.status == 200:
        _check_pins(url, result.body, expected_size, expected_sha256)
    return result


def _check_pins(url: str, body: bytes, size: int | None, sha256: str | None) -> None:
    if size is not None and len(body) != size:
        raise IntegrityError(
            f"{shown_url(url)}: expected {size} bytes, got {len(body)}",
            subject=shown_url(url),
            expected=str(size),
            actual=str(len(body)),
            hint="The file was changed or truncated after it was published; do not use it.",
        )
    if sha256 is not None:
        actual = hashlib.sha256(body).hexdigest()
        if actual != sha256.lower():
            raise IntegrityError(
                f"{shown_url(url)}: sha256 mismatch (expected {sha256}, got {actual})",
                subject=shown_url(url),
                expected=sha256,
                actual=actual,
                hint="The file was tampered with or replaced; do not use it.",
            )


def _too_big(url: str, cap: int) -> IntegrityError:
    return IntegrityError(
        f"{shown_url(url)}: the body is larger than the {cap} bytes allowed",
        subject=shown_url(url),
        expected=f"at most {cap} bytes",
        actual=f"more than {cap} bytes",
        hint="The server sent more than was pinned or allowed (an endless-data attack, or "
        "a file too large for max_plugin_size).",
    )


def _fetch_file(url: str, cap: int, error: type[PlugmarketError]) -> Fetched:
    path = (
        Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if url.startswith("file:")
        else Path(url)
    )
    try:
        with path.open("rb") as f:
            body = f.read(cap + 1)
    except OSError as exc:
        raise error(
            f"{shown_url(url)}: cannot read the file: {exc.strerror or exc}",
            hint="Check that the path exists and is readable.",
        ) from exc
    if len(body) > cap:
        raise _too_big(url, cap)
    return Fetched(url=url, status=200, body=body)


def _fetch_http(
    url: str,
    *,
    client: Sender | None,
    cap: int,
    deadline: float,
    allowed: tuple[str, ...],
    headers: Mapping[str, str],
    error: type[PlugmarketError],
    progress: Progress | None = None,
    total: int | None = None,
) -> Fetched:
    import httpx

    own = client is None
    session: Sender = Connections() if client is None else client
    start = url
    ends = time.monotonic() + deadline
    carried: dict[str, str] = {}  # credentials, kept for a redirect within the origin
    try:
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                # Raw bytes are counted and hashed, so ask for them uncompressed. The
                # request is made whole here and sent as it is.
                sent = session.headers.copy()
                sent.update({"Accept-Encoding": "identity", **headers, **carried})
                request = httpx.Request("GET", url, headers=sent)
                response = session.send(request, stream=True, follow_redirects=False)
                with contextlib.closing(response) as r:
                    if r.status_code == 304 and headers:
                        return Fetched(url, 304, b"", _lower(r.headers))
                    if r.status_code in _REDIRECTS and "location" in r.headers:
                        target = str(request.url.join(r.headers["location"]))
                        if not origin_allowed(target, allowed, start):
                            raise error(
                                f"{shown_url(start)}: refused a redirect to {shown_url(target)} "
                                f"(origin {origin_of(target)} is not allowed)",
                                hint="Redirects may only lead to allowed origins.",
                            )
                        same = origin_of(target) == origin_of(url)
                        auth = request.headers.get("authorization")
                        carried = {"Authorization": auth} if same and auth else {}
                        url = target
                        continue
                    if r.status_code != 200:
                        raise error(
                            f"{shown_url(url)}: the server answered HTTP {r.status_code}",
                            hint="Check the URL; the server may be down or the file missing.",
                        )
                    declared = r.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > cap:
                        raise _too_big(url, cap)
                    chunks: list[bytes] = []
                    size = 0
                    if total is None and declared is not None and declared.isdigit():
                        total = int(declared)
                    # No chunk size: each network read is seen as it arrives, so the
                    # deadline is checked while a server trickles (httpx would otherwise
                    # wait until 64 KiB had accumulated).
                    for chunk in r.iter_raw():
                        size += len(chunk)
                        if size > cap:
                            raise _too_big(url, cap)
                        if time.monotonic() > ends:
                            raise error(
                                f"{shown_url(url)}: the download took longer than {deadline:g} s",
                                hint="The server is too slow or trickling data; try later.",
                            )
                        chunks.append(chunk)
                        if progress is not None:
                            progress(size, total)
                    return Fetched(str(request.url), 200, b"".join(chunks), _lower(r.headers))
            except httpx.TimeoutException as exc:
                raise error(
                    f"{shown_url(url)}: the server did not answer in time ({type(exc).__name__})",
                    hint="Check your connection or try later.",
                ) from exc
            except httpx.HTTPError as exc:
                raise error(
                    f"{shown_url(url)}: the download failed: {exc}",
                    hint="Check your connection and the URL, then try again.",
                ) from exc
        raise error(
            f"{shown_url(start)}: more than {_MAX_REDIRECTS} redirects", hint="Fix the URL."
        )
    finally:
        if own:
            session.close()


def _lower(headers: httpx.Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
