"""Lockfiles: a generation written down exactly, and strict decoding of what comes back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from plugmarket._internal.installed import Generation, InstalledPlugin
from plugmarket._internal.lockfile import MAX_LOCK_SIZE
from plugmarket._internal.records import LockedPlugin, LockSpec, decode_lock, encode_lock, read_lock
from plugmarket.errors import InstallError

SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4


def generation() -> Generation:
    return Generation(
        number=7,
        parent=6,
        created=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        reason="install csv-preview",
        plugins={
            "table-kit": InstalledPlugin(
                id="table-kit",
                version="2.1.0",
                sha256=SHA_B,
                top="table_kit",
                explicit=False,
                registry="demo",
                origin="https://plugins.example.com/table-kit-2.1.0.zip",
            ),
            "csv-preview": InstalledPlugin(
                id="csv-preview",
                version="1.0.0",
                sha256=SHA_A,
                top="csv_preview",
                grants=("display", "fs.read:~/data/*"),
                requested=("display", "fs.read:~/data/*"),
                requires=("table-kit>=2",),
                enabled=False,
                registry="demo",
            ),
        },
    )


def test_round_trip_keeps_every_pinned_field() -> None:
    spec = decode_lock(encode_lock(generation()), path="plugins.lock")
    assert isinstance(spec, LockSpec)
    assert spec.created == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert spec.generation == 7 and spec.format == 1
    assert spec.plugins == (
        LockedPlugin(
            id="csv-preview",
            version="1.0.0",
            sha256=SHA_A,
            grants=("display", "fs.read:~/data/*"),
            enabled=False,
            registry="demo",
            explicit=True,
            origin="",
        ),
        LockedPlugin(
            id="table-kit",
            version="2.1.0",
            sha256=SHA_B,
            enabled=True,
            registry="demo",
            explicit=False,
            origin="https://plugins.example.com/table-kit-2.1.0.zip",
        ),
    )
    assert spec.get("table-kit") is spec.plugins[1] and spec.get("nope") is None
    assert [p.id for p in spec] == ["csv-preview", "table-kit"] and len(spec) == 2


def test_same_set_gives_the_same_bytes() -> None:
    assert encode_lock(generation()) == encode_lock(generation())
    data = json.loads(encode_lock(generation()))
    assert [p["id"] for p in data["plugins"]] == ["csv-preview", "table-kit"]


def test_empty_set_round_trips() -> None:
    spec = decode_lock(encode_lock(Generation(number=0)), path="empty.lock")
    assert spec.plugins == ()


def test_optional_fields_may_be_left_out() -> None:
    data = {
        "format": 1,
        "created": "2024-05-01T12:00:00Z",
        "plugins": [
            {
                "id": "todo",
                "version": "1.0",
                "sha256": SHA_A,
                "grants": [],
                "enabled": True,
                "registry": "",
            }
        ],
    }
    spec = decode_lock(json.dumps(data).encode(), path="hand.lock")
    assert spec.generation is None
    assert spec.plugins[0].explicit is True and spec.plugins[0].origin == ""


def test_read_lock_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "plugins.lock"
    path.write_bytes(encode_lock(generation()))
    assert read_lock(path) == decode_lock(path.read_bytes(), path=str(path))
    with pytest.raises(InstallError, match="cannot read the lockfile"):
        read_lock(tmp_path / "missing.lock")


def test_oversized_lockfile_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.lock"
    with open(path, "wb") as f:
        f.truncate(MAX_LOCK_SIZE + 10)
    with pytest.raises(InstallError, match="the file is 16,777,217 bytes"):
        read_lock(path)


def _edit(change: Callable[[dict[str, Any]], object]) -> bytes:
    data = json.loads(encode_lock(generation()))
    change(data)
    return json.dumps(data).encode()


def _plugin(**fields: Any) -> bytes:
    return _edit(lambda data: data["plugins"][0].update(fields))


BAD: list[tuple[str, bytes, str]] = [
    ("not json", b"{", "not valid JSON"),
    ("byte order mark", b"\xef\xbb\xbf" + encode_lock(generation()), "byte order mark"),
    ("repeated key", b'{"format": 1, "format": 1}', "appears twice"),
    ("NaN", b'{"format": NaN}', "NaN"),
    ("a list", b"[]", "the lockfile is a list; expected an object"),
    ("newer format", _edit(lambda d: d.update(format=2)), "format 2, newer than"),
    ("format as text", _edit(lambda d: d.update(format="1")), "format is '1'"),
    ("unknown top field", _edit(lambda d: d.update(extra=1)), "field 'extra'"),
    ("missing plugins", _edit(lambda d: d.pop("plugins")), "field 'plugins' is missing"),
    ("naive time", _edit(lambda d: d.update(created="2024-05-01T12:00:00")), "created is"),
    ("bad generation", _edit(lambda d: d.update(generation=-1)), "generation is -1"),
    ("plugins not a list", _edit(lambda d: d.update(plugins={})), "plugins is {}"),
    (
        "missing sha256",
        _edit(lambda d: d["plugins"][0].pop("sha256")),
        "plugins[0]: field 'sha256'",
    ),
    ("unknown field", _plugin(url="https://x"), "plugins[0]: field 'url' is not a lockfile field"),
    ("short sha256", _plugin(sha256="abc"), "plugins[0].sha256 is 'abc'"),
    ("upper-case sha256", _plugin(sha256="A" * 64), "plugins[0].sha256"),
    ("path as id", _plugin(id="../../etc"), "plugins[0].id is '../../etc'"),
    ("bad version", _plugin(version="one"), "plugins[0].version is 'one'"),
    ("bad capability", _plugin(grants=["display", "root"]), "plugins[0].grants[1] is 'root'"),
    ("repeated grant", _plugin(grants=["display", "display"]), "each capability once"),
    ("grants as text", _plugin(grants="display"), "plugins[0].grants is 'display'"),
    ("enabled as text", _plugin(enabled="yes"), "plugins[0].enabled is 'yes'"),
    ("explicit as number", _plugin(explicit=1), "plugins[0].explicit is 1"),
    ("registry with escape", _plugin(registry="demo\x1b[2J"), "plugins[0].registry"),
    ("origin on two lines", _plugin(origin="a\nb"), "plugins[0].origin"),
    (
        "repeated plugin",
        _edit(lambda d: d["plugins"].append(dict(d["plugins"][0]))),
        "plugins[2].id is 'csv-preview'; expected each plugin once",
    ),
]


@pytest.mark.parametrize(("data", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_damaged_or_forged_lockfile_is_refused_naming_the_field(data: bytes, message: str) -> None:
    with pytest.raises(InstallError) as info:
        decode_lock(data, path="team.lock")
    assert message in str(info.value)
    assert str(info.value).startswith("team.lock")
    assert info.value.step == "read lockfile"
