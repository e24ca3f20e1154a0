"""Hints written with terminal verbs read as magics in a kernel, but only where a magic exists."""

from __future__ import annotations

import pytest

from plugmarket import cli, magics
from plugmarket.cli_user import USER_VERBS
from plugmarket.errors import in_ipython_words

TERMINAL_USER_VERBS = [name for name, *_ in USER_VERBS]
PUBLISHER_VERBS = [v.name for v in cli.VERBS if v.name not in TERMINAL_USER_VERBS]


def test_the_publisher_verbs_are_the_ones_a_registry_maintainer_runs() -> None:
    assert set(PUBLISHER_VERBS) == {"keygen", "build", "publish", "yank", "index"}


@pytest.mark.parametrize("verb", TERMINAL_USER_VERBS)
def test_a_user_verb_becomes_the_magic(verb: str) -> None:
    assert verb in magics.VERBS  # the magic the hint now names exists
    text = f"run `plugmarket {verb} units` and try again"
    assert in_ipython_words(text) == f"run `%plugin {verb} units` and try again"


@pytest.mark.parametrize("verb", PUBLISHER_VERBS)
def test_a_publisher_verb_stays_a_terminal_command(verb: str) -> None:
    assert verb not in magics.VERBS  # no magic to point at
    text = f"ask the maintainer to run `plugmarket {verb} ...`"
    assert in_ipython_words(text) == text


def test_the_registry_hints_keep_their_terminal_commands() -> None:
    hint = (
        "Ask the registry's maintainer to sign it (`plugmarket index sign`); "
        "publish with `plugmarket publish`, then `plugmarket check --repair`."
    )
    assert in_ipython_words(hint) == (
        "Ask the registry's maintainer to sign it (`plugmarket index sign`); "
        "publish with `plugmarket publish`, then `%plugin check --repair`."
    )


def test_a_word_that_only_starts_like_a_verb_is_kept() -> None:
    assert in_ipython_words("`plugmarket listing`") == "`plugmarket listing`"
