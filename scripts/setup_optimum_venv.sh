#!/usr/bin/env bash
# Create .venv-optimum, the isolated environment for the optimum / sentence-transformers-ONNX peers of
# `edgerank bench --peers optimum,st-onnx`. optimum-onnx pins transformers<4.58 and edgerank runs on
# transformers 5.x, so they cannot share .venv. Usage: scripts/setup_optimum_venv.sh [VENV_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/.venv-optimum}"
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
printf '*\n' > "$venv/.gitignore"   # the venv ignores itself; no edit to the project's .gitignore
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch first, pinned like the main set-up: an unpinned torch pulled in by optimum is the multi-GB CUDA build
"$venv/bin/python" -m pip install --constraint "$root/constraints.txt" torch
"$venv/bin/python" -m pip install --constraint "$root/constraints.txt" -r "$root/edgerank/bench/optimum_peer/requirements.txt"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import optimum.onnxruntime  # noqa: F401  (fails at set-up, not in the middle of a benchmark)
print("optimum peer environment ready:",
      ", ".join(f"{p} {md.version(p)}" for p in ("optimum-onnx", "optimum", "transformers",
                                                 "sentence-transformers", "onnxruntime", "torch")))
PY
