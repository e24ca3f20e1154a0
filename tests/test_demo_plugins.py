"""The demo plugins, each on its own behaviour, loaded by plugmarket's loader from demo_plugins/.

Every plugin is loaded from its source folder with the grants its manifest
requests (or narrower ones, as a careful user would grant), on a PlainHost or
a real IPython shell; where a plugin touches files or the network, a test
shows that a missing grant is refused.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from IPython.core.error import UsageError

from plugmarket import loader
from plugmarket.errors import ActivationError, CapabilityDenied
from plugmarket.host import IPythonHost, PlainHost
from plugmarket.loader import unload
from plugmarket.manifest import read_manifest
from plugmarket.settings import Settings
from tests.support.demo import DEMO_PLUGINS, declared, load_demo, source_folder, unload_all
from tests.support.httpserver import LoopbackServer, endless, redirect_to

PLUGIN_IDS = sorted(p.name for p in DEMO_PLUGINS.iterdir() if p.is_dir())
# capability kind -> what in a plugin's code uses it
USES = {
    "ipython.magics": ("ctx.register_magic(",),
    "ipython.events": ("ctx.on(",),
    "ipython.namespace": ("ctx.push(",),
    "display": ("ctx.display(", "ctx.register_formatter("),
    "fs.read": ("open(",),
    "fs.write": ('"ab"',),
    "net": ("ctx.http",),
}


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


class Shown:
    """A PlainHost whose displayed objects are kept in a list."""

    def __init__(self) -> None:
        self.objects: list[object] = []
        self.host = PlainHost(sink=self.objects.append)


@pytest.fixture
def shown() -> Shown:
    return Shown()


# --------------------------------------------------------------------------- the set as a whole


def test_there_are_at_least_eight_demo_plugins_each_with_an_honest_manifest() -> None:
    assert len(PLUGIN_IDS) >= 8
    for plugin_id in PLUGIN_IDS:
        manifest = read_manifest(source_folder(plugin_id))
        assert manifest.id == plugin_id
        assert manifest.summary and manifest.categories and manifest.tags
        assert manifest.supports_host()
        # Nothing requested that the code does not use: each kind has the call behind it.
        code = (source_folder(plugin_id) / "__init__.py").read_text(encoding="utf-8")
        for capability in manifest.capabilities:
            markers = USES[capability.kind]
            assert any(m in code for m in markers), f"{plugin_id} requests {capability} unused"


def test_table_kit_is_required_by_three_plugins() -> None:
    users = [
        pid
        for pid in PLUGIN_IDS
        if "table-kit" in read_manifest(source_folder(pid)).requirement_ids()
    ]
    assert sorted(users) == ["csv-preview", "regex-tester", "sqlite-magic"]


# --------------------------------------------------------------------------- table-kit


def test_table_kit_renders_sequences_and_mappings_as_aligned_text(
    settings: Settings, shown: Shown
) -> None:
    kit = load_demo("table-kit", settings, shown.host, grants=()).module
    rows = [{"city": "Oslo", "pop": 709_037}, {"city": "Reykjavík", "pop": 139_875, "x": None}]
    text = kit.text_table(rows)
    assert text.splitlines() == [
        "city          pop  x",
        "---------  ------  -",
        "Oslo       709037",
        "Reykjavík  139875",
    ]
    assert kit.table([(1, 2), (3,)], ["a", "b"]).rows == ((1, 2), (3, None))
    with pytest.raises(ValueError, match="row 1 has 3 values but the table has 2 columns"):
        kit.table([(1, 2, 3)], ["a", "b"])


def test_table_kit_escapes_html_and_counts_rows_left_out(settings: Settings, shown: Shown) -> None:
    kit = load_demo("table-kit", settings, shown.host, grants=()).module
    page = kit.html_table([("<script>alert(1)</script>", 3)] * 5, ["name & co", "n"], max_rows=2)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<th>name &amp; co</th>" in page
    assert page.count("<tr>") == 3  # header + 2 rows
    assert '<td style="text-align: right">3</td>' in page
    assert "3 more rows not shown" in page
    assert kit.table([], ["a"])._repr_html_().startswith('<table class="table-kit">')


# --------------------------------------------------------------------------- csv-preview


def _write_csv(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_preview_shows_the_first_rows_with_the_header(
    tmp_path: Path, settings: Settings, shown: Shown
) -> None:
    data = tmp_path / "data"
    rows = "".join(f"{i},item {i},{i * 1.5}\n" for i in range(1, 31))
    path = _write_csv(data, "items.csv", "id,name,price\n" + rows)
    grants = [f"fs.read:{data}", "ipython.magics", "display"]
    load_demo("csv-preview", settings, shown.host, grants=grants)
    shown.host.run_magic("csv_preview", f"{path} --rows 3")
    (table,) = shown.objects
    assert table.columns == ("id", "name", "price")
    assert table.rows == (("1", "item 1", "1.5"), ("2", "item 2", "3.0"), ("3", "item 3", "4.5"))
    assert table.caption == f"{path}: first 3 rows (more follow)"


def test_csv_preview_detects_semicolons_and_a_missing_header(
    tmp_path: Path, settings: Settings, shown: Shown
) -> None:
    path = _write_csv(tmp_path / "data", "eu.csv", "1;2,5;x\n2;3,5;y\n")
    load_demo("csv-preview", settings, shown.host)
    shown.host.run_magic("csv_preview", str(path))
    (table,) = shown.objects
    assert table.columns == ("column 1", "column 2", "column 3")
    assert table.rows == (("1", "2,5", "x"), ("2", "3,5", "y"))
    assert table.caption == f"{path}: first 2 rows"
    module = loader.loaded()["csv-preview"].module
    assert module.guess_delimiter("a\tb\tc\n1\t2,5\t3\n") == "\t"
    assert module.guess_delimiter("just one column\n") == ","


def test_csv_preview_reads_only_the_start_of_a_large_file(
    tmp_path: Path, settings: Settings, shown: Shown
) -> None:
    # 1 MiB of rows, then bytes that are not UTF-8: a preview that read the whole
    # file (as the yanked 0.9.0 does) would fail on them; 1.0.0 never gets there.
    path = tmp_path / "data" / "big.csv"
    path.parent.mkdir()
    path.write_bytes(b"a,b\n" + b"1,2\n" * 262_144 + b"\xff\xfe\n")
    load_demo("csv-preview", settings, shown.host)
    shown.host.run_magic("csv_preview", f"{path} --rows 5")
    assert shown.objects[0].rows == (("1", "2"),) * 5
    unload_all()
    load_demo("csv-preview", settings, shown.host, version="0.9.0")
    with pytest.raises(UnicodeDecodeError):
        shown.host.run_magic("csv_preview", str(path))


def test_csv_preview_without_an_fs_read_grant_is_denied(
    tmp_path: Path, settings: Settings, shown: Shown
) -> None:
    path = _write_csv(tmp_path / "data", "secret.csv", "a\n1\n")
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    load_demo("csv-preview", settings, shown.host, grants=["ipython.magics", "display"])
    with pytest.raises(CapabilityDenied) as denied:
        shown.host.run_magic("csv_preview", str(path))
    assert denied.value.plugin_id == "csv-preview"
    assert denied.value.capability == f"fs.read:{path}"
    unload_all()
    grants = [f"fs.read:{elsewhere}", "ipython.magics", "display"]
    load_demo("csv-preview", settings, shown.host, grants=grants)
    with pytest.raises(CapabilityDenied):
        shown.host.run_magic("csv_preview", str(path))
    assert shown.objects == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "usage: %csv_preview PATH"),
        ("a.csv --rows 0", "--rows takes a number from 1 to 10000, not '0'"),
        ("a.csv --delimiter ab", "--delimiter takes one character"),
        ("a.csv --colour red", "unexpected '--colour'"),
        ("missing.csv", "missing.csv: no such file"),
    ],
)
def test_csv_preview_reports_bad_lines_in_one_line(
    tmp_path: Path,
    settings: Settings,
    shown: Shown,
    monkeypatch: pytest.MonkeyPatch,
    line: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    load_demo(
        "csv-preview",
        settings,
        shown.host,
        grants=[f"fs.read:{tmp_path}", "ipython.magics", "display"],
    )
    with pytest.raises(UsageError, match=re.escape(message)):
        shown.host.run_magic("csv_preview", line)


# --------------------------------------------------------------------------- sqlite-magic


def test_sqlite_magic_runs_a_cell_in_memory_and_shows_the_last_rows(
    settings: Settings, shown: Shown, capsys: pytest.CaptureFixture[str]
) -> None:
    load_demo("sqlite-magic", settings, shown.host)
    cell = """
    CREATE TABLE t (a INTEGER, b TEXT);
    INSERT INTO t VALUES (1, 'x'), (2, 'semi;colon');  -- a comment; with a semicolon
    SELECT a, b FROM t ORDER BY a
    """
    shown.host.run_magic("sql", "", cell=cell)
    (table,) = shown.objects
    assert table.columns == ("a", "b")
    assert table.rows == ((1, "x"), (2, "semi;colon"))
    shown.host.run_magic("sql", "SELECT count(*) AS n FROM t")
    assert shown.objects[1].rows == ((2,),)
    shown.host.run_magic("sql", "DELETE FROM t WHERE a = 1")
    assert capsys.readouterr().out.strip() == "1 row changed"


def test_sqlite_magic_rolls_back_a_failing_cell(settings: Settings, shown: Shown) -> None:
    load_demo("sqlite-magic", settings, shown.host)
    shown.host.run_magic("sql", "", cell="CREATE TABLE t (a); INSERT INTO t VALUES (1);")
    with pytest.raises(UsageError, match="SQL error in 'INSERT INTO nope"):
        shown.host.run_magic(
            "sql", "", cell="INSERT INTO t VALUES (2); INSERT INTO nope VALUES (3)"
        )
    shown.host.run_magic("sql", "SELECT count(*) FROM t")
    assert shown.objects[-1].rows == ((1,),)
    with pytest.raises(UsageError, match="unfinished SQL statement"):
        shown.host.run_magic("sql", "", cell="SELECT 'never closed")


def test_sqlite_magic_closes_its_databases_at_unload(settings: Settings, shown: Shown) -> None:
    plugin = load_demo("sqlite-magic", settings, shown.host)
    shown.host.run_magic("sql", "", cell="CREATE TABLE kept (a)")
    unload(plugin)
    assert "sql" not in shown.host.magics["cell"] and "sql" not in shown.host.magics["line"]
    load_demo("sqlite-magic", settings, shown.host)
    with pytest.raises(UsageError, match="no such table: kept"):
        shown.host.run_magic("sql", "SELECT * FROM kept")


def test_sqlite_magic_writes_a_granted_file_and_reads_it_readonly(
    tmp_path: Path, settings: Settings, shown: Shown
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "shop.db"
    grants = ["ipython.magics", "display", f"fs.read:{folder}", f"fs.write:{folder}"]
    load_demo("sqlite-magic", settings, shown.host, grants=grants)
    shown.host.run_magic(
        "sql", str(db), cell="CREATE TABLE items (name, price); INSERT INTO items VALUES ('tea', 3)"
    )
    unload_all()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT * FROM items").fetchall() == [("tea", 3)]
    conn.close()
    read_only = ["ipython.magics", "display", f"fs.read:{folder}"]
    load_demo("sqlite-magic", settings, shown.host, grants=read_only)
    shown.host.run_magic("sql", f"{db} --readonly", cell="SELECT name FROM items")
    assert shown.objects[-1].rows == (("tea",),)
    with pytest.raises(UsageError, match="readonly database"):
        shown.host.run_magic("sql", f"{db} --readonly", cell="DELETE FROM items")


def test_sqlite_magic_without_fs_write_cannot_create_or_change_a_file(
    tmp_path: Path, settings: Settings, shown: Shown
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    grants = ["ipython.magics", "display", f"fs.read:{folder}"]
    load_demo("sqlite-magic", settings, shown.host, grants=grants)
    with pytest.raises(CapabilityDenied) as denied:
        shown.host.run_magic("sql", str(folder / "new.db"), cell="CREATE TABLE t (a)")
    assert denied.value.capability.startswith("fs.write:")
    assert not (folder / "new.db").exists()


def test_sqlite_magic_splits_statements_as_sqlite_does(settings: Settings, shown: Shown) -> None:
    module = load_demo("sqlite-magic", settings, shown.host).module
    text = "SELECT ';'; -- x;\nSELECT 2 /* ; */;\n\nSELECT 3"
    assert module.split_statements(text) == ["SELECT ';';", "-- x;\nSELECT 2 /* ; */;", "SELECT 3"]
    assert module.split_statements("  ;  ") == []


# --------------------------------------------------------------------------- cell-timer


def test_cell_timer_reports_each_cell_between_pre_and_post_run_cell(
    settings: Settings, shown: Shown, capsys: pytest.CaptureFixture[str]
) -> None:
    load_demo("cell-timer", settings, shown.host)
    shown.host.fire("post_run_cell", SimpleNamespace(execution_count=1, success=True))
    assert capsys.readouterr().out == ""  # no start seen: nothing guessed
    for count, success in ((2, True), (3, False)):
        shown.host.fire("pre_run_cell", SimpleNamespace(raw_cell="x = 1"))
        shown.host.fire("post_run_cell", SimpleNamespace(execution_count=count, success=success))
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"⏱ cell 2 took [\d.]+ (µs|ms|s)", lines[0])
    assert re.fullmatch(r"⏱ cell 3 took [\d.]+ (µs|ms|s) \(failed\)", lines[1])
    shown.host.run_magic("timings", "5")
    listed = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[1] for line in listed) == ["2", "3"]
    with pytest.raises(UsageError, match="usage: %timings"):
        shown.host.run_magic("timings", "lots")


def test_cell_timer_threshold_keeps_quick_cells_quiet(
    settings: Settings, shown: Shown, capsys: pytest.CaptureFixture[str]
) -> None:
    load_demo("cell-timer", settings, shown.host, config={"threshold": 3600})
    shown.host.fire("pre_run_cell", None)
    shown.host.fire("post_run_cell", SimpleNamespace(execution_count=1, success=True))
    assert capsys.readouterr().out == ""
    shown.host.run_magic("timings", "")
    assert capsys.readouterr().out.split()[:2] == ["cell", "1"]


def test_cell_timer_formats_durations_for_reading(settings: Settings, shown: Shown) -> None:
    fmt = load_demo("cell-timer", settings, shown.host).module.format_duration
    assert [fmt(s) for s in (0.00042, 0.0123, 2.414, 75, 7300)] == [
        "420 µs",
        "12.3 ms",
        "2.41 s",
        "1 min 15 s",
        "2 h 1 min",
    ]


def test_cell_timer_times_real_cells_in_ipython_until_unloaded(
    shell: Any, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = load_demo("cell-timer", settings, IPythonHost(shell))
    shell.run_cell("total = sum(range(1000))", store_history=True)
    out = capsys.readouterr().out
    assert re.search(r"^⏱ cell 1 took [\d.]+ (µs|ms|s)$", out, re.M), out
    shell.run_cell("1 / 0", store_history=True)
    assert "(failed)" in capsys.readouterr().out
    shell.run_cell("%timings 1", store_history=True)
    assert re.search(r"cell 2 .*\(failed\)", capsys.readouterr().out)
    unload(plugin)
    shell.run_cell("total += 1")
    assert "⏱" not in capsys.readouterr().out


def test_cell_timer_without_ipython_events_is_refused_at_activation(
    settings: Settings, shown: Shown
) -> None:
    with pytest.raises(ActivationError) as failed:
        load_demo("cell-timer", settings, shown.host, grants=["ipython.magics"])
    assert isinstance(failed.value.__cause__, CapabilityDenied)
    assert failed.value.__cause__.capability == "ipython.events"
    assert shown.host.events["pre_run_cell"] == [] and shown.host.magics["line"] == {}


# --------------------------------------------------------------------------- json-viewer


def test_json_viewer_renders_dicts_and_lists_as_an_escaped_tree(
    settings: Settings, shown: Shown
) -> None:
    load_demo("json-viewer", settings, shown.host)
    page = shown.host.format({"user": {"name": "<b>ada</b>", "langs": ["py", None]}})["text/html"]
    assert page.startswith('<div class="json-viewer">')
    assert "<b>ada</b>" not in page and "&#x27;&lt;b&gt;ada&lt;/b&gt;&#x27;" in page
    assert page.count("<details open>") == 1  # the first level only
    assert '{ <span class="c">1 key</span> }' in page
    assert '[ <span class="c">2 items</span> ]' in page
    assert "text/html" in shown.host.format([1, 2])
    assert shown.host.format((1, 2)) == {}


def test_json_viewer_bounds_long_and_self_containing_structures(
    settings: Settings, shown: Shown
) -> None:
    module = load_demo("json-viewer", settings, shown.host).module
    looped: list[object] = [1]
    looped.append(looped)
    assert "&lt;cycle&gt;" in module.to_html(looped)
    page = module.to_html(list(range(250)))
    assert "… 50 more" in page and page.count("<div>") == 200
    deep: list[object] = []
    for _ in range(80):
        deep = [deep]
    assert module.to_html(deep).count("<details") == module.MAX_DEPTH


def test_json_viewer_formats_in_a_real_shell_and_stops_at_unload(
    shell: Any, settings: Settings
) -> None:
    plugin = load_demo("json-viewer", settings, IPythonHost(shell))
    data, _ = shell.display_formatter.format({"k": [1, 2]})
    assert "json-viewer" in data["text/html"]
    assert data["text/plain"] == "{'k': [1, 2]}"
    unload(plugin)
    data, _ = shell.display_formatter.format({"k": [1, 2]})
    assert "text/html" not in data


def test_json_viewer_beta_shows_json_paths_and_takes_settings(
    settings: Settings, shown: Shown
) -> None:
    plugin = load_demo(
        "json-viewer",
        settings,
        shown.host,
        version="2.0.0b1",
        config={"open_depth": 2, "max_items": 2},
    )
    assert str(plugin.version) == "2.0.0b1"
    page = shown.host.format({"items": [{"a b": 1}, 2, 3], "n": 1})["text/html"]
    assert 'title="$.items"' in page and 'title="$.items[0]"' in page
    assert 'title="$.items[0][&quot;a b&quot;]"' in page
    assert page.count("<details open>") == 2
    assert "… 1 more" in page


def test_json_viewer_without_display_is_refused_at_activation(
    settings: Settings, shown: Shown
) -> None:
    with pytest.raises(ActivationError) as failed:
        load_demo("json-viewer", settings, shown.host, grants=())
    assert isinstance(failed.value.__cause__, CapabilityDenied)
    assert shown.host.formatters.get("text/html", {}) == {}


# --------------------------------------------------------------------------- http-get


def _json_route(body: bytes) -> Callable[[Any], None]:
    def handler(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handler


@pytest.fixture
def api(tmp_path: Path, http_server: Callable[..., LoopbackServer]) -> LoopbackServer:
    root = tmp_path / "site"
    root.mkdir()
    (root / "hello.txt").write_text("hello, notebook\n", encoding="utf-8")
    server = http_server(root)
    server.route("/repos/demo", _json_route(b'{"name": "demo", "stars": 42}'))
    server.route("/bad-json", _json_route(b'{"n": NaN}'))
    return server


def test_http_get_returns_parsed_json_from_a_granted_host(
    api: LoopbackServer, settings: Settings, shown: Shown, capsys: pytest.CaptureFixture[str]
) -> None:
    grants = ["ipython.magics", f"net:127.0.0.1:{api.port}"]
    load_demo("http-get", settings, shown.host, grants=grants)
    assert shown.host.run_magic("http_get", api.url("repos/demo")) == {"name": "demo", "stars": 42}
    assert capsys.readouterr().out.strip() == "200 OK  application/json"
    assert shown.host.run_magic("http_get", api.url("hello.txt")) == "hello, notebook\n"
    assert shown.host.run_magic("http_get", api.url("bad-json")) == '{"n": NaN}'
    assert "not valid JSON" in capsys.readouterr().out
    headers = f"{api.url('repos/demo')} --text -H 'X-Trace: 7'"
    assert shown.host.run_magic("http_get", headers) == '{"name": "demo", "stars": 42}'
    assert api.requests[-1][2]["X-Trace"] == "7"


def test_http_get_to_a_host_not_granted_is_denied_before_connecting(
    api: LoopbackServer, settings: Settings, shown: Shown
) -> None:
    # As published: api.github.com and httpbin.org only.
    manifest = read_manifest(source_folder("http-get"))
    assert declared(manifest) == ["ipython.magics", "net:api.github.com", "net:httpbin.org"]
    load_demo("http-get", settings, shown.host)
    with pytest.raises(CapabilityDenied) as denied:
        shown.host.run_magic("http_get", api.url("repos/demo"))
    assert denied.value.plugin_id == "http-get"
    assert denied.value.capability == f"net:127.0.0.1:{api.port}"
    assert api.count() == 0


def test_http_get_redirect_to_a_host_not_granted_is_denied(
    api: LoopbackServer,
    http_server: Callable[..., LoopbackServer],
    tmp_path: Path,
    settings: Settings,
    shown: Shown,
) -> None:
    other = http_server(tmp_path)
    api.route("/moved", redirect_to(other.url("anything")))
    load_demo(
        "http-get", settings, shown.host, grants=["ipython.magics", f"net:127.0.0.1:{api.port}"]
    )
    with pytest.raises(CapabilityDenied):
        shown.host.run_magic("http_get", api.url("moved"))
    assert api.count("/moved") == 1 and other.count() == 0


def test_http_get_cuts_off_an_endless_body(
    api: LoopbackServer, settings: Settings, shown: Shown
) -> None:
    api.route("/endless", endless())
    module = load_demo(
        "http-get", settings, shown.host, grants=["ipython.magics", f"net:127.0.0.1:{api.port}"]
    ).module
    with pytest.raises(UsageError, match=f"larger than {module.MAX_BYTES} bytes"):
        shown.host.run_magic("http_get", api.url("endless"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "give a full http(s) URL"),
        ("ftp://x", "give a full http(s) URL"),
        ("http://a -H x", "--header takes NAME:VALUE"),
    ],
)
def test_http_get_reports_bad_lines_in_one_line(
    settings: Settings, shown: Shown, line: str, message: str
) -> None:
    load_demo("http-get", settings, shown.host)
    with pytest.raises(UsageError, match=re.escape(message)):
        shown.host.run_magic("http_get", line)


# --------------------------------------------------------------------------- units


def test_units_converts_and_pushes_convert_until_unloaded(settings: Settings, shown: Shown) -> None:
    plugin = load_demo("units", settings, shown.host)
    answer = shown.host.run_magic("units", "3 km to mi")
    assert repr(answer) == "1.86411 mi"
    assert answer == pytest.approx(1.864113576712)
    assert repr(shown.host.run_magic("units", "98.6 F to C")) == "37 C"
    assert repr(shown.host.run_magic("units", "1_500 MiB in GB")) == "1.57286 GB"
    assert repr(shown.host.run_magic("units", "6 ft in in")) == "72 in"
    convert = shown.host.user_ns["convert"]
    assert convert(-40, "C", "F") == pytest.approx(-40)
    assert convert(1, "kWh", "kJ") == pytest.approx(3600)
    unload(plugin)
    assert "convert" not in shown.host.user_ns


def test_units_explains_what_it_cannot_convert(settings: Settings, shown: Shown) -> None:
    load_demo("units", settings, shown.host)
    with pytest.raises(UsageError, match="cannot convert km \\(length\\) to kg \\(mass\\)"):
        shown.host.run_magic("units", "1 km to kg")
    with pytest.raises(UsageError, match="unknown unit 'kmh'; did you mean"):
        shown.host.run_magic("units", "1 kmh to mph")
    with pytest.raises(UsageError, match="usage: %units"):
        shown.host.run_magic("units", "three km to mi")


def test_units_in_a_real_shell_answers_numbers_and_one_line_errors(
    shell: Any, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    load_demo("units", settings, IPythonHost(shell))
    shell.run_cell("x = %units 3 km to mi", store_history=True)
    assert repr(shell.user_ns["x"]) == "1.86411 mi"
    shell.run_cell("y = convert(1, 'mi', 'km') * 2", store_history=True)
    assert shell.user_ns["y"] == pytest.approx(3.218688)
    capsys.readouterr()
    shell.run_cell("%units 1 km to kg", store_history=True)
    assert capsys.readouterr().err.strip() == "UsageError: cannot convert km (length) to kg (mass)"


def test_units_1_0_has_no_temperatures_and_1_1_adds_them(settings: Settings, shown: Shown) -> None:
    load_demo("units", settings, shown.host, version="1.0.0")
    with pytest.raises(UsageError, match="unknown unit 'F'"):
        shown.host.run_magic("units", "98.6 F to C")
    assert repr(shown.host.run_magic("units", "2 kWh to kcal")) == "1720.84 kcal"
    unload_all()
    plugin = load_demo("units", settings, shown.host, version="1.1.0")
    assert str(plugin.version) == "1.1.0"
    assert repr(shown.host.run_magic("units", "0 K to C")) == "-273.15 C"


def test_units_without_ipython_namespace_is_refused_at_activation(
    settings: Settings, shown: Shown
) -> None:
    with pytest.raises(ActivationError):
        load_demo("units", settings, shown.host, grants=["ipython.magics"])
    assert shown.host.magics["line"] == {} and "convert" not in shown.host.user_ns


# --------------------------------------------------------------------------- todo


def test_todo_keeps_a_list_in_its_storage_across_loads(
    settings: Settings, shown: Shown, capsys: pytest.CaptureFixture[str]
) -> None:
    load_demo("todo", settings, shown.host)
    for line in ("add check the outliers", "add plot March", "add email Ada", "done 1"):
        shown.host.run_magic("todo", line)
    capsys.readouterr()
    unload_all()
    load_demo("todo", settings, shown.host)
    shown.host.run_magic("todo", "")
    assert capsys.readouterr().out.splitlines() == [
        "1. [x] check the outliers",
        "2. [ ] plot March",
        "3. [ ] email Ada",
        "2 of 3 left",
    ]
    shown.host.run_magic("todo", "remove 2")
    shown.host.run_magic("todo", "clear")
    assert capsys.readouterr().out.splitlines()[-2:] == ["1. [ ] email Ada", "1 of 1 left"]
    assert (settings.home / "data" / "todo" / "todo.json").is_file()


def test_todo_sets_a_damaged_list_aside(
    settings: Settings, shown: Shown, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = settings.home / "data" / "todo"
    storage.mkdir(parents=True)
    (storage / "todo.json").write_text("{not json", encoding="utf-8")
    load_demo("todo", settings, shown.host)
    assert "could not be read" in capsys.readouterr().out
    assert (storage / "todo.json.broken").read_text(encoding="utf-8") == "{not json"
    shown.host.run_magic("todo", "add start again")
    assert "1. [ ] start again" in capsys.readouterr().out


def test_todo_rejects_bad_commands(settings: Settings, shown: Shown) -> None:
    load_demo("todo", settings, shown.host)
    with pytest.raises(UsageError, match="there is no item '4'; the list has 0"):
        shown.host.run_magic("todo", "done 4")
    with pytest.raises(UsageError, match="usage: %todo"):
        shown.host.run_magic("todo", "frobnicate")


# --------------------------------------------------------------------------- regex-tester


def test_regex_tester_highlights_matches_and_tables_named_groups(
    settings: Settings, shown: Shown
) -> None:
    load_demo("regex-tester", settings, shown.host)
    shown.host.run_magic(
        "regex",
        r"(?P<user>\w+)@(?P<host>[\w.]+) --flags i",
        cell="write to Ada@example.org <or> grace@navy.mil\n",
    )
    (result,) = shown.objects
    table = result.table()
    assert table.columns == ("#", "span", "match", "user", "host")
    assert table.rows == (
        (1, "9-24", "Ada@example.org", "Ada", "example.org"),
        (2, "30-44", "grace@navy.mil", "grace", "navy.mil"),
    )
    page = result._repr_html_()
    assert "<mark>Ada@example.org</mark> &lt;or&gt; <mark>grace@navy.mil</mark>" in page


def test_regex_tester_reports_a_broken_pattern_in_one_line(
    settings: Settings, shown: Shown
) -> None:
    load_demo("regex-tester", settings, shown.host)
    with pytest.raises(UsageError, match="the pattern does not compile: missing \\)"):
        shown.host.run_magic("regex", "(unclosed", cell="text")
    with pytest.raises(UsageError, match="unknown flag 'q'"):
        shown.host.run_magic("regex", "a --flags q", cell="text")


def test_regex_tester_stops_at_the_match_cap(settings: Settings, shown: Shown) -> None:
    module = load_demo("regex-tester", settings, shown.host).module
    found = module.search("", "x" * 5000)  # an empty match at every position
    assert len(found.matches) == module.MAX_MATCHES and found.truncated
    assert found.table().caption == "1000+ match(es)"
