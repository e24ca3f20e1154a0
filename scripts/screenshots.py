"""Take the README's screenshots from real runs: JupyterLab, real kernels, a real browser.

Regenerate them (no network needed; Chromium is Debian's, Playwright never
downloads a browser here)::

    bash scripts/setup.sh                          # once: .venv with JupyterLab
    apt-get install chromium                       # once: /usr/bin/chromium
    .venv/bin/python -m pip install -e ".[docs]"   # once: Playwright (never `playwright install`)
    .venv/bin/python scripts/screenshots.py        # writes docs/images/*.png (about 20 s)

The pictures: search.png, install-consent.png, use.png, update-live.png (from
01-quickstart), define.png (02-write-and-publish), panel.png and
panel-consent.png (a scratch notebook with ``%plugin panel``). Look at each one
before committing it.

Options: ``--chromium PATH`` (default /usr/bin/chromium), ``--out DIR`` (default
docs/images), ``--headed`` to watch.

How: the demo notebooks are copied, without their outputs, into a temporary
folder (so JupyterLab's autosave never touches notebooks/), next to a scratch
notebook for the panel. ``scripts/lab.py`` serves that folder with a fresh
plugmarket home, the demo registry shipped in the package, and plugmarket
loaded in every kernel. Headless Chromium opens each notebook, runs all its
cells through JupyterLab's own "Run All" command, waits until every code cell
has run and fails if any untagged cell raised, then saves cropped pictures of
the cells worth showing. The panel is driven by clicks: a search typed in its
box, then Install, which opens the consent dialog. Everything temporary is
removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab  # scripts/lab.py, next to this file

REPO = lab.REPO
OUT = REPO / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
# Flags for Debian's Chromium on a machine whose network refuses background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1100, "height": 2400}  # tall, so a group of cells fits in one clip
RUN_TIMEOUT = 240  # seconds for a whole notebook to run
STALL = 3  # seconds with an idle kernel and cells not run: "Run All" stopped
UI_TIMEOUT = 60_000  # milliseconds for the page to show something

PANEL_NOTEBOOK = "panel.ipynb"
# Every cell of the notebook open in JupyterLab, as the tests of completion need it.
_NOTEBOOK_STATE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter((c) => c.model.type === "code");
  const tags = (c) => c.model.getMetadata("tags") || [];
  return {
    kernel: panel.sessionContext.session?.kernel?.status ?? "none",
    pending: cells.filter((c) => c.model.executionCount === null).length,
    running: cells.filter((c) => c.model.executionState === "running").length,
    stopped: cells.find((c) => c.model.executionCount === null)?.model.sharedModel.getSource(),
    errors: cells
      .filter((c) => !tags(c).includes("raises-exception"))
      .filter((c) => c.model.outputs.toJSON().some((o) => o.output_type === "error"))
      .map((c) => c.model.sharedModel.getSource()),
  };
}"""


def prepare(root: Path) -> None:
    """Copy the notebooks to ``root/notebooks`` without outputs, and write the panel's."""
    folder = root / "notebooks"
    folder.mkdir(parents=True)
    for name in ("01-quickstart.ipynb", "02-write-and-publish.ipynb"):
        notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        nbformat.write(notebook, folder / name)
    scratch = nbformat.v4.new_notebook()
    scratch.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    # The markdown cell ends up the active one after "Run All", so the panel's cell is
    # drawn without the active cell's marks.
    scratch.cells = [
        nbformat.v4.new_code_cell("%plugin panel"),
        nbformat.v4.new_markdown_cell("The marketplace panel."),
    ]
    nbformat.write(scratch, folder / PANEL_NOTEBOOK)


def lab_settings(state: Path) -> None:
    """JupyterLab settings for pictures: every cell in the page, no news toast."""
    settings = state / "jupyter" / "config" / "lab" / "user-settings" / "@jupyterlab"
    for name, text in {
        "notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
        "apputils-extension/notification.jupyterlab-settings": (
            '{"fetchNews": "false", "checkForUpdates": false}'
        ),
    }.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(text)


@contextmanager
def serving(root: Path) -> Iterator[lab.Lab]:
    state = root / "state"
    lab_settings(state)
    # The server's kernels use state/home, fresh here: what a new user sees.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    server = lab.start(
        root / "work", state=state, env=env, extra_args=["--LabApp.expose_app_in_browser=True"]
    )
    try:
        yield server
    finally:
        server.stop()


def open_notebook(page: Any, server: lab.Lab, name: str) -> None:
    """Open ``notebooks/name`` alone in JupyterLab and wait until its kernel is ready."""
    path = f"notebooks/{name}"
    page.goto(server.url(f"lab/tree/{path}") + "&reset")  # reset: no tabs from before
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=UI_TIMEOUT)
    page.wait_for_function(
        "(path) => { const panel = window.jupyterapp.shell.currentWidget;"
        " return panel?.context?.path === path"
        " && panel.sessionContext.session?.kernel?.status === 'idle'; }",
        arg=path,
        timeout=UI_TIMEOUT,
    )
    if page.locator("#jp-left-stack").is_visible():  # the cells get the whole width
        page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")


def run_all(page: Any, name: str) -> None:
    """Run every cell with JupyterLab's "Run All"; raise if an untagged cell failed."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + RUN_TIMEOUT
    idle_since: float | None = None
    while True:
        state = page.evaluate(_NOTEBOOK_STATE)
        if state["errors"]:
            raise RuntimeError(f"{name}: a cell failed: {state['errors'][0]!r}")
        idle = state["kernel"] == "idle" and state["running"] == 0
        if idle and state["pending"] == 0:
            return
        # Idle with cells never run, for longer than the gap between two cells: stopped.
        idle_since = (idle_since or time.monotonic()) if idle else None
        if idle_since is not None and time.monotonic() - idle_since > STALL:
            raise RuntimeError(f"{name}: Run All stopped before {state['stopped']!r}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: cells still running after {RUN_TIMEOUT} s: {state}")
        page.wait_for_timeout(250)  # polling interval, not synchronisation


def code_cell(page: Any, source: str, occurrence: int = 0) -> Any:
    """The code cell, in the notebook on show, whose source is exactly ``source``.

    ``occurrence`` counts from 0 among the cells with that same source.
    """
    panel = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    sources = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".filter((c) => c.model.type === 'code').map((c) => c.model.sharedModel.getSource())"
    )
    where = [i for i, text in enumerate(sources) if text == source]
    if len(where) <= occurrence:
        raise RuntimeError(f"no code cell number {occurrence + 1} reads {source!r}")
    return page.locator(f"[id='{panel}'] .jp-CodeCell").nth(where[occurrence])


def shoot(page: Any, cells: list[Any], path: Path) -> None:
    """Save one picture of consecutive cells, cropped to them."""
    # The last cell (never one shown) becomes the active one, so no cell in the picture
    # carries the active cell's bar and toolbar.
    page.evaluate(
        "() => { const notebook = window.jupyterapp.shell.currentWidget.content;"
        " document.activeElement?.blur(); notebook.mode = 'command';"
        " notebook.activeCellIndex = notebook.widgets.length - 1; notebook.deselectAll(); }"
    )
    cells[0].evaluate("(el) => el.scrollIntoView({block: 'start'})")
    boxes = [cell.bounding_box() for cell in cells]
    top = min(b["y"] for b in boxes)
    bottom = max(b["y"] + b["height"] for b in boxes)
    left = min(b["x"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    clip = {"x": left, "y": top, "width": right - left, "height": bottom - top}
    page.screenshot(path=str(path), clip=clip)
    print(f"{path}: {path.stat().st_size // 1024} KB", flush=True)


def quickstart(page: Any, server: lab.Lab, out: Path) -> None:
    open_notebook(page, server, "01-quickstart.ipynb")
    run_all(page, "01-quickstart")
    shoot(page, [code_cell(page, "%plugin search csv")], out / "search.png")
    consent = code_cell(page, "%plugin install csv-preview")
    consent.locator(".widget-button").first.wait_for(timeout=UI_TIMEOUT)
    shoot(page, [consent], out / "install-consent.png")
    shoot(page, [code_cell(page, "%csv_preview {cities}")], out / "use.png")
    # The update, live: the same line fails with units 1.0.0 and works after the update.
    before, after = (code_cell(page, "%units 98.6 F to C", n) for n in (0, 1))
    shoot(page, [before, after], out / "update-live.png")


def define(page: Any, server: lab.Lab, out: Path) -> None:
    open_notebook(page, server, "02-write-and-publish.ipynb")
    run_all(page, "02-write-and-publish")
    source = (
        "%%plugin define greet --version 1.0.0 --grant ipython.magics\n"
        "def activate(ctx):\n"
        "    def greet(line):\n"
        '        """%greet NAME: say hello."""\n'
        "        return f\"Hello, {line.strip() or 'world'}!\"\n"
        "\n"
        "    ctx.register_magic(greet)"
    )
    shoot(page, [code_cell(page, source), code_cell(page, "%greet Ada")], out / "define.png")


def panel(page: Any, server: lab.Lab, out: Path) -> None:
    open_notebook(page, server, PANEL_NOTEBOOK)
    run_all(page, "panel")
    cell = code_cell(page, "%plugin panel")
    search = cell.get_by_placeholder("search plugins")
    search.wait_for(timeout=UI_TIMEOUT)
    search.fill("csv")
    search.press("Enter")
    install = cell.get_by_role("button", name=re.compile(r"\bInstall$"))
    install.first.wait_for(timeout=UI_TIMEOUT)
    page.wait_for_function(
        "(el) => !el.innerText.includes('sqlite-magic')", arg=cell.element_handle()
    )
    shoot(page, [cell], out / "panel.png")
    install.first.click()
    cell.get_by_role("button", name=re.compile(r"\bConfirm install$")).first.wait_for(
        timeout=UI_TIMEOUT
    )
    shoot(page, [cell], out / "panel-consent.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", default=CHROMIUM, help=f"browser (default: {CHROMIUM})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder (default: {OUT})")
    parser.add_argument("--headed", action="store_true", help="show the browser")
    options = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print('screenshots: Playwright is missing: pip install -e ".[docs]"', file=sys.stderr)
        return 1
    if not Path(options.chromium).exists():
        print(
            f"screenshots: no browser at {options.chromium}: apt-get install chromium, or pass"
            " --chromium PATH",
            file=sys.stderr,
        )
        return 1
    out: Path = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="plugmarket-screenshots-"))
    try:
        prepare(root / "work")
        with serving(root) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=options.chromium, headless=not options.headed, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            for take in (quickstart, define, panel):
                take(page, server, out)
            browser.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
