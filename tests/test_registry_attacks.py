"""Attacks on a registry, each staged against a real HTTP server on 127.0.0.1.

Every test is named after the attack. The client must refuse what the attack
serves, raise an error naming the registry, the file, what was expected and
what was found, and keep its last trusted state (nothing from the attack is
used or cached).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from plugmarket._internal.registry_format import PluginDetail
from plugmarket.errors import IntegrityError, RegistryError, SignatureError
from tests.support.httpserver import LoopbackServer, endless, trickle
from tests.support.registry import Clients, Clock, TestRegistry

Serve = Callable[..., LoopbackServer]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cached_blobs(home: Path) -> set[str]:
    return {p.name for p in home.glob("cache/registry/*/blobs/*")}


# --- the index ------------------------------------------------------------------


def test_rollback_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    old = registry.files()  # index version 6, validly signed
    registry.publish("json-viewer", "0.1.0", summary="Show JSON as a tree")  # version 7
    clock = Clock()
    settings = registry.settings(home, served.url(), cache_ttl=60)
    client = clients(settings, clock)
    assert "json-viewer" in {h.id for h in client.search("")}
    registry.restore(old)  # the server replays the older state
    clock.advance(61)
    with pytest.raises(RegistryError, match="version 6, expected at least 7") as caught:
        client.search("")
    assert (caught.value.registry, caught.value.file) == ("test", "index.json")
    assert "rollback" in str(caught.value)
    # A new process sharing the home refuses it too, even with the cached index gone:
    # the last trusted version is kept on disk.
    [folder] = (home / "cache" / "registry").iterdir()
    (folder / "index.json").unlink()
    with pytest.raises(RegistryError, match="rollback"):
        clients(settings, clock).search("")


def test_rollback_attack_keeps_the_last_trusted_copy(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    old = registry.files()
    registry.publish("json-viewer", "0.1.0")
    clock = Clock()
    client = clients(registry.settings(home, served.url(), cache_ttl=60), clock)
    client.search("")
    registry.restore(old)
    clock.advance(61)
    with pytest.raises(RegistryError, match="rollback"):
        client.search("")
    # The disk still holds version 7: offline, it is what is served.
    offline = clients(registry.settings(home, served.url(), offline=True), clock)
    assert "json-viewer" in {h.id for h in offline.search("")}


def test_freeze_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    index = registry.rewrite(expires=registry.now + timedelta(minutes=10))
    clock = Clock(index.generated + timedelta(minutes=1))
    client = clients(registry.settings(home, served.url(), cache_ttl=3600), clock)
    client.search("")
    # The server keeps serving the same validly signed index after it expired.
    clock.advance(10 * 60)
    with pytest.raises(RegistryError, match="expired") as caught:
        client.search("")
    assert caught.value.file == "index.json"
    assert "freeze attack" in str(caught.value)


def test_bad_signature_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    index = (registry.root / "index.json").read_bytes()
    tampered = index.replace(b"Preview CSV files", b"Preview CSV filez")
    assert tampered != index
    (registry.root / "index.json").write_bytes(tampered)
    with pytest.raises(SignatureError, match="does not match the bytes") as caught:
        clients(registry.settings(home, served.url())).search("")
    assert (caught.value.registry, caught.value.file) == ("test", "index.json.sig")
    assert not list(home.glob("cache/registry/*/index.json"))  # nothing cached


def test_untrusted_key_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    other_key, _ = registry.new_key("attacker")
    index = registry.index_json()
    index["version"] = 99
    registry.write_raw_index(index, key=other_key)
    with pytest.raises(SignatureError, match="expected one of the trusted keys"):
        clients(registry.settings(home, served.url())).search("")


def test_unsigned_index_where_a_signature_is_required(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    (registry.root / "index.json.sig").unlink()
    with pytest.raises(SignatureError, match="is unsigned") as caught:
        clients(registry.settings(home, served.url())).search("")
    assert caught.value.file == "index.json.sig"
    assert isinstance(caught.value.__cause__, RegistryError)  # the 404, kept as the cause
    # Without trusted keys, require_signature still refuses it.
    settings = registry.settings(home, served.url(), require_signature=True)
    settings = settings.replace(registries=(replace(settings.registries[0], trusted_keys=()),))
    with pytest.raises(SignatureError):
        clients(settings).search("")


def test_endless_data_attack_on_the_index(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    served.route("/index.json", endless())
    client = clients(registry.settings(home, served.url(), max_metadata_size=1024 * 1024))
    with pytest.raises(IntegrityError, match="larger than the 1048576 bytes") as caught:
        client.search("")
    assert caught.value.subject == "test/index.json"


# --- detail files ---------------------------------------------------------------


def test_mix_and_match_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    before = registry.files()
    registry.publish("csv-tools", "1.2.0", summary="Preview CSV files as tables")
    pin = registry.index().plugins["csv-tools"].detail
    current = registry.detail_path("csv-tools").read_bytes()
    # The server mixes the new index with the detail file of the previous state.
    registry.detail_path("csv-tools").write_bytes(before["plugins/csv-tools.json"])
    client = clients(registry.settings(home, served.url()))
    with pytest.raises(IntegrityError) as caught:
        client.details("csv-tools")
    assert caught.value.subject == "test/plugins/csv-tools.json"
    assert caught.value.expected in (str(pin.size), f"at most {pin.size} bytes")
    assert sha(before["plugins/csv-tools.json"]) not in cached_blobs(home)
    # Once the server is consistent again, the same client reads it.
    registry.detail_path("csv-tools").write_bytes(current)
    assert "1.2.0" in {str(v.version) for v in client.versions("csv-tools")}
    assert pin.sha256 in cached_blobs(home)


def test_same_size_detail_swap_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    path = registry.detail_path("cell-timer")
    original = path.read_bytes()
    swapped = original.replace(b"Time every cell", b"Time EVERY cell")
    path.write_bytes(swapped)
    with pytest.raises(IntegrityError, match="sha256") as caught:
        clients(registry.settings(home, served.url())).details("cell-timer")
    assert (caught.value.expected, caught.value.actual) == (sha(original), sha(swapped))


# --- artifacts --------------------------------------------------------------------


def test_tampered_artifact_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    path = registry.artifact_path("csv-tools", "1.1.0")
    original = path.read_bytes()
    tampered = bytes([original[0] ^ 1]) + original[1:]
    path.write_bytes(tampered)
    with pytest.raises(IntegrityError, match="sha256 mismatch") as caught:
        clients(registry.settings(home, served.url())).fetch_artifact("csv-tools", "1.1.0")
    assert (caught.value.expected, caught.value.actual) == (sha(original), sha(tampered))
    assert caught.value.subject == "test/artifacts/csv-tools/csv-tools-1.1.0.zip"


def test_wrong_size_artifact_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    path = registry.artifact_path("csv-tools", "1.1.0")
    original = path.read_bytes()
    client = clients(registry.settings(home, served.url()))
    path.write_bytes(original + b"more")
    with pytest.raises(IntegrityError) as longer:
        client.fetch_artifact("csv-tools", "1.1.0")
    assert longer.value.expected == f"at most {len(original)} bytes"
    path.write_bytes(original[:-1])
    with pytest.raises(IntegrityError) as shorter:
        client.fetch_artifact("csv-tools", "1.1.0")
    assert (shorter.value.expected, shorter.value.actual) == (
        str(len(original)),
        str(len(original) - 1),
    )


def test_endless_data_attack_on_an_artifact(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    size = registry.artifact_path("csv-tools", "1.1.0").stat().st_size
    served.route("/artifacts/csv-tools/csv-tools-1.1.0.zip", endless())
    with pytest.raises(IntegrityError, match=f"larger than the {size} bytes allowed"):
        clients(registry.settings(home, served.url())).fetch_artifact("csv-tools", "1.1.0")


def test_slow_retrieval_attack(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    body = registry.artifact_path("csv-tools", "1.1.0").read_bytes()
    stop = threading.Event()
    served.route("/artifacts/csv-tools/csv-tools-1.1.0.zip", trickle(body, every=0.05, stop=stop))
    client = clients(registry.settings(home, served.url(), download_deadline=0.3))
    try:
        with pytest.raises(RegistryError, match=r"took longer than 0\.3 s") as caught:
            client.fetch_artifact("csv-tools", "1.1.0")
    finally:
        stop.set()
    assert caught.value.file == "artifacts/csv-tools/csv-tools-1.1.0.zip"


def _move_artifact(registry: TestRegistry, url: str) -> None:
    def change(detail: PluginDetail) -> PluginDetail:
        versions = tuple(
            replace(v, artifact=replace(v.artifact, url=url)) if str(v.version) == "1.1.0" else v
            for v in detail.versions
        )
        return replace(detail, versions=versions)

    registry.rewrite_detail("csv-tools", change)


def test_artifact_url_on_a_disallowed_origin(
    registry: TestRegistry, served: LoopbackServer, http_server: Serve, home: Path, clients: Clients
) -> None:
    elsewhere = http_server(registry.root)  # another origin (another port)
    _move_artifact(registry, elsewhere.url("artifacts/csv-tools/csv-tools-1.1.0.zip"))
    client = clients(registry.settings(home, served.url()))
    with pytest.raises(RegistryError, match="neither the registry's nor in allowed_origins"):
        client.fetch_artifact("csv-tools", "1.1.0")
    assert elsewhere.count() == 0  # refused before a byte was asked for
    # An admin who trusts that origin allows it.
    allowed = clients(
        registry.settings(home / "b", served.url(), allowed_origins=(elsewhere.origin,))
    )
    allowed.fetch_artifact("csv-tools", "1.1.0")
    assert elsewhere.count("/artifacts/csv-tools/csv-tools-1.1.0.zip") == 1


def test_artifact_url_on_another_origin_from_a_folder_registry(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients
) -> None:
    _move_artifact(registry, served.url("artifacts/csv-tools/csv-tools-1.1.0.zip"))
    with pytest.raises(RegistryError, match="allowed_origins"):
        clients(registry.settings(home)).fetch_artifact("csv-tools", "1.1.0")
    assert served.count() == 0


def test_detail_url_off_the_registry_attack(
    registry: TestRegistry, served: LoopbackServer, http_server: Serve, home: Path, clients: Clients
) -> None:
    # Format 2 has no detail URL: a detail file is always plugins/<id>.json on the
    # registry, so an index that names another place is malformed, whoever signed it.
    elsewhere = http_server(registry.root)
    index = registry.index_json()
    plugins = index["plugins"]
    assert isinstance(plugins, dict)
    plugins["detail_url"] = [elsewhere.url(f"plugins/{pid}.json") for pid in plugins["id"]]
    index["version"] = 99
    registry.write_raw_index(index)
    with pytest.raises(RegistryError, match=r"plugins\.detail_url is 'an unknown field'"):
        clients(registry.settings(home, served.url())).details("cell-timer")
    assert elsewhere.count() == 0


# --- ids that try to become paths ---------------------------------------------------


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "..", "/etc/passwd", "x\\..\\y", ""])
def test_path_id_attack_as_an_argument(
    registry: TestRegistry, served: LoopbackServer, home: Path, clients: Clients, bad_id: str
) -> None:
    client = clients(registry.settings(home, served.url()))
    client.search("")
    seen = served.count()
    with pytest.raises(RegistryError, match="is not a plugin id"):
        client.details(bad_id)
    with pytest.raises(RegistryError, match="is not a plugin id"):
        client.fetch_artifact(bad_id, "1.0.0")
    with pytest.raises(RegistryError, match="is not a plugin id"):
        client.versions(bad_id)
    assert served.count() == seen  # nothing was requested for it


@pytest.mark.parametrize("bad_id", ["../x", "a/b"])
def test_path_id_attack_in_the_index(
    registry: TestRegistry,
    served: LoopbackServer,
    home: Path,
    clients: Clients,
    tmp_path: Path,
    bad_id: str,
) -> None:
    index = registry.index_json()
    plugins = index["plugins"]
    assert isinstance(plugins, dict)
    row = plugins["id"].index("cell-timer")
    for column, values in plugins.items():  # a copy of cell-timer's row, first, as bad_id
        for values_of in values.values() if column == "latest" else [values]:
            values_of.insert(0, values_of[row])
    plugins["id"][0] = bad_id
    index["version"] = 99
    registry.write_raw_index(index)  # validly signed by the registry's own key
    before = set(tmp_path.rglob("*"))
    with pytest.raises(RegistryError, match=r"plugins\.id\[0\].*never a path") as caught:
        clients(registry.settings(home, served.url())).search("")
    assert caught.value.file == "index.json"
    assert set(tmp_path.rglob("*")) == before  # nothing written anywhere, cache included


def test_path_id_attack_through_a_folder_registry(
    registry: TestRegistry, home: Path, clients: Clients
) -> None:
    client = clients(registry.settings(home))
    with pytest.raises(RegistryError, match="is not a plugin id"):
        client.details("../registry-work/registry")
    with pytest.raises(RegistryError, match="is not a plugin id"):
        client.fetch_artifact("../registry-work/registry", "1.0.0")
