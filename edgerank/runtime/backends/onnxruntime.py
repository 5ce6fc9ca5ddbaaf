"""ONNX Runtime backend: the default, and the only one a runtime-only install has.

Session options are set for a latency-bound ranker on a small CPU: every graph optimisation
(ORT_ENABLE_ALL fuses attention/LayerNorm/GELU for transformer graphs), sequential execution (a
BERT graph is a chain; parallel node execution only adds scheduling cost), ``threads`` intra-op
threads, one inter-op thread. A session's ``run`` is thread-safe, so one session serves every thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...artifact import Artifact, ArtifactError
from ..errors import BackendError
from . import scores_from_output

#: short names users type, mapped to ONNX Runtime's execution provider names
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}
_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}

ProviderSpec = str | tuple[str, dict[str, Any]]


def resolve_providers(providers: Sequence[ProviderSpec] | str | None) -> list[ProviderSpec]:
    """Full provider names (with options where given), refusing any this onnxruntime build lacks."""
    import onnxruntime as ort

    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [p for p in providers.split(",") if p.strip()]
    available = ort.get_available_providers()
    out: list[ProviderSpec] = []
    for spec in providers:
        name, opts = spec if isinstance(spec, tuple) else (spec, None)
        full = PROVIDER_ALIASES.get(str(name).strip().lower(), str(name).strip())
        if full not in available:
            raise BackendError(
                f"execution provider {name!r} is not available in this onnxruntime "
                f"(available: {', '.join(available)}); GPU providers need onnxruntime-gpu "
                "or the vendor's onnxruntime build"
            )
        out.append((full, opts) if opts else full)
    if not out:
        raise BackendError(f"no execution provider given (available: {', '.join(available)})")
    return out


class OnnxRuntimeBackend:
    name = "onnxruntime"
    max_batch_size = None

    def __init__(
        self,
        model_file: str,
        *,
        providers: Sequence[ProviderSpec] | str | None = None,
        threads: int | None = None,
        output: str | None = None,
    ):
        import onnxruntime as ort

        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise BackendError(f"threads must be a positive integer, got {threads!r}")
        chosen = resolve_providers(providers)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = threads or 0
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model_file, so, providers=chosen)
        except Exception as e:  # onnxruntime raises its own pybind exception types
            raise ArtifactError(
                f"{model_file}: onnxruntime cannot load this graph ({str(e).splitlines()[0]})"
            ) from None
        running = self._session.get_providers()
        for spec in chosen:
            full = spec[0] if isinstance(spec, tuple) else spec
            if full not in running:  # ORT falls back to CPU with only a log line; say it loudly
                raise BackendError(
                    f"execution provider {full} could not start (its libraries or device are "
                    f"missing); the session would run on {', '.join(running)}"
                )
        self._dtypes = {i.name: _DTYPES.get(i.type) for i in self._session.get_inputs()}
        bad = {n: t.type for n, t in zip(self._dtypes, self._session.get_inputs()) if self._dtypes[n] is None}
        if bad:
            raise ArtifactError(f"{model_file}: graph inputs with unsupported types {bad} (need int64 or int32)")
        self.input_names = tuple(self._dtypes)
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = output if output in outputs else outputs[0]
        self.providers = running

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return scores_from_output(self.run_raw(feeds), len(feeds[self.input_names[0]]))

    def run_raw(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The graph's output as it is: the vectors of a catalog student's tower (runtime/towers.py)."""
        inputs = {n: np.ascontiguousarray(feeds[n], dtype=self._dtypes[n]) for n in self.input_names}
        (out,) = self._session.run([self._output], inputs)
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "providers": self.providers}


OPTIONS = ("providers", "threads")


def load(
    artifact: Artifact, role: str, providers: Sequence[ProviderSpec] | str | None = None, threads: int | None = None
) -> OnnxRuntimeBackend:
    graph = artifact.graph(role)
    outputs = graph.get("outputs") or [None]
    return OnnxRuntimeBackend(
        str(artifact.file(graph["file"])), providers=providers, threads=threads, output=outputs[0]
    )
