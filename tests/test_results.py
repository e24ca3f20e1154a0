"""Search results and the installed set render as text and as escaped HTML."""

from __future__ import annotations

from pathlib import Path

from plugmarket._internal.installed import InstalledPlugin
from plugmarket.registry import RegistryClient
from plugmarket.results import InstalledList, SearchResults
from plugmarket.settings import Settings


def test_search_results_from_the_demo_registry_render(home: Path) -> None:
    client = RegistryClient(Settings(home=home, offline=True))
    try:
        hits = SearchResults(client.search("csv"), query="csv")
    finally:
        client.close()
    assert "csv-preview" in [h.id for h in hits]
    first = repr(hits).splitlines()[0]
    assert first.startswith(f"{hits[0].id} {hits[0].version}") and first.endswith("[demo]")
    page = hits._repr_html_()
    assert "<td>csv-preview</td>" in page and page.count("<tr>") == len(hits) + 1
    assert repr(SearchResults([], query="zzz")) == "no plugins match 'zzz'"


def test_installed_list_renders_sorted_with_state_and_grants() -> None:
    listed = InstalledList(
        [
            InstalledPlugin("table-kit", "2.1.0", "b" * 64, "table_kit", explicit=False),
            InstalledPlugin(
                "csv-preview", "1.0.0", "a" * 64, "csv_preview", grants=("display",), enabled=False
            ),
        ],
        generation=4,
    )
    assert [p.id for p in listed] == ["csv-preview", "table-kit"]
    assert repr(listed).splitlines() == [
        "generation 4: 2 plugin(s)",
        "  csv-preview 1.0.0 (disabled) [display]",
        "  table-kit 2.1.0 (enabled, dependency)",
    ]
    page = InstalledList(
        [InstalledPlugin("x", "1", "c" * 64, "x", grants=("fs.read:~/<b>",))]
    )._repr_html_()
    assert "fs.read:~/&lt;b&gt;" in page and "<b>generation 0</b>" in page
