"""Ratings and reviews kept in the home: one per user per plugin, validated on the way in.

``<home>/reviews/<plugin id>.json`` holds a plugin's reviews, keyed by user;
rating again replaces the user's earlier review. Each file is changed under
its own lock by read, change, atomic rename, flushed to the disk (people
wrote these by hand). Plugin ids are checked before they become file names.

What a review may hold: 1 to 5 whole stars; text of at most
:data:`MAX_TEXT` characters with no control characters except newlines
(``\\r\\n`` and ``\\r`` become ``\\n``), no lone surrogates and no
bidirectional overrides, which could make text read differently from what
it is in a terminal or a notebook.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plugmarket._internal import recordfile
from plugmarket.errors import PlugmarketError
from plugmarket.manifest import validate_id
from plugmarket.results import Review, ReviewList, current_user

__all__ = ["MAX_TEXT", "MAX_USER", "Reviews", "check_review"]

MAX_TEXT = 10_000  # characters in one review
MAX_USER = 256  # characters in a user name
FORMAT = 1
# C0 controls but newline, DEL and C1 controls, lone surrogates, bidi embeddings/overrides/isolates.
_BAD = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


class Reviews:
    """The ratings and reviews of one home.

    Args:
        home: The plugmarket home; reviews live in ``home/reviews/``.
    """

    def __init__(self, home: Path | str) -> None:
        self.folder = Path(home) / "reviews"

    def __repr__(self) -> str:
        return f"<Reviews {str(self.folder)!r}>"

    def rate(
        self, plugin_id: str, stars: int, text: str = "", *, user: str | None = None
    ) -> Review:
        """Rate a plugin; a user's new rating replaces their earlier one.

        Args:
            plugin_id: The plugin.
            stars: 1 to 5 whole stars.
            text: An optional review (see the module docstring for what it may hold).
            user: Who rates (default: the login name).

        Returns:
            The review as stored.

        Raises:
            ManifestError: ``plugin_id`` is not a valid plugin id.
            PlugmarketError: the rating, text or user is not allowed (the message
                says what is), or the file cannot be written.
        """
        review = check_review(plugin_id, stars, text, user=user)

        def change(reviews: dict[str, Review]) -> dict[str, Review]:
            reviews[review.user] = review
            return reviews

        recordfile.update(
            self._path(plugin_id),
            lambda obj: _decode(obj, plugin_id),
            _empty,
            change,
            lambda reviews: _encode(reviews, plugin_id),
            fsync=True,
        )
        return review

    def reviews(self, plugin_id: str) -> ReviewList:
        """A plugin's reviews, newest first.

        Raises:
            ManifestError: ``plugin_id`` is not a valid plugin id.
            PlugmarketError: the file cannot be read.
        """
        validate_id(plugin_id, field_name="plugin id")
        stored = recordfile.load(self._path(plugin_id), lambda obj: _decode(obj, plugin_id), _empty)
        ordered = sorted(stored.values(), key=lambda r: (r.time, r.user), reverse=True)
        return ReviewList(ordered, plugin_id=plugin_id)

    def average(self, plugin_id: str) -> float | None:
        """The mean rating of a plugin, or None when nobody rated it."""
        return self.reviews(plugin_id).average

    def _path(self, plugin_id: str) -> Path:
        return self.folder / f"{validate_id(plugin_id, field_name='plugin id')}.json"


def check_review(plugin_id: str, stars: int, text: str = "", *, user: str | None = None) -> Review:
    """Validate a rating and build the :class:`Review` it would store (no I/O).

    Raises:
        ManifestError: ``plugin_id`` is not a valid plugin id.
        PlugmarketError: the rating, text or user is not allowed.
    """
    validate_id(plugin_id, field_name="plugin id")
    if type(stars) is not int or not 1 <= stars <= 5:
        raise PlugmarketError(
            f"a rating is 1 to 5 whole stars; found {stars!r}",
            hint="Rate with a whole number from 1 (poor) to 5 (excellent).",
        )
    if not isinstance(text, str):
        raise PlugmarketError(f"review text must be text; found {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_TEXT:
        raise PlugmarketError(
            f"a review may be at most {MAX_TEXT:,} characters; this one has {len(text):,}",
            hint="Shorten the review.",
        )
    _check_chars("review text", text)
    name = current_user() if user is None else user
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_USER or "\n" in name:
        raise PlugmarketError(
            f"reviewer {name!r} is not a user name: expected 1 to {MAX_USER} characters on one line"
        )
    _check_chars("reviewer name", name)
    return Review(plugin_id=plugin_id, user=name, stars=stars, text=text)


def _check_chars(what: str, text: str) -> None:
    bad = _BAD.search(text)
    if bad is not None:
        raise PlugmarketError(
            f"{what} contains the character U+{ord(bad.group()):04X} at position {bad.start()}; "
            "control characters (other than newlines) and bidirectional overrides are not "
            "allowed",
            hint="Remove the character and try again.",
        )


def _empty() -> dict[str, Review]:
    return {}


def _encode(reviews: dict[str, Review], plugin_id: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "plugin": plugin_id,
        "reviews": [
            {"user": r.user, "stars": r.stars, "text": r.text, "time": r.time.isoformat()}
            for _, r in sorted(reviews.items())
        ],
    }


def _decode(obj: Any, plugin_id: str) -> dict[str, Review]:
    if obj["format"] != FORMAT or obj["plugin"] != plugin_id:
        raise ValueError("not this plugin's reviews")
    reviews = {}
    for item in obj["reviews"]:
        if type(item["time"]) is not str:
            raise TypeError("time")
        time = datetime.fromisoformat(item["time"])
        if time.tzinfo is None:
            raise ValueError("time without a timezone")
        # The same checks as a new review: a hand-edited file cannot slip past them.
        checked = check_review(plugin_id, item["stars"], item["text"], user=item["user"])
        reviews[checked.user] = Review(
            plugin_id, checked.user, checked.stars, checked.text, time.astimezone(UTC)
        )
    return reviews
