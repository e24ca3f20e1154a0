"""The importer's short path behaves as importlib does: same module attributes,
same clean-up on failure, same locking between threads, same errors."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from plugmarket.host import PlainHost
from plugmarket.loader import load, unload
from plugmarket.settings import Settings
from plugmarket.sources import Source
from tests.support.plugins import write_plugin


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home, activation_timeout=5.0)


def _plain_twin(pkg: Path, where: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same package under another name, imported the ordinary way from ``where``."""
    twin = where / name
    shutil.copytree(pkg, twin)
    monkeypatch.syspath_prepend(str(where))
    return twin


def _dunders(module: object) -> list[str]:
    # __cached__ is left out on purpose: plugmarket keeps bytecode in its own cache.
    skip = ("__builtins__", "__cached__")
    return [k for k in vars(module) if k.startswith("__") and k not in skip]


def test_modules_get_the_attributes_and_order_importlib_gives(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = write_plugin(
        tmp_path / "src",
        "shapes",
        "from . import square\nfrom .sub import deep\n",
        files={"square.py": "SIDE = 2\n", "sub/__init__.py": "", "sub/deep.py": "D = 1\n"},
    )
    _plain_twin(pkg, tmp_path / "plain", "shapes_plain", monkeypatch)
    importlib.import_module("shapes_plain")
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    ns = plugin.module.__name__
    try:
        for suffix in ("", ".square", ".sub", ".sub.deep"):
            ours, theirs = sys.modules[ns + suffix], sys.modules["shapes_plain" + suffix]
            assert _dunders(ours) == _dunders(theirs)
            spec = ours.__spec__
            assert spec is not None and spec.name == ours.__name__ == ns + suffix
            assert ours.__loader__ is spec.loader
            assert ours.__file__ == spec.origin and os.path.isfile(ours.__file__)
            assert ours.__package__ == spec.parent == theirs.__package__.replace("shapes_plain", ns)
            assert getattr(ours, "__path__", None) == spec.submodule_search_locations
            assert getattr(spec, "_initializing", False) is False
            assert "__cached__" not in vars(ours)
        assert plugin.module.square is sys.modules[ns + ".square"]
        assert plugin.module.sub.deep is sys.modules[ns + ".sub.deep"]
        assert list(sys.modules)[-4:] == [ns + ".square", ns + ".sub", ns + ".sub.deep", ns]
    finally:
        for name in [n for n in sys.modules if n.startswith("shapes_plain")]:
            del sys.modules[name]


def test_submodule_that_fails_leaves_no_module_and_no_attribute(
    tmp_path: Path, settings: Settings
) -> None:
    pkg = write_plugin(
        tmp_path,
        "half",
        """
        try:
            from . import broken
        except ZeroDivisionError:
            FAILED = True
        """,
        files={"broken.py": "PARTIAL = 1\n1 / 0\n"},
    )
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    assert plugin.module.FAILED is True
    assert f"{plugin.module.__name__}.broken" not in sys.modules
    assert not hasattr(plugin.module, "broken")


def test_circular_relative_imports_work_as_in_plain_python(
    tmp_path: Path, settings: Settings
) -> None:
    pkg = write_plugin(
        tmp_path,
        "loop",
        "from . import a\n",
        files={
            "a.py": "from . import b\nNAME = 'a'\ndef other():\n    return b.NAME\n",
            "b.py": "from . import a\nNAME = 'b'\ndef other():\n    return a.NAME\n",
        },
    )
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    a = plugin.module.a
    assert (a.other(), a.b.other()) == ("b", "a")


def test_missing_name_in_from_import_is_the_usual_import_error(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = write_plugin(
        tmp_path / "src",
        "gaps",
        """
        try:
            from . import missing
        except ImportError as exc:
            ERROR = str(exc)
        try:
            from .nowhere import thing
        except ModuleNotFoundError as exc:
            NOT_FOUND = exc.name
        """,
    )
    twin = _plain_twin(pkg, tmp_path / "plain", "gaps_plain", monkeypatch)
    try:
        plain = importlib.import_module("gaps_plain")
    finally:
        sys.modules.pop("gaps_plain", None)
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    ns = plugin.module.__name__
    expected = plain.ERROR.replace(str(twin), str(pkg)).replace("gaps_plain", ns)
    error, not_found = plugin.module.ERROR, plugin.module.NOT_FOUND
    assert error == expected
    assert expected.startswith("cannot import name 'missing' from partially initialized module")
    assert not_found == f"{ns}.nowhere"
    assert f"{ns}.missing" not in sys.modules and f"{ns}.nowhere" not in sys.modules


def test_module_that_replaces_itself_is_what_the_importer_gets(
    tmp_path: Path, settings: Settings
) -> None:
    pkg = write_plugin(
        tmp_path,
        "swapper",
        "from . import swapped\n",
        files={
            "swapped.py": (
                "import sys, types\n"
                "replacement = types.SimpleNamespace(KIND='replacement')\n"
                "sys.modules[__name__] = replacement\n"
            )
        },
    )
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    assert plugin.module.swapped.KIND == "replacement"
    assert sys.modules[f"{plugin.module.__name__}.swapped"] is plugin.module.swapped


def test_relative_import_beyond_the_namespace_is_an_import_error(
    tmp_path: Path, settings: Settings
) -> None:
    pkg = write_plugin(
        tmp_path,
        "climber",
        """
        try:
            from ....... import anything
        except ImportError as exc:
            ERROR = str(exc)
        """,
    )
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    assert "relative imports stay inside the plugin's own package" in plugin.module.ERROR


def test_two_threads_importing_a_lazy_submodule_run_it_once(
    tmp_path: Path, settings: Settings
) -> None:
    pkg = write_plugin(
        tmp_path,
        "lazy",
        """
        import threading
        ENTERED = threading.Event()
        PROCEED = threading.Event()
        RUNS = []
        def get():
            from . import slow
            return slow
        """,
        files={
            "slow.py": (
                "from . import ENTERED, PROCEED, RUNS\n"
                "RUNS.append(1)\n"
                "ENTERED.set()\n"
                "PROCEED.wait(30)\n"
                "DONE = True\n"
            )
        },
    )
    module = load(Source.local(pkg), settings=settings, host=PlainHost()).module
    got: list[object] = []
    first = threading.Thread(target=lambda: got.append(module.get()))
    second = threading.Thread(target=lambda: got.append(module.get()))
    first.start()
    assert module.ENTERED.wait(30)
    second.start()
    # The second thread must wait on importlib's lock of the module until the first is done.
    blocking_on = sys.modules["importlib._bootstrap"]._blocking_on
    deadline = time.monotonic() + 30
    while second.ident not in blocking_on and time.monotonic() < deadline:
        os.sched_yield()
    assert second.ident in blocking_on
    module.PROCEED.set()
    first.join(30)
    second.join(30)
    assert len(got) == 2 and got[0] is got[1]
    assert getattr(got[0], "DONE", False) is True
    assert module.RUNS == [1]


def test_reload_runs_the_file_as_it_is_now(tmp_path: Path, settings: Settings) -> None:
    pkg = write_plugin(tmp_path, "again", "from . import value\n", files={"value.py": "N = 1\n"})
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    assert plugin.module.value.N == 1
    (pkg / "value.py").write_text("N = 22\n")
    assert importlib.reload(plugin.module.value).N == 22


def test_submodule_imported_after_the_load_is_read_as_it_is_then(
    tmp_path: Path, settings: Settings
) -> None:
    pkg = write_plugin(
        tmp_path,
        "later",
        """
        import importlib
        def get(name):
            return importlib.import_module("." + name, __name__)
        """,
        files={"changed.py": "N = 1\n"},
    )
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    (pkg / "changed.py").write_text("N = 2\n")
    (pkg / "added.py").write_text("N = 3\n")
    assert (plugin.module.get("changed").N, plugin.module.get("added").N) == (2, 3)


def test_module_rewritten_with_its_old_mtime_runs_its_new_code(
    tmp_path: Path, settings: Settings
) -> None:
    pkg = write_plugin(tmp_path, "sneaky", "from .value import N\n", files={"value.py": "N = 1\n"})
    assert load(Source.local(pkg), settings=settings, host=PlainHost()).module.N == 1
    unload("sneaky")
    st = (pkg / "value.py").stat()
    (pkg / "value.py").write_text("N = 7\n")
    os.utime(pkg / "value.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert load(Source.local(pkg), settings=settings, host=PlainHost()).module.N == 7


def test_without_importlib_helpers_plugins_import_through_importlib(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugmarket._internal import importer

    monkeypatch.setattr(importer, "_ModuleLockManager", None)
    monkeypatch.setattr(importer, "_handle_fromlist", None)
    pkg = write_plugin(
        tmp_path,
        "plain-path",
        """
        from . import util
        from plain_path.sub import deep
        import plain_path.sub as sub_again
        VALUE = util.N + deep.D
        """,
        files={"util.py": "N = 1\n", "sub/__init__.py": "", "sub/deep.py": "D = 2\n"},
    )
    plugin = load(Source.local(pkg), settings=settings, host=PlainHost())
    ns = plugin.module.__name__
    assert plugin.module.VALUE == 3
    assert plugin.module.sub_again is sys.modules[f"{ns}.sub"]
    assert plugin.module.deep is sys.modules[f"{ns}.sub.deep"]
