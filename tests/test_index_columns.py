"""The index's bulk column checks agree with the careful ones, and never accept more."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import pytest

from plugmarket._internal import index_columns as ic
from plugmarket._internal import registry_format as fmt
from plugmarket._internal.json_fields import Fields
from plugmarket.errors import RegistryError
from tests.support.registry_states import NOW


def entry(i: int, rnd: random.Random) -> fmt.IndexEntry:
    """A varied but valid entry: unrated or rated (int or float), several channels, texts."""
    pid = f"plugin-{i:04d}"
    latest = {"stable": f"1.{i}.0"}
    if i % 3 == 0:
        latest["beta"] = f"2.{i}.0b1"
    if i % 7 == 0:
        latest = {"nightly": "3.0.dev1"}
    return fmt.IndexEntry(
        id=pid,
        name=rnd.choice(["Tabla", "Données", "表格 tools", "x"]) + f" {i}",
        summary=rnd.choice(["", "Reads\tCSV\nand JSON", "Ünïcode ✓", "plain words"]),
        latest=MappingProxyType(latest),
        categories=tuple(rnd.sample(["data", "io", "viz"], rnd.randint(0, 2))),
        tags=tuple(rnd.sample(["csv", "json", "sql", "plot"], rnd.randint(0, 3))),
        rating=rnd.choice([None, 0.0, 2.5, 5.0]),
        ratings_count=rnd.randrange(100),
        downloads=rnd.randrange(10**6),
        capabilities=tuple(rnd.sample(["display", "net:api.example.com", "fs.read:~/data"], 2)),
        updated=NOW - timedelta(minutes=i),
        detail=fmt.Artifact(fmt.detail_path(pid), f"{i:064x}", 100 + i),
    )


def index_obj(n: int = 60) -> dict[str, Any]:
    rnd = random.Random(n)
    plugins = {e.id: e for e in (entry(i, rnd) for i in range(n))}
    index = fmt.Index(fmt.FORMAT, 1, NOW + timedelta(days=1), NOW, MappingProxyType(plugins))
    return json.loads(fmt.encode_index(index))["plugins"]  # type: ignore[no-any-return]


def careful(plugins: dict[str, Any]) -> ic.IndexColumns:
    return ic._careful(Fields("demo", fmt.INDEX_FILE), plugins)


def test_bulk_and_careful_checks_agree_on_valid_columns() -> None:
    plugins = index_obj()
    bulk = ic._bulk(copy.deepcopy(plugins))
    assert bulk is not None  # a canonical index never needs the careful path
    assert bulk == careful(plugins)
    assert bulk == ic.IndexColumns.from_entries(
        fmt.decode_index(_index(plugins), registry="d").plugins
    )


def test_an_integer_rating_is_read_as_a_float_on_both_paths() -> None:
    plugins = index_obj()
    plugins["rating"][3] = 4
    bulk = ic._bulk(plugins)
    assert bulk is not None and bulk.ratings[3] == 4.0 and type(bulk.ratings[3]) is float
    assert bulk == careful(plugins)


def test_a_time_in_another_zone_goes_the_careful_way_and_is_read_as_utc() -> None:
    plugins = index_obj()
    plugins["updated"][0] = "2024-05-01T14:00:00+02:00"
    assert ic._bulk(plugins) is None
    assert careful(plugins).updated[0] == NOW


Mutation = Callable[[dict[str, Any]], object]


def _set(column: str, row: int, value: object) -> Mutation:
    return lambda p: p[column].__setitem__(row, value)


HOSTILE: list[tuple[str, Mutation, str]] = [
    ("path id", _set("id", 5, "../x"), "plugins.id[5]"),
    ("id with a newline", _set("id", 5, "plugin-0005\n"), "plugins.id[5]"),
    ("id listed twice", _set("id", 5, "plugin-0004"), "plugins.id[5]"),
    ("id as a number", _set("id", 0, 1), "plugins.id[0]"),
    ("ids out of order", lambda p: p["id"].reverse(), "plugins.id[1]"),
    ("short column", lambda p: p["tags"].pop(), "plugins.tags is 'a list of 59'"),
    ("control character", _set("summary", 7, "a\x1bb"), "plugins.summary[7] (plugin-0007)"),
    ("lone surrogate", _set("name", 8, "a\ud800"), "plugins.name[8] (plugin-0008)"),
    ("text too long", _set("name", 8, "x" * 65_537), "plugins.name[8] (plugin-0008)"),
    ("tag that is a number", _set("tags", 9, ["csv", 3]), "plugins.tags[9][1] (plugin-0009)"),
    ("tag with a control", _set("tags", 9, ["\x00"]), "plugins.tags[9][0] (plugin-0009)"),
    ("tags as text", _set("tags", 9, "csv"), "plugins.tags[9] (plugin-0009)"),
    ("too many tags", _set("tags", 9, ["t"] * 257), "plugins.tags[9] (plugin-0009)"),
    ("unknown capability", _set("capabilities", 2, ["root"]), "plugins.capabilities[2][0]"),
    ("rating as text", _set("rating", 4, "5"), "plugins.rating[4] (plugin-0004)"),
    ("rating too high", _set("rating", 4, 5.5), "plugins.rating[4] (plugin-0004)"),
    ("rating negative", _set("rating", 4, -1), "plugins.rating[4] (plugin-0004)"),
    ("rating as a boolean", _set("rating", 4, False), "plugins.rating[4] (plugin-0004)"),
    ("count as a boolean", _set("downloads", 4, True), "plugins.downloads[4] (plugin-0004)"),
    ("negative count", _set("ratings_count", 4, -2), "plugins.ratings_count[4]"),
    ("count as a float", _set("detail_size", 4, 10.0), "plugins.detail_size[4]"),
    ("count as null", _set("downloads", 4, None), "plugins.downloads[4]"),
    ("time without a zone", _set("updated", 6, "2024-05-01T12:00:00"), "plugins.updated[6]"),
    ("time as text", _set("updated", 6, "yesterday"), "plugins.updated[6]"),
    ("upper-case hash", _set("detail_sha256", 1, "A" * 64), "plugins.detail_sha256[1]"),
    ("short hash", _set("detail_sha256", 1, "a" * 63), "plugins.detail_sha256[1]"),
    ("non-ASCII hash", _set("detail_sha256", 1, "é" * 64), "plugins.detail_sha256[1]"),
    ("bad version", lambda p: p["latest"]["stable"].__setitem__(1, "one"), "latest.stable[1]"),
    ("empty version", lambda p: p["latest"]["stable"].__setitem__(1, ""), "latest.stable[1]"),
    ("bad channel", lambda p: p["latest"].update({"Beta!": p["latest"]["stable"]}), "latest key"),
    ("short channel", lambda p: p["latest"]["beta"].pop(), "plugins.latest.beta"),
    ("channel as a list", lambda p: p.update(latest=[]), "plugins.latest"),
]


@pytest.mark.parametrize(
    ("mutate", "where"), [(m, w) for _, m, w in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_columns_fail_the_bulk_checks_and_the_careful_path_names_the_value(
    mutate: Mutation, where: str
) -> None:
    plugins = index_obj()
    mutate(plugins)
    assert ic._bulk(copy.deepcopy(plugins)) is None
    with pytest.raises(RegistryError) as careful_error:
        careful(plugins)
    assert where in careful_error.value.message
    with pytest.raises(RegistryError) as decode_error:
        fmt.decode_index(_index(plugins), registry="demo")
    assert decode_error.value.message == careful_error.value.message


# Values that break one rule or another, dropped at random places: the bulk checks
# must refuse every one the careful checks refuse, and agree on the rest.
ODD_VALUES: list[object] = [
    None, True, 0, -1, 1.5, 7, "", "x", "../x", "\x07", "\ud800", "A" * 64, "0" * 64,
    "2024-05-01T12:00:00Z", "2024-05-01", "1.0", "one", "display", "root", [], ["x"], [1],
    {}, "plugin-0003", "zzz",
]  # fmt: skip


def test_the_bulk_checks_never_accept_what_the_careful_checks_refuse() -> None:
    rnd = random.Random(3)
    base = index_obj(12)
    accepted = refused = 0
    for _ in range(1500):
        plugins = copy.deepcopy(base)
        column = rnd.choice(sorted(plugins))
        target = plugins[column]
        if column == "latest":
            target = target[rnd.choice(sorted(target))]
        row = rnd.randrange(len(target))
        if isinstance(target[row], list) and target[row] and rnd.random() < 0.5:
            target[row][rnd.randrange(len(target[row]))] = rnd.choice(ODD_VALUES)
        else:
            target[row] = rnd.choice(ODD_VALUES)
        bulk = ic._bulk(copy.deepcopy(plugins))
        try:
            checked = careful(plugins)
        except RegistryError:
            assert bulk is None, (column, row, target[row])
            refused += 1
            continue
        accepted += 1
        assert bulk is None or bulk == checked
    assert accepted > 50 and refused > 500  # both sides were exercised


def _index(plugins: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "format": fmt.FORMAT,
            "version": 1,
            "expires": "2030-01-01T00:00:00Z",
            "generated": "2029-01-01T00:00:00Z",
            "plugins": plugins,
        }
    ).encode()
