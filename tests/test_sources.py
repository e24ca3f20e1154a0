"""Every source kind materializes into a folder plus a validated manifest; downloads are
bounded and pinned; the content-addressed cache unpacks an artifact once.

The url and index sources run against a real HTTP server on 127.0.0.1
serving files (wheels built here, and one published wheel) from tmp_path.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from plugmarket.errors import ArchiveError, IntegrityError, ManifestError, SourceError
from plugmarket.settings import Settings
from plugmarket.sources import PluginFiles, Source, unpack_artifact
from tests.support.httpserver import LoopbackServer, drop_connection, redirect_to
from tests.support.simpleindex import Link, html_page, json_page, serve
from tests.support.wheels import build_wheel, sha256_file, snapshot, write_zip

Server = Callable[..., LoopbackServer]

DATA = Path(__file__).parent / "data" / "wheels"
PUBLISHED = DATA / "more_itertools-11.2.1-py3-none-any.whl"
PUBLISHED_SHA256 = "35a7377edd1dd6608dcb2cdf534ded55ea32d49448875ad042cd3f879fb1ded0"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


def literal(plugin_id: str, version: str = "1.0", extra: str = "") -> str:
    return f"__plugin__ = {{'id': {plugin_id!r}, 'version': {version!r}{extra}}}\n"


def greeter_wheel(folder: Path, version: str = "1.0", **kwargs: object) -> Path:
    files = {
        "greeter/__init__.py": "from .words import HELLO\n",
        "greeter/words.py": "HELLO = 'hello'\n",
        "greeter/plugin.toml": f'id = "greeter"\nversion = "{version}"\n'
        'capabilities = ["display"]\n',
    }
    return build_wheel(folder, "greeter", version, files, **kwargs)  # type: ignore[arg-type]


def assert_code_at(files: PluginFiles, *names: str) -> None:
    for name in names:
        assert (files.root / name).is_file(), name


# --- local -----------------------------------------------------------------------------


def test_local_py_file_is_used_in_place(tmp_path: Path, settings: Settings, home: Path) -> None:
    plugin = tmp_path / "plugins" / "hello.py"
    plugin.parent.mkdir()
    plugin.write_text(literal("hello", "0.3"))
    files = Source.local(plugin).materialize(settings)
    assert (files.root, files.top) == (plugin.parent, "hello")
    assert (files.manifest.id, str(files.manifest.version)) == ("hello", "0.3")
    assert files.sha256 == sha256_file(plugin)
    assert files.origin == plugin.as_uri()
    assert not (home / "cache").exists()  # nothing copied


def test_local_package_folder_is_used_in_place_and_hashed_over_its_files(
    tmp_path: Path, settings: Settings, home: Path
) -> None:
    pkg = tmp_path / "plugins" / "tables"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.toml").write_text('id = "tables"\nversion = "2.0"\n')
    (pkg / "core.py").write_text("ROWS = 1\n")
    first = Source.local(pkg).materialize(settings)
    assert (first.root, first.top, first.manifest.id) == (pkg.parent, "tables", "tables")
    assert not (home / "cache").exists()
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"bytecode")
    assert Source.local(pkg).materialize(settings).sha256 == first.sha256
    (pkg / "core.py").write_text("ROWS = 2\n")
    assert Source.local(pkg).materialize(settings).sha256 != first.sha256


def test_local_folder_without_init_is_not_a_package(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "loose").mkdir()
    with pytest.raises(SourceError, match=r"no __init__\.py"):
        Source.local(tmp_path / "loose").materialize(settings)


def test_missing_local_path_is_a_source_error(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(SourceError, match="no such file"):
        Source.local(tmp_path / "absent.py").materialize(settings)


def test_local_zip_of_a_package_folder(tmp_path: Path, settings: Settings, home: Path) -> None:
    path = write_zip(
        tmp_path / "charts.zip",
        [
            ("charts/__init__.py", literal("charts", "1.1")),
            ("charts/draw.py", "def draw(): return 'ok'\n"),
            ("README.txt", "read me"),
        ],
    )
    files = Source.local(path).materialize(settings)
    assert files.root == home / "cache" / "sources" / sha256_file(path)
    assert files.top == "charts"
    assert (files.manifest.id, str(files.manifest.version)) == ("charts", "1.1")
    assert files.manifest.path == str(files.root / "charts" / "__init__.py")
    assert_code_at(files, "charts/__init__.py", "charts/draw.py")


def test_local_zip_of_a_package_s_contents_is_put_under_its_id(
    tmp_path: Path, settings: Settings
) -> None:
    path = write_zip(
        tmp_path / "flat.zip",
        [
            ("plugin.toml", 'id = "data-viewer"\nversion = "0.9"\n'),
            ("__init__.py", "from . import view\n"),
            ("view.py", "x = 1\n"),
        ],
    )
    files = Source.local(path).materialize(settings)
    assert (files.top, files.manifest.id) == ("data_viewer", "data-viewer")
    assert_code_at(
        files, "data_viewer/__init__.py", "data_viewer/view.py", "data_viewer/plugin.toml"
    )


def test_local_wheel_with_its_manifest_inside(tmp_path: Path, settings: Settings) -> None:
    wheel = greeter_wheel(tmp_path / "dist", "1.2")
    files = Source.local(wheel).materialize(settings)
    assert files.top == "greeter"
    assert (files.manifest.id, str(files.manifest.version)) == ("greeter", "1.2")
    assert [str(c) for c in files.manifest.capabilities] == ["display"]
    assert files.sha256 == sha256_file(wheel)
    assert_code_at(files, "greeter/__init__.py", "greeter/words.py", "greeter-1.2.dist-info/RECORD")


def test_wheel_without_a_manifest_gets_one_from_its_metadata(
    tmp_path: Path, settings: Settings
) -> None:
    wheel = build_wheel(
        tmp_path,
        "Tiny.Utils",
        "3.1.4",
        {"tiny_utils/__init__.py": "def twice(x): return 2 * x\n"},
        requires=["attrs>=22", "colorama; sys_platform == 'win32'"],
        summary="Small helpers",
    )
    manifest = Source.local(wheel).materialize(settings).manifest
    assert (manifest.id, str(manifest.version)) == ("tiny-utils", "3.1.4")
    assert manifest.summary == "Small helpers"
    assert (manifest.requires, manifest.capabilities) == ((), ())
    assert "attrs>=22" in manifest.description and "colorama" in manifest.description


def test_wheel_with_several_top_level_packages_and_no_way_to_choose_is_refused(
    tmp_path: Path, settings: Settings, home: Path
) -> None:
    wheel = build_wheel(
        tmp_path, "bundle", "1.0", {"alpha/__init__.py": "", "beta/__init__.py": ""}
    )
    before = snapshot(tmp_path)
    with pytest.raises(SourceError, match=r"found 2 \(alpha, beta\)"):
        Source.local(wheel).materialize(settings)
    assert snapshot(tmp_path) == before


def test_top_level_txt_chooses_among_several_packages(tmp_path: Path, settings: Settings) -> None:
    wheel = build_wheel(
        tmp_path,
        "bundle",
        "1.0",
        {"alpha/__init__.py": "", "tests/__init__.py": ""},
        top_level=["alpha"],
    )
    assert Source.local(wheel).materialize(settings).top == "alpha"


def test_zip_without_a_manifest_is_a_manifest_error(tmp_path: Path, settings: Settings) -> None:
    path = write_zip(tmp_path / "bare.zip", [("bare/__init__.py", "x = 1\n")])
    before = snapshot(tmp_path)
    with pytest.raises(ManifestError, match="no manifest found"):
        Source.local(path).materialize(settings)
    assert snapshot(tmp_path) == before


# --- url -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["py", "zip", "whl"])
def test_url_over_http_materializes(
    tmp_path: Path, settings: Settings, http_server: Server, kind: str
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    if kind == "py":
        (served / "hello.py").write_text(literal("hello"))
        name, top = "hello.py", "hello"
    elif kind == "zip":
        write_zip(served / "hello.zip", [("hello/__init__.py", literal("hello"))])
        name, top = "hello.zip", "hello"
    else:
        name, top = greeter_wheel(served).name, "greeter"
    server = http_server(served)
    url = server.url(name)
    files = Source.url(url, sha256=sha256_file(served / name)).materialize(settings)
    assert (files.top, files.origin, files.sha256) == (top, url, sha256_file(served / name))
    assert files.root.parent == settings.home / "cache" / "sources"
    assert files.manifest.id == top


def test_url_file_scheme_materializes(tmp_path: Path, settings: Settings) -> None:
    wheel = greeter_wheel(tmp_path / "dist")
    files = Source.url(wheel.as_uri()).materialize(settings)
    assert (files.top, files.manifest.id, files.origin) == ("greeter", "greeter", wheel.as_uri())


def test_url_sha256_mismatch_is_an_integrity_error(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    served = tmp_path / "served"
    wheel = greeter_wheel(served)
    server = http_server(served)
    before = snapshot(tmp_path)
    with pytest.raises(IntegrityError) as caught:
        Source.url(server.url(wheel.name), sha256="0" * 64).materialize(settings)
    assert caught.value.actual == sha256_file(wheel)
    assert snapshot(tmp_path) == before


def test_url_oversized_body_is_an_integrity_error(
    tmp_path: Path, home: Path, http_server: Server
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "big.py").write_text(literal("big") + "# padding\n" * 1000)
    server = http_server(served)
    with pytest.raises(IntegrityError, match="larger than the 1000 bytes"):
        Source.url(server.url("big.py")).materialize(Settings(home=home, max_plugin_size=1000))


def test_url_redirect_to_another_origin_is_refused(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "hello.py").write_text(literal("hello"))
    elsewhere = http_server(served)
    server = http_server(served)
    server.route("/hello.py", redirect_to(elsewhere.url("hello.py")))
    with pytest.raises(SourceError, match="refused a redirect"):
        Source.url(server.url("hello.py")).materialize(settings)
    assert elsewhere.count() == 0


def test_url_server_that_drops_the_connection_is_a_source_error(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    server = http_server(tmp_path)
    server.route("/cut.whl", drop_connection(b"PK\x03\x04"))
    with pytest.raises(SourceError, match="download failed"):
        Source.url(server.url("cut.whl")).materialize(settings)


def test_url_of_an_unknown_kind_of_file_is_refused(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SourceError, match=r"does not end in \.py, \.zip or \.whl"):
        Source.url((tmp_path / "notes.txt").as_uri()).materialize(settings)


def test_url_with_an_unsupported_scheme_is_refused() -> None:
    with pytest.raises(SourceError, match="not an https, http or file URL"):
        Source.url("ftp://example.com/p.whl")


# --- code ------------------------------------------------------------------------------


def test_code_is_written_into_the_cache_with_a_synthesized_manifest(
    settings: Settings, home: Path
) -> None:
    code = "def twice(x):\n    return 2 * x\n"
    files = Source.code(code, "my-helpers", version="0.2").materialize(settings)
    assert files.top == "my_helpers"
    assert (files.root / "my_helpers.py").read_text() == code
    assert files.root.parent == home / "cache" / "sources"
    assert (files.manifest.id, str(files.manifest.version)) == ("my-helpers", "0.2")
    assert files.sha256 == hashlib.sha256(code.encode()).hexdigest()
    assert files.origin == "code:my-helpers"


def test_code_manifest_literal_is_used_when_present(settings: Settings) -> None:
    code = literal("notes", "4.0", ", 'capabilities': ['display']")
    manifest = Source.code(code, "notes").materialize(settings).manifest
    assert (str(manifest.version), [str(c) for c in manifest.capabilities]) == ("4.0", ["display"])


def test_code_literal_with_another_id_is_refused(settings: Settings, home: Path) -> None:
    with pytest.raises(ManifestError, match="says id 'other'"):
        Source.code(literal("other"), "notes").materialize(settings)
    assert not (home / "cache").exists()


def test_code_id_that_is_no_module_name_is_refused(settings: Settings) -> None:
    with pytest.raises(SourceError, match="cannot be a Python module name"):
        Source.code("x = 1\n", "3d-plots").materialize(settings)


def test_same_code_under_two_ids_gets_two_cache_entries(settings: Settings) -> None:
    a = Source.code("x = 1\n", "first").materialize(settings)
    b = Source.code("x = 1\n", "second").materialize(settings)
    assert a.sha256 == b.sha256
    assert a.root != b.root
    assert (a.root / "first.py").is_file() and (b.root / "second.py").is_file()


# --- the content-addressed cache ---------------------------------------------------------


def test_same_artifact_twice_is_unpacked_once(tmp_path: Path, settings: Settings) -> None:
    wheel = greeter_wheel(tmp_path / "dist")
    first = Source.local(wheel).materialize(settings)
    module = first.root / "greeter" / "words.py"
    stamps = (first.root.stat().st_mtime_ns, module.stat().st_mtime_ns, module.stat().st_ino)
    tree = snapshot(first.root)
    second = Source.url(wheel.as_uri()).materialize(settings)
    assert second.root == first.root
    assert second.root.name == first.sha256
    assert (first.root.stat().st_mtime_ns, module.stat().st_mtime_ns, module.stat().st_ino) == (
        stamps
    )
    assert snapshot(first.root) == tree
    assert [p.name for p in first.root.parent.iterdir()] == [first.sha256]  # no temp left


# --- index (PEP 503 HTML, PEP 691 JSON) --------------------------------------------------


def publish(
    tmp_path: Path, http_server: Server, links: list[Link], *, fmt: str, name: str = "greeter"
) -> tuple[LoopbackServer, str]:
    """Serve ``tmp_path/files`` and a project page for ``name``; return the index URL."""
    server = http_server(tmp_path / "files")
    if fmt == "json":
        page, kind = json_page(name, links), "application/vnd.pypi.simple.v1+json"
    else:
        page, kind = html_page(links), "text/html; charset=utf-8"
    server.route(f"/simple/{name}/", serve(page, kind))
    return server, server.url("simple/")


def greeter_links(tmp_path: Path, versions: list[str]) -> list[Link]:
    links = []
    for version in versions:
        wheel = greeter_wheel(tmp_path / "files", version)
        links.append(Link(f"../../{wheel.name}", sha256_file(wheel)))
    return links


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_index_picks_the_highest_matching_pure_wheel(
    tmp_path: Path, settings: Settings, http_server: Server, fmt: str
) -> None:
    links = greeter_links(tmp_path, ["1.0", "1.5", "2.0"])
    compiled = build_wheel(
        tmp_path / "files", "greeter", "1.9", {"greeter/__init__.py": ""}, tag="cp311-cp311-win32"
    )
    links.append(Link(f"../../{compiled.name}", sha256_file(compiled)))
    links.append(Link("../../greeter-1.8.tar.gz", "0" * 64))
    server, index = publish(tmp_path, http_server, links, fmt=fmt)
    files = Source.index("greeter>=1,<2", index).materialize(settings)
    assert (files.manifest.id, str(files.manifest.version)) == ("greeter", "1.5")
    assert files.origin == f"index:greeter>=1,<2@{index}"
    assert files.sha256 == sha256_file(tmp_path / "files" / "greeter-1.5-py3-none-any.whl")
    accept = [h.get("Accept") for _, p, h in server.requests if p == "/simple/greeter/"]
    assert accept == ["application/vnd.pypi.simple.v1+json, text/html;q=0.1"]


def test_index_json_page_is_read_without_a_content_type(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    links = greeter_links(tmp_path, ["1.0"])
    server = http_server(tmp_path / "files")
    server.route("/simple/greeter/", serve(json_page("greeter", links), ""))
    files = Source.index("greeter", server.url("simple")).materialize(settings)
    assert str(files.manifest.version) == "1.0"


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_index_skips_yanked_files_unless_pinned(
    tmp_path: Path, settings: Settings, http_server: Server, fmt: str
) -> None:
    links = greeter_links(tmp_path, ["1.0", "1.1"])
    links[1].yanked = True
    _, index = publish(tmp_path, http_server, links, fmt=fmt)
    assert str(Source.index("greeter", index).materialize(settings).manifest.version) == "1.0"
    pinned = Source.index("greeter==1.1", index).materialize(settings)
    assert str(pinned.manifest.version) == "1.1"


def test_index_skips_files_for_another_python(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    links = greeter_links(tmp_path, ["1.0", "2.0"])
    links[1].requires_python = ">=4"
    _, index = publish(tmp_path, http_server, links, fmt="json")
    assert str(Source.index("greeter", index).materialize(settings).manifest.version) == "1.0"


def test_index_with_nothing_matching_lists_what_exists(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    links = greeter_links(tmp_path, ["1.0", "1.1"])
    links[1].yanked = True
    _, index = publish(tmp_path, http_server, links, fmt="html")
    with pytest.raises(SourceError) as caught:
        Source.index("greeter>=1.1", index).materialize(settings)
    message = caught.value.message
    assert "no pure-Python wheel of greeter matches 'greeter>=1.1'" in message
    assert "greeter-1.0-py3-none-any.whl (no match)" in message
    assert "greeter-1.1-py3-none-any.whl (yanked)" in message


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_index_tampered_wheel_is_an_integrity_error(
    tmp_path: Path, settings: Settings, http_server: Server, fmt: str
) -> None:
    links = greeter_links(tmp_path, ["1.0"])
    wheel = tmp_path / "files" / "greeter-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"\0")  # replaced after the index was published
    _, index = publish(tmp_path, http_server, links, fmt=fmt)
    before = snapshot(tmp_path)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        Source.index("greeter", index).materialize(settings)
    assert snapshot(tmp_path) == before


def test_index_file_without_a_hash_is_refused(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    links = greeter_links(tmp_path, ["1.0"])
    links[0].sha256 = None
    server, index = publish(tmp_path, http_server, links, fmt="html")
    with pytest.raises(IntegrityError, match="gives no sha256"):
        Source.index("greeter", index).materialize(settings)
    assert server.count("/greeter-1.0-py3-none-any.whl") == 0


def test_index_on_the_network_cannot_point_at_local_files(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    secret = tmp_path / "greeter-1.0-py3-none-any.whl"
    secret.write_bytes(b"private")
    links = [Link(secret.as_uri(), sha256_file(secret))]
    (tmp_path / "files").mkdir()
    _, index = publish(tmp_path, http_server, links, fmt="json")
    with pytest.raises(SourceError, match="not an http"):
        Source.index("greeter", index).materialize(settings)


def test_index_outside_the_allowed_origins_is_refused(
    tmp_path: Path, home: Path, http_server: Server
) -> None:
    links = greeter_links(tmp_path, ["1.0"])
    server, index = publish(tmp_path, http_server, links, fmt="html")
    settings = Settings(home=home, allowed_origins=("https://pypi.example.com",))
    with pytest.raises(SourceError, match="not in the allowed origins"):
        Source.index("greeter", index).materialize(settings)
    assert server.count() == 0


def test_published_library_wheel_from_a_pep503_index(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    files_dir = tmp_path / "files" / "packages"
    files_dir.mkdir(parents=True)
    (files_dir / PUBLISHED.name).write_bytes(PUBLISHED.read_bytes())
    assert sha256_file(files_dir / PUBLISHED.name) == PUBLISHED_SHA256
    links = [Link(f"../../packages/{PUBLISHED.name}", PUBLISHED_SHA256)]
    _, index = publish(tmp_path, http_server, links, fmt="html", name="more-itertools")
    files = Source.index("more-itertools>=10", index).materialize(settings)
    assert files.top == "more_itertools"
    assert (files.manifest.id, str(files.manifest.version)) == ("more-itertools", "11.2.1")
    assert (files.manifest.requires, files.manifest.capabilities) == ((), ())
    assert files.sha256 == PUBLISHED_SHA256
    assert_code_at(files, "more_itertools/__init__.py", "more_itertools/more.py")
    assert "def chunked(" in (files.root / "more_itertools" / "more.py").read_text()


# --- unpacking into the caller's folder (the installer's store) ---------------------------


def test_an_artifact_unpacks_into_the_callers_folder_naming_every_file(
    tmp_path: Path, settings: Settings, home: Path
) -> None:
    wheel = greeter_wheel(tmp_path / "w")
    data = wheel.read_bytes()
    dest = tmp_path / "dest"
    dest.mkdir()
    out = unpack_artifact(data, wheel.name, dest, settings, keep=100)
    assert out.files.root == dest and out.files.top == "greeter"
    assert out.files.sha256 == hashlib.sha256(data).hexdigest()
    assert out.member == "greeter/plugin.toml"
    assert out.files.manifest.path == str(dest / "greeter" / "plugin.toml")
    on_disk = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert sorted(rel for rel, _ in out.written) == on_disk
    kept = [rel for rel, contents in out.written if contents is not None]
    assert kept and len(kept) < len(on_disk)  # contents handed back up to 100 bytes in all
    assert all(contents == (dest / rel).read_bytes() for rel, contents in out.written if contents)
    assert sum(len(contents or b"") for _, contents in out.written) <= 100
    assert not (home / "cache").exists()  # straight into dest, not through the cache

    module = literal("solo").encode()
    solo = tmp_path / "solo"
    solo.mkdir()
    out = unpack_artifact(module, "solo.py", solo, settings, sha256="0" * 64, keep=len(module))
    assert out.written == (("solo.py", module),) and out.member == "solo.py"
    assert out.files.sha256 == "0" * 64 and (solo / "solo.py").read_bytes() == module
    with pytest.raises(SourceError, match="cannot write the plugin cache"):
        unpack_artifact(module, "solo.py", solo, settings)  # never over an existing file


def test_a_hostile_artifact_writes_nothing_into_the_callers_folder(
    tmp_path: Path, settings: Settings
) -> None:
    data = write_zip(
        tmp_path / "slip.zip", [("pkg/__init__.py", literal("pkg")), ("../evil.py", "x = 1\n")]
    ).read_bytes()
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError) as caught:
        unpack_artifact(data, "slip.zip", dest, settings, where="https://r.example/slip.zip")
    assert caught.value.member == "../evil.py" and caught.value.source.endswith("slip.zip")
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil.py").exists()
    with pytest.raises(SourceError, match=r"does not end in \.py, \.zip or \.whl"):
        unpack_artifact(data, "slip.tar", dest, settings)


def test_an_index_token_is_sent_to_the_index_and_recorded_nowhere(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    server, index = publish(tmp_path, http_server, greeter_links(tmp_path, ["1.0"]), fmt="html")
    with_token = index.replace("http://", "http://team:s3cr3t@")
    files = Source.index("greeter", with_token).materialize(settings)
    assert files.origin == f"index:greeter@{index}"  # without the token
    token = "Basic " + base64.b64encode(b"team:s3cr3t").decode()
    sent = [h.get("Authorization") for _, p, h in server.requests]
    assert sent and all(value == token for value in sent)  # the page and the wheel


def test_an_index_token_stays_out_of_the_message_when_nothing_matches(
    tmp_path: Path, settings: Settings, http_server: Server
) -> None:
    _, index = publish(tmp_path, http_server, greeter_links(tmp_path, ["1.0"]), fmt="html")
    with_token = index.replace("http://", "http://team:s3cr3t@")
    with pytest.raises(SourceError) as refused:
        Source.index("greeter>=5", with_token).materialize(settings)
    assert "s3cr3t" not in str(refused.value) and index in str(refused.value)
