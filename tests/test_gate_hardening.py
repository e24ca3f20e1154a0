"""Holes and breakages a red-team review of the in-process gate found, each now closed.

Every test states the behaviour the docs promise, or an honest plugin needs.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import logging.handlers
import socket
import sqlite3
import tempfile
import textwrap
import warnings
from pathlib import Path

import pytest

from plugmarket import loader
from plugmarket.errors import CapabilityDenied, LoadError
from plugmarket.host import IPythonHost
from tests.support.probes import load_probe, probe_denied, run_probe


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("secret")
    return path


# --- H1: paths relative to a dir_fd are checked against the current folder -----------------


def _deep_in_storage(home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Put the kernel's current folder 40 levels inside the probe's storage (the
    host may; a plugin may not), so a path taken from there lands in storage."""
    deep = home / "data" / "probe" / Path(*["d"] * 40)
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    return "import os\ntop = os.open(STORAGE, os.O_RDONLY)\nup = '../' * 40\n"


def test_dir_fd_open_is_read_from_the_descriptors_folder(
    tmp_path: Path, home: Path, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _deep_in_storage(home, monkeypatch)
    body += f"fd = os.open(up + {str(secret)[1:]!r}, os.O_RDONLY, dir_fd=top)\n"
    body += "return os.read(fd, 100)"
    with pytest.raises(CapabilityDenied) as info:
        run_probe(tmp_path, home, body)
    assert info.value.target == str(secret)


def test_dir_fd_mkdir_and_unlink_are_read_from_the_descriptors_folder(
    tmp_path: Path, home: Path, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rel = str(tmp_path)[1:]
    body = _deep_in_storage(home, monkeypatch)
    mkdir = body + f"os.mkdir(up + {rel!r} + '/made', dir_fd=top)\n"
    unlink = body + f"os.unlink(up + {str(secret)[1:]!r}, dir_fd=top)\n"
    for attempt in (mkdir, unlink):
        with pytest.raises(CapabilityDenied):
            run_probe(tmp_path, home, attempt)
    assert secret.exists() and not (tmp_path / "made").exists()


def test_a_plugin_may_not_move_the_kernels_folder_even_into_its_storage(
    tmp_path: Path, home: Path
) -> None:
    denied = probe_denied(tmp_path, home, "import os\nos.chdir(STORAGE)")
    assert denied.operation == "os.chdir"


def test_removing_a_full_folder_in_storage_works(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    body = """
import os, shutil, tempfile
os.makedirs(STORAGE + '/cache/sub')
open(STORAGE + '/cache/sub/f', 'w').close()
shutil.rmtree(STORAGE + '/cache')
with tempfile.TemporaryDirectory(dir=STORAGE) as d:
    open(d + '/x', 'w').close()
return sorted(os.listdir(STORAGE))
"""
    assert run_probe(tmp_path, home, body) == []


# --- H2: plugin code runs inside the hook, with every check switched off ------------------


@pytest.mark.parametrize(
    "call",
    ["subprocess.Popen([Sneaky()])", "pty.spawn([Sneaky()])", "sqlite3.connect(Sneaky())"],
    ids=["Popen-executable-str", "pty-spawn-argv-repr", "sqlite3-connect-repr"],
)
def test_plugin_code_never_runs_inside_the_audit_hook(
    call: str, tmp_path: Path, home: Path, secret: Path
) -> None:
    extra = textwrap.dedent(
        f"""
        import os, subprocess, pty, sqlite3
        STOLEN = []
        class Sneaky:
            def __repr__(self):
                fd = os.open({str(secret)!r}, os.O_RDONLY)  # the hook is 'busy': unchecked
                STOLEN.append(os.read(fd, 100))
                os.close(fd)
                return 'true'
            __str__ = __repr__
        """
    )
    plugin = load_probe(tmp_path, home, call, extra=extra)
    with contextlib.suppress(CapabilityDenied, TypeError):
        plugin.module.attempt()
    assert plugin.module.STOLEN == []


# --- H3: multiprocessing 'spawn' starts an unrestricted child without `subprocess` --------


def test_multiprocessing_spawn_needs_subprocess(tmp_path: Path, home: Path) -> None:
    made = tmp_path / "made-by-child"
    body = (
        "import multiprocessing as mp, os\n"
        f"p = mp.get_context('spawn').Process(target=os.mkdir, args=({str(made)!r},))\n"
        "p.start()\np.join()\nreturn p.exitcode"
    )
    with contextlib.suppress(CapabilityDenied):
        run_probe(tmp_path, home, body)
    assert not made.exists()


def test_importlib_cannot_fetch_posixsubprocess(tmp_path: Path, home: Path) -> None:
    body = "import importlib\nreturn importlib.import_module('_posixsubprocess').fork_exec"
    assert probe_denied(tmp_path, home, body).capability == "subprocess"


# --- H4: the real IPython shell is one import away ---------------------------------------


def test_the_shell_is_not_lent_to_a_plugin(
    tmp_path: Path, home: Path, secret: Path, shell: object
) -> None:
    body = textwrap.dedent(
        f"""
        import functools
        from IPython import get_ipython
        sh = get_ipython()
        sh.push({{"pushed_by_plugin": 1}})                 # no ipython.namespace grant
        sh.register_magic_function(len, "line", "sneaky")  # no ipython.magics grant
        code = "with open({str(secret)!r}) as f:\\n    LEAK = f.read()"
        sh.events.register("pre_execute", functools.partial(sh.ex, code))
        return 1
        """
    )
    with contextlib.suppress(CapabilityDenied):
        run = load_probe(tmp_path, home, body, host=IPythonHost(shell)).module.attempt
        run()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        shell.run_cell("1")  # type: ignore[attr-defined]
    ns = shell.user_ns  # type: ignore[attr-defined]
    # plugin frame on the stack when the host ran the next cell)
    assert (ns.get("LEAK"), ns.get("pushed_by_plugin")) == (None, None)


def test_ipython_builtins_are_not_in_a_plugins_builtins(
    tmp_path: Path, home: Path, shell: object
) -> None:
    shell.run_cell(  # type: ignore[attr-defined]
        "from tests.support.probes import load_probe\nfrom pathlib import Path\n"
        f"P = load_probe(Path({str(tmp_path)!r}), Path({str(home)!r}), "
        "\"return 'get_ipython' in __builtins__, 'display' in __builtins__\")"
    )
    plugin = shell.user_ns["P"]  # type: ignore[attr-defined]
    assert plugin.module.attempt() == (False, False)


# --- M1: sqlite3 ATTACH opens any file (connect itself is gated since 3599aae) -----------


def test_sqlite3_attach_needs_fs_grants(tmp_path: Path, home: Path) -> None:
    db = tmp_path / "outside.sqlite"
    body = (
        "import sqlite3\nc = sqlite3.connect(':memory:')\n"
        f"c.execute(\"attach database {str(db)!r} as x\")\nc.execute('create table x.t(a)')\n"
        "c.close()"
    )
    with pytest.raises(sqlite3.OperationalError, match="too many attached databases"):
        run_probe(tmp_path, home, body)
    assert not db.exists()


# --- M2: listen() on an unbound socket binds 0.0.0.0 without `net` ------------------------


def test_listening_needs_net(tmp_path: Path, home: Path) -> None:
    body = "import socket\nglobal L\nL = socket.socket()\nL.listen()\nreturn L.getsockname()[1]"
    plugin = load_probe(tmp_path, home, body)
    try:
        with pytest.raises(CapabilityDenied):
            port = plugin.module.attempt()
            with socket.create_connection(("127.0.0.1", port)):
                plugin.module.L.accept()[0].close()
    finally:
        if hasattr(plugin.module, "L"):
            plugin.module.L.close()


# --- M3: environment front doors beside os.environ/os.getenv ------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "import posix\nreturn posix.environ.get(b'SECRET_TOKEN')",
        "import os\nreturn os.path.expandvars('$SECRET_TOKEN')",
        "import importlib\nreturn importlib.import_module('os').environ.get('SECRET_TOKEN')",
    ],
    ids=["import-posix", "os.path.expandvars", "importlib-os"],
)
def test_environment_reads_need_env(
    body: str, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    assert probe_denied(tmp_path, home, body).capability == "env:SECRET_TOKEN"


# --- M4: honest plugins broken by the host's own files on the stack -----------------------


@pytest.mark.parametrize(
    "body",
    [
        "import traceback\nreturn len(traceback.format_stack()) > 0",
        "import inspect\nreturn len(inspect.stack()) > 0",
        "import logging\nlogging.getLogger('x').warning('here', stack_info=True)\nreturn True",
    ],
    ids=["traceback.format_stack", "inspect.stack", "logging-stack_info"],
)
def test_a_plugin_can_look_at_its_own_stack(body: str, tmp_path: Path, home: Path) -> None:
    assert run_probe(tmp_path, home, body) is True


def test_the_hosts_log_files_survive_a_plugin_logging(tmp_path: Path, home: Path) -> None:
    logger = logging.getLogger("plugmarket.plugins.probe")
    delayed = logging.FileHandler(tmp_path / "host.log", delay=True)
    logger.addHandler(delayed)
    try:
        run_probe(tmp_path, home, "CTX.log.warning('hello from the plugin')\nreturn 1")
    finally:
        logger.removeHandler(delayed)
        delayed.close()
    assert "hello from the plugin" in (tmp_path / "host.log").read_text()


# --- L: smaller breakages of honest plugins -----------------------------------------------


@pytest.mark.parametrize(
    ("grants", "body"),
    [
        ([], "import os\nwith open(os.devnull, 'w') as f:\n    f.write('x')\nreturn True"),
        ([], "import mimetypes\nreturn mimetypes.guess_type('a.png')[0] == 'image/png'"),
        (
            ["subprocess"],
            "import multiprocessing as mp\np = mp.get_context('fork').Process(target=int)\n"
            "p.start()\np.join()\nreturn p.exitcode == 0",
        ),
    ],
    ids=["devnull", "mimetypes", "multiprocessing-fork"],
)
def test_everyday_stdlib_works_in_a_plugin(
    grants: list[str], body: str, tmp_path: Path, home: Path
) -> None:
    assert run_probe(tmp_path, home, body, grants) is True


def test_a_temp_file_denial_names_a_grant_that_would_work(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setenv("TMPDIR", str(scratch))
    denied = probe_denied(tmp_path, home, "import tempfile\nreturn tempfile.gettempdir()")
    assert denied.capability == f"fs.write:{scratch}"


def test_a_denied_connect_does_not_leak_the_socket(tmp_path: Path, home: Path) -> None:
    body = "import socket\nsocket.create_server(('127.0.0.1', 0))"
    probe_denied(tmp_path, home, body)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_ctx_http_checks_the_host_name_it_connects_to(tmp_path: Path, home: Path) -> None:
    body = (
        "try:\n    CTX.http.get('http://bücher.example/')\n"
        "except Exception as e:\n    return type(e).__name__"
    )
    assert run_probe(tmp_path, home, body, ["net:xn--bcher-kva.example"]) == "ConnectError"


@pytest.mark.parametrize(
    "body",
    ["import os\nos.mkfifo({p!r})", "import os\nos.mknod({p!r})"],
    ids=["mkfifo", "mknod"],
)
def test_making_special_files_needs_fs_write(body: str, tmp_path: Path, home: Path) -> None:
    target = tmp_path / "made"
    with contextlib.suppress(CapabilityDenied):
        run_probe(tmp_path, home, body.format(p=str(target)))
    assert not target.exists()


def test_a_relative_link_target_is_read_from_the_links_folder(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = home / "data" / "probe" / "q"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)  # from here '..' would still be inside the storage
    body = "import os\nos.symlink('..', STORAGE + '/up')\nreturn os.path.realpath(STORAGE + '/up')"
    # every plugin's storage
    assert probe_denied(tmp_path, home, body).operation == "os.symlink"


# --- relative imports stay inside the plugin's own package ---------------------------------


def test_relative_imports_cannot_climb_out_of_the_plugins_package(
    tmp_path: Path, home: Path
) -> None:
    from plugmarket import load
    from plugmarket.sources import Source
    from tests.support.plugins import write_plugin

    write_plugin(tmp_path, "other", "VALUE = 'other'")
    load(Source.local(tmp_path / "other" / "other"))
    escapes = {
        "plugmarket": "from ... import loader",
        "another plugin": "from .. import other",
        "plugmarket, deeper": "from ...._internal import gate",
    }
    for what, line in escapes.items():
        folder = write_plugin(tmp_path / what.replace(" ", "_"), "climber", line)
        with pytest.raises(LoadError) as failed:
            load(Source.local(folder))
        assert isinstance(failed.value.__cause__, ImportError), what
        assert "relative imports stay inside the plugin's own package" in str(failed.value), what
        assert "climber" not in loader.loaded()

    inside = write_plugin(
        tmp_path / "fine",
        "climber",
        "from . import helpers\nfrom .helpers import ANSWER",
        files={"helpers.py": "ANSWER = 42"},
    )
    assert load(Source.local(inside)).module.ANSWER == 42


def _refused_relative_imports(tmp_path: Path, attempts: dict[str, str]) -> None:
    """Each attempt, as a plugin's code, fails to load with the relative-import refusal."""
    from plugmarket import load
    from plugmarket.sources import Source
    from tests.support.plugins import write_plugin

    for what, code in attempts.items():
        folder = write_plugin(tmp_path / what.replace(" ", "_"), "climber", code)
        with pytest.raises(LoadError) as failed:
            load(Source.local(folder))
        assert isinstance(failed.value.__cause__, ImportError), what
        assert "relative imports stay inside the plugin's own package" in str(failed.value), what
        assert "climber" not in loader.loaded()


def test_globals_whose_get_lies_about_the_package_cannot_climb_out(tmp_path: Path) -> None:
    lying = """
    class Lying(dict):
        def get(self, key, default=None):
            return __name__ if key == "__package__" else dict.get(self, key, default)
    """
    _refused_relative_imports(
        tmp_path,
        {
            "dict subclass": lying
            + "__import__('loader', Lying(__package__='plugmarket'), None, ['x'], 1)",
            "not a dict": "import types\n__import__('loader', "
            "types.MappingProxyType({'__package__': 'plugmarket'}), None, ['x'], 1)",
        },
    )


def test_globals_whose_get_lies_after_the_check_cannot_reach_another_plugin(
    tmp_path: Path,
) -> None:
    from plugmarket import load
    from plugmarket.sources import Source
    from tests.support.plugins import write_plugin

    write_plugin(tmp_path, "other", "VALUE = 'other'")
    load(Source.local(tmp_path / "other" / "other"))
    # The dict's own items pass the check; its get names the plugins' common parent.
    code = """
    class Spec:
        parent = "plugmarket.plugins"
    class Lying(dict):
        def get(self, key, default=None):
            return {"__package__": Spec.parent, "__spec__": Spec}.get(key, default)
    here = Lying(__package__=__name__, __spec__=__spec__)
    REACHED = __import__("other", here, None, ["VALUE"], 1).__name__
    """
    folder = write_plugin(tmp_path / "liar", "climber", code)
    with pytest.raises(LoadError) as failed:  # what the dict holds is read: climber.other
        load(Source.local(folder))
    assert isinstance(failed.value.__cause__, ModuleNotFoundError)
    assert failed.value.__cause__.name == "plugmarket.plugins.climber.other"


def test_a_package_name_that_is_a_str_subclass_is_refused_without_running_its_code(
    tmp_path: Path,
) -> None:
    shown_inside = """
    class Name(str):
        def __str__(self):
            return __name__
    """
    runs = """
    class Name(str):
        def __str__(self):
            raise RuntimeError("the gate ran the plugin's code")
    """
    attempt = "__import__('loader', {'__package__': Name('plugmarket')}, None, ['x'], 1)"
    _refused_relative_imports(
        tmp_path,
        {"str shows the plugin": shown_inside + attempt, "str runs": runs + attempt},
    )


def test_importlib_import_module_keeps_relative_names_inside_the_plugins_package(
    tmp_path: Path,
) -> None:
    from plugmarket import load
    from plugmarket.sources import Source
    from tests.support.plugins import write_plugin

    _refused_relative_imports(
        tmp_path,
        {
            "plugmarket": "import importlib\nimportlib.import_module('...loader', __package__)",
            "another plugin": "import importlib\nimportlib.import_module('..other', __package__)",
            "no package": "import importlib\nimportlib.import_module('.helpers')",
        },
    )
    inside = write_plugin(
        tmp_path / "fine",
        "climber",
        "import importlib\nANSWER = importlib.import_module('.helpers', __package__).ANSWER",
        files={"helpers.py": "ANSWER = 42"},
    )
    assert load(Source.local(inside)).module.ANSWER == 42
