"""activate()'s time limit: it stops a hanging plugin, and leaves the host's own
SIGALRM handler and timer as they were, whatever activate did."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from plugmarket import loader
from plugmarket.errors import ActivationError
from plugmarket.host import PlainHost
from plugmarket.loader import load, unload
from plugmarket.settings import Settings
from plugmarket.sources import Source
from tests.support.plugins import write_plugin


@pytest.fixture(autouse=True)
def _host_handler() -> Iterator[list[int]]:
    calls: list[int] = []

    def host_handler(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    previous = signal.signal(signal.SIGALRM, host_handler)
    yield calls
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)
    for plugin in list(loader.loaded().values()):
        unload(plugin)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("pass", None),
        ("raise ValueError('no')", "raised ValueError"),
        ("import threading\n    threading.Event().wait()", r"longer than 0\.3 s"),
    ],
    ids=["returns", "raises", "hangs"],
)
def test_host_handler_and_timer_are_left_as_they_were(
    tmp_path: Path, home: Path, body: str, error: str | None
) -> None:
    handler = signal.getsignal(signal.SIGALRM)
    pkg = write_plugin(tmp_path, "timed", f"def activate(ctx):\n    {body}\n")
    settings = Settings(home=home, activation_timeout=0.3)
    if error is None:
        load(Source.local(pkg), settings=settings, host=PlainHost())
    else:
        with pytest.raises(ActivationError, match=error):
            load(Source.local(pkg), settings=settings, host=PlainHost())
    assert signal.getsignal(signal.SIGALRM) is handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_host_timer_running_outside_a_load_still_reaches_the_host(
    tmp_path: Path, home: Path, _host_handler: list[int]
) -> None:
    pkg = write_plugin(tmp_path, "quick", "def activate(ctx):\n    pass\n")
    load(Source.local(pkg), settings=Settings(home=home), host=PlainHost())
    signal.raise_signal(signal.SIGALRM)
    assert _host_handler == [signal.SIGALRM]
