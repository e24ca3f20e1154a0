"""A real HTTP server on 127.0.0.1 for tests: serves a folder, counts requests,
answers conditional requests, and stages faults a real server can have.

Use the ``http_server`` fixture (tests/conftest.py)::

    def test_x(http_server, tmp_path):
        (tmp_path / "a.txt").write_text("hi")
        server = http_server(tmp_path)
        httpx.get(server.url("a.txt"))
        assert server.count("/a.txt") == 1

Faults are routes: ``server.route("/p", fault)`` where ``fault`` is one of
the functions below (``redirect_to``, ``drop_connection``, ``endless``,
``trickle``, ``status``) or any callable taking the request handler.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.server
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[["_RequestHandler"], None]


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # answer small requests at once, as production servers do

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _handle(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        owner = self.server.owner
        with owner.lock:
            owner.requests.append((self.command, path, dict(self.headers)))
        route = owner.routes.get(path)
        if route is not None:
            route(self)
            return
        self._serve_file(path, head=head)

    def _serve_file(self, path: str, *, head: bool) -> None:
        owner = self.server.owner
        target = (owner.root / path.lstrip("/")).resolve()
        if owner.root not in target.parents or not target.is_file():
            self.send_error(404)
            return
        body = target.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        mtime = target.stat().st_mtime
        last_modified = email.utils.formatdate(mtime, usegmt=True)
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        not_modified = inm == etag if inm is not None else False
        if inm is None and ims is not None:
            parsed = email.utils.parsedate_to_datetime(ims)
            not_modified = int(mtime) <= int(parsed.timestamp())
        if not_modified:
            with owner.lock:
                owner.not_modified += 1
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if owner.etags:
            self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer

    # Open connections are tracked so that stop() also ends kept-alive ones:
    # a stopped server answers nothing, not even on a connection a client kept.
    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.owner.lock:
            self.owner.connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self.owner.lock:
            self.owner.connections.discard(request)
        super().shutdown_request(request)


class LoopbackServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 serving ``root``."""

    def __init__(self, root: Path, *, etags: bool = True) -> None:
        self.root = Path(root).resolve()
        self.etags = etags
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.not_modified = 0
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self._httpd = _Server(("127.0.0.1", 0), _RequestHandler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        return f"{self.origin}/{path.lstrip('/')}"

    def route(self, path: str, handler: Handler) -> None:
        """Answer ``path`` with ``handler``; a whole URL is the form a request sent
        through a proxy names (this server standing in for the proxy)."""
        self.routes[path if "://" in path else "/" + path.lstrip("/")] = handler

    def count(self, path: str | None = None) -> int:
        """How many requests were seen (for ``path`` only, if given)."""
        with self.lock:
            if path is None:
                return len(self.requests)
            return Counter(p for _, p, _ in self.requests)["/" + path.lstrip("/")]

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.not_modified = 0

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        with self.lock:
            open_connections = list(self.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)


# --- faults -----------------------------------------------------------------


def redirect_to(location: str, code: int = 302) -> Handler:
    def handler(h: _RequestHandler) -> None:
        h.send_response(code)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handler


def status(code: int, body: bytes = b"") -> Handler:
    def handler(h: _RequestHandler) -> None:
        h.send_response(code)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handler


def drop_connection(after: bytes = b"") -> Handler:
    """Promise a long body, send ``after`` (maybe nothing), then close the socket."""

    def handler(h: _RequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(after) + 10_000))
        h.end_headers()
        h.wfile.write(after)
        h.wfile.flush()
        h.close_connection = True
        h.connection.close()

    return handler


def endless(chunk: bytes = b"x" * 65536, *, limit: int = 2 * 1024**3) -> Handler:
    """Stream without a length until the client hangs up (or ``limit`` bytes)."""

    def handler(h: _RequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        sent = 0
        try:
            while sent < limit:
                h.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            return

    return handler


def trickle(
    body: bytes, *, every: float = 0.2, size: int = 1, stop: threading.Event | None = None
) -> Handler:
    """Send ``size`` bytes of ``body`` each ``every`` seconds (a slow-retrieval attack)."""

    def handler(h: _RequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            for i in range(0, len(body), size):
                if stop is not None and stop.is_set():
                    return
                h.wfile.write(body[i : i + size])
                h.wfile.flush()
                time.sleep(every)  # the fault itself: a server that trickles
        except OSError:
            return

    return handler
