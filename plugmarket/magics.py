"""The ``%plugin`` magics: the Marketplace, as a notebook user types it.

``%load_ext plugmarket`` registers ``%plugin`` (line) and ``%%plugin`` (cell)
and starts following the home's current generation before each cell, so an
install done elsewhere is live at the next cell. ``%unload_ext plugmarket``
takes both magics and the hook away and unloads every plugin.

Each verb is parsed by IPython's own :class:`MagicArgumentParser` (a usage
mistake is one ``UsageError`` line) and calls the :class:`Marketplace` facade,
which is made on the first verb, so loading the extension imports nothing
heavy. Verbs return rich results (a text repr for the terminal, HTML for a
notebook). A failure shows as one line naming what went wrong and what to do;
``--debug`` shows the whole traceback instead.

Consent: an install or update that adds code or capabilities shows its plan
first. A terminal IPython asks at a prompt; a notebook shows the plan, the
exact command that confirms it (``--yes``), and, where widgets work,
Confirm and Cancel buttons.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from plugmarket.errors import ConsentRequired, PlugmarketError, in_ipython_words

if TYPE_CHECKING:
    from pathlib import Path

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.magic_arguments import MagicArgumentParser

    from plugmarket.marketplace import Marketplace
    from plugmarket.plan import Plan

__all__ = [
    "PluginCommandError",
    "PluginMagics",
    "load_ipython_extension",
    "unload_ipython_extension",
]

#: The attribute of the shell holding the extension's magics while it is loaded.
_ATTRIBUTE = "_plugmarket_magics"


class PluginCommandError(UsageError):
    """A ``%plugin`` verb failed: shown as one line (and a hint), not a traceback.

    Attributes:
        error: The :class:`PlugmarketError` behind it.
    """

    def __init__(self, error: PlugmarketError) -> None:
        super().__init__(in_ipython_words(str(error)))
        self.error = error

    def _render_traceback_(self) -> list[str]:
        return self.error._render_traceback_()


def load_ipython_extension(shell: InteractiveShell) -> None:
    """Register ``%plugin``/``%%plugin`` and follow the home's generation before each cell."""
    if getattr(shell, _ATTRIBUTE, None) is not None:
        return
    magics = PluginMagics(shell)
    shell.register_magics(magics)
    shell.events.register("pre_run_cell", magics.follow)
    setattr(shell, _ATTRIBUTE, magics)


def unload_ipython_extension(shell: InteractiveShell) -> None:
    """Remove the magics and the hook, and unload every plugin this kernel runs."""
    magics = getattr(shell, _ATTRIBUTE, None)
    if magics is None:
        return
    delattr(shell, _ATTRIBUTE)
    magics.close()


@magics_class
class PluginMagics(Magics):
    """``%plugin VERB ...`` and ``%%plugin define ID``; see ``%plugin help``.

    Attributes:
        consent: How consent is asked: ``"prompt"`` (a terminal IPython asks
            y/N) or ``"show"`` (a notebook: show the plan and the command).
        buttons: Whether ``"show"`` adds Confirm/Cancel widgets.
        dialog: The last consent dialog shown (a ``ConsentDialog``), if any.
    """

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self.ip = shell
        self.consent = "prompt" if _is_terminal(shell) else "show"
        self.buttons = _widgets_work(shell)
        self.dialog: Any = None  # the last consent dialog shown
        self._current: Path | None = None  # the home's current-generation file
        self._market: Marketplace | None = None
        self._parser: MagicArgumentParser | None = None
        self._parsers: dict[str, MagicArgumentParser] = {}

    @property
    def market(self) -> Marketplace:
        """The facade, made on the first verb (with the kernel's config and environment)."""
        if self._market is None:
            from plugmarket._internal.progress import download_bar
            from plugmarket.host import IPythonHost
            from plugmarket.marketplace import Marketplace

            self._market = Marketplace(
                surface="magic", host=IPythonHost(self.ip), progress=download_bar
            )
        return self._market

    # --- the magic ---------------------------------------------------------------------

    @line_cell_magic
    def plugin(self, line: str, cell: str | None = None) -> Any:
        """Find, install, update and roll back plugins: ``%plugin help`` lists the verbs."""
        from IPython.utils._process_common import arg_split

        argv = arg_split(line, posix=True)
        debug = "--debug" in argv
        argv = [a for a in argv if a != "--debug"]
        verb = argv[0] if argv else "help"
        if verb in ("-h", "--help"):
            verb, argv = "help", ["help"]
        if verb not in VERBS:
            raise UsageError(
                f"%plugin has no verb {verb!r}; the verbs are: {', '.join(VERBS)} "
                "(`%plugin help` says what each does)"
            )
        if cell is not None and verb != "define":
            raise UsageError(f"%%plugin {verb} is a line magic: use `%plugin {verb}`")
        if "-h" in argv[1:] or "--help" in argv[1:]:
            print(self._verb_parser(verb).format_help())
            return None
        args = self._verb_parser(verb).parse_args(argv[1:])
        args.cell = cell
        try:
            return VERBS[verb][1](self, args)
        except PlugmarketError as exc:
            if debug:
                exc.show_traceback = True
                raise
            raise PluginCommandError(exc) from None

    def follow(self, *_info: object) -> None:
        """Before each cell: make this kernel's plugins those of the current generation.

        Until the first verb, a home with nothing installed costs one ``stat``
        per cell: the facade (and what it imports) is made only once there is
        something to load.
        """
        if self._market is None:
            if self._current is None:
                from plugmarket.config import load_settings
                from plugmarket.settings import current_file

                self._current = current_file(load_settings().home)
            if not self._current.exists():
                return
        market = self.market
        try:
            market.sync()
        except PlugmarketError as exc:
            print(f"plugmarket: could not follow the installed set: {exc}", file=sys.stderr)

    def close(self) -> None:
        """Undo :func:`load_ipython_extension`: hook, magics and every live plugin."""
        with contextlib.suppress(ValueError):  # unregistered already
            self.ip.events.unregister("pre_run_cell", self.follow)
        manager = self.ip.magics_manager
        for kind in ("line", "cell"):
            if manager.magics[kind].get("plugin") == getattr(self, "plugin", None):
                del manager.magics[kind]["plugin"]
        manager.registry.pop(type(self).__name__, None)
        if self._market is not None:
            live = self._market.live
            if live is not None:
                live.clear()
            self._market.close()
            self._market = None

    # --- parsing ------------------------------------------------------------------------

    def _verb_parser(self, verb: str) -> MagicArgumentParser:
        parser = self._parsers.get(verb)
        if parser is None:
            from IPython.core.magic_arguments import MagicArgumentParser

            text, _, configure = VERBS[verb]
            prog = "%%plugin define" if verb == "define" else f"%plugin {verb}"
            parser = cast(
                "MagicArgumentParser",
                _untyped(MagicArgumentParser)(
                    prog=prog, description=text, formatter_class=argparse.HelpFormatter
                ),
            )
            configure(parser)
            parser.add_argument("--debug", action="store_true", help="show the whole traceback")
            self._parsers[verb] = parser
        return parser

    # --- consent ------------------------------------------------------------------------

    def ask(self, run: Callable[..., Plan], command: str, *, yes: bool = False) -> Plan | None:
        """``run()`` (a facade verb taking ``yes`` and ``consent``); if it needs consent,
        ask for it as this shell can, and apply exactly the plan that was shown."""
        if yes:
            return run(yes=True)
        try:
            return run()
        except ConsentRequired as needed:
            plan = needed.plan
        if self.consent == "prompt":
            print(str(plan))
            answer = input("Apply this plan? [y/N] ").strip().lower()
            if answer in ("y", "yes"):
                return run(yes=True, consent=plan)
            print("Nothing changed.")
            return None
        from IPython.display import display

        if self.buttons:  # the dialog shows the plan itself, with Confirm and Cancel
            from plugmarket.widgets import ConsentDialog

            self.dialog = ConsentDialog(plan, lambda: run(yes=True, consent=plan))
            _untyped(display)(self.dialog)
            print(f"Nothing changed yet: click Confirm above, or run\n    {command} --yes")
        else:
            _untyped(display)(plan)
            print(f"Nothing changed yet. To apply this plan, run:\n    {command} --yes")
        return None


# --- verbs ---------------------------------------------------------------------------------
# Each takes the magics and the parsed arguments, and returns what the cell shows.


def _search(m: PluginMagics, a: argparse.Namespace) -> Any:
    found = m.market.search(
        a.query, category=a.category, tags=a.tag or (), sort=a.sort, limit=a.limit
    )
    return _as_json(found) if a.json else found


def _info(m: PluginMagics, a: argparse.Namespace) -> Any:
    details = m.market.details(a.id)
    return _as_json(details) if a.json else details


def _versions(m: PluginMagics, a: argparse.Namespace) -> Any:
    versions = m.market.versions(a.id)
    return _as_json(versions) if a.json else versions


def _install(m: PluginMagics, a: argparse.Namespace) -> Any:
    command = f"%plugin install {a.id}" + (f" {a.version}" if a.version else "")
    return m.ask(lambda **kw: m.market.install(a.id, a.version, **kw), command, yes=a.yes)


def _update(m: PluginMagics, a: argparse.Namespace) -> Any:
    command = " ".join(["%plugin update", *(x for x in (a.id, a.version) if x)])
    return m.ask(lambda **kw: m.market.update(a.id, a.version, **kw), command, yes=a.yes)


def _uninstall(m: PluginMagics, a: argparse.Namespace) -> Any:
    return m.market.uninstall(a.id)


def _list(m: PluginMagics, a: argparse.Namespace) -> Any:
    installed = m.market.installed()
    return _as_json(list(installed)) if a.json else installed


def _enable(m: PluginMagics, a: argparse.Namespace) -> None:
    plugin = m.market.enable(a.id)
    print(f"enabled {plugin.id} {plugin.version}")


def _disable(m: PluginMagics, a: argparse.Namespace) -> None:
    plugin = m.market.disable(a.id)
    print(f"disabled {plugin.id} {plugin.version}: installed, not loaded")


def _rollback(m: PluginMagics, a: argparse.Namespace) -> None:
    generation = m.market.rollback()
    print(f"rolled back: now generation {generation.number} ({generation.reason})")


def _generations(m: PluginMagics, a: argparse.Namespace) -> None:
    for g in m.market.generations():
        print(f"{g.number:5}  {g.created:%Y-%m-%d %H:%M}  {len(g.plugins):3} plugin(s)  {g.reason}")


def _load(m: PluginMagics, a: argparse.Namespace) -> None:
    loaded = m.market.load(a.id)
    print(f"loaded {loaded.id} {loaded.version} in {loaded.load_seconds * 1000:.1f} ms")


def _unload(m: PluginMagics, a: argparse.Namespace) -> None:
    m.market.unload(a.id)
    print(f"unloaded {a.id} from this kernel (still installed)")


def _grant(m: PluginMagics, a: argparse.Namespace) -> None:
    plugin = m.market.grant(a.id, a.capability)
    print(f"{plugin.id} now has: {', '.join(plugin.grants)}")


def _revoke(m: PluginMagics, a: argparse.Namespace) -> None:
    plugin = m.market.revoke(a.id, a.capability)
    print(f"{plugin.id} now has: {', '.join(plugin.grants) or 'no capabilities'}")


def _audit(m: PluginMagics, a: argparse.Namespace) -> Any:
    entries = m.market.audit(a.limit)
    return _as_json(list(entries)) if a.json else entries


def _rate(m: PluginMagics, a: argparse.Namespace) -> Any:
    return m.market.rate(a.id, a.stars, a.text or "")


def _reviews(m: PluginMagics, a: argparse.Namespace) -> Any:
    return m.market.reviews(a.id)


def _stats(m: PluginMagics, a: argparse.Namespace) -> Any:
    table = m.market.stats(a.id)
    return _as_json(table) if a.json else table


def _lock(m: PluginMagics, a: argparse.Namespace) -> None:
    from pathlib import Path

    data = m.market.lock()
    if a.out:
        Path(a.out).write_bytes(data)
        print(f"wrote {a.out}")
    else:
        print(data.decode(), end="")


def _sync(m: PluginMagics, a: argparse.Namespace) -> Any:
    if a.lockfile:
        command = f"%plugin sync {shlex.quote(a.lockfile)}"
        return m.ask(lambda **kw: m.market.apply_lock(a.lockfile, **kw), command, yes=a.yes)
    changed = m.market.sync()
    live = m.market.live
    if live is None or not live.generation:
        print("nothing is installed: nothing to load")
    else:
        print(f"in step with generation {live.generation}" + ("" if changed else " (no change)"))
    return None


def _check(m: PluginMagics, a: argparse.Namespace) -> None:
    print(str(m.market.check(repair=a.repair)))


def _config(m: PluginMagics, a: argparse.Namespace) -> Any:
    from plugmarket.config import describe_settings

    market = m.market
    if a.key is None:
        return describe_settings(market.settings)
    if a.value is not None:
        market.configure(a.key, a.value)
    shown = describe_settings(market.settings, only=a.key)
    if a.value is None:
        return shown
    print(f"{shown!r} (for this kernel)")
    return None


def _panel(m: PluginMagics, a: argparse.Namespace) -> Any:
    from plugmarket.widgets import MarketplacePanel

    return MarketplacePanel(m.market)


def _help(m: PluginMagics, a: argparse.Namespace) -> None:
    if a.topic:
        if a.topic not in VERBS:
            raise UsageError(f"%plugin has no verb {a.topic!r}; `%plugin help` lists them")
        print(m._verb_parser(a.topic).format_help())
        return
    width = max(len(v) for v in VERBS)
    lines = ["%plugin VERB [ARGS] — find, install and manage plugins in this kernel", ""]
    lines += [f"  {v:{width}}  {text}" for v, (text, _, _) in VERBS.items()]
    lines += ["", "`%plugin VERB --help` shows a verb's arguments; --debug shows tracebacks."]
    print("\n".join(lines))


def _define(m: PluginMagics, a: argparse.Namespace) -> Any:
    if a.cell is None:
        raise UsageError("define is a cell magic: put `%%plugin define ID` above the plugin's code")
    if not a.cell.strip():
        raise UsageError(
            f"%%plugin define {a.id}: the cell is empty; write the plugin's code below"
        )
    command = "%%plugin define " + " ".join(
        [
            a.id,
            *([f"--version {a.version}"] if a.version else []),
            *(f"--grant {g}" for g in a.grant or ()),
        ]
    )
    return m.ask(
        lambda **kw: m.market.define(a.cell, a.id, a.version, grants=a.grant or (), **kw),
        command,
        yes=a.yes,
    )


def _as_json(value: Any) -> Any:
    import json

    from IPython.display import JSON

    from plugmarket.cli_user import plain_data

    return _untyped(JSON)(json.loads(json.dumps(plain_data(value))))


# --- arguments -----------------------------------------------------------------------------


def _cli(verb: str) -> Callable[[argparse.ArgumentParser], None]:
    """The terminal verb's arguments, so both surfaces take the same ones."""

    def configure(parser: argparse.ArgumentParser) -> None:
        from plugmarket.cli_user import USER_VERBS

        next(v for v in USER_VERBS if v[0] == verb)[2](parser)

    return configure


def _c_id(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="the plugin id")


def _c_sync(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "lockfile",
        nargs="?",
        metavar="LOCKFILE",
        help="install exactly what it lists (default: load what the home has installed now)",
    )
    p.add_argument("--yes", action="store_true", help="consent to the plan without asking")


def _c_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("key", nargs="?", metavar="KEY", help="one setting (default: all)")
    p.add_argument("value", nargs="?", metavar="VALUE", help="its new value, for this kernel")


def _c_help(p: argparse.ArgumentParser) -> None:
    p.add_argument("topic", nargs="?", metavar="VERB", help="a verb to explain")


def _c_define(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="the new plugin's id, such as my-tool")
    p.add_argument("--version", help="its version (default 0.0.0; define again to update)")
    p.add_argument(
        "--grant",
        action="append",
        metavar="CAP",
        help="a capability it may use, such as fs.read:data/* (repeatable)",
    )
    p.add_argument("--yes", action="store_true", help="consent to capabilities it asks for itself")


def _c_none(p: argparse.ArgumentParser) -> None:
    pass


Verb = tuple[str, Callable[[PluginMagics, "argparse.Namespace"], Any], Callable[..., None]]

#: verb -> (what it does, run, configure its parser), in the order help lists them.
VERBS: dict[str, Verb] = {
    "search": ("find plugins in the registries", _search, _cli("search")),
    "info": ("a plugin's details: versions, capabilities, rating", _info, _cli("info")),
    "versions": ("every version of a plugin", _versions, _cli("versions")),
    "install": ("install a plugin and what it requires; live at once", _install, _cli("install")),
    "update": ("update one plugin, or all, hot-swapped", _update, _cli("update")),
    "uninstall": ("remove a plugin from disk and kernel", _uninstall, _c_id),
    "list": ("the installed plugins", _list, _cli("list")),
    "enable": ("load an installed plugin again", _enable, _c_id),
    "disable": ("keep a plugin installed but do not load it", _disable, _c_id),
    "rollback": ("switch back to the previous generation", _rollback, _c_none),
    "generations": ("the kept generations of the installed set", _generations, _c_none),
    "load": ("load an installed plugin into this kernel only", _load, _c_id),
    "unload": ("unload a plugin from this kernel only", _unload, _c_id),
    "grant": ("grant a plugin a capability", _grant, _cli("grant")),
    "revoke": ("take a capability back", _revoke, _cli("revoke")),
    "audit": ("the audit log, newest first", _audit, _cli("audit")),
    "rate": ("rate a plugin 1-5 stars, with a short review", _rate, _cli("rate")),
    "reviews": ("a plugin's ratings and reviews", _reviews, _c_id),
    "stats": ("install, update and load statistics", _stats, _cli("stats")),
    "lock": ("the installed set as a lockfile", _lock, _cli("lock")),
    "sync": ("load what is installed now, or install a lockfile's set", _sync, _c_sync),
    "check": ("verify the store and generations", _check, _cli("check")),
    "config": ("show the settings, or change one for this kernel", _config, _c_config),
    "panel": ("the marketplace panel (widgets)", _panel, _c_none),
    "help": ("this list, or one verb's arguments", _help, _c_help),
    "define": ("%%plugin define ID: the cell's code as a plugin", _define, _c_define),
}


# --- the shell -------------------------------------------------------------------------------


def _untyped(function: Any) -> Any:
    """IPython's untyped callables, as mypy --strict accepts calling them."""
    return function


def _is_terminal(shell: InteractiveShell) -> bool:
    """A terminal IPython, where ``input()`` reaches the user."""
    return type(shell).__name__ == "TerminalInteractiveShell" and sys.stdin.isatty()


def _widgets_work(shell: InteractiveShell) -> bool:
    """A kernel with a front end (comms), and ipywidgets installed."""
    from importlib.util import find_spec

    return getattr(shell, "kernel", None) is not None and find_spec("ipywidgets") is not None
