"""JSON Viewer 2.0 (beta): dicts and lists as a collapsible tree, with JSON paths.

Invariants: every key, scalar and path is escaped, so data can never inject
markup; output is bounded (``max_items`` items per container, :data:`MAX_DEPTH`
levels), and a container that contains itself is shown as a marker instead
of recursing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugmarket.context import PluginContext

MAX_ITEMS = 200  # default items shown per dict or list
MAX_DEPTH = 50  # levels shown before "…"
OPEN_DEPTH = 1  # default levels shown unfolded
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STYLE = (
    "<style>.json-viewer details{margin-left:1.2em}"
    ".json-viewer summary{cursor:pointer}"
    ".json-viewer .k{color:#881391}.json-viewer .s{color:#c41a16}"
    ".json-viewer .n{color:#1c00cf}.json-viewer .c{color:#888}</style>"
)


@dataclass(frozen=True)
class Options:
    """How much of a tree to show."""

    open_depth: int = OPEN_DEPTH
    max_items: int = MAX_ITEMS

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> Options:
        """Options from the plugin's settings; a missing or bad value keeps the default."""

        def number(name: str, default: int) -> int:
            value = config.get(name, default)
            return value if isinstance(value, int) and value >= 0 else default

        return cls(number("open_depth", OPEN_DEPTH), number("max_items", MAX_ITEMS) or MAX_ITEMS)


def json_path(parent: str, key: object) -> str:
    """The JSON path of ``key`` under ``parent``: ``$.name``, ``$["a b"]``, ``$[3]``."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{parent}[{key}]"
    text = str(key)
    if _IDENT.match(text):
        return f"{parent}.{text}"
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'{parent}["{quoted}"]'


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return f'<span class="s">{html.escape(repr(value))}</span>'
    if value is None or isinstance(value, bool | int | float):
        return f'<span class="n">{html.escape(repr(value))}</span>'
    return html.escape(repr(value))


class _Renderer:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.path: set[int] = set()

    def node(self, value: object, label: str, where: str, depth: int) -> str:
        if not isinstance(value, dict | list | tuple):
            return f"<div>{label}{_scalar(value)}</div>"
        if id(value) in self.path:
            return f'<div>{label}<span class="c">&lt;cycle&gt;</span></div>'
        if depth >= MAX_DEPTH:
            return f'<div>{label}<span class="c">…</span></div>'
        is_dict = isinstance(value, dict)
        opener, closer = ("{", "}") if is_dict else ("[", "]")
        count = len(value)
        noun = ("key" if is_dict else "item") + ("" if count == 1 else "s")
        if count == 0:
            return f"<div>{label}{opener}{closer}</div>"
        limit = self.options.max_items
        self.path.add(id(value))
        try:
            items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
            children = []
            for key, child in items[:limit]:
                child_where = json_path(where, key)
                shown = _scalar(key) if is_dict else html.escape(str(key))
                title = html.escape(child_where, quote=True)
                child_label = f'<span class="k" title="{title}">{shown}</span>: '
                children.append(self.node(child, child_label, child_where, depth + 1))
            if count > limit:
                children.append(f'<div class="c">… {count - limit} more</div>')
        finally:
            self.path.discard(id(value))
        state = " open" if depth < self.options.open_depth else ""
        summary = f'{label}{opener} <span class="c">{count} {noun}</span> {closer}'
        return f"<details{state}><summary>{summary}</summary>{''.join(children)}</details>"


def to_html(value: object, options: Options | None = None) -> str:
    """``value`` (a dict or a list, nested as deep as you like) as a collapsible HTML tree."""
    body = _Renderer(options or Options()).node(value, "", "$", 0)
    return f'<div class="json-viewer">{_STYLE}{body}</div>'


def activate(ctx: PluginContext) -> None:
    """Show dicts and lists as trees in the notebook."""
    options = Options.from_config(ctx.config)

    def render(value: object) -> str:
        return to_html(value, options)

    ctx.register_formatter(dict, render)
    ctx.register_formatter(list, render)
