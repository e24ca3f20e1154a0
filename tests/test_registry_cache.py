"""The registry's disk cache: atomic entries with validators, damaged files never trusted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from plugmarket._internal.http_cache import DiskCache, atomic_write, cache_folder


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
