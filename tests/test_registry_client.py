"""The registry client against real registries: served over loopback HTTP, and as folders."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from plugmarket._internal.registry_format import decode_index
from plugmarket.errors import PlugmarketError, RegistryError
from plugmarket.registry import PluginDetails, RegistryClient, SearchHit
from plugmarket.settings import Settings, demo_registry_path, from_env
from tests.support.httpserver import LoopbackServer
from tests.support.registry import Clients, Clock, TestRegistry, make_registry

Serve = Callable[..., LoopbackServer]
MakeClient = Callable[..., RegistryClient]


@pytest.fixture
def client_for(clients: Clients) -> MakeClient:
    def make(
        registry: TestRegistry, home: Path, url: str | None = None, **changes: object
    ) -> RegistryClient:
        return clients(registry.settings(home, url, **changes))

    return make


def ids(hits: list[SearchHit]) -> list[str]:
    return [h.id for h in hits]


# --- search -------------------------------------------------------------------


def test_search_ranks_exact_id_then_id_prefix_then_tags(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    client = client_for(registry, home, served.url())
    assert ids(client.search("csv-tools")) == ["csv-tools"]
    # id prefix (table-lib) beats a tag (csv-tools carries the tag "table")
    assert ids(client.search("table")) == ["table-lib", "csv-tools"]
    # every word must occur somewhere
    assert ids(client.search("sqlite magic")) == ["sql-magic"]
    assert client.search("nothing-like-this") == []


def test_search_relevance_ties_go_to_downloads(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    downloads = {"csv-tools": 5, "table-lib": 50, "sql-magic": 500, "cell-timer": 0}
    registry.rewrite(lambda e: replace(e, downloads=downloads[e.id]))
    client = client_for(registry, home, served.url())
    assert ids(client.search("")) == ["sql-magic", "table-lib", "csv-tools", "cell-timer"]
    # "e" is only inside words of every plugin: the same (lowest) score, so downloads decide
    assert ids(client.search("e")) == ["sql-magic", "table-lib", "csv-tools", "cell-timer"]


def test_search_filters_category_tags_capabilities_rating(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    ratings = {"csv-tools": 4.5, "table-lib": 3.0, "sql-magic": None, "cell-timer": 5.0}
    registry.rewrite(lambda e: replace(e, rating=ratings[e.id]))
    client = client_for(registry, home, served.url())
    assert ids(client.search(category="data")) == ["csv-tools", "sql-magic"]
    assert ids(client.search(category="DATA", tags=["sqlite"])) == ["sql-magic"]
    assert ids(client.search(tags="table", sort="name")) == ["csv-tools", "table-lib"]
    assert sorted(ids(client.search(capabilities=["display"]))) == ["csv-tools", "table-lib"]
    assert ids(client.search(min_rating=4.0, sort="rating")) == ["cell-timer", "csv-tools"]


def test_search_sorts_and_pages(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    client = client_for(registry, home, served.url())
    by_name = ids(client.search(sort="name"))
    assert by_name == ["cell-timer", "csv-tools", "sql-magic", "table-lib"]
    # cell-timer was published last, so it was updated last
    assert ids(client.search(sort="updated"))[0] == "cell-timer"
    assert ids(client.search(sort="name", limit=2, offset=1)) == by_name[1:3]
    assert ids(client.search("table", limit=1, offset=1)) == ["csv-tools"]
    with pytest.raises(PlugmarketError, match="sort must be one of"):
        client.search(sort="stars")
    with pytest.raises(PlugmarketError, match="must not be negative"):
        client.search(limit=-1)


def test_search_hit_shows_latest_version_on_the_users_channel(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    stable = client_for(registry, home, served.url())
    [hit] = stable.search("csv-tools")
    # the whole query is the id (100), "csv" starts it (50), "tools" is a name word (20)
    assert (hit.version, hit.registry, hit.score) == ("1.1.0", "test", 170)
    assert repr(hit) == "<SearchHit csv-tools 1.1.0 [test]: Preview CSV files as tables>"
    assert "<b>csv-tools</b>" in hit._repr_html_()
    beta = client_for(registry, home / "beta", served.url(), channel="beta")
    assert beta.search("csv-tools")[0].version == "2.0.0b1"


# --- details, versions, artifacts ------------------------------------------------


def test_details_versions_and_artifact_over_http(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    client = client_for(registry, home, served.url())
    details = client.details("csv-tools")
    assert isinstance(details, PluginDetails)
    assert (details.id, details.registry, details.also_in) == ("csv-tools", "test", ())
    assert details.summary == "Preview CSV files as tables"
    assert [str(v.version) for v in client.versions("csv-tools")] == ["2.0.0b1", "1.1.0", "1.0.0"]
    assert "csv-tools 1.1.0 [test]: 3 version(s)" in repr(details)
    data = client.fetch_artifact("csv-tools", "1.1.0")
    assert data == registry.artifact_path("csv-tools", "1.1.0").read_bytes()
    pin = details.detail.get("1.1.0")
    assert pin is not None and hashlib.sha256(data).hexdigest() == pin.artifact.sha256
    assert served.count("/artifacts/csv-tools/csv-tools-1.1.0.zip") == 1


def test_yanked_versions_are_listed_and_marked(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    registry.yank("csv-tools", "1.0.0", "corrupts quoted fields")
    client = client_for(registry, home, served.url())
    old = client.versions("csv-tools")[-1]
    assert (str(old.version), old.yanked, old.yanked_reason) == (
        "1.0.0",
        True,
        "corrupts quoted fields",
    )


def test_unknown_ids_and_versions_say_what_exists(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    client = client_for(registry, home, served.url())
    with pytest.raises(RegistryError, match="no plugin 'nope' in the registries 'test'"):
        client.details("nope")
    with pytest.raises(RegistryError, match=r"no version '9\.9' \(it has 2\.0\.0b1, 1\.1\.0"):
        client.fetch_artifact("csv-tools", "9.9")
    with pytest.raises(RegistryError, match="no version 'latest'"):
        client.fetch_artifact("csv-tools", "latest")


# --- where registries live -------------------------------------------------------


def test_folder_registry_needs_no_network_and_no_disk_cache(
    registry: TestRegistry, home: Path, client_for: MakeClient
) -> None:
    client = client_for(registry, home)
    assert ids(client.search("timer")) == ["cell-timer"]
    assert client.details("sql-magic").detail.versions[0].requires[0].name == "table-lib"
    assert client.fetch_artifact("sql-magic", "1.0.0") == (
        registry.artifact_path("sql-magic", "1.0.0").read_bytes()
    )
    assert client._client is None  # no HTTP client was ever made
    # only the rollback state is kept for a folder; its files are read in place
    [folder] = (home / "cache" / "registry").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["state.json"]


def test_file_url_and_index_json_url_are_the_same_registry(
    registry: TestRegistry, served: LoopbackServer, home: Path, client_for: MakeClient
) -> None:
    file_client = client_for(registry, home, registry.root.as_uri())
    assert ids(file_client.search("csv")) == ["csv-tools"]
    http_client = client_for(registry, home / "h", served.url("index.json"))
    assert ids(http_client.search("csv")) == ["csv-tools"]
    assert served.count("/index.json") == 1


def test_unsupported_registry_url_is_refused(
    registry: TestRegistry, home: Path, client_for: MakeClient
) -> None:
    with pytest.raises(RegistryError, match="the scheme 'ftp' is not supported"):
        client_for(registry, home, "ftp://example.org/registry")


def test_environment_points_the_client_at_one_registry(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    settings = from_env(
        {
            "PLUGMARKET_HOME": str(home),
            "PLUGMARKET_REGISTRY": served.url(),
            "PLUGMARKET_TRUSTED_KEYS": str(registry.pub),
        }
    )
    client = clients(settings)
    assert ids(client.search("sql")) == ["sql-magic"]


# --- several registries -------------------------------------------------------------


def test_higher_priority_registry_wins_and_the_other_is_named(
    tmp_path: Path, http_server: Serve, home: Path, clients: Clients
) -> None:
    main = make_registry(tmp_path, "main")
    mirror = make_registry(tmp_path, "mirror")
    mirror.publish("json-viewer", "0.2.0", summary="Show JSON as a tree")
    main_server, mirror_server = http_server(main.root), http_server(mirror.root)
    settings = Settings(
        home=home,
        registries=(
            mirror.config(mirror_server.url(), name="mirror", priority=0),
            main.config(main_server.url(), name="main", priority=10),
        ),
    )
    client = clients(settings)
    hits = {h.id: h.registry for h in client.search("")}
    assert hits == {
        "csv-tools": "main",
        "table-lib": "main",
        "sql-magic": "main",
        "cell-timer": "main",
        "json-viewer": "mirror",
    }
    details = client.details("csv-tools")
    assert (details.registry, details.also_in) == ("main", ("mirror",))
    assert client.details("json-viewer").registry == "mirror"
    client.fetch_artifact("csv-tools", "1.1.0")
    assert main_server.count("/artifacts/csv-tools/csv-tools-1.1.0.zip") == 1
    assert mirror_server.count("/artifacts/csv-tools/csv-tools-1.1.0.zip") == 0


def test_registries_are_cached_apart(
    tmp_path: Path, http_server: Serve, home: Path, clients: Clients
) -> None:
    one, two = make_registry(tmp_path, "one"), make_registry(tmp_path, "two")
    s1, s2 = http_server(one.root), http_server(two.root)
    settings = Settings(
        home=home,
        registries=(one.config(s1.url(), name="one"), two.config(s2.url(), name="two")),
    )
    clients(settings).search("")
    folders = list((home / "cache" / "registry").iterdir())
    assert len(folders) == 2
    assert all((f / "index.json").is_file() for f in folders)


def test_new_versions_appear_after_the_ttl(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    client = clients(registry.settings(home, served.url(), cache_ttl=60), clock)
    assert ids(client.search("json")) == []
    registry.publish("json-viewer", "0.1.0", summary="Show JSON as a collapsible tree")
    clock.advance(30)
    assert ids(client.search("json")) == []  # still within the TTL
    clock.advance(31)
    assert ids(client.search("json")) == ["json-viewer"]
    assert [str(v.version) for v in client.versions("json-viewer")] == ["0.1.0"]


def test_an_index_close_to_expiry_is_refetched_before_the_ttl_ends(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    index = registry.rewrite(expires=registry.now + timedelta(minutes=5))
    clock = Clock(index.generated + timedelta(minutes=4))
    client = clients(registry.settings(home, served.url(), cache_ttl=3600), clock)
    client.search("")
    registry.renew()
    clock.advance(120)  # the first index has expired, well within the TTL
    assert client.search("csv")[0].id == "csv-tools"
    assert served.count("/index.json") == 2


def test_the_demo_registry_in_the_package_works_with_no_network(
    home: Path, clients: Clients
) -> None:
    demo = decode_index((demo_registry_path() / "index.json").read_bytes(), registry="demo")
    client = clients(Settings(home=home), Clock(demo.generated + timedelta(days=1)))
    hits = client.search("")
    assert len(hits) >= 8 and {h.registry for h in hits} == {"demo"}
    details = client.details(hits[0].id)
    latest = details.detail.latest()
    assert latest is not None
    data = client.fetch_artifact(details.id, str(latest.version))
    assert hashlib.sha256(data).hexdigest() == latest.artifact.sha256
    assert client._client is None  # the signature was checked, and nothing went online


def test_ids_are_every_plugin_in_the_trusted_indexes(tmp_path: Path) -> None:
    from plugmarket.settings import demo_registry_path

    with RegistryClient(Settings(home=tmp_path)) as client:
        ids = client.ids()
    shipped = {p.stem for p in (demo_registry_path() / "plugins").glob("*.json")}
    assert ids == shipped and "csv-preview" in ids


def test_a_trusted_version_another_process_wrote_is_flushed_by_this_ones_next_batch(
    registry: TestRegistry,
    served: LoopbackServer,
    home: Path,
    client_for: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plugmarket._internal import durable

    first = client_for(registry, home, served.url())
    first.search("csv")  # writes state.json, its fsync owed to this process's next batch
    durable.sync_all([], [])  # ... which the other process never ran: drop what is owed
    flushed: list[Path] = []
    real_file = durable.fsync_file
    monkeypatch.setattr(durable, "fsync_file", lambda p: (flushed.append(p), real_file(p)))
    second = client_for(registry, home, served.url(), cache_ttl=0)
    second.search("csv")  # the same index version: nothing to write, but not yet durable
    durable.sync_all([], [])
    assert [p.name for p in flushed] == ["state.json"]
