"""Get a small plugin live: plugmarket beside pip and uv, in one run, on loopback.

The same code is published twice and served from one server on 127.0.0.1: as a
signed plugmarket registry, and as wheels on a PEP 503 simple index. Each
round starts cold (a fresh home; for pip and uv a fresh target and no cache):

- one plugin: ``Marketplace.install`` in this process until the plugin is
  active, beside ``pip install --target`` and ``uv pip install --target`` in a
  subprocess followed by the import in this process;
- a plugin at the top of a 5-deep dependency chain, the same way;
- an update of an installed plugin in a live shell (the hot swap).

Run: ``.venv/bin/python benchmarks/bench_install.py [--rounds N] [--json PATH]``
Targets (issue 4): one plugin <= 10 ms, the chain <= 20 ms, a hot swap <= 20 ms
(medians); at least 6x faster than uv and 30x faster than pip.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from plugmarket import loader
from plugmarket._internal.signing import generate_keypair
from plugmarket.host import PlainHost
from plugmarket.marketplace import Marketplace
from plugmarket.publish import publish
from plugmarket.settings import RegistryConfig, Settings
from tests.support.simpleindex import Link, html_page
from tests.support.wheels import build_wheel, sha256_file

CHAIN = [f"bench-chain{i}" for i in range(1, 6)]  # chain1 requires chain2 ... requires chain5

BODY = """
def double(x):
    return 2 * x


def activate(ctx):
    ctx.log.debug("%s active", __name__)
"""


def module_name(plugin_id: str) -> str:
    return plugin_id.replace("-", "_")


def write_sources(root: Path) -> dict[tuple[str, str], Path]:
    """Plugin source folders: bench-tiny 1.0 and 1.1, and the chain."""
    made = {}
    specs = [("bench-tiny", "1.0", ""), ("bench-tiny", "1.1", "")]
    specs += [
        (pid, "1.0", CHAIN[i + 1] if i + 1 < len(CHAIN) else "") for i, pid in enumerate(CHAIN)
    ]
    for pid, version, requires in specs:
        pkg = root / f"{pid}-{version}" / module_name(pid)
        pkg.mkdir(parents=True)
        dep = f"import {module_name(requires)}\n" if requires else ""
        (pkg / "__init__.py").write_text(dep + BODY)
        reqs = f'requires = ["{requires}>=1"]\n' if requires else ""
        (pkg / "plugin.toml").write_text(f'id = "{pid}"\nversion = "{version}"\n{reqs}')
        made[(pid, version)] = pkg
    return made


def write_wheels(sources: dict[tuple[str, str], Path], www: Path) -> dict[str, bytes]:
    """The same code as wheels in ``www/packages``; returns the PEP 503 project pages."""
    packages = www / "packages"
    by_project: dict[str, list[Link]] = {}
    for (pid, version), pkg in sources.items():
        if pid == "bench-tiny" and version != "1.0":
            continue
        requires = [f"{r.split(chr(34))[1]}" for r in _toml_requires(pkg)]
        wheel = build_wheel(
            packages,
            pid,
            version,
            {f"{pkg.name}/__init__.py": (pkg / "__init__.py").read_text()},
            requires=requires,
        )
        by_project.setdefault(pid, []).append(
            Link(f"../../packages/{wheel.name}", sha256_file(wheel))
        )
    return {pid: html_page(links) for pid, links in by_project.items()}


def _toml_requires(pkg: Path) -> list[str]:
    for line in (pkg / "plugin.toml").read_text().splitlines():
        if line.startswith("requires"):
            return [line.split("[", 1)[1].rstrip("]")]
    return []


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def plugmarket_install(
    work: Path, settings: Settings, plugin_id: str, version: str | None = None
) -> tuple[float, Marketplace]:
    home = Path(tempfile.mkdtemp(dir=work, prefix="home-"))
    started = time.perf_counter()
    market = Marketplace(settings=settings.replace(home=home), host=PlainHost())
    market.install(plugin_id, version, yes=True)
    return time.perf_counter() - started, market


def reset_kernel() -> None:
    for plugin in reversed(list(loader.loaded().values())):
        loader.unload(plugin)


def tool_install(command: list[str], target: Path, top: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr}")
    sys.path.insert(0, str(target))
    try:
        importlib.import_module(top)
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m.startswith("bench_")]:
            del sys.modules[name]
    return time.perf_counter() - started


def pip_command(target: Path, index: str, project: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--index-url",
        index,
        "--no-cache-dir",
        "--disable-pip-version-check",
        project,
    ]


def uv_command(uv: str, target: Path, index: str, project: str) -> list[str]:
    return [
        uv,
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--index-url",
        index,
        "--no-cache",
        "--python",
        sys.executable,
        project,
    ]


def start_server(www: Path) -> tuple[subprocess.Popen[str], str]:
    """Serve ``www`` as a static host does (benchmarks/static_host.py), from another
    process: the server's work then competes with no side's interpreter, and every
    side waits for it the same way."""
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("static_host.py")), str(www)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    url = child.stdout.readline().strip()
    if not url:
        raise SystemExit("the benchmark's HTTP server did not start")
    return child, url


def run(rounds: int, work: Path, seed: int = 0) -> dict[str, float]:
    sources = write_sources(work / "src")
    www = work / "www"
    key, pub = generate_keypair(work / "bench")
    for pkg in sources.values():
        publish(pkg, www / "registry", key=key)
    for pid, page in write_wheels(sources, www).items():
        (www / "simple" / pid).mkdir(parents=True)
        (www / "simple" / pid / "index.html").write_bytes(page)
    server, url = start_server(www)
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    try:
        settings = Settings(
            registries=(RegistryConfig(url + "registry/", trusted_keys=(str(pub),)),),
        )
        index = url + "simple/"
        cases: dict[str, Callable[[int], float]] = {}

        def market_case(plugin_id: str) -> Callable[[int], float]:
            def once(i: int) -> float:
                elapsed, market = plugmarket_install(work, settings, plugin_id)
                market.close()  # its connection
                reset_kernel()
                return elapsed

            return once

        def tool_case(
            make: Callable[[Path, str, str], list[str]], project: str
        ) -> Callable[[int], float]:
            def once(i: int) -> float:
                target = Path(tempfile.mkdtemp(dir=work, prefix="target-"))
                return tool_install(make(target, index, project), target, module_name(project))

            return once

        def hot_swap(i: int) -> float:
            _, market = plugmarket_install(work, settings, "bench-tiny", "1.0")
            started = time.perf_counter()
            market.update("bench-tiny", yes=True)
            elapsed = time.perf_counter() - started
            assert loader.loaded()["bench-tiny"].version.public == "1.1"
            market.close()
            reset_kernel()
            return elapsed

        for name, project in (("one", "bench-tiny"), ("chain", CHAIN[0])):
            cases[f"plugmarket {name}"] = market_case(project)
            cases[f"uv {name}"] = tool_case(lambda t, i, p: uv_command(uv, t, i, p), project)
            cases[f"pip {name}"] = tool_case(pip_command, project)
        cases["plugmarket hot swap"] = hot_swap

        samples: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        # Setting up (and an earlier run's cleanup) leaves megabytes waiting to be
        # written; whichever side first flushed the disk would pay for all of it.
        os.sync()
        shuffle = random.Random(seed).shuffle
        for i in range(rounds):  # interleaved, so every side sees the same machine
            # In a new order each round: a case right after pip or uv (this process idle
            # for a third of a second) runs far slower than one right after plugmarket's
            # own work, so no side may always follow the same one.
            shuffle(order)
            for name in order:
                samples[name].append(cases[name](i))
        return {name: median_ms(values) for name, values in samples.items()}
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0, help="the order of the cases in each round")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/install.json"))
    args = parser.parse_args()
    load = [os.getloadavg()[0]]  # the machine may be shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="plugmarket-bench-") as tmp:
        result = run(args.rounds, Path(tmp), args.seed)
    load.append(os.getloadavg()[0])
    print(f"{os.cpu_count()} cores, load average {load[0]:.2f} before, {load[1]:.2f} after")
    print(f"{'':28}{'median':>12}")
    for name, ms in result.items():
        print(f"{name:28}{ms:>10.2f} ms")
    for case in ("one", "chain"):
        market = result[f"plugmarket {case}"]
        print(
            f"{case:6} uv/plugmarket {result[f'uv {case}'] / market:6.1f}x   "
            f"pip/plugmarket {result[f'pip {case}'] / market:6.1f}x"
        )
    print("targets: one <= 10 ms, chain <= 20 ms, hot swap <= 20 ms; >= 6x uv, >= 30x pip")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "median_ms": result,
        "rounds": args.rounds,
        "seed": args.seed,
        "cores": os.cpu_count(),
        "load": load,
    }
    args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
