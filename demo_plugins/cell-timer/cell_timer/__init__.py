"""Cell Timer: how long each cell took, on IPython's ``pre_run_cell``/``post_run_cell``.

Invariants: a cell is timed from its ``pre_run_cell`` to its ``post_run_cell``
with a monotonic clock; a ``post_run_cell`` without a start (the plugin was
loaded in the middle of a cell) is ignored rather than guessed; the history
keeps the last :data:`HISTORY` cells only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugmarket.context import PluginContext

try:
    from IPython.core.error import UsageError
except ImportError:  # outside IPython
    UsageError = ValueError  # type: ignore[assignment,misc]

HISTORY = 200  # cells remembered for %timings


def format_duration(seconds: float) -> str:
    """``0.00042`` -> ``"420 µs"``, ``0.0123`` -> ``"12.3 ms"``, ``75`` -> ``"1 min 15 s"``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@dataclass(frozen=True)
class Timing:
    """One timed cell."""

    cell: int | None  # IPython's execution count; None when the shell has none
    seconds: float
    failed: bool


class Timer:
    """Times cells between ``start()`` and ``stop(result)``.

    Args:
        clock: A monotonic clock in seconds.
        threshold: Only cells at least this long are reported.
        report: Called with the line to show.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        threshold: float = 0.0,
        report: Callable[[str], None] = print,
    ) -> None:
        self.clock = clock
        self.threshold = threshold
        self.report = report
        self.history: deque[Timing] = deque(maxlen=HISTORY)
        self._started: float | None = None

    def start(self, info: object = None) -> None:
        self._started = self.clock()

    def stop(self, result: object = None) -> None:
        if self._started is None:
            return
        seconds = self.clock() - self._started
        self._started = None
        count = getattr(result, "execution_count", None)
        failed = getattr(result, "success", True) is False
        timing = Timing(count if isinstance(count, int) else None, seconds, failed)
        self.history.append(timing)
        if seconds >= self.threshold:
            what = f"cell {timing.cell}" if timing.cell is not None else "cell"
            status = " (failed)" if failed else ""
            self.report(f"⏱ {what} took {format_duration(seconds)}{status}")

    def slowest(self, n: int) -> list[Timing]:
        """The slowest of the last ``n`` cells, slowest first."""
        recent = list(self.history)[-n:] if n > 0 else []
        return sorted(recent, key=lambda t: t.seconds, reverse=True)


def activate(ctx: PluginContext) -> None:
    """Subscribe to the cell events and register ``%timings``."""
    threshold = ctx.config.get("threshold", 0.0)
    timer = Timer(threshold=float(threshold) if isinstance(threshold, int | float) else 0.0)
    ctx.on("pre_run_cell", timer.start)
    ctx.on("post_run_cell", timer.stop)

    def timings(line: str) -> None:
        text = line.strip() or "10"
        if not text.isdigit() or int(text) == 0:
            raise UsageError(f"usage: %timings [N]  (N: how many recent cells), not {text!r}")
        rows = timer.slowest(int(text))
        if not rows:
            print("no cell timed yet")
            return
        for t in rows:
            what = f"cell {t.cell}" if t.cell is not None else "cell"
            print(f"{what:>10}  {format_duration(t.seconds):>10}{'  (failed)' if t.failed else ''}")

    ctx.register_magic(timings, "timings")
