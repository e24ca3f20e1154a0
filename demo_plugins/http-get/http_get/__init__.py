"""HTTP GET: ``%http_get URL [--text] [--header NAME:VALUE ...]``.

Every request goes through ``ctx.http``, the client plugmarket limits to the
plugin's ``net`` grants (redirects included): a host that was not granted is
refused before any connection is made. Invariants: the body is streamed and
cut off at :data:`MAX_BYTES`; a JSON body is parsed strictly (no ``NaN``); a
failed request is one line, not a traceback.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from plugmarket.context import PluginContext

try:
    from IPython.core.error import UsageError
except ImportError:  # outside IPython
    UsageError = ValueError  # type: ignore[assignment,misc]

MAX_BYTES = 10 * 1024 * 1024  # bytes of one response body
USAGE = "usage: %http_get URL [--text] [--header NAME:VALUE ...]"


def parse_args(line: str) -> tuple[str, bool, dict[str, str]]:
    """``URL [--text] [--header NAME:VALUE ...]`` -> ``(url, as_text, headers)``.

    Raises:
        UsageError: the line is anything else, or the URL is not http(s).
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc}; {USAGE}") from None
    url = ""
    as_text = False
    headers: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--text":
            as_text = True
        elif word in ("--header", "-H"):
            name, colon, value = (words[i + 1] if i + 1 < len(words) else "").partition(":")
            if not colon or not name.strip():
                raise UsageError(f"--header takes NAME:VALUE; {USAGE}")
            headers[name.strip()] = value.strip()
            i += 1
        elif not url and not word.startswith("-"):
            url = word
        else:
            raise UsageError(f"unexpected {word!r}; {USAGE}")
        i += 1
    if not url.startswith(("https://", "http://")):
        raise UsageError(f"give a full http(s) URL; {USAGE}")
    return url, as_text, headers


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def read_body(response: httpx.Response) -> bytes:
    """The response body, streamed and refused beyond :data:`MAX_BYTES`.

    Raises:
        UsageError: the body is larger than the cap.
    """
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BYTES:
            raise UsageError(f"{response.url}: the body is larger than {MAX_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def http_get(client: httpx.Client, line: str) -> object:
    """Fetch the URL on ``line``; print the status; return parsed JSON, or text.

    Raises:
        UsageError: a bad line, a network failure, or a body too large.
        CapabilityDenied: the URL's host (or a redirect's) was not granted.
    """
    import httpx  # the client's own exceptions

    url, as_text, headers = parse_args(line)
    try:
        with client.stream("GET", url, headers=headers) as response:
            body = read_body(response)
    except httpx.HTTPError as exc:
        raise UsageError(f"GET {url} failed: {exc}") from None
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    print(f"{response.status_code} {response.reason_phrase}  {kind or 'no content type'}")
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if not as_text and (kind == "application/json" or kind.endswith("+json")):
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            print("(the body is not valid JSON; returning it as text)")
    return text


def activate(ctx: PluginContext) -> None:
    """Register ``%http_get``."""

    def http_get_magic(line: str) -> object:
        return http_get(ctx.http, line)

    ctx.register_magic(http_get_magic, "http_get")
