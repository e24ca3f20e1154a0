"""Cache entries are complete or absent: a failed fill leaves no trace, a lost race uses the
winner's entry, and an existing entry is never filled again."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugmarket._internal.cachedir import store_tree
from plugmarket.errors import SourceError
from tests.support.wheels import snapshot


def test_failed_fill_leaves_no_trace_not_even_the_cache_folders(tmp_path: Path) -> None:
    before = snapshot(tmp_path)

    def fill(tmp: Path) -> None:
        (tmp / "half.py").write_text("written before the failure")
        raise SourceError("the archive turned out to be hostile")

    with pytest.raises(SourceError, match="hostile"):
        store_tree(tmp_path / "home" / "cache" / "sources", "k" * 64, fill)
    assert snapshot(tmp_path) == before


def test_existing_entry_is_returned_without_filling_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, created = store_tree(cache, "abc", lambda tmp: (tmp / "a.py").write_text("1"))
    assert created

    def must_not_run(tmp: Path) -> None:
        raise AssertionError("an existing entry was filled again")

    assert store_tree(cache, "abc", must_not_run) == (first, False)
    assert (first / "a.py").read_text() == "1"


def test_losing_a_race_uses_the_winner_s_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    def fill_while_another_process_wins(tmp: Path) -> None:
        (tmp / "a.py").write_text("mine")
        winner = cache / "abc"
        winner.mkdir()
        (winner / "a.py").write_text("theirs")

    entry, created = store_tree(cache, "abc", fill_while_another_process_wins)
    assert (entry, created) == (cache / "abc", False)
    assert (entry / "a.py").read_text() == "theirs"
    assert [p.name for p in cache.iterdir()] == ["abc"]  # the loser's temp folder is gone
