"""Average the weights of students distilled from the same start (a uniform model soup).

    python scripts/soup_students.py --out runs/hd/soup-2x384-aug4 \
        runs/hd/student-2x384-t02-aug4 runs/hd/student-2x384-t02-aug4-seed1
    edgerank eval --model runs/hd/soup-2x384-aug4 --data DEV --teacher TEACHER --max-length 64

Wortsman et al. 2022 ("Model soups"): models fine-tuned from one initialisation usually sit in one
basin, so their mean weights score at least as well as the average member. Students cloned from the
same teacher layers qualify; students of different shapes or layer choices do not and are refused.
An experiment tool (session 16's write-up in bench/results/distill-shapes-homedepot.md), not a
distillation default: a soup of N students costs N distillation runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from edgerank.io import atomic_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("students", nargs="+", type=Path)
    args = ap.parse_args()
    if len(args.students) < 2:
        ap.error("a soup needs two or more students")
    for s in args.students:
        if not (s / "edgerank_distill.json").is_file() or not (s / "model.safetensors").is_file():
            ap.error(f"{s}: not a student folder written by edgerank distill (edgerank_distill.json "
                     "and model.safetensors expected)")
    recipes = [json.loads((s / "edgerank_distill.json").read_text()) for s in args.students]
    specs = {json.dumps({"teacher": r["config"]["teacher"], **r["student"]}, sort_keys=True) for r in recipes}
    if len(specs) != 1:
        ap.error(f"the students start from different places ({' vs '.join(sorted(specs))}); averaging them is meaningless")
    weights = [load_file(s / "model.safetensors") for s in args.students]
    # summed in float32, stored in the members' own dtype: an fp16 student stays an fp16 soup
    mean = {name: (sum(w[name].float() for w in weights) / len(weights)).to(first.dtype)
            for name, first in weights[0].items()}
    with atomic_dir(args.out) as tmp:
        save_file(mean, tmp / "model.safetensors", metadata={"format": "pt"})
        for f in args.students[0].iterdir():
            if f.name not in ("model.safetensors", "report.json"):
                shutil.copy(f, tmp / f.name)
        (tmp / "soup.json").write_text(json.dumps({"students": [str(s) for s in args.students]}, indent=2))
    print(f"soup of {len(weights)} students written to {args.out}")


if __name__ == "__main__":
    main()
