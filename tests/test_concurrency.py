"""Four processes share one home and one registry on 127.0.0.1, each doing 25 random
install/update/uninstall/rollback operations; afterwards the home is consistent and
the audit log holds every operation that succeeded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from plugmarket.marketplace import Marketplace
from plugmarket.settings import RegistryConfig, Settings, demo_registry_path
from tests.support.httpserver import LoopbackServer

WORKER = textwrap.dedent(
    """
    import json, os, random, sys
    from pathlib import Path
    from plugmarket.errors import PlugmarketError
    from plugmarket.marketplace import Marketplace
    from plugmarket.settings import RegistryConfig, Settings

    home, url, key, seed, out = sys.argv[1:6]
    settings = Settings(home=Path(home), registries=(RegistryConfig(url, trusted_keys=(key,)),))
    market = Marketplace(settings=settings, live=False, surface="cli")
    rnd = random.Random(int(seed))
    plugins = ["units", "todo", "csv-preview", "json-viewer", "cell-timer"]
    done = []
    for _ in range(25):
        op = rnd.choice(["install", "install", "update", "uninstall", "rollback"])
        target = rnd.choice(plugins)
        try:
            if op == "install":
                version = "1.0.0" if target == "units" and rnd.random() < 0.5 else None
                market.install(target, version, yes=True)
            elif op == "update":
                market.update(target, yes=True)
            elif op == "uninstall":
                market.uninstall(target)
            else:
                market.rollback()
                target = ""
        except PlugmarketError as exc:
            continue  # refused (not installed, required by another, nothing to roll back)
        done.append([op, target])
    Path(out).write_text(json.dumps({"pid": os.getpid(), "done": done}))
    """
)


def test_four_processes_share_one_home(
    tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    www = tmp_path / "www"
    shutil.copytree(demo_registry_path(), www / "registry")
    server = http_server(www)
    url = server.url("registry/")
    key = str(demo_registry_path() / "demo.pub")
    home = tmp_path / "home"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(home),
                url,
                key,
                str(seed),
                str(tmp_path / f"{seed}.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    results = [json.loads((tmp_path / f"{seed}.json").read_text()) for seed in range(4)]
    assert sum(len(r["done"]) for r in results) > 20  # most operations could be done

    settings = Settings(home=home, registries=(RegistryConfig(url, trusted_keys=(key,)),))
    market = Marketplace(settings=settings, live=False)
    report = market.check()
    assert report.ok, str(report)
    current = market.installer.current()
    for plugin in current.plugins.values():  # every installed plugin's files are whole
        files = market.installer.files(plugin)
        assert files.manifest.id == plugin.id and str(files.manifest.version) == plugin.version
    audit = market.audit(limit=10_000)
    logged = [(e.pid, e.operation, e.subject) for e in audit if e.result == "ok"]
    for r in results:
        for op, target in r["done"]:
            entry = (r["pid"], op, target)
            assert entry in logged, f"{entry} succeeded but is not in the audit log"
            logged.remove(entry)
