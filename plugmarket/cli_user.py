"""The terminal user's verbs of the ``plugmarket`` console script.

Each verb parses its arguments, calls :class:`~plugmarket.Marketplace` (with
``live=False``: the terminal loads no plugins), and prints the result: text
for people, ``--json`` for scripts (search, info, versions, list, audit,
stats). Consent: ``--yes`` gives it; without it, an interactive terminal is
asked, anything else gets the plan and exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugmarket.errors import ConsentRequired

if TYPE_CHECKING:
    from plugmarket.marketplace import Marketplace

__all__ = ["USER_VERBS", "plain_data"]

Run = Callable[[argparse.Namespace], int]


def _market(args: argparse.Namespace) -> Marketplace:
    from plugmarket._internal.progress import download_bar
    from plugmarket.marketplace import Marketplace

    return Marketplace(
        args.home, registry=args.global_registry, live=False, surface="cli", progress=download_bar
    )


def plain_data(value: Any) -> Any:
    """JSON-able data for results: dataclasses, versions, times, mappings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_data(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _show(args: argparse.Namespace, result: Any) -> int:
    if getattr(args, "json", False):
        print(json.dumps(plain_data(result), indent=2, sort_keys=True))
    elif isinstance(result, list):
        for row in result:
            print(row if isinstance(row, str) else repr(row))
        if not result:
            print("(nothing)")
    else:
        print(result if isinstance(result, str) else repr(result))
    return 0


def _with_consent(args: argparse.Namespace, act: Callable[..., Any]) -> int:
    """``act(yes=...)``, a facade verb; at a terminal prompt, the plan shown is the one applied."""
    try:
        result = act(yes=bool(getattr(args, "yes", False)))
    except ConsentRequired as needed:
        print(str(needed.plan))
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            print(
                "plugmarket: consent needed: run again with --yes to apply this plan",
                file=sys.stderr,
            )
            return 1
        if input("Apply this plan? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return 1
        result = act(yes=True, consent=needed.plan)
    print(str(result))
    return 0


# --- verbs ----------------------------------------------------------------------------


def _search(args: argparse.Namespace) -> int:
    hits = _market(args).search(
        args.query, category=args.category, tags=args.tag or (), sort=args.sort, limit=args.limit
    )
    if args.json:
        return _show(args, list(hits))
    for hit in hits:
        print(f"{hit.id:20} {hit.version:10} {hit.summary}")
    if not hits:
        print(f"no plugin matches {args.query!r}")
    return 0


def _info(args: argparse.Namespace) -> int:
    details = _market(args).details(args.id)
    if args.json:
        return _show(args, details)
    from plugmarket.results import details_text

    print(details_text(details))
    return 0


def _versions(args: argparse.Namespace) -> int:
    versions = _market(args).versions(args.id)
    if args.json:
        return _show(args, versions)
    for v in versions:
        note = f"  yanked: {v.yanked_reason}" if v.yanked else ""
        print(f"{v.version!s:12} {v.channel:8} {', '.join(v.capabilities)}{note}")
    return 0


def _install(args: argparse.Namespace) -> int:
    market = _market(args)
    return _with_consent(args, lambda **kw: market.install(args.id, args.version, **kw))


def _update(args: argparse.Namespace) -> int:
    market = _market(args)
    return _with_consent(args, lambda **kw: market.update(args.id, args.version, **kw))


def _uninstall(args: argparse.Namespace) -> int:
    print(str(_market(args).uninstall(args.id)))
    return 0


def _list(args: argparse.Namespace) -> int:
    installed = _market(args).installed()
    if args.json:
        return _show(args, list(installed))
    for p in installed:
        state = "" if p.enabled else "  (disabled)"
        print(f"{p.id:20} {p.version:10} grants: {', '.join(p.grants) or '-'}{state}")
    if not installed:
        print("no plugin is installed")
    return 0


def _simple(method: str) -> Run:
    def run(args: argparse.Namespace) -> int:
        result = getattr(_market(args), method)(args.id)
        print(f"{method}d {result.id} {result.version}")
        return 0

    return run


def _rollback(args: argparse.Namespace) -> int:
    generation = _market(args).rollback()
    print(f"rolled back: now generation {generation.number} ({generation.reason})")
    return 0


def _generations(args: argparse.Namespace) -> int:
    for g in _market(args).generations():
        print(f"{g.number:5}  {g.created:%Y-%m-%d %H:%M}  {len(g.plugins):3} plugin(s)  {g.reason}")
    return 0


def _grant(args: argparse.Namespace) -> int:
    plugin = _market(args).grant(args.id, args.capability)
    print(f"{plugin.id} now has: {', '.join(plugin.grants)}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    plugin = _market(args).revoke(args.id, args.capability)
    print(f"{plugin.id} now has: {', '.join(plugin.grants) or 'no capabilities'}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    return _show(args, list(_market(args).audit(args.limit)))


def _rate(args: argparse.Namespace) -> int:
    print(repr(_market(args).rate(args.id, args.stars, args.text or "")))
    return 0


def _reviews(args: argparse.Namespace) -> int:
    return _show(args, _market(args).reviews(args.id))


def _stats(args: argparse.Namespace) -> int:
    return _show(args, _market(args).stats(args.id))


def _lock(args: argparse.Namespace) -> int:
    data = _market(args).lock()
    if args.out:
        Path(args.out).write_bytes(data)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(data.decode())
    return 0


def _sync(args: argparse.Namespace) -> int:
    market = _market(args)
    return _with_consent(args, lambda **kw: market.apply_lock(args.lockfile, **kw))


def _check(args: argparse.Namespace) -> int:
    report = _market(args).check(repair=args.repair)
    print(str(report))
    return 0 if getattr(report, "ok", True) else 1


def _config(args: argparse.Namespace) -> int:
    from plugmarket.config import describe_settings

    settings = _market(args).settings
    return _show(args, settings.shown() if args.json else describe_settings(settings))


# --- arguments ---------------------------------------------------------------------------


def _id(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="the plugin id")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="consent to the plan without asking")


def _c_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="?", default="", help="words to look for")
    p.add_argument("--category", help="only this category")
    p.add_argument("--tag", action="append", help="only plugins with this tag (repeatable)")
    p.add_argument(
        "--sort",
        default="relevance",
        choices=("relevance", "downloads", "rating", "updated", "name"),
    )
    p.add_argument("--limit", type=int, default=50)
    _json(p)


def _c_id_json(p: argparse.ArgumentParser) -> None:
    _id(p)
    _json(p)


def _c_install(p: argparse.ArgumentParser) -> None:
    _id(p)
    p.add_argument("version", nargs="?", help="an exact version (default: the newest allowed)")
    _yes(p)


def _c_update(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="?", metavar="ID", help="the plugin (default: every one)")
    p.add_argument("version", nargs="?", help="an exact version")
    _yes(p)


def _c_capability(p: argparse.ArgumentParser) -> None:
    _id(p)
    p.add_argument("capability", help="such as fs.read:~/data/* or net:api.example.com")


def _c_audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=100)
    _json(p)


def _c_rate(p: argparse.ArgumentParser) -> None:
    _id(p)
    p.add_argument("stars", type=int, choices=range(1, 6), help="1 to 5")
    p.add_argument("text", nargs="?", help="a short review")


def _c_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="?", metavar="ID", help="one plugin (default: all)")
    _json(p)


def _c_lock(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="FILE", help="write the lockfile here (default: stdout)")


def _c_sync(p: argparse.ArgumentParser) -> None:
    p.add_argument("lockfile", metavar="LOCKFILE", help="install exactly what it lists")
    _yes(p)


def _c_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repair", action="store_true", help="repair what a crash left")


def _nothing(p: argparse.ArgumentParser) -> None:
    pass


#: (name, help, configure, run) of every user verb, in the order --help lists them.
USER_VERBS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None], Run], ...] = (
    ("search", "find plugins in the registries", _c_search, _search),
    ("info", "a plugin's details", _c_id_json, _info),
    ("versions", "every version of a plugin", _c_id_json, _versions),
    ("install", "install a plugin and what it requires", _c_install, _install),
    ("update", "update one plugin, or all", _c_update, _update),
    ("uninstall", "remove a plugin", _id, _uninstall),
    ("list", "the installed plugins", _json, _list),
    ("enable", "load an installed plugin again", _id, _simple("enable")),
    ("disable", "keep a plugin installed but do not load it", _id, _simple("disable")),
    ("rollback", "switch back to the previous generation", _nothing, _rollback),
    ("generations", "the kept generations of the installed set", _nothing, _generations),
    ("grant", "grant a plugin a capability", _c_capability, _grant),
    ("revoke", "take a capability back", _c_capability, _revoke),
    ("audit", "the audit log, newest first", _c_audit, _audit),
    ("rate", "rate a plugin 1-5 stars", _c_rate, _rate),
    ("reviews", "a plugin's ratings and reviews", _id, _reviews),
    ("stats", "install, update and load statistics", _c_stats, _stats),
    ("lock", "write the installed set as a lockfile", _c_lock, _lock),
    ("sync", "make the installed set exactly a lockfile's", _c_sync, _sync),
    ("check", "verify the store and generations", _c_check, _check),
    ("config", "the settings in effect", _json, _config),
)
