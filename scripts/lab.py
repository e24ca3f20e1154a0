"""Open JupyterLab on the demo notebooks, with ``%plugin`` ready in every kernel.

``bash scripts/demo.sh`` sets up ``.venv`` and runs this script, which starts
JupyterLab on 127.0.0.1 with a random token, prints the URL of the quickstart
notebook, and stops the server (and its kernels) on Ctrl-C.

No network is needed, and the user's own plugmarket is never touched: no
``PLUGMARKET_*`` variable is passed on (not ``PLUGMARKET_HOME``, ``PLUGMARKET_REGISTRY``,
``PLUGMARKET_OFFLINE``, ...), so the notebooks install into the demo's own home
from the signed demo registry shipped inside the package. Everything the demo
writes lives under ``.demo/`` in the repository (or ``--state DIR``):

- ``home/``: the plugmarket home, always (its path is printed at start);
- ``ipython/``: ``IPYTHONDIR``, whose default profile loads the plugmarket
  extension in every kernel;
- ``jupyter/``: ``JUPYTER_CONFIG_DIR``, ``JUPYTER_DATA_DIR`` and
  ``JUPYTER_RUNTIME_DIR``, so the user's own ``~/.jupyter`` is neither read
  nor written (the kernelspec and labextensions of the environment are still
  found), with JupyterLab's news and update checks turned off;
- ``workspace/``: what the server shows, a copy of ``notebooks/`` and ``docs/``
  made on the first run, so running the notebooks never changes the repository;
- ``jupyterlab.log``: the server's log.

Usage::

    python scripts/lab.py [--port N] [--state DIR]   # serve until Ctrl-C
    python scripts/lab.py --check                    # start, verify, stop: exit 0 if all is well
    python scripts/lab.py --terminal                 # the terminal tour (scripts/demo.py)

``start()`` is what ``scripts/screenshots.py`` uses to serve other folders.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".demo"
QUICKSTART = "notebooks/01-quickstart.ipynb"

# Every plugmarket variable is dropped: the user's own would point the demo's installs
# at their real home, another registry, or change its offline and signature checks.
_PLUGMARKET_PREFIX = "PLUGMARKET_"
_IPYTHON_CONFIG = """\
# Written by scripts/lab.py: every kernel of the plugmarket demo loads the extension,
# so %plugin works in a new notebook without %load_ext.
c = get_config()  # noqa: F821
c.InteractiveShellApp.extensions = ["plugmarket"]
"""
# JupyterLab asks whether to fetch Jupyter news in a toast; the demo has no network.
_NOTIFICATION_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}
_CHECK_CODE = (
    "import json\n"
    "ip = get_ipython()\n"
    "print(json.dumps({'extensions': sorted(ip.extension_manager.loaded),"
    " 'plugin': 'plugin' in ip.magics_manager.magics['line']}))"
)


class LabError(RuntimeError):
    """JupyterLab did not start or did not answer as expected; the message says why."""


@dataclass
class Lab:
    """A running JupyterLab server.

    Attributes:
        base_url: ``http://127.0.0.1:PORT``.
        token: the token every request needs.
        process: the server process.
        state: the folder holding the configuration, runtime files and log.
        env: the environment the server (and so every kernel) runs with.
    """

    base_url: str
    token: str
    process: subprocess.Popen[bytes]
    state: Path
    env: dict[str, str]
    log: IO[bytes] = field(repr=False)

    def url(self, path: str = f"lab/tree/{QUICKSTART}") -> str:
        """The URL to open ``path`` (a JupyterLab route) in a browser, token included."""
        return f"{self.base_url}/{path}?token={self.token}"

    def api(self, timeout: float = 30) -> httpx.Client:
        """An HTTP client for the server's REST API, authenticated with the token."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"token {self.token}"},
            timeout=timeout,
        )

    @property
    def log_path(self) -> Path:
        return self.state / "jupyterlab.log"

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for error messages."""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 30) -> int:
        """Stop the server as Ctrl-C would, shutting down its kernels; kill it if it hangs.

        Returns:
            The server's exit status.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def environment(state: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the demo server, its configuration files written under ``state``.

    Args:
        state: the folder for the demo's home, IPython and Jupyter folders.
        base: the environment to start from (default: this process's).

    Returns:
        ``base`` without its ``PLUGMARKET_*`` variables, with plugmarket's home,
        IPython and Jupyter pointed into ``state``, and this Python's scripts first
        on ``PATH`` (for the notebooks' ``!plugmarket`` cells).
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(_PLUGMARKET_PREFIX)}
    env["PLUGMARKET_HOME"] = str(state / "home")
    ipython = state / "ipython"
    jupyter = state / "jupyter"
    env["IPYTHONDIR"] = str(ipython)
    env["JUPYTER_CONFIG_DIR"] = str(jupyter / "config")
    env["JUPYTER_DATA_DIR"] = str(jupyter / "data")
    env["JUPYTER_RUNTIME_DIR"] = str(jupyter / "runtime")
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])

    profile = ipython / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_config.py").write_text(_IPYTHON_CONFIG)
    settings = jupyter / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    notification = settings / "notification.jupyterlab-settings"
    if not notification.exists():  # the user may have changed it in the demo since
        notification.write_text(json.dumps(_NOTIFICATION_SETTINGS))
    for folder in ("data", "runtime"):
        (jupyter / folder).mkdir(parents=True, exist_ok=True)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(
    root_dir: Path = REPO,
    *,
    port: int | None = None,
    state: Path = STATE,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 90,
) -> Lab:
    """Start JupyterLab serving ``root_dir`` and return once its REST API answers.

    Args:
        root_dir: the folder the file browser shows.
        port: the port on 127.0.0.1 (default: a free one).
        state: where the configuration, runtime files and log go (see ``environment``).
        env: the environment to start from (default: this process's).
        extra_args: more command-line options for JupyterLab.
        timeout: seconds to wait for the server to answer.

    Returns:
        The running server; call ``stop()`` when done.

    Raises:
        LabError: the server exited, or did not answer within ``timeout``.
    """
    state.mkdir(parents=True, exist_ok=True)
    server_env = environment(state, env)
    token = secrets.token_hex(24)
    server_env["JUPYTER_TOKEN"] = token  # not on the command line, where `ps` shows it
    port = port or free_port()
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *extra_args,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    log = (state / "jupyterlab.log").open("wb")
    process = subprocess.Popen(
        args,
        env=server_env,
        cwd=root_dir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own session: Ctrl-C reaches this script only, which then stops the server
        # without JupyterLab's "Shutdown this Jupyter server (y/[n])?" question.
        start_new_session=True,
    )
    lab = Lab(f"http://127.0.0.1:{port}", token, process, state, server_env, log)
    try:
        _wait_until_ready(lab, timeout)
    except BaseException:
        lab.stop()
        raise
    return lab


def _wait_until_ready(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with lab.api(timeout=5) as api:
        while True:
            if lab.process.poll() is not None:
                raise LabError(
                    f"JupyterLab exited with status {lab.process.returncode} before answering;"
                    f" its log ({lab.log_path}) ends with:\n{lab.log_tail()}"
                )
            try:
                if api.get("/api/status").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise LabError(
                    f"JupyterLab did not answer on {lab.base_url} within {timeout:.0f} s;"
                    f" its log ({lab.log_path}) ends with:\n{lab.log_tail()}"
                )
            time.sleep(0.1)  # polling interval, not synchronisation


def check(lab: Lab, timeout: float = 60) -> list[str]:
    """Verify a running demo server end to end.

    Checks that the quickstart notebook is listed by the contents API, and that a
    kernel started through the REST API has the plugmarket extension and ``%plugin``.

    Returns:
        One line per check passed.

    Raises:
        LabError: a check failed; the message says which and what was found.
    """
    from jupyter_client.blocking.client import BlockingKernelClient

    done: list[str] = []
    with lab.api() as api:
        folder, name = QUICKSTART.rsplit("/", 1)
        listing = api.get(f"/api/contents/{folder}", params={"content": 1})
        names = [item["name"] for item in listing.json().get("content", [])]
        if listing.status_code != 200 or name not in names:
            raise LabError(f"{QUICKSTART} is not listed: {listing.status_code} {names}")
        done.append(f"contents API lists {QUICKSTART}")

        started = api.post("/api/kernels", json={"name": "python3"})
        if started.status_code != 201:
            raise LabError(f"starting a kernel failed: {started.status_code} {started.text}")
        kernel_id = started.json()["id"]
        try:
            connection = Path(lab.env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel_id}.json"
            client = BlockingKernelClient()
            client.load_connection_file(str(connection))
            client.start_channels()
            try:
                client.wait_for_ready(timeout=timeout)
                lines: list[str] = []
                reply = client.execute_interactive(
                    _CHECK_CODE,
                    timeout=timeout,
                    output_hook=lambda msg: lines.extend(
                        [msg["content"]["text"]] if msg["msg_type"] == "stream" else []
                    ),
                )
            finally:
                client.stop_channels()
        finally:
            api.delete(f"/api/kernels/{kernel_id}")
    if reply["content"]["status"] != "ok" or not lines:
        raise LabError(f"the kernel's check failed: {reply['content']} {lines}")
    found = json.loads("".join(lines))
    if "plugmarket" not in found["extensions"] or not found["plugin"]:
        raise LabError(f"a new kernel lacks the plugmarket extension or %plugin: {found}")
    done.append(f"a kernel started through the REST API has %plugin (extensions: {found})")
    return done


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def workspace(state: Path) -> Path:
    """A copy of ``notebooks/`` (and the ``docs/`` they link to) that the demo serves.

    Running the notebooks saves their outputs; in a copy, that never changes the
    repository. It is made once, so work done in it is kept between runs;
    delete ``.demo/workspace`` for fresh copies.
    """
    root = state / "workspace"
    if not root.exists():
        staging = state / ".workspace.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        for folder in ("notebooks", "docs"):
            shutil.copytree(REPO / folder, staging / folder, ignore=_NOT_COPIED)
        staging.rename(root)
    return root


_NOT_COPIED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "conftest.py")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--state", type=Path, default=STATE, help=f"folder for the demo's files (default: {STATE})"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="start, verify, stop; exit 0 if well")
    mode.add_argument("--terminal", action="store_true", help="run the terminal tour instead")
    options = parser.parse_args(argv)

    if options.terminal:
        return subprocess.call([sys.executable, str(REPO / "scripts" / "demo.py")])

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    try:
        state = options.state.resolve()
        lab = start(port=options.port, state=state, root_dir=workspace(state))
    except LabError as error:
        print(f"plugmarket demo: {error}", file=sys.stderr)
        return 1
    try:
        print(f"JupyterLab is running the plugmarket demo. Open: {lab.url()}", flush=True)
        print(f"plugmarket home of the demo: {lab.env['PLUGMARKET_HOME']}", flush=True)
        if options.check:
            for line in check(lab):
                print(f"ok: {line}", flush=True)
            return 0
        print(f"(log: {lab.log_path}; press Ctrl-C to stop)", flush=True)
        lab.process.wait()
        print(f"JupyterLab exited with status {lab.process.returncode}:\n{lab.log_tail()}")
        return 1
    except LabError as error:
        print(f"plugmarket demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping JupyterLab and its kernels...", flush=True)
        return 0
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
