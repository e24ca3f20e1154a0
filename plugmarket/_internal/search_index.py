"""Search over trusted registry indexes: a table built once per index, a documented score.

The registry client builds one :class:`SearchTable` per set of trusted
indexes (rebuilt only when an index changes, never per search) and asks it
for ranked rows. The table works on the indexes' columns
(:class:`~plugmarket._internal.index_columns.IndexColumns`), so building it
makes no per-plugin object; an :class:`IndexEntry` is built only for a row
that is shown. It keeps, per plugin, one lower-cased search text (id, name,
tags and summary) and all texts joined into one string, so that finding the
plugins that contain a word is a scan in C (``str.find``) plus a binary search
per hit, not a Python loop over every plugin.

Matching: the query is split into words (letters and digits); a plugin
matches when every word occurs in its id, name, tags or summary.

Relevance: each query word scores its best match in the plugin, and the
plugin's score is the sum:

===================================  ======
the word is the id                     100
the id starts with the word             50
the word is a word of the name          20
the word is a tag (or a tag's word)     10
the word is a word of the summary        5
the word occurs inside any of those      1
===================================  ======

plus 100 when the whole query, its words joined by ``-``, is the id (so
``csv tools`` finds ``csv-tools`` first). Ties go to more downloads, then to
the id in alphabetical order. An empty query matches everything, ranked by
downloads.

Several indexes are searched as one: an id carried by more than one registry
appears once, from the first (highest-priority) index that carries it.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from itertools import accumulate
from typing import Any

from plugmarket._internal.index_columns import IndexColumns
from plugmarket._internal.registry_format import Index, IndexEntry, index_columns
from plugmarket.capabilities import Grants, parse_capability
from plugmarket.errors import ManifestError

__all__ = ["SORTS", "SearchTable", "query_words"]

SORTS = ("relevance", "downloads", "rating", "updated", "name")

_WORD = re.compile(r"[^\W_]+")
_SEP = "\x00"  # between two plugins' texts in the joined string
_FIELD = "\x1f"  # between the fields of one plugin's text
_SAMPLE = 1 << 16  # characters sampled to guess how common a word is


def query_words(query: str) -> list[str]:
    """The words of a search query, lower-cased, in order, without repeats."""
    return list(dict.fromkeys(_WORD.findall(query.casefold())))


class SearchTable:
    """The plugins of one or more indexes, prepared for fast search.

    Args:
        sources: ``(registry label, index)`` pairs, highest priority first.
    """

    def __init__(self, sources: Sequence[tuple[str, Index]]) -> None:
        parts = [(label, index.plugins, index_columns(index.plugins)) for label, index in sources]
        if len(parts) == 1:
            label, plugins, cols = parts[0]
            self.labels: list[str] = [label] * len(cols)
            self._plugins: list[Mapping[str, IndexEntry]] = [plugins]
            self._source: list[int] | None = None  # row -> part; None: all from the only one
            self._cols: _Columns = cols
        else:
            # One row per id, from the first (highest-priority) index carrying it, in id order.
            first: dict[str, tuple[int, int]] = {}
            for part, (_, _, cols) in enumerate(parts):
                for row, plugin_id in enumerate(cols.ids):
                    first.setdefault(plugin_id, (part, row))
            picks = [first[plugin_id] for plugin_id in sorted(first)]
            self.labels = [parts[part][0] for part, _ in picks]
            self._plugins = [plugins for _, plugins, _ in parts]
            self._source = [part for part, _ in picks]
            self._cols = _Merged([cols for _, _, cols in parts], picks)
        table = self._cols
        # Rows are in id order, so the row number breaks ties by id.
        self._ids = table.ids
        self._neg_downloads = [-d for d in table.downloads]
        self._texts = [
            f"{i}{_FIELD}{n}{_FIELD}{' '.join(t)}{_FIELD}{s}".casefold()
            for i, n, t, s in zip(table.ids, table.names, table.tags, table.summaries, strict=True)
        ]
        self._joined = _SEP.join(self._texts)
        # starts[i] is where plugin i's text begins in the joined string; one sentinel at the end.
        self._starts = [0, *accumulate(len(t) + 1 for t in self._texts)]
        self._row_words: dict[int, tuple[str, str, str]] = {}  # filled as rows are scored
        self._orders: dict[str, list[int]] = {}

    def entry(self, row: int) -> IndexEntry:
        """The index entry of ``row`` (built on first use)."""
        part = 0 if self._source is None else self._source[row]
        return self._plugins[part][self._ids[row]]

    def __len__(self) -> int:
        return len(self._ids)

    def search(
        self,
        query: str = "",
        *,
        category: str | None = None,
        tags: Iterable[str] = (),
        capabilities: Iterable[str] | None = None,
        min_rating: float | None = None,
        sort: str = "relevance",
        limit: int = 50,
        offset: int = 0,
    ) -> list[tuple[int, int]]:
        """Rank the plugins matching ``query`` and the filters.

        Returns:
            ``(row, score)`` pairs for the requested page, best first; ``row``
            indexes :attr:`entries` and :attr:`labels`.
        """
        words = query_words(query)
        keep = _filter(self._cols, category, tags, capabilities, min_rating)
        want = offset + limit
        if not words:
            rows: Iterable[int] = self._order("downloads" if sort == "relevance" else sort)
            page: list[tuple[int, int]] = []
            for row in rows:
                if keep is None or keep(row):
                    page.append((row, 0))
                    if len(page) >= want:
                        break
            return page[offset:]
        matched = self._match(words)
        if keep is not None:
            matched = [row for row in matched if keep(row)]
        if sort == "relevance":
            ranked = self._scored(matched, words)
            top = heapq.nsmallest(want, ranked) if len(ranked) > 4 * want else sorted(ranked)
            return [(row, -neg_score) for neg_score, _, row in top[offset:want]]
        rank = self._rank(sort)
        if len(matched) > 4 * want:
            rows = heapq.nsmallest(want, matched, key=rank.__getitem__)
        else:
            rows = sorted(matched, key=rank.__getitem__)
        return [(row, 0) for row in rows[offset:want]]

    # --- matching and scoring -------------------------------------------------

    def _match(self, words: list[str]) -> list[int]:
        """Rows whose text contains every word (driven by the longest word)."""
        driver = max(words, key=len)
        texts = self._texts
        sample = self._joined[:_SAMPLE]
        common = sample.count(driver) * max(1, len(self._joined) // _SAMPLE) > len(texts) // 8
        if common or not texts:
            rows = [i for i, text in enumerate(texts) if driver in text]
        else:
            rows = []
            find, starts = self._joined.find, self._starts
            pos = find(driver)
            while pos != -1:
                row = bisect_right(starts, pos) - 1
                rows.append(row)
                pos = find(driver, starts[row + 1])
        for word in words:
            if word != driver:
                rows = [row for row in rows if word in texts[row]]
        return rows

    def _scored(self, rows: list[int], words: list[str]) -> list[tuple[int, int, int]]:
        """``(-score, -downloads, row)`` for each row: sorting these ranks by relevance."""
        whole = "-".join(words)
        ids, neg_downloads, cache, words_of = (
            self._ids,
            self._neg_downloads,
            self._row_words,
            self._words_of,
        )
        keys = [(word, f" {word} ") for word in words]
        ranked: list[tuple[int, int, int]] = []
        append = ranked.append
        for row in rows:
            plugin_id = ids[row]
            score = 100 if whole == plugin_id else 0
            fields = None
            for word, key in keys:
                if word == plugin_id:
                    score += 100
                elif plugin_id.startswith(word):
                    score += 50
                else:
                    if fields is None:
                        fields = cache.get(row) or words_of(row)
                    name, tags, summary = fields
                    score += (
                        20 if key in name else 10 if key in tags else 5 if key in summary else 1
                    )
            append((-score, neg_downloads[row], row))
        return ranked

    def _words_of(self, row: int) -> tuple[str, str, str]:
        """The words of the name, tags and summary, each string `` word word ... ``."""
        cols = self._cols
        fields = (
            f" {' '.join(_WORD.findall(cols.names[row].casefold()))} ",
            f" {' '.join(_WORD.findall(' '.join(cols.tags[row]).casefold()))} ",
            f" {' '.join(_WORD.findall(cols.summaries[row].casefold()))} ",
        )
        self._row_words[row] = fields
        return fields

    # --- orders for the other sorts -------------------------------------------

    def _order(self, sort: str) -> list[int]:
        """Every row in ``sort`` order (computed once per table and sort)."""
        order = self._orders.get(sort)
        if order is None:
            order = sorted(range(len(self._ids)), key=_sort_key(self._cols, sort))
            self._orders[sort] = order
        return order

    def _rank(self, sort: str) -> list[int]:
        """``rank[row]``: the row's position in ``sort`` order."""
        cached = self._orders.get(f"rank:{sort}")
        if cached is None:
            cached = [0] * len(self._ids)
            for position, row in enumerate(self._order(sort)):
                cached[row] = position
            self._orders[f"rank:{sort}"] = cached
        return cached


def _sort_key(cols: _Columns, sort: str) -> Callable[[int], tuple[Any, ...]]:
    """The key that sorts rows for ``sort`` (ties broken by id)."""
    ids = cols.ids
    if sort == "downloads":
        downloads = cols.downloads
        return lambda row: (-downloads[row], ids[row])
    if sort == "rating":
        ratings, counts, downloads = cols.ratings, cols.ratings_counts, cols.downloads
        return lambda row: (
            ratings[row] is None,
            -(ratings[row] or 0.0),
            -counts[row],
            -downloads[row],
            ids[row],
        )
    if sort == "updated":
        updated = cols.updated
        return lambda row: (-updated[row].timestamp(), ids[row])
    names = cols.names
    return lambda row: (names[row].casefold(), ids[row])


def _filter(
    cols: _Columns,
    category: str | None,
    tags: Iterable[str],
    capabilities: Iterable[str] | None,
    min_rating: float | None,
) -> Callable[[int], bool] | None:
    """One predicate on rows for every filter given, or None when there is none."""
    wanted_tags = {t.casefold() for t in tags}
    cat = category.casefold() if category else None
    grants = None if capabilities is None else Grants(capabilities)
    if cat is None and not wanted_tags and grants is None and min_rating is None:
        return None

    def keep(row: int) -> bool:
        if cat is not None and cat not in {c.casefold() for c in cols.categories[row]}:
            return False
        if wanted_tags and not wanted_tags <= {t.casefold() for t in cols.tags[row]}:
            return False
        rating = cols.ratings[row]
        if min_rating is not None and (rating is None or rating < min_rating):
            return False
        return grants is None or _within(grants, cols.capabilities[row])

    return keep


class _Merged:
    """The columns of several indexes, one row per pick ``(index, row)``: read as one index."""

    def __init__(self, parts: list[IndexColumns], picks: list[tuple[int, int]]) -> None:
        def gather(name: str) -> list[Any]:
            columns = [getattr(part, name) for part in parts]
            return [columns[part][row] for part, row in picks]

        self.ids: Sequence[str] = gather("ids")
        self.names: Sequence[str] = gather("names")
        self.summaries: Sequence[str] = gather("summaries")
        self.tags: Sequence[Sequence[str]] = gather("tags")
        self.categories: Sequence[Sequence[str]] = gather("categories")
        self.capabilities: Sequence[Sequence[str]] = gather("capabilities")
        self.ratings: Sequence[float | None] = gather("ratings")
        self.ratings_counts: Sequence[int] = gather("ratings_counts")
        self.downloads: Sequence[int] = gather("downloads")
        self.updated: Sequence[datetime] = gather("updated")


_Columns = IndexColumns | _Merged


def _within(grants: Grants, requested: Sequence[str]) -> bool:
    try:
        return not grants.missing(parse_capability(c) for c in requested)
    except ManifestError:  # a capability this plugmarket cannot read is never within grants
        return False
