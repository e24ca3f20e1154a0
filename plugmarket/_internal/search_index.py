"""Search over trusted registry indexes: a table built once per index, a documented score.

The registry client builds one :class:`SearchTable` per set of trusted
indexes (rebuilt only when an index changes, never per search) and asks it
for ranked rows. The table keeps, per plugin, one lower-cased search text
(id, name, tags and summary) and all texts joined into one string, so that
finding the plugins that contain a word is a scan in C (``str.find``) plus a
binary search per hit, not a Python loop over every plugin.

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
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from typing import Any

from plugmarket._internal.registry_format import Index, IndexEntry
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
        entries: list[IndexEntry] = []
        labels: list[str] = []
        seen: set[str] = set()
        for label, index in sources:
            if len(sources) == 1:
                entries.extend(index.plugins.values())
                labels.extend([label] * len(index.plugins))
                break
            for plugin_id, entry in index.plugins.items():
                if plugin_id not in seen:
                    seen.add(plugin_id)
                    entries.append(entry)
                    labels.append(label)
        if len(sources) > 1:
            order = sorted(range(len(entries)), key=lambda row: entries[row].id)
            entries = [entries[row] for row in order]
            labels = [labels[row] for row in order]
        # Rows are in id order, so the row number breaks ties by id.
        self.entries = entries
        self.labels = labels
        self._ids = [e.id for e in entries]
        self._neg_downloads = [-e.downloads for e in entries]
        self._texts = [
            f"{e.id}{_FIELD}{e.name}{_FIELD}{' '.join(e.tags)}{_FIELD}{e.summary}".casefold()
            for e in entries
        ]
        self._joined = _SEP.join(self._texts)
        # starts[i] is where plugin i's text begins in the joined string; one sentinel at the end.
        self._starts = [0, *accumulate(len(t) + 1 for t in self._texts)]
        self._row_words: dict[int, str] = {}  # filled as rows are first scored
        self._orders: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.entries)

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
        keep = _filter(category, tags, capabilities, min_rating)
        want = offset + limit
        if not words:
            rows: Iterable[int] = self._order("downloads" if sort == "relevance" else sort)
            page: list[tuple[int, int]] = []
            for row in rows:
                if keep is None or keep(self.entries[row]):
                    page.append((row, 0))
                    if len(page) >= want:
                        break
            return page[offset:]
        matched = self._match(words)
        if keep is not None:
            matched = [row for row in matched if keep(self.entries[row])]
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
        ranked = []
        for row in rows:
            plugin_id = ids[row]
            score = 100 if whole == plugin_id else 0
            row_words = None
            for word, key in keys:
                if word == plugin_id:
                    score += 100
                elif plugin_id.startswith(word):
                    score += 50
                else:
                    if row_words is None:
                        row_words = cache.get(row) or words_of(row)
                    at = row_words.find(key)
                    if at < 0:
                        score += 1
                    else:
                        name_end = row_words.find(_FIELD)
                        if at < name_end:
                            score += 20
                        elif at < row_words.find(_FIELD, name_end + 1):
                            score += 10
                        else:
                            score += 5
            ranked.append((-score, neg_downloads[row], row))
        return ranked

    def _words_of(self, row: int) -> str:
        """`` name words \x1f tag words \x1f summary words ``, each word between spaces."""
        entry = self.entries[row]
        text = _FIELD.join(
            f" {' '.join(_WORD.findall(field.casefold()))} "
            for field in (entry.name, " ".join(entry.tags), entry.summary)
        )
        self._row_words[row] = text
        return text

    # --- orders for the other sorts -------------------------------------------

    def _order(self, sort: str) -> list[int]:
        """Every row in ``sort`` order (computed once per table and sort)."""
        order = self._orders.get(sort)
        if order is None:
            key = _SORT_KEYS[sort]
            entries = self.entries
            order = sorted(range(len(entries)), key=lambda row: key(entries[row]))
            self._orders[sort] = order
        return order

    def _rank(self, sort: str) -> list[int]:
        """``rank[row]``: the row's position in ``sort`` order."""
        cached = self._orders.get(f"rank:{sort}")
        if cached is None:
            cached = [0] * len(self.entries)
            for position, row in enumerate(self._order(sort)):
                cached[row] = position
            self._orders[f"rank:{sort}"] = cached
        return cached


_SORT_KEYS: dict[str, Callable[[IndexEntry], tuple[Any, ...]]] = {
    "downloads": lambda e: (-e.downloads, e.id),
    "rating": lambda e: (
        e.rating is None,
        -(e.rating or 0.0),
        -e.ratings_count,
        -e.downloads,
        e.id,
    ),
    "updated": lambda e: (-e.updated.timestamp(), e.id),
    "name": lambda e: (e.name.casefold(), e.id),
}


def _filter(
    category: str | None,
    tags: Iterable[str],
    capabilities: Iterable[str] | None,
    min_rating: float | None,
) -> Callable[[IndexEntry], bool] | None:
    """One predicate for every filter given, or None when there is none."""
    wanted_tags = {t.casefold() for t in tags}
    cat = category.casefold() if category else None
    grants = None if capabilities is None else Grants(capabilities)
    if cat is None and not wanted_tags and grants is None and min_rating is None:
        return None

    def keep(entry: IndexEntry) -> bool:
        if cat is not None and cat not in {c.casefold() for c in entry.categories}:
            return False
        if wanted_tags and not wanted_tags <= {t.casefold() for t in entry.tags}:
            return False
        if min_rating is not None and (entry.rating is None or entry.rating < min_rating):
            return False
        return grants is None or _within(grants, entry.capabilities)

    return keep


def _within(grants: Grants, requested: Sequence[str]) -> bool:
    try:
        return not grants.missing(parse_capability(c) for c in requested)
    except ManifestError:  # a capability this plugmarket cannot read is never within grants
        return False
