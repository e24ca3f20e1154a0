"""Find a plugin's wheel on a PEP 503 (HTML) or PEP 691 (JSON) simple package index.

One bounded fetch of the project page (``<index>/<normalized name>/``), then
pure decisions: :func:`parse_project_page` turns either format into a list of
:class:`IndexFile`, and :func:`choose_wheel` picks the highest version that
matches the requirement among the files that are wheels, pure Python
(``py3-none-any``), not yanked (PEP 592: unless pinned with ``==``) and made
for this Python (``Requires-Python``).

Invariants: every chosen file carries a sha256 from the index (a PEP 691
``hashes`` entry or a ``#sha256=`` fragment) or an error is raised; file URLs
are resolved against the page's final URL; an http(s) index cannot point at
``file:`` URLs; the index's own origin is allowed for its files.
"""

from __future__ import annotations

import json
import platform
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from plugmarket._internal.fetch import fetch, origin_of
from plugmarket.errors import IntegrityError, SourceError
from plugmarket.settings import shown_url

if TYPE_CHECKING:
    import httpx

    from plugmarket.settings import Settings

__all__ = ["ACCEPT", "FoundWheel", "IndexFile", "choose_wheel", "find_wheel", "parse_project_page"]

#: PEP 691 content negotiation: JSON preferred, HTML (PEP 503) accepted.
ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
_PURE = Tag("py3", "none", "any")
_MAX_LISTED = 20  # files named in a "nothing matches" message


@dataclass(frozen=True)
class IndexFile:
    """One file a project page lists."""

    filename: str
    url: str  # absolute, without the fragment
    sha256: str | None
    yanked: bool = False
    requires_python: str | None = None


@dataclass(frozen=True)
class FoundWheel:
    """The wheel to download, and how."""

    filename: str
    url: str
    sha256: str
    version: Version
    allowed_origins: tuple[str, ...]  # for fetch(): the settings' list plus the index


def find_wheel(
    requirement: str, index_url: str, settings: Settings, client: httpx.Client | None
) -> FoundWheel:
    """Fetch the project page of ``requirement`` on ``index_url`` and choose a wheel.

    Raises:
        SourceError: the page cannot be fetched or read, or no wheel fits (listing what exists).
        IntegrityError: the chosen file has no sha256 on the index.
    """
    req = Requirement(requirement)
    page_url = f"{index_url.rstrip('/')}/{canonicalize_name(req.name)}/"
    if urllib.parse.urlsplit(page_url).scheme == "file":
        page_url += "index.html"  # a static index in a folder
    page = fetch(
        page_url,
        client=client,
        max_bytes=settings.max_metadata_size,
        deadline=settings.download_deadline,
        allowed_origins=settings.allowed_origins,
        headers={"Accept": ACCEPT},
    )
    files = parse_project_page(page.body, page.headers.get("content-type", ""), page.url)
    chosen, version = choose_wheel(files, req, shown_url(page.url))
    page_scheme = urllib.parse.urlsplit(page.url).scheme
    if page_scheme != "file" and urllib.parse.urlsplit(chosen.url).scheme not in (
        "http",
        "https",
    ):
        raise SourceError(
            f"{shown_url(page.url)}: the index points {chosen.filename} at "
            f"{shown_url(chosen.url)}, which is not an http(s) URL",
            source=shown_url(page.url),
            hint="An index on the network may only link to files on the network.",
        )
    if chosen.sha256 is None:
        raise IntegrityError(
            f"{shown_url(chosen.url)}: the index gives no sha256 for {chosen.filename}, so it "
            "cannot be checked",
            subject=shown_url(chosen.url),
            expected="a sha256 from the index",
            actual="none",
            hint="Ask the index's admin to publish hashes (PEP 503 #sha256= or PEP 691 hashes).",
        )
    allowed = (*settings.allowed_origins, origin_of(page.url)) if settings.allowed_origins else ()
    return FoundWheel(chosen.filename, chosen.url, chosen.sha256, version, allowed)


def parse_project_page(body: bytes, content_type: str, page_url: str) -> list[IndexFile]:
    """The files on a PEP 691 JSON or PEP 503 HTML project page.

    The format follows the ``Content-Type``; without one, a body that starts
    with ``{`` is read as JSON.

    Raises:
        SourceError: the page is neither a valid JSON nor an HTML project page.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.endswith("json") or (not kind.endswith("html") and body.lstrip()[:1] == b"{"):
        return _parse_json(body, page_url)
    parser = _Anchors(page_url)
    parser.feed(body.decode("utf-8", errors="replace"))
    parser.close()
    return parser.files


def choose_wheel(
    files: Sequence[IndexFile], req: Requirement, where: str
) -> tuple[IndexFile, Version]:
    """The highest-version pure-Python wheel that satisfies ``req``.

    Raises:
        SourceError: none fits; the message lists the files and why each was passed over.
    """
    name = canonicalize_name(req.name)
    specs = list(req.specifier)
    pinned = len(specs) == 1 and (
        specs[0].operator == "===" or (specs[0].operator == "==" and "*" not in specs[0].version)
    )
    python = Version(platform.python_version())
    fits: dict[Version, list[tuple[tuple[int | str, ...], IndexFile]]] = {}
    seen: list[str] = []
    for f in files:
        why = _passed_over(f, name, pinned, python)
        try:
            _, version, build, _ = parse_wheel_filename(f.filename)
        except (InvalidWheelFilename, InvalidVersion):
            version = None
        if why is None and version is not None:
            fits.setdefault(version, []).append((tuple(build), f))
            why = "" if req.specifier.contains(version, prereleases=True) else "no match"
        if why != "other project":
            seen.append(f"{f.filename} ({why})" if why else f.filename)
    matching = list(req.specifier.filter(sorted(fits)))
    if matching:
        best = max(matching)
        return max(fits[best], key=lambda item: item[0])[1], best
    listed = "; ".join(seen[:_MAX_LISTED]) + (" ..." if len(seen) > _MAX_LISTED else "")
    raise SourceError(
        f"{where}: no pure-Python wheel of {name} matches {str(req)!r}; the index has: "
        f"{listed or 'no files'}",
        source=where,
        hint="Relax the version specifier, or publish a py3-none-any wheel of that version.",
    )


def _passed_over(f: IndexFile, name: str, pinned: bool, python: Version) -> str | None:
    """Why ``f`` cannot be chosen whatever the version, or None."""
    if not f.filename.endswith(".whl"):
        return "not a wheel"
    try:
        wheel_name, _, _, tags = parse_wheel_filename(f.filename)
    except (InvalidWheelFilename, InvalidVersion):
        return "not a valid wheel name"
    if wheel_name != name:
        return "other project"
    if _PURE not in tags:
        return "compiled or not for Python 3"
    if f.yanked and not pinned:
        return "yanked"
    if f.requires_python:
        try:
            if not SpecifierSet(f.requires_python).contains(python, prereleases=True):
                return f"requires Python {f.requires_python}"
        except InvalidSpecifier:
            pass  # as pip does: an unreadable Requires-Python does not exclude the file
    return None


def _split_hash(url: str, page_url: str) -> tuple[str, str | None]:
    absolute, fragment = urllib.parse.urldefrag(urllib.parse.urljoin(page_url, url))
    algo, _, value = fragment.partition("=")
    return absolute, value.lower() if algo == "sha256" and value else None


def _parse_json(body: bytes, page_url: str) -> list[IndexFile]:
    def bad(what: str) -> SourceError:
        return SourceError(
            f"{shown_url(page_url)}: not a PEP 691 project page ({what})",
            source=shown_url(page_url),
            hint="Check that the index URL is a simple index, such as https://host/simple/.",
        )

    def no_constants(value: str) -> Any:
        raise bad(f"it contains {value}")

    try:
        data = json.loads(body, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad(f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise bad("no 'files' list")
    api = str((data.get("meta") or {}).get("api-version", "1.0"))
    if api.split(".", 1)[0] != "1":
        raise bad(f"api-version {api}, where 1.x is understood")
    out: list[IndexFile] = []
    for item in data["files"]:
        if not isinstance(item, dict):
            raise bad("a file entry is not an object")
        filename, url, hashes = item.get("filename"), item.get("url"), item.get("hashes", {})
        if not isinstance(filename, str) or not isinstance(url, str):
            raise bad("a file entry has no filename or url")
        absolute, from_fragment = _split_hash(url, page_url)
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        rp = item.get("requires-python")
        out.append(
            IndexFile(
                filename=filename,
                url=absolute,
                sha256=sha.lower() if isinstance(sha, str) else from_fragment,
                yanked=bool(item.get("yanked", False)),
                requires_python=rp if isinstance(rp, str) else None,
            )
        )
    return out


class _Anchors(HTMLParser):
    """The ``<a href>`` links of a PEP 503 page, with their data attributes."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.files: list[IndexFile] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        href = found.get("href")
        if tag == "base" and href:
            self.base = urllib.parse.urljoin(self.base, href)
        if tag != "a" or not href:
            return
        absolute, sha = _split_hash(href, self.base)
        filename = urllib.parse.unquote(urllib.parse.urlsplit(absolute).path.rsplit("/", 1)[-1])
        self.files.append(
            IndexFile(
                filename=filename,
                url=absolute,
                sha256=sha,
                yanked="data-yanked" in found,
                requires_python=found.get("data-requires-python"),
            )
        )
