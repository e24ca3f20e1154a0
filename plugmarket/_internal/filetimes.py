"""Whether a file's times are old enough to vouch for its content.

File systems keep times in clock ticks, some in whole seconds: a file
written again within a tick of its last change may keep the same times. A
memo keyed by a file's times (the importer's compiled code, a local folder's
files) is therefore only kept for times older than that window, measured
from when the file was read. Times in the future (another machine's clock)
are never trusted.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["RACY_NS", "RACY_WHOLE_SECONDS_NS", "settled"]

RACY_NS = 100_000_000  # 0.1 s
RACY_WHOLE_SECONDS_NS = 2_000_000_000  # 2 s, for times kept in whole seconds


def settled(times_ns: Iterable[int], read_at: int) -> bool:
    """Whether every time in ``times_ns`` is old enough that a later change shows.

    Args:
        times_ns: Modification and change times, in nanoseconds since the epoch.
        read_at: When the file was read (``time.time_ns()`` before reading).

    Returns:
        False if any time is within the racy window of ``read_at``, or after it.
    """
    for ns in times_ns:
        margin = RACY_WHOLE_SECONDS_NS if ns % 1_000_000_000 == 0 else RACY_NS
        if ns > read_at - margin:
            return False
    return True
