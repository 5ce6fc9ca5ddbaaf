"""Catalog students on this machine: index build time and size per 10k products, ranking N candidates
with a warm index, whole-catalog search, and quality against the teacher and BM25.

Writes ``bench/results/catalog-<name>.md`` (and ``.json``). ``edgerank bench`` already puts catalog
students in its table (ranking from a warm index of the data file's catalog, next to the
cross-encoders); this script adds what only towers do: whole-catalog search over the full Home Depot
catalog and the recall of its two-stage search. The candidate lists, timing loop, machine
description and metrics are the bench's own.

- Index: the product tower over every distinct product of ``--catalog`` (default Home Depot train +
  dev, ~45k products), timed end to end (tokenizing, ONNX Runtime, writing, checksums).
- Ranking: each sampled dev query's judged products topped up to N from the catalog (the bench's
  seeded lists), every product's state read from the index; the query tower and the interaction
  are what is timed.
- Search: ``Ranker.search(query, top_k=10)`` over the whole index; for late interaction also the
  exhaustive exact MaxSim, and the recall@10 of the two-stage search against it.
- Quality: nDCG@10 on every dev query with two distinct labels (its judged list), next to BM25 and,
  with ``--teacher``, the torch teacher: the share of its gain over BM25 kept.

    python scripts/bench_catalog.py --artifact runs/hd-li-int8 --teacher runs/hd-teacher --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "homedepot"
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def catalog_of(paths: list[Path]) -> list[dict]:
    """Every distinct product of ``paths`` (first row wins), as index records."""
    import pandas as pd

    from edgerank.bench.catalog import catalog_products
    from edgerank.data import read_catalog

    return catalog_products(pd.concat([read_catalog(p)[0] for p in paths]))


def bench_artifact(artifact: Path, index: Path, lists, judged, records, args) -> dict:
    from edgerank.bench.timing import Latency, time_calls
    from edgerank.metrics import evaluate
    from edgerank.runtime import Ranker

    ranker = Ranker.load(artifact, threads=args.threads, index=index)
    calls = [(lambda q=q, p=p: ranker.rank(q, p)) for q, p in lists]
    seconds, results = time_calls(calls, warmup=args.warmup, repeat=args.repeat)
    cached = sum(r.cached for r in results) / sum(r.candidates for r in results)
    out = {"rank": {**Latency.from_seconds(seconds, args.candidates).__dict__, "cached_share": round(cached, 4)}}
    queries = [q for q, _ in lists]
    seconds, found = time_calls([(lambda q=q: ranker.search(q, 10, depth=args.depth)) for q in queries],
                                warmup=args.warmup,
                                repeat=args.repeat)
    out["search"] = {**Latency.from_seconds(seconds, len(ranker.index)).__dict__, "depth": args.depth}
    if ranker.artifact.kind == "late-interaction":
        seconds, exact = time_calls([(lambda q=q: ranker.search(q, 10, depth=None)) for q in queries], warmup=1,
                                    repeat=1)
        out["search_exhaustive"] = Latency.from_seconds(seconds, len(ranker.index)).__dict__
        out["search"]["recall@10_vs_exhaustive"] = float(np.mean(
            [len(set(a.ids) & set(b.ids)) / 10 for a, b in zip(found, exact)]))
    scores = []
    for g in judged:
        result = {item.id: item.score for item in ranker.rank(g.query, records[g.query_id])}
        scores.append(np.array([result[p] for p in g.product_ids]))
    out["quality"] = evaluate(judged, scores)
    out["artifact"] = {"path": str(artifact), "kind": ranker.artifact.kind, "precision": ranker.artifact.manifest["precision"],
                       "dim": ranker.artifact.manifest["towers"]["dim"], "bytes": sum(
                           ranker.artifact.file(f).stat().st_size for f in ranker.artifact.manifest["files"])}
    return out


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# Catalog students — {report['date']}", "",
             f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, load average {m['load_average']}; "
             f"onnxruntime {m['libraries'].get('onnxruntime')}, numpy {m['libraries'].get('numpy')}", "",
             f"Command: `{report['command']}`", "",
             f"Ranking: {report['queries']} Home Depot dev queries x {report['candidates']} candidates "
             f"(judged + seeded fill-ins), {report['threads']} thread(s), states from the warm index. "
             f"Search: top 10 of the whole index. Quality: nDCG@10 on {report['judged_queries']} judged dev lists.", ""]
    teacher = f"teacher (torch) {report['teacher']['ndcg@10']:.4f}, " if "teacher" in report else ""
    lines += [f"nDCG@10 on the judged lists: {teacher}BM25 {report['bm25']['ndcg@10']:.4f}.", ""]
    lines += ["| artifact | kind | precision | dim | rank N p50 / p95 ms | search p50 / p95 ms | exhaustive search p50 ms "
              "| recall@10 two-stage | index s / 10k | index MB / 10k | nDCG@10 | gain kept |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["artifacts"].items():
        ex = f"{r['search_exhaustive']['p50_ms']:.1f}" if "search_exhaustive" in r else "-"
        recall = r["search"].get("recall@10_vs_exhaustive")
        kept = f"{r['gain_kept']:.1%}" if "gain_kept" in r else "-"
        lines.append(
            f"| {name} | {r['artifact']['kind']} | {r['artifact']['precision']} | {r['artifact']['dim']} "
            f"| {r['rank']['p50_ms']:.1f} / {r['rank']['p95_ms']:.1f} | {r['search']['p50_ms']:.1f} / {r['search']['p95_ms']:.1f} "
            f"| {ex} | {'-' if recall is None else f'{recall:.3f}'} "
            f"| {r['index']['build_s_per_10k']:.1f} | {r['index']['mb_per_10k']:.1f} | {r['quality']['ndcg@10']:.4f} "
            f"| {kept} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", action="append", required=True, type=Path, help="Tower artifact (repeatable).")
    parser.add_argument("--catalog", action="append", type=Path, help="Products to index (default HD train + dev).")
    parser.add_argument("--data", type=Path, default=DATA / "dev.csv", help="Judged queries (default HD dev).")
    parser.add_argument("--teacher", type=Path, help="Torch cross-encoder teacher folder, for the gain kept.")
    parser.add_argument("--max-length", type=int, default=64, help="Teacher tokens per pair.")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--index-dir", type=Path, help="Keep the indexes in this folder (default: a temporary one).")
    parser.add_argument("--name", default=time.strftime("%Y%m%d"), help="Results file: catalog-<name>.md")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="Where the results go (default bench/results).")
    args = parser.parse_args()

    from edgerank.bench.candidates import build_candidates, product_records, sample_queries
    from edgerank.bench.catalog import index_catalog
    from edgerank.bench.machine import describe_machine
    from edgerank.data import evaluable, group_queries, read_table
    from edgerank.metrics import BM25Baseline, evaluate, gain_kept

    df, _ = read_table(args.data)
    groups = group_queries(df)
    sample = sample_queries(groups, args.queries)
    lists = [(g.query, product_records(df, g)) for g in build_candidates(df, sample, [args.candidates])[args.candidates]]
    judged = evaluable(groups)
    records = {g.query_id: product_records(df, g) for g in judged}
    products = catalog_of(args.catalog or [DATA / "train.csv", DATA / "dev.csv"])
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": describe_machine(),
              "command": "python scripts/bench_catalog.py " + " ".join(sys.argv[1:]), "queries": len(lists),
              "candidates": args.candidates, "threads": args.threads, "judged_queries": len(judged),
              "bm25": evaluate(judged, BM25Baseline().score(judged)), "artifacts": {}}
    if args.teacher:
        from edgerank.modeling import load_cross_encoder, load_tokenizer, score_groups

        teacher = load_cross_encoder(args.teacher, require_head=True)
        report["teacher"] = evaluate(judged, score_groups(teacher, load_tokenizer(args.teacher), judged,
                                                          max_length=args.max_length))
    with tempfile.TemporaryDirectory(prefix="edgerank-catalog-") as tmp:
        index_dir = args.index_dir or Path(tmp)
        for artifact in args.artifact:
            index = index_dir / f"{artifact.name}.index"
            info = index_catalog(artifact, products, index, args.threads)
            result = bench_artifact(artifact, index, lists, judged, records, args)
            result["index"] = info
            if "teacher" in report:
                result["gain_kept"] = gain_kept(result["quality"]["ndcg@10"], report["teacher"]["ndcg@10"],
                                                report["bm25"]["ndcg@10"])
            report["artifacts"][artifact.name] = result
            print(json.dumps({artifact.name: {k: result[k] for k in ("rank", "search", "index")}}, indent=1))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"catalog-{args.name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out_dir / f"catalog-{args.name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
