"""The ipywidgets surface: the marketplace panel and the consent dialog.

:class:`MarketplacePanel` (``%plugin panel``) searches, shows details, and
installs, updates, uninstalls, enables, disables and rolls back plugins, all
through one :class:`~plugmarket.marketplace.Marketplace`. :class:`ConsentDialog`
shows a plan that needs consent (plugins, versions, capabilities, what is
new) and applies it only when the user confirms; the ``%plugin`` magics show
it on its own.

Invariants:

- Only the facade is called; nothing here decides what a plan holds.
- Operations run in the click handler, synchronously: the kernel is busy for
  as long as the operation, no longer (no thread, no polling, no sleep). A
  live install changes the kernel's shell, which must happen on its thread.
  While one runs, every button is disabled and clicks are ignored.
- A :class:`~plugmarket.errors.PlugmarketError` is shown in words in the error
  area, never as a traceback; anything else is a bug and propagates.
- The important children are attributes (``panel.query``, ``card.install_button``,
  ...), so code and tests drive the panel as a user would.

ipywidgets ships no type information, hence the ``type: ignore`` on each
class that subclasses a widget.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import ipywidgets as w
from packaging.version import InvalidVersion, Version

from plugmarket._internal.search_index import SORTS
from plugmarket.errors import ConsentRequired, PlugmarketError, in_ipython_words
from plugmarket.plan import Plan
from plugmarket.results import badges, details_html, stars

if TYPE_CHECKING:
    from plugmarket._internal.fetch import Progress
    from plugmarket._internal.installed import InstalledPlugin
    from plugmarket.marketplace import Marketplace
    from plugmarket.registry import PluginDetails, SearchHit

__all__ = ["ConsentDialog", "MarketplacePanel", "PluginCard"]

#: What each capability kind lets a plugin do, in words for the consent dialog.
_CAPABILITY_WORDS = {
    "fs.read": "read files",
    "fs.write": "write files",
    "net": "use the network",
    "subprocess": "run other programs",
    "env": "read environment variables",
    "native": "load native code (ctypes, C extensions)",
    "ipython.magics": "add magics",
    "ipython.events": "run code on IPython events",
    "ipython.namespace": "put names into your namespace",
    "display": "display output",
}
_HIDDEN = "none"


def _in_words(capability: str) -> str:
    kind, _, scope = capability.partition(":")
    words = _CAPABILITY_WORDS.get(kind, kind)
    return f"{words} ({scope})" if scope else words


def _error_html(exc: PlugmarketError) -> str:
    return f'<div style="color:#b00020">&#9888; {html.escape(in_ipython_words(str(exc)))}</div>'


def _outcome_text(result: object) -> str:
    """What an operation's result says to a user: a plan's changes, a plugin's new state,
    the generation now current."""
    from plugmarket._internal.installed import Generation, InstalledPlugin

    if isinstance(result, Plan):
        if result.empty:
            return f"{result.operation}: nothing to do"
        return f"{result.operation} done: " + "; ".join(i.describe() for i in result.items)
    if isinstance(result, InstalledPlugin):
        state = "enabled" if result.enabled else "disabled (installed, not loaded)"
        return f"{result.id} {result.version} is {state}"
    if isinstance(result, Generation):
        return f"now on generation {result.number} ({result.reason})"
    return str(result)


def _newer(latest: str, installed: str) -> bool:
    try:
        return bool(latest) and Version(latest) > Version(installed)
    except InvalidVersion:
        return False


def _show(widget: Any, visible: bool) -> None:
    widget.layout.display = None if visible else _HIDDEN


@contextmanager
def _shown_in(output: w.Output) -> Iterator[None]:
    """Show what the body prints or displays in ``output``.

    A click runs in a comm handler, whose output no notebook cell owns, so a
    front end drops it (a download's progress bar, a plugin's ``ctx.display``)
    unless an Output widget claims it. Exceptions pass through unchanged:
    ``with output:`` would print them as a traceback and swallow them.
    """
    output.__enter__()
    try:
        yield
    finally:
        output.__exit__(None, None, None)


def plan_html(plan: Plan) -> str:
    """The plan as HTML: what is new in words, then the plan's own table."""
    added = [f"{i.id} {i.new_version}" for i in plan.items if i.action == "add"]
    asks = [
        f"<li><b>{html.escape(i.id)}</b> may "
        + "; ".join(f"{html.escape(_in_words(c))} <code>{html.escape(c)}</code>" for c in new)
        + "</li>"
        for i in plan.items
        if (new := i.new_capabilities)
    ]
    text = f"<p><b>{html.escape(plan.operation)}</b> needs your consent.</p>"
    if added:
        text += f"<p>New code will run in this kernel: {html.escape(', '.join(added))}.</p>"
    if asks:
        text += f"<p>New capabilities:</p><ul>{''.join(asks)}</ul>"
    return text + plan._repr_html_()


class ConsentDialog(w.VBox):  # type: ignore[misc]
    """A plan waiting for consent, with Confirm and Cancel; works on its own.

    Args:
        plan: What would happen (the ``plan`` of a ``ConsentRequired``).
        confirm: Applies the plan (``lambda: market.install(id, yes=True, consent=plan)``).
        on_done: Called once, with ``confirm()``'s result, the ``PlugmarketError``
            it raised, or None when the user cancelled.
    """

    def __init__(
        self,
        plan: Plan,
        confirm: Callable[[], object],
        on_done: Callable[[object], None] | None = None,
    ) -> None:
        self.plan = plan
        self._confirm = confirm
        self._on_done = on_done
        self.done = False
        self.result: object = None
        self.summary = w.HTML(plan_html(plan))
        self.confirm_button = w.Button(
            description=f"Confirm {plan.operation}", button_style="warning", icon="check"
        )
        self.cancel_button = w.Button(description="Cancel", icon="times")
        self.outcome = w.HTML("")
        self.output = w.Output()  # what the plan prints or displays while it is applied
        self.confirm_button.on_click(lambda _: self.confirm())
        self.cancel_button.on_click(lambda _: self.cancel())
        super().__init__(
            [
                self.summary,
                w.HBox([self.confirm_button, self.cancel_button]),
                self.output,
                self.outcome,
            ],
            layout=w.Layout(border="1px solid #e0a800", padding="4px"),
        )

    def __repr__(self) -> str:
        # What a front end without widgets (or a saved notebook) shows instead.
        return f"{self.plan}\n[Confirm] [Cancel]"

    def confirm(self) -> None:
        """Apply the plan and show what happened (or why it failed) in words.

        What applying it prints or displays appears in :attr:`output`.
        """
        if not self._start():
            return
        self.outcome.value = "<i>working…</i>"
        try:
            with _shown_in(self.output):
                self.result = self._confirm()
        except PlugmarketError as exc:
            self.result = exc
            self.outcome.value = _error_html(exc)
        else:
            self.outcome.value = f"<p>{html.escape(_outcome_text(self.result))}</p>"
        self._finish(self.result)

    def cancel(self) -> None:
        """Drop the plan: nothing is changed."""
        if not self._start():
            return
        self.outcome.value = (
            f"<p>Cancelled: nothing changed ({html.escape(self.plan.operation)}).</p>"
        )
        self._finish(None)

    def _start(self) -> bool:
        if self.done:
            return False
        self.done = True
        self.confirm_button.disabled = self.cancel_button.disabled = True
        return True

    def _finish(self, outcome: object) -> None:
        if self._on_done is not None:
            self._on_done(outcome)


class PluginCard(w.VBox):  # type: ignore[misc]
    """One plugin, from a search hit or the installed set, with its buttons."""

    def __init__(
        self,
        panel: MarketplacePanel,
        plugin_id: str,
        *,
        hit: SearchHit | None = None,
        installed: InstalledPlugin | None = None,
    ) -> None:
        self.plugin_id = plugin_id
        self.hit = hit
        self.title = w.HTML(self._title_html())
        self.state = w.HTML("")

        def button(description: str, icon: str, act: Callable[[str], None]) -> w.Button:
            b = w.Button(description=description, icon=icon, layout=w.Layout(width="auto"))
            b.on_click(lambda _: act(plugin_id))
            return b

        self.details_button = button("Details", "info", panel.show_details)
        self.install_button = button("Install", "download", panel.install)
        self.update_button = button("Update", "arrow-up", panel.update)
        self.uninstall_button = button("Uninstall", "trash", panel.uninstall)
        self.enable_button = button("Enable", "play", panel.enable)
        self.disable_button = button("Disable", "pause", panel.disable)
        self.buttons = (
            self.details_button,
            self.install_button,
            self.update_button,
            self.uninstall_button,
            self.enable_button,
            self.disable_button,
        )
        super().__init__(
            [self.title, self.state, w.HBox(list(self.buttons))],
            layout=w.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"),
        )
        self.show_state(installed)

    def _title_html(self) -> str:
        hit = self.hit
        if hit is None:
            return f"<b>{html.escape(self.plugin_id)}</b>"
        rating = (
            f" · {stars(int(hit.rating + 0.5))} {hit.rating:.1f} ({hit.ratings_count})"
            if hit.rating is not None
            else ""
        )
        return (
            f"<b>{html.escape(hit.name)}</b> <code>{html.escape(hit.id)}</code> "
            f"{html.escape(hit.version or '-')}{rating} · {hit.downloads:,} downloads"
            f"<br>{html.escape(hit.summary)}<br>{badges(hit.capabilities)}"
        )

    def show_state(self, installed: InstalledPlugin | None) -> None:
        """Show whether the plugin is installed, and the buttons that apply to it."""
        self.installed = installed
        if installed is None:
            self.state.value = "<small>not installed</small>"
        else:
            notes = ["enabled" if installed.enabled else "disabled"]
            if not installed.explicit:
                notes.append("dependency")
            grants = f" · granted {badges(installed.grants)}" if installed.grants else ""
            self.state.value = (
                f"<small>installed {html.escape(installed.version)} "
                f"({', '.join(notes)}){grants}</small>"
            )
        latest = self.hit.version if self.hit is not None else ""
        _show(self.install_button, installed is None)
        _show(
            self.update_button,
            installed is not None and (self.hit is None or _newer(latest, installed.version)),
        )
        _show(self.uninstall_button, installed is not None)
        _show(self.enable_button, installed is not None and not installed.enabled)
        _show(self.disable_button, installed is not None and installed.enabled)

    def visible_buttons(self) -> list[str]:
        """The descriptions of the buttons shown now (``["Details", "Install"]``)."""
        return [b.description for b in self.buttons if b.layout.display != _HIDDEN]


class MarketplacePanel(w.VBox):  # type: ignore[misc]
    """The marketplace in a notebook: search, details, installed plugins, consent.

    Args:
        market: The facade to use (default: ``Marketplace(surface="panel")``,
            whose downloads move this panel's progress bar).
    """

    def __init__(self, market: Marketplace | None = None) -> None:
        self.results: list[PluginCard] = []
        self.installed_cards: list[PluginCard] = []
        self.consent: ConsentDialog | None = None
        self.plugin_id = ""  # the plugin in the details view
        self._busy = False
        self._quiet = False  # filling filter options; do not search
        self._received: dict[str, tuple[int, int]] = {}  # plugin id -> (bytes, of total)
        self._lock = threading.Lock()  # downloads may report from a worker thread
        if market is None:
            from plugmarket.marketplace import Marketplace

            market = Marketplace(surface="panel", progress=self._track)
        self.market = market

        self.status = w.Label("")
        self.error = w.HTML("")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="")
        self.output = w.Output()  # what operations print or display (progress, plugins)
        self.dialog_area = w.VBox([])

        self.query = w.Text(placeholder="search plugins", continuous_update=False)
        self.category = w.Dropdown(options=[("any category", "")], value="", description="")
        self.tag = w.Combobox(placeholder="tag", options=[], ensure_option=False)
        self.sort = w.Dropdown(options=list(SORTS), value="relevance")
        self.search_button = w.Button(description="Search", icon="search", button_style="primary")
        self.results_box = w.VBox([])
        for box in (self.query, self.category, self.tag, self.sort):
            box.observe(lambda _: self._filters_changed(), names="value")
        self.search_button.on_click(lambda _: self.search())
        search_tab = w.VBox(
            [
                w.HBox([self.query, self.category, self.tag, self.sort, self.search_button]),
                self.results_box,
            ]
        )

        self.generations = w.HTML("")
        self.rollback_button = w.Button(description="Roll back", icon="undo")
        self.update_all_button = w.Button(description="Update all", icon="arrow-up")
        self.installed_box = w.VBox([])
        self.rollback_button.on_click(lambda _: self.rollback())
        self.update_all_button.on_click(lambda _: self.update(None))
        self.installed_tab = w.VBox(
            [
                w.HBox([self.update_all_button, self.rollback_button]),
                self.generations,
                self.installed_box,
            ]
        )

        self.details = w.HTML("<i>Choose a plugin's Details.</i>")
        self.details_version = w.Dropdown(options=[], description="version")
        self.details_install_button = w.Button(description="Install this version", icon="download")
        self.rate_stars = w.Dropdown(options=[(stars(n), n) for n in range(5, 0, -1)], value=5)
        self.rate_text = w.Textarea(placeholder="your review (optional)")
        self.rate_button = w.Button(description="Rate", icon="star")
        self.details_install_button.on_click(
            lambda _: self.install(self.plugin_id, self.details_version.value or None)
        )
        self.rate_button.on_click(lambda _: self.rate())
        self.details_tab = w.VBox(
            [
                self.details,
                w.HBox([self.details_version, self.details_install_button]),
                w.HBox([self.rate_stars, self.rate_text, self.rate_button]),
            ]
        )

        self.tabs = w.Tab([search_tab, self.installed_tab, self.details_tab])
        self.tabs.titles = ("Search", "Installed", "Details")
        super().__init__(
            [
                w.HBox([self.progress, self.status]),
                self.error,
                self.output,
                self.dialog_area,
                self.tabs,
            ]
        )
        self.refresh()
        self.search()

    # --- what a user does --------------------------------------------------------------

    def search(self) -> None:
        """Search with the query and filters; show one card per plugin found."""
        query, tag = self.query.value.strip(), self.tag.value.strip()
        category = self.category.value or None

        def find() -> Any:
            return self.market.search(
                query, category=category, tags=(tag,) if tag else (), sort=self.sort.value
            )

        hits = self._run(f"searching {query!r}" if query else "searching", find)
        if hits is None:
            return
        installed = self._installed_by_id()
        self.results = [PluginCard(self, h.id, hit=h, installed=installed.get(h.id)) for h in hits]
        self._fill_filters(hits)
        found = f"{len(hits)} plugin(s)" if hits else str(hits)
        self.results_box.children = [w.HTML(f"<small>{html.escape(found)}</small>"), *self.results]
        self.status.value = f"found {found}"

    def show_details(self, plugin_id: str) -> None:
        """Show a plugin's versions, capabilities, rating and reviews in the Details tab."""

        def read() -> tuple[PluginDetails, Any]:
            return self.market.details(plugin_id), self.market.reviews(plugin_id)

        found = self._run(f"reading {plugin_id}", read)
        if found is None:
            return
        details, reviews = found
        self.plugin_id = details.id
        installed = self._installed_by_id().values()
        self.details.value = details_html(details, installed=installed, reviews=reviews)
        self.details_version.options = [("latest", "")] + [
            (f"{v.version}{' (yanked)' if v.yanked else ''}", str(v.version))
            for v in reversed(details.versions)
        ]
        self.details_version.value = ""
        self.tabs.selected_index = 2
        self.status.value = f"details of {details.id}"

    def install(self, plugin_id: str, version: str | None = None) -> None:
        """Install a plugin; a plan that needs consent opens the consent dialog."""
        what = f"install {plugin_id}{' ' + version if version else ''}"
        self._change(what, lambda **kw: self.market.install(plugin_id, version, **kw))

    def update(self, plugin_id: str | None) -> None:
        """Update one plugin (None: every installed one); new capabilities need consent."""
        what = f"update {plugin_id or 'all'}"
        self._change(what, lambda **kw: self.market.update(plugin_id, **kw))

    def uninstall(self, plugin_id: str) -> None:
        self._change(f"uninstall {plugin_id}", lambda: self.market.uninstall(plugin_id))

    def enable(self, plugin_id: str) -> None:
        self._change(f"enable {plugin_id}", lambda: self.market.enable(plugin_id))

    def disable(self, plugin_id: str) -> None:
        self._change(f"disable {plugin_id}", lambda: self.market.disable(plugin_id))

    def rollback(self) -> None:
        """Switch back to the previous generation, on disk and in this kernel."""
        self._change("rollback", lambda: self.market.rollback())

    def rate(self) -> None:
        """Rate the plugin in the Details tab with the chosen stars and text."""
        plugin_id = self.plugin_id
        if not plugin_id:
            return
        text, count = self.rate_text.value.strip(), self.rate_stars.value
        review = self._run(f"rating {plugin_id}", lambda: self.market.rate(plugin_id, count, text))
        if review is None:
            return
        self.rate_text.value = ""
        self.show_details(plugin_id)
        self.status.value = f"rated {plugin_id} {stars(count)}"

    def refresh(self) -> None:
        """Show the installed set and the kept generations again; update every card."""
        found = self._read(lambda: (self.market.installed(), self.market.generations()))
        if found is None:
            return
        plugins, generations = found
        by_id = {p.id: p for p in plugins}
        self.installed_cards = [PluginCard(self, p.id, installed=p) for p in plugins]
        self.installed_box.children = self.installed_cards or [
            w.HTML("<i>No plugins installed.</i>")
        ]
        current = next((g for g in generations if g.number == plugins.generation), None)
        rows = "".join(
            f"<li>generation {g.number}: {html.escape(g.reason or '-')} "
            f"({len(g.plugins)} plugin(s)){' · <b>current</b>' if g is current else ''}</li>"
            for g in reversed(generations)
        )
        self.generations.value = f"<ul>{rows}</ul>"
        parent = None if current is None else current.parent
        self.rollback_button.disabled = parent is None
        self.rollback_button.description = (
            "Roll back" if parent is None else f"Roll back to generation {parent}"
        )
        for card in self.results:
            card.show_state(by_id.get(card.plugin_id))

    # --- the machinery --------------------------------------------------------------------

    def _change(self, what: str, act: Callable[..., object]) -> None:
        """``act()`` (a facade verb taking ``yes`` and ``consent``); if it needs consent,
        the dialog's Confirm applies exactly the plan it shows."""
        try:
            with self._working(what):
                result = act()
        except ConsentRequired as needed:
            self._ask(what, needed.plan, act)
            return
        except PlugmarketError as exc:
            self.refresh()
            self._fail(exc)
            return
        self.refresh()
        self._succeeded(result)

    def _ask(self, what: str, plan: Plan, act: Callable[..., object]) -> None:
        def confirm() -> object:
            with self._working(what):
                return act(yes=True, consent=plan)

        self.consent = ConsentDialog(
            plan, confirm, on_done=lambda outcome: self._answered(what, outcome)
        )
        self.dialog_area.children = [self.consent]
        self.status.value = f"{what} needs your consent: review the plan below"

    def _answered(self, what: str, outcome: object) -> None:
        self.consent = None
        self.dialog_area.children = []
        self.refresh()
        if outcome is None:
            self.status.value = f"cancelled {what}: nothing changed"
        elif isinstance(outcome, PlugmarketError):
            self._fail(outcome)
        else:
            self._succeeded(outcome)

    def _run(self, what: str, action: Callable[[], Any]) -> Any:
        """``action()``, or None after showing its PlugmarketError inline."""
        try:
            with self._working(what):
                return action()
        except PlugmarketError as exc:
            self._fail(exc)
            return None

    def _read(self, action: Callable[[], Any]) -> Any:
        """``action()`` (a quick local read, shown without the working state), or None
        after showing its PlugmarketError inline."""
        try:
            return action()
        except PlugmarketError as exc:
            self._fail(exc)
            return None

    @contextmanager
    def _working(self, what: str) -> Iterator[None]:
        if self._busy:
            raise PlugmarketError(f"cannot {what} now: another operation is still running")
        self._busy = True
        self.error.value = ""
        self.status.value = f"{what}: working…"
        self._received = {}
        self.progress.bar_style = "info"
        self.progress.value, self.progress.max = 0, 1
        disabled = [b for b in self._buttons() if not b.disabled]
        for b in disabled:
            b.disabled = True
        # Downloads move this panel's bar, whoever made the market (%plugin panel shares its own).
        previous, self.market.progress = self.market.progress, self._track
        try:
            with _shown_in(self.output):
                yield
            self.progress.bar_style = "success"
        except ConsentRequired:
            self.progress.bar_style = "warning"
            raise
        except BaseException:
            self.progress.bar_style = "danger"
            raise
        finally:
            self.market.progress = previous
            self.progress.value = self.progress.max
            for b in disabled:
                b.disabled = False
            self._busy = False

    def _track(self, plugin_id: str, size: int) -> Progress:
        """A download progress callback for one artifact; the bar shows the whole plan's bytes."""

        def moved(received: int, total: int | None) -> None:
            with self._lock:
                self._received[plugin_id] = (received, max(total or size, received))
                done = sum(r for r, _ in self._received.values())
                whole = sum(t for _, t in self._received.values())
            self.progress.max = max(whole, 1)
            self.progress.value = min(done, self.progress.max)
            self.progress.description = plugin_id[:12]

        moved(0, size)
        return moved

    def _succeeded(self, result: object) -> None:
        self.error.value = ""  # a click refused while the operation ran no longer applies
        self.status.value = _outcome_text(result)

    def _fail(self, exc: PlugmarketError) -> None:
        self.error.value = _error_html(exc)
        if not self._busy:  # else the operation under way keeps its status
            self.status.value = "failed"

    def _buttons(self) -> Iterator[w.Button]:
        yield from (
            self.search_button,
            self.rollback_button,
            self.update_all_button,
            self.details_install_button,
            self.rate_button,
        )
        for card in (*self.results, *self.installed_cards):
            yield from card.buttons
        if self.consent is not None:
            yield from (self.consent.confirm_button, self.consent.cancel_button)

    def _installed_by_id(self) -> dict[str, InstalledPlugin]:
        found = self._read(self.market.installed)
        return {} if found is None else {p.id: p for p in found}

    def _filters_changed(self) -> None:
        if not self._quiet and not self._busy:
            self.search()

    def _fill_filters(self, hits: list[SearchHit]) -> None:
        """Offer every category and tag seen so far (options only grow, so no value is lost)."""
        categories = {c for _, c in self.category.options if c} | {
            c for h in hits for c in h.categories
        }
        tags = set(self.tag.options) | {t for h in hits for t in h.tags}
        self._quiet = True
        try:
            self.category.options = [("any category", "")] + [(c, c) for c in sorted(categories)]
            self.tag.options = sorted(tags)
        finally:
            self._quiet = False
