"""``python -m plugmarket``: the same console script as ``plugmarket``."""

from __future__ import annotations

from plugmarket.cli import main

raise SystemExit(main())
