"""PyTorch backend for GPU boxes that already run torch: the artifact's source model in fp16, replayed
through CUDA graphs.

CUDA graphs remove per-kernel launch overhead (dozens of small kernels per BERT layer), which is
most of a small student's GPU time at kiosk batch sizes. A graph has fixed shapes, so each batch is
padded up to a shape bucket (batch: next power of two; length: next multiple of ``SEQ_STEP``) with
masked positions and rows, which change no real pair's score; one graph is captured per bucket the
first time it is seen. If capture fails (a model with data-dependent control flow), that bucket runs
eagerly and ``describe()`` says so.

On CPU (``device="cpu"``) it runs eagerly in fp32: that is how the parity tests exercise the
loading, input and padding code here. CUDA, fp16 and graph capture are NOT exercised in CI (no GPU).
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...artifact import Artifact
from ..errors import BackendError
from . import missing_library, scores_from_output

SEQ_STEP = 32
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def bucket_shape(batch: int, seq: int, max_length: int) -> tuple[int, int]:
    """The padded (batch, length) a CUDA graph is captured for: few distinct shapes, little padding."""
    padded_batch = 1 << max(0, (batch - 1).bit_length())
    padded_seq = min(-(-seq // SEQ_STEP) * SEQ_STEP, max(seq, max_length))
    return padded_batch, padded_seq


def pad_feeds(feeds: Mapping[str, np.ndarray], names: Sequence[str], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Zero-pad every input to ``shape``; attention_mask 0 keeps the padding out of real rows' scores."""
    out = {}
    for n in names:
        arr = np.zeros(shape, dtype=np.int64)
        src = feeds[n]
        arr[: src.shape[0], : src.shape[1]] = src
        out[n] = arr
    return out


class TorchBackend:
    name = "torch-cuda"
    max_batch_size = None

    def __init__(self, model_dir: Path, *, device: str, dtype: str, cuda_graphs: bool, max_length: int):
        try:
            import torch
            from transformers import AutoModelForSequenceClassification
        except ImportError as e:
            raise missing_library("torch-cuda", "torch and transformers", e) from None
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("backend 'torch-cuda': torch sees no CUDA device here")
        if cuda_graphs and not device.startswith("cuda"):
            raise BackendError("CUDA graphs need a CUDA device; pass cuda_graphs=False on CPU")
        if dtype not in ("float16", "bfloat16", "float32"):
            raise BackendError(f"dtype must be float16, bfloat16 or float32, got {dtype!r}")
        self._torch = torch
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                str(model_dir), num_labels=1, dtype=torch.float32
            )
        except (OSError, ValueError) as e:
            raise BackendError(f"{model_dir}: cannot load the source model ({str(e).splitlines()[0]})") from None
        self._model = model.eval().to(device=device, dtype=getattr(torch, dtype))
        accepted = inspect.signature(self._model.forward).parameters
        self.input_names = tuple(n for n in _INPUTS if n in accepted)
        self.device, self.dtype, self.max_length = device, dtype, max_length
        self._graphs: dict[tuple[int, int], Any] | None = {} if cuda_graphs else None
        self._eager_buckets: dict[tuple[int, int], str] = {}
        self._pool = torch.cuda.graph_pool_handle() if cuda_graphs else None
        self._lock = threading.Lock()

    def _forward(self, tensors: Mapping[str, Any]):
        return self._model(**tensors).logits

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        batch, seq = feeds[self.input_names[0]].shape
        if self._graphs is None:
            with torch.inference_mode():
                tensors = {
                    n: torch.from_numpy(np.ascontiguousarray(feeds[n], dtype=np.int64)).to(self.device)
                    for n in self.input_names
                }
                return scores_from_output(self._forward(tensors).float().cpu().numpy(), batch)
        shape = bucket_shape(batch, seq, self.max_length)
        padded = pad_feeds(feeds, self.input_names, shape)
        with self._lock:  # graphs replay into shared static buffers
            graph = self._graph(shape)
            with torch.inference_mode():
                if graph is None:
                    tensors = {n: torch.from_numpy(a).to(self.device) for n, a in padded.items()}
                    out = self._forward(tensors)
                else:
                    cuda_graph, static_in, out = graph
                    for n, a in padded.items():
                        static_in[n].copy_(torch.from_numpy(a), non_blocking=False)
                    cuda_graph.replay()
                result = out[:batch].float().cpu().numpy()
        return scores_from_output(result, batch)

    def _graph(self, shape: tuple[int, int]):
        """The captured graph for ``shape`` (capturing it on first use), or None where capture failed."""
        if shape in self._eager_buckets:
            return None
        if shape not in self._graphs:
            torch = self._torch
            static_in = {n: torch.zeros(shape, dtype=torch.long, device=self.device) for n in self.input_names}
            try:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.no_grad(), torch.cuda.stream(side):
                    for _ in range(2):  # warm-up outside the graph, as the CUDA-graph docs require
                        self._forward(static_in)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.no_grad(), torch.cuda.graph(graph, pool=self._pool):
                    out = self._forward(static_in)
            except RuntimeError as e:
                reason = str(e).splitlines()[0]
                self._eager_buckets[shape] = reason
                warnings.warn(
                    f"CUDA graph capture failed for shape {shape}; running it eagerly ({reason})",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
            self._graphs[shape] = (graph, static_in, out)
        return self._graphs[shape]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": self.device,
            "dtype": self.dtype,
            "cuda_graphs": None if self._graphs is None else sorted(self._graphs),
            "eager_buckets": dict(self._eager_buckets),
        }


OPTIONS = ("model_dir", "device", "dtype", "cuda_graphs")


def load(
    artifact: Artifact,
    role: str,
    model_dir: str | None = None,
    device: str = "cuda",
    dtype: str = "float16",
    cuda_graphs: bool = True,
) -> TorchBackend:
    """``model_dir``: the Hugging Face folder the artifact was exported from (by default the manifest's
    ``source.model``). The ONNX graph is not used: torch runs the source weights directly."""
    if role != "model":
        raise BackendError(f"backend 'torch-cuda' runs cross-encoders only (no '{role}' graph support)")
    path = Path(model_dir or (artifact.manifest.get("source") or {}).get("model") or "")
    if not (path / "config.json").is_file():
        raise BackendError(
            f"backend 'torch-cuda' needs the artifact's source model folder; {str(path) or 'none'} "
            "has no config.json (pass model_dir=PATH)"
        )
    max_length = int((artifact.manifest.get("tokenizer") or {}).get("max_length", 512))
    return TorchBackend(path, device=device, dtype=dtype, cuda_graphs=cuda_graphs, max_length=max_length)
