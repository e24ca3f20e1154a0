"""Decoding registry files strictly, and encoding them canonically."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from packaging.version import Version

from plugmarket._internal import registry_format as fmt
from plugmarket.errors import RegistryError
from tests.support.registry_states import NOW, RegistryState, detail, version_info


def sample() -> RegistryState:
    return RegistryState(
        details={
            "csv-tools": detail(
                "csv-tools",
                version_info("csv-tools", "1.0", b"a"),
                version_info("csv-tools", "1.1", b"b", yanked=True),
                version_info("csv-tools", "2.0b1", b"c", channel="beta", rollout=0.2),
            ),
            "json-view": detail("json-view", version_info("json-view", "0.3", b"d")),
        }
    )


def index_obj() -> dict[str, Any]:
    return json.loads(sample().index_bytes())  # type: ignore[no-any-return]


def detail_obj() -> dict[str, Any]:
    return json.loads(sample().detail_bytes("csv-tools"))  # type: ignore[no-any-return]


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


def decode_index(data: bytes) -> fmt.Index:
    return fmt.decode_index(data, registry="demo")


def decode_detail(data: bytes, plugin_id: str = "csv-tools") -> fmt.PluginDetail:
    return fmt.decode_detail(data, registry="demo", plugin_id=plugin_id)


# --------------------------------------------------------------------------- round trips


def test_index_round_trips_and_encoding_is_canonical() -> None:
    data = sample().index_bytes()
    index = decode_index(data)
    assert fmt.encode_index(index) == data
    assert data.endswith(b"}\n") and b": " not in data and b", " not in data
    assert list(index.plugins) == ["csv-tools", "json-view"]
    entry = index.plugins["csv-tools"]
    assert dict(entry.latest) == {"beta": "2.0b1", "stable": "1.0"}
    assert entry.rating == 4.5 and entry.detail.url == "plugins/csv-tools.json"
    assert index.expires.tzinfo is not None


def test_detail_round_trips_with_typed_fields() -> None:
    data = sample().detail_bytes("csv-tools")
    d = decode_detail(data)
    assert fmt.encode_detail(d) == data
    assert [str(v.version) for v in d.versions] == ["1.0", "1.1", "2.0b1"]
    beta = d.versions[2]
    assert beta.version == Version("2.0b1") and beta.channel == "beta" and beta.rollout == 0.2
    assert beta.published == NOW and beta.host.contains("1.0")


def test_reordered_keys_decode_to_the_same_value_and_encode_to_the_same_bytes() -> None:
    obj = index_obj()
    shuffled = json.dumps(dict(reversed(list(obj.items()))), indent=2).encode()
    assert fmt.encode_index(decode_index(shuffled)) == sample().index_bytes()


def test_optional_fields_take_their_defaults() -> None:
    obj = detail_obj()
    for key in ("name", "authors", "tags"):
        del obj[key]
    for v in obj["versions"]:
        for key in ("requires", "host", "capabilities", "rollout", "yanked", "summary"):
            v.pop(key, None)
    d = decode_detail(dumps(obj))
    assert d.name == "" and d.authors == () and d.versions[0].yanked is False
    assert d.versions[0].rollout is None and str(d.versions[0].host) == ""


def test_latest_skips_yanked_and_keeps_prereleases_off_stable() -> None:
    d = decode_detail(sample().detail_bytes("csv-tools"))
    stable, beta = d.latest(), d.latest("beta")
    assert stable is not None and str(stable.version) == "1.0"  # 1.1 is yanked
    assert beta is not None and str(beta.version) == "2.0b1"
    nightly = d.latest("nightly")  # an unknown channel still sees stable
    assert nightly is not None and str(nightly.version) == "1.0"
    assert d.channels() == ("beta", "stable")


def test_a_prerelease_on_stable_is_offered_only_to_other_channels() -> None:
    d = detail("x", version_info("x", "1.0", b"a"), version_info("x", "2.0rc1", b"b"))
    stable, beta = d.latest(), d.latest("beta")
    assert stable is not None and str(stable.version) == "1.0"
    assert beta is not None and str(beta.version) == "2.0rc1"


# --------------------------------------------------------------------------- hostile JSON


def assert_refused(data: bytes, *words: str, file: str = "index.json") -> RegistryError:
    with pytest.raises(RegistryError) as info:
        if file == "index.json":
            decode_index(data)
        else:
            decode_detail(data)
    err = info.value
    assert err.registry == "demo" and err.file == file
    assert "demo" in str(err) and file in str(err)
    for word in words:
        assert word in str(err), (word, str(err))
    return err


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(constant: str) -> None:
    data = sample().index_bytes().replace(b'"rating":[4.5', b'"rating":[' + constant.encode())
    assert_refused(data, constant)


def test_duplicate_keys_are_refused_even_when_nested() -> None:
    top = b'{"version":1,' + sample().index_bytes()[1:]
    assert_refused(top, "'version'", "repeated")
    column = (
        sample()
        .index_bytes()
        .replace(b'"downloads":[10,10]', b'"downloads":[10,10],"downloads":[9,9]')
    )
    assert_refused(column, "'downloads'", "repeated")
    channel = sample().index_bytes().replace(b'"latest":{', b'"latest":{"stable":["9","9"],', 1)
    assert_refused(channel, "'stable'", "repeated")


def test_a_plugin_id_listed_twice_is_refused() -> None:
    obj = index_obj()
    obj["plugins"]["id"][1] = "csv-tools"  # a duplicate key in a format-1 index
    assert_refused(dumps(obj), "plugins.id[1]", "'csv-tools'", "ascending order, each once")


def test_a_byte_order_mark_is_refused() -> None:
    assert_refused(b"\xef\xbb\xbf" + sample().index_bytes(), "byte order mark")


def test_invalid_utf8_is_refused() -> None:
    assert_refused(sample().index_bytes().replace(b"Csv-Tools", b"Csv\xff-Tools"), "not UTF-8")


def test_deep_nesting_is_refused_without_a_crash() -> None:
    assert_refused(b"[" * 100_000 + b"]" * 100_000, "nested too deeply")


def test_a_lone_surrogate_is_refused() -> None:
    data = sample().index_bytes().replace(b'"summary":["The csv', b'"summary":["\\ud800The csv', 1)
    assert_refused(data, "plugins.summary[0] (csv-tools)", "surrogate")


def test_an_unknown_format_is_refused_with_an_upgrade_hint() -> None:
    obj = index_obj()
    obj["format"] = 3
    err = assert_refused(dumps(obj), "format 3", "reads format 2")
    assert "Upgrade plugmarket" in err.hint


def test_a_format_1_index_is_refused_with_a_rebuild_hint() -> None:
    old = {"format": 1, "version": 1, "expires": "2030-01-01T00:00:00Z", "plugins": {}}
    err = assert_refused(dumps({**old, "generated": "2029-01-01T00:00:00Z"}), "format 1")
    assert "older plugmarket" in err.hint


Mutation = Callable[[dict[str, Any]], object]


def _set(column: str, row: int, value: object) -> Mutation:
    return lambda o: o["plugins"][column].__setitem__(row, value)


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda o: o.update(version="3"), ["version", "'3'", "integer"]),
        (lambda o: o.update(version=True), ["version", "True"]),
        (lambda o: o.update(version=0), ["version", ">= 1"]),
        (lambda o: o.update(expires="tomorrow"), ["expires", "'tomorrow'"]),
        (lambda o: o.update(expires="2024-05-01T12:00:00"), ["expires", "UTC time"]),
        (lambda o: o.update(plugins=[]), ["plugins", "object"]),
        (lambda o: o.pop("generated"), ["generated", "missing"]),
        (lambda o: o.update(extra=1), ["extra", "unknown field"]),
        (lambda o: o["plugins"].pop("tags"), ["plugins.tags", "missing"]),
        (lambda o: o["plugins"].update(detail_url=["x", "y"]), ["detail_url", "unknown field"]),
        (lambda o: o["plugins"]["name"].pop(), ["plugins.name", "a list of 1", "one per plugin"]),
        (lambda o: o["plugins"].update(downloads={}), ["plugins.downloads", "'dict'"]),
        (lambda o: o["plugins"].update(id="csv-tools"), ["plugins.id", "list"]),
        (lambda o: o["plugins"]["id"].reverse(), ["plugins.id[1]", "ascending order"]),
        (_set("rating", 0, "5"), ["plugins.rating[0] (csv-tools)", "'5'"]),
        (_set("rating", 1, 7), ["plugins.rating[1] (json-view)", "0.0 to 5.0"]),
        (_set("rating", 1, True), ["plugins.rating[1] (json-view)", "True"]),
        (_set("downloads", 0, -1), ["plugins.downloads[0] (csv-tools)", ">= 0"]),
        (_set("ratings_count", 0, 1.5), ["plugins.ratings_count[0]", "1.5"]),
        (_set("tags", 0, "csv"), ["plugins.tags[0] (csv-tools)", "list"]),
        (_set("tags", 1, [1]), ["plugins.tags[1][0] (json-view)", "string"]),
        (_set("categories", 0, ["x"] * 257), ["plugins.categories[0] (csv-tools)", "at most 256"]),
        (_set("capabilities", 0, ["root"]), ["plugins.capabilities[0][0] (csv-tools)"]),
        (_set("updated", 1, "2024-05-01"), ["plugins.updated[1] (json-view)", "UTC time"]),
        (_set("updated", 1, 1714564800), ["plugins.updated[1]", "UTC time"]),
        (lambda o: o["plugins"]["latest"]["stable"].__setitem__(0, "one"), ["latest.stable[0]"]),
        (
            lambda o: o["plugins"]["latest"]["stable"].pop(),
            ["plugins.latest.stable", "a list of 1"],
        ),
        (lambda o: o["plugins"]["latest"].update(BETA=["1.0", None]), ["channel", "'BETA'"]),
        (lambda o: o["plugins"].update(latest=[]), ["plugins.latest", "object of channel"]),
        (_set("detail_size", 0, True), ["plugins.detail_size[0] (csv-tools)", "True"]),
        (_set("detail_sha256", 1, "ABC"), ["plugins.detail_sha256[1]", "hex"]),
        (_set("detail_sha256", 1, "a" * 64 + "\n"), ["plugins.detail_sha256[1]", "hex"]),
        (_set("name", 0, "a\x00b"), ["plugins.name[0] (csv-tools)", "control"]),
        (_set("summary", 1, "x" * 70_000), ["plugins.summary[1]", "at most 65536"]),
    ],
)
def test_wrong_types_and_values_in_the_index_are_refused(
    mutate: Mutation, words: list[str]
) -> None:
    obj = index_obj()
    mutate(obj)
    assert_refused(dumps(obj), *words)


@pytest.mark.parametrize(
    "bad_id", ["../x", "a/b", "A", "", "-x", "x" * 65, "x.json", "x\\y", "x\n", 7, None]
)
def test_an_index_id_that_is_not_an_id_is_refused(bad_id: object) -> None:
    obj = index_obj()
    obj["plugins"]["id"][1] = bad_id
    assert_refused(dumps(obj), "plugins.id[1]", "never a path")


def test_a_time_in_another_zone_is_read_as_utc() -> None:
    obj = index_obj()
    obj["plugins"]["updated"][0] = "2024-05-01T14:00:00+02:00"
    assert decode_index(dumps(obj)).plugins["csv-tools"].updated == NOW


@pytest.mark.parametrize(
    "url",
    [
        "../../etc/passwd",
        "artifacts/../../x.zip",
        "/etc/passwd",
        "artifacts/.hidden.zip",
        "artifacts/%2e%2e/x.zip",
        "artifacts\\x.zip",
        "file:///etc/passwd",
        "ftp://example.com/x.zip",
        "https://user:secret@example.com/x.zip",
        "//evil.example/x.zip",
        "https:///x.zip",
        "artifacts/x.zip?y=1",
        "",
    ],
)
def test_artifact_urls_that_escape_the_registry_are_refused(url: str) -> None:
    obj = detail_obj()
    obj["versions"][0]["artifact"]["url"] = url
    assert_refused(dumps(obj), "artifact.url", file="plugins/csv-tools.json")


@pytest.mark.parametrize(
    "url", ["artifacts/csv-tools/csv-tools-1.0+local.zip", "https://cdn.example.com/a/b.zip"]
)
def test_relative_and_https_artifact_urls_are_accepted(url: str) -> None:
    obj = detail_obj()
    obj["versions"][0]["artifact"]["url"] = url
    assert decode_detail(dumps(obj)).versions[0].artifact.url == url


@pytest.mark.parametrize("bad_id", ["../x", "a/b"])
def test_a_detail_whose_id_is_a_path_is_refused(bad_id: str) -> None:
    obj = detail_obj()
    obj["id"] = bad_id
    assert_refused(dumps(obj), "id", "never a path", file="plugins/csv-tools.json")


@pytest.mark.parametrize("bad_id", ["../x", "a/b"])
def test_a_requested_id_that_is_a_path_is_refused(bad_id: str) -> None:
    with pytest.raises(RegistryError, match="never a path"):
        fmt.decode_detail(sample().detail_bytes("csv-tools"), registry="demo", plugin_id=bad_id)
    with pytest.raises(Exception, match="not a valid plugin id"):
        fmt.detail_path(bad_id)


def test_a_detail_for_another_plugin_is_refused() -> None:
    err = assert_refused(
        sample().detail_bytes("json-view"), "json-view", file="plugins/csv-tools.json"
    )
    assert "'csv-tools'" in str(err)


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda o: o["versions"][0].update(version="one"), ["versions[0].version"]),
        (lambda o: o["versions"][0].update(rollout=1.5), ["rollout"]),
        (lambda o: o["versions"][0].update(yanked="yes"), ["yanked", "true or false"]),
        (lambda o: o["versions"][0].update(requires=["../x"]), ["requires[0]"]),
        (lambda o: o["versions"][0].update(requires=["x @ https://e.com/x.zip"]), ["requires"]),
        (lambda o: o["versions"][0].update(host="~~1"), ["host"]),
        (lambda o: o["versions"][0].update(channel="Beta!"), ["channel"]),
        (lambda o: o["versions"][0].update(artifact=None), ["artifact", "object"]),
        (lambda o: o["versions"].append(dict(o["versions"][0])), ["each version listed once"]),
        (lambda o: o.update(versions={}), ["versions"]),
        (lambda o: o.update(format="1"), ["format '1'"]),
    ],
)
def test_wrong_types_and_values_in_a_detail_are_refused(mutate: Mutation, words: list[str]) -> None:
    obj = detail_obj()
    mutate(obj)
    assert_refused(dumps(obj), *words, file="plugins/csv-tools.json")


def test_a_long_found_value_is_shortened_in_the_message() -> None:
    obj = index_obj()
    obj["version"] = "9" * 10_000
    err = assert_refused(dumps(obj))
    assert len(str(err)) < 400


def test_an_empty_index_round_trips() -> None:
    empty = RegistryState().index_bytes()
    assert b'"id":[]' in empty and b'"latest":{}' in empty
    index = decode_index(empty)
    assert len(index.plugins) == 0 and fmt.encode_index(index) == empty


def test_entries_are_built_once_from_the_checked_columns() -> None:
    index = decode_index(sample().index_bytes())
    plugins = index.plugins
    assert isinstance(plugins, fmt.IndexPlugins)
    assert list(plugins) == ["csv-tools", "json-view"] and len(plugins) == 2
    assert plugins["json-view"] is plugins["json-view"]
    assert plugins.get("nope") is None and "nope" not in plugins and "csv-tools" in plugins
    assert dict(plugins) == dict(sample().index().plugins)
    with pytest.raises(KeyError):
        plugins["nope"]
    entry = plugins["json-view"]
    assert dict(entry.latest) == {"stable": "0.3"}  # no beta: a null in the beta column
    assert entry.tags == ("csv",) and isinstance(entry.categories, tuple)
