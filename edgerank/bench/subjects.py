"""What a benchmark runs: edgerank artifacts, torch model folders, peers, GPU variants — one interface.

Each subject is a dataclass of plain fields (paths, threads, options), so the memory probe can rebuild
it from JSON in a fresh process (``spec`` / ``from_spec``) and nothing measured there leaks from the
parent. Heavy libraries are imported inside ``load``: a process that probes an ONNX artifact never
pays for importing torch.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..runtime.products import product_text  # the training rule, pinned equal by the runtime's tests
from .timing import time_calls

#: One query's candidates as a runtime takes them: (query, [{id, title, description}, ...]).
CandidateList = tuple[str, list[dict[str, str]]]


def folder_size(path: Path, files: Sequence[str] | None = None) -> int:
    """Bytes on disk of ``files`` in ``path`` (default: the folder's top-level files; checkpoints and
    other subfolders are not part of what ships)."""
    names = files if files is not None else [p.name for p in path.iterdir() if p.is_file()]
    return sum((path / n).stat().st_size for n in names)


class Subject:
    """Base: load once, then score candidate lists under the timing loop."""

    type: ClassVar[str]
    #: Modules imported before the load clock starts: load time is the model's, not the library's.
    requires: ClassVar[tuple[str, ...]] = ()
    #: False for a peer that runs (and measures itself) in another process; see ``peers.VenvPeerSubject``.
    in_process: ClassVar[bool] = True
    name: str
    notes: list[str]

    def load(self) -> None:
        raise NotImplementedError

    def prepare(self, query: str, products: list[dict[str, str]]) -> Callable[[], Any]:
        """A zero-argument call that ranks this list: all input conversion happens here, untimed."""
        raise NotImplementedError

    def decode(self, result: Any, products: list[dict[str, str]]) -> np.ndarray:
        """Scores in candidate order from what the timed call returned."""
        return np.asarray(result, dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        """Path, precision, device and size on disk, for the report."""
        raise NotImplementedError

    def measure(
        self, lists: Sequence[CandidateList], *, warmup: int, repeat: int
    ) -> tuple[list[float], list[np.ndarray]]:
        """Seconds of every timed call and each list's scores (from its last timed call)."""
        calls = [self.prepare(q, p) for q, p in lists]
        seconds, results = time_calls(calls, warmup=warmup, repeat=repeat)
        return seconds, [self.decode(r, p) for r, (_, p) in zip(results, lists)]

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, **{k: v for k, v in asdict(self).items() if k != "notes"}}

    def close(self) -> None:
        """Drop loaded weights so the next subject is not measured beside them."""


def from_spec(spec: dict[str, Any]) -> Subject:
    """Rebuild a subject from ``Subject.spec()`` (in the memory probe's fresh process)."""
    module, cls = SUBJECT_TYPES[spec["type"]].split(":")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    return getattr(importlib.import_module(module, __package__), cls)(**kwargs)


def texts_of(products: list[dict[str, str]]) -> list[str]:
    return [product_text(p["title"], p.get("description") or "") for p in products]


@dataclass
class ArtifactSubject(Subject):
    """An edgerank artifact served by ``edgerank.runtime.Ranker``: exactly what a kiosk runs. A catalog
    student (late-interaction, bi-encoder) ranks from ``index``, its warm catalog index, as a kiosk would."""

    type: ClassVar[str] = "edgerank"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime", "tokenizers", "edgerank.runtime")
    name: str
    path: str
    threads: int | None = None
    providers: list[str] | None = None
    index: str | None = None
    notes: list[str] = field(default_factory=list)

    def load(self) -> None:
        from ..runtime import Ranker

        self._ranker = Ranker.load(self.path, providers=self.providers, threads=self.threads, index=self.index)

    def prepare(self, query, products):
        ranker = self._ranker
        return lambda: ranker.rank(query, products)

    def decode(self, result, products):
        by_id = {_get(r, "id"): float(_get(r, "score")) for r in result}
        return np.asarray([by_id[p["id"]] for p in products], dtype=np.float64)

    def describe(self):
        from ..artifact import load_artifact

        art = load_artifact(self.path, verify=False)
        return {
            "path": str(self.path),
            "kind": art.kind,
            "precision": art.manifest.get("precision"),
            "device": ",".join(self.providers or ["CPUExecutionProvider"]),
            "size_bytes": folder_size(art.path, list(art.manifest.get("files", {})) + ["manifest.json"]),
            "source_model": (art.manifest.get("source") or {}).get("model"),
            "hf_config": bool(art.manifest.get("hf")),
        }

    def close(self):
        self._ranker = None


def _get(item: Any, key: str) -> Any:
    return item[key] if isinstance(item, dict) else getattr(item, key)


@dataclass
class TorchSubject(Subject):
    """A Hugging Face cross-encoder folder scored by torch, the way ``edgerank eval`` scores it
    (length-sorted batches of ``batch_size``): the teacher and the "before" of every comparison."""

    type: ClassVar[str] = "torch"
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "edgerank.modeling")
    name: str
    path: str
    threads: int | None = None
    max_length: int = 128
    batch_size: int = 64
    notes: list[str] = field(default_factory=list)

    def load(self) -> None:
        import torch

        from ..modeling import load_cross_encoder, load_tokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        _quiet_transformers()
        self._model = load_cross_encoder(self.path, require_head=True).eval()
        self._tokenizer = load_tokenizer(self.path)

    def prepare(self, query, products):
        from ..modeling import score_pairs

        texts = texts_of(products)
        queries = [query] * len(texts)
        return lambda: score_pairs(
            self._model, self._tokenizer, queries, texts, batch_size=self.batch_size, max_length=self.max_length
        )

    def describe(self):
        return {
            "path": str(self.path),
            "precision": "fp32",
            "device": "cpu",
            "size_bytes": folder_size(Path(self.path)),
        }

    def close(self):
        self._model = self._tokenizer = None


def _quiet_transformers() -> None:
    """No weight-loading progress bars between the benchmark's own lines."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


#: type -> "module:Class", resolved lazily so importing this module imports no peer library.
SUBJECT_TYPES = {
    "edgerank": ".subjects:ArtifactSubject",
    "torch": ".subjects:TorchSubject",
    "st": ".peers:SentenceTransformersSubject",
    "ort": ".peers:PlainOrtSubject",
    "torch-cuda": ".gpu:TorchCudaSubject",
}


def timed_load(subject: Subject, *, warm: bool = False) -> float:
    """Milliseconds to load a subject, its libraries imported before the clock starts.

    ``warm`` loads it once untimed first, so lazy imports inside the libraries (transformers imports
    a model's code on first use) and a cold page cache are not counted: the number then compares
    models, not what happened to run first.
    """
    for module in subject.requires:
        importlib.import_module(module)
    if warm:
        subject.load()
        subject.close()
    t0 = time.perf_counter()
    subject.load()
    return (time.perf_counter() - t0) * 1e3
