"""Ratings and reviews: stored per plugin in a tmp home, one per user, validated."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from plugmarket._internal.records import Reviews
from plugmarket._internal.reviews import MAX_TEXT
from plugmarket.errors import ManifestError, PlugmarketError
from plugmarket.results import Review, ReviewList, stars


def test_rate_and_read_back(home: Path) -> None:
    reviews = Reviews(home)
    stored = reviews.rate("csv-preview", 4, "Handy.\nFast on big files.", user="ada")
    assert stored == Review("csv-preview", "ada", 4, "Handy.\nFast on big files.", stored.time)
    reviews.rate("csv-preview", 2, user="grace")
    got = reviews.reviews("csv-preview")
    assert isinstance(got, ReviewList)
    assert [(r.user, r.stars) for r in got] == [("grace", 2), ("ada", 4)]  # newest first
    assert reviews.average("csv-preview") == 3.0
    assert reviews.average("todo") is None
    assert reviews.reviews("todo") == []


def test_rating_again_replaces_the_users_review(home: Path) -> None:
    reviews = Reviews(home)
    reviews.rate("units", 1, "broken", user="ada")
    reviews.rate("units", 5, "fixed in 1.1", user="ada")
    (only,) = reviews.reviews("units")
    assert (only.stars, only.text) == (5, "fixed in 1.1")


def test_default_user_is_the_login_name(home: Path) -> None:
    import getpass

    assert Reviews(home).rate("todo", 3).user == getpass.getuser()


def test_reviews_are_stored_per_plugin_under_the_home(home: Path) -> None:
    Reviews(home).rate("todo", 5, "great", user="ada")
    data = json.loads((home / "reviews" / "todo.json").read_text())
    assert data["plugin"] == "todo"
    assert data["reviews"][0]["stars"] == 5


@pytest.mark.parametrize("bad", [0, 6, -1, 4.5, 5.0, True, "5", None])
def test_stars_must_be_one_to_five_whole_stars(home: Path, bad: object) -> None:
    with pytest.raises(PlugmarketError, match="a rating is 1 to 5 whole stars"):
        Reviews(home).rate("todo", bad)  # type: ignore[arg-type]
    assert not (home / "reviews").exists()


def test_text_may_be_exactly_the_limit_but_not_more(home: Path) -> None:
    Reviews(home).rate("todo", 3, "a" * MAX_TEXT, user="ada")
    with pytest.raises(PlugmarketError, match="at most 10,000 characters; this one has 10,001"):
        Reviews(home).rate("todo", 3, "a" * (MAX_TEXT + 1), user="ada")


def test_windows_line_ends_become_newlines(home: Path) -> None:
    review = Reviews(home).rate("todo", 4, "one\r\ntwo\rthree", user="ada")
    assert review.text == "one\ntwo\nthree"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("bell\x07", "U+0007"),
        ("tab\tbed", "U+0009"),
        ("nul\x00", "U+0000"),
        ("del\x7f", "U+007F"),
        ("c1\x9b31m", "U+009B"),
        ("lone \ud800 surrogate", "U+D800"),
    ],
)
def test_control_characters_are_refused(home: Path, text: str, code: str) -> None:
    with pytest.raises(PlugmarketError, match=re.escape(code) + ".*newlines"):
        Reviews(home).rate("todo", 3, text, user="ada")


def test_terminal_escape_injection_in_review_is_refused(home: Path) -> None:
    # An ANSI sequence that would clear the screen and recolour what the next reader sees.
    with pytest.raises(PlugmarketError, match=re.escape("U+001B")):
        Reviews(home).rate("todo", 5, "great\x1b[2J\x1b[32m5 stars from admin", user="ada")


def test_trojan_source_bidi_override_in_review_is_refused(home: Path) -> None:
    with pytest.raises(PlugmarketError, match=r"U\+202E.*bidirectional"):
        Reviews(home).rate("todo", 1, "safe \u202eylbatsni", user="ada")


def test_review_plugin_id_path_traversal_is_refused(home: Path, tmp_path: Path) -> None:
    for bad in ("../../escape", "/etc/passwd", "Todo", "", "a/b"):
        with pytest.raises(ManifestError, match="not a valid plugin id"):
            Reviews(home).rate(bad, 5, user="ada")
        with pytest.raises(ManifestError):
            Reviews(home).reviews(bad)
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("user", ["", "   ", "a\nb", "x" * 257, "evil\x1b[0m"])
def test_invalid_reviewer_names_are_refused(home: Path, user: str) -> None:
    with pytest.raises(PlugmarketError, match="reviewer"):
        Reviews(home).rate("todo", 3, user=user)


def test_hand_edited_review_with_an_escape_is_not_shown(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Reviews(home).rate("todo", 5, "fine", user="ada")
    path = home / "reviews" / "todo.json"
    data = json.loads(path.read_text())
    data["reviews"][0]["text"] = "\x1b[2Jgotcha"
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="plugmarket.records"):
        assert Reviews(home).reviews("todo") == []
    assert "is damaged" in caplog.text
    Reviews(home).rate("todo", 4, "again", user="grace")
    assert [r.user for r in Reviews(home).reviews("todo")] == ["grace"]
    assert (home / "reviews" / "todo.json.damaged").exists()


def test_reviews_render_stars_and_escape_text(home: Path) -> None:
    Reviews(home).rate("todo", 4, "<b>bold</b> & more\nsecond line", user="ada")
    Reviews(home).rate("todo", 5, user="grace")
    got = Reviews(home).reviews("todo")
    text = repr(got)
    assert text.splitlines()[0] == "todo: ★★★★★ 4.5 from 2 review(s)"
    assert "★★★★☆  todo by ada" in text and "    second line" in text
    page = got._repr_html_()
    assert "★★★★☆" in page and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page
    assert "<b>bold</b>" not in page
    assert repr(ReviewList([], plugin_id="todo")) == "todo: no reviews yet"
    assert stars(3) == "★★★☆☆"
