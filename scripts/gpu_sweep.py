"""One GPU session, start to finish: teacher, a sweep of students in parallel, INT8 export, GPU bench.

A lent GPU box is short-lived and bare (no registry, no Hub) and its time is counted, so everything
it should do runs from this one script under a wall-clock deadline, and whatever finished is packed
into ``--out`` even when something later fails or runs out of time:

    python scripts/gpu_sweep.py --backbone DIR --train train.csv --dev dev.csv --work runs/gpu \
        --out "$OUT" --deadline 540

1. ``edgerank teacher`` (the CPU recipe of bench/results/teacher-homedepot.md, unchanged).
2. Students side by side on the one GPU (each is launch-bound, so several share it well). Their
   epochs are sized from the teacher's measured seconds per step so all finish before the deadline.
3. ``edgerank export`` of the best 2-layer student to INT8 (ONNX Runtime on the box's CPU), with
   ``--reduce-range`` because the artifact is for AVX2 machines without VNNI.
4. ``edgerank bench`` with GPU subjects (torch fp16 eager and CUDA graphs) next to the CPU ones.
5. Pack: reports and logs, the teacher (fp16 weights: the box returns at most 64 MiB) and the
   INT8 artifact, in that order of importance, each split into pieces under the box's 16 MiB file limit.

The students' reports are the ones ``edgerank distill --report-dir`` writes; nothing here computes
a metric of its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-c", "import sys; from edgerank.cli import main; sys.exit(main())"]
PIECE = 16_000_000  # bytes per returned file (the box returns files of at most 16 MiB)
RETURN_LIMIT = 64 * 2**20 - 2**20  # everything returned, with a MiB to spare

# name, options, layers kept, hidden transfer on, training pairs per train.csv pair, most epochs.
# Session 11 found three epochs no better than one for 2x384 (bench/results/gpu-h200-session.md), so the
# plain 2-layer runs (no copies) are one epoch under two seeds (the spread between runs decides every
# comparison), and the rest of the box goes to the augmented small students, which never started there
# (fixed since).
STUDENTS = [
    ("s-2x384", ["--layers", "2", "--augment", "0"], 2, False, 1, 1),
    ("s-2x384-seed1", ["--layers", "2", "--augment", "0", "--seed", "1"], 2, False, 1, 1),
    ("s-2x384-aug2", ["--layers", "2", "--augment", "2"], 2, False, 3, 2),
    ("s-3x256-aug4", ["--layers", "3", "--hidden-size", "256", "--augment", "4"], 3, True, 5, 3),
    ("s-2x256-aug4", ["--layers", "2", "--hidden-size", "256", "--augment", "4"], 2, True, 5, 3),
    ("s-1x384-aug4", ["--layers", "1", "--augment", "4"], 1, False, 5, 3),
]


def log(msg: str) -> None:
    print(f"[gpu_sweep {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def student_epochs(teacher_step_s: float, layers: int, hidden: bool, pairs: int, most: int, budget_s: float,
                   parallel: int) -> float:
    """Epochs that fit ``budget_s``: a launch-bound step costs about (layers + 1.5) / 7.5 of the
    6-layer teacher's, a third more with the teacher's forward pass for hidden-state transfer, and
    students sharing the GPU slow each other (assumed 1 + 0.2 per neighbour). On the H200 with six
    students this predicted 28 ms per 2x384 step (measured 25) and 49 ms per 3x256 step (measured 39)."""
    step = teacher_step_s * (layers + 1.5) / 7.5 * (1.35 if hidden else 1.0) * (1 + 0.2 * (parallel - 1))
    epoch_s = pairs / 28 * step  # whole-query batches of 32 pairs hold ~28 on Home Depot
    return float(max(1.0, min(most, math.floor(2 * budget_s / epoch_s) / 2)))


def run(args: list[str], logfile: Path, timeout: float, env: dict | None = None) -> int:
    log(f"run ({timeout:.0f} s at most): edgerank {' '.join(args)}")
    with open(logfile, "w") as f:
        try:
            return subprocess.run(CLI + args, stdout=f, stderr=subprocess.STDOUT, timeout=max(timeout, 1),
                                  env=env).returncode
        except subprocess.TimeoutExpired:
            log(f"timed out: {logfile.name}")
            return 124


def fp16_copy(src: Path, dst: Path) -> None:
    """The teacher folder with its weights in fp16: half the bytes, so it fits the box's return limit
    beside the artifact; edgerank's loaders upcast to fp32 (bench/results/gpu-h200-session.md)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    for f in src.glob("*.safetensors"):
        save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(f).items()},
                  dst / f.name, metadata={"format": "pt"})


def pack(folder: Path, out: Path, stem: str, room: int, compress: bool = False) -> int:
    """``folder`` as a tar split into pieces in ``out``; the bytes written, 0 when it would not fit in
    the ``room`` left to return."""
    tar = Path(tempfile.gettempdir()) / f"{stem}.tar{'.gz' if compress else ''}"
    with tarfile.open(tar, "w:gz" if compress else "w") as t:
        t.add(folder, arcname=folder.name)
    size = tar.stat().st_size
    if size > room:
        log(f"not returning {stem} ({size} bytes, {room} left)")
        tar.unlink()
        return 0
    with open(tar, "rb") as f:
        i = 0
        while block := f.read(PIECE):
            (out / f"{tar.name}.{i:02d}").write_bytes(block)
            i += 1
    tar.unlink()
    log(f"returned {stem}: {size} bytes in {i} piece(s)")
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--work", required=True, help="Folder for runs (teacher, students, artifact, logs).")
    ap.add_argument("--out", required=True, help="Folder whose files are returned.")
    ap.add_argument("--deadline", type=float, default=540, help="Seconds from start by which all is packed.")
    ap.add_argument("--teacher-epochs", type=float, default=2.0)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--only", help="Comma list of student names to run (default all).")
    a = ap.parse_args()

    start = time.monotonic()
    left = lambda: a.deadline - (time.monotonic() - start)  # noqa: E731
    work, out = Path(a.work), Path(a.out)
    logs, results = work / "logs", work / "results"
    for d in (logs, results, out):
        d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false", TQDM_MININTERVAL="15")
    common = ["--train", a.train, "--dev", a.dev, "--max-length", str(a.max_length), "--checkpoint-every", "1000000"]
    teacher = work / "hd-teacher-gpu"
    students = [s for s in STUDENTS if not a.only or s[0] in a.only.split(",")]
    try:
        subprocess.run("nvidia-smi; lscpu | grep 'Model name'", shell=True, stdout=open(logs / "machine.txt", "w"),
                       stderr=subprocess.STDOUT)
        rc = run(["teacher", *common, "--out", str(teacher), "--backbone", a.backbone, "--epochs", str(a.teacher_epochs),
                  "--lr", "6e-5", "--batch-size", "32", "--loss", "pointwise+listwise", "--seed", "0"],
                 logs / "teacher.log", left() - 200, env)
        if rc:
            raise SystemExit(f"teacher failed ({rc}): see teacher.log")
        metrics = json.loads((teacher / "metrics.json").read_text())
        step_s = metrics["train"]["seconds"] / metrics["train"]["steps"]
        shutil.copy(teacher / "metrics.json", results / "teacher-metrics.json")
        log(f"teacher: {step_s * 1000:.1f} ms/step, dev {metrics.get('dev', {}).get('model')}")

        import pandas as pd

        train_pairs = len(pd.read_csv(a.train))
        budget = left() - 260  # export (~40 s), GPU bench (~100 s) and packing after the students
        procs = {}
        for name, opts, layers, hidden, mult, most in students:
            epochs = student_epochs(step_s, layers, hidden, train_pairs * mult, most, budget, len(students))
            args = ["distill", "--teacher", str(teacher), *common, "--out", str(work / name), "--epochs", str(epochs),
                    "--report-dir", str(results), *opts]
            log(f"start {name}: {epochs} epoch(s)")
            procs[name] = subprocess.Popen(CLI + args, stdout=open(logs / f"{name}.log", "w"),
                                           stderr=subprocess.STDOUT, env=env)
        kill_at = time.monotonic() + max(budget, 60) + 30
        exported = False
        while procs:
            time.sleep(2)
            for name, p in list(procs.items()):
                if p.poll() is not None:
                    log(f"{name} exited {p.returncode}")
                    del procs[name]
                elif time.monotonic() > kill_at:
                    p.kill()
                    log(f"{name} killed at the deadline")
            if not exported and not any(n.startswith("s-2x384") for n in procs):
                exported = True
                export_best(work, results, a, env, left)
        artifact = work / "s-int8"
        if artifact.exists() and left() > 60:
            run(["bench", "--teacher", str(teacher), "--artifact", str(artifact), "--data", a.dev,
                 "--candidates", "10,100", "--queries", "20", "--quality-queries", "100", "--threads", "4",
                 "--warmup", "2", "--repeat", "3",
                 "--max-length", str(a.max_length), "--no-memory", "--json", str(results / "gpu-bench.json"),
                 "--markdown", str(results / "gpu-bench.md")], logs / "bench.log", left() - 40, env)
    finally:
        for f in logs.iterdir():
            shutil.copy(f, results / f.name)
        room = RETURN_LIMIT
        room -= pack(results, out, "results", room, compress=True)
        if (teacher / "config.json").exists():
            fp16_copy(teacher, work / "hd-teacher-gpu-fp16")
            room -= pack(work / "hd-teacher-gpu-fp16", out, "teacher-fp16", room)
        if (work / "s-int8" / "manifest.json").exists():
            pack(work / "s-int8", out, "s-int8", room)
        log(f"done, {left():.0f} s before the deadline")


def export_best(work: Path, results: Path, a, env: dict, left) -> None:
    """INT8 export of the 2-layer student that kept the most of the teacher's gain on dev."""
    kept = {}
    for f in results.glob("distill-s-2x384*.json"):
        kept[f.stem.removeprefix("distill-")] = json.loads(f.read_text())["dev"]["gain_kept"]
    if not kept or left() < 120:
        log(f"no INT8 export ({len(kept)} 2-layer students, {left():.0f} s left)")
        return
    best = max(kept, key=kept.get)
    log(f"INT8 export of {best} (gain kept {kept})")
    run(["export", "--model", str(work / best), "--out", str(work / "s-int8"), "--precision", "int8-dynamic",
         "--weight-type", "int8", "--reduce-range", "--optimize", "--max-length", str(a.max_length),
         "--eval-data", a.dev, "--max-quality-drop", "0.5"], work / "logs" / "export.log", left() - 90,
        dict(env, OMP_NUM_THREADS="8"))


if __name__ == "__main__":
    main()
