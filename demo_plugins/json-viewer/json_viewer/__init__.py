"""JSON Viewer: an HTML display formatter showing dicts and lists as a collapsible tree.

Invariants: every key and scalar is escaped, so data can never inject markup;
output is bounded (at most :data:`MAX_ITEMS` items per container and
:data:`MAX_DEPTH` levels), and a container that contains itself is shown as
a marker instead of recursing.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugmarket.context import PluginContext

MAX_ITEMS = 200  # items shown per dict or list
MAX_DEPTH = 50  # levels shown before "…"
OPEN_DEPTH = 1  # levels shown unfolded
_STYLE = (
    "<style>.json-viewer details{margin-left:1.2em}"
    ".json-viewer summary{cursor:pointer}"
    ".json-viewer .k{color:#881391}.json-viewer .s{color:#c41a16}"
    ".json-viewer .n{color:#1c00cf}.json-viewer .c{color:#888}</style>"
)


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return f'<span class="s">{html.escape(repr(value))}</span>'
    if value is None or isinstance(value, bool | int | float):
        return f'<span class="n">{html.escape(repr(value))}</span>'
    return html.escape(repr(value))


def _node(value: object, label: str, depth: int, path: set[int]) -> str:
    if not isinstance(value, dict | list | tuple):
        return f"<div>{label}{_scalar(value)}</div>"
    if id(value) in path:
        return f'<div>{label}<span class="c">&lt;cycle&gt;</span></div>'
    if depth >= MAX_DEPTH:
        return f'<div>{label}<span class="c">…</span></div>'
    is_dict = isinstance(value, dict)
    opener, closer = ("{", "}") if is_dict else ("[", "]")
    count = len(value)
    noun = ("key" if is_dict else "item") + ("" if count == 1 else "s")
    if count == 0:
        return f"<div>{label}{opener}{closer}</div>"
    path.add(id(value))
    try:
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        children = []
        for key, child in items[:MAX_ITEMS]:
            shown = _scalar(key) if is_dict else html.escape(str(key))
            children.append(_node(child, f'<span class="k">{shown}</span>: ', depth + 1, path))
        if count > MAX_ITEMS:
            children.append(f'<div class="c">… {count - MAX_ITEMS} more</div>')
    finally:
        path.discard(id(value))
    state = " open" if depth < OPEN_DEPTH else ""
    summary = f'{label}{opener} <span class="c">{count} {noun}</span> {closer}'
    return f"<details{state}><summary>{summary}</summary>{''.join(children)}</details>"


def to_html(value: object) -> str:
    """``value`` (a dict or a list, nested as deep as you like) as a collapsible HTML tree."""
    return f'<div class="json-viewer">{_STYLE}{_node(value, "", 0, set())}</div>'


def activate(ctx: PluginContext) -> None:
    """Show dicts and lists as trees in the notebook."""
    ctx.register_formatter(dict, to_html)
    ctx.register_formatter(list, to_html)
