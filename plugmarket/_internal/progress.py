"""The download progress bar the terminal and the magics show (tqdm's notebook-aware bar).

Invariants:

- The bar is made at the first bytes a download reports, so a download that
  reports none (a registry folder) leaves nothing behind.
- In a kernel it is tqdm's widget bar; elsewhere a text bar on stderr, quiet
  when stderr is not a terminal. tqdm is imported only then.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugmarket._internal.fetch import Progress

__all__ = ["download_bar"]


def download_bar(plugin_id: str, size: int) -> Progress:
    """A progress callback ``(received, total)`` for one plugin's download of ``size`` bytes."""
    bars: list[Any] = []

    def update(received: int, total: int | None) -> None:
        if not bars:
            from tqdm.auto import tqdm

            quiet = "ipykernel" not in sys.modules and not sys.stderr.isatty()
            bars.append(
                tqdm(
                    total=total or size or None,
                    unit="B",
                    unit_scale=True,
                    desc=plugin_id,
                    leave=False,
                    disable=quiet,
                )
            )
        bar = bars[0]
        bar.update(received - bar.n)
        if total is not None and received >= total:
            bar.close()

    return update
