"""Cold start and memory of the runtime in fresh processes: import + ``Ranker.load`` + first
``rank`` of N candidates, then a few warm ranks; peak RSS from ``getrusage``.

Each run is a new Python process that imports only ``edgerank.runtime`` (what a kiosk app does),
with the page cache warm (the artifact was read before). Wall and CPU time are both reported. Candidates are a real Home Depot dev
query's judged products topped up with other products from the file, when ``--data`` exists.

    python scripts/runtime_cold_start.py ARTIFACT [--candidates 50] [--runs 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "homedepot" / "dev.csv"


def candidates(data: Path, n: int) -> tuple[str, list[dict]]:
    if not data.exists():
        return "cordless drill", [{"id": str(i), "title": f"Product {i} cordless drill kit 18V"} for i in range(n)]
    with data.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    query = rows[0]["query"]
    chosen = [r for r in rows if r["query"] == query]
    seen = {r["product_id"] for r in chosen}
    for r in rows:  # top up with the rest of the catalog, in file order
        if len(chosen) >= n:
            break
        if r["product_id"] not in seen:
            seen.add(r["product_id"])
            chosen.append(r)
    return query, [
        {"id": r["product_id"], "title": r["product_title"], "description": r["product_description"]}
        for r in chosen[:n]
    ]


def child(artifact: str, threads: int | None, query: str, products: list[dict]) -> dict:
    import resource

    t0, c0 = time.perf_counter(), time.process_time()
    from edgerank.runtime import Ranker

    t1, c1 = time.perf_counter(), time.process_time()
    ranker = Ranker.load(artifact, threads=threads)
    t2 = time.perf_counter()
    ranker.rank(query, products)
    t3, c3 = time.perf_counter(), time.process_time()
    warm = []
    for _ in range(10):
        s = time.perf_counter()
        ranker.rank(query, products)
        warm.append(time.perf_counter() - s)
    return {
        "import_ms": (t1 - t0) * 1e3,
        "load_ms": (t2 - t1) * 1e3,
        "first_rank_ms": (t3 - t2) * 1e3,
        "cold_start_ms": (t3 - t1) * 1e3,
        "cold_start_with_import_ms": (t3 - t0) * 1e3,
        # CPU seconds of this process (all its threads): on a shared, loaded machine wall time
        # stretches with the load, CPU time much less so
        "import_cpu_ms": (c1 - c0) * 1e3,
        "cold_start_cpu_ms": (c3 - c1) * 1e3,
        "warm_p50_ms": statistics.median(warm) * 1e3,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "heavy_modules": sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "pandas"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact")
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(args.artifact, args.threads, spec["query"], spec["products"])))
        return
    query, products = candidates(args.data, args.candidates)
    spec = json.dumps({"query": query, "products": products})
    cmd = [sys.executable, __file__, args.artifact, "--child", spec] + (
        ["--threads", str(args.threads)] if args.threads else []
    )
    runs = [
        json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout) for _ in range(args.runs)
    ]
    summary = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0] if k != "heavy_modules"}
    summary["heavy_modules"] = runs[0]["heavy_modules"]
    print(
        json.dumps(
            {
                "artifact": args.artifact,
                "query": query,
                "candidates": len(products),
                "runs": args.runs,
                "threads": args.threads,
                "median": summary,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
