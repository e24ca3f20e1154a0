"""Search a generated registry of 10,000 and of 100,000 plugins through the registry client.

For each size the script writes a complete signed registry (index, one detail
file per plugin, signature) with the real encoder and signer, serves it from a
loopback HTTP server in the same run, and measures:

- **cold**: a new client with an empty home, from construction to the first
  search's result: fetch index and signature over loopback, verify the
  signature, decode, write the disk cache, build the search table, search
  (median of several runs, each with a fresh home);
- **warm**: searches on a client whose index is cached (median per query, and
  over all queries);
- **requests inside the TTL**: 100 searches plus 20 details on a client that
  has already seen those 20 details once, and the same from a second client
  sharing the home (the disk cache): the loopback server counts them.

Words are drawn uniformly from a 2,000-word vocabulary (each word in about
0.7% of plugins, like a typical search word in a real package index), plus
three popular words ("notebook", "data", "jupyter") found in 5-15% of them.

Run: ``.venv/bin/python benchmarks/bench_registry.py [--sizes 10000 100000] [--rounds N]``
Targets (issue 3): warm <= 2 ms on 10,000 and <= 20 ms on 100,000; cold <= 100 ms
on 10,000; zero requests inside the TTL.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support.httpserver: the loopback server the tests use

from cryptography.hazmat.primitives import serialization  # noqa: E402
from packaging.specifiers import SpecifierSet  # noqa: E402
from packaging.version import Version  # noqa: E402

from plugmarket._internal import registry_format as fmt  # noqa: E402
from plugmarket._internal.signing import Ed25519PrivateKey, sign  # noqa: E402
from plugmarket.registry import RegistryClient  # noqa: E402
from plugmarket.settings import RegistryConfig, Settings  # noqa: E402
from tests.support.httpserver import LoopbackServer  # noqa: E402

NOW = datetime(2030, 1, 1, tzinfo=UTC)
DOMAIN = (  # noqa: SIM905 (a word list reads better as text)
    "csv json yaml toml sql sqlite http rest graphql plot chart table grid map geo timer "
    "profile memory units convert markdown latex html image audio video widget theme lint "
    "format test git docker cloud s3 pandas numpy arrow parquet excel pdf xml regex diff "
    "log cache queue stats model train viz color spell search index query magic cell "
    "kernel"
).split()
POPULAR = {"notebook": 0.15, "data": 0.10, "jupyter": 0.05}  # share of plugins carrying them
CATEGORIES = ("data", "visualization", "io", "text", "science", "tools", "teaching", "web")


def vocabulary(rnd: random.Random, size: int = 2000) -> list[str]:
    words = set(DOMAIN)
    letters = "abcdefghijklmnopqrstuvwxyz"
    while len(words) < size:
        words.add("".join(rnd.choice(letters) for _ in range(rnd.randint(4, 9))))
    return sorted(words)


def generate(folder: Path, n: int, seed: int = 7) -> tuple[str, list[str]]:
    """Write a signed registry of ``n`` plugins; return (public key base64, ids)."""
    rnd = random.Random(seed)
    vocab = vocabulary(rnd)
    private = Ed25519PrivateKey.generate()
    (folder / fmt.DETAIL_DIR).mkdir(parents=True)
    entries: dict[str, fmt.IndexEntry] = {}
    for i in range(n):
        a, b = rnd.sample(vocab, 2)
        plugin_id = f"{a}-{b}-{i}"
        words = rnd.sample(vocab, 8) + [w for w, share in POPULAR.items() if rnd.random() < share]
        rnd.shuffle(words)
        summary = " ".join(words).capitalize()
        tags = tuple(rnd.sample(vocab, 3))
        category = (rnd.choice(CATEGORIES),)
        published = NOW - timedelta(minutes=rnd.randrange(500_000))
        version = fmt.VersionInfo(
            version=Version(f"1.{rnd.randrange(20)}.{rnd.randrange(10)}"),
            requires=(),
            host=SpecifierSet(">=1.0"),
            capabilities=("display",),
            channel="stable",
            rollout=None,
            yanked=False,
            yanked_reason="",
            published=published,
            artifact=fmt.Artifact(
                url=f"artifacts/{plugin_id}.zip",
                sha256=hashlib.sha256(plugin_id.encode()).hexdigest(),
                size=1000 + i % 5000,
            ),
            summary=summary,
        )
        detail = fmt.PluginDetail(
            id=plugin_id,
            name=f"{a.title()} {b}",
            summary=summary,
            description="",
            authors=("someone",),
            license="MIT",
            homepage="",
            categories=category,
            tags=tags,
            versions=(version,),
        )
        data = fmt.encode_detail(detail)
        (folder / fmt.detail_path(plugin_id)).write_bytes(data)
        entries[plugin_id] = fmt.IndexEntry(
            id=plugin_id,
            name=detail.name,
            summary=summary,
            latest=MappingProxyType({"stable": str(version.version)}),
            categories=category,
            tags=tags,
            rating=round(rnd.uniform(1, 5), 1) if rnd.random() < 0.6 else None,
            ratings_count=rnd.randrange(200),
            downloads=int(rnd.paretovariate(1.2) * 10),
            capabilities=("display",),
            updated=published,
            detail=fmt.Artifact(
                url=fmt.detail_path(plugin_id),
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            ),
        )
    index = fmt.Index(
        format=fmt.FORMAT,
        version=1,
        expires=NOW + timedelta(days=30),
        generated=NOW,
        plugins=MappingProxyType(dict(sorted(entries.items()))),
    )
    index_bytes = fmt.encode_index(index)
    (folder / fmt.SIGNATURE_FILE).write_bytes(sign(index_bytes, private))
    (folder / fmt.INDEX_FILE).write_bytes(index_bytes)
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode(), sorted(entries)


@dataclass
class Query:
    label: str
    text: str = ""
    sort: str = "relevance"
    category: str | None = None


def queries(ids: list[str]) -> list[Query]:
    return [
        Query("word (csv)", "csv"),
        Query("two words", "sql magic"),
        Query("exact id", ids[len(ids) // 2]),
        Query("word prefix (tab)", "tab"),
        Query("popular word (notebook)", "notebook"),
        Query("word + category", "plot", category="visualization"),
        Query("no match", "qqqqzz"),
        Query("empty, by downloads", "", sort="downloads"),
        Query("word, by rating", "chart", sort="rating"),
    ]


def run_size(n: int, rounds: int, work: Path) -> dict[str, Any]:
    folder = work / f"registry-{n}"
    t = time.perf_counter()
    pub, ids = generate(folder, n)
    generated_s = time.perf_counter() - t
    index_bytes = (folder / fmt.INDEX_FILE).read_bytes()
    size = len(index_bytes)
    decode: list[float] = []  # the part of "cold" spent in the format's strict decoder
    for _ in range(3):
        t = time.perf_counter()
        fmt.decode_index(index_bytes, registry="bench")
        decode.append(time.perf_counter() - t)
    server = LoopbackServer(folder).start()
    clock = {"now": NOW + timedelta(hours=1)}

    def settings(home: Path) -> Settings:
        config = RegistryConfig(url=server.url(), name=f"bench{n}", trusted_keys=(pub,))
        return Settings(home=home, registries=(config,), cache_ttl=300.0)

    def client(home: Path) -> RegistryClient:
        return RegistryClient(settings(home), now=lambda: clock["now"])

    try:
        # cold: fetch + verify + decode + cache + table + first search, fresh home each time
        cold: list[float] = []
        for r in range(max(3, rounds // 4) if n <= 10_000 else 3):
            home = work / f"home-{n}-cold-{r}"
            t = time.perf_counter()
            with client(home) as c:
                c.search("csv")
            cold.append(time.perf_counter() - t)
        # warm
        home = work / f"home-{n}"
        c = client(home)
        plan = queries(ids)
        per_query: dict[str, float] = {}
        all_times: list[float] = []
        for q in plan:
            c.search(q.text, sort=q.sort, category=q.category)  # first run per query not timed
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                c.search(q.text, sort=q.sort, category=q.category)
                times.append(time.perf_counter() - t)
            per_query[q.label] = statistics.median(times)
            all_times.extend(times)
        # requests inside the TTL
        detail_ids = ids[:: max(1, len(ids) // 20)][:20]
        for pid in detail_ids:
            c.details(pid)
        server.reset_counts()
        words = [q.text for q in plan]
        for i in range(100):
            c.search(words[i % len(words)])
        for pid in detail_ids:
            c.details(pid)
        same_client = server.count()
        clock["now"] += timedelta(seconds=60)
        with client(home) as second:  # shares the home: reads the disk cache
            for i in range(100):
                second.search(words[i % len(words)])
            for pid in detail_ids:
                second.details(pid)
        second_client = server.count() - same_client
        c.close()
    finally:
        server.stop()
    return {
        "plugins": n,
        "index_bytes": size,
        "generate_s": round(generated_s, 2),
        "cold_ms": [round(x * 1000, 1) for x in cold],
        "cold_median_ms": round(statistics.median(cold) * 1000, 1),
        "cold_of_which_decode_index_ms": round(statistics.median(decode) * 1000, 1),
        "warm_median_ms": round(statistics.median(all_times) * 1000, 3),
        "warm_worst_query_ms": round(max(per_query.values()) * 1000, 3),
        "warm_per_query_ms": {k: round(v * 1000, 3) for k, v in per_query.items()},
        "requests_in_ttl_same_client": same_client,
        "requests_in_ttl_second_client": second_client,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=30, help="timed runs per warm query")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/registry.json")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="plugmarket-bench-") as tmp:
        for n in args.sizes:
            results.append(run_size(n, args.rounds, Path(tmp)))
    targets: dict[int, tuple[float, float | None]] = {10_000: (2.0, 100.0), 100_000: (20.0, None)}
    print(
        f"{'plugins':>8} {'index':>8} {'warm med':>9} {'warm worst':>11} {'cold med':>9}"
        f" {'(decode)':>9} {'req in TTL':>11}  targets"
    )
    for r in results:
        warm_t, cold_t = targets.get(r["plugins"], (None, None))
        target = (f"warm <= {warm_t} ms" if warm_t else "") + (
            f", cold <= {cold_t} ms" if cold_t else ""
        )
        print(
            f"{r['plugins']:>8} {int(r['index_bytes']) / 1e6:>6.1f}MB {r['warm_median_ms']:>7.3f}ms"
            f" {r['warm_worst_query_ms']:>9.3f}ms {r['cold_median_ms']:>7.1f}ms"
            f" {r['cold_of_which_decode_index_ms']:>7.1f}ms"
            f" {r['requests_in_ttl_same_client']:>4} + {r['requests_in_ttl_second_client']:<4}"
            f"  {target}"
        )
        for label, ms in r["warm_per_query_ms"].items():
            print(f"{'':>10}{label:<26} {ms:>8.3f} ms")
    report = {
        "benchmark": "registry",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
