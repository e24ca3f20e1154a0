"""Binder: an environment built from binder/ alone opens the quickstart with plugmarket loaded.

The module's fixture does what repo2docker does with this repository, in a fresh
virtual environment instead of a container: it copies the repository as a clone
would have it (tracked files, and new files not ignored), runs ``pip install -r
binder/requirements.txt`` from the copy's root, then ``binder/postBuild`` with
the environment first on ``PATH``. Nothing else is installed before the checks
of the kernel and the server; the notebook test then adds nbval (a test tool)
and runs every notebook in ``notebooks/`` under it, in that environment.

Cost, measured on the shared 2-core machine with a warm pip cache: 44 s in
all; 22 s to build the environment, 7 s for the kernel and the two servers,
14 s to add nbval and run the five notebooks.
"""

from __future__ import annotations

import http.client
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from tests.test_kernel import Kernel, plain_environment

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = "/lab/tree/notebooks/01-quickstart.ipynb"
URL = re.compile(r"http://127\.0\.0\.1:(?P<port>\d+)/")
BUILD_TIMEOUT = 600  # seconds for pip to build the environment (a cold cache is slow)
SERVER_TIMEOUT = 60  # seconds for a Jupyter server to start

# Building the environment takes longer than the suite's default 120 s per test.
pytestmark = pytest.mark.timeout(1200)


@dataclass(frozen=True)
class BinderEnv:
    repo: Path  # the copy of the repository the environment was built from
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def environment(self, tmp_path: Path) -> dict[str, str]:
        """A user's environment in the image: its scripts first, nothing of this machine's."""
        env = plain_environment(tmp_path)
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(name, None)
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        return env


def copy_repository(source: Path, target: Path) -> None:
    """The files a clone of ``source`` would hold (plus new files that are not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        path = source / name
        if path.is_file():  # tracked files deleted in the work tree are gone from a clone too
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


def build(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def binder(tmp_path_factory: pytest.TempPathFactory) -> BinderEnv:
    work = tmp_path_factory.mktemp("binder")
    repo = work / "repo"
    copy_repository(ROOT, repo)
    venv = work / "venv"
    # A fresh environment: its own site-packages only (never --system-site-packages).
    build([sys.executable, "-m", "venv", str(venv)], work, dict(os.environ))
    env = BinderEnv(repo, venv).environment(work / "user")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # repo2docker, in the repository's root: `pip install -r binder/requirements.txt`, then
    # `binder/postBuild`, both with the environment's python first on PATH.
    build(["pip", "install", "--quiet", "-r", "binder/requirements.txt"], repo, env)
    build(["./binder/postBuild"], repo, env)
    return BinderEnv(repo, venv)


def test_binder_asks_for_a_python_plugmarket_supports() -> None:
    """What binder/runtime.txt asks repo2docker for, checked against pyproject.toml.

    The environment the other tests build uses the Python running the tests (a
    developer's may be newer than Binder's); this checks binder/ itself.
    """
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    # repo2docker reads "python-X.Y" (a minor version, not a patch release).
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    version = runtime.removeprefix("python-")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert version in SpecifierSet(project["requires-python"])


def test_every_kernel_of_the_environment_has_plugmarket_loaded(
    binder: BinderEnv, tmp_path: Path
) -> None:
    kernel = Kernel(binder.python, binder.environment(tmp_path), tmp_path / "spec")
    try:
        where = kernel.run(
            "import json, sys, plugmarket\n"
            "print(json.dumps({'prefix': sys.prefix, 'package': plugmarket.__file__,"
            " 'loaded': sorted(get_ipython().extension_manager.loaded)}))"
        ).value()
        assert Path(where["prefix"]) == binder.venv
        # The installed package, not the repository's source folder.
        assert Path(where["package"]).is_relative_to(binder.venv), where
        assert "plugmarket" in where["loaded"]
        # No %load_ext anywhere: the magics are there from the first cell.
        listing = kernel.run("%plugin list")
        assert listing.ok and not listing.stderr, listing.describe()
        assert listing.result["text/plain"].startswith("generation 0: 0 plugin(s)")
        install = kernel.run("%plugin install units --yes")
        assert install.ok and not install.stderr, install.describe()
        assert kernel.run("%units 3 km to mi").result["text/plain"] == "1.86411 mi"
    finally:
        kernel.close()


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, str | None, str]:
    """GET without following redirects: status, Location, body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SERVER_TIMEOUT)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Location"), response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("app", ["lab", "server"])
def test_the_server_opens_the_quickstart_notebook_in_jupyterlab(
    binder: BinderEnv, tmp_path: Path, app: str
) -> None:
    """`jupyter lab` (repo2docker's own launch) and `jupyter server` (what a hub starts)."""
    token = "binder-test-token"
    command = [
        str(binder.venv / "bin" / "jupyter"),
        app,
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",  # the server takes a free port and prints it
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={binder.repo}",
        "--LabApp.news_url=None",
    ]
    proc = subprocess.Popen(
        command,
        env=binder.environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    log: list[str] = []

    def next_line(timeout: float) -> str | None:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            return None
        assert line is not None, f"jupyter {app} exited:\n{''.join(log)}"
        log.append(line)
        return line

    try:
        # It prints its address ("... is running at: URL") just before it listens.
        port = None
        while port is None:
            found = URL.search(next_line(SERVER_TIMEOUT) or "")
            port = int(found["port"]) if found else None
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:  # refused until the server's loop has bound the port
            try:
                status, _, _ = get(port, "/api/status", {})
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "".join(log)
                next_line(0.1)  # wait on the server's output (and see it exit)
        assert status == 403  # ready, and it wants the token
        auth = {"Authorization": f"token {token}"}
        status, location, _ = get(port, "/", auth)
        assert status == 302 and location is not None, "".join(log)
        assert location.partition("?")[0] == QUICKSTART  # the request's query string follows
        status, _, page = get(port, QUICKSTART, auth)
        assert status == 200 and "JupyterLab" in page
        # The notebook it opens is in the image.
        status, _, _ = get(port, "/api/contents/notebooks/01-quickstart.ipynb", auth)
        assert status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=SERVER_TIMEOUT)
        reader.join(timeout=SERVER_TIMEOUT)  # it ends at the closed pipe's end
        assert proc.stderr is not None
        proc.stderr.close()


def test_the_notebooks_pass_nbval_in_the_binder_environment(
    binder: BinderEnv, tmp_path: Path
) -> None:
    notebooks = sorted((binder.repo / "notebooks").glob("*.ipynb"))
    assert binder.repo / "notebooks" / "01-quickstart.ipynb" in notebooks
    env = binder.environment(tmp_path)
    # The runner, added after the checks above: nbval (and the suite's pytest-timeout,
    # named in pyproject.toml's pytest settings).
    build(["pip", "install", "--quiet", "nbval", "pytest-timeout"], binder.repo, env)
    command = [
        binder.python,
        "-m",
        "pytest",
        *(str(path.relative_to(binder.repo)) for path in notebooks),
        "--nbval",
        "--nbval-current-env",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    sanitizers = binder.repo / "notebooks" / "nbval-sanitize.cfg"
    if sanitizers.exists():
        command += ["--nbval-sanitize-with", str(sanitizers)]
    done = subprocess.run(
        command, cwd=binder.repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, summary
