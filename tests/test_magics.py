"""The %plugin magics in a real InteractiveShell, against the demo registry shipped in the package.

Every verb is run through ``run_line_magic``/``run_cell_magic`` (or ``run_cell``
where what the user sees matters), its error paths included, and checked
both by what it returned or printed and by what the home and the shell hold.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from plugmarket import loader
from plugmarket.magics import PluginCommandError, PluginMagics
from plugmarket.marketplace import Marketplace
from tests.support.shell import snapshot


@pytest.fixture
def ip(home: Path, shell: Any) -> Any:
    """A shell with the extension loaded (consent shown, as in a notebook), unloaded after."""
    shell.run_line_magic("load_ext", "plugmarket")
    yield shell
    shell.run_line_magic("unload_ext", "plugmarket")
    assert loader.loaded() == {}


def magics(sh: Any) -> PluginMagics:
    found = sh._plugmarket_magics
    assert isinstance(found, PluginMagics)
    return found


def plugin(sh: Any, line: str) -> Any:
    return sh.run_line_magic("plugin", line)


def installed(home: Path) -> dict[str, str]:
    return {p.id: p.version for p in Marketplace(home, live=False).installed()}


def line_magics(sh: Any) -> set[str]:
    return set(sh.magics_manager.magics["line"])


# --- the extension ---------------------------------------------------------------------


def test_load_ext_registers_both_magics_and_unload_leaves_the_shell_as_before(
    home: Path, shell: Any
) -> None:
    shell.run_line_magic("load_ext", "plugmarket")  # IPython loads its own lazy magics once
    shell.run_line_magic("unload_ext", "plugmarket")
    before = snapshot(shell)
    shell.run_line_magic("load_ext", "plugmarket")
    assert "plugin" in shell.magics_manager.magics["line"]
    assert "plugin" in shell.magics_manager.magics["cell"]
    plugin(shell, "install units --yes")
    assert "units" in line_magics(shell)
    shell.run_line_magic("unload_ext", "plugmarket")
    assert loader.loaded() == {}
    assert snapshot(shell) == before
    with pytest.raises(UsageError, match="plugin"):
        plugin(shell, "list")


def test_loading_twice_registers_one_hook(ip: Any) -> None:
    ip.run_line_magic("reload_ext", "plugmarket")
    ip.extension_manager.loaded.discard("plugmarket")
    import plugmarket

    plugmarket.load_ipython_extension(ip)  # a second load while loaded changes nothing
    hooks = [cb for cb in ip.events.callbacks["pre_run_cell"] if "PluginMagics" in repr(cb)]
    assert len(hooks) == 1
    ip.extension_manager.loaded.add("plugmarket")


def test_the_kernel_follows_an_install_made_by_another_process_at_the_next_cell(
    ip: Any, home: Path
) -> None:
    plugin(ip, "list")  # the extension's marketplace exists and has synced
    subprocess.run(
        [sys.executable, "-m", "plugmarket", "install", "todo", "--yes"],
        check=True,
        capture_output=True,
    )
    assert "todo" not in line_magics(ip)
    ip.run_cell("pass")
    assert "todo" in line_magics(ip)


# --- reading verbs -----------------------------------------------------------------------


def test_search_returns_rich_results_with_filters(ip: Any) -> None:
    hits = plugin(ip, "search csv")
    assert hits[0].id == "csv-preview"
    assert "★" in hits._repr_html_() and "<code" in hits._repr_html_()
    tagged = plugin(ip, "search --tag sql")
    assert {h.id for h in tagged} == {"sqlite-magic"}
    named = plugin(ip, "search --sort name --limit 3")
    assert [h.id for h in named] == sorted(h.id for h in named) and len(named) == 3
    as_json = plugin(ip, "search units --json")
    assert as_json.data[0]["id"] == "units"


def test_info_and_versions_show_yanked_versions_struck_through(ip: Any) -> None:
    details = plugin(ip, "info csv-preview")
    assert details.id == "csv-preview"
    versions = plugin(ip, "versions csv-preview")
    assert [str(v.version) for v in versions] == ["1.0.0", "0.9.0"]
    assert '<s title="yanked">0.9.0</s>' in versions._repr_html_()
    assert "YANKED" in repr(versions) and "1.0.0" in repr(versions)


def test_help_lists_every_verb_and_each_verb_has_its_own_help(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin(ip, "help")
    overview = capsys.readouterr().out
    from plugmarket.magics import VERBS

    for verb in VERBS:
        assert f"  {verb} " in overview
    plugin(ip, "install --help")
    assert "usage: %plugin install" in capsys.readouterr().out
    plugin(ip, "help rate")
    assert "STARS" in capsys.readouterr().out.upper()
    with pytest.raises(UsageError, match="no verb 'nope'"):
        plugin(ip, "help nope")


# --- consent ------------------------------------------------------------------------------


def test_install_without_yes_in_a_notebook_shows_the_plan_and_the_command_and_changes_nothing(
    ip: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert magics(ip).consent == "show"
    assert plugin(ip, "install csv-preview") is None
    out = capsys.readouterr().out
    assert "add table-kit 1.0.0" in out and "add csv-preview 1.0.0" in out
    assert "fs.read" in out
    assert "%plugin install csv-preview --yes" in out
    assert installed(home) == {}
    assert "csv_preview" not in line_magics(ip)


def test_a_terminal_prompt_applies_the_plan_on_yes_and_nothing_on_no(
    ip: Any, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    magics(ip).consent = "prompt"
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert plugin(ip, "install units") is None
    assert "Nothing changed" in capsys.readouterr().out
    assert installed(home) == {}
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    plan = plugin(ip, "install units")
    assert plan.item("units").new_version == "1.1.0"
    assert installed(home) == {"units": "1.1.0"}


def test_consent_buttons_are_shown_where_widgets_work(
    ip: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from plugmarket.widgets import ConsentDialog

    shown: list[Any] = []
    ip.display_pub.publish = lambda data, **kw: shown.append(data)  # what a front end receives
    magics(ip).buttons = True
    plugin(ip, "install units")
    dialogs = [d for d in shown if "application/vnd.jupyter.widget-view+json" in d]
    assert dialogs, shown
    dialog = magics(ip).dialog
    assert isinstance(dialog, ConsentDialog)
    assert dialog.model_id in str(dialogs[-1])
    dialog.confirm_button.click()
    assert installed(home) == {"units": "1.1.0"}
    assert "units" in line_magics(ip)


# --- changing the installed set -----------------------------------------------------------


def test_install_use_update_rollback_uninstall_live_without_a_restart(ip: Any, home: Path) -> None:
    plan = plugin(ip, "install units 1.0.0 --yes")
    assert plan.item("units").new_version == "1.0.0"
    assert str(ip.run_line_magic("units", "3 km to mi")).startswith("1.864")
    assert str(loader.loaded()["units"].version) == "1.0.0"

    update = plugin(ip, "update units --yes")
    change = update.item("units")
    assert (change.old_version, change.new_version) == ("1.0.0", "1.1.0")
    assert "1.0.0 → 1.1.0" in update._repr_html_()
    assert str(loader.loaded()["units"].version) == "1.1.0"
    assert str(ip.run_line_magic("units", "3 km to mi")).startswith("1.864")

    plugin(ip, "rollback")
    assert installed(home) == {"units": "1.0.0"}
    assert str(loader.loaded()["units"].version) == "1.0.0"

    plugin(ip, "uninstall units")
    assert installed(home) == {}
    assert "units" not in line_magics(ip)


def test_list_enable_disable_load_unload(
    ip: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin(ip, "install todo --yes")
    listed = plugin(ip, "list")
    assert [p.id for p in listed] == ["todo"]
    assert "todo" in listed._repr_html_()

    plugin(ip, "disable todo")
    assert "todo" not in line_magics(ip)
    assert not Marketplace(home, live=False).installed()[0].enabled
    plugin(ip, "enable todo")
    assert "todo" in line_magics(ip)

    plugin(ip, "unload todo")
    assert "todo" not in line_magics(ip)
    ip.run_cell("pass")  # following the generation does not bring it back
    assert "todo" not in line_magics(ip)
    plugin(ip, "load todo")
    assert "todo" in line_magics(ip)
    assert "loaded todo 1.0.0" in capsys.readouterr().out


def test_grant_and_revoke_change_what_the_live_plugin_holds(ip: Any, home: Path) -> None:
    plugin(ip, "install csv-preview --yes")
    plugin(ip, "revoke csv-preview display")
    grants = {p.id: p.grants for p in Marketplace(home, live=False).installed()}
    assert "display" not in grants["csv-preview"]
    assert "display" not in str(loader.loaded()["csv-preview"].grants)
    plugin(ip, "grant csv-preview display")
    grants = {p.id: p.grants for p in Marketplace(home, live=False).installed()}
    assert "display" in grants["csv-preview"]
    assert "display" in str(loader.loaded()["csv-preview"].grants)


def test_records_audit_rate_reviews_stats_generations(
    ip: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin(ip, "install units --yes")
    audit = plugin(ip, "audit --limit 5")
    assert audit[0].operation == "install" and audit[0].surface == "magic"
    review = plugin(ip, 'rate units 4 "handy conversions"')
    assert review.stars == 4
    reviews = plugin(ip, "reviews units")
    assert [r.text for r in reviews] == ["handy conversions"]
    assert "★★★★☆" in reviews._repr_html_()
    with pytest.raises(UsageError):
        plugin(ip, "rate units 7")
    stats = plugin(ip, "stats units")
    assert stats.installs == 1 and stats.loads >= 1
    plugin(ip, "generations")
    assert "install units" in capsys.readouterr().out


def test_lock_then_sync_reproduces_the_set_in_another_home(
    ip: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin(ip, "install csv-preview --yes")
    lockfile = tmp_path / "plugins.lock"
    plugin(ip, f"lock --out {lockfile}")
    assert "csv-preview" in lockfile.read_text()
    ip.run_line_magic("unload_ext", "plugmarket")
    other = tmp_path / "other-home"
    monkeypatch.setenv("PLUGMARKET_HOME", str(other))
    ip.run_line_magic("load_ext", "plugmarket")
    plugin(ip, f"sync {lockfile} --yes")
    assert installed(other) == installed(home)
    assert "csv_preview" in line_magics(ip)


def test_check_and_config(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plugin(ip, "check")
    assert "sound" in capsys.readouterr().out
    every = plugin(ip, "config")
    assert "cache_ttl" in every and "offline" in every
    plugin(ip, "config cache_ttl 42")
    assert magics(ip).market.settings.cache_ttl == 42.0
    assert plugin(ip, "config cache_ttl") == {"cache_ttl": 42.0}
    with pytest.raises(PluginCommandError, match="cache_ttl cannot be 'soon'"):
        plugin(ip, "config cache_ttl soon")
    with pytest.raises(PluginCommandError, match="'home' cannot be changed"):
        plugin(ip, "config home /tmp/elsewhere")


def test_offline_set_at_run_time_refuses_a_remote_registry(ip: Any) -> None:
    plugin(ip, "config registry https://registry.invalid/")
    plugin(ip, "config offline true")
    with pytest.raises(PluginCommandError) as failed:
        plugin(ip, "search csv")
    assert type(failed.value.error).__name__ == "OfflineError"


def test_panel_is_the_marketplace_panel_on_the_magics_facade(ip: Any) -> None:
    from plugmarket.widgets import MarketplacePanel

    panel = plugin(ip, "panel")
    assert isinstance(panel, MarketplacePanel)


# --- %%plugin define ----------------------------------------------------------------------

GREETER = """
def activate(ctx):
    ctx.register_magic(lambda line: "{word}, " + line, name="greet")
"""


def test_define_installs_the_cell_as_a_plugin_and_defining_again_hot_swaps_it(
    ip: Any, home: Path
) -> None:
    ip.run_cell_magic(
        "plugin", "define greeter --grant ipython.magics", GREETER.format(word="hello")
    )
    assert ip.run_line_magic("greet", "world") == "hello, world"
    assert installed(home) == {"greeter": "0.0.0"}
    ip.run_cell_magic(
        "plugin",
        "define greeter --version 0.2 --grant ipython.magics",
        GREETER.format(word="bonjour"),
    )
    assert ip.run_line_magic("greet", "world") == "bonjour, world"
    assert installed(home) == {"greeter": "0.2"}
    assert [e.operation for e in plugin(ip, "audit --limit 2")] == ["define", "define"]


def test_define_without_the_capability_it_uses_fails_in_one_line_and_installs_nothing(
    ip: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell(f"%%plugin define greeter\n{GREETER.format(word='hi')}")
    out = capsys.readouterr()
    shown = out.out + out.err
    assert shown.startswith(
        "InstallError: greeter was not defined: its code needs 'ipython.magics'"
    )
    assert "Define it again with --grant ipython.magics" in shown
    assert "Traceback" not in shown
    assert installed(home) == {}
    assert "greet" not in line_magics(ip)


def test_define_asks_consent_for_capabilities_the_code_requests_itself(
    ip: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = '__plugin__ = {"id": "reader", "version": "1.0", "capabilities": ["fs.read:/tmp/*"]}\n'
    code += "def activate(ctx):\n    pass\n"
    assert ip.run_cell_magic("plugin", "define reader", code) is None
    assert "%%plugin define reader --yes" in capsys.readouterr().out
    assert installed(home) == {}
    ip.run_cell_magic("plugin", "define reader --yes", code)
    assert installed(home) == {"reader": "1.0"}


def test_define_mistakes_are_usage_errors(ip: Any) -> None:
    with pytest.raises(UsageError, match="cell magic"):
        plugin(ip, "define greeter")
    with pytest.raises(UsageError, match="empty"):
        ip.run_cell_magic("plugin", "define greeter", "\n  \n")
    with pytest.raises(UsageError, match="line magic"):
        ip.run_cell_magic("plugin", "search", "csv")


# --- errors -------------------------------------------------------------------------------


def test_mistakes_print_one_line_and_debug_shows_the_traceback(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("%plugin frobnicate")
    out = capsys.readouterr()
    assert "no verb 'frobnicate'" in out.out + out.err and "Traceback" not in out.out + out.err

    ip.run_cell("%plugin rate units")
    out = capsys.readouterr()
    assert "required: stars" in out.out + out.err

    ip.run_cell("%plugin uninstall units")
    out = capsys.readouterr()
    shown = (out.out + out.err).strip().splitlines()
    assert shown == [
        "InstallError: units is not installed. See what is installed with `%plugin list`."
    ]

    ip.run_cell("%plugin uninstall units --debug")
    out = capsys.readouterr()
    assert "Traceback" in out.out + out.err and "InstallError" in out.out + out.err


def test_a_dead_registry_is_one_line_naming_it(ip: Any) -> None:
    plugin(ip, "config registry http://127.0.0.1:9/")
    with pytest.raises(PluginCommandError) as failed:
        plugin(ip, "search csv")
    assert "127.0.0.1:9" in str(failed.value)
    assert failed.value._render_traceback_()[0].startswith("RegistryError: ")


def test_the_panel_of_the_magics_installs_through_its_facade_and_gives_the_bar_back(
    ip: Any,
) -> None:
    panel = plugin(ip, "panel")
    market = magics(ip).market
    bar = market.progress
    panel.query.value = "units"
    card = next(c for c in panel.results if c.plugin_id == "units")
    card.install_button.click()
    panel.consent.confirm_button.click()
    assert [p.id for p in market.installed()] == ["units"]
    assert "units" in line_magics(ip)
    assert market.progress is bar


PEEK = """
from pathlib import Path

def activate(ctx):
    ctx.register_magic(lambda line: Path(line).read_text(), name="peek")
"""


def test_a_denial_from_a_plugins_own_magic_is_one_line_naming_the_magic_to_grant_it(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    ip.run_cell_magic("plugin", "define peek --grant ipython.magics", PEEK)
    ip.run_cell(f"%peek {secret}")
    out = capsys.readouterr()
    shown = (out.out + out.err).strip().splitlines()
    assert len(shown) == 1, shown
    assert shown[0].startswith("CapabilityDenied: ") and str(secret) in shown[0]
    assert "`%plugin grant peek fs.read" in shown[0]
    assert [e.operation for e in plugin(ip, "audit --limit 1")] == ["denied"]

    ip.run_line_magic("xmode", "verbose")  # the user asks for the whole story
    ip.run_cell(f"%peek {secret}")
    out = capsys.readouterr()
    assert "Traceback" in out.out + out.err and "read_text" in out.out + out.err


def test_define_brings_registry_plugins_only_with_consent(
    ip: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = '__plugin__ = {"id": "mine", "version": "1.0", "requires": ["http-get"]}\n'
    code += "def activate(ctx):\n    pass\n"
    assert ip.run_cell_magic("plugin", "define mine", code) is None
    out = capsys.readouterr().out
    assert "add http-get 1.0.0" in out and "net:api.github.com" in out
    assert installed(home) == {}
    ip.run_cell_magic("plugin", "define mine --yes", code)
    assert installed(home) == {"http-get": "1.0.0", "mine": "1.0"}


def test_define_refuses_a_version_or_grant_its_literal_does_not_say(ip: Any, home: Path) -> None:
    code = '__plugin__ = {"id": "mine", "version": "1.0", "capabilities": ["display"]}\n'
    code += "def activate(ctx):\n    pass\n"
    with pytest.raises(PluginCommandError, match=r"literal says version 1\.0"):
        ip.run_cell_magic("plugin", "define mine --version 2.0", code)
    with pytest.raises(PluginCommandError, match=r"--grant fs\.read is not among"):
        ip.run_cell_magic("plugin", "define mine --grant fs.read", code)
    assert installed(home) == {}


def test_updates_leave_a_plugin_defined_in_code_alone(ip: Any, home: Path) -> None:
    code = "def activate(ctx):\n    pass\n"
    ip.run_cell_magic("plugin", "define todo --version 0.1", code)  # an id the registry has
    assert plugin(ip, "update --yes").empty
    assert magics(ip).market.auto_update().empty
    assert installed(home) == {"todo": "0.1"}
    with pytest.raises(PluginCommandError, match="was defined in code"):
        plugin(ip, "update todo --yes")


def test_confirm_applies_only_the_plan_that_was_shown(ip: Any, home: Path) -> None:
    from plugmarket.errors import ConsentRequired
    from plugmarket.plan import Plan

    market = magics(ip).market
    with pytest.raises(ConsentRequired) as asked:
        market.install("units", "1.0.0")
    shown = asked.value.plan
    # What the user agreed to was units 1.0.0; the plan now resolved is 1.1.0.
    with pytest.raises(ConsentRequired, match="changed since you agreed"):
        market.install("units", yes=True, consent=shown)
    assert installed(home) == {}
    narrower = Plan("install", tuple(i for i in shown.items if i.id != "units"))
    with pytest.raises(ConsentRequired):
        market.install("units", "1.0.0", yes=True, consent=narrower)
    market.install("units", "1.0.0", yes=True, consent=shown)
    assert installed(home) == {"units": "1.0.0"}


def test_sync_with_nothing_installed_says_so(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plugin(ip, "sync")
    assert capsys.readouterr().out == "nothing is installed: nothing to load\n"
