"""GPU subjects: teacher and students in torch fp16, eager and replayed through CUDA graphs, plus
artifacts on ONNX Runtime's CUDA provider where that build is installed.

The CUDA work itself is the runtime's ``torch-cuda`` backend (shape buckets, one captured graph per
bucket, eager fallback), so the bench measures what a GPU box would serve. Model folders (a teacher
has no artifact) are fed through the runtime's own pair encoder and length batching.

Without a CUDA device every GPU subject is skipped with a note. Not exercised in CI (no GPU there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .subjects import ArtifactSubject, Subject, folder_size, texts_of

GPU_BATCH = 64


def cuda_device() -> str | None:
    """The CUDA device's name, or None when torch is missing or sees no GPU."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


@dataclass
class TorchCudaSubject(Subject):
    """A Hugging Face cross-encoder folder in torch on CUDA (``dtype``), eager or with CUDA graphs."""

    type: ClassVar[str] = "torch-cuda"
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "edgerank.runtime")
    name: str
    path: str
    dtype: str = "float16"
    cuda_graphs: bool = False
    max_length: int = 128
    notes: list[str] = field(default_factory=list)

    def load(self) -> None:
        from ..artifact import Artifact
        from ..runtime.backends.torch_cuda import TorchBackend
        from ..runtime.cross_encoder import CrossEncoderScorer
        from ..runtime.tokenize import PairEncoder

        folder = Path(self.path)
        backend = TorchBackend(
            folder, device="cuda", dtype=self.dtype, cuda_graphs=self.cuda_graphs, max_length=self.max_length
        )
        encoder = PairEncoder(folder / "tokenizer.json", self.max_length)
        self._scorer = CrossEncoderScorer(
            Artifact(path=folder, manifest={"kind": "cross-encoder"}), encoder, backend, GPU_BATCH
        )

    def prepare(self, query, products):
        texts = texts_of(products)
        queries = [query] * len(texts)
        return lambda: self._scorer.score(queries, texts)[0]

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "precision": self.dtype.replace("float", "fp"),
            "device": f"cuda ({cuda_device()})",
            "size_bytes": folder_size(Path(self.path)),
            "runner": "torch " + ("CUDA graphs" if self.cuda_graphs else "eager"),
        }

    def close(self):
        self._scorer = None


def gpu_subjects(
    models: list[tuple[str, str]], artifacts: list[ArtifactSubject], *, max_length: int
) -> tuple[list[Subject], list[dict[str, str]]]:
    """fp16 eager and CUDA-graph subjects for each model folder, CUDA-provider subjects for each
    artifact, or one note saying why there are none."""
    device = cuda_device()
    if device is None:
        return [], [{"name": "GPU", "reason": "no CUDA device visible to torch: GPU benchmarks skipped"}]
    out: list[Subject] = []
    for name, path in models:
        for graphs in (False, True):
            out.append(
                TorchCudaSubject(
                    name=f"{name} · cuda fp16 {'graphs' if graphs else 'eager'}",
                    path=path,
                    cuda_graphs=graphs,
                    max_length=max_length,
                )
            )
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        for a in artifacts:
            out.append(
                ArtifactSubject(
                    name=f"{a.name} · ort cuda",
                    path=a.path,
                    providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                )
            )
    return out, []
