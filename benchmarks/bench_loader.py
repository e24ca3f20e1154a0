"""Load one small plugin through plugmarket and through a plain import, side by side.

The plugin is a 3-module package of about 50 lines each. Both sides run with
their bytecode already cached (plugmarket's own cache; ``__pycache__`` for
the plain import, written by ``py_compile`` so that it is there even under
``PYTHONDONTWRITEBYTECODE``), in one process, alternating, and the script
prints medians and the ratio, with the machine's load average (on a shared
machine the figures move with it). Then it loads 10 distinct copies and reports the
growth of the process's resident memory.

Run: ``.venv/bin/python benchmarks/bench_loader.py [--rounds N] [--json PATH]``
Targets (issue 2): load <= 150 us median, <= 5x a plain import; 10 plugins <= 1 MB.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import itertools
import json
import os
import py_compile
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from plugmarket.host import PlainHost
from plugmarket.loader import load, unload
from plugmarket.settings import Settings
from plugmarket.sources import Source

MODULE = '''
"""Module {n} of the benchmark plugin."""

import math

CONSTANT_{n} = {n}


class Thing{n}:
    def __init__(self, value):
        self.value = value

    def scaled(self, factor):
        return Thing{n}(self.value * factor)

    def __repr__(self):
        return f"Thing{n}({{self.value!r}})"


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def spread(values):
    values = list(values)
    if not values:
        return 0.0
    centre = mean(values)
    return math.sqrt(sum((v - centre) ** 2 for v in values) / len(values))


def describe(values):
    values = list(values)
    return {{
        "n": len(values),
        "mean": mean(values),
        "spread": spread(values),
        "min": min(values, default=None),
        "max": max(values, default=None),
    }}


def table(rows):
    return "\\n".join(" | ".join(str(c) for c in row) for row in rows)


def first_word(text):
    for word in text.split():
        return word
    return ""
'''

INIT = """
from . import stats_a, stats_b


def activate(ctx):
    ctx.log.debug("benchmark plugin active: %s", stats_a.CONSTANT_1 + stats_b.CONSTANT_2)


def deactivate(ctx):
    pass
"""


def write_package(folder: Path, name: str, plugin_id: str) -> Path:
    pkg = folder / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(MODULE.format(n=0) + INIT)
    (pkg / "stats_a.py").write_text(MODULE.format(n=1))
    (pkg / "stats_b.py").write_text(MODULE.format(n=2))
    (pkg / "plugin.toml").write_text(f'id = "{plugin_id}"\nversion = "1.0.0"\n')
    return pkg


def plain_import(name: str) -> float:
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]
    started = time.perf_counter()
    importlib.import_module(name)
    return time.perf_counter() - started


def plugmarket_load(source: Source, settings: Settings, host: PlainHost) -> float:
    started = time.perf_counter()
    plugin = load(source, settings=settings, host=host)
    elapsed = time.perf_counter() - started
    unload(plugin)
    return elapsed


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_child(work: Path, trace: bool) -> None:
    """In a fresh process: the memory 10 loaded plugins keep, after one warm-up load
    has paid for plugmarket's own imports: the growth of the process's resident
    memory, or (``trace``) of the Python heap as tracemalloc sees it. Not both in one
    run: tracemalloc's own record of every allocation grows the resident memory by
    more than the plugins do (about 640 KiB here)."""
    settings = Settings(home=work / "home")
    host = PlainHost()
    load(
        Source.local(write_package(work / "warm", "warm_up", "warm-up")),
        settings=settings,
        host=host,
    )
    packages = [write_package(work / f"p{i}", f"many_{i}", f"many-{i}") for i in range(10)]
    gc.collect()
    if trace:
        tracemalloc.start()
    before = rss_kib()
    kept = [load(Source.local(p), settings=settings, host=host) for p in packages]
    gc.collect()
    after = rss_kib()
    if trace:
        traced, _ = tracemalloc.get_traced_memory()
        print(json.dumps({"traced_kib": traced // 1024, "n": len(kept)}))
    else:
        print(json.dumps({"rss_kib": after - before, "n": len(kept)}))


def hook_child(work: Path, with_plugins: bool) -> None:
    """In a fresh process: host code's open()+close() and an import, with or without
    the gate's hook and 10 loaded plugins."""
    target = work / "host-file.txt"
    target.write_text("x")
    if with_plugins:
        settings = Settings(home=work / "home")
        for i in range(10):
            pkg = write_package(work / f"h{i}", f"hooked_{i}", f"hooked-{i}")
            load(Source.local(pkg), settings=settings, host=PlainHost())

    def host_open() -> float:
        started = time.perf_counter()
        open(target).close()
        return time.perf_counter() - started

    for _ in range(200):
        host_open()
    samples = [host_open() for _ in range(5000)]
    print(json.dumps({"open_us": statistics.median(samples) * 1e6}))


def _child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--memory-child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--hook-child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--with-plugins", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.trace)
        return
    if args.hook_child:
        hook_child(args.hook_child, args.with_plugins)
        return

    work = Path(tempfile.mkdtemp(prefix="plugmarket-bench-"))
    settings = Settings(home=work / "home")
    host = PlainHost()
    plain_root = work / "plain"
    plain_pkg = write_package(plain_root, "bench_plain", "bench-plain")
    for module in plain_pkg.glob("*.py"):
        # Without this, PYTHONDONTWRITEBYTECODE=1 makes every plain import compile its
        # three modules (about 0.9 ms), which also evicts plugmarket's side from the caches.
        py_compile.compile(str(module), doraise=True)
    sys.path.insert(0, str(plain_root))
    source = Source.local(write_package(work / "plugin", "bench_plugin", "bench-plugin"))

    loadavg = [os.getloadavg()[0]]  # the machine may be shared: say how busy it was
    # Warm both caches (bytecode on disk, in memory), for at least 0.25 s: files younger
    # than a clock tick are read again at every load, as a just-edited plugin must be.
    warm_until = time.perf_counter() + 0.25
    for i in itertools.count():
        plain_import("bench_plain")
        plugmarket_load(source, settings, host)
        if i >= 50 and time.perf_counter() > warm_until:
            break
    plain, market = [], []
    for _ in range(args.rounds):
        plain.append(plain_import("bench_plain"))
        market.append(plugmarket_load(source, settings, host))
    loadavg.append(os.getloadavg()[0])
    plain_us = statistics.median(plain) * 1e6
    market_us = statistics.median(market) * 1e6

    memory = _child("--memory-child", str(work / "memory"))
    memory.update(_child("--memory-child", str(work / "memory-traced"), "--trace"))
    growth_kib = int(memory["rss_kib"])
    (work / "bare").mkdir()
    (work / "hooked").mkdir()
    bare = _child("--hook-child", str(work / "bare"))["open_us"]
    hooked = _child("--hook-child", str(work / "hooked"), "--with-plugins")["open_us"]

    result = {
        "plain_import_median_us": round(plain_us, 1),
        "plugmarket_load_median_us": round(market_us, 1),
        "ratio": round(market_us / plain_us, 2),
        "rss_growth_10_plugins_kib": growth_kib,
        "python_heap_10_plugins_kib": memory["traced_kib"],
        "host_open_us_no_hook": round(bare, 2),
        "host_open_us_hook_10_plugins": round(hooked, 2),
        "rounds": args.rounds,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
        "load": loadavg,
    }
    print(f"{os.cpu_count()} cores, load average {loadavg[0]:.2f} before, {loadavg[1]:.2f} after")
    print(f"{'':32}{'median':>12}")
    print(f"{'plain importlib import':32}{plain_us:>10.1f} us")
    print(f"{'plugmarket load (+activate)':32}{market_us:>10.1f} us")
    print(f"{'ratio':32}{result['ratio']:>11.2f}x   (target <= 5x, <= 150 us)")
    print(f"{'RSS growth, 10 plugins':32}{growth_kib:>9} KiB   (target <= 1024 KiB)")
    print(f"{'  of which Python heap':32}{memory['traced_kib']:>9} KiB")
    print(f"{'host open()+close(), no hook':32}{bare:>10.2f} us")
    print(f"{'  with hook, 10 plugins loaded':32}{hooked:>10.2f} us   ({hooked / bare:.2f}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
