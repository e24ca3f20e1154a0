"""Loading plugins into isolated namespaces, activation, and unload leaving nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugmarket import loader
from plugmarket.errors import ActivationError, CapabilityDenied, LoadError, ManifestError
from plugmarket.host import PlainHost
from plugmarket.loader import load, unload
from plugmarket.settings import Settings
from plugmarket.sources import Source
from tests.support.plugins import write_plugin


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home, activation_timeout=2.0)


def _user_modules() -> set[str]:
    """Every module name outside plugmarket's own package (which loads lazily)."""
    return {n for n in sys.modules if n != "plugmarket" and not n.startswith("plugmarket.")}


def test_package_plugin_loads_into_its_own_namespace(tmp_path: Path, settings: Settings) -> None:
    pkg = write_plugin(
        tmp_path,
        "csv-tools",
        """
        from . import utils
        from csv_tools.helpers import double
        import csv_tools.helpers as helpers_again
        def answer():
            return double(utils.three())
        """,
        files={
            "utils.py": "def three():\n    return 3\n",
            "helpers.py": "def double(x):\n    return 2 * x\n",
        },
    )
    before = _user_modules()
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    assert plugin.module.__name__ == "plugmarket.plugins.csv_tools"
    assert plugin.module.answer() == 6
    assert plugin.module.helpers_again.__name__ == "plugmarket.plugins.csv_tools.helpers"
    assert plugin.module.__file__ == str(pkg / "__init__.py")
    assert plugin.module.__path__ == [str(pkg)]
    assert plugin.module.__spec__.name == "plugmarket.plugins.csv_tools"
    assert "csv_tools" not in sys.modules and "utils" not in sys.modules
    assert _user_modules() - before == set()
    unload(plugin)
    assert not [n for n in sys.modules if n.startswith("plugmarket.plugins.csv_tools")]
    assert _user_modules() - before == set()


def test_two_plugins_each_see_their_own_utils(tmp_path: Path, settings: Settings) -> None:
    a = write_plugin(
        tmp_path, "alpha", "from .utils import NAME\n", files={"utils.py": "NAME = 'a'\n"}
    )
    b = write_plugin(
        tmp_path, "beta", "from beta.utils import NAME\n", files={"utils.py": "NAME = 'b'\n"}
    )
    pa = load(Source.local(a), settings=settings, host=PlainHost())
    pb = load(Source.local(b), settings=settings, host=PlainHost())
    assert (pa.module.NAME, pb.module.NAME) == ("a", "b")
    assert (
        sys.modules["plugmarket.plugins.alpha.utils"]
        is not sys.modules["plugmarket.plugins.beta.utils"]
    )


def test_data_files_through_importlib_resources(tmp_path: Path, settings: Settings) -> None:
    pkg = write_plugin(
        tmp_path,
        "with-data",
        """
        from importlib.resources import files
        def greeting():
            return files(__name__).joinpath("data/hello.txt").read_text()
        """,
        files={"data/hello.txt": "hello from data"},
    )
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    assert plugin.module.greeting() == "hello from data"


def test_declared_dependency_imports_and_undeclared_does_not(
    tmp_path: Path, settings: Settings
) -> None:
    lib = write_plugin(tmp_path, "table-kit", "def render(rows):\n    return '|'.join(rows)\n")
    user = write_plugin(
        tmp_path,
        "csv-view",
        "import table_kit\ndef show():\n    return table_kit.render(['a', 'b'])\n",
        requires=["table-kit>=1"],
    )
    sneaky = write_plugin(tmp_path, "sneaky", "import table_kit\n")
    load(Source.local(lib), settings=settings, host=PlainHost())
    plugin = load(Source.local(user), settings=settings, host=PlainHost())
    assert plugin.module.show() == "a|b"
    assert plugin.module.table_kit.__name__ == "plugmarket.plugins.table_kit"
    with pytest.raises(LoadError) as info:
        load(Source.local(sneaky), settings=settings, host=PlainHost())
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert "plugmarket.plugins.sneaky" not in sys.modules


def test_missing_dependency_and_wrong_version_are_load_errors(
    tmp_path: Path, settings: Settings
) -> None:
    lib = write_plugin(tmp_path, "table-kit", "", version="1.0")
    user = write_plugin(tmp_path, "csv-view", "import table_kit\n", requires=["table-kit>=2"])
    with pytest.raises(LoadError, match="not loaded"):
        load(Source.local(user), settings=settings, host=PlainHost())
    load(Source.local(lib), settings=settings, host=PlainHost())
    with pytest.raises(LoadError, match=r"table-kit 1\.0 is loaded"):
        load(Source.local(user), settings=settings, host=PlainHost())
    with pytest.raises(LoadError, match="require it"):
        user_ok = write_plugin(
            tmp_path / "ok", "csv-view", "import table_kit\n", requires=["table-kit"]
        )
        load(Source.local(user_ok), settings=settings, host=PlainHost())
        unload("table-kit")


def test_single_file_and_code_plugins(tmp_path: Path, settings: Settings) -> None:
    single = tmp_path / "timer.py"
    single.write_text(
        "__plugin__ = {'id': 'timer', 'version': '0.1'}\nimport timer\nSELF = timer\n"
    )
    plugin = load(Source.local(single), settings=settings, host=PlainHost())
    assert plugin.module.SELF is plugin.module
    code = load(
        Source.code("def f():\n    return 41 + 1\n", id="snippet"),
        settings=settings,
        host=PlainHost(),
    )
    assert code.module.f() == 42
    assert str(code.version) == "0.0.0"


def test_activation_failure_leaves_no_trace(tmp_path: Path, settings: Settings) -> None:
    host = PlainHost()
    pkg = write_plugin(
        tmp_path,
        "broken",
        """
        def activate(ctx):
            ctx.register_magic(lambda line: 1, name="broken_magic")
            ctx.push(broken_name=1)
            raise RuntimeError("boom")
        """,
        capabilities=["ipython.magics", "ipython.namespace"],
    )
    before = _user_modules()
    with pytest.raises(ActivationError, match="boom") as info:
        load(
            Source.local(pkg),
            settings=settings,
            host=host,
            grants=["ipython.magics", "ipython.namespace"],
        )
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.plugin_id == "broken"
    assert not host.magics["line"] and "broken_name" not in host.user_ns
    assert not [n for n in sys.modules if n.startswith("plugmarket.plugins.broken")]
    assert _user_modules() - before == set()
    assert "broken" not in loader.loaded()


def test_activation_that_hangs_is_stopped(tmp_path: Path, home: Path) -> None:
    settings = Settings(home=home, activation_timeout=0.3)
    pkg = write_plugin(
        tmp_path,
        "hangs",
        """
        import threading
        def activate(ctx):
            try:
                threading.Event().wait()
            except Exception:
                pass  # a plugin cannot swallow the time limit
        """,
    )
    with pytest.raises(ActivationError, match=r"longer than 0\.3 s"):
        load(Source.local(pkg), settings=settings, host=PlainHost())
    assert "hangs" not in loader.loaded()


def test_import_error_is_a_load_error_naming_the_plugin(tmp_path: Path, settings: Settings) -> None:
    pkg = write_plugin(
        tmp_path, "bad-syntax", "from . import broken\n", files={"broken.py": "def (:\n"}
    )
    with pytest.raises(LoadError, match="bad-syntax") as info:
        load(Source.local(pkg), settings=settings, host=PlainHost())
    assert isinstance(info.value.__cause__, SyntaxError)
    assert not [n for n in sys.modules if n.startswith("plugmarket.plugins.bad_syntax")]
    top_broken = write_plugin(tmp_path / "2", "bad-top", "def (:\n")
    with pytest.raises(ManifestError, match="does not parse"):
        load(Source.local(top_broken), settings=settings, host=PlainHost())


def test_same_id_twice_is_refused(tmp_path: Path, settings: Settings) -> None:
    pkg = write_plugin(tmp_path, "once", "")
    load(Source.local(pkg), settings=settings, host=PlainHost())
    with pytest.raises(LoadError, match="already loaded"):
        load(Source.local(pkg), settings=settings, host=PlainHost())


def test_deactivate_that_raises_still_unloads_everything(
    tmp_path: Path, settings: Settings
) -> None:
    host = PlainHost()
    pkg = write_plugin(
        tmp_path,
        "messy",
        """
        def activate(ctx):
            ctx.register_magic(lambda line: "hi", name="messy")
        def deactivate(ctx):
            raise RuntimeError("forgot how to clean up")
        """,
    )
    plugin = load(Source.local(pkg), settings=settings, host=host, grants=["ipython.magics"])
    assert host.run_magic("messy") == "hi"
    unload(plugin)
    assert "messy" not in host.magics["line"]
    assert "plugmarket.plugins.messy" not in sys.modules


def test_capability_denied_at_import_is_a_load_error(tmp_path: Path, settings: Settings) -> None:
    pkg = write_plugin(tmp_path, "reader", "open('/etc/hostname').read()\n")
    with pytest.raises(LoadError) as info:
        load(Source.local(pkg), settings=settings, host=PlainHost())
    assert isinstance(info.value.__cause__, CapabilityDenied)
    assert info.value.__cause__.capability == "fs.read:/etc/hostname"


def test_second_process_reuses_cached_bytecode(tmp_path: Path, home: Path) -> None:
    pkg = write_plugin(tmp_path, "cached", "", files={"more.py": "X = 1\n"})
    script = textwrap.dedent(
        f"""
        import builtins, sys
        from plugmarket._internal import importer
        from plugmarket.loader import load
        from plugmarket.host import PlainHost
        from plugmarket.settings import Settings
        from plugmarket.sources import Source
        from pathlib import Path
        if sys.argv[1] == "second":
            def refuse(*a, **k):
                raise AssertionError("recompiled")
            importer.compile = refuse
        settings = Settings(home=Path({str(home)!r}))
        p = load(Source.local({str(pkg)!r}), settings=settings, host=PlainHost())
        import importlib
        print(importlib.import_module(p.module.__name__ + ".more").X)
        """
    )
    for run in ("first", "second"):
        out = subprocess.run(
            [sys.executable, "-c", script, run], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "1"
    assert len(list((home / "cache" / "bytecode").glob("*.pyc"))) == 2
