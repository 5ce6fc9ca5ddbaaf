"""Peers: other ways to run the same weights, benchmarked beside edgerank on the same candidate lists.

- ``st``: sentence-transformers ``CrossEncoder`` (torch) on the artifact's source model folder, with
  its default ``predict`` batching — what most Python shops run today.
- ``st-onnx``: the same class with ``backend="onnx"`` on the artifact's own graph (and the HF config
  the artifact carries, or its source folder's for artifacts exported before it did). It needs
  optimum-onnx, which pins transformers<4.58, so it runs in ``.venv-optimum`` (see below).
- ``ort``: plain ONNX Runtime on the artifact's own graph, as its tutorials write it: the tokenizer
  pads every pair to the longest, one ``session.run`` over all candidates, no length buckets, no
  batch cap. The difference to edgerank is edgerank's batching alone.
- ``optimum``: optimum's ``ORTModelForSequenceClassification`` on the artifact's own graph, one call
  over all candidates, also in ``.venv-optimum``.

The two optimum-based peers live in another virtual environment (``scripts/setup_optimum_venv.sh``)
and are driven over JSON lines on stdin/stdout by ``optimum_peer/peer.py`` (beside this module); without that
environment they are skipped with a note saying how to create it.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .subjects import ArtifactSubject, Subject, folder_size, texts_of

PEERS = ("st", "st-onnx", "ort", "optimum")
REPO = Path(__file__).resolve().parents[2]
OPTIMUM_VENV = Path(os.environ.get("EDGERANK_OPTIMUM_VENV", REPO / ".venv-optimum"))
PEER_SCRIPT = Path(__file__).resolve().parent / "optimum_peer" / "peer.py"


class PeerUnavailable(Exception):
    """A peer that cannot run here, with the reason and the fix; the bench records it and goes on."""


@dataclass
class SentenceTransformersSubject(Subject):
    type: ClassVar[str] = "st"
    requires: ClassVar[tuple[str, ...]] = ("torch", "sentence_transformers")
    name: str
    model_dir: str
    threads: int | None = None
    max_length: int = 128
    notes: list[str] = field(default_factory=list)

    def load(self) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        from ..modeling import offline

        offline()
        if self.threads:
            torch.set_num_threads(self.threads)
        self._model = CrossEncoder(self.model_dir, device="cpu", local_files_only=True, max_length=self.max_length)

    def prepare(self, query, products):
        pairs = [(query, t) for t in texts_of(products)]
        return lambda: self._model.predict(pairs, show_progress_bar=False)

    def describe(self):
        return {
            "path": self.model_dir,
            "precision": "fp32 (torch, source weights)",
            "device": "cpu",
            "size_bytes": folder_size(Path(self.model_dir)),
        }

    def close(self):
        self._model = None


@dataclass
class PlainOrtSubject(Subject):
    type: ClassVar[str] = "ort"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime", "tokenizers")
    name: str
    artifact: str
    threads: int | None = None
    notes: list[str] = field(default_factory=list)

    def load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from ..artifact import load_artifact

        art = load_artifact(self.artifact)
        spec = art.manifest.get("tokenizer") or {}
        self._tokenizer = Tokenizer.from_file(str(art.file(spec.get("file", "tokenizer.json"))))
        self._tokenizer.enable_truncation(int(spec.get("max_length", 512)))
        self._tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or 0
        self._session = ort.InferenceSession(
            str(art.file(art.graph("model")["file"])), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]

    def prepare(self, query, products):
        pairs = [(query, t) for t in texts_of(products)]

        def call():
            enc = self._tokenizer.encode_batch(pairs)
            columns = {
                "input_ids": [e.ids for e in enc],
                "attention_mask": [e.attention_mask for e in enc],
                "token_type_ids": [e.type_ids for e in enc],
            }
            return self._session.run(None, {n: np.asarray(columns[n], dtype=np.int64) for n in self._inputs})[0]

        return call

    def decode(self, result, products):
        return np.asarray(result, dtype=np.float64).reshape(len(products))

    def describe(self):
        return ArtifactSubject(name=self.name, path=self.artifact).describe() | {"device": "cpu"}

    def close(self):
        self._session = self._tokenizer = None


@dataclass
class VenvPeerSubject(Subject):
    """A peer run in ``.venv-optimum`` as a child process that stays up for the whole benchmark.

    It times its own calls with edgerank's timing loop and reports its load time and peak RSS, so
    its numbers are measured the same way as every in-process subject's.
    """

    type: ClassVar[str] = "venv-peer"
    in_process: ClassVar[bool] = False
    name: str
    backend: str  # "optimum" | "st-onnx"
    model_dir: str | None  # HF config + tokenizer files; None: the artifact's own (manifest "hf")
    artifact: str
    threads: int | None = None
    max_length: int = 128
    notes: list[str] = field(default_factory=list)
    reported: dict[str, Any] = field(default_factory=dict)

    def load(self) -> None:
        python = OPTIMUM_VENV / "bin" / "python"
        if not python.exists():
            raise PeerUnavailable(
                f"{self.backend}: no optimum environment at {OPTIMUM_VENV} (optimum-onnx pins "
                "transformers<4.58, so it lives apart); create it with scripts/setup_optimum_venv.sh"
            )
        from ..artifact import load_artifact

        art = load_artifact(self.artifact)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        self._proc = subprocess.Popen(
            [str(python), str(PEER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        model_dir = self.model_dir or str(art.path)
        reply = self._ask(
            {
                "op": "load",
                "backend": self.backend,
                "model_dir": model_dir,
                "onnx": str(art.file(art.graph("model")["file"])),
                "threads": self.threads,
                "max_length": int((art.manifest.get("tokenizer") or {}).get("max_length", self.max_length)),
            }
        )
        self.reported.update(load_ms=reply["load_ms"], versions=reply.get("versions", {}))

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            err = [ln for ln in self._proc.stderr.read().strip().splitlines() if ln.strip()]
            self._proc.wait()
            raise PeerUnavailable(f"{self.backend}: peer process exited ({err[-1] if err else 'no message'})")
        reply = json.loads(line)
        if "error" in reply:
            raise PeerUnavailable(f"{self.backend}: {reply['error']}")
        return reply

    def measure(self, lists, *, warmup, repeat):
        reply = self._ask(
            {"op": "measure", "lists": [[q, texts_of(p)] for q, p in lists], "warmup": warmup, "repeat": repeat}
        )
        self.reported["peak_rss_mb"] = reply["peak_rss_mb"]
        return reply["seconds"], [np.asarray(s, dtype=np.float64) for s in reply["scores"]]

    def describe(self):
        what = "ORTModelForSequenceClassification" if self.backend == "optimum" else "CrossEncoder(backend='onnx')"
        return ArtifactSubject(name=self.name, path=self.artifact).describe() | {"device": "cpu", "runner": what}

    def close(self):
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=60)
        self._proc = None


def make_peers(
    names: list[str], artifact: ArtifactSubject, *, threads: int | None, max_length: int
) -> tuple[list[Subject], list[dict[str, str]]]:
    """Peers of one artifact (on its graph or its source model), and notes for those that cannot run.

    ``st`` runs torch, so it needs the source weights; the graph's peers need only HF config files,
    which the artifact carries itself (older artifacts: from the source folder)."""
    described = artifact.describe()
    source = described.get("source_model")
    has_source = bool(source) and (Path(source) / "config.json").is_file()
    own_config = bool(described.get("hf_config"))
    missing = {
        "reason": f"needs the artifact's source model folder (manifest source.model = {source!r} "
        "is not a model folder here)"
    }
    subjects: list[Subject] = []
    skipped: list[dict[str, str]] = []
    for peer in names:
        name = f"{peer} · {artifact.name}"
        if peer == "ort":
            subjects.append(PlainOrtSubject(name=name, artifact=artifact.path, threads=threads))
        elif peer == "st":
            if has_source:
                subjects.append(
                    SentenceTransformersSubject(name=name, model_dir=source, threads=threads, max_length=max_length)
                )
            else:
                skipped.append({"name": name} | missing)
        elif own_config or has_source:
            subjects.append(
                VenvPeerSubject(
                    name=name,
                    backend=peer,
                    model_dir=None if own_config else source,
                    artifact=artifact.path,
                    threads=threads,
                    max_length=max_length,
                )
            )
        else:
            skipped.append({"name": name} | missing)
    return subjects, skipped
