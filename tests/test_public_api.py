"""The public surface is exactly the documented names, and they all resolve."""

from __future__ import annotations

import subprocess
import sys

import plugmarket


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert plugmarket.__all__ == sorted(plugmarket.__all__)
    for name in plugmarket.__all__:
        assert getattr(plugmarket, name) is not None, name


def test_import_is_lazy() -> None:
    code = (
        "import sys, plugmarket\n"
        "heavy = {'httpx', 'cryptography', 'IPython', 'ipywidgets', 'resolvelib', 'traitlets'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
