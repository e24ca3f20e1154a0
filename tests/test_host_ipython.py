"""IPythonHost and PluginContext in a real IPython InteractiveShell: unload leaves it as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from plugmarket._internal.gate import Guard
from plugmarket.capabilities import Grants
from plugmarket.context import PluginContext
from plugmarket.errors import PlugmarketError
from plugmarket.host import IPythonHost, PlainHost, current_host
from tests.support.shell import Fancy, snapshot

ALL = ("ipython.magics", "ipython.events", "ipython.namespace", "display")


def _context(shell: Any, tmp_path: Path, plugin_id: str = "demo") -> PluginContext:
    return PluginContext(
        plugin_id,
        "1.0.0",
        host=IPythonHost(shell),
        guard=Guard(plugin_id, Grants(ALL)),
        storage=tmp_path / plugin_id,
        config={},
    )


def test_unload_leaves_the_shell_exactly_as_it_was(
    shell: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(shell)
    users_existing = shell.user_ns["existing"]
    ctx = _context(shell, tmp_path)
    seen: list[tuple[str, object]] = []

    def greet(line: str) -> str:
        return f"hello {line}"

    def shout(line: str, cell: str) -> str:
        return cell.strip().upper()

    ctx.register_magic(greet)
    ctx.register_magic(shout, kind="cell")
    ctx.register_formatter(Fancy, lambda obj: "<b>the plugin's fancy</b>")
    ctx.on("pre_run_cell", lambda info: seen.append(("pre", info.raw_cell)))
    ctx.on("post_run_cell", lambda result: seen.append(("post", result.success)))
    ctx.push(answer=41, existing="the plugin's value")

    assert shell.run_cell("%greet bob").result == "hello bob"
    assert shell.run_cell("%%shout\nquiet please\n").result == "QUIET PLEASE"
    assert shell.run_cell("answer + 1").result == 42
    assert shell.run_cell("existing").result == "the plugin's value"
    formatted, _ = shell.display_formatter.format(Fancy())
    assert formatted["text/html"] == "<b>the plugin's fancy</b>"
    assert ("pre", "%greet bob") in seen
    assert ("post", True) in seen
    assert seen.count(("post", True)) == 4
    ctx.display("shown by the plugin")
    assert "shown by the plugin" in capsys.readouterr().out

    assert ctx.close() == ()

    assert snapshot(shell) == before
    assert shell.user_ns["existing"] is users_existing
    formatted, _ = shell.display_formatter.format(Fancy())
    assert formatted["text/html"] == "<i>the user's fancy</i>"
    calls = len(seen)
    assert shell.run_cell("%greet bob").success is False
    assert len(seen) == calls  # callbacks gone
    assert "answer" not in shell.user_ns


def test_a_plugin_magic_cannot_take_over_time(shell: Any, tmp_path: Path) -> None:
    before = snapshot(shell)
    ctx = _context(shell, tmp_path)
    for kind in ("line", "cell"):
        with pytest.raises(PlugmarketError, match="already exists"):
            ctx.register_magic(lambda *args: "hijacked", name="time", kind=kind)
    assert snapshot(shell) == before
    assert shell.run_cell("%time 1 + 1").result == 2


def test_a_plugin_magic_cannot_clobber_ipythons_user_magics_attributes(
    shell: Any, tmp_path: Path
) -> None:
    user_magics_shell = shell.magics_manager.user_magics.shell
    ctx = _context(shell, tmp_path)
    with pytest.raises(PlugmarketError, match="already exists"):
        ctx.register_magic(lambda line: line, name="shell")
    assert shell.magics_manager.user_magics.shell is user_magics_shell


def test_a_plugin_cannot_take_another_plugins_magic(shell: Any, tmp_path: Path) -> None:
    first = _context(shell, tmp_path, "first")
    second = _context(shell, tmp_path, "second")
    first.register_magic(lambda line: "first", name="csv")
    with pytest.raises(PlugmarketError, match="already exists"):
        second.register_magic(lambda line: "second", name="csv")
    assert shell.run_cell("%csv").result == "first"
    first.close()
    second.close()


def test_same_name_as_line_and_cell_magic_undoes_cleanly(shell: Any, tmp_path: Path) -> None:
    before = snapshot(shell)
    ctx = _context(shell, tmp_path)
    ctx.register_magic(lambda line: "line", name="csv")
    ctx.register_magic(lambda line, cell: "cell", name="csv", kind="cell")
    ctx.register_magic(lambda line: "line v2", name="csv")  # replaces its own
    assert shell.run_cell("%csv").result == "line v2"
    assert shell.run_cell("%%csv\nx\n").result == "cell"
    ctx.close()
    assert snapshot(shell) == before


def test_push_leaves_a_name_the_user_rebound(shell: Any, tmp_path: Path) -> None:
    ctx = _context(shell, tmp_path)
    ctx.push(result="the plugin's")
    shell.run_cell("result = 'the user changed it'")
    ctx.close()
    assert shell.user_ns["result"] == "the user changed it"


def test_push_refuses_names_the_shell_owns(shell: Any, tmp_path: Path) -> None:
    get_ipython = shell.user_ns["get_ipython"]
    ctx = _context(shell, tmp_path)
    for name in ("get_ipython", "In", "Out", "exit"):
        with pytest.raises(PlugmarketError, match="the shell itself owns"):
            ctx.push(**{name: "hijacked"})
    assert shell.user_ns["get_ipython"] is get_ipython


def test_formatter_for_unknown_mime_and_unknown_event_are_refused(
    shell: Any, tmp_path: Path
) -> None:
    ctx = _context(shell, tmp_path)
    with pytest.raises(PlugmarketError, match="text/html"):
        ctx.register_formatter(Fancy, str, mime="text/x-unknown")
    with pytest.raises(PlugmarketError, match="post_run_cell"):
        ctx.on("after_cell", print)


def test_an_undo_for_something_already_replaced_leaves_the_replacement(
    shell: Any, tmp_path: Path
) -> None:
    def newer(obj: Fancy) -> str:
        return "<u>registered after the plugin</u>"

    ctx = _context(shell, tmp_path)
    ctx.register_formatter(Fancy, lambda obj: "<b>plugin</b>")
    shell.display_formatter.formatters["text/html"].for_type(Fancy, newer)
    ctx.close()
    assert shell.display_formatter.formatters["text/html"].type_printers[Fancy] is newer


def test_current_host_follows_the_running_shell(shell: Any) -> None:
    host = current_host()
    assert isinstance(host, IPythonHost)
    undo = host.push({"via_current_host": 1})
    assert shell.user_ns["via_current_host"] == 1
    undo()
    assert "via_current_host" not in shell.user_ns


def test_current_host_without_a_shell_is_one_shared_plain_host() -> None:
    assert not InteractiveShell.initialized()
    host = current_host()
    assert isinstance(host, PlainHost)
    assert current_host() is host
