"""The search table works on columns: decoded and built indexes rank alike, merged indexes too."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType

from plugmarket._internal import registry_format as fmt
from plugmarket._internal.search_index import SearchTable
from tests.support.registry_states import NOW


def entry(pid: str, summary: str, downloads: int, **extra: object) -> fmt.IndexEntry:
    values: dict[str, object] = {
        "id": pid,
        "name": pid.replace("-", " ").title(),
        "summary": summary,
        "latest": MappingProxyType({"stable": "1.0"}),
        "categories": ("data",),
        "tags": ("csv",),
        "rating": None,
        "ratings_count": 0,
        "downloads": downloads,
        "capabilities": ("display",),
        "updated": NOW,
        "detail": fmt.Artifact(fmt.detail_path(pid), "0" * 64, 1),
        **extra,
    }
    return fmt.IndexEntry(**values)  # type: ignore[arg-type]


def index(*entries: fmt.IndexEntry) -> fmt.Index:
    plugins = MappingProxyType({e.id: e for e in entries})
    return fmt.Index(fmt.FORMAT, 1, NOW + timedelta(days=1), NOW, plugins)


MAIN = index(
    entry("csv-tools", "Read csv files", 10, rating=4.0, tags=("csv", "table")),
    entry("sql-magic", "Query csv with sql", 50, categories=("sql",), capabilities=("net:x.org",)),
    entry("plot-kit", "Charts", 5, rating=5.0, tags=("chart",), updated=NOW + timedelta(hours=1)),
)
MIRROR = index(
    entry("csv-tools", "An older copy", 999),
    entry("json-view", "Show json", 7, tags=("json",)),
)


def ranked(table: SearchTable, query: str = "", **filters: object) -> list[str]:
    return [table.entry(row).id for row, _ in table.search(query, **filters)]  # type: ignore[arg-type]


def test_a_decoded_index_and_the_index_it_came_from_search_alike() -> None:
    built = SearchTable([("main", MAIN)])
    decoded = SearchTable([("main", fmt.decode_index(fmt.encode_index(MAIN), registry="main"))])
    for query, filters in [
        ("csv", {}),
        ("", {"sort": "rating"}),
        ("", {"sort": "updated"}),
        ("", {"sort": "name"}),
        ("", {"category": "SQL"}),
        ("", {"tags": ["table"]}),
        ("", {"capabilities": ["display"]}),
        ("", {"min_rating": 4.5}),
    ]:
        assert ranked(built, query, **filters) == ranked(decoded, query, **filters), query
    assert ranked(decoded, "csv") == ["csv-tools", "sql-magic"]  # id prefix beats downloads
    assert ranked(decoded, "", min_rating=4.5) == ["plot-kit"]
    assert ranked(decoded, "", capabilities=["display"]) == ["csv-tools", "plot-kit"]


def test_merged_indexes_keep_the_first_registrys_row_for_a_shared_id() -> None:
    table = SearchTable([("main", MAIN), ("mirror", MIRROR)])
    assert len(table) == 4
    rows = {table.entry(row).id: row for row, _ in table.search("")}
    assert table.labels[rows["csv-tools"]] == "main"
    assert table.entry(rows["csv-tools"]).summary == "Read csv files"
    assert table.labels[rows["json-view"]] == "mirror"
    # The mirror's 999 downloads for csv-tools are not the ones ranked.
    assert ranked(table, "", sort="downloads") == [
        "sql-magic",
        "csv-tools",
        "json-view",
        "plot-kit",
    ]
    assert ranked(table, "json") == ["json-view"]
    assert ranked(table, "older") == []
