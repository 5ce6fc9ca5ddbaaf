"""The optimum / sentence-transformers-ONNX peers of ``edgerank bench``, run inside ``.venv-optimum``.

Runs under transformers<4.58 (optimum-onnx's pin), in an environment without edgerank, so it loads
nothing of edgerank but the timing loop and the peak-RSS reader, from their files beside this one's,
to be measured exactly as edgerank's own subjects are. Shipped inside the package, so an installed
edgerank runs it as a source checkout does.

Protocol: one JSON object per line on stdin, one reply per line on stdout.
  {"op": "load", "backend": "optimum"|"st-onnx", "model_dir", "onnx", "threads", "max_length"}
      -> {"load_ms", "versions"}
  {"op": "measure", "lists": [[query, [text, ...]], ...], "warmup", "repeat"}
      -> {"seconds": [...], "scores": [[...], ...], "peak_rss_mb"}
Any failure -> {"error": "one line"}. End of input ends the process.

Both peers run the artifact's own ONNX graph: a folder is assembled with the source model's config
and tokenizer files next to a link to that graph, since optimum loads models from such folders.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np


def _bench_module(name: str):
    """``edgerank/bench/<name>.py`` loaded from its file: putting the folder that holds edgerank on
    sys.path would, for an installed edgerank, also put the main virtualenv's packages (its
    transformers 5.x) ahead of the optimum virtualenv's own."""
    path = Path(__file__).resolve().parents[1] / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"edgerank_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


peak_rss_bytes = _bench_module("memory").peak_rss_bytes
time_calls = _bench_module("timing").time_calls

_KEEP = {".json", ".txt", ".model"}  # config, tokenizer files, vocab; never the torch weights


def _assemble(model_dir: str, onnx: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="edgerank-peer-"))
    for f in Path(model_dir).iterdir():
        if f.is_file() and f.suffix in _KEEP:
            shutil.copy2(f, folder / f.name)
    (folder / "model.onnx").symlink_to(Path(onnx).resolve())
    return folder


def _session_options(threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    return options


def load(request: dict):
    folder = _assemble(request["model_dir"], request["onnx"])
    options = _session_options(request.get("threads"))
    max_length = int(request["max_length"])
    if request["backend"] == "optimum":
        from optimum.onnxruntime import ORTModelForSequenceClassification
        from transformers import AutoTokenizer

        t0 = time.perf_counter()
        model = ORTModelForSequenceClassification.from_pretrained(
            folder, file_name="model.onnx", session_options=options, provider="CPUExecutionProvider"
        )
        tokenizer = AutoTokenizer.from_pretrained(folder)
        load_ms = (time.perf_counter() - t0) * 1e3

        def score(query, texts):
            enc = tokenizer(
                [query] * len(texts), texts, padding=True, truncation=True, max_length=max_length, return_tensors="np"
            )
            return np.asarray(model(**enc).logits).reshape(-1)
    elif request["backend"] == "st-onnx":
        from sentence_transformers import CrossEncoder

        t0 = time.perf_counter()
        model = CrossEncoder(
            str(folder),
            backend="onnx",
            local_files_only=True,
            max_length=max_length,
            model_kwargs={"file_name": "model.onnx", "provider": "CPUExecutionProvider", "session_options": options},
        )
        load_ms = (time.perf_counter() - t0) * 1e3

        def score(query, texts):
            return np.asarray(model.predict([(query, t) for t in texts], show_progress_bar=False)).reshape(-1)
    else:
        raise ValueError(f"unknown backend {request['backend']!r}")
    versions = {}
    for package in ("optimum-onnx", "optimum", "transformers", "sentence-transformers", "onnxruntime", "torch"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return score, {"load_ms": load_ms, "versions": versions}


def measure(score, request: dict) -> dict:
    lists = request["lists"]
    calls = [(lambda q=q, t=t: score(q, t)) for q, t in lists]
    seconds, results = time_calls(calls, warmup=request["warmup"], repeat=request["repeat"])
    return {
        "seconds": seconds,
        "scores": [np.asarray(r, dtype=float).tolist() for r in results],
        "peak_rss_mb": peak_rss_bytes() / 2**20,
    }


def main() -> None:
    score = None
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            if request["op"] == "load":
                score, reply = load(request)
            elif score is None:
                reply = {"error": "measure before load"}
            else:
                reply = measure(score, request)
        except Exception as e:  # one line back to the bench, the traceback to stderr
            traceback.print_exc()
            reply = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
