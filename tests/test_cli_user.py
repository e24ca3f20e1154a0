"""The terminal user's verbs through the real console script (python -m plugmarket)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def plugmarket(
    home: Path, *args: str, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    # Configuration only from the test's own folders, never this machine's.
    config = config or home.parent / "no-config"
    env["IPYTHONDIR"] = str(config / "ipython")
    env["JUPYTER_CONFIG_DIR"] = str(config / "jupyter")
    return subprocess.run(
        [sys.executable, "-m", "plugmarket", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def ok(home: Path, *args: str) -> str:
    out = plugmarket(home, *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_search_info_versions_as_json(tmp_path: Path) -> None:
    hits = json.loads(ok(tmp_path, "search", "csv", "--json"))
    assert "csv-preview" in [h["id"] for h in hits]
    info = json.loads(ok(tmp_path, "info", "units", "--json"))
    assert info["detail"]["id"] == "units"
    versions = json.loads(ok(tmp_path, "versions", "csv-preview", "--json"))
    assert {v["version"]: v["yanked"] for v in versions} == {"1.0.0": False, "0.9.0": True}


def test_install_needs_consent_then_lists_locks_and_uninstalls(tmp_path: Path) -> None:
    home = tmp_path / "home"
    refused = plugmarket(home, "install", "csv-preview")
    assert refused.returncode == 1
    assert "add csv-preview 1.0.0" in refused.stdout and "--yes" in refused.stderr
    assert json.loads(ok(home, "list", "--json")) == []
    ok(home, "install", "csv-preview", "--yes")
    listed = {p["id"]: p for p in json.loads(ok(home, "list", "--json"))}
    assert set(listed) == {"csv-preview", "table-kit"}
    lock = tmp_path / "plugins.lock"
    ok(home, "lock", "--out", str(lock))
    other = tmp_path / "other-home"
    ok(other, "sync", str(lock), "--yes")
    again = {p["id"]: p["sha256"] for p in json.loads(ok(other, "list", "--json"))}
    assert again == {pid: p["sha256"] for pid, p in listed.items()}
    blocked = plugmarket(home, "uninstall", "table-kit")
    assert blocked.returncode == 1
    assert blocked.stderr.count("\n") == 1 and "csv-preview" in blocked.stderr
    ok(home, "uninstall", "csv-preview")
    assert json.loads(ok(home, "list", "--json")) == []
    audit = json.loads(ok(home, "audit", "--json"))
    assert [e["operation"] for e in audit][:2] == ["uninstall", "uninstall"]


def test_update_rollback_generations_grant_revoke_check(tmp_path: Path) -> None:
    ok(tmp_path, "install", "units", "1.0.0", "--yes")
    ok(tmp_path, "update", "units")
    assert json.loads(ok(tmp_path, "list", "--json"))[0]["version"] == "1.1.0"
    ok(tmp_path, "rollback")
    assert json.loads(ok(tmp_path, "list", "--json"))[0]["version"] == "1.0.0"
    assert len(ok(tmp_path, "generations").splitlines()) >= 3
    assert "env:LANG" in ok(tmp_path, "grant", "units", "env:LANG")
    assert "env:LANG" not in ok(tmp_path, "revoke", "units", "env:LANG")
    ok(tmp_path, "disable", "units")
    assert json.loads(ok(tmp_path, "list", "--json"))[0]["enabled"] is False
    ok(tmp_path, "check")
    stats = json.loads(ok(tmp_path, "stats", "units", "--json"))
    assert stats["installs"] == 1 and stats["updates"] == 1


def test_config_shows_the_settings_in_effect(tmp_path: Path) -> None:
    config = json.loads(ok(tmp_path, "config", "--json"))
    assert config["home"] == str(tmp_path)
    assert config["registries"][0]["name"] == "demo"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("install",), 2),
        (("frobnicate",), 2),
        (("info", "no-such-plugin"), 1),
        (("info", "../x"), 1),
    ],
)
def test_exit_codes(tmp_path: Path, args: tuple[str, ...], code: int) -> None:
    out = plugmarket(tmp_path, *args)
    assert out.returncode == code
    if code == 1:
        assert out.stderr.startswith("plugmarket: error: ") and out.stderr.count("\n") == 1
        assert "Traceback" not in out.stderr


def test_the_terminal_reads_ipython_and_jupyter_server_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "ipython" / "profile_default").mkdir(parents=True)
    (config / "jupyter").mkdir()
    (config / "ipython" / "profile_default" / "ipython_config.py").write_text(
        "c.Plugmarket.cache_ttl = 600\nc.Plugmarket.channel = 'beta'\n"
    )
    (config / "jupyter" / "jupyter_server_config.py").write_text(
        "c.ServerApp.port = 9999\nc.Plugmarket.cache_ttl = 900\n"
    )
    out = plugmarket(tmp_path / "home", "config", "--json", config=config)
    assert out.returncode == 0, out.stderr
    settings = json.loads(out.stdout)
    assert (settings["cache_ttl"], settings["channel"]) == (900, "beta")
    (config / "jupyter" / "jupyter_server_config.py").write_text("c.Plugmarket.cache_ttl = -1\n")
    bad = plugmarket(tmp_path / "home", "config", config=config)
    assert bad.returncode == 1 and "cache_ttl" in bad.stderr


def _at_a_terminal(home: Path, answer: str, *args: str) -> tuple[int, str]:
    """Run the console script on a pseudo-terminal (stdin, stdout and stderr, where
    ``input()`` writes its prompt), answering the consent prompt."""
    import pty

    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    env["IPYTHONDIR"] = str(home.parent / "no-config" / "ipython")
    env["JUPYTER_CONFIG_DIR"] = str(home.parent / "no-config" / "jupyter")
    with subprocess.Popen(
        [sys.executable, "-m", "plugmarket", "--home", str(home), *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
    ) as proc:
        os.close(child)
        seen = b""
        while b"[y/N]" not in seen:
            chunk = os.read(main, 4096)
            assert chunk, seen
            seen += chunk
        os.write(main, answer.encode() + b"\n")
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        code = proc.wait(timeout=60)
    os.close(main)
    return code, seen.decode(errors="replace")


def test_a_terminal_is_asked_and_the_plan_it_saw_is_applied(tmp_path: Path) -> None:
    code, shown = _at_a_terminal(tmp_path / "home", "n", "install", "csv-preview")
    assert code == 1 and "add csv-preview 1.0.0" in shown and "nothing changed" in shown
    assert "csv-preview" not in ok(tmp_path / "home", "list")
    code, shown = _at_a_terminal(tmp_path / "home", "y", "install", "csv-preview")
    assert code == 0, shown
    assert "csv-preview" in ok(tmp_path / "home", "list")


def test_config_shows_a_registry_url_without_its_token(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "ipython" / "profile_default").mkdir(parents=True)
    (config / "ipython" / "profile_default" / "ipython_config.py").write_text(
        'c.Plugmarket.registries = [{"url": "https://team:s3cr3t@plugins.example.org/r/"}]\n'
    )
    for args in (("config", "--json"), ("config",)):
        out = plugmarket(tmp_path / "home", *args, config=config)
        assert out.returncode == 0, out.stderr
        assert "s3cr3t" not in out.stdout and "https://plugins.example.org/r/" in out.stdout
