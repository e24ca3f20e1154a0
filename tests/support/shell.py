"""A real IPython shell for tests, and a snapshot of everything a plugin can change in it."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

# Names IPython itself adds as cells run (_, __, _i, _ii, _i3, _3, ...).
_HISTORY_NAME = re.compile(r"^_+$|^_i+$|^_i?\d+$")


class Fancy:
    """A user class that already has an HTML formatter before any plugin loads."""


def users_html(obj: Fancy) -> str:
    return "<i>the user's fancy</i>"


@contextmanager
def real_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real InteractiveShell writing only under tmp_path, cleared after the test."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    # The shell puts its user module in sys.modules["__main__"]; put pytest's back after.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=config)
    try:
        sh.display_formatter.formatters["text/html"].for_type(Fancy, users_html)
        sh.user_ns["existing"] = existing = object()
        sh.user_ns["existing_copy"] = existing
        yield sh
    finally:
        InteractiveShell.clear_instance()


def snapshot(sh: Any) -> dict[str, Any]:
    """Everything a plugin can change, compared by identity where it matters."""
    manager = sh.magics_manager
    return {
        "magics": {kind: dict(table) for kind, table in manager.magics.items()},
        "user_magics": {k: id(v) for k, v in vars(manager.user_magics).items()},
        "type_printers": {
            mime: {cls: id(fn) for cls, fn in f.type_printers.items()}
            for mime, f in sh.display_formatter.formatters.items()
        },
        "deferred_printers": {
            mime: {key: id(fn) for key, fn in f.deferred_printers.items()}
            for mime, f in sh.display_formatter.formatters.items()
        },
        "events": {event: list(callbacks) for event, callbacks in sh.events.callbacks.items()},
        "user_ns": {k: id(v) for k, v in sh.user_ns.items() if not _HISTORY_NAME.match(k)},
        "user_ns_hidden": sorted(k for k in sh.user_ns_hidden if not _HISTORY_NAME.match(k)),
    }
