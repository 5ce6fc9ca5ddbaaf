"""TensorRT-engine backend: runs a serialized engine built by ``edgerank build-engine`` on an NVIDIA GPU.

Written against the TensorRT 10 Python API (name-based I/O tensors, ``execute_async_v3``) and
cuda-python's runtime bindings for buffers and the stream. NOT exercised in edgerank's CI: TensorRT
and a CUDA GPU are unavailable there; only the missing-library path is tested.

Device buffers are allocated once for the engine's optimisation-profile maximum and reused; one
execution context is not safe to use from several threads, so calls are serialised by a lock (the
GPU runs one batch at a time anyway).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...artifact import Artifact, ArtifactError
from ..errors import BackendError
from . import missing_library, scores_from_output

DEFAULT_ENGINE = "model.plan"


def _import_libraries():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise missing_library("tensorrt", "tensorrt", e) from None
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as e:
            raise missing_library("tensorrt", "cuda-python", e) from None
    return trt, cudart


def _check(result: Any) -> Any:
    """cuda-python returns (error, *values); turn a failure into a BackendError."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendError(f"CUDA runtime call failed: {err}")
    return rest[0] if len(rest) == 1 else tuple(rest) or None


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, engine_file: Path, device: int = 0):
        trt, cudart = _import_libraries()  # cached by load(), which imports them first for its error
        self._trt, self._cudart = trt, cudart
        _check(cudart.cudaSetDevice(device))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(engine_file.read_bytes())
        if self._engine is None:
            raise ArtifactError(
                f"{engine_file}: TensorRT cannot deserialize this engine (built by another "
                "TensorRT version or for another GPU? rebuild it with edgerank build-engine)"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = tuple(n for n in names if is_input[n])
        self._output = next(n for n in names if not is_input[n])
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        low, _, high = self._engine.get_tensor_profile_shape(self.input_names[0], 0)
        self.max_batch_size, self.max_length = int(high[0]), int(high[1])
        self._min_shape = (int(low[0]), int(low[1]))
        for n in self.input_names:  # size every buffer for the profile's largest shape
            self._context.set_input_shape(n, (self.max_batch_size, self.max_length))
        shapes = {n: tuple(self._context.get_tensor_shape(n)) for n in names}
        self._buffers = {
            n: _check(cudart.cudaMalloc(int(np.prod(shapes[n])) * self._dtypes[n].itemsize)) for n in names
        }
        for n in names:
            self._context.set_tensor_address(n, int(self._buffers[n]))
        self._stream = _check(cudart.cudaStreamCreate())
        self._lock = threading.Lock()
        self.device = device

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        cudart = self._cudart
        batch, seq = feeds[self.input_names[0]].shape
        if batch > self.max_batch_size or seq > self.max_length:
            raise BackendError(
                f"batch {batch} x {seq} tokens exceeds the engine's profile ({self.max_batch_size} x {self.max_length})"
            )
        # below the profile's minimum, pad with masked positions/rows (they change no real score)
        shape = (max(batch, self._min_shape[0]), max(seq, self._min_shape[1]))
        host = {}
        for n in self.input_names:
            arr = np.zeros(shape, dtype=self._dtypes[n])
            arr[:batch, :seq] = feeds[n]
            host[n] = arr
        with self._lock:
            for n, arr in host.items():
                self._context.set_input_shape(n, shape)
                _check(
                    cudart.cudaMemcpyAsync(
                        int(self._buffers[n]),
                        arr.ctypes.data,
                        arr.nbytes,
                        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                        self._stream,
                    )
                )
            if not self._context.execute_async_v3(int(self._stream)):
                raise BackendError("TensorRT execution failed (see the TensorRT log above)")
            out = np.empty(tuple(self._context.get_tensor_shape(self._output)), dtype=self._dtypes[self._output])
            _check(
                cudart.cudaMemcpyAsync(
                    out.ctypes.data,
                    int(self._buffers[self._output]),
                    out.nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                    self._stream,
                )
            )
            _check(cudart.cudaStreamSynchronize(self._stream))
        return scores_from_output(out.reshape(shape[0], -1)[:batch], batch)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": self.device,
            "trt_version": self._trt.__version__,
            "profile_max": [self.max_batch_size, self.max_length],
        }

    def close(self) -> None:
        for ptr in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers = {}
        self._cudart.cudaStreamDestroy(self._stream)


OPTIONS = ("engine", "device")


def load(artifact: Artifact, role: str, engine: str | None = None, device: int = 0) -> TensorRTBackend:
    """``engine``: a serialized engine file. By default the one the manifest names for ``role``
    (``graphs.<role>.engine``), else ``model.plan`` in the artifact folder, where the artifact's
    ``build_engine.sh`` writes it. Engines are built per GPU and TensorRT version, on the device,
    so they are not covered by the artifact's checksums."""
    _import_libraries()
    if engine is None:
        engine = artifact.file(artifact.graph(role).get("engine") or DEFAULT_ENGINE, listed=False)
        if not engine.is_file():
            raise BackendError(
                f"{artifact.path}: no TensorRT engine ({engine.name}) for the '{role}' graph; build "
                "one on the device with `edgerank build-engine` or pass engine=PATH"
            )
    path = Path(engine)
    if not path.is_file():
        raise BackendError(f"{path}: TensorRT engine file not found")
    return TensorRTBackend(path, device)
