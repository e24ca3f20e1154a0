"""Project pages of a simple package index (PEP 503 HTML, PEP 691 JSON) for tests, and a
route that serves them with their content type on the loopback server.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.httpserver import Handler


@dataclass
class Link:
    """One file on a project page."""

    href: str  # relative or absolute; no fragment
    sha256: str | None
    yanked: bool = False
    requires_python: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.href.rsplit("/", 1)[-1]


def html_page(links: Iterable[Link]) -> bytes:
    """A PEP 503 page: hashes as ``#sha256=`` fragments, PEP 592 ``data-yanked``."""
    rows = []
    for link in links:
        href = link.href + (f"#sha256={link.sha256}" if link.sha256 else "")
        attrs = f' href="{html.escape(href)}"'
        if link.requires_python:
            attrs += f' data-requires-python="{html.escape(link.requires_python)}"'
        if link.yanked:
            attrs += ' data-yanked=""'
        rows.append(f"    <a{attrs}>{html.escape(link.filename)}</a><br/>")
    return (
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
        "</head><body>\n" + "\n".join(rows) + "\n</body></html>\n"
    ).encode()


def json_page(name: str, links: Iterable[Link]) -> bytes:
    """A PEP 691 page."""
    files = []
    for link in links:
        entry: dict[str, Any] = {
            "filename": link.filename,
            "url": link.href,
            "hashes": {"sha256": link.sha256} if link.sha256 else {},
        }
        if link.yanked:
            entry["yanked"] = "broken release"
        if link.requires_python:
            entry["requires-python"] = link.requires_python
        entry.update(link.extra)
        files.append(entry)
    return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()


def serve(body: bytes, content_type: str) -> Handler:
    """A route answering every GET with ``body`` and ``content_type``."""

    def handler(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handler
