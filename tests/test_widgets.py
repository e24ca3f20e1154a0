"""The widget panel and the consent dialog, driven as a user drives them: set text boxes'
values, click buttons; then check what the facade did (installed set, audit, the live
shell) and what the panel shows (cards, details, dialog, error area, progress)."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugmarket import loader
from plugmarket.errors import ConsentRequired, PlugmarketError
from plugmarket.host import IPythonHost
from plugmarket.marketplace import Marketplace
from plugmarket.plan import Plan
from plugmarket.results import details_html, stars
from plugmarket.settings import demo_registry_path
from plugmarket.widgets import ConsentDialog, MarketplacePanel, PluginCard
from tests.support.httpserver import LoopbackServer
from tests.test_kernel import CELL_TIMEOUT, Kernel, assert_runs, plain_environment

# ids of the demo registry's plugins, by what the tests need of them
CSV_TOOLS = {"csv-preview", "table-kit"}


@pytest.fixture
def market(home: Path, shell: Any) -> Iterator[Marketplace]:
    """A live Marketplace on the demo registry, loading plugins into a real shell."""
    m = Marketplace(home, host=IPythonHost(shell), surface="panel")
    yield m
    m.close()


@pytest.fixture
def panel(market: Marketplace) -> MarketplacePanel:
    return MarketplacePanel(market)


def versions(market: Marketplace) -> dict[str, str]:
    return {p.id: p.version for p in market.installed()}


def card(cards: list[PluginCard], plugin_id: str) -> PluginCard:
    found = [c for c in cards if c.plugin_id == plugin_id]
    assert len(found) == 1, [c.plugin_id for c in cards]
    return found[0]


def install_confirmed(panel: MarketplacePanel, plugin_id: str) -> None:
    panel.query.value = plugin_id
    panel.search_button.click()
    card(panel.results, plugin_id).install_button.click()
    assert panel.consent is not None
    panel.consent.confirm_button.click()


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def operations(market: Marketplace) -> list[tuple[str, str, str, str]]:
    return [(e.operation, e.subject, e.surface, e.result) for e in market.audit()]


# --- search and details ----------------------------------------------------------------


def test_opens_with_every_plugin_and_filters_by_category_tag_and_sort(
    panel: MarketplacePanel, market: Marketplace
) -> None:
    everything = {h.id for h in market.search("")}
    assert {c.plugin_id for c in panel.results} == everything and len(everything) == 9
    assert "science" in [value for _, value in panel.category.options]
    assert "csv" in panel.tag.options

    panel.category.value = "science"
    assert [c.plugin_id for c in panel.results] == ["units"]
    assert (
        "Units" in panel.results[0].title.value and "not installed" in panel.results[0].state.value
    )

    panel.category.value = ""
    panel.tag.value = "csv"
    panel.search_button.click()
    assert [c.plugin_id for c in panel.results] == ["csv-preview"]

    panel.tag.value = ""
    panel.sort.value = "name"
    names = [c.hit.name.lower() for c in panel.results if c.hit is not None]
    assert names == sorted(names) and len(names) == 9

    panel.query.value = "no such thing anywhere"
    panel.search_button.click()
    assert panel.results == []
    assert "no plugins match" in panel.results_box.children[0].value
    assert panel.error.value == ""
    assert market.installed() == []  # searching changes nothing


def test_details_show_versions_capabilities_rating_and_reviews(
    panel: MarketplacePanel, market: Marketplace
) -> None:
    panel.query.value = "csv"
    panel.search_button.click()
    card(panel.results, "csv-preview").details_button.click()

    entry = market.details("csv-preview").entry
    assert entry.rating is not None
    shown = panel.details.value
    assert panel.tabs.selected_index == 2 and panel.plugin_id == "csv-preview"
    assert f"{stars(int(entry.rating + 0.5))} {entry.rating:.1f}" in shown
    assert (
        '<s title="yanked">0.9.0</s>' in shown and "yanked:" in shown
    )  # yanked: struck through, reason given
    assert "<td>1.0.0</td>" in shown  # the current version is not struck through
    assert "fs.read" in shown and "table-kit" in shown
    assert "no reviews yet" in shown
    assert ("0.9.0 (yanked)", "0.9.0") in panel.details_version.options

    panel.rate_stars.value = 3
    panel.rate_text.value = "handy <b>for</b> big files"
    panel.rate_button.click()
    assert [(r.stars, r.text) for r in market.reviews("csv-preview")] == [
        (3, "handy <b>for</b> big files")
    ]
    shown = panel.details.value
    assert "★★★☆☆" in shown and "handy &lt;b&gt;for&lt;/b&gt; big files" in shown
    assert [op[:3] for op in operations(market)] == [("rate", "csv-preview", "panel")]


def test_the_notebook_and_the_panel_render_details_alike(
    panel: MarketplacePanel, market: Marketplace
) -> None:
    details = market.details("csv-preview")
    *older, latest = details.detail.versions
    staged = dataclasses.replace(
        details,
        detail=dataclasses.replace(
            details.detail, versions=(*older, dataclasses.replace(latest, rollout=0.25))
        ),
    )
    page = staged._repr_html_()  # what `%plugin info` shows in a notebook
    assert "offered to 25% of users" in page
    assert '<s title="yanked">0.9.0</s>' in page and "table-kit" in page  # yanked; requires
    assert "not installed" not in page  # the notebook view does not read the installed set

    panel.show_details("csv-preview")
    assert panel.details.value == details_html(
        details, installed=market.installed(), reviews=market.reviews("csv-preview")
    )
    assert "not installed" in panel.details.value
    versions_table = details._repr_html_().split("<table>", 1)[1]
    assert versions_table in panel.details.value  # the same versions, rendered the same way


# --- consent ----------------------------------------------------------------------------


def test_install_asks_consent_then_installs_live_on_confirm(
    panel: MarketplacePanel, market: Marketplace, shell: Any
) -> None:
    panel.query.value = "csv"
    panel.search_button.click()
    card(panel.results, "csv-preview").install_button.click()

    dialog = panel.consent
    assert dialog is not None and panel.dialog_area.children == (dialog,)
    assert market.installed() == [] and not loader.loaded()  # nothing yet
    summary = dialog.summary.value
    for capability in ("fs.read", "ipython.magics", "display"):
        assert f"{capability} <b>new</b>" in summary
    assert "read files" in summary and "table-kit 1.0.0" in summary
    assert "needs your consent" in panel.status.value

    dialog.confirm_button.click()
    assert versions(market) == {"csv-preview": "1.0.0", "table-kit": "1.0.0"}
    assert shell.find_line_magic("csv_preview") is not None  # live in the kernel
    assert ("install", "csv-preview", "panel", "ok") in operations(market)
    assert panel.consent is None and panel.dialog_area.children == ()
    assert "install done" in panel.status.value and panel.error.value == ""
    preview = card(panel.results, "csv-preview")
    assert preview.visible_buttons() == ["Details", "Uninstall", "Disable"]
    assert "installed 1.0.0" in preview.state.value
    assert {c.plugin_id for c in panel.installed_cards} == CSV_TOOLS
    assert "dependency" in card(panel.installed_cards, "table-kit").state.value

    dialog.confirm_button.click()  # a second click on a used dialog does nothing
    assert [op for op in operations(market) if op[0] == "install"] == [
        ("install", "csv-preview", "panel", "ok")
    ]


def test_cancelling_consent_changes_nothing(
    panel: MarketplacePanel, market: Marketplace, home: Path
) -> None:
    panel.query.value = "units"
    panel.search_button.click()
    card(panel.results, "units").install_button.click()
    assert panel.consent is not None
    before = files(home)
    panel.consent.cancel_button.click()

    assert files(home) == before  # not a byte written
    assert market.installed() == [] and not loader.loaded()
    assert market.generations() == []
    assert not [op for op in operations(market) if op[0] == "install"]
    assert "cancelled install units: nothing changed" in panel.status.value
    assert panel.consent is None and panel.dialog_area.children == ()
    assert card(panel.results, "units").visible_buttons() == ["Details", "Install"]


def test_consent_dialog_works_on_its_own(market: Marketplace) -> None:
    with pytest.raises(ConsentRequired) as needed:
        market.install("units")
    outcomes: list[object] = []
    dialog = ConsentDialog(
        needed.value.plan, lambda: market.install("units", yes=True), on_done=outcomes.append
    )
    assert (
        "units" in dialog.summary.value and "ipython.namespace <b>new</b>" in dialog.summary.value
    )
    dialog.confirm_button.click()
    assert versions(market) == {"units": "1.1.0"}
    assert len(outcomes) == 1 and isinstance(outcomes[0], Plan)
    assert "install done: add units 1.1.0" in dialog.outcome.value
    assert dialog.confirm_button.disabled and dialog.cancel_button.disabled

    cancelled: list[object] = []
    again = ConsentDialog(needed.value.plan, lambda: market.uninstall("units"), cancelled.append)
    again.cancel_button.click()
    assert cancelled == [None] and "nothing changed" in again.outcome.value
    assert versions(market) == {"units": "1.1.0"}


def test_consent_dialog_shows_a_failed_confirm_in_words(market: Marketplace) -> None:
    with pytest.raises(ConsentRequired) as needed:
        market.install("csv-preview")
    outcomes: list[object] = []
    # The plan goes stale: the user asks for a version that was never published.
    dialog = ConsentDialog(
        needed.value.plan,
        lambda: market.install("csv-preview", "7.0.0", yes=True),
        on_done=outcomes.append,
    )
    dialog.confirm_button.click()
    assert len(outcomes) == 1 and isinstance(outcomes[0], PlugmarketError)
    assert "csv-preview" in dialog.outcome.value and "7.0.0" in dialog.outcome.value
    assert "Traceback" not in dialog.outcome.value
    assert market.installed() == []


def test_a_bug_in_confirm_propagates_through_the_dialogs_output(shell: Any) -> None:
    """ipywidgets' ``with output:`` would print the traceback and swallow the error in IPython."""

    def broken() -> object:
        raise RuntimeError("a bug, not a refusal")

    dialog = ConsentDialog(Plan("install"), broken)
    assert dialog.output in dialog.children
    with pytest.raises(RuntimeError, match="a bug"):
        dialog.confirm()


def test_what_confirm_prints_in_a_kernel_goes_to_the_dialogs_output(tmp_path: Path) -> None:
    """A click is a comm message no cell owns: the front end shows its output only because
    the dialog's Output claims the click's message id while confirm runs."""
    kernel = Kernel(sys.executable, plain_environment(tmp_path), tmp_path / "spec")
    try:
        ids = assert_runs(
            kernel.run(
                "import json\n"
                "from plugmarket.plan import Plan\n"
                "from plugmarket.widgets import ConsentDialog\n"
                "dialog = ConsentDialog(Plan('install'), lambda: print('hello from confirm'))\n"
                "print(json.dumps([dialog.confirm_button.comm.comm_id, "
                "dialog.output.comm.comm_id]))"
            )
        ).value()
        button, output = ids
        click = kernel.client.session.msg(
            "comm_msg",
            {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}},
        )
        kernel.client.shell_channel.send(click)
        click_id = click["header"]["msg_id"]
        claimed: list[str] = []  # the Output's msg_id, as the front end sees it change
        printed: list[tuple[str, list[str]]] = []  # stdout text, and who claimed it then
        while True:
            msg = kernel.client.get_iopub_msg(timeout=CELL_TIMEOUT)
            if msg["parent_header"].get("msg_id") != click_id:
                continue
            content = msg["content"]
            if msg["msg_type"] == "comm_msg" and content["comm_id"] == output:
                claimed.append(content["data"].get("state", {}).get("msg_id", "-"))
            elif msg["msg_type"] == "stream":
                printed.append((content["text"], list(claimed)))
            elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
                break
        assert printed == [("hello from confirm\n", [click_id])]
        assert claimed == [click_id, ""]  # released after confirm
        assert assert_runs(kernel.run("print(json.dumps(dialog.done))")).value() is True
    finally:
        kernel.close()


# --- changing the installed set ---------------------------------------------------------


def test_install_an_older_version_then_update_uninstall(
    panel: MarketplacePanel, market: Marketplace, shell: Any
) -> None:
    panel.show_details("units")
    panel.details_version.value = "1.0.0"
    panel.details_install_button.click()
    assert panel.consent is not None
    panel.consent.confirm_button.click()
    assert versions(market) == {"units": "1.0.0"}

    panel.query.value = "units"
    panel.search_button.click()
    units = card(panel.results, "units")
    assert units.visible_buttons() == ["Details", "Update", "Uninstall", "Disable"]
    units.update_button.click()  # same capabilities: no consent needed
    assert panel.consent is None
    assert versions(market) == {"units": "1.1.0"}
    assert loader.loaded()["units"].version.public == "1.1.0"
    assert "update done: change units 1.0.0 -> 1.1.0" in panel.status.value
    assert card(panel.results, "units").visible_buttons() == ["Details", "Uninstall", "Disable"]

    card(panel.installed_cards, "units").uninstall_button.click()
    assert market.installed() == [] and "units" not in loader.loaded()
    assert shell.find_line_magic("units") is None
    assert panel.installed_cards == []
    assert "No plugins installed" in panel.installed_box.children[0].value
    assert [op[0] for op in operations(market)][:3] == ["uninstall", "update", "install"]


def test_disable_and_enable_from_the_installed_tab(
    panel: MarketplacePanel, market: Marketplace, shell: Any
) -> None:
    install_confirmed(panel, "todo")
    assert "todo" in loader.loaded()

    card(panel.installed_cards, "todo").disable_button.click()
    assert [p.enabled for p in market.installed()] == [False]
    assert "todo" not in loader.loaded()
    todo = card(panel.installed_cards, "todo")
    assert "disabled" in todo.state.value
    assert todo.visible_buttons() == ["Details", "Update", "Uninstall", "Enable"]

    todo.enable_button.click()
    assert [p.enabled for p in market.installed()] == [True]
    assert "todo" in loader.loaded()
    assert ("disable", "todo", "panel", "ok") in operations(market)
    assert ("enable", "todo", "panel", "ok") in operations(market)


def test_rollback_in_the_installed_tab(panel: MarketplacePanel, market: Marketplace) -> None:
    assert panel.rollback_button.disabled  # nothing installed yet, nothing to go back to
    panel.install("units", "1.0.0")
    assert panel.consent is not None
    panel.consent.confirm_button.click()
    card(panel.installed_cards, "units").update_button.click()
    assert versions(market) == {"units": "1.1.0"}
    before = market.installer.current().number
    assert not panel.rollback_button.disabled
    assert panel.rollback_button.description == "Roll back to generation 1"

    panel.rollback_button.click()
    assert versions(market) == {"units": "1.0.0"}
    assert loader.loaded()["units"].version.public == "1.0.0"
    current = market.installer.current().number
    assert current > before
    assert f"generation {current}: rollback" in panel.generations.value
    assert "installed 1.0.0" in card(panel.installed_cards, "units").state.value
    assert ("rollback", "", "panel", "ok") in operations(market)


# --- errors, in words ------------------------------------------------------------------


def test_uninstalling_a_required_plugin_shows_who_needs_it(
    panel: MarketplacePanel, market: Marketplace
) -> None:
    install_confirmed(panel, "csv-preview")
    card(panel.installed_cards, "table-kit").uninstall_button.click()

    assert versions(market) == {"csv-preview": "1.0.0", "table-kit": "1.0.0"}
    shown = panel.error.value
    assert "table-kit" in shown and "csv-preview" in shown and "Traceback" not in shown
    assert panel.status.value == "failed"
    assert any(
        op[:3] == ("uninstall", "table-kit", "panel") and op[3].startswith("error")
        for op in operations(market)
    )
    # Buttons work again after the failure, and the next success clears the error.
    assert not panel.search_button.disabled
    card(panel.installed_cards, "csv-preview").uninstall_button.click()
    assert market.installed() == [] and panel.error.value == ""


def test_a_dead_registry_is_reported_inline(home: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    market = Marketplace(home, registry=f"http://127.0.0.1:{port}/", live=False, surface="panel")
    try:
        panel = MarketplacePanel(market)
        assert panel.results == []
        assert f"127.0.0.1:{port}" in panel.error.value and "Traceback" not in panel.error.value
        assert not panel.search_button.disabled and panel.progress.bar_style == "danger"

        panel.query.value = "csv"
        panel.search_button.click()
        assert f"127.0.0.1:{port}" in panel.error.value and panel.results == []
        assert "failed" in panel.status.value
    finally:
        market.close()


# --- progress, with the default Marketplace ---------------------------------------------


def test_downloads_move_the_progress_bar_while_buttons_wait(
    home: Path,
    shell: Any,
    tmp_path: Path,
    http_server: Callable[..., LoopbackServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    www = tmp_path / "www"
    shutil.copytree(demo_registry_path(), www / "registry")
    server = http_server(www)
    monkeypatch.setenv("PLUGMARKET_REGISTRY", server.url("registry/"))
    monkeypatch.setenv("PLUGMARKET_TRUSTED_KEYS", str(demo_registry_path() / "demo.pub"))
    artifact = www / "registry" / "artifacts" / "units" / "units-1.1.0.zip"
    body = artifact.read_bytes()
    half_shown = threading.Event()

    def in_two_halves(h: Any) -> None:
        # The second half is sent only once the panel shows the first: the bar has moved.
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[: len(body) // 2])
        h.wfile.flush()
        half_shown.wait(30)
        h.wfile.write(body[len(body) // 2 :])
        h.wfile.flush()

    server.route("/registry/artifacts/units/units-1.1.0.zip", in_two_halves)

    panel = MarketplacePanel()  # the default: Marketplace(surface="panel", progress=...)
    seen: list[tuple[int, int, str, bool, str]] = []
    refused: list[str] = []

    def watch(_change: Any) -> None:
        bar = panel.progress
        seen.append(
            (bar.value, bar.max, bar.description, panel.search_button.disabled, panel.status.value)
        )
        if 0 < bar.value < bar.max and not half_shown.is_set():
            panel.search_button.click()  # from code: a front end cannot click a disabled button
            refused.append(panel.error.value)
            half_shown.set()

    panel.progress.observe(watch, names="value")
    panel.query.value = "units"
    panel.search_button.click()
    card(panel.results, "units").install_button.click()
    assert panel.consent is not None
    panel.consent.confirm_button.click()

    assert versions(panel.market) == {"units": "1.1.0"}
    assert shell.find_line_magic("units") is not None
    assert ("install", "units", "panel", "ok") in operations(panel.market)
    downloading = [s for s in seen if s[2] == "units"]
    assert (len(body) // 2, len(body), "units", True, "install units: working…") in downloading
    assert (len(body), len(body), "units", True, "install units: working…") in downloading
    assert panel.progress.value == panel.progress.max == len(body)
    assert panel.progress.bar_style == "success"
    assert len(refused) == 1 and "another operation is still running" in refused[0]
    assert panel.error.value == "" and [c.plugin_id for c in panel.results] == ["units"]
    assert not panel.search_button.disabled  # buttons are back once it is done
    panel.market.close()


def test_enable_disable_and_rollback_report_in_words_not_objects(home: Path, shell: Any) -> None:
    market = Marketplace(home, surface="panel", host=IPythonHost(shell))
    market.install("units", "1.0.0", yes=True)
    market.update("units", yes=True)
    panel = MarketplacePanel(market)
    panel.disable("units")
    assert panel.status.value == "units 1.1.0 is disabled (installed, not loaded)"
    panel.enable("units")
    assert panel.status.value == "units 1.1.0 is enabled"
    panel.rollback()
    assert panel.status.value == "now on generation 5 (rollback to 3)"
