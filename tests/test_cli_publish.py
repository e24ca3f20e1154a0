"""The publisher's verbs end to end, through the real console script (``python -m plugmarket``)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plugmarket._internal.signing import load_public_key
from plugmarket._internal.trusted_index import TrustedIndex
from tests.test_publish import assert_schema_valid, write_module, write_package


def run(
    *args: str, cwd: Path, home: Path, check: int | None = 0
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    env["PLUGMARKET_HOME"] = str(home)
    proc = subprocess.run(
        [sys.executable, "-m", "plugmarket", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check is not None:
        assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def test_keygen_build_publish_yank_verify_then_tamper(tmp_path: Path, home: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()

    out = run("keygen", "keys/reg", cwd=work, home=home)
    assert "key id" in out.stdout
    key, pub = work / "keys" / "reg.key", work / "keys" / "reg.pub"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert run("keygen", "keys/reg", cwd=work, home=home, check=1).stderr.count("\n") == 1

    v1 = write_package(work / "v1", "csv-tools", "1.0")
    run("build", str(v1), "--out", "dist-a", cwd=work, home=home)
    run("build", str(v1), "--out", "dist-b", cwd=work, home=home)
    a = (work / "dist-a" / "csv-tools-1.0.zip").read_bytes()
    assert a == (work / "dist-b" / "csv-tools-1.0.zip").read_bytes()

    reg = ["--registry", "reg", "--key", "keys/reg.key"]
    run("publish", "dist-a/csv-tools-1.0.zip", *reg, cwd=work, home=home)
    run("publish", str(write_package(work / "v2", "csv-tools", "1.1")), *reg, cwd=work, home=home)
    beta = write_package(work / "v3", "csv-tools", "2.0b1")
    out = run(
        "publish", str(beta), *reg, "--channel", "beta", "--rollout", "0.2", cwd=work, home=home
    )
    assert "on beta (rollout 20%)" in out.stdout and "index version 3" in out.stdout
    # The global --registry before the verb names the folder too.
    out = run(
        "--registry",
        "reg",
        "yank",
        "csv-tools",
        "1.1",
        "--reason",
        "corrupts data",
        "--key",
        "keys/reg.key",
        cwd=work,
        home=home,
    )
    assert "yanked csv-tools 1.1" in out.stdout

    out = run("index", "verify", "--registry", "reg", "--key", "keys/reg.pub", cwd=work, home=home)
    assert "index version 4" in out.stdout and "3 versions, 3 artifacts" in out.stdout
    assert "all match" in out.stdout
    assert assert_schema_valid(work / "reg") == 2

    # A client trusting the key sees exactly what was published.
    now = datetime.now(UTC)
    t = TrustedIndex("reg", trusted_keys=[load_public_key(pub)], require_signature=True, now=now)
    root = work / "reg"
    index = t.update_index(
        (root / "index.json").read_bytes(), (root / "index.json.sig").read_bytes(), now=now
    )
    assert index.version == 4
    assert dict(index.plugins["csv-tools"].latest) == {"beta": "2.0b1", "stable": "1.0"}
    detail = t.verify_detail("csv-tools", (root / "plugins" / "csv-tools.json").read_bytes())
    assert [(str(v.version), v.channel, v.yanked) for v in detail.versions] == [
        ("1.0", "stable", False),
        ("1.1", "stable", True),
        ("2.0b1", "beta", False),
    ]

    # Tamper with an artifact: verify fails with exit 1 and one line on stderr.
    artifact = root / "artifacts" / "csv-tools" / "csv-tools-1.1.zip"
    data = bytearray(artifact.read_bytes())
    data[10] ^= 0xFF
    artifact.write_bytes(bytes(data))
    bad = run(
        "index",
        "verify",
        "--registry",
        "reg",
        "--key",
        "keys/reg.pub",
        cwd=work,
        home=home,
        check=1,
    )
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("plugmarket: error: registry reg: 1 problem(s)")
    assert "csv-tools-1.1.zip" in bad.stderr and "sha256" in bad.stderr


def test_index_sign_renews_and_verify_without_keys_reports_unchecked(
    tmp_path: Path, home: Path
) -> None:
    run("keygen", "reg", cwd=tmp_path, home=home)
    module = write_module(tmp_path / "src", "units", "0.1")
    run("publish", str(module), "--registry", "reg", cwd=tmp_path, home=home)
    assert not (tmp_path / "reg" / "index.json.sig").exists()
    out = run("index", "sign", "--registry", "reg", "--key", "reg.key", cwd=tmp_path, home=home)
    assert "signed index version 1" in out.stdout
    out = run(
        "index",
        "sign",
        "--registry",
        "reg",
        "--key",
        "reg.key",
        "--expires-days",
        "3",
        cwd=tmp_path,
        home=home,
    )
    assert "renewed and signed index version 2" in out.stdout
    out = run("index", "verify", "--registry", "reg", cwd=tmp_path, home=home)
    assert "signature not checked" in out.stdout
    pub_text = (tmp_path / "reg.pub").read_text().strip()
    out = run("index", "verify", "--registry", "reg", "--key", pub_text, cwd=tmp_path, home=home)
    assert "signed by" in out.stdout
    sig = json.loads((tmp_path / "reg" / "index.json.sig").read_text())
    assert len(sig["signatures"]) == 2  # the renewed index's, and the previous one's


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["publish"],
        ["publish", "x.py"],  # no --registry
        ["yank", "csv-tools", "1.0", "--registry", "reg"],  # no --reason
        ["index"],
        ["index", "sign", "--registry", "reg"],  # no --key
        ["publish", "x.py", "--registry", "reg", "--rollout", "lots"],
    ],
)
def test_bad_usage_exits_2(tmp_path: Path, home: Path, args: list[str]) -> None:
    proc = run(*args, cwd=tmp_path, home=home, check=2)
    assert "usage:" in proc.stderr


def test_a_refusal_is_one_line_and_exit_1(tmp_path: Path, home: Path) -> None:
    proc = run("publish", "missing.py", "--registry", "reg", cwd=tmp_path, home=home, check=1)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("plugmarket: error: ")
    assert not (tmp_path / "reg").exists()


def test_importing_the_cli_stays_cheap() -> None:
    code = (
        "import sys, plugmarket.cli; "
        "print(sorted(m for m in ('cryptography', 'httpx', 'plugmarket.publish', 'IPython', "
        "'jsonschema') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
