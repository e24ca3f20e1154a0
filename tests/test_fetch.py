"""The bounded download asks for the bytes it counts and hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugmarket._internal.fetch import fetch
from tests.support.httpserver import LoopbackServer


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
    from plugmarket._internal.fetch import make_client

    def set_cookie(h: Any) -> None:
        h.send_response(200)
        h.send_header("Set-Cookie", "visitor=42; Path=/")
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")

    (tmp_path / "b.txt").write_bytes(b"b")
    server = http_server(tmp_path)
    server.route("/a", set_cookie)
    with make_client() as client:
        assert fetch(server.url("a"), client=client, max_bytes=10).body == b"ok"
        assert fetch(server.url("b.txt"), client=client, max_bytes=10).body == b"b"
        assert not client.cookies  # nothing kept to recognise the next request by
    second: dict[str, Any] = server.requests[-1][2]
    assert "cookie" not in {k.lower() for k in second}
