"""Regex Tester: ``%%regex PATTERN [--flags aimsx]`` with sample text in the cell.

Shows a :class:`Matches` result: the text with each match highlighted (HTML,
every character escaped) and a :mod:`table_kit` table of matches and groups.
Invariants: at most :data:`MAX_MATCHES` matches are collected, and empty
matches advance like ``re.finditer`` does, so the listing is always finite.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import table_kit

if TYPE_CHECKING:
    from plugmarket.context import PluginContext

try:
    from IPython.core.error import UsageError
except ImportError:  # outside IPython
    UsageError = ValueError  # type: ignore[assignment,misc]

MAX_MATCHES = 1000
FLAGS = {"a": re.ASCII, "i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
USAGE = "usage: %%regex PATTERN [--flags aimsx]  (the cell holds the text to search)"


@dataclass(frozen=True)
class Matches:
    """The matches of ``pattern`` in ``text``."""

    pattern: re.Pattern[str]
    text: str
    matches: tuple[re.Match[str], ...]
    truncated: bool

    def table(self) -> table_kit.Table:
        """One row per match: number, span, the match and every group."""
        groups = [str(i + 1) for i in range(self.pattern.groups)]
        for name, number in self.pattern.groupindex.items():
            groups[number - 1] = name
        rows = [
            (n, f"{m.start()}-{m.end()}", m.group(0), *m.groups())
            for n, m in enumerate(self.matches, start=1)
        ]
        caption = f"{len(self.matches)}{'+' if self.truncated else ''} match(es)"
        return table_kit.table(rows, ["#", "span", "match", *groups], caption=caption)

    def highlighted(self) -> str:
        """The text as HTML with every match wrapped in ``<mark>``."""
        out: list[str] = []
        at = 0
        for m in self.matches:
            out.append(html.escape(self.text[at : m.start()]))
            out.append(f"<mark>{html.escape(m.group(0))}</mark>")
            at = m.end()
        out.append(html.escape(self.text[at:]))
        return "<pre>" + "".join(out) + "</pre>"

    def _repr_html_(self) -> str:
        return self.highlighted() + self.table().to_html()

    def __repr__(self) -> str:
        return self.table().to_text()


def search(pattern: str, text: str, flags: str = "") -> Matches:
    """Every match of ``pattern`` in ``text``.

    Raises:
        UsageError: an unknown flag, or a pattern that does not compile.
    """
    value = 0
    for letter in flags:
        if letter not in FLAGS:
            raise UsageError(f"unknown flag {letter!r}; the flags are {''.join(FLAGS)}")
        value |= FLAGS[letter]
    try:
        compiled = re.compile(pattern, value)
    except re.error as exc:
        raise UsageError(f"the pattern does not compile: {exc}") from None
    found: list[re.Match[str]] = []
    for m in compiled.finditer(text):
        if len(found) == MAX_MATCHES:
            return Matches(compiled, text, tuple(found), truncated=True)
        found.append(m)
    return Matches(compiled, text, tuple(found), truncated=False)


def parse_args(line: str) -> tuple[str, str]:
    """``PATTERN [--flags F]`` -> ``(pattern, flags)``; the pattern is taken verbatim.

    Raises:
        UsageError: no pattern.
    """
    pattern, flags = line.strip(), ""
    head, sep, tail = pattern.rpartition(" --flags ")
    if sep and tail.strip().isalpha():
        pattern, flags = head.strip(), tail.strip()
    if not pattern:
        raise UsageError(USAGE)
    return pattern, flags


def activate(ctx: PluginContext) -> None:
    """Register ``%%regex``."""

    def regex(line: str, cell: str) -> None:
        pattern, flags = parse_args(line)
        ctx.display(search(pattern, cell.rstrip("\n"), flags))

    ctx.register_magic(regex, "regex", kind="cell")
