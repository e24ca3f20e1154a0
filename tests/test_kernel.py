"""plugmarket in real kernels: install, use, update and unload, all without a restart.

Each test starts an ipykernel process of this environment through jupyter_client,
with its own empty plugmarket home and no IPython or Jupyter configuration from
this machine, and reads what each cell printed, returned or raised from the
kernel's iopub messages. Plugins come from the demo registry shipped in the
package (no network). A last test checks, in a fresh interpreter, that
``%load_ext plugmarket`` leaves the heavy libraries unimported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

STARTUP_TIMEOUT = 60  # seconds for a kernel to answer its first message
CELL_TIMEOUT = 60  # seconds for one cell, an install included
HEAVY = ("httpx", "cryptography", "ipywidgets", "jupyter_server", "resolvelib")
NOT_FOUND = "Line magic function `%{}` not found"


@dataclass
class Cell:
    """What one executed cell produced, from its execute_reply and iopub messages."""

    code: str
    reply: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.reply["status"] == "ok")

    @property
    def execution_count(self) -> int:
        return int(self.reply["execution_count"])

    @property
    def stdout(self) -> str:
        return "".join(o["text"] for o in self.outputs if o.get("name") == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(o["text"] for o in self.outputs if o.get("name") == "stderr")

    @property
    def result(self) -> dict[str, Any]:
        """The execute_result's mime bundle ({} when the cell returned nothing)."""
        results = [o["data"] for o in self.outputs if o["msg_type"] == "execute_result"]
        assert len(results) <= 1, self
        return results[0] if results else {}

    @property
    def error(self) -> str:
        """The error the cell raised, as ``ename: evalue`` ("" when none)."""
        errors = [o for o in self.outputs if o["msg_type"] == "error"]
        return "\n".join(f"{e['ename']}: {e['evalue']}" for e in errors)

    def value(self) -> Any:
        """The cell's result, for cells that end in a JSON-able expression."""
        assert self.ok, self.describe()
        return json.loads(self.stdout)

    def describe(self) -> str:
        return f"cell {self.code!r}: {self.reply.get('status')}, outputs {self.outputs!r}"


class Kernel:
    """An ipykernel process of a given Python, driven through jupyter_client."""

    def __init__(self, python: str, env: dict[str, str], spec_dir: Path) -> None:
        kernel_dir = spec_dir / "kernels" / "plugmarket-test"
        kernel_dir.mkdir(parents=True, exist_ok=True)
        argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        spec = {"argv": argv, "display_name": "plugmarket test", "language": "python"}
        (kernel_dir / "kernel.json").write_text(json.dumps(spec))
        specs = KernelSpecManager(kernel_dirs=[str(spec_dir / "kernels")])
        self.manager = KernelManager(kernel_name="plugmarket-test", kernel_spec_manager=specs)
        self.manager.start_kernel(env=env, cwd=str(spec_dir))
        self.client = self.manager.client()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=STARTUP_TIMEOUT)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        provisioner = self.manager.provisioner
        assert provisioner is not None
        return int(provisioner.pid)  # type: ignore[attr-defined]

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> Cell:
        """Execute ``code`` as the next cell and collect everything it produced."""
        outputs: list[dict[str, Any]] = []

        def collect(msg: dict[str, Any]) -> None:
            kind = msg["msg_type"]
            if kind in ("stream", "execute_result", "display_data", "error"):
                outputs.append({"msg_type": kind, **msg["content"]})

        reply = self.client.execute_interactive(
            code, timeout=timeout, output_hook=collect, allow_stdin=False, store_history=True
        )
        return Cell(code, reply["content"], outputs)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


def plain_environment(tmp_path: Path) -> dict[str, str]:
    """This process's environment with an empty plugmarket home and no user configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    env["PLUGMARKET_HOME"] = str(tmp_path / "home")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "jupyter-runtime")
    env.pop("PYTHONSTARTUP", None)
    return env


@pytest.fixture
def kernel_env(tmp_path: Path) -> dict[str, str]:
    return plain_environment(tmp_path)


@pytest.fixture
def kernel(tmp_path: Path, kernel_env: dict[str, str]) -> Iterator[Kernel]:
    running = Kernel(sys.executable, kernel_env, tmp_path / "spec")
    try:
        yield running
    finally:
        running.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The ``plugmarket`` terminal command, in another process, on the same home."""
    done = subprocess.run(
        [sys.executable, "-m", "plugmarket", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CELL_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def assert_runs(cell: Cell) -> Cell:
    assert cell.ok and not cell.error, cell.describe()
    return cell


def usage_error(cell: Cell) -> str:
    """The one line IPython shows for a UsageError (it fails the cell without a traceback)."""
    assert not cell.ok and cell.stderr.startswith("UsageError: "), cell.describe()
    return cell.stderr


# Probes run inside the kernel; each prints JSON for Cell.value().
PROBE_GONE = """
import json as _json
_ip = get_ipython()
print(_json.dumps({
    "magics": sorted(n for n in ("plugin", "units") if n in _ip.magics_manager.magics["line"]),
    "cell_magics": sorted(n for n in ("plugin",) if n in _ip.magics_manager.magics["cell"]),
    "html_printers": [
        t.__name__ for t in (dict, list)
        if t in _ip.display_formatter.formatters["text/html"].type_printers
    ],
    "convert": "convert" in _ip.user_ns,
    "extension": "plugmarket" in _ip.extension_manager.loaded,
}))
"""


def test_install_use_update_then_unload_in_one_kernel_without_a_restart(kernel: Kernel) -> None:
    counts: list[int] = []

    def run(code: str) -> Cell:
        cell = kernel.run(code)
        counts.append(cell.execution_count)
        return cell

    assert_runs(run("%load_ext plugmarket"))
    pid = run("import os; print(os.getpid())").value()
    assert pid == kernel.pid

    assert_runs(run("%plugin install units 1.0.0 --yes"))
    # The next cell: the plugin's magic is there, with 1.0.0's behaviour.
    assert run("%units 3 km to mi").result["text/plain"] == "1.86411 mi"
    # Temperatures are new in units 1.1.0.
    assert "unknown unit 'F'" in usage_error(run("%units 98.6 F to C"))
    assert "units 1.0.0" in assert_runs(run("%plugin list")).result["text/plain"]

    assert_runs(run("%plugin update units --yes"))
    assert run("%units 98.6 F to C").result["text/plain"] == "37 C"
    assert run("%units 3 km to mi").result["text/plain"] == "1.86411 mi"
    listing = assert_runs(run("%plugin list")).result["text/plain"]
    assert "units 1.1.0" in listing and "units 1.0.0" not in listing

    # A plugin that registers display formatters: dicts and lists become HTML trees.
    assert "text/html" not in run("{'plugmarket': [1, 2]}").result
    assert_runs(run("%plugin install json-viewer --yes"))
    tree = run("{'plugmarket': [1, 2]}").result
    assert 'class="json-viewer"' in tree["text/html"] and "plugmarket" in tree["text/html"]

    live = run(PROBE_GONE).value()
    assert live == {
        "magics": ["plugin", "units"],
        "cell_magics": ["plugin"],
        "html_printers": ["dict", "list"],
        "convert": True,
        "extension": True,
    }

    assert_runs(run("%unload_ext plugmarket"))
    for magic, line in (("plugin", "list"), ("units", "3 km to mi")):
        assert NOT_FOUND.format(magic) in usage_error(run(f"%{magic} {line}"))
    assert "text/html" not in run("{'plugmarket': [1, 2]}").result
    assert run(PROBE_GONE).value() == {
        "magics": [],
        "cell_magics": [],
        "html_printers": [],
        "convert": False,
        "extension": False,
    }

    # Never restarted: the same process all along, and the cell counter only grew.
    assert run("import os; print(os.getpid())").value() == pid == kernel.pid
    assert kernel.manager.is_alive()
    assert counts == sorted(counts) and len(set(counts)) == len(counts), counts
    assert counts[-1] - counts[0] == len(counts) - 1


def test_an_install_from_the_terminal_is_live_at_the_kernels_next_cell(
    kernel: Kernel, kernel_env: dict[str, str]
) -> None:
    assert_runs(kernel.run("%load_ext plugmarket"))
    assert NOT_FOUND.format("units") in usage_error(kernel.run("%units 1 km to m"))
    assert "text/html" not in kernel.run("{'a': 1}").result

    # Another process (the terminal command) changes the home this kernel follows.
    cli(kernel_env, "install", "units", "--yes")
    assert kernel.run("%units 1 km to m").result["text/plain"] == "1000 m"
    assert kernel.run("%units 98.6 F to C").result["text/plain"] == "37 C"  # the latest, 1.1.0

    cli(kernel_env, "install", "json-viewer", "--yes")
    assert 'class="json-viewer"' in kernel.run("{'a': 1}").result["text/html"]

    cli(kernel_env, "uninstall", "units")
    assert NOT_FOUND.format("units") in usage_error(kernel.run("%units 1 km to m"))
    assert 'class="json-viewer"' in kernel.run("{'a': 1}").result["text/html"]


HEAVY_PROBE = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

HEAVY = {heavy!r}
config = Config()
config.HistoryManager.hist_file = ":memory:"
shell = InteractiveShell.instance(config=config)
found = {{"before": sorted(m for m in HEAVY if m in sys.modules)}}
shell.run_line_magic("load_ext", "plugmarket")
found["magic"] = "plugin" in shell.magics_manager.magics["line"]
found["after_load"] = sorted(m for m in HEAVY if m in sys.modules)
shell.run_cell("x = 1", store_history=True)  # the first cell follows the home
found["after_first_cell"] = sorted(m for m in HEAVY if m in sys.modules)
shell.run_line_magic("plugin", "install units --yes")  # a verb that needs some of them
found["after_install"] = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(found))
"""


def test_loading_the_extension_imports_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", HEAVY_PROBE.format(heavy=HEAVY)],
        env=plain_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=CELL_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["magic"] is True
    assert found["before"] == []
    assert found["after_load"] == []
    assert found["after_first_cell"] == []
    # The probe does see them once a verb needs them: resolving, checking signatures.
    assert {"resolvelib", "cryptography"} <= set(found["after_install"])
