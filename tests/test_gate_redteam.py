"""Red-team tests of the in-process capability gate: every front door we tried.

Each test is a real probe plugin (tests/support/probes.py) doing what an
overreaching plugin would do through a stdlib or plugmarket front door; each
proves the route is denied without the grant and, where meaningful, allowed
with it. The threat model's documented limits (object-graph walks,
monkeypatching, reads through the real ``os`` module, deferred C callables,
pre-3.14 gaps) are not tested here. Routes found open are kept out of this
file (they would fail) and reported instead.
"""

from __future__ import annotations

import contextlib
import ctypes  # loaded by the host first: the importlib route must still be gated
import gc
import io
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from plugmarket.errors import CapabilityDenied
from plugmarket.host import IPythonHost, PlainHost
from plugmarket.loader import load, unload
from plugmarket.settings import Settings
from plugmarket.sources import Source
from tests.support.httpserver import LoopbackServer, redirect_to
from tests.support.plugins import write_plugin
from tests.support.probes import load_probe, probe_denied, run_probe

assert ctypes.CDLL  # the host uses ctypes itself


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A folder of user files the probes aim at, and a secret beside it."""
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "empty").mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "a.json").write_text('"a"')
    (folder / "sub" / "b.txt").write_text("b")
    with zipfile.ZipFile(folder / "a.zip", "w") as zf:
        zf.writestr("m.txt", "a")
    with tarfile.open(folder / "a.tar", "w") as tf:
        tf.add(folder / "a.txt", arcname="m.txt")
    db = sqlite3.connect(folder / "ro.sqlite")
    db.execute("create table t(x)")
    db.execute("insert into t values (1)")
    db.commit()
    db.close()
    (tmp_path / "secret.txt").write_text("secret")
    return folder


# --- files -------------------------------------------------------------------------------

# id -> (kind, body): {d} is the data folder and {a} its a.txt (both as literals);
# a route returns "a" when allowed.
FILE_ROUTES: dict[str, tuple[str, str]] = {
    "open-bytes-path": (
        "fs.read",
        "with open({a}.encode(), 'rb') as f:\n    return f.read().decode()",
    ),
    "io-FileIO": ("fs.read", "import io\nwith io.FileIO({a}) as f:\n    return f.read().decode()"),
    "codecs-open": ("fs.read", "import codecs\nwith codecs.open({a}) as f:\n    return f.read()"),
    "linecache": ("fs.read", "import linecache\nreturn linecache.getlines({a})[0].strip()"),
    "json-load": (
        "fs.read",
        "import json\nwith open({d} + '/a.json') as f:\n    return json.load(f)",
    ),
    "io-open_code": (
        "fs.read",
        "import io\nwith io.open_code({a}) as f:\n    return f.read().decode()",
    ),
    "fileinput": (
        "fs.read",
        "import fileinput\nwith fileinput.input({a}) as f:\n    return next(f)",
    ),
    "os-open": ("fs.read", "import os\nfd = os.open({a}, 0)\nos.close(fd)\nreturn 'a'"),
    "path-open": (
        "fs.read",
        "import pathlib\nwith pathlib.Path({a}).open() as f:\n    return f.read()",
    ),
    "path-read_bytes": (
        "fs.read",
        "import pathlib\nreturn pathlib.Path({a}).read_bytes().decode()",
    ),
    "zipfile": (
        "fs.read",
        "import zipfile\nwith zipfile.ZipFile({d} + '/a.zip') as z:\n"
        "    return z.read('m.txt').decode()",
    ),
    "tarfile": (
        "fs.read",
        "import tarfile\nwith tarfile.open({d} + '/a.tar') as t:\n"
        "    return t.extractfile('m.txt').read().decode()",
    ),
    "glob": ("fs.read", "import glob\nreturn 'a' if glob.glob({d} + '/*.txt') else ''"),
    "os-walk": ("fs.read", "import os\nreturn 'a' if 'a.txt' in next(os.walk({d}))[2] else ''"),
    "os-scandir": ("fs.read", "import os\nreturn 'a' if list(os.scandir({d})) else ''"),
    "os-listdir": ("fs.read", "import os\nreturn 'a' if 'a.txt' in os.listdir({d}) else ''"),
    "path-iterdir": (
        "fs.read",
        "import pathlib\nreturn 'a' if list(pathlib.Path({d}).iterdir()) else ''",
    ),
    "path-glob": (
        "fs.read",
        "import pathlib\nreturn 'a' if list(pathlib.Path({d}).glob('*')) else ''",
    ),
    "shutil-copyfile-from": (
        "fs.read",
        "import shutil, pathlib\nshutil.copyfile({a}, STORAGE + '/c')\n"
        "return pathlib.Path(STORAGE, 'c').read_text()",
    ),
    "shutil-copytree-from": (
        "fs.read",
        "import shutil\nshutil.copytree({d} + '/sub', STORAGE + '/t', dirs_exist_ok=True)\n"
        "return 'a'",
    ),
    "open-w": ("fs.write", "open({d} + '/n.txt', 'w').close()\nreturn 'a'"),
    "open-a": ("fs.write", "open({a}, 'a').close()\nreturn 'a'"),
    "open-r+": ("fs.write", "open({a}, 'r+').close()\nreturn 'a'"),
    "os-open-creat": (
        "fs.write",
        "import os\nos.close(os.open({d} + '/n', os.O_CREAT))\nreturn 'a'",
    ),
    "shutil-copyfile-to": (
        "fs.write",
        "import shutil\nopen(STORAGE + '/c', 'w').close()\n"
        "shutil.copyfile(STORAGE + '/c', {d} + '/c')\nreturn 'a'",
    ),
    "shutil-copytree-to": (
        "fs.write",
        "import shutil, os\nos.makedirs(STORAGE + '/t', exist_ok=True)\n"
        "shutil.copytree(STORAGE + '/t', {d} + '/t')\nreturn 'a'",
    ),
    "shutil-move": ("fs.write", "import shutil\nshutil.move({a}, {d} + '/m.txt')\nreturn 'a'"),
    "shutil-rmtree-empty": ("fs.write", "import shutil\nshutil.rmtree({d} + '/empty')\nreturn 'a'"),
    "os-rename": ("fs.write", "import os\nos.rename({a}, {d} + '/r.txt')\nreturn 'a'"),
    "os-replace": ("fs.write", "import os\nos.replace({a}, {d} + '/r.txt')\nreturn 'a'"),
    "os-rename-out-of-storage": (
        "fs.write",
        "import os\nopen(STORAGE + '/x', 'w').close()\nos.rename(STORAGE + '/x', {d} + '/x')\n"
        "return 'a'",
    ),
    "os-rename-into-storage": ("fs.write", "import os\nos.rename({a}, STORAGE + '/x')\nreturn 'a'"),
    "os-remove": ("fs.write", "import os\nos.remove({a})\nreturn 'a'"),
    "os-rmdir": ("fs.write", "import os\nos.rmdir({d} + '/empty')\nreturn 'a'"),
    "os-makedirs": ("fs.write", "import os\nos.makedirs({d} + '/x/y')\nreturn 'a'"),
    "os-truncate": ("fs.write", "import os\nos.truncate({a}, 0)\nreturn 'a'"),
    "os-chmod": ("fs.write", "import os\nos.chmod({a}, 0o600)\nreturn 'a'"),
    "os-utime": ("fs.write", "import os\nos.utime({a})\nreturn 'a'"),
    "path-unlink": ("fs.write", "import pathlib\npathlib.Path({a}).unlink()\nreturn 'a'"),
    "path-mkdir": ("fs.write", "import pathlib\npathlib.Path({d}, 'new').mkdir()\nreturn 'a'"),
    "path-touch": ("fs.write", "import pathlib\npathlib.Path({a}).touch()\nreturn 'a'"),
    "path-rename": ("fs.write", "import pathlib\npathlib.Path({a}).rename({d} + '/r')\nreturn 'a'"),
    "path-write_text": (
        "fs.write",
        "import pathlib\npathlib.Path({a}).write_text('x')\nreturn 'a'",
    ),
    "os-link-to": (
        "fs.write",
        "import os\nopen(STORAGE + '/f', 'w').close()\nos.link(STORAGE + '/f', {d} + '/hl')\n"
        "return 'a'",
    ),
    "os-link-from": ("fs.write", "import os\nos.link({a}, STORAGE + '/hl')\nreturn 'a'"),
    "os-symlink-at": ("fs.write", "import os\nos.symlink(STORAGE, {d} + '/sl')\nreturn 'a'"),
    "sqlite3-connect": (
        "fs.write",
        "import sqlite3\nc = sqlite3.connect({d} + '/db.sqlite')\nc.close()\nreturn 'a'",
    ),
    "sqlite3-uri-read-only": (
        "fs.read",
        "import sqlite3\nc = sqlite3.connect('file:' + {d} + '/ro.sqlite?mode=ro', uri=True)\n"
        "n = c.execute('select count(*) from t').fetchone()[0]\nc.close()\nreturn 'a' * n",
    ),
    "os-symlink-to": ("fs.write", "import os\nos.symlink({a}, STORAGE + '/sl')\nreturn 'a'"),
}


@pytest.mark.parametrize(("kind", "body"), FILE_ROUTES.values(), ids=FILE_ROUTES.keys())
def test_file_front_doors_need_their_grant(
    kind: str, body: str, tmp_path: Path, home: Path, data: Path
) -> None:
    code = body.format(d=repr(str(data)), a=repr(str(data / "a.txt")))
    denied = probe_denied(tmp_path, home, code)
    assert denied.capability.partition(":")[0] == kind
    assert denied.plugin_id == "probe"
    assert run_probe(tmp_path, home, code, [f"{kind}:{data}"]) == "a"


def test_sqlite_in_memory_and_in_storage_need_no_grant(tmp_path: Path, home: Path) -> None:
    body = (
        "import sqlite3\nfor name in (':memory:', STORAGE + '/state.sqlite'):\n"
        "    c = sqlite3.connect(name)\n    c.execute('create table t(x)')\n    c.close()\n"
        "return 'a'"
    )
    assert run_probe(tmp_path, home, body) == "a"


def test_scoped_read_grant_does_not_allow_writing_or_a_sibling(
    tmp_path: Path, home: Path, data: Path
) -> None:
    grant = [f"fs.read:{data}/sub"]
    read = "with open({!r}) as f:\n    return f.read()"
    assert run_probe(tmp_path, home, read.format(f"{data}/sub/b.txt"), grant) == "b"
    for path in (f"{data}/a.txt", f"{data}/sub/../a.txt", f"{data}/sub/../../secret.txt"):
        with pytest.raises(CapabilityDenied):
            run_probe(tmp_path, home, read.format(path), grant)
    with pytest.raises(CapabilityDenied):
        run_probe(tmp_path, home, f"open({str(data / 'sub' / 'b.txt')!r}, 'a').close()", grant)


def test_relative_paths_are_resolved_against_the_current_folder(
    tmp_path: Path, home: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(data / "sub")
    body = "with open('../a.txt') as f:\n    return f.read()"
    assert probe_denied(tmp_path, home, body, [f"fs.read:{data}/sub"]).target == str(data / "a.txt")
    assert run_probe(tmp_path, home, body, [f"fs.read:{data}"]) == "a"


def test_links_out_of_a_granted_folder_or_storage_are_resolved_first(
    tmp_path: Path, home: Path, data: Path
) -> None:
    secret = tmp_path / "secret.txt"
    (data / "out").symlink_to(secret)
    (data / "hard").hardlink_to(data / "a.txt")
    grant = [f"fs.read:{data}"]
    read = "with open({!r}) as f:\n    return f.read()"
    assert run_probe(tmp_path, home, read.format(str(data / "hard")), grant) == "a"
    denied = probe_denied(tmp_path, home, read.format(str(data / "out")), grant)
    assert denied.target == str(secret)
    # A link the host left in the plugin's storage does not widen the storage either.
    storage = home / "data" / "probe"
    storage.mkdir(parents=True, exist_ok=True)
    (storage / "out").symlink_to(secret)
    assert probe_denied(tmp_path, home, "return open(STORAGE + '/out').read()").target == str(
        secret
    )
    # And the plugin cannot make such a link itself.
    body = f"import os\nos.symlink({str(secret)!r}, STORAGE + '/mine')"
    assert probe_denied(tmp_path, home, body).target == str(secret)


def test_a_file_descriptor_the_host_hands_over_is_usable(
    tmp_path: Path, home: Path, data: Path
) -> None:
    # Handing over an open descriptor is the host's consent; the plugin cannot open one.
    extra = f"import os\ndef read(fd):\n    return os.read(fd, 1)\nPATH = {str(data / 'a.txt')!r}\n"
    plugin = load_probe(tmp_path, home, "return os.open(PATH, 0)", extra=extra)
    fd = os.open(data / "a.txt", os.O_RDONLY)
    try:
        assert plugin.module.read(fd) == b"a"
    finally:
        os.close(fd)
    with pytest.raises(CapabilityDenied):
        plugin.module.attempt()


def test_storage_and_scratch_files_there_need_no_grant(tmp_path: Path, home: Path) -> None:
    body = """
import tempfile, os, pathlib, shutil
with tempfile.NamedTemporaryFile(dir=STORAGE) as f:
    f.write(b'x')
    named = f.name
fd, path = tempfile.mkstemp(dir=STORAGE)
os.close(fd)
os.remove(path)
folder = tempfile.mkdtemp(dir=STORAGE)
os.rmdir(folder)
p = pathlib.Path(STORAGE, 'sub')
p.mkdir()
(p / 'f').write_text('kept')
(p / 'f').rename(p / 'g')
return named.startswith(STORAGE), (p / 'g').read_text(), sorted(os.listdir(STORAGE))
"""
    assert run_probe(tmp_path, home, body) == (True, "kept", ["sub"])


def test_default_temp_folder_needs_a_write_grant(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An honest plugin should put scratch files in ctx.storage (above); the system
    # temp folder is shared with every other program and needs fs.write.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    body = "import tempfile\nwith tempfile.TemporaryFile() as f:\n    f.write(b'x')\nreturn 'a'"
    assert probe_denied(tmp_path, home, body).capability.startswith(f"fs.write:{scratch}")
    assert run_probe(tmp_path, home, body, [f"fs.write:{scratch}"]) == "a"


def test_no_plugin_may_move_the_kernels_current_folder(
    tmp_path: Path, home: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    body = f"import os\nos.chdir({str(data)!r})\nreturn os.getcwd()"
    for grants in ([], [f"fs.read:{data}"], ["fs.read", "fs.write"]):
        denied = probe_denied(tmp_path, home, body, grants)
        assert (denied.operation, denied.capability) == ("os.chdir", "")
    assert os.getcwd() == str(tmp_path)


# --- network -----------------------------------------------------------------------------


@pytest.fixture
def servers(
    http_server: Callable[..., LoopbackServer], tmp_path: Path
) -> tuple[LoopbackServer, LoopbackServer]:
    """A server the probes are granted, and another one they are not."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("hello")
    granted, other = http_server(root), http_server(root)
    granted.route("jump", redirect_to(other.url("hello.txt")))
    return granted, other


def _collect_sockets_leaked_by_denials() -> list[str]:
    """Collect sockets that stdlib helpers leave open when a connect is denied.

    ``socket.create_connection`` closes its socket only on ``OSError``, and
    CapabilityDenied is not one (reported, with a test, outside this suite).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


# id -> body aimed at 127.0.0.1:{port}; returns "ok" when allowed.
NET_ROUTES: dict[str, str] = {
    "socket-connect": "import socket\n"
    "with socket.socket() as s:\n    s.connect(('127.0.0.1', {port}))\nreturn 'ok'",
    "socket-connect_ex": "import socket\n"
    "with socket.socket() as s:\n"
    "    return 'ok' if s.connect_ex(('127.0.0.1', {port})) == 0 else ''",
    "create_connection": "import socket\n"
    "socket.create_connection(('127.0.0.1', {port})).close()\nreturn 'ok'",
    "udp-sendto": "import socket\n"
    "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
    "    s.sendto(b'x', ('127.0.0.1', {port}))\nreturn 'ok'",
    "udp-connect-send": "import socket\n"
    "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
    "    s.connect(('127.0.0.1', {port}))\n    s.send(b'x')\nreturn 'ok'",
    "udp-sendmsg": "import socket\n"
    "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
    "    s.sendmsg([b'x'], [], 0, ('127.0.0.1', {port}))\nreturn 'ok'",
    "http-client": "import http.client\nc = http.client.HTTPConnection('127.0.0.1', {port})\n"
    "c.request('GET', '/hello.txt')\nok = c.getresponse().read() == b'hello'\nc.close()\n"
    "return 'ok' if ok else ''",
    "urllib": "import urllib.request\n"
    "with urllib.request.urlopen('http://127.0.0.1:{port}/hello.txt') as r:\n"
    "    return 'ok' if r.read() == b'hello' else ''",
    "httpx": "import httpx\n"
    "return 'ok' if httpx.get('http://127.0.0.1:{port}/hello.txt').text else ''",
    "asyncio": "import asyncio\nasync def go():\n"
    "    r, w = await asyncio.open_connection('127.0.0.1', {port})\n"
    "    w.close()\n    await w.wait_closed()\nasyncio.run(go())\nreturn 'ok'",
    "ctx-http": "return 'ok' if CTX.http.get('http://127.0.0.1:{port}/hello.txt').text else ''",
}


@pytest.mark.parametrize("body", NET_ROUTES.values(), ids=NET_ROUTES.keys())
def test_network_front_doors_allow_the_granted_port_only(
    body: str, tmp_path: Path, home: Path, servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, other = servers
    code = body.format(port=other.port)
    denied = probe_denied(tmp_path, home, code, [f"net:127.0.0.1:{granted.port}"])
    assert denied.capability == f"net:127.0.0.1:{other.port}"
    _collect_sockets_leaked_by_denials()
    assert run_probe(tmp_path, home, code, [f"net:127.0.0.1:{other.port}"]) == "ok"


@pytest.mark.parametrize(
    "address",
    ["('::1', {port})", "('::ffff:127.0.0.1', {port})"],
    ids=["ipv6-loopback", "ipv4-mapped"],
)
def test_other_address_families_are_not_the_granted_ipv4_host(
    address: str, tmp_path: Path, home: Path, servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, _ = servers
    body = (
        "import socket\nwith socket.socket(socket.AF_INET6) as s:\n"
        f"    s.connect_ex({address.format(port=granted.port)})\nreturn 'reached'"
    )
    denied = probe_denied(tmp_path, home, body, [f"net:127.0.0.1:{granted.port}"])
    assert denied.operation == "socket.connect"


def test_unix_sockets_need_unscoped_net(tmp_path: Path, home: Path) -> None:
    import socket

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen()
        body = (
            "import socket\nwith socket.socket(socket.AF_UNIX) as s:\n"
            f"    s.connect({str(path)!r})\nreturn 'ok'"
        )
        assert probe_denied(tmp_path, home, body, ["net:127.0.0.1"]).target == str(path)
        abstract = body.replace(repr(str(path)), "b'\\0plugmarket-probe'")
        assert probe_denied(tmp_path, home, abstract, ["net:localhost"]).operation == (
            "socket.connect"
        )
        assert run_probe(tmp_path, home, body, ["net"]) == "ok"


@pytest.mark.parametrize(
    "body",
    [
        "import socket\nwith socket.socket() as s:\n    s.bind(('127.0.0.1', 0))\nreturn 'ok'",
        "import socket\nsocket.create_server(('127.0.0.1', 0)).close()\nreturn 'ok'",
        "import socket\nreturn 'ok' if socket.gethostbyname('localhost') else ''",
        "import socket\nreturn 'ok' if socket.getaddrinfo('localhost', 80) else ''",
    ],
    ids=["bind", "create_server", "gethostbyname", "getaddrinfo"],
)
def test_binding_and_name_lookups_need_net(body: str, tmp_path: Path, home: Path) -> None:
    # Without any net grant, even creating an internet socket is refused.
    assert probe_denied(tmp_path, home, body).capability.partition(":")[0] == "net"
    _collect_sockets_leaked_by_denials()
    assert run_probe(tmp_path, home, body, ["net"]) == "ok"


def test_a_granted_name_lends_its_addresses_not_other_ports(
    tmp_path: Path, home: Path, servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, other = servers
    grant = [f"net:localhost:{granted.port}"]
    body = (
        "import socket\nsocket.getaddrinfo('localhost', {port})\n"
        "with socket.socket() as s:\n    s.connect(('127.0.0.1', {port}))\nreturn 'ok'"
    )
    assert run_probe(tmp_path, home, body.format(port=granted.port), grant) == "ok"
    denied = probe_denied(tmp_path, home, body.format(port=other.port), grant)
    assert denied.capability == f"net:localhost:{other.port}"
    # Looking the name up without a port does not open every port of its addresses.
    lookup = "import socket\nsocket.getaddrinfo('localhost', None)\n" + body.format(
        port=other.port
    ).replace(f"socket.getaddrinfo('localhost', {other.port})\n", "")
    assert probe_denied(tmp_path, home, lookup, grant).operation == "socket.getaddrinfo"
    # Nor does a grant by name cover a different name for the same address.
    direct = f"return CTX.http.get('http://127.0.0.1:{granted.port}/hello.txt').text"
    assert probe_denied(tmp_path, home, direct, grant).operation == "http request"


@pytest.mark.parametrize("client", ["urllib", "ctx.http"])
def test_a_redirect_from_a_granted_host_to_another_is_denied(
    client: str, tmp_path: Path, home: Path, servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, other = servers
    url = granted.url("jump")
    body = {
        "urllib": f"import urllib.request\nreturn urllib.request.urlopen({url!r}).read()",
        "ctx.http": f"return CTX.http.get({url!r}).text",
    }[client]
    denied = probe_denied(tmp_path, home, body, [f"net:127.0.0.1:{granted.port}"])
    assert str(other.port) in denied.capability
    assert other.count("/hello.txt") == 0
    _collect_sockets_leaked_by_denials()


def test_ctx_http_reads_the_host_the_way_the_connection_does(
    tmp_path: Path, home: Path, servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, other = servers
    by_ip = [f"net:127.0.0.1:{granted.port}"]
    by_name = [f"net:localhost:{granted.port}"]
    get = "return CTX.http.get({!r}).text"
    # userinfo that looks like the granted host does not make another host granted
    trick = f"http://127.0.0.1:{granted.port}@127.0.0.1:{other.port}/hello.txt"
    assert probe_denied(tmp_path, home, get.format(trick), by_ip).capability == (
        f"net:127.0.0.1:{other.port}"
    )
    # case is not a difference; an IPv6 literal is another host
    upper = f"http://LOCALHOST:{granted.port}/hello.txt"
    assert run_probe(tmp_path, home, get.format(upper), by_name) == "hello"
    v6 = f"http://[::1]:{granted.port}/hello.txt"
    assert probe_denied(tmp_path, home, get.format(v6), by_ip).capability == (
        f"net:[::1]:{granted.port}"
    )
    # a trailing dot names the same host: not denied (the lookup may fail on its own)
    attempt = (
        "try:\n    CTX.http.get({!r})\nexcept Exception as e:\n    return type(e).__name__\n"
        "return 'reached'"
    )
    dotted = f"http://localhost.:{granted.port}/hello.txt"
    assert run_probe(tmp_path, home, attempt.format(dotted), by_name) != "CapabilityDenied"
    granted_v6 = attempt.format(v6)
    assert run_probe(tmp_path, home, granted_v6, [f"net:[::1]:{granted.port}"]) in (
        "ConnectError",
        "reached",
    )


# --- processes ---------------------------------------------------------------------------

# id -> body; returns "ok" when allowed.
PROCESS_ROUTES: dict[str, str] = {
    "fork-then-execv": "import os\npid = os.fork()\nif pid == 0:\n    try:\n"
    "        os.execv('/bin/true', ['true'])\n    finally:\n        os._exit(7)\n"
    "return 'ok' if os.waitpid(pid, 0)[1] == 0 else 'child failed'",
    "spawnv": "import os\nreturn 'ok' if os.spawnv(os.P_WAIT, '/bin/true', ['true']) == 0 else ''",
    "posix_spawnp": "import os\npid = os.posix_spawnp('true', ['true'], {})\n"
    "return 'ok' if os.waitpid(pid, 0)[1] == 0 else ''",
    "multiprocessing-fork": "import multiprocessing as mp\n"
    "p = mp.get_context('fork').Process(target=int)\np.start()\np.join()\n"
    "return 'ok' if p.exitcode == 0 else ''",
    "shell-true": "import subprocess\n"
    "return 'ok' if subprocess.run('true', shell=True).returncode == 0 else ''",
    "os-popen": "import os\nwith os.popen('echo ok') as f:\n    return f.read().strip()",
    "asyncio-subprocess": "import asyncio\nasync def go():\n"
    "    p = await asyncio.create_subprocess_exec('true')\n    return await p.wait()\n"
    "return 'ok' if asyncio.run(go()) == 0 else ''",
    "kill-another-pid": "import os\nos.kill(os.getppid(), 0)\nreturn 'ok'",
    "import-_posixsubprocess": "import _posixsubprocess\nreturn 'ok'",
}


@pytest.mark.parametrize(("route", "body"), PROCESS_ROUTES.items(), ids=PROCESS_ROUTES.keys())
def test_process_front_doors_need_subprocess(
    route: str, body: str, tmp_path: Path, home: Path
) -> None:
    assert probe_denied(tmp_path, home, body).capability == "subprocess"
    grants = ["subprocess"]
    if route == "multiprocessing-fork":
        grants.append("fs.write:/dev/null")  # its child opens os.devnull (reported)
    assert run_probe(tmp_path, home, body, grants) == "ok"


def test_pty_spawn_needs_subprocess(tmp_path: Path, home: Path) -> None:
    body = "import pty\npty.spawn(['true'])\nreturn 'ok'"
    assert probe_denied(tmp_path, home, body).operation == "pty.spawn"


def test_exec_in_a_forked_child_is_still_the_plugins(tmp_path: Path, home: Path) -> None:
    plugin = load_probe(tmp_path, home, "import os\nos.execv('/bin/true', ['true'])")
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 4
        try:
            plugin.module.attempt()
        except CapabilityDenied:
            code = 3
        except BaseException:
            code = 5
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3


# --- environment -------------------------------------------------------------------------


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PLUGMARKET_PROBE", "probe-value")
    monkeypatch.setenv("SECRET_TOKEN", "s3cret-value")
    return "s3cret-value"


ENV_DENIED: dict[str, str] = {
    "getenv": "import os\nreturn os.getenv('SECRET_TOKEN')",
    "environ-get": "import os\nreturn os.environ.get('SECRET_TOKEN')",
    "environ-item": "import os\nreturn os.environ['SECRET_TOKEN']",
    "environ-in": "import os\nreturn 'SECRET_TOKEN' in os.environ",
    "environ-pop": "import os\nreturn os.environ.pop('SECRET_TOKEN', None)",
    "environ-setdefault": "import os\nreturn os.environ.setdefault('SECRET_TOKEN', 'x')",
    "environ-update": "import os\nos.environ.update(SECRET_TOKEN='x')",
    "environ-del": "import os\ndel os.environ['SECRET_TOKEN']",
    "environb": "import os\nreturn os.environb.get(b'SECRET_TOKEN')",
    "getenvb": "import os\nreturn os.getenvb(b'SECRET_TOKEN')",
    "from-os-import-environ": "from os import environ\nreturn environ.get('SECRET_TOKEN')",
    "from-os-import-getenv": "from os import getenv\nreturn getenv('SECRET_TOKEN')",
    "import-os-path": "import os.path\nreturn os.environ.get('SECRET_TOKEN')",
    "putenv": "import os\nos.putenv('SECRET_TOKEN', 'x')",
    "unsetenv": "import os\nos.unsetenv('SECRET_TOKEN')",
}


@pytest.mark.parametrize("body", ENV_DENIED.values(), ids=ENV_DENIED.keys())
def test_environment_front_doors_are_denied(
    body: str, tmp_path: Path, home: Path, secret_env: str
) -> None:
    denied = probe_denied(tmp_path, home, body)
    assert denied.capability in ("env:SECRET_TOKEN", "env")
    assert os.environ["SECRET_TOKEN"] == secret_env


ENV_FILTERED: dict[str, str] = {
    "copy": "import os\nreturn os.environ.copy()",
    "items": "import os\nreturn list(os.environ.items())",
    "keys": "import os\nreturn list(os.environ.keys())",
    "values": "import os\nreturn list(os.environ.values())",
    "dict": "import os\nreturn dict(os.environ)",
    "repr": "import os\nreturn repr(os.environ) + str(os.environ)",
    "clear": "import os\nos.environ.clear()\nreturn len(os.environ)",
}


@pytest.mark.parametrize("body", ENV_FILTERED.values(), ids=ENV_FILTERED.keys())
def test_whole_environment_views_show_only_granted_names(
    body: str, tmp_path: Path, home: Path, secret_env: str
) -> None:
    shown = repr(run_probe(tmp_path, home, body, ["env:PLUGMARKET_*"]))
    assert "SECRET_TOKEN" not in shown and secret_env not in shown
    assert os.environ["SECRET_TOKEN"] == secret_env


def test_scoped_env_grant_reads_its_names(tmp_path: Path, home: Path, secret_env: str) -> None:
    body = (
        "import os\nname = 'PLUGMARKET_PROBE'\n"
        "return os.getenv(name), os.environ[name], name in os.environ"
    )
    assert run_probe(tmp_path, home, body, ["env:PLUGMARKET_PROBE"]) == (
        "probe-value",
        "probe-value",
        True,
    )
    assert run_probe(tmp_path, home, ENV_DENIED["getenv"], ["env"]) == secret_env


# --- native code -------------------------------------------------------------------------

NATIVE_ROUTES: dict[str, str] = {
    "import-ctypes": "import ctypes\nreturn ctypes.CDLL(None).getpid() > 0",
    "import-_ctypes": "import _ctypes\nreturn True",
    "import-cffi": "import cffi\nreturn True",
    "ctypes-util": "import ctypes.util\nreturn True",
    "importlib-loaded-ctypes": "import importlib\n"
    "return importlib.import_module('ctypes').CDLL(None).getpid() > 0",
    "importlib-_ctypes": "import importlib\n"
    "return importlib.import_module('_ctypes').dlopen(None) is not None",
}


@pytest.mark.parametrize("body", NATIVE_ROUTES.values(), ids=NATIVE_ROUTES.keys())
def test_native_front_doors_need_native(body: str, tmp_path: Path, home: Path) -> None:
    assert "ctypes" in sys.modules  # the importlib routes find it already loaded
    assert probe_denied(tmp_path, home, body).capability == "native"
    assert run_probe(tmp_path, home, body, ["native"]) is True


# --- attribution: plugin code run later, elsewhere, or through C ---------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("secret")
    return path


# id -> body that reads PATH (the secret) some indirect way
INDIRECT_ROUTES: dict[str, str] = {
    "thread": "import threading\nout = []\n"
    "def run():\n    try:\n        out.append(open(PATH).close())\n"
    "    except Exception as e:\n        out.append(e)\n"
    "t = threading.Thread(target=run)\nt.start()\nt.join()\n"
    "if isinstance(out[0], Exception):\n    raise out[0]",
    "timer-python-function": "import threading\nout = []\n"
    "def run():\n    try:\n        out.append(open(PATH).close())\n"
    "    except Exception as e:\n        out.append(e)\n"
    "t = threading.Timer(0, run)\nt.start()\nt.join()\n"
    "if isinstance(out[0], Exception):\n    raise out[0]",
    "exec-string": "exec('open(PATH).close()')",
    "exec-fresh-globals": "exec('open(P).close()', {'P': PATH})",
    "eval-string": "eval('open(PATH).close()')",
    "exec-code-object": "exec(compile('open(P).close()', 'f.py', 'exec'), {'P': PATH})",
    "exec-real-builtins-dict": "import builtins\n"
    "exec('open(P).close()', {'__builtins__': builtins.__dict__, 'P': PATH})",
    "eval-lambda-real-builtins": "import builtins\n"
    "f = eval('lambda: open(P).close()', {'__builtins__': builtins.__dict__, 'P': PATH})\nf()",
    "function-from-code": "import types, builtins\n"
    "ns = {'__builtins__': builtins.__dict__, 'P': PATH}\n"
    "exec(compile('def g():\\n    open(P).close()', '/elsewhere.py', 'exec'), ns)\nns['g']()",
    "io-open-from-compiled-code": "exec(compile('import io\\nio.open(P).close()', 'h.py', 'exec'), "
    "{'P': PATH})",
    "functools-partial-open": "import functools\nfunctools.partial(open, PATH)().close()",
    "map-open": "for f in map(open, [PATH]):\n    f.close()",
    "methodcaller": "import operator, pathlib\n"
    "operator.methodcaller('read_text')(pathlib.Path(PATH))",
    "max-key": "import pathlib\nmax([pathlib.Path(PATH)], key=pathlib.Path.read_text)",
}


@pytest.mark.parametrize("body", INDIRECT_ROUTES.values(), ids=INDIRECT_ROUTES.keys())
def test_indirect_calls_are_still_the_plugins(
    body: str, tmp_path: Path, home: Path, secret: Path
) -> None:
    extra = f"PATH = {str(secret)!r}\n"
    plugin = load_probe(tmp_path, home, body, extra=extra)
    with pytest.raises(CapabilityDenied) as denied:
        plugin.module.attempt()
    assert (denied.value.plugin_id, denied.value.target) == ("probe", str(secret))
    unload(plugin)
    assert run_probe(tmp_path, home, body, [f"fs.read:{secret}"], extra=extra) is None


def test_code_the_host_resumes_or_calls_later_is_the_plugins(
    tmp_path: Path, home: Path, secret: Path
) -> None:
    extra = textwrap.dedent(
        f"""
        PATH = {str(secret)!r}
        FINALISED = []
        def steps():
            yield 1
            yield open(PATH).read()
        async def later():
            return open(PATH).read()
        class Shown:
            def __repr__(self):
                return open(PATH).read()
        class Dropped:
            def __del__(self):
                try:
                    open(PATH).close()
                    FINALISED.append("read")
                except Exception as e:
                    FINALISED.append(type(e).__name__)
        def keep():
            global KEPT
            KEPT = Dropped()
            KEPT.cycle = KEPT
        """
    )
    seen: list[CapabilityDenied] = []
    plugin = load_probe(tmp_path, home, "return 1", extra=extra, audit=seen.append)
    module = plugin.module
    gen = module.steps()
    assert next(gen) == 1
    with pytest.raises(CapabilityDenied):
        next(gen)  # the host resumes the plugin's generator
    import asyncio

    with pytest.raises(CapabilityDenied):
        asyncio.run(module.later())  # the host awaits the plugin's coroutine
    with pytest.raises(CapabilityDenied):
        repr(module.Shown())  # the host inspects a plugin object
    callback = module.Shown().__repr__
    with pytest.raises(CapabilityDenied):
        callback()  # a bound method kept by the host
    module.keep()
    del module.KEPT
    gc.collect()  # the host's collector runs the plugin's finaliser
    assert module.FINALISED == ["CapabilityDenied"]
    assert {d.plugin_id for d in seen} == {"probe"} and len(seen) == 5


def test_a_finaliser_at_exit_is_the_plugins(tmp_path: Path, home: Path, secret: Path) -> None:
    target = tmp_path / "written-at-exit.txt"
    package = tmp_path / "atexit-probe"
    write_plugin(
        package,
        "leaver",
        f"import atexit\n@atexit.register\ndef bye():\n    open({str(target)!r}, 'w').close()\n",
    )
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from plugmarket.host import PlainHost
        from plugmarket.loader import load
        from plugmarket.settings import Settings
        from plugmarket.sources import Source
        load(Source.local(Path({str(package / "leaver" / "leaver")!r})),
             settings=Settings(home=Path({str(home)!r})), host=PlainHost())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert "CapabilityDenied" in out.stderr, out.stderr
    assert not target.exists()


def test_callbacks_given_to_ctx_run_as_the_plugin_even_when_they_are_c_functions(
    tmp_path: Path, home: Path, secret: Path, shell: object
) -> None:
    extra = textwrap.dedent(
        f"""
        import functools, io
        PATH = {str(secret)!r}
        def activate(ctx):
            ctx.on("pre_execute", functools.partial(io.open, PATH))
            ctx.on("post_execute", lambda: open(PATH).close())
        """
    )
    seen: list[CapabilityDenied] = []
    plugin = load_probe(
        tmp_path,
        home,
        "return 1",
        extra=extra,
        host=IPythonHost(shell),
        audit=seen.append,
        grants=["ipython.events"],
    )
    with io.StringIO() as err, contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        shell.run_cell("1 + 1")  # type: ignore[attr-defined]
    assert [d.target for d in seen] == [str(secret), str(secret)]
    unload(plugin)


def test_every_plugin_on_the_stack_needs_the_grant(
    tmp_path: Path, home: Path, secret: Path
) -> None:
    settings = Settings(home=home)
    library = write_plugin(
        tmp_path / "lib",
        "reader-lib",
        f"import pathlib\ndef read():\n    return pathlib.Path({str(secret)!r}).read_text()\n"
        "def call(fn):\n    return fn()\n",
    )
    lib = load(
        Source.local(library), settings=settings, host=PlainHost(), grants=[f"fs.read:{secret}"]
    )
    assert lib.module.read() == "secret"
    caller = write_plugin(
        tmp_path / "user",
        "lib-user",
        "import reader_lib\n"
        f"def via_lib():\n    return reader_lib.read()\n"
        f"import pathlib\ndef own():\n    return pathlib.Path({str(secret)!r}).read_text()\n"
        "def lib_calls_me():\n    return reader_lib.call(own)\n",
        requires=["reader-lib"],
    )
    user = load(Source.local(caller), settings=settings, host=PlainHost())
    with pytest.raises(CapabilityDenied) as denied:
        user.module.via_lib()  # a granted library is no deputy for an ungranted caller
    assert denied.value.plugin_id == "lib-user"
    with pytest.raises(CapabilityDenied):
        user.module.lib_calls_me()  # nor is a granted caller's frame below
    unload(user)
    granted_user = load(
        Source.local(caller), settings=settings, host=PlainHost(), grants=[f"fs.read:{secret}"]
    )
    assert granted_user.module.via_lib() == "secret"
    unload(granted_user)
    unload(lib)
    # The other direction: a granted caller cannot lend its grant to an ungranted library.
    lib = load(Source.local(library), settings=settings, host=PlainHost())
    granted_user = load(
        Source.local(caller), settings=settings, host=PlainHost(), grants=[f"fs.read:{secret}"]
    )
    assert granted_user.module.own() == "secret"
    with pytest.raises(CapabilityDenied) as denied:
        granted_user.module.via_lib()
    assert denied.value.plugin_id == "reader-lib"


# --- the host and honest plugins keep working --------------------------------------------


def test_the_host_is_not_gated_while_a_plugin_is_loaded(
    tmp_path: Path, home: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = load_probe(tmp_path, home, "return 1")
    assert (data / "a.txt").read_text() == "a"
    (data / "host.txt").write_text("host")
    os.rename(data / "host.txt", data / "host2.txt")
    module_file = tmp_path / "hostmod_redteam.py"
    module_file.write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    assert importlib.import_module("hostmod_redteam").VALUE == 7
    assert subprocess.run(["true"], check=False).returncode == 0
    assert os.environ.get("HOME") is not None
    assert plugin.module.attempt() == 1


def test_ipython_cells_run_normally_with_a_plugin_loaded(
    tmp_path: Path, home: Path, data: Path, shell: object
) -> None:
    load_probe(tmp_path, home, "return 1", host=IPythonHost(shell))
    result = shell.run_cell(  # type: ignore[attr-defined]
        f"import os, json, subprocess\n"
        f"with open({str(data / 'a.txt')!r}) as f:\n    text = f.read()\n"
        f"listing = os.listdir({str(data)!r})\n"
        "code = subprocess.run(['true']).returncode\n"
    )
    assert result.success, result.error_in_exec
    ns = shell.user_ns  # type: ignore[attr-defined]
    assert (ns["text"], "a.txt" in ns["listing"], ns["code"]) == ("a", True, 0)


def test_an_honest_plugin_can_use_everyday_stdlib(tmp_path: Path, home: Path) -> None:
    body = textwrap.dedent(
        """
        import traceback, warnings, inspect, zoneinfo, locale, email.utils, unicodedata
        import importlib.metadata, json, uuid, tempfile, logging
        try:
            1 / 0
        except ZeroDivisionError:
            last = traceback.format_exc().splitlines()[-1]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.warn("careful")
        CTX.log.info("logged by the plugin")
        with tempfile.TemporaryFile(dir=STORAGE) as f:
            f.write(b"x")
        return (
            last,
            str(caught[0].message),
            inspect.getsource(attempt).startswith("def attempt"),
            str(zoneinfo.ZoneInfo("Europe/Paris")),
            isinstance(locale.getlocale(), tuple),
            bool(email.utils.formatdate()),
            unicodedata.name("a"),
            bool(importlib.metadata.version("httpx")),
            json.loads(json.dumps({"a": 1})),
            len(str(uuid.uuid4())),
        )
        """
    )
    assert run_probe(tmp_path, home, body) == (
        "ZeroDivisionError: division by zero",
        "careful",
        True,
        "Europe/Paris",
        True,
        True,
        "LATIN SMALL LETTER A",
        True,
        {"a": 1},
        36,
    )
