"""A static host on 127.0.0.1 for the benchmarks: a folder served from memory, in
its own process.

Every file is read once at start, and its response headers
(``Content-Length``, ``ETag``, ``Last-Modified``) made then, so a request
costs little more than parsing the request line and writing bytes already
made, as with a static web server whose files sit in the page cache (nginx,
a bucket). ``/dir/`` answers with ``dir/index.html``, as a static PEP 503
index is laid out. HTTP/1.1 with keep-alive; GET and HEAD; no conditional or
range requests (a benchmark's rounds start cold), no redirects.

Run: ``python benchmarks/static_host.py FOLDER``: prints the base URL, then
serves until its standard input is closed.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import socket
import sys
from pathlib import Path

_TYPES = {".html": "text/html", ".json": "application/json"}


def responses(root: Path) -> dict[str, tuple[bytes, bytes]]:
    """``path -> (head, body)`` for every file under ``root``."""
    made = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        body = path.read_bytes()
        head = (  # the Date header and the blank line follow, per request
            "HTTP/1.1 200 OK\r\n"
            f"Content-Type: {_TYPES.get(path.suffix, 'application/octet-stream')}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f'ETag: "{hashlib.sha256(body).hexdigest()[:32]}"\r\n'
            f"Last-Modified: {email.utils.formatdate(path.stat().st_mtime, usegmt=True)}\r\n"
        ).encode("ascii")
        url = "/" + path.relative_to(root).as_posix()
        made[url] = (head, body)
        if path.name == "index.html":
            made[url.removesuffix("index.html")] = (head, body)
    return made


def _status(code: int, reason: str) -> bytes:
    return f"HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n".encode("ascii")


def _date() -> bytes:
    return f"Date: {email.utils.formatdate(usegmt=True)}\r\n\r\n".encode("ascii")


class _Connection(asyncio.Protocol):
    def __init__(self, files: dict[str, tuple[bytes, bytes]]) -> None:
        self.files = files
        self.pending = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answer at once

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.pending += data
        while b"\r\n\r\n" in self.pending:
            request, self.pending = self.pending.split(b"\r\n\r\n", 1)
            line, *fields = request.decode("latin-1").split("\r\n")
            method, target, version = [*line.split(" "), "", "", ""][:3]
            headers = dict(f.lower().split(":", 1) for f in fields if ":" in f)
            if headers.get("content-length", "0").strip() not in ("", "0"):
                self.transport.write(_status(400, "Bad Request") + _date())  # a GET has no body
                self.transport.close()
                return
            found = self.files.get(target.split("?", 1)[0])
            if method not in ("GET", "HEAD"):
                self.transport.write(_status(405, "Method Not Allowed") + _date())
            elif found is None:
                self.transport.write(_status(404, "Not Found") + _date())
            else:
                head, body = found
                self.transport.write(head + _date() + (b"" if method == "HEAD" else body))
            closing = headers.get("connection", "").strip() == "close"
            if closing or version != "HTTP/1.1":
                self.transport.close()
                return


async def _serve(root: Path) -> None:
    files = responses(root)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(files), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes our stdin
    server.close()


if __name__ == "__main__":
    asyncio.run(_serve(Path(sys.argv[1])))
