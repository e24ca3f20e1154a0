"""Run each demo notebook under nbval in a fresh plugmarket home of its own.

nbval starts one kernel per notebook, in the notebook's setup, and the kernel
inherits this process's environment. Just before that setup, the hook below
gives the notebook its own empty ``PLUGMARKET_HOME``, IPython and Jupyter
configuration folders and ``TMPDIR``, removes every other ``PLUGMARKET_*``
variable, so the default registry is the demo registry shipped in the
package, and puts this environment's scripts first on ``PATH`` for the
notebooks' ``!plugmarket`` cells. So ``pytest --nbval notebooks/`` never
reads or changes the user's own plugmarket home, and every notebook sees what
a new user sees, whatever ran before it. The folders are removed when the run
ends, with whatever a failing notebook left in them.

A cell stored without being run fails: nbval would compare nothing for it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from nbval.plugin import IPyNbFile

_environment = pytest.MonkeyPatch()
_prepared: set[str] = set()
_folders: list[Path] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    notebook = item.parent
    if not isinstance(notebook, IPyNbFile):
        return
    cell = getattr(item, "cell", None)
    if cell is not None and cell.get("execution_count") is None:
        # nbval compares nothing for a cell stored without running it: it would pass empty.
        pytest.fail(
            f"{item.nodeid}: this cell was stored without being run, so nbval has no outputs "
            "to compare; execute the notebook and store its outputs (notebooks/README.md)",
            pytrace=False,
        )
    if notebook.nodeid in _prepared:
        return
    _prepared.add(notebook.nodeid)
    root = Path(tempfile.mkdtemp(prefix=f"plugmarket-nbval-{Path(notebook.nodeid).stem}-"))
    _folders.append(root)
    for name in [k for k in os.environ if k.startswith("PLUGMARKET_")]:
        _environment.delenv(name)
    _environment.setenv("PLUGMARKET_HOME", str(root / "home"))
    _environment.setenv("IPYTHONDIR", str(root / "ipython"))
    _environment.setenv("JUPYTER_CONFIG_DIR", str(root / "jupyter"))
    # The notebooks' own temporary folders too, so a notebook that fails before its
    # clean-up cell leaves nothing behind.
    (root / "tmp").mkdir()
    _environment.setenv("TMPDIR", str(root / "tmp"))
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != scripts:
        _environment.setenv("PATH", scripts + os.pathsep + path)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _environment.undo()
    for folder in _folders:
        shutil.rmtree(folder, ignore_errors=True)
