"""The README's first command: JupyterLab on the demo notebooks, %plugin in every kernel.

``scripts/lab.py --check`` starts the real server on 127.0.0.1 with a token, lists
the quickstart notebook through the contents API, starts a kernel through the REST
API and asks it whether plugmarket is loaded, then stops. A second test starts a
kernel in the demo's environment directly and runs ``%plugin search`` on the
registry shipped in the package, with the user's ``PLUGMARKET_*`` variables (a home,
a registry, offline mode) that the demo must drop.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds for a kernel to start or a cell to run
URL = re.compile(
    r"^JupyterLab is running the plugmarket demo\. Open: "
    r"(http://127\.0\.0\.1:\d+/lab/tree/notebooks/01-quickstart\.ipynb\?token=[0-9a-f]{48})$",
    re.MULTILINE,
)


def load_lab() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plugmarket_lab", ROOT / "scripts" / "lab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def base_environment(tmp_path: Path) -> dict[str, str]:
    """A user's environment with plugmarket variables the demo must not pass on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    # The user's real home: the demo's installs must not land there.
    env["PLUGMARKET_HOME"] = str(tmp_path / "users-home")
    # A registry that does not exist: the demo must use the one shipped in the package.
    env["PLUGMARKET_REGISTRY"] = str(tmp_path / "no-such-registry")
    # Offline with an empty cache, and signatures required: either would change the demo.
    env["PLUGMARKET_OFFLINE"] = "1"
    env["PLUGMARKET_REQUIRE_SIGNATURE"] = "1"
    return env


def test_check_serves_the_notebooks_and_kernels_have_plugin(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lab.py"), "--check", "--state", str(state)],
        env=base_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    log = (state / "jupyterlab.log").read_text() if (state / "jupyterlab.log").exists() else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log}"
    assert len(URL.findall(done.stdout)) == 1, done.stdout
    assert f"plugmarket home of the demo: {state / 'home'}\n" in done.stdout
    assert "ok: contents API lists notebooks/01-quickstart.ipynb" in done.stdout
    assert "ok: a kernel started through the REST API has %plugin" in done.stdout
    # The server kept its files in the demo's folder, not in the user's Jupyter folders,
    # and it was stopped by the signal Ctrl-C leads to.
    assert (state / "jupyter" / "runtime" / "jupyter_cookie_secret").is_file()
    assert "received signal 15, stopping" in log


def test_a_kernel_in_the_demo_environment_searches_the_shipped_registry(tmp_path: Path) -> None:
    lab = load_lab()
    env = lab.environment(tmp_path / "state", base_environment(tmp_path))
    assert {k: v for k, v in env.items() if k.startswith("PLUGMARKET_")} == {
        "PLUGMARKET_HOME": str(tmp_path / "state" / "home")  # the demo's own, always
    }
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        texts: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                texts.append(content["text"])
            elif msg["msg_type"] in ("execute_result", "display_data", "error"):
                texts.append(content.get("data", {}).get("text/plain", ""))
                texts.append(content.get("evalue", ""))

        # No %load_ext: the profile the demo writes loads the extension.
        reply = client.execute_interactive(
            "%plugin search csv", timeout=TIMEOUT, output_hook=collect, allow_stdin=False
        )
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    output = "".join(texts)
    assert reply["content"]["status"] == "ok", output
    assert "csv-preview" in output
    assert "sqlite-magic" not in output  # a search, not the whole registry
    assert not (tmp_path / "users-home").exists()  # the user's own home was not touched
