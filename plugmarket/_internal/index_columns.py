"""The plugins of ``index.json`` (format 2) as checked columns: one list per field, in id order.

Format 2 writes the index's plugins as columns (``{"id": [...], "name": [...],
...}``, docs/registry-format.md, decision 0009) rather than one object per
plugin: a client parses a few long lists instead of tens of thousands of small
objects, and can check each column in a few passes that run in C.

Invariants:

- Every value of every column is checked here, once, when the index is decoded,
  exactly as strictly as format 1 checked each entry; what leaves this module
  is an :class:`IndexColumns` of tuples, never a dict or a list from the JSON.
- Two paths check the same rules. :func:`_bulk` checks whole columns at once
  (types by ``set(map(type, column))``, texts joined into one string for one
  regex search, each distinct capability and version once) and returns None
  whenever anything is unusual. :func:`_careful` then checks value by value
  and raises the :class:`~plugmarket.errors.RegistryError` naming the column,
  the row, the plugin and the value, or accepts what the bulk checks were too
  cautious for. The bulk path is at least as strict as the careful one, and
  both give equal results when both accept (tests/test_index_columns.py).
- Ids are strictly ascending, so an id listed twice (a duplicate key in
  format 1) is refused, and rows can be found by bisection or a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, islice
from operator import attrgetter, itemgetter, lt
from typing import TYPE_CHECKING, Any

from plugmarket._internal.json_fields import (
    BAD_TEXT,
    MAX_ITEMS,
    MAX_TEXT,
    Fields,
    capability_ok,
    channel_ok,
    version_ok,
)

if TYPE_CHECKING:
    from plugmarket._internal.registry_format import IndexEntry

__all__ = ["COLUMNS", "IndexColumns", "columns_json", "decode_columns"]

#: The columns of ``plugins`` in ``index.json``; every one is required.
COLUMNS = frozenset(
    {
        "id",
        "name",
        "summary",
        "latest",
        "categories",
        "tags",
        "rating",
        "ratings_count",
        "downloads",
        "capabilities",
        "updated",
        "detail_sha256",
        "detail_size",
    }
)
_LISTS = tuple(sorted(COLUMNS - {"latest"}))  # the columns that are plain lists
_ID_CHARS = b"abcdefghijklmnopqrstuvwxyz0123456789-"
_HEX_CHARS = b"0123456789abcdef"
_STR: frozenset[type] = frozenset({str})
_LIST: frozenset[type] = frozenset({list})
_INT: frozenset[type] = frozenset({int})  # bool is its own type: never a count
_VERSION_OR_NONE: frozenset[type] = frozenset({str, type(None)})
_NUMBER_OR_NONE: frozenset[type] = frozenset({int, float, type(None)})
#: A careful check: (``plugins.<column>[<row>]``, `` (<plugin id>)``, value) -> the value.
Check = Callable[[str, str, Any], Any]


@dataclass(frozen=True)
class IndexColumns:
    """The plugins of one index, one tuple per field, row ``i`` being the ``i``-th id.

    ``latest`` holds ``(channel, versions)`` pairs, channels sorted, where
    ``versions[i]`` is the newest version offered to plugin ``i`` on that
    channel (None: none). ``detail_sha256`` and ``detail_size`` pin
    ``plugins/<id>.json``. The rows of ``categories``, ``tags`` and
    ``capabilities`` are lists, those the JSON parser made (copying 30,000 of
    them into tuples costs a garbage collection); nothing holds them but these
    columns, nothing changes them, and entries get tuples.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    summaries: tuple[str, ...]
    latest: tuple[tuple[str, tuple[str | None, ...]], ...]
    categories: tuple[list[str], ...]
    tags: tuple[list[str], ...]
    ratings: tuple[float | None, ...]
    ratings_counts: tuple[int, ...]
    downloads: tuple[int, ...]
    capabilities: tuple[list[str], ...]
    updated: tuple[datetime, ...]
    detail_sha256: tuple[str, ...]
    detail_sizes: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def latest_of(self, row: int) -> dict[str, str]:
        """Plugin ``row``'s channel -> newest version, channels sorted."""
        return {ch: v for ch, versions in self.latest if (v := versions[row]) is not None}

    @classmethod
    def from_entries(cls, entries: Mapping[str, IndexEntry]) -> IndexColumns:
        """The columns of typed entries (an index built in memory), sorted by id.

        Raises:
            ValueError: an entry's detail URL is not ``plugins/<id>.json``, the
                only place format 2 can pin (a bug in the caller).
        """
        ids = sorted(entries)
        rows = [entries[pid] for pid in ids]
        for pid, entry in zip(ids, rows, strict=True):
            if entry.detail.url != f"plugins/{pid}.json":
                raise ValueError(
                    f"{pid}: detail url {entry.detail.url!r} is not plugins/{pid}.json"
                )
        channels = sorted({ch for entry in rows for ch in entry.latest})
        return cls(
            ids=tuple(ids),
            names=tuple(e.name for e in rows),
            summaries=tuple(e.summary for e in rows),
            latest=tuple((ch, tuple(e.latest.get(ch) for e in rows)) for ch in channels),
            categories=tuple(list(e.categories) for e in rows),
            tags=tuple(list(e.tags) for e in rows),
            ratings=tuple(None if e.rating is None else float(e.rating) for e in rows),
            ratings_counts=tuple(e.ratings_count for e in rows),
            downloads=tuple(e.downloads for e in rows),
            capabilities=tuple(list(e.capabilities) for e in rows),
            updated=tuple(e.updated.astimezone(UTC) for e in rows),
            detail_sha256=tuple(e.detail.sha256 for e in rows),
            detail_sizes=tuple(e.detail.size for e in rows),
        )


def columns_json(columns: IndexColumns, format_time: Callable[[datetime], str]) -> dict[str, Any]:
    """The ``plugins`` object of ``index.json`` for ``columns`` (format 2)."""
    return {
        "id": list(columns.ids),
        "name": list(columns.names),
        "summary": list(columns.summaries),
        "latest": {ch: list(versions) for ch, versions in columns.latest},
        "categories": [list(x) for x in columns.categories],
        "tags": [list(x) for x in columns.tags],
        "rating": list(columns.ratings),
        "ratings_count": list(columns.ratings_counts),
        "downloads": list(columns.downloads),
        "capabilities": [list(x) for x in columns.capabilities],
        "updated": [format_time(t) for t in columns.updated],
        "detail_sha256": list(columns.detail_sha256),
        "detail_size": list(columns.detail_sizes),
    }


def decode_columns(f: Fields, value: object) -> IndexColumns:
    """Check the ``plugins`` object of a format-2 index and return its columns.

    Raises:
        RegistryError: a column is missing, unknown, of the wrong length, or
            holds a value that is not what the format allows; the message
            names the column, the row and the plugin.
    """
    obj = f.obj("plugins", value, COLUMNS)
    return _bulk(obj) or _careful(f, obj)


# --------------------------------------------------------------------------- bulk checks


def _types(values: Iterable[object]) -> set[type]:
    return set(map(type, values))


def _bulk(obj: dict[str, Any]) -> IndexColumns | None:
    """The columns if every bulk check passes, else None (the careful path decides)."""
    ids, latest = obj["id"], obj["latest"]
    if type(ids) is not list or not ids or type(latest) is not dict or len(latest) > MAX_ITEMS:
        return None
    n = len(ids)
    channels = sorted(latest)
    if not all(
        type(c) is list and len(c) == n for c in chain(map(obj.get, _LISTS), latest.values())
    ):
        return None
    nested = [obj["categories"], obj["tags"], obj["capabilities"]]
    if not (_types(ids) <= _STR and all(_types(c) <= _LIST for c in nested)):
        return None
    if max(map(len, chain.from_iterable(nested))) > MAX_ITEMS:
        return None
    cats, tags, caps = (list(chain.from_iterable(c)) for c in nested)
    texts = (obj["name"], obj["summary"], cats, tags)
    if not all(_types(t) <= _STR for t in (*texts, caps)):
        return None
    if max(map(len, chain(*texts)), default=0) > MAX_TEXT or BAD_TEXT.search(
        "\n".join(chain(*texts))
    ):
        return None
    if not all(map(capability_ok, set(caps))) or not _ids_ok(ids):
        return None
    counts = [obj["ratings_count"], obj["downloads"], obj["detail_size"]]
    if not all(_types(c) <= _INT and min(c) >= 0 for c in counts):
        return None
    ratings = _ratings(obj["rating"])
    shas = obj["detail_sha256"]
    if ratings is None or not (_types(shas) <= _STR and _hex64(shas)):
        return None
    versions = [latest[ch] for ch in channels]
    if not all(map(channel_ok, channels)) or not all(
        _types(v) <= _VERSION_OR_NONE for v in versions
    ):
        return None
    offered = set(chain.from_iterable(versions))
    offered.discard(None)
    if not all(map(version_ok, offered)):
        return None
    updated = _times(obj["updated"])
    if updated is None:
        return None
    return IndexColumns(
        ids=tuple(ids),
        names=tuple(obj["name"]),
        summaries=tuple(obj["summary"]),
        latest=tuple(zip(channels, map(tuple, versions), strict=True)),
        categories=tuple(nested[0]),
        tags=tuple(nested[1]),
        ratings=tuple(ratings),
        ratings_counts=tuple(counts[0]),
        downloads=tuple(counts[1]),
        capabilities=tuple(nested[2]),
        updated=tuple(updated),
        detail_sha256=tuple(shas),
        detail_sizes=tuple(counts[2]),
    )


def _ids_ok(ids: list[str]) -> bool:
    """Plugin ids (1-64 of ``a-z 0-9 -``, not starting with ``-``), strictly ascending."""
    lengths = set(map(len, ids))
    if min(lengths) < 1 or max(lengths) > 64 or "-" in set(map(itemgetter(0), ids)):
        return False
    if not all(map(lt, ids, islice(ids, 1, None))):
        return False
    joined = "".join(ids)
    return joined.isascii() and not joined.encode("ascii").translate(None, _ID_CHARS)


def _hex64(shas: list[str]) -> bool:
    """Every value is 64 lower-case hex digits."""
    if set(map(len, shas)) != {64}:
        return False
    joined = "".join(shas)
    return joined.isascii() and not joined.encode("ascii").translate(None, _HEX_CHARS)


def _ratings(ratings: list[Any]) -> list[float | None] | None:
    """Ratings as floats (None: not rated), or None if one is not a number from 0 to 5."""
    kinds = _types(ratings)
    if not kinds <= _NUMBER_OR_NONE:
        return None
    rated = [r for r in ratings if r is not None]
    if rated and not (min(rated) >= 0 and max(rated) <= 5):
        return None
    if int in kinds:
        return [None if r is None else float(r) for r in ratings]
    return ratings


def _times(values: list[Any]) -> list[datetime] | None:
    """UTC times, or None unless every value is ISO 8601 text in UTC."""
    if not _types(values) <= _STR:
        return None
    try:
        times = list(map(datetime.fromisoformat, values))
    except ValueError:
        return None
    # fromisoformat gives the UTC singleton for 'Z' and '+00:00'; other zones go the careful way.
    return times if set(map(attrgetter("tzinfo"), times)) == {UTC} else None


# --------------------------------------------------------------------------- careful checks


def _careful(f: Fields, obj: dict[str, Any]) -> IndexColumns:
    """Check every value in turn; raise at the first that is wrong, naming it."""
    raw_ids = obj["id"]
    if not isinstance(raw_ids, list):
        f.fail("plugins.id", type(raw_ids).__name__, "a list of plugin ids")
    ids: list[str] = []
    for row, value in enumerate(raw_ids):
        pid = f.plugin_id(f"plugins.id[{row}]", value)
        if ids and pid <= ids[-1]:
            f.fail(
                f"plugins.id[{row}]", pid, f"ids in ascending order, each once (after {ids[-1]!r})"
            )
        ids.append(pid)
    n = len(ids)

    def column(name: str, raw: object, check: Check) -> tuple[Any, ...]:
        if not isinstance(raw, list) or len(raw) != n:
            shown = f"a list of {len(raw)}" if isinstance(raw, list) else type(raw).__name__
            f.fail(f"plugins.{name}", shown, f"a list of {n} values, one per plugin id")
        return tuple(
            check(f"plugins.{name}[{row}]", f" ({ids[row]})", v) for row, v in enumerate(raw)
        )

    def one(check: Callable[[str, Any], Any]) -> Check:
        return lambda at, plugin, value: check(at + plugin, value)

    def each(check: Callable[[str, Any], str], what: str) -> Check:
        def checked(at: str, plugin: str, value: Any) -> list[str]:
            if not isinstance(value, list) or len(value) > MAX_ITEMS:
                f.fail(at + plugin, value, f"a list of at most {MAX_ITEMS} {what}")
            return [check(f"{at}[{i}]{plugin}", v) for i, v in enumerate(value)]

        return checked

    def capability(where: str, value: Any) -> str:
        if not isinstance(value, str) or not capability_ok(value):
            f.fail(where, value, "a capability such as 'display' or 'net:api.example.com'")
        return value

    def rating(where: str, value: Any) -> float | None:
        return None if value is None else f.number(where, value, 0.0, 5.0)

    def version(where: str, value: Any) -> str | None:
        return None if value is None else f.version_text(where, value)

    raw_latest = obj["latest"]
    if not isinstance(raw_latest, dict) or len(raw_latest) > MAX_ITEMS:
        f.fail("plugins.latest", raw_latest, "an object of channel -> a list of versions")
    latest = tuple(
        (f.channel("plugins.latest key", ch), column(f"latest.{ch}", raw_latest[ch], one(version)))
        for ch in sorted(raw_latest)
    )
    return IndexColumns(
        ids=tuple(ids),
        names=column("name", obj["name"], one(f.text)),
        summaries=column("summary", obj["summary"], one(f.text)),
        latest=latest,
        categories=column("categories", obj["categories"], each(f.text, "strings")),
        tags=column("tags", obj["tags"], each(f.text, "strings")),
        ratings=column("rating", obj["rating"], one(rating)),
        ratings_counts=column("ratings_count", obj["ratings_count"], one(f.integer)),
        downloads=column("downloads", obj["downloads"], one(f.integer)),
        capabilities=column("capabilities", obj["capabilities"], each(capability, "capabilities")),
        updated=column("updated", obj["updated"], one(f.time)),
        detail_sha256=column("detail_sha256", obj["detail_sha256"], one(f.sha256)),
        detail_sizes=column("detail_size", obj["detail_size"], one(f.integer)),
    )
