"""PluginContext on a PlainHost: capability checks, attribution, the undo stack, ctx.http."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugmarket._internal import gate
from plugmarket._internal.gate import Guard
from plugmarket.capabilities import Grants
from plugmarket.context import PluginContext
from plugmarket.errors import CapabilityDenied, PlugmarketError
from plugmarket.host import EVENTS, Host, PlainHost
from tests.support.httpserver import LoopbackServer, redirect_to

ALL = ("ipython.magics", "ipython.events", "ipython.namespace", "display")


class Setup:
    """A context, its PlainHost and guard, and the denials the audit sink received."""

    def __init__(self, tmp_path: Path, grants: tuple[str, ...], plugin_id: str = "demo") -> None:
        self.denials: list[CapabilityDenied] = []
        self.shown: list[object] = []
        self.host = PlainHost(sink=self.shown.append)
        self.guard = Guard(plugin_id, Grants(grants), audit=self.denials.append)
        self.ctx = self.make(plugin_id, tmp_path)

    def make(self, plugin_id: str, tmp_path: Path, host: Host | None = None) -> PluginContext:
        return PluginContext(
            plugin_id,
            "1.0.0",
            host=host or self.host,
            guard=self.guard,
            storage=tmp_path / "storage" / plugin_id,
            config={"colour": "blue"},
        )


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    built: list[Setup] = []

    def build(*grants: str, plugin_id: str = "demo") -> Setup:
        built.append(Setup(tmp_path, grants, plugin_id))
        return built[-1]

    yield build
    for setup in built:  # closes ctx.http's connections too
        setup.ctx.close()


def _assert_denied(s: Setup, exc: pytest.ExceptionInfo[CapabilityDenied], capability: str) -> None:
    denial = exc.value
    assert denial.plugin_id == "demo"
    assert denial.capability == capability
    assert denial.operation
    assert s.denials == [denial]


# --- each registration with and without its capability --------------------------


def test_line_and_cell_magics_work_with_ipython_magics(make: Callable[..., Setup]) -> None:
    s = make("ipython.magics")

    def greet(line: str) -> str:
        return f"hello {line}"

    s.ctx.register_magic(greet)
    s.ctx.register_magic(lambda line, cell: cell.upper(), name="shout", kind="cell")
    assert s.host.run_magic("greet", "bob") == "hello bob"
    assert s.host.run_magic("shout", "", "quiet") == "QUIET"


def test_magic_is_denied_without_ipython_magics(make: Callable[..., Setup]) -> None:
    s = make("display")
    with pytest.raises(CapabilityDenied) as exc:
        s.ctx.register_magic(lambda line: line, name="echo")
    _assert_denied(s, exc, "ipython.magics")
    assert exc.value.target == "%echo"
    assert s.host.magics == {"line": {}, "cell": {}}


def test_formatter_works_with_display_and_is_denied_without(make: Callable[..., Setup]) -> None:
    class Point:
        pass

    s = make("display")
    s.ctx.register_formatter(Point, lambda p: "<b>point</b>")
    assert s.host.format(Point()) == {"text/html": "<b>point</b>"}

    s = make("ipython.magics")
    with pytest.raises(CapabilityDenied) as exc:
        s.ctx.register_formatter(Point, lambda p: "<b>point</b>")
    _assert_denied(s, exc, "display")
    assert s.host.format(Point()) == {}


def test_event_callback_works_with_ipython_events_and_is_denied_without(
    make: Callable[..., Setup],
) -> None:
    s = make("ipython.events")
    seen: list[str] = []
    s.ctx.on("pre_run_cell", seen.append)
    s.host.fire("pre_run_cell", "cell 1")
    assert seen == ["cell 1"]

    s = make("display")
    with pytest.raises(CapabilityDenied) as exc:
        s.ctx.on("pre_run_cell", seen.append)
    _assert_denied(s, exc, "ipython.events")
    assert s.host.events["pre_run_cell"] == []


def test_unknown_event_is_refused_naming_the_known_ones(make: Callable[..., Setup]) -> None:
    s = make("ipython.events")
    with pytest.raises(PlugmarketError) as exc:
        s.ctx.on("pre_cell", print)
    for event in EVENTS:
        assert event in str(exc.value)


def test_push_works_with_ipython_namespace_and_is_denied_without(
    make: Callable[..., Setup],
) -> None:
    s = make("ipython.namespace")
    s.ctx.push(answer=42, self="a name like any other")
    assert s.host.user_ns == {"answer": 42, "self": "a name like any other"}

    s = make("display")
    with pytest.raises(CapabilityDenied) as exc:
        s.ctx.push(answer=42)
    _assert_denied(s, exc, "ipython.namespace")
    assert s.host.user_ns == {}


def test_display_works_with_display_and_is_denied_without(make: Callable[..., Setup]) -> None:
    s = make("display")
    s.ctx.display("a chart")
    assert s.shown == ["a chart"]

    s = make("ipython.namespace")
    with pytest.raises(CapabilityDenied) as exc:
        s.ctx.display("a chart")
    _assert_denied(s, exc, "display")
    assert s.shown == []


# --- attribution ------------------------------------------------------------------


def test_every_handed_over_callable_runs_under_the_plugins_attribution(
    make: Callable[..., Setup],
) -> None:
    s = make(*ALL)
    seen: list[object] = []

    def where(*args: object) -> str:
        seen.append(gate._current.get())
        return "<i>x</i>"

    class Thing:
        def __repr__(self) -> str:
            seen.append(gate._current.get())
            return "Thing()"

    s.ctx.register_magic(where, name="where")
    s.ctx.register_formatter(Thing, where)
    s.ctx.on("post_execute", where)
    s.host.run_magic("where", "")
    s.host.format(Thing())
    s.host.fire("post_execute")
    PluginContext(  # display runs the object's reprs under the plugin too
        "demo", "1", host=PlainHost(), guard=s.guard, storage=Path("unused"), config={}
    ).display(Thing())
    assert seen == [s.guard] * 4
    assert gate._current.get() is None


def test_a_c_builtin_callback_still_runs_under_the_plugins_attribution(
    make: Callable[..., Setup],
) -> None:
    s = make("ipython.magics")
    # ContextVar.get is C code: no plugin frame is ever on the stack while it runs.
    s.ctx.register_magic(gate._current.get, name="who")
    assert s.host.run_magic("who", "nobody") is s.guard


def test_the_host_never_receives_the_plugins_own_function(make: Callable[..., Setup]) -> None:
    s = make("ipython.magics")

    def greet(line: str) -> str:
        return line

    s.ctx.register_magic(greet)
    registered = s.host.magics["line"]["greet"]
    assert registered is not greet
    assert not hasattr(registered, "__wrapped__")


def test_context_exposes_neither_host_nor_guard(make: Callable[..., Setup]) -> None:
    s = make(*ALL)
    public = [getattr(s.ctx, name) for name in dir(s.ctx) if not name.startswith("_")]
    assert all(v is not s.host and v is not s.guard for v in public)
    with pytest.raises(AttributeError):
        s.ctx.extra = 1  # type: ignore[attr-defined]
    s.ctx.close()


# --- the rest of the API ---------------------------------------------------------


def test_identity_config_log_and_storage(make: Callable[..., Setup], tmp_path: Path) -> None:
    s = make()
    assert (s.ctx.id, s.ctx.version) == ("demo", "1.0.0")
    assert s.ctx.config["colour"] == "blue"
    with pytest.raises(TypeError):
        s.ctx.config["colour"] = "red"  # type: ignore[index]
    assert s.ctx.log.name == "plugmarket.plugins.demo"
    folder = tmp_path / "storage" / "demo"
    assert not folder.exists()
    assert s.ctx.storage == folder
    assert folder.is_dir()
    assert folder.stat().st_mode & 0o777 == 0o700


def test_storage_that_cannot_be_created_is_a_plugmarket_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    ctx = PluginContext(
        "demo",
        "1",
        host=PlainHost(),
        guard=Guard("demo", Grants()),
        storage=tmp_path / "file" / "storage",
        config={},
    )
    with pytest.raises(PlugmarketError, match="storage folder") as exc:
        _ = ctx.storage
    assert isinstance(exc.value.__cause__, OSError)


def test_a_plugin_cannot_take_another_plugins_magic(make: Callable[..., Setup]) -> None:
    s = make("ipython.magics")
    s.ctx.register_magic(lambda line: "first", name="csv")
    other = Guard("other", Grants(["ipython.magics"]))
    ctx2 = PluginContext("other", "1", host=s.host, guard=other, storage=Path("unused"), config={})
    with pytest.raises(PlugmarketError, match="already exists"):
        ctx2.register_magic(lambda line: "second", name="csv")
    assert s.host.run_magic("csv") == "first"


def test_a_plugin_may_replace_its_own_magic(make: Callable[..., Setup]) -> None:
    s = make("ipython.magics")
    s.ctx.register_magic(lambda line: "v1", name="csv")
    s.ctx.register_magic(lambda line: "v2", name="csv")
    assert s.host.run_magic("csv") == "v2"
    assert s.ctx.close() == ()
    assert s.host.magics == {"line": {}, "cell": {}}


def test_bad_magic_name_and_kind_are_refused(make: Callable[..., Setup]) -> None:
    s = make("ipython.magics")
    with pytest.raises(PlugmarketError, match="identifier"):
        s.ctx.register_magic(lambda line: line)  # "<lambda>"
    with pytest.raises(PlugmarketError, match="'line' or 'cell'"):
        s.ctx.register_magic(lambda line: line, name="x", kind="line_cell")
    with pytest.raises(PlugmarketError, match="callable"):
        s.ctx.register_magic("not a function", name="x")  # type: ignore[arg-type]


def test_push_restores_old_values_deletes_new_ones_and_keeps_user_rebinds(
    make: Callable[..., Setup],
) -> None:
    s = make("ipython.namespace")
    users_df = object()
    s.host.user_ns.update(df=users_df, keep=1)
    s.ctx.push(df="plugin's df", fresh=1, later=2)
    s.host.user_ns["later"] = "the user's own"  # rebound by the user after the push
    s.ctx.close()
    assert s.host.user_ns == {"df": users_df, "keep": 1, "later": "the user's own"}
    assert s.host.user_ns["df"] is users_df


def test_push_refuses_dunder_names(make: Callable[..., Setup]) -> None:
    s = make("ipython.namespace")
    with pytest.raises(PlugmarketError, match="dunder"):
        s.ctx.push(__builtins__={})
    assert s.host.user_ns == {}


def test_formatter_undo_restores_the_previous_one_exactly(make: Callable[..., Setup]) -> None:
    class Point:
        pass

    def users(p: Point) -> str:
        return "<i>user's</i>"

    s = make("display")
    s.host.register_formatter(Point, users, "text/html")
    s.ctx.register_formatter(Point, lambda p: "<b>plugin's</b>")
    assert s.host.format(Point()) == {"text/html": "<b>plugin's</b>"}
    s.ctx.close()
    assert s.host.formatters["text/html"][Point] is users


# --- close ----------------------------------------------------------------------


def test_close_undoes_everything_in_reverse_order_even_when_an_undo_raises(
    make: Callable[..., Setup], caplog: pytest.LogCaptureFixture
) -> None:
    s = make(*ALL)
    order: list[str] = []

    def broken() -> None:
        order.append("broken")
        raise RuntimeError("timer already gone")

    s.ctx.add_cleanup(lambda: order.append("first"))
    s.ctx.register_magic(lambda line: line, name="m")
    s.ctx.on("post_run_cell", print)
    s.ctx.add_cleanup(broken)
    s.ctx.push(x=1)
    s.ctx.register_formatter(int, str)
    s.ctx.add_cleanup(lambda: order.append("last"))

    with caplog.at_level(logging.ERROR, logger="plugmarket.plugins.demo"):
        errors = s.ctx.close()

    assert order == ["last", "broken", "first"]
    assert [str(e) for e in errors] == ["timer already gone"]
    assert "timer already gone" in caplog.text
    assert s.host.magics == {"line": {}, "cell": {}}
    assert all(callbacks == [] for callbacks in s.host.events.values())
    assert s.host.user_ns == {}
    assert s.host.formatters == {"text/html": {}}


def test_cleanups_run_under_the_plugins_attribution(make: Callable[..., Setup]) -> None:
    s = make()
    seen: list[object] = []
    s.ctx.add_cleanup(lambda: seen.append(gate._current.get()))
    s.ctx.close()
    assert seen == [s.guard]


def test_double_close_is_harmless(make: Callable[..., Setup]) -> None:
    s = make(*ALL)
    runs: list[int] = []
    s.ctx.add_cleanup(lambda: runs.append(1))
    s.ctx.push(x=1)
    assert s.ctx.close() == ()
    s.host.user_ns["x"] = 1  # even a value equal to the pushed one stays now
    assert s.ctx.close() == ()
    assert runs == [1]
    assert s.host.user_ns == {"x": 1}
    assert s.ctx.closed


def test_registrations_after_close_are_refused(make: Callable[..., Setup]) -> None:
    s = make(*ALL)
    s.ctx.close()
    attempts: list[Callable[[], Any]] = [
        lambda: s.ctx.register_magic(lambda line: line, name="late"),
        lambda: s.ctx.register_formatter(int, str),
        lambda: s.ctx.on("pre_execute", print),
        lambda: s.ctx.push(late=1),
        lambda: s.ctx.display("late"),
        lambda: s.ctx.add_cleanup(print),
        lambda: s.ctx.http,
    ]
    for attempt in attempts:
        with pytest.raises(PlugmarketError, match="after it was unloaded"):
            attempt()
    assert s.host.magics == {"line": {}, "cell": {}}
    assert s.host.user_ns == {}
    assert s.shown == []


# --- ctx.http -----------------------------------------------------------------


@pytest.fixture
def two_servers(
    http_server: Callable[..., LoopbackServer], tmp_path: Path
) -> tuple[LoopbackServer, LoopbackServer]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "data.txt").write_text("granted data")
    return http_server(site), http_server(site)


def test_http_reaches_a_granted_host_and_port(
    make: Callable[..., Setup], two_servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, _ = two_servers
    s = make(f"net:127.0.0.1:{granted.port}")
    response = s.ctx.http.get(granted.url("data.txt"))
    assert response.status_code == 200
    assert response.text == "granted data"
    assert s.ctx.http.timeout.read is not None
    assert s.denials == []


def test_http_to_another_port_is_denied(
    make: Callable[..., Setup], two_servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, other = two_servers
    s = make(f"net:127.0.0.1:{granted.port}")
    with pytest.raises(CapabilityDenied) as exc:
        s.ctx.http.get(other.url("data.txt"))
    assert exc.value.capability == f"net:127.0.0.1:{other.port}"
    assert exc.value.operation == "http request"
    assert exc.value.target == other.url("data.txt")
    assert s.denials == [exc.value]
    assert other.count() == 0


def test_http_redirect_to_a_non_granted_host_is_denied(
    make: Callable[..., Setup], two_servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, other = two_servers
    granted.route("/to-other-port", redirect_to(other.url("data.txt")))
    granted.route("/to-other-name", redirect_to(f"http://localhost:{granted.port}/data.txt"))
    s = make(f"net:127.0.0.1:{granted.port}")
    with pytest.raises(CapabilityDenied) as exc:
        s.ctx.http.get(granted.url("to-other-port"))
    assert exc.value.capability == f"net:127.0.0.1:{other.port}"
    with pytest.raises(CapabilityDenied) as exc:
        s.ctx.http.get(granted.url("to-other-name"))
    assert exc.value.capability == f"net:localhost:{granted.port}"
    assert other.count() == 0
    assert granted.count("/data.txt") == 0
    assert len(s.denials) == 2


def test_http_ignores_proxy_settings_from_the_environment(
    make: Callable[..., Setup],
    two_servers: tuple[LoopbackServer, LoopbackServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    granted, proxy = two_servers
    # A proxy mount would carry the request around the granted transport.
    monkeypatch.setenv("HTTP_PROXY", proxy.origin)
    monkeypatch.setenv("ALL_PROXY", proxy.origin)
    s = make(f"net:127.0.0.1:{granted.port}")
    assert s.ctx.http.get(granted.url("data.txt")).status_code == 200
    assert proxy.count() == 0


def test_http_client_is_created_lazily_and_closed_at_close(
    make: Callable[..., Setup], two_servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, _ = two_servers
    s = make(f"net:127.0.0.1:{granted.port}")
    client = s.ctx.http
    assert s.ctx.http is client
    s.ctx.close()
    assert client.is_closed
    with pytest.raises(RuntimeError):
        client.get(granted.url("data.txt"))
    assert granted.count() == 0


def test_plain_host_and_context_never_import_ipython_or_httpx_up_front() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from plugmarket.context import PluginContext\n"
        "from plugmarket.host import current_host\n"
        "from plugmarket._internal.gate import Guard\n"
        "from plugmarket.capabilities import Grants\n"
        "host = current_host()\n"
        "ctx = PluginContext('p', '1', host=host, guard=Guard('p', Grants(['display'])),\n"
        "                    storage=Path('unused'), config={})\n"
        "ctx.display('shown')\n"
        "ctx.close()\n"
        "print(type(host).__name__, sorted({'IPython', 'httpx'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["'shown'", "PlainHost []"]


def test_httpx_errors_pass_through_untouched_for_granted_hosts(
    make: Callable[..., Setup], two_servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    granted, _ = two_servers
    s = make(f"net:127.0.0.1:{granted.port}")
    granted.stop()
    with pytest.raises(httpx.ConnectError):
        s.ctx.http.get(granted.url("data.txt"))
    assert s.denials == []
