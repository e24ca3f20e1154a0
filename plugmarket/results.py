"""Result types: audit entries, statistics, reviews, search results and the installed set.

Every surface shows the same objects: ``repr`` is readable text for a
terminal, ``_repr_html_`` an HTML table for a notebook (text escaped,
ratings drawn as stars), and :meth:`to_json` plain data for ``--json``.
The values are small frozen dataclasses; the collections (:class:`AuditEntries`,
:class:`ReviewList`, :class:`StatsTable`) are a ``list`` or ``dict`` with the
same reprs, so callers can index and iterate them as usual.

This module only describes and renders. The records under
``plugmarket/_internal/`` (audit, stats, reviews) read and write them, and
decode what is on disk strictly before building these values.
"""

from __future__ import annotations

import getpass
import html
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from plugmarket.errors import PlugmarketError

if TYPE_CHECKING:
    from plugmarket._internal.installed import InstalledPlugin
    from plugmarket._internal.registry_format import VersionInfo
    from plugmarket.registry import PluginDetails, SearchHit

__all__ = [
    "STAT_EVENTS",
    "SURFACES",
    "AuditEntries",
    "AuditEntry",
    "Denial",
    "InstalledList",
    "PluginChange",
    "PluginStats",
    "Review",
    "ReviewList",
    "SearchResults",
    "StatsTable",
    "Timing",
    "VersionList",
    "badges",
    "current_user",
    "details_html",
    "details_text",
    "stars",
]

#: Where an operation was asked for.
SURFACES = ("cli", "magic", "panel", "api", "server")
#: What statistics count, per plugin.
STAT_EVENTS = ("install", "update", "uninstall", "load")


def current_user() -> str:
    """The user's login name, or ``uid <n>`` where the system has no name for it."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container user without a passwd entry
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def stars(count: int) -> str:
    """A 1-5 rating as stars: ``stars(4) == "★★★★☆"``."""
    count = max(0, min(5, count))
    return "★" * count + "☆" * (5 - count)


def _now() -> datetime:
    return datetime.now(UTC)


def _when(time: datetime) -> str:
    return time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class Markup(str):
    """HTML already escaped, which :func:`_table` puts in a cell as it is."""


def badges(capabilities: Iterable[str], *, new: Iterable[str] = ()) -> Markup:
    """Capabilities as badges; those in ``new`` (not granted before) stand out."""
    fresh = set(new)
    return Markup(
        " ".join(
            f'<code style="background:{"#fde2e1" if c in fresh else "#e8eefc"};'
            f'border-radius:3px;padding:0 3px">{html.escape(c)}'
            + (" <b>new</b>" if c in fresh else "")
            + "</code>"
            for c in capabilities
        )
    )


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """An HTML table; plain-text cells are escaped here, :class:`Markup` cells kept."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{c if isinstance(c, Markup) else html.escape(c)}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


# --- the audit log --------------------------------------------------------------------


@dataclass(frozen=True)
class PluginChange:
    """One plugin an audited operation touched.

    Attributes:
        id: The plugin id.
        old_version: Its version before ("" when it was added).
        new_version: Its version after ("" when it was removed).
        grants: Capabilities the operation granted it (install, update, grant) or
            took away (revoke).
    """

    id: str
    old_version: str = ""
    new_version: str = ""
    grants: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.old_version and self.new_version and self.old_version != self.new_version:
            text = f"{self.id} {self.old_version} → {self.new_version}"
        else:
            version = self.new_version or self.old_version
            text = f"{self.id} {version}" if version else self.id
        return f"{text} [{', '.join(self.grants)}]" if self.grants else text

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "old": self.old_version,
            "new": self.new_version,
            "grants": list(self.grants),
        }


@dataclass(frozen=True)
class Denial:
    """A capability denial, as :class:`~plugmarket.errors.CapabilityDenied` reported it."""

    plugin_id: str
    capability: str
    operation: str
    target: str = ""

    def __str__(self) -> str:
        where = f" on {self.target}" if self.target else ""
        need = f" (needs {self.capability})" if self.capability else ""
        return f"{self.plugin_id} denied {self.operation}{where}{need}"

    def to_json(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id,
            "capability": self.capability,
            "operation": self.operation,
            "target": self.target,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who did what, to which plugins, and how it ended.

    ``time``, ``user``, ``pid`` and ``host`` default to now and this process.

    Attributes:
        operation: ``"install"``, ``"update"``, ``"uninstall"``, ``"rollback"``,
            ``"enable"``, ``"disable"``, ``"grant"``, ``"revoke"``, ``"apply_lock"``,
            ``"rate"``, ``"denied"``...
        surface: Where it was asked for: one of :data:`SURFACES`.
        subject: What it was about, as the user named it (a plugin id, a lockfile path).
        plugins: The plugins it changed, with versions and grants.
        result: ``"ok"``, or ``"error: <message>"``.
        denial: For ``"denied"``: the plugin, capability, operation and target.
        generation: The generation the operation produced, when it made one.
        note: Anything else worth keeping (``"4 stars"``).
        time: When it happened (UTC).
        user: The login name of who did it.
        pid: The process that did it.
        host: The machine that did it.

    Raises:
        PlugmarketError: ``surface`` is not one of :data:`SURFACES`, or ``operation``
            is empty.
    """

    operation: str
    surface: str = "api"
    subject: str = ""
    plugins: tuple[PluginChange, ...] = ()
    result: str = "ok"
    denial: Denial | None = None
    generation: int | None = None
    note: str = ""
    time: datetime = field(default_factory=_now)
    user: str = field(default_factory=current_user)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        if self.surface not in SURFACES:
            raise PlugmarketError(
                f"audit entry surface {self.surface!r} is not one of {', '.join(SURFACES)}",
                hint="Pass the surface the operation came from.",
            )
        if not self.operation:
            raise PlugmarketError("an audit entry needs an operation, such as 'install'")

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def _what(self) -> str:
        if self.denial is not None:
            return str(self.denial)
        if self.plugins:
            return ", ".join(str(p) for p in self.plugins)
        return self.subject

    def __repr__(self) -> str:
        what = self._what()
        note = f" ({self.note})" if self.note else ""
        return (
            f"{_when(self.time)}  {self.user}@{self.host} {self.surface} pid {self.pid}  "
            f"{self.operation}{' ' + what if what else ''}{note}: {self.result}"
        )

    def _repr_html_(self) -> str:
        return AuditEntries([self])._repr_html_()

    def to_json(self) -> dict[str, Any]:
        """Plain data, as written to the log and printed by ``--json``."""
        return {
            "time": self.time.astimezone(UTC).isoformat(),
            "user": self.user,
            "pid": self.pid,
            "host": self.host,
            "surface": self.surface,
            "operation": self.operation,
            "subject": self.subject,
            "plugins": [p.to_json() for p in self.plugins],
            "result": self.result,
            "denial": None if self.denial is None else self.denial.to_json(),
            "generation": self.generation,
            "note": self.note,
        }


class AuditEntries(list[AuditEntry]):
    """Audit entries, newest first, with notes on lines the reader had to skip."""

    def __init__(self, entries: Iterable[AuditEntry] = (), *, notes: Iterable[str] = ()) -> None:
        super().__init__(entries)
        self.notes: tuple[str, ...] = tuple(notes)

    def __repr__(self) -> str:
        lines = [repr(e) for e in self] or ["(the audit log is empty)"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def _repr_html_(self) -> str:
        rows = [
            (
                _when(e.time),
                f"{e.user}@{e.host}",
                e.surface,
                e.operation,
                e._what(),
                e.note,
                e.result,
            )
            for e in self
        ]
        notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in self.notes)
        headers = ("time", "who", "surface", "operation", "what", "note", "result")
        return _table(headers, rows) + notes


# --- statistics ------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How long one kind of event took, over every time it was timed (seconds)."""

    count: int = 0
    total: float = 0.0
    last: float | None = None
    best: float | None = None

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def add(self, seconds: float) -> Timing:
        best = seconds if self.best is None else min(self.best, seconds)
        return Timing(self.count + 1, self.total + seconds, seconds, best)

    def __str__(self) -> str:
        if not self.count or self.mean is None or self.best is None or self.last is None:
            return "-"
        return (
            f"mean {_ms(self.mean)}, best {_ms(self.best)}, last {_ms(self.last)} over {self.count}"
        )

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "total": self.total, "last": self.last, "best": self.best}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


@dataclass(frozen=True)
class PluginStats:
    """Local statistics of one plugin in one home.

    Attributes:
        plugin_id: The plugin id.
        installs: How many times it was installed.
        updates: How many times it was updated.
        uninstalls: How many times it was uninstalled.
        loads: How many times a process loaded it.
        times: How long each kind of event took, by event (``"load"``, ``"install"``...).
        last_used: When the last event happened (None: never).
    """

    plugin_id: str
    installs: int = 0
    updates: int = 0
    uninstalls: int = 0
    loads: int = 0
    times: Mapping[str, Timing] = field(default_factory=dict)
    last_used: datetime | None = None

    @property
    def load_time(self) -> Timing:
        return self.times.get("load", Timing())

    def _cells(self) -> tuple[str, ...]:
        return (
            self.plugin_id,
            str(self.installs),
            str(self.updates),
            str(self.uninstalls),
            str(self.loads),
            str(self.load_time),
            _when(self.last_used) if self.last_used else "-",
        )

    def __repr__(self) -> str:
        return (
            f"{self.plugin_id}: {self.installs} install(s), {self.updates} update(s), "
            f"{self.uninstalls} uninstall(s), {self.loads} load(s); load time {self.load_time}"
        )

    def _repr_html_(self) -> str:
        return _table(_STATS_HEADERS, [self._cells()])

    def to_json(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id,
            "installs": self.installs,
            "updates": self.updates,
            "uninstalls": self.uninstalls,
            "loads": self.loads,
            "times": {event: t.to_json() for event, t in sorted(self.times.items())},
            "last_used": None if self.last_used is None else self.last_used.isoformat(),
        }


_STATS_HEADERS = ("plugin", "installs", "updates", "uninstalls", "loads", "load time", "last")


class StatsTable(dict[str, PluginStats]):
    """Statistics of every plugin with any, by plugin id."""

    def __repr__(self) -> str:
        return "\n".join(repr(s) for _, s in sorted(self.items())) or "(no statistics yet)"

    def _repr_html_(self) -> str:
        return _table(_STATS_HEADERS, [s._cells() for _, s in sorted(self.items())])


# --- ratings and reviews ---------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    """One user's rating of a plugin (1-5 whole stars) with an optional text."""

    plugin_id: str
    user: str
    stars: int
    text: str = ""
    time: datetime = field(default_factory=_now)

    def __repr__(self) -> str:
        text = f"\n    {self.text.replace(chr(10), chr(10) + '    ')}" if self.text else ""
        return f"{stars(self.stars)}  {self.plugin_id} by {self.user}, {_when(self.time)}{text}"

    def _repr_html_(self) -> str:
        return ReviewList([self], plugin_id=self.plugin_id)._repr_html_()

    def to_json(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id,
            "user": self.user,
            "stars": self.stars,
            "text": self.text,
            "time": self.time.astimezone(UTC).isoformat(),
        }


class ReviewList(list[Review]):
    """A plugin's reviews, newest first, with their average."""

    def __init__(self, reviews: Iterable[Review] = (), *, plugin_id: str = "") -> None:
        super().__init__(reviews)
        self.plugin_id = plugin_id

    @property
    def average(self) -> float | None:
        """The mean rating, or None when nobody has rated the plugin."""
        return sum(r.stars for r in self) / len(self) if self else None

    def _summary(self) -> str:
        if self.average is None:
            return f"{self.plugin_id}: no reviews yet"
        return (
            f"{self.plugin_id}: {stars(int(self.average + 0.5))} {self.average:.1f} "
            f"from {len(self)} review(s)"
        )

    def __repr__(self) -> str:
        return "\n".join([self._summary(), *(repr(r) for r in self)])

    def _repr_html_(self) -> str:
        rows = [
            (stars(r.stars), r.user, _when(r.time), r.text)
            for r in self  # the text is escaped by _table; newlines kept by pre-wrap
        ]
        table = _table(("rating", "by", "when", "review"), rows).replace(
            "<table>", '<table style="white-space:pre-wrap">', 1
        )
        return f"<p><b>{html.escape(self._summary())}</b></p>{table}"


# --- search results and the installed set ---------------------------------------------


class SearchResults(list["SearchHit"]):
    """Plugins a search found, best first."""

    def __init__(self, hits: Iterable[SearchHit] = (), *, query: str = "") -> None:
        super().__init__(hits)
        self.query = query

    def _cells(self) -> list[tuple[str, ...]]:
        return [
            (
                h.id,
                h.version or "-",
                stars(int(h.rating + 0.5)) if h.rating is not None else "",
                h.summary,
                ", ".join(h.capabilities),
                h.registry,
            )
            for h in self
        ]

    def __repr__(self) -> str:
        if not self:
            return f"no plugins match {self.query!r}" if self.query else "no plugins found"
        return "\n".join(
            "  ".join(part for part in (f"{pid} {version}", rating, summary, f"[{reg}]") if part)
            for pid, version, rating, summary, _, reg in self._cells()
        )

    def _repr_html_(self) -> str:
        headers = ("plugin", "version", "rating", "summary", "capabilities", "registry")
        rows = [
            (*row[:4], badges(h.capabilities), row[5])
            for h, row in zip(self, self._cells(), strict=True)
        ]
        return _table(headers, rows)


class VersionList(list["VersionInfo"]):
    """Every published version of one plugin, newest first; yanked ones are marked."""

    def __init__(self, versions: Iterable[VersionInfo] = (), *, plugin_id: str = "") -> None:
        super().__init__(versions)
        self.plugin_id = plugin_id

    def __repr__(self) -> str:
        if not self:
            return f"{self.plugin_id}: no versions"
        rows = [f"{self.plugin_id}: {len(self)} version(s)"]
        for v in self:
            caps = ", ".join(v.capabilities) or "no capabilities"
            note = f"  YANKED: {v.yanked_reason}" if v.yanked else ""
            rows.append(f"  {v.version!s:10} {v.channel:7} {caps}{note}")
        return "\n".join(rows)

    def _repr_html_(self) -> str:
        caption = f"<p><b>{html.escape(self.plugin_id)}</b></p>"
        return caption + self._table_html()

    def _table_html(self) -> str:
        rows = []
        for v in self:
            version = html.escape(str(v.version))
            shown = Markup(f'<s title="yanked">{version}</s>' if v.yanked else version)
            requires = ", ".join(str(r) for r in v.requires)
            rows.append(
                (shown, v.channel, _when(v.published), badges(v.capabilities), requires, _note(v))
            )
        headers = ("version", "channel", "published", "capabilities", "requires", "note")
        return _table(headers, rows)


def _note(version: VersionInfo) -> str:
    """Why a version is not simply offered: yanked (with the reason), or a partial rollout."""
    if version.yanked:
        return f"yanked: {version.yanked_reason}"
    if version.rollout is not None:
        return f"offered to {version.rollout:.0%} of users"
    return ""


def details_text(details: PluginDetails) -> str:
    """A plugin's details for a terminal: what ``plugmarket info`` and ``%plugin info`` print."""
    entry, detail = details.entry, details.detail
    rating = f"{entry.rating:.1f}/5 ({entry.ratings_count})" if entry.rating is not None else "-"
    also = f" (also in {', '.join(details.also_in)})" if details.also_in else ""
    lines = [
        f"{detail.id} — {detail.name or detail.id}: {detail.summary}",
        f"  registry    {details.registry}{also}",
        f"  latest      {', '.join(f'{ch} {v}' for ch, v in sorted(entry.latest.items()))}",
        f"  rating      {rating}; {entry.downloads} downloads",
        f"  tags        {', '.join(detail.tags) or '-'}",
    ]
    for v in reversed(detail.versions):
        note = f"  (yanked: {v.yanked_reason})" if v.yanked else ""
        caps = ", ".join(v.capabilities) or "no capabilities"
        lines.append(f"  {v.version!s:10} {v.channel:7} {caps}{note}")
    if detail.description:
        lines += ["", detail.description.rstrip()]
    return "\n".join(lines)


def details_html(
    details: PluginDetails,
    *,
    installed: Iterable[InstalledPlugin] | None = None,
    reviews: ReviewList | None = None,
) -> str:
    """A plugin's details for a notebook and the panel's Details tab.

    Args:
        details: What the registry says about the plugin.
        installed: The installed set, to say whether (and which version of) the
            plugin is installed; None leaves that out.
        reviews: The ratings and reviews kept in this home, shown after the versions;
            None leaves them out.

    Returns:
        The rating as stars, where it comes from, the description, authors,
        license and homepage, what the latest version asks for, and every version
        (yanked ones struck through, partial rollouts and requirements noted).
    """
    entry, detail = details.entry, details.detail
    latest = detail.latest()
    rating = (
        f"{stars(int(entry.rating + 0.5))} {entry.rating:.1f} from {entry.ratings_count} rating(s)"
        if entry.rating is not None
        else "not rated yet"
    )
    also = f" (also in {', '.join(details.also_in)})" if details.also_in else ""
    facts = [rating, f"{entry.downloads:,} downloads", f"from {details.registry}{also}"]
    if installed is not None:
        mine = next((p for p in installed if p.id == detail.id), None)
        facts.append(
            "not installed"
            if mine is None
            else f"installed {mine.version} ({'enabled' if mine.enabled else 'disabled'})"
        )
    homepage = (
        f' · <a href="{html.escape(detail.homepage)}" target="_blank">'
        f"{html.escape(detail.homepage)}</a>"
        if detail.homepage.startswith(("https://", "http://"))
        else ""
    )
    asks = badges(latest.capabilities) if latest and latest.capabilities else "nothing"
    versions = VersionList(reversed(detail.versions), plugin_id=detail.id)._table_html()
    return (
        f"<h3>{html.escape(detail.name or detail.id)} <code>{html.escape(detail.id)}</code></h3>"
        f"<p>{html.escape(detail.summary)}</p>"
        f"<p>{html.escape(' · '.join(facts))}</p>"
        + (
            f'<p style="white-space:pre-wrap">{html.escape(detail.description)}</p>'
            if detail.description
            else ""
        )
        + f"<p>by {html.escape(', '.join(detail.authors) or 'unknown')} · "
        f"{html.escape(detail.license or 'no license given')}{homepage}</p>"
        f"<p>categories: {html.escape(', '.join(detail.categories) or '-')} · "
        f"tags: {html.escape(', '.join(detail.tags) or '-')}</p>"
        f"<p>latest {html.escape(str(latest.version) if latest else '-')} asks for: {asks}</p>"
        + versions
        + ("" if reviews is None else f"<h4>Reviews in this home</h4>{reviews._repr_html_()}")
    )


class InstalledList(list["InstalledPlugin"]):
    """The plugins of one generation, by id."""

    def __init__(self, plugins: Iterable[InstalledPlugin] = (), *, generation: int = 0) -> None:
        super().__init__(sorted(plugins, key=lambda p: p.id))
        self.generation = generation

    def _cells(self) -> list[tuple[str, ...]]:
        return [
            (
                p.id,
                p.version,
                "enabled" if p.enabled else "disabled",
                ", ".join(p.grants),
                "" if p.explicit else "dependency",
            )
            for p in self
        ]

    def __repr__(self) -> str:
        head = f"generation {self.generation}: {len(self)} plugin(s)"
        rows = [
            f"  {pid} {version} ({state}{', ' + why if why else ''})"
            + (f" [{grants}]" if grants else "")
            for pid, version, state, grants, why in self._cells()
        ]
        return "\n".join([head, *rows])

    def _repr_html_(self) -> str:
        headers = ("plugin", "version", "state", "grants", "why")
        caption = f"<p><b>generation {self.generation}</b></p>"
        return caption + _table(headers, self._cells())
