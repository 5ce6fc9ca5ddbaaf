"""Distil one teacher into several student shapes and tabulate kept gain against cost.

    python scripts/distill_shapes.py --teacher runs/hd-teacher --train TRAIN --dev DEV \
        --shapes 2x384,1x384,2x256 --out runs/shapes --results bench/results/distill-shapes-homedepot.md

Each shape is LAYERSxHIDDEN; hidden below the teacher's builds a subcloned, narrower student.
Teacher scores are computed once (cached) and shared by every shape.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edgerank.metrics import format_kept
from edgerank.train.distill import DistillConfig, distill
from edgerank.train.loop import LoopConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--shapes", default="2x384,1x384,2x256")
    ap.add_argument("--out", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--extra-negatives", type=int, default=3)
    ap.add_argument("--augment", type=int, help="Perturbed-query copies per list (default: edgerank distill's)")
    ap.add_argument("--max-length", type=int, default=64)
    args = ap.parse_args()

    teacher_hidden = json.loads((Path(args.teacher) / "config.json").read_text())["hidden_size"]
    rows = []
    for shape in args.shapes.split(","):
        layers, hidden = (int(x) for x in shape.split("x"))
        started = time.perf_counter()
        result = distill(DistillConfig(
            teacher=args.teacher, train=args.train, dev=args.dev, out=f"{args.out}/student-{shape}", layers=layers,
            hidden_size=hidden if hidden < teacher_hidden else None, extra_negatives=args.extra_negatives,
            augment=args.augment, max_length=args.max_length, loop=LoopConfig(epochs=args.epochs, lr=1e-4), report_dir=str(Path(args.results).parent)))
        dev = result["dev"]
        rows.append((shape, result["student"]["layers"], result["parameters"]["student"], dev["flops_per_pair"]["student"],
                     dev["model"]["ndcg@10"], dev["gain_kept"], dev["gain_kept_ci95"], dev["agreement"]["kendall_tau"], dev["agreement"]["top5_overlap"],
                     time.perf_counter() - started))
        teacher, bm25, tflops = dev["teacher"]["ndcg@10"], dev["bm25"]["ndcg@10"], dev["flops_per_pair"]["teacher"]
        lines = [f"# Student shapes distilled from {args.teacher}", "",
                 f"Command: `python scripts/distill_shapes.py --teacher {args.teacher} --train {args.train} --dev {args.dev} "
                 f"--shapes {args.shapes} --epochs {args.epochs} --extra-negatives {args.extra_negatives}"
                 f"{'' if args.augment is None else f' --augment {args.augment}'} --max-length {args.max_length}`",
                 "", f"Teacher nDCG@10 {teacher:.4f}, BM25 {bm25:.4f} (gain {teacher - bm25:+.4f}); teacher FLOPs/pair "
                 f"{tflops / 1e6:.0f}M at the dev median length.", "",
                 "| shape (layers x hidden) | teacher layers kept | params | FLOPs/pair | nDCG@10 | gain kept (95% CI over queries) | Kendall tau | top-5 overlap | wall (s) |",
                 "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {s} | {l} | {p / 1e6:.1f}M | {f / 1e6:.0f}M ({f / tflops:.0%}) | {n:.4f} | {format_kept(g, c)} | {k:.3f} | {o:.3f} | {w:.0f} |"
                  for s, l, p, f, n, g, c, k, o, w in rows]
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text("\n".join(lines) + "\n")
        print("\n".join(lines[-len(rows) - 2:]), flush=True)


if __name__ == "__main__":
    main()
