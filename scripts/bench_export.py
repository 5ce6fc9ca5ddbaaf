"""Size, latency and quality of one model exported at every precision: the table in
``bench/results/export-<model>.md``.

Latency: one query against 100 real candidate titles (Home Depot dev), ONNX Runtime CPU at
``--threads`` intra-op threads, median of ``--repeats`` runs after warm-up, tokenization included
(it is part of what a deployment pays). Quality: nDCG@10 on Home Depot dev queries with two or
more labels next to the fp32 torch model and BM25 (the same numbers the quality gate computes),
plus Spearman against fp32 torch scores.

Noise floor: the gain over BM25 on these short lists is small (~0.007 nDCG@10), and near-duplicate
products get near-equal scores, so any perturbation reorders some of them. For each quantized row the
script also adds Gaussian noise of the same size as that row's deviation from fp32 to the fp32 scores
(``--noise-draws`` seeds) and reports the gain kept by that noise alone: the share a quantizer can be
expected to keep when its errors carry no bias at all.

    python scripts/bench_export.py --model runs/hd-teacher --queries 150
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "homedepot"
VARIANTS = [
    ("fp32", "fp32", {}),
    ("fp32 optimized", "fp32", {"optimize": True}),
    ("fp16 (optimized)", "fp16", {"optimize": True}),
    ("int8-dynamic", "int8-dynamic", {}),
    ("int8-dynamic optimized", "int8-dynamic", {"optimize": True}),
    ("int8-dynamic, fp32 embeddings", "int8-dynamic", {"quantize_embeddings": False}),
    ("int8-dynamic, 8-bit (no reduce_range)", "int8-dynamic", {"reduce_range": False}),
    ("int8-dynamic optimized, uint8 weights (8-bit, u8 x u8 kernels)", "int8-dynamic",
     {"optimize": True, "weight_type": "uint8", "reduce_range": False}),
    ("int8-static minmax", "int8-static", {"calibration_method": "minmax"}),
    ("int8-static percentile", "int8-static", {"calibration_method": "percentile"}),
    # the shop's vocabulary from train.csv only: dev's new queries meet the fallback pieces
    ("fp32, vocabulary pruned to train.csv", "fp32", {"prune_vocab": (str(DATA / "train.csv"),)}),
    ("int8-dynamic optimized, vocabulary pruned to train.csv", "int8-dynamic",
     {"optimize": True, "prune_vocab": (str(DATA / "train.csv"),)}),
]


def noise_floor(groups, reference, scores, draws: int) -> tuple[float, float]:
    """Mean and standard deviation of the gain kept when the fp32 scores get Gaussian noise as large
    as ``scores``' deviation from them (see the module docstring)."""
    from edgerank.metrics import BM25Baseline, evaluate, gain_kept

    sigma = float(np.concatenate([s - r for s, r in zip(scores, reference)]).std())
    fp32, bm25 = evaluate(groups, reference)["ndcg@10"], evaluate(groups, BM25Baseline().score(groups))["ndcg@10"]
    rng = np.random.default_rng(0)
    kept = [gain_kept(evaluate(groups, [r + rng.normal(0, sigma, len(r)) for r in reference])["ndcg@10"], fp32, bm25)
            for _ in range(draws)]
    return float(np.mean(kept)), float(np.std(kept))


def latency_ms(session, tokenizer, query: str, texts: list[str], repeats: int) -> float:
    from edgerank.export.scoring import score_pairs_onnx

    queries = [query] * len(texts)
    for _ in range(3):
        score_pairs_onnx(session, tokenizer, queries, texts, batch_size=len(texts))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        score_pairs_onnx(session, tokenizer, queries, texts, batch_size=len(texts))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", help="Model name in the results file (default: the folder name).")
    ap.add_argument("--queries", type=int, default=150, help="Dev queries for quality (evaluable ones, in file order).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--noise-draws", type=int, default=12, help="Seeds for the noise-floor column (0: skip it).")
    ap.add_argument("--allow-untrained-head", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", action="append", metavar="LABEL",
                    help="Run only the variants with exactly this label (repeatable; default: all).")
    args = ap.parse_args()
    variants = [v for v in VARIANTS if not args.only or v[0] in args.only]
    if not variants or variants[0][1:] != ("fp32", {}):
        ap.error("--only must keep the plain 'fp32' variant first: every row is compared with it")

    import onnxruntime

    from edgerank.artifact import load_artifact
    from edgerank.bench.machine import describe_machine
    from edgerank.bench.report import machine_line
    from edgerank.data import evaluable, group_queries, read_table
    from edgerank.export import export_artifact
    from edgerank.export.gate import quality_gate
    from edgerank.export.onnx import parity
    from edgerank.export.scoring import ort_session, pair_tokenizer, score_groups_onnx
    from edgerank.modeling import load_cross_encoder, load_tokenizer, score_groups

    name = args.name or Path(args.model).name
    df, _ = read_table(DATA / "dev.csv")
    groups = evaluable(group_queries(df))[: args.queries]
    texts = [t for g in evaluable(group_queries(df)) for t in g.texts][:100]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model)
        if args.allow_untrained_head:  # one seeded head, saved, so every export and the reference share it
            import torch

            torch.manual_seed(0)
            model_dir = Path(tmp) / "seeded-head"
            load_cross_encoder(args.model).save_pretrained(model_dir)
            load_tokenizer(args.model).save_pretrained(model_dir)
        model, hf_tok = load_cross_encoder(model_dir, require_head=True), load_tokenizer(model_dir)
        reference = score_groups(model, hf_tok, groups, max_length=args.max_length)
        for label, precision, options in variants:
            calibration = {"calibration": str(DATA / "train.csv")} if precision == "int8-static" else {}
            t0 = time.perf_counter()
            path = export_artifact(model_dir, Path(tmp) / label.replace(" ", "_"), precision, args.max_length,
                                   **options, **calibration)
            seconds = time.perf_counter() - t0
            art = load_artifact(path)
            tok = art.manifest["tokenizer"]
            tokenizer = pair_tokenizer(art.file(tok["file"]), tok["max_length"], tok["pad_id"], tok["pad_token"])
            session = ort_session(art.file("model.onnx"), threads=args.threads)
            scores = score_groups_onnx(session, tokenizer, groups)
            gate = quality_gate(groups, reference, scores)
            rows.append({"label": label, "mb": art.file("model.onnx").stat().st_size / 2**20,
                         "ms": latency_ms(session, tokenizer, groups[0].query, texts, args.repeats),
                         "ndcg": gate["exported"]["ndcg@10"], "fp32": gate["fp32"]["ndcg@10"],
                         "bm25": gate["bm25"]["ndcg@10"], "kept": gate["gain_kept"],
                         "top10": gate["top10_overlap"], "spearman": parity(reference, scores)["spearman"],
                         "export_s": seconds, "passed": gate["passed"],
                         "noise": noise_floor(groups, reference, scores, args.noise_draws)
                         if args.noise_draws and precision != "fp32" else None})
            print(rows[-1], flush=True)

    base = rows[0]
    lines = [f"# Export precisions: {name}", "",
             f"Model `{args.model}`; max_length {args.max_length}; {len(groups)} Home Depot dev queries "
             f"({sum(len(g.texts) for g in groups)} pairs) with two or more labels.", "",
             "| variant | model.onnx MB | % of fp32 | latency 100 cand. (ms) | nDCG@10 | gain over BM25 kept | "
             "top-10 agreement | Spearman vs fp32 torch | gate (2%, 0.9) | same-size noise keeps |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['mb']:.1f} | {r['mb'] / base['mb']:.0%} | {r['ms']:.0f} | {r['ndcg']:.4f} | "
                     f"{r['kept']:.1%} | {r['top10']:.3f} | {r['spearman']:.4f} | {'pass' if r['passed'] else 'FAIL'} | "
                     + (f"{r['noise'][0]:.1%} ± {r['noise'][1]:.1%}" if r["noise"] else "–") + " |")
    lines += ["", f"fp32 torch nDCG@10 {base['fp32']:.4f}; BM25 {base['bm25']:.4f} on the same lists.", "",
              f"Machine: {machine_line(describe_machine())}; {args.threads} ORT thread(s). Compare rows, not "
              "machines: the load average above says how busy this one was.", "",
              f"Command: `python scripts/bench_export.py --model {args.model} --name {name} --queries {args.queries} "
              f"--threads {args.threads} --repeats {args.repeats} --max-length {args.max_length} --noise-draws {args.noise_draws}"
              + "".join(f" --only '{label}'" for label in args.only or [])
              + (" --allow-untrained-head" if args.allow_untrained_head else "") + "`",
              f"onnxruntime {onnxruntime.__version__}. Latency is the median of {args.repeats} runs, one query x "
              "100 candidates in one batch, tokenization included."]
    out = Path(args.out or Path(__file__).resolve().parents[1] / "bench" / "results" / f"export-{name}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
