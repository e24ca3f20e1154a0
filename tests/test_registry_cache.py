"""The registry client's caches: the disk cache's units, then TTL, revalidation, offline
mode, stale-if-error and damaged cache files against a real loopback server."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from plugmarket._internal import durable
from plugmarket._internal.http_cache import DiskCache, atomic_write, cache_folder
from plugmarket.errors import ConsentRequired, OfflineError, PlugmarketError, RegistryError
from plugmarket.marketplace import Marketplace
from plugmarket.registry import RegistryClient, StaleDataWarning
from plugmarket.settings import RegistryConfig, Settings, from_env, shown_url
from tests.support.httpserver import LoopbackServer, status
from tests.support.registry import Clients, Clock, TestRegistry

Serve = Callable[..., LoopbackServer]


def test_entry_round_trips_with_validators_and_extra(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.put(
        "index.json",
        b'{"a": 1}',
        url="http://r/index.json",
        fetched=100.5,
        etag='"abc"',
        last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
        extra={"signature": "c2ln"},
    )
    entry = DiskCache(tmp_path).get("index.json")
    assert entry is not None
    assert entry.body == b'{"a": 1}'
    assert entry.fetched == 100.5
    assert entry.extra == {"signature": "c2ln"}
    assert entry.conditional_headers() == {
        "If-None-Match": '"abc"',
        "If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT",
    }


def test_touch_renews_the_fetch_time_and_keeps_the_body(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    entry = cache.put("index.json", b"body", url="u", fetched=1.0, etag='"e"')
    body_before = (tmp_path / "index.json").stat().st_mtime_ns
    cache.touch("index.json", entry, fetched=50.0)
    again = cache.get("index.json")
    assert again is not None and again.fetched == 50.0 and again.body == b"body"
    assert again.etag == '"e"'
    assert (tmp_path / "index.json").stat().st_mtime_ns == body_before


def test_truncated_body_is_reported_missing_and_removed(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.put("index.json", b"0123456789", url="u", fetched=1.0)
    (tmp_path / "index.json").write_bytes(b"01234")
    assert cache.get("index.json") is None
    assert not (tmp_path / "index.json").exists()
    assert not (tmp_path / "index.json.meta").exists()


def test_corrupted_body_of_the_same_size_is_reported_missing(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.put("index.json", b"0123456789", url="u", fetched=1.0)
    (tmp_path / "index.json").write_bytes(b"0123456780")
    assert cache.get("index.json") is None


def test_sidecar_from_another_write_is_not_trusted(tmp_path: Path) -> None:
    # A crash between the body write and the sidecar write leaves this pair.
    cache = DiskCache(tmp_path)
    cache.put("index.json", b"old", url="u", fetched=1.0)
    atomic_write(tmp_path / "index.json", b"new body")
    assert cache.get("index.json") is None


def test_garbage_sidecar_is_not_trusted(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.put("index.json", b"x", url="u", fetched=1.0)
    (tmp_path / "index.json.meta").write_text("{not json")
    assert cache.get("index.json") is None
    meta = {"v": 1, "url": "u", "sha256": hashlib.sha256(b"x").hexdigest(), "size": 1}
    cache.put("index.json", b"x", url="u", fetched=1.0)
    (tmp_path / "index.json.meta").write_text(json.dumps({**meta, "fetched": "soon"}))
    assert cache.get("index.json") is None


def test_blob_is_checked_against_its_name(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    body = b'{"id": "x"}'
    digest = hashlib.sha256(body).hexdigest()
    cache.put_blob(digest, body)
    assert cache.get_blob(digest) == body
    (tmp_path / "blobs" / digest).write_bytes(b'{"id": "y"}')
    assert cache.get_blob(digest) is None
    assert not (tmp_path / "blobs" / digest).exists()


def test_state_survives_and_damage_reads_as_empty(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    assert cache.read_state() == {}
    cache.write_state({"version": 7})
    assert DiskCache(tmp_path).read_state() == {"version": 7}
    (tmp_path / "state.json").write_text("[1, 2")
    assert cache.read_state() == {}


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    atomic_write(tmp_path / "sub" / "f", b"1")
    atomic_write(tmp_path / "sub" / "f", b"2")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f"]
    assert (tmp_path / "sub" / "f").read_bytes() == b"2"


def test_each_registry_url_gets_its_own_folder(tmp_path: Path) -> None:
    a = cache_folder(tmp_path, "https://a.example/reg")
    b = cache_folder(tmp_path, "https://b.example/reg")
    assert a != b
    assert a.parent == tmp_path / "cache" / "registry"
    assert len(a.name) == 16


# --- the client's caching against a real server --------------------------------------

TTL = 300.0
SEARCHES = ["csv", "table", "sql magic", "", "timer", "tables", "csv-tools", "render", "cell", "x"]
IDS = ["csv-tools", "table-lib", "sql-magic", "cell-timer"]

# A second process sharing the home: 100 searches and 20 details at a given time.
SECOND_PROCESS = """
import json, sys
from datetime import datetime
from pathlib import Path
from plugmarket.registry import RegistryClient
from plugmarket.settings import RegistryConfig, Settings
args = json.loads(sys.argv[1])
settings = Settings(
    home=Path(args["home"]),
    cache_ttl=args["ttl"],
    offline=args.get("offline", False),
    registries=(RegistryConfig(url=args["url"], name="test", trusted_keys=(args["pub"],)),),
)
now = datetime.fromisoformat(args["now"])
with RegistryClient(settings, now=lambda: now) as client:
    hits = sum(len(client.search(q)) for q in args["searches"] * 10)
    details = [client.details(i).id for i in args["ids"] * 5]
print(hits, len(details))
"""


def second_process(
    registry: TestRegistry, server: LoopbackServer, home: Path, clock: Clock, **extra: object
) -> str:
    args = {
        "home": str(home),
        "url": server.url(),
        "pub": str(registry.pub),
        "now": clock().isoformat(),
        "ttl": TTL,
        "searches": SEARCHES,
        "ids": IDS,
        **extra,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    out = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return out.stdout.strip()


def warm(client: RegistryClient) -> int:
    """100 searches and 20 details; the number of hits seen."""
    hits = sum(len(client.search(q)) for q in SEARCHES * 10)
    for plugin_id in IDS * 5:
        assert client.details(plugin_id).id == plugin_id
    return hits


def cache_dir(home: Path) -> Path:
    [folder] = (home / "cache" / "registry").iterdir()
    return folder


def test_within_the_ttl_no_request_is_made_also_by_a_second_process(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    client = clients(registry.settings(home, served.url(), cache_ttl=TTL), clock)
    hits = warm(client)
    # The first pass fetched the index, its signature and each detail file once.
    assert served.count() == 2 + len(IDS)
    served.reset_counts()
    clock.advance(TTL / 2)
    assert warm(client) == hits
    assert served.count() == 0
    assert second_process(registry, served, home, clock) == f"{hits} 20"
    assert served.count() == 0


def test_after_the_ttl_only_conditional_requests_answered_304(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    client = clients(registry.settings(home, served.url(), cache_ttl=TTL), clock)
    hits = warm(client)
    served.reset_counts()
    clock.advance(TTL + 1)
    assert warm(client) == hits
    [(method, path, headers)] = served.requests
    assert (method, path) == ("GET", "/index.json")
    assert headers["If-None-Match"].startswith('"')
    assert served.not_modified == 1
    # The 304 renewed the fetch time, on disk too: no request for another TTL,
    # from this process or a second one.
    served.reset_counts()
    clock.advance(TTL - 1)
    warm(client)
    assert second_process(registry, served, home, clock) == f"{hits} 20"
    assert served.count() == 0
    clock.advance(2)
    assert second_process(registry, served, home, clock) == f"{hits} 20"
    assert (served.count(), served.not_modified) == (1, 1)


def test_revalidation_with_last_modified_when_there_is_no_etag(
    registry: TestRegistry, http_server: Serve, home: Path, clients: Clients
) -> None:
    _published_an_hour_ago(registry.root)
    server = http_server(registry.root, etags=False)
    clock = Clock()
    client = clients(registry.settings(home, server.url(), cache_ttl=TTL), clock)
    client.search("")
    server.reset_counts()
    clock.advance(TTL + 1)
    client.search("")
    [(_, path, headers)] = server.requests
    assert path == "/index.json"
    assert "If-Modified-Since" in headers and "If-None-Match" not in headers
    assert server.not_modified == 1


def test_a_last_modified_in_the_seconds_of_its_date_is_not_trusted_to_revalidate(
    registry: TestRegistry, http_server: Serve, home: Path, clients: Clients
) -> None:
    # A static server dates files to the second: an index published twice within
    # one second has one Last-Modified, so "not modified" would keep the first.
    index = registry.root / "index.json"
    second = float(int(time.time()) + 2)  # not before the response's Date: the same second
    os.utime(index, (second, second))
    server = http_server(registry.root, etags=False)
    clock = Clock()
    client = clients(registry.settings(home, server.url(), cache_ttl=TTL), clock)
    assert client.search("json") == []
    registry.publish("json-viewer", "0.1.0", summary="Show JSON as a tree")
    os.utime(index, (second + 0.5, second + 0.5))  # changed again within that second
    server.reset_counts()
    clock.advance(TTL + 1)
    assert [h.id for h in client.search("json")] == ["json-viewer"]
    assert all("If-Modified-Since" not in headers for _, _, headers in server.requests)


def _published_an_hour_ago(root: Path) -> None:
    """Date every file of a registry folder an hour back, as a long-published one is."""
    then = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (then, then))


def test_a_changed_index_is_fetched_in_full_after_the_ttl(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    client = clients(registry.settings(home, served.url(), cache_ttl=TTL), clock)
    assert client.search("json") == []
    registry.publish("json-viewer", "0.1.0", summary="Show JSON as a tree")
    served.reset_counts()
    clock.advance(TTL + 1)
    assert [h.id for h in client.search("json")] == ["json-viewer"]
    assert [p for _, p, _ in served.requests] == ["/index.json", "/index.json.sig"]
    assert served.not_modified == 0
    assert DiskCache(cache_dir(home)).read_state()["version"] == registry.index().version


# --- offline -----------------------------------------------------------------------------


def test_offline_answers_from_disk_even_past_the_ttl(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    online = clients(registry.settings(home, served.url(), cache_ttl=TTL), clock)
    hits = online.search("csv")
    online.details("csv-tools")
    served.stop()
    clock.advance(20 * TTL)  # long past the TTL, well before the index expires
    offline = clients(registry.settings(home, served.url(), cache_ttl=TTL, offline=True), clock)
    assert offline.search("csv") == hits
    assert offline.details("csv-tools").id == "csv-tools"
    with pytest.raises(OfflineError, match=r"plugins/sql-magic\.json \(sql-magic\) is not cached"):
        offline.details("sql-magic")
    with pytest.raises(OfflineError, match="offline mode is on") as caught:
        offline.fetch_artifact("csv-tools", "1.1.0")
    assert caught.value.registry == "test"


def test_offline_from_the_environment_with_nothing_cached(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    settings = from_env(
        {
            "PLUGMARKET_HOME": str(home),
            "PLUGMARKET_REGISTRY": served.url(),
            "PLUGMARKET_TRUSTED_KEYS": str(registry.pub),
            "PLUGMARKET_OFFLINE": "1",
        }
    )
    with pytest.raises(OfflineError, match="no trusted copy is cached") as caught:
        clients(settings).search("")
    assert caught.value.file == "index.json"
    assert served.count() == 0


def test_offline_never_serves_an_expired_index(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    clients(registry.settings(home, served.url()), clock).search("")
    clock.advance(timedelta(days=31).total_seconds())
    offline = clients(registry.settings(home, served.url(), offline=True), clock)
    with pytest.raises(OfflineError, match="expired"):
        offline.search("")
    assert served.count() == 2  # the first fetch only


# --- stale-if-error --------------------------------------------------------------------------


def test_stale_if_error_when_the_server_is_down(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    client = clients(registry.settings(home, served.url(), cache_ttl=TTL), clock)
    hits = warm(client)
    served.stop()
    clock.advance(TTL + 1)
    with pytest.warns(StaleDataWarning, match="cannot fetch index.json") as caught:
        assert client.search("csv") == client.search("csv")
    assert len(caught) == 1  # not asked for again (nor warned about) within the TTL
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert warm(client) == hits
    # A second client sharing the home serves the disk copy the same way.
    other = clients(registry.settings(home, served.url(), cache_ttl=TTL), clock)
    with pytest.warns(StaleDataWarning, match="version 6"):
        assert other.details("csv-tools").id == "csv-tools"


def test_stale_if_error_on_a_server_error(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    client = clients(registry.settings(home, served.url(), cache_ttl=TTL), clock)
    hits = client.search("")
    served.route("/index.json", status(503))
    clock.advance(TTL + 1)
    with pytest.warns(StaleDataWarning, match="HTTP 503"):
        assert client.search("") == hits


def test_an_expired_copy_is_never_served_stale(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    client = clients(registry.settings(home, served.url(), cache_ttl=TTL), clock)
    client.search("")
    served.stop()
    clock.advance(timedelta(days=31).total_seconds())
    with pytest.raises(RegistryError, match=r"cannot fetch index\.json .* expired at"):
        client.search("")


def test_server_down_and_nothing_cached(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    served.stop()
    with pytest.raises(RegistryError, match="no trusted copy is cached") as caught:
        clients(registry.settings(home, served.url())).search("")
    assert isinstance(caught.value.__cause__, RegistryError)


# --- damaged cache files -----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_a_damaged_cached_index_is_refetched(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients, damage: str
) -> None:
    clock = Clock()
    hits = clients(registry.settings(home, served.url()), clock).search("")
    path = cache_dir(home) / "index.json"
    good = path.read_bytes()
    bad = good.replace(b"Preview", b"Pr3view") if damage == "corrupted" else good[: len(good) // 2]
    path.write_bytes(bad)
    served.reset_counts()
    # A second client sharing the home, within the TTL: the damage is found, not trusted.
    assert clients(registry.settings(home, served.url()), clock).search("") == hits
    [(_, first, headers), (_, second, _)] = served.requests
    assert (first, second) == ("/index.json", "/index.json.sig")
    assert "If-None-Match" not in headers  # a full fetch, not a revalidation
    assert path.read_bytes() == good


def test_a_damaged_cached_detail_is_refetched(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    clients(registry.settings(home, served.url()), clock).details("csv-tools")
    pin = registry.index().plugins["csv-tools"].detail
    blob = cache_dir(home) / "blobs" / pin.sha256
    blob.write_bytes(blob.read_bytes()[:-10])
    served.reset_counts()
    assert clients(registry.settings(home, served.url()), clock).details("csv-tools").versions
    assert served.count("/plugins/csv-tools.json") == 1
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == pin.sha256


def test_a_cached_index_that_fails_its_signature_is_not_trusted(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    clients(registry.settings(home, served.url()), clock).search("")
    cache = DiskCache(cache_dir(home))
    entry = cache.get("index.json")
    assert entry is not None
    # Consistent on disk (the sidecar matches), but not what the registry signed.
    forged = entry.body.replace(b"Preview CSV files", b"Install me please ")
    cache.put(
        "index.json",
        forged,
        url=entry.url,
        fetched=entry.fetched,
        etag=entry.etag,
        extra=dict(entry.extra),
    )
    served.reset_counts()
    hits = clients(registry.settings(home, served.url()), clock).search("csv")
    assert [h.summary for h in hits] == ["Preview CSV files as tables"]
    assert served.count("/index.json") == 1


def test_stale_if_error_when_the_server_times_out(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    clock = Clock()
    client = clients(registry.settings(home, served.url(), http_timeout=0.2), clock)
    hits = client.search("")
    release = threading.Event()
    served.route("/index.json", lambda handler: release.wait(10))  # accepts, never answers
    clock.advance(TTL + 1)
    try:
        with pytest.warns(StaleDataWarning, match="did not answer in time"):
            assert client.search("") == hits
    finally:
        release.set()


# --- the copies an install fetched, written while its commit waits for the disk ---------


def _offline_details(registry: TestRegistry, url: str, home: Path, plugin_id: str) -> str:
    """The plugin's newest version as an offline client of ``url`` on ``home`` reads it
    from the cache."""
    offline = RegistryClient(registry.settings(home, url, offline=True))
    try:
        return str(offline.details(plugin_id).versions[-1].version)
    finally:
        offline.close()


def test_an_install_writes_its_detail_copies_while_its_commit_waits_for_the_disk(
    registry: TestRegistry, served: LoopbackServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's copy is written at once, beside the trusted version it must stay in
    step with: another process on the home, offline, trusts it during the install."""
    events: list[str] = []
    real_put, real_blob = DiskCache.put, DiskCache.put_blob
    real_soon, real_outcome = durable.sync_soon, durable.outcome

    def put(self: DiskCache, name: str, body: bytes, **kwargs: Any) -> Any:
        events.append(name)
        return real_put(self, name, body, **kwargs)

    def put_blob(self: DiskCache, sha256: str, body: bytes) -> None:
        events.append("detail file")
        real_blob(self, sha256, body)

    def sync_soon(files: Any, folders: Any) -> Any:
        events.append("flush started")
        offline = RegistryClient(registry.settings(home, served.url(), offline=True))
        try:
            assert "cell-timer" in offline.ids()  # the index copy is trusted meanwhile
        finally:
            offline.close()
        return real_soon(files, folders)

    def outcome(future: Any) -> Any:
        events.append("flush waited for")
        return real_outcome(future)

    monkeypatch.setattr(DiskCache, "put", put)
    monkeypatch.setattr(DiskCache, "put_blob", put_blob)
    monkeypatch.setattr(durable, "sync_soon", sync_soon)
    monkeypatch.setattr(durable, "outcome", outcome)
    market = Marketplace(settings=registry.settings(home, served.url()), live=False)
    try:
        market.install("cell-timer", yes=True)
        seen = list(events)  # close() waits for the home's last fsync: not the commit's
    finally:
        market.close()
    assert seen == ["index.json", "flush started", "detail file", "flush waited for"]
    assert _offline_details(registry, served.url(), home, "cell-timer") == "0.1.0"


def test_the_copies_are_written_when_an_install_stops_to_ask_for_consent(
    registry: TestRegistry, served: LoopbackServer, home: Path
) -> None:
    market = Marketplace(settings=registry.settings(home, served.url()), live=False)
    try:
        with pytest.raises(ConsentRequired):
            market.install("cell-timer")
    finally:
        market.close()
    assert _offline_details(registry, served.url(), home, "cell-timer") == "0.1.0"


def test_a_copy_that_cannot_be_written_is_a_warning_and_the_install_goes_on(
    registry: TestRegistry,
    served: LoopbackServer,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def disk_full(self: DiskCache, sha256: str, body: bytes) -> None:  # a fault no disk here stages
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(DiskCache, "put_blob", disk_full)
    market = Marketplace(settings=registry.settings(home, served.url()), live=False)
    try:
        market.install("cell-timer", yes=True)
        assert [p.id for p in market.installed()] == ["cell-timer"]
    finally:
        market.close()
    [warning] = [r for r in caplog.records if "cache" in r.getMessage()]
    assert warning.levelname == "WARNING" and "fetched again next time" in warning.getMessage()
    assert os.strerror(errno.ENOSPC) in warning.getMessage()
    with pytest.raises(OfflineError):  # the detail file was not kept
        _offline_details(registry, served.url(), home, "cell-timer")


# --- credentials in a registry URL go to its server, and nowhere else ---------------------


def test_shown_url_drops_the_credentials_and_nothing_else() -> None:
    assert (
        shown_url("https://team:tok@example.org:8443/r/?x=1") == "https://example.org:8443/r/?x=1"
    )
    assert shown_url("https://token@[::1]/r/") == "https://[::1]/r/"
    for unchanged in ("https://example.org/r/", "/srv/registry", "file:///srv/r", "C:\\\\r"):
        assert shown_url(unchanged) == unchanged


def test_a_registry_token_is_kept_out_of_the_home_and_the_messages(
    registry: TestRegistry, served: LoopbackServer, home: Path
) -> None:
    secret = "s3cr3t-token"
    with_token = served.url().replace("http://", f"http://team:{secret}@")
    settings = Settings(
        home=home, registries=(RegistryConfig(with_token, trusted_keys=(str(registry.pub),)),)
    )
    market = Marketplace(settings=settings, live=False)
    try:
        market.install("cell-timer", yes=True)
        with pytest.raises(PlugmarketError) as missing:
            market.details("no-such-plugin")  # the message names the registry
    finally:
        market.close()
    assert secret not in str(missing.value) and served.url() in str(missing.value)
    leaks = [p for p in home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []  # not in the audit log, the generations or the registry cache
    # A new token is the same registry: its cache and trusted version are kept.
    assert cache_dir(home) == cache_folder(home, served.url())


def test_a_cache_write_makes_its_folder_and_skips_a_temporary_name_a_dead_process_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import itertools

    from plugmarket._internal import http_cache

    target = tmp_path / "cache" / "registry" / "blobs" / "body"
    atomic_write(target, b"first")  # the folders do not exist yet
    assert target.read_bytes() == b"first"
    assert target.stat().st_mode & 0o777 == 0o600  # private, as a registry's files may be
    # The name the next write would take, left behind by a process with this one's id.
    monkeypatch.setattr(http_cache, "_temp_numbers", itertools.count(7))
    taken = target.parent / f".body.{os.getpid()}.{threading.get_ident()}.7.tmp"
    taken.write_bytes(b"debris")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second" and taken.read_bytes() == b"debris"
    assert sorted(p.name for p in target.parent.iterdir()) == [taken.name, "body"]
