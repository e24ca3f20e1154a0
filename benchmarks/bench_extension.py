"""``%load_ext plugmarket`` beside ``%load_ext autoreload``, each in a fresh interpreter.

What a user pays when a kernel starts with plugmarket loaded. Every round is a
new Python process: it creates an IPython ``InteractiveShell`` (not timed),
then times only ``shell.run_line_magic("load_ext", NAME)``, which imports the
extension's module and calls its ``load_ipython_extension``, and reports which
heavy modules are in ``sys.modules`` afterwards. Rounds alternate between
plugmarket and IPython's own ``autoreload``, so both see the same machine;
plugmarket's home is a new empty folder each round, and no configuration from
this machine's ``~/.ipython`` or ``~/.jupyter`` is read.

Run: ``.venv/bin/python benchmarks/bench_extension.py [--rounds N] [--json PATH]``
Targets (issue 5): loading plugmarket costs <= 10 ms and <= 1x autoreload (medians);
httpx, cryptography, ipywidgets, jupyter_server and resolvelib are imported only
when a verb needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXTENSIONS = ("plugmarket", "autoreload")
# Imported only when a %plugin verb needs them (the registry client, signatures,
# the panel, the server extension, the resolver).
HEAVY = ("httpx", "cryptography", "ipywidgets", "jupyter_server", "resolvelib")
WARM_UP = 2  # rounds per side whose figures are dropped (cold file cache)


def child(name: str) -> None:
    """In a fresh process: create a shell, then time loading one extension."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    modules_before = set(sys.modules)
    started = time.perf_counter()
    shell.run_line_magic("load_ext", name)
    elapsed = time.perf_counter() - started
    # IPython's own extensions are recorded under their full name.
    if not {name, f"IPython.extensions.{name}"} & shell.extension_manager.loaded:
        raise SystemExit(f"the {name} extension did not load")
    new = set(sys.modules) - modules_before
    # Then the first cell, whose pre_run_cell hooks the extension may have added
    # (plugmarket follows the home's generation there; autoreload checks modules).
    started = time.perf_counter()
    shell.run_cell("pass", store_history=True)
    first_cell = time.perf_counter() - started
    after_cell = set(sys.modules) - modules_before
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "new_modules": len(new),
                "heavy": sorted({m.split(".")[0] for m in new} & set(HEAVY)),
                "first_cell_seconds": first_cell,
                "heavy_after_first_cell": sorted(
                    {m.split(".")[0] for m in after_cell} & set(HEAVY)
                ),
            }
        )
    )


def child_env(work: Path) -> dict[str, str]:
    """This process's environment with a new empty plugmarket home and no user configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGMARKET_")}
    env["PLUGMARKET_HOME"] = tempfile.mkdtemp(dir=work, prefix="home-")
    env["IPYTHONDIR"] = str(work / "ipython")
    env["JUPYTER_CONFIG_DIR"] = str(work / "jupyter")
    return env


def one_round(name: str, work: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", name],
        capture_output=True,
        text=True,
        env=child_env(work),
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"loading {name} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def run(rounds: int, work: Path) -> dict[str, dict[str, object]]:
    samples: dict[str, list[dict[str, object]]] = {name: [] for name in EXTENSIONS}
    for i in range(WARM_UP + rounds):
        for name in EXTENSIONS if i % 2 == 0 else reversed(EXTENSIONS):
            sample = one_round(name, work)
            if i >= WARM_UP:
                samples[name].append(sample)
    result: dict[str, dict[str, object]] = {}
    for name, runs in samples.items():
        ms = sorted(float(r["seconds"]) * 1000 for r in runs)  # type: ignore[arg-type]
        heavy = sorted({m for r in runs for m in r["heavy"]})  # type: ignore[attr-defined]
        result[name] = {
            "median_ms": round(statistics.median(ms), 3),
            "min_ms": round(ms[0], 3),
            "max_ms": round(ms[-1], 3),
            "new_modules_median": round(statistics.median(int(r["new_modules"]) for r in runs)),  # type: ignore[call-overload]
            "heavy_after_load": heavy,
            "first_cell_median_ms": round(
                statistics.median(float(r["first_cell_seconds"]) * 1000 for r in runs),  # type: ignore[arg-type]
                3,
            ),
            "heavy_after_first_cell": sorted(
                {m for r in runs for m in r["heavy_after_first_cell"]}  # type: ignore[attr-defined]
            ),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds per extension")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/extension.json"))
    parser.add_argument("--child", choices=EXTENSIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    load = [os.getloadavg()[0]]  # the machine may be shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="plugmarket-bench-") as tmp:
        result = run(args.rounds, Path(tmp))
    load.append(os.getloadavg()[0])
    market, autoreload = result["plugmarket"], result["autoreload"]
    ratio = float(market["median_ms"]) / float(autoreload["median_ms"])  # type: ignore[arg-type]
    print(f"{os.cpu_count()} cores, load average {load[0]:.2f} before, {load[1]:.2f} after")
    print(f"{args.rounds} rounds each, a fresh interpreter per round, alternating")
    print(f"{'%load_ext':14}{'median':>11}{'min':>11}{'max':>11}{'new modules':>13}  heavy")
    for name, row in result.items():
        heavy = ", ".join(row["heavy_after_load"]) or "none"  # type: ignore[arg-type]
        print(
            f"{name:14}{row['median_ms']:>8.2f} ms{row['min_ms']:>8.2f} ms"
            f"{row['max_ms']:>8.2f} ms{row['new_modules_median']:>13}  {heavy}"
        )
    print(f"ratio plugmarket/autoreload {ratio:.2f}x   (targets: <= 1x, <= 10 ms, no heavy module)")
    print("then the first cell (pass), with the hooks each extension added:")
    for name, row in result.items():
        heavy = ", ".join(row["heavy_after_first_cell"]) or "none"  # type: ignore[arg-type]
        print(f"{name:14}{row['first_cell_median_ms']:>8.2f} ms  heavy: {heavy}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "median_ms": {name: row["median_ms"] for name, row in result.items()},
        "ratio": round(ratio, 3),
        "detail": result,
        "heavy_modules_checked": list(HEAVY),
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "load": load,
        "python": sys.version.split()[0],
    }
    args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
