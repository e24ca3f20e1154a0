"""The README's first command's tour runs on the shipped registry with no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_tour_runs_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    env["PLUGMARKET_OFFLINE"] = "1"  # the shipped registry is a folder: no network at all
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "loaded csv-preview 1.0.0 as plugmarket.plugins.csv_preview" in out.stdout
    assert "Osaka  JP       2753862" in out.stdout
    assert "CapabilityDenied: plugin 'csv-preview' was denied open on '/etc/hostname'" in out.stdout
    assert "magics left: []; plugin modules left: []" in out.stdout
    assert list(tmp_path.iterdir()) == []  # the temporary home was removed
