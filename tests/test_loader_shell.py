"""A plugin loaded into a real IPython shell, and a real published library as a
plugin dependency from a package index on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugmarket.host import IPythonHost
from plugmarket.loader import load, unload
from plugmarket.settings import Settings
from plugmarket.sources import Source
from tests.support.httpserver import LoopbackServer
from tests.support.plugins import write_plugin
from tests.support.shell import Fancy, snapshot
from tests.support.simpleindex import Link, html_page, serve
from tests.support.wheels import sha256_file

PUBLISHED = Path(__file__).parent / "data" / "wheels" / "more_itertools-11.2.1-py3-none-any.whl"


def test_unload_leaves_the_shell_exactly_as_it_was(shell: Any, tmp_path: Path, home: Path) -> None:
    pkg = write_plugin(
        tmp_path,
        "everything",
        """
        from tests.support.shell import Fancy
        RUNS = []
        def activate(ctx):
            ctx.register_magic(lambda line: "hello " + line, name="greet")
            ctx.register_magic(lambda line, cell: cell.upper(), name="shout", kind="cell")
            ctx.register_formatter(Fancy, lambda obj: "<b>plugin fancy</b>")
            ctx.on("post_run_cell", lambda result: RUNS.append(result.success))
            ctx.push(answer=41, existing="the plugin's")
        def deactivate(ctx):
            pass  # forgets to clean up: plugmarket must do it
        """,
    )
    modules = set(sys.modules)
    before = snapshot(shell)
    grants = ["ipython.magics", "ipython.events", "ipython.namespace", "display"]
    plugin = load(
        Source.local(pkg), settings=Settings(home=home), host=IPythonHost(shell), grants=grants
    )
    assert shell.run_cell("%greet you").result == "hello you"
    assert shell.run_cell("%%shout\nquiet\n").result == "QUIET\n"
    assert shell.run_cell("answer + 1").result == 42
    assert shell.display_formatter.format(Fancy())[0]["text/html"] == "<b>plugin fancy</b>"
    assert plugin.module.RUNS == [True, True, True]
    unload(plugin)
    assert snapshot(shell) == before
    gone = shell.run_cell("%greet you")
    assert not gone.success and "greet" in str(gone.error_in_exec)
    assert not {n for n in set(sys.modules) - modules if n.startswith("plugmarket.plugins.")}


def test_a_published_library_from_an_index_is_a_plugin_dependency(
    tmp_path: Path, home: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    files = tmp_path / "files" / "packages"
    files.mkdir(parents=True)
    (files / PUBLISHED.name).write_bytes(PUBLISHED.read_bytes())
    server = http_server(tmp_path / "files")
    link = Link(f"../../packages/{PUBLISHED.name}", sha256_file(PUBLISHED))
    server.route("/simple/more-itertools/", serve(html_page([link]), "text/html"))
    settings = Settings(home=home)
    from plugmarket.host import PlainHost

    library = load(
        Source.index("more-itertools>=10", server.url("simple/")),
        settings=settings,
        host=PlainHost(),
    )
    assert library.module.__name__ == "plugmarket.plugins.more_itertools"
    user = write_plugin(
        tmp_path,
        "batcher",
        """
        import more_itertools
        from more_itertools import chunked, first
        def batches(items, n):
            return [list(b) for b in chunked(items, n)]
        def head(items):
            return first(items)
        """,
        requires=["more-itertools>=10"],
    )
    plugin = load(Source.local(user), settings=settings, host=PlainHost())
    assert plugin.module.batches(range(7), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert plugin.module.head("xyz") == "x"
    assert plugin.module.more_itertools is library.module
    assert "more_itertools" not in sys.modules
    unload(plugin)
    unload(library)
    assert not [n for n in sys.modules if "more_itertools" in n]


def test_a_deactivate_that_exits_still_leaves_the_shell_as_it_was(
    shell: Any, tmp_path: Path, home: Path
) -> None:
    pkg = write_plugin(
        tmp_path,
        "quitter",
        "def activate(ctx):\n"
        "    ctx.register_magic(lambda line: 'hi', name='quit_hi')\n"
        "def deactivate(ctx):\n"
        "    raise SystemExit(3)\n",
        capabilities=["ipython.magics"],
    )
    before = snapshot(shell)
    plugin = load(Source.local(pkg), grants=["ipython.magics"], host=IPythonHost(shell))
    assert "quit_hi" in shell.magics_manager.magics["line"]
    with pytest.raises(SystemExit):
        unload(plugin)
    assert snapshot(shell) == before
    assert not any(name.startswith("plugmarket.plugins.quitter") for name in sys.modules)
