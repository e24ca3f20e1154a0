"""The download bar shared by the terminal and the magics."""

from __future__ import annotations

import io
import sys

import pytest

from plugmarket._internal.progress import download_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_download_that_reports_nothing_leaves_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    download_bar("units", 100)  # a registry folder: the callback is never called
    assert err.getvalue() == ""


def test_a_terminal_shows_the_bar_and_clears_it_when_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    update = download_bar("units", 100)
    update(50, 100)
    assert err.getvalue().startswith("\runits:") and "/100" in err.getvalue()
    update(100, 100)
    *_, last_line, after = err.getvalue().split("\r")
    assert (last_line.strip(), after) == ("", "")  # leave=False: the line is wiped


def test_not_a_terminal_and_not_a_kernel_stays_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    update = download_bar("units", 100)
    update(50, 100)
    update(100, 100)
    assert err.getvalue() == ""
