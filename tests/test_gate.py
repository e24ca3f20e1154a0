"""Capabilities are enforced through every route a plugin can take, at import time
and later, and scoped grants allow exactly their scope."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from plugmarket.errors import CapabilityDenied, LoadError
from plugmarket.host import PlainHost
from plugmarket.loader import LoadedPlugin, load, unload
from plugmarket.settings import Settings
from plugmarket.sources import Source
from tests.support.httpserver import LoopbackServer
from tests.support.plugins import write_plugin


@pytest.fixture
def server(http_server: Callable[..., LoopbackServer], tmp_path: Path) -> LoopbackServer:
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("hello")
    return http_server(root)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_text("a")
    (data / "sub" / "b.csv").write_text("b")
    (tmp_path / "secret.txt").write_text("secret")
    return data


def _plugin(tmp_path: Path, body: str, *, at_import: bool) -> Path:
    code = "def attempt():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    if at_import:
        code += "RESULT = attempt()\n"
    name = f"p{len(list(tmp_path.glob('p*')))}"
    return write_plugin(tmp_path / name, "probe", code)


def _run(
    tmp_path: Path,
    home: Path,
    body: str,
    grants: list[str],
    *,
    at_import: bool,
) -> object:
    settings = Settings(home=home)
    plugin: LoadedPlugin = load(
        Source.local(_plugin(tmp_path, body, at_import=at_import)),
        settings=settings,
        host=PlainHost(),
        grants=grants,
    )
    try:
        return plugin.module.RESULT if at_import else plugin.module.attempt()
    finally:
        unload(plugin)


def _denied(
    tmp_path: Path, home: Path, body: str, grants: list[str], *, at_import: bool
) -> CapabilityDenied:
    if at_import:
        with pytest.raises(LoadError) as info:
            _run(tmp_path, home, body, grants, at_import=True)
        cause = info.value.__cause__
        assert isinstance(cause, CapabilityDenied), repr(cause)
        return cause
    with pytest.raises(CapabilityDenied) as denied:
        _run(tmp_path, home, body, grants, at_import=False)
    return denied.value


# (capability kind, route code; {path}, {url}, {port} are filled in)
ROUTES: list[tuple[str, str]] = [
    ("fs.read", "with open({path!r}) as f:\n    return f.read()"),
    ("fs.read", "import pathlib\nreturn pathlib.Path({path!r}).read_text()"),
    ("fs.read", "import os\nfd = os.open({path!r}, os.O_RDONLY)\nos.close(fd)\nreturn 'a'"),
    ("fs.read", "import io\nwith io.open({path!r}) as f:\n    return f.read()"),
    ("fs.write", "with open({path!r}, 'w') as f:\n    f.write('x')\nreturn 'a'"),
    ("fs.write", "import pathlib\npathlib.Path({path!r}).write_text('x')\nreturn 'a'"),
    ("fs.write", "import os\nos.remove({path!r})\nreturn 'a'"),
    ("net", "import socket\nsocket.create_connection(('127.0.0.1', {port})).close()\nreturn 'a'"),
    ("net", "import urllib.request\nreturn urllib.request.urlopen({url!r}).read().decode()[:1]"),
    ("net", "import httpx\nreturn httpx.get({url!r}).text[:1]"),
    ("subprocess", "import subprocess\nsubprocess.run(['true'], check=True)\nreturn 'a'"),
    ("subprocess", "import os\nassert os.system('true') == 0\nreturn 'a'"),
    (
        "subprocess",
        "import os\npid = os.posix_spawn('/bin/true', ['true'], {{}})\n"
        "os.waitpid(pid, 0)\nreturn 'a'",
    ),
    ("env", "import os\nreturn os.environ['PLUGMARKET_PROBE'][:1]"),
    ("env", "import os\nreturn os.getenv('PLUGMARKET_PROBE')[:1]"),
    ("env", "import os\nos.environ['PLUGMARKET_PROBE'] = 'a'\nreturn 'a'"),
    ("native", "import ctypes\nreturn 'a'"),
    ("native", "import importlib\nc = importlib.import_module('ctypes')\nc.CDLL(None)\nreturn 'a'"),
]


@pytest.mark.parametrize("at_import", [True, False], ids=["at-import", "called-later"])
@pytest.mark.parametrize(
    ("kind", "route"), ROUTES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(ROUTES)]
)
def test_route_needs_its_capability(
    kind: str,
    route: str,
    at_import: bool,
    tmp_path: Path,
    home: Path,
    files: Path,
    server: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLUGMARKET_PROBE", "a-value")
    target = files / "a.csv"
    body = route.format(path=str(target), url=server.url("hello.txt"), port=server.port)
    denied = _denied(tmp_path, home, body, [], at_import=at_import)
    assert denied.plugin_id == "probe"
    assert denied.capability.partition(":")[0] == kind
    target.write_text("a")
    assert _run(tmp_path, home, body, [kind], at_import=at_import) in ("a", "h")


def test_denials_reach_the_audit_sink(tmp_path: Path, home: Path) -> None:
    seen: list[CapabilityDenied] = []
    pkg = write_plugin(
        tmp_path, "audited", "def attempt():\n    return open('/etc/hostname').read()\n"
    )
    plugin = load(
        Source.local(pkg), settings=Settings(home=home), host=PlainHost(), audit=seen.append
    )
    with pytest.raises(CapabilityDenied):
        plugin.module.attempt()
    assert [(d.plugin_id, d.operation, d.target) for d in seen] == [
        ("audited", "open", "/etc/hostname")
    ]


def test_scoped_file_grants_allow_exactly_their_scope(
    tmp_path: Path, home: Path, files: Path
) -> None:
    outside = tmp_path / "secret.txt"
    (files / "link.csv").symlink_to(outside)
    grant = [f"fs.read:{files}/*.csv"]
    read = "with open({!r}) as f:\n    return f.read()"
    assert _run(tmp_path, home, read.format(str(files / "a.csv")), grant, at_import=False) == "a"
    for path in (
        files / "sub" / "b.csv",
        outside,
        files / "link.csv",
        files / "sub" / ".." / ".." / "secret.txt",
    ):
        with pytest.raises(CapabilityDenied):
            _run(tmp_path, home, read.format(str(path)), grant, at_import=False)
    write = "with open({!r}, 'w') as f:\n    f.write('x')\nreturn 'a'"
    with pytest.raises(CapabilityDenied):
        _run(tmp_path, home, write.format(str(files / "a.csv")), grant, at_import=False)


def test_scoped_net_grant_allows_its_port_only(
    tmp_path: Path, home: Path, server: LoopbackServer, http_server: Callable[..., LoopbackServer]
) -> None:
    other = http_server(tmp_path)
    body = "import urllib.request\nreturn urllib.request.urlopen({!r}).read().decode()[:1]"
    grant = [f"net:127.0.0.1:{server.port}"]
    assert _run(tmp_path, home, body.format(server.url("hello.txt")), grant, at_import=False) == "h"
    with pytest.raises(CapabilityDenied) as info:
        _run(tmp_path, home, body.format(other.url("x")), grant, at_import=False)
    assert info.value.capability == f"net:127.0.0.1:{other.port}"
    by_name = body.format(f"http://localhost:{server.port}/hello.txt")
    assert _run(tmp_path, home, by_name, [f"net:localhost:{server.port}"], at_import=False) == "h"


def test_scoped_env_grant(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGMARKET_PROBE", "a")
    assert (
        _run(
            tmp_path,
            home,
            "import os\nreturn os.environ['PLUGMARKET_PROBE']",
            ["env:PLUGMARKET_PROBE"],
            at_import=False,
        )
        == "a"
    )
    with pytest.raises(CapabilityDenied):
        _run(
            tmp_path,
            home,
            "import os\nreturn os.environ['HOME']",
            ["env:PLUGMARKET_PROBE"],
            at_import=False,
        )
    listed = _run(
        tmp_path,
        home,
        "import os\nreturn sorted(os.environ)",
        ["env:PLUGMARKET_*"],
        at_import=False,
    )
    assert listed == sorted(n for n in os.environ if n.startswith("PLUGMARKET_"))


def test_storage_and_own_code_need_no_grant(tmp_path: Path, home: Path) -> None:
    pkg = write_plugin(
        tmp_path,
        "keeper",
        """
        import os
        def activate(ctx):
            (ctx.storage / "state.txt").write_text("kept")
            global STORED
            STORED = (ctx.storage / "state.txt").read_text()
            with open(os.path.join(os.path.dirname(__file__), "__init__.py")) as f:
                STORED += f.read()[:3]
        """,
    )
    plugin = load(Source.local(pkg), settings=Settings(home=home), host=PlainHost())
    assert plugin.module.STORED == "kept__p"
    assert (home / "data" / "keeper" / "state.txt").read_text() == "kept"


@pytest.mark.parametrize(
    "body",
    [
        "exec('open(\\'/etc/hostname\\')', {})",
        "eval('open(\\'/etc/hostname\\')')",
        "exec(compile('import os; os.system(\\'true\\')', 'x', 'exec'),"
        " {'__builtins__': __import__('builtins').__dict__})",
        "import builtins\nbuiltins.open('/etc/hostname')",
        "import threading\nerrors = []\ndef run():\n    try:\n        open('/etc/hostname')\n"
        "    except Exception as e:\n        errors.append(e)\n"
        "t = threading.Thread(target=run)\nt.start()\nt.join()\nraise errors[0]",
        "import sys\nsys.settrace(None)",
        "import gc\ngc.get_referrers(1)",
        "breakpoint()",
    ],
    ids=[
        "exec-fresh-globals",
        "eval",
        "exec-real-builtins",
        "builtins-module",
        "thread",
        "settrace",
        "gc-walk",
        "breakpoint",
    ],
)
def test_side_doors_are_gated(body: str, tmp_path: Path, home: Path) -> None:
    with pytest.raises(CapabilityDenied):
        _run(tmp_path, home, body + "\nreturn 'reached'", [], at_import=False)


def test_host_code_pays_no_gate_when_no_plugin_is_on_the_stack(tmp_path: Path, home: Path) -> None:
    pkg = write_plugin(tmp_path, "quiet", "")
    load(Source.local(pkg), settings=Settings(home=home), host=PlainHost())
    # The host itself may do anything while a plugin is loaded.
    assert Path("/etc/hostname").read_text() is not None
    assert os.system("true") == 0
    assert sys.modules["plugmarket.plugins.quiet"]


def test_sqlite_files_need_file_grants(tmp_path: Path, home: Path, files: Path) -> None:
    db = files / "notes.db"
    body = f"import sqlite3\nc = sqlite3.connect({str(db)!r})\nc.close()\nreturn 'a'"
    with pytest.raises(CapabilityDenied) as info:
        _run(tmp_path, home, body, [f"fs.read:{files}"], at_import=False)
    assert info.value.capability == f"fs.write:{files}"  # a new file: its folder is the grant
    assert info.value.target == str(db)
    assert not db.exists()
    assert _run(tmp_path, home, body, [f"fs.write:{files}"], at_import=False) == "a"
    read_only = (
        f"import sqlite3\nc = sqlite3.connect('file:{db}?mode=ro', uri=True)\nc.close()\nreturn 'a'"
    )
    assert _run(tmp_path, home, read_only, [f"fs.read:{files}"], at_import=False) == "a"
    memory = "import sqlite3\nsqlite3.connect(':memory:').close()\nreturn 'a'"
    assert _run(tmp_path, home, memory, [], at_import=False) == "a"
