"""The bounded download asks for the bytes it counts and hashes."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugmarket._internal.fetch import Connections, fetch
from plugmarket.errors import SourceError
from tests.support.httpserver import LoopbackServer, redirect_to, status


def test_asks_for_uncompressed_bytes_even_through_a_given_client(
    tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    import httpx

    (tmp_path / "a.txt").write_bytes(b"abc" * 100)
    server = http_server(tmp_path)
    with httpx.Client() as client:  # a default client would advertise gzip
        got = fetch(
            server.url("a.txt"),
            client=client,
            max_bytes=10_000,
            expected_sha256=hashlib.sha256(b"abc" * 100).hexdigest(),
        )
    assert got.body == b"abc" * 100
    sent: dict[str, Any] = server.requests[-1][2]
    assert {k.lower(): v for k, v in sent.items()}["accept-encoding"] == "identity"


def test_progress_is_reported_as_the_body_streams(
    tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    body = bytes(range(256)) * 1024
    (tmp_path / "big.bin").write_bytes(body)
    server = http_server(tmp_path)
    seen: list[tuple[int, int | None]] = []
    fetch(
        server.url("big.bin"),
        max_bytes=len(body),
        expected_size=len(body),
        progress=lambda got, total: seen.append((got, total)),
    )
    assert seen and seen[-1] == (len(body), len(body))
    assert [got for got, _ in seen] == sorted(got for got, _ in seen)


def test_a_cookie_the_server_sets_is_never_sent_back(
    tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    def set_cookie(h: Any) -> None:
        h.send_response(200)
        h.send_header("Set-Cookie", "visitor=42; Path=/")
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")

    (tmp_path / "b.txt").write_bytes(b"b")
    server = http_server(tmp_path)
    server.route("/a", set_cookie)
    with Connections() as connections:
        assert fetch(server.url("a"), client=connections, max_bytes=10).body == b"ok"
        assert fetch(server.url("b.txt"), client=connections, max_bytes=10).body == b"b"
    second: dict[str, Any] = server.requests[-1][2]
    assert "cookie" not in {k.lower() for k in second}


def test_connections_go_through_the_proxy_the_environment_names(
    tmp_path: Path, http_server: Callable[..., LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loopback server stands in for the proxy: a request through a proxy names
    the whole URL, and the proxy answers for the origin."""
    proxy = http_server(tmp_path)
    proxy.route("http://registry.invalid/index.json", status(200, b"{}"))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.origin)
    monkeypatch.setenv("HTTP_PROXY", proxy.origin)
    with Connections() as connections:
        got = fetch("http://registry.invalid/index.json", client=connections, max_bytes=10)
    assert got.body == b"{}" and got.url == "http://registry.invalid/index.json"
    assert proxy.requests[-1][:2] == ("GET", "http://registry.invalid/index.json")


def test_connections_go_straight_to_a_host_no_proxy_names(
    tmp_path: Path, http_server: Callable[..., LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_bytes(b"direct")
    server = http_server(tmp_path)
    with socket.socket() as unused:  # a port nothing listens on: the proxy must not be used
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}"
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with Connections() as connections:
        assert fetch(server.url("a.txt"), client=connections, max_bytes=10).body == b"direct"
    assert server.count("/a.txt") == 1


def test_credentials_in_the_url_are_sent_as_basic_auth(
    tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    def private(h: Any) -> None:
        token = "Basic " + base64.b64encode(b"team:s3cr@t").decode()
        allowed = h.headers.get("Authorization") == token
        status(200 if allowed else 401, b"index" if allowed else b"")(h)

    server = http_server(tmp_path)
    server.route("/private/index.json", private)
    url = f"http://team:s3cr%40t@127.0.0.1:{server.port}/private/index.json"
    with Connections() as connections:
        assert fetch(url, client=connections, max_bytes=10).body == b"index"


def test_credentials_follow_a_redirect_within_the_origin_and_no_further(
    tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    token = "Basic " + base64.b64encode(b"team:tok").decode()
    server, other = http_server(tmp_path), http_server(tmp_path)

    def private(h: Any) -> None:
        allowed = h.headers.get("Authorization") == token
        status(200 if allowed else 401, b"moved here" if allowed else b"")(h)

    server.route("/old/index.json", redirect_to(server.url("new/index.json"), 301))
    server.route("/new/index.json", private)
    server.route("/away/index.json", redirect_to(other.url("index.json"), 302))
    other.route("/index.json", status(200, b"elsewhere"))
    creds = f"http://team:tok@127.0.0.1:{server.port}"
    with Connections() as connections:
        got = fetch(f"{creds}/old/index.json", client=connections, max_bytes=20)
        assert got.body == b"moved here"  # an absolute Location, the same origin
        away = fetch(
            f"{creds}/away/index.json",
            client=connections,
            max_bytes=20,
            allowed_origins=(server.origin, other.origin),
        )
    assert away.body == b"elsewhere"
    sent: dict[str, Any] = other.requests[-1][2]
    assert "authorization" not in {k.lower() for k in sent}  # not to another origin


def test_closed_connections_fail_a_download_in_words(
    tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    server = http_server(tmp_path)
    connections = Connections()
    connections.close()
    with pytest.raises(SourceError, match="closed"):
        fetch(server.url("a.txt"), client=connections, max_bytes=10)
    assert server.count() == 0


def test_a_no_proxy_entry_with_a_port_names_that_origin_only(
    tmp_path: Path, http_server: Callable[..., LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_bytes(b"direct")
    server = http_server(tmp_path)
    proxy = http_server(tmp_path)
    through = f"http://127.0.0.1:{server.port}/a.txt"
    proxy.route(through, status(200, b"proxied"))
    for name in ("all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy.origin)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, f"127.0.0.1:{server.port}")
    with Connections() as connections:
        assert fetch(through, client=connections, max_bytes=10).body == b"direct"
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, f"127.0.0.1:{proxy.port}")  # another origin on that host
    with Connections() as connections:
        assert fetch(through, client=connections, max_bytes=10).body == b"proxied"
