"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.demo import unload_all
from tests.support.flushes import Flushes, on_ext4, record_flushes
from tests.support.httpserver import LoopbackServer
from tests.support.registry import Clients, TestRegistry, make_registry
from tests.support.shell import real_shell


@pytest.fixture
def http_server() -> Iterator[Callable[..., LoopbackServer]]:
    """Start real HTTP servers on 127.0.0.1 serving a folder; stopped after the test."""
    servers: list[LoopbackServer] = []

    def start(root: Path, **kwargs: object) -> LoopbackServer:
        server = LoopbackServer(root, **kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PLUGMARKET_HOME, and no plugmarket variables leaking in from outside."""
    for name in [k for k in os.environ if k.startswith("PLUGMARKET_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("PLUGMARKET_HOME", str(path))
    # No configuration from this machine's own ~/.ipython or ~/.jupyter.
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter"))
    return path


@pytest.fixture
def linked_home(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fresh PLUGMARKET_HOME of ``home``, reached through a symbolic link to it."""
    link = tmp_path / "link"
    link.symlink_to(home, target_is_directory=True)
    monkeypatch.setenv("PLUGMARKET_HOME", str(link))
    return link


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real IPython InteractiveShell writing only under tmp_path, cleared after the test."""
    with real_shell(tmp_path, monkeypatch) as sh:
        yield sh


# --- registries: a signed registry folder, served on loopback, and clients of it ---------


@pytest.fixture
def registry(tmp_path: Path) -> TestRegistry:
    """A signed registry folder the test can publish into and re-sign."""
    return make_registry(tmp_path)


@pytest.fixture
def served(registry: TestRegistry, http_server: Callable[..., LoopbackServer]) -> LoopbackServer:
    """The registry folder served over HTTP on 127.0.0.1."""
    return http_server(registry.root)


@pytest.fixture
def clients() -> Iterator[Clients]:
    """Registry clients made in the test, all closed after it."""
    made = Clients()
    yield made
    made.close()


@pytest.fixture(autouse=True)
def _no_plugin_left_loaded() -> Iterator[None]:
    """Whatever a test loaded into this process is unloaded after it, dependents first."""
    yield
    unload_all()


@pytest.fixture
def ext4(tmp_path: Path) -> Path:
    """tmp_path, which the syncfs tests need on ext4 (a trusted file system)."""
    return on_ext4(tmp_path)


@pytest.fixture
def flushes(monkeypatch: pytest.MonkeyPatch) -> Flushes:
    """Every flush of the test's durable batches (tests/support/flushes.py)."""
    return record_flushes(monkeypatch)
