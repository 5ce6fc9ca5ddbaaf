"""Replaceable backends that run one graph of an artifact; the ranker never knows which one it has.

A backend takes int64 ``input_ids`` / ``attention_mask`` / ``token_type_ids`` batches (only the
names in its ``input_names``) and returns one float32 score per row. Each is opened per artifact
*role* (``model`` for a cross-encoder; ``query`` / ``product`` towers for the catalog students),
so a new artifact kind reuses the backends unchanged.

Each backend module has ``load(artifact, role, **options)`` and ``OPTIONS``, the option names it
takes. Optional backends import their library only when opened, with the pip extra to install in
the error, so ``pip install edgerank`` stays onnxruntime + tokenizers + numpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from ...artifact import Artifact, ArtifactError
from ..errors import BackendError

#: backend name -> (module in this package, pip extra it needs or None)
BACKENDS: dict[str, tuple[str, str | None]] = {
    "onnxruntime": ("onnxruntime", None),
    "tensorrt": ("tensorrt", "runtime-tensorrt"),
    "torch-cuda": ("torch_cuda", "runtime-torch"),
}


class Backend(Protocol):
    name: str
    input_names: tuple[str, ...]
    #: the largest batch the backend accepts (a TensorRT profile's max), or None for no limit
    max_batch_size: int | None

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """float32 scores, shape (batch,)."""

    def describe(self) -> dict[str, Any]:
        """What runs where, for logs, /health and bench reports."""


def open_backend(name: str, artifact: Artifact, role: str = "model", **options: Any) -> Backend:
    """Open ``role``'s graph of ``artifact`` with backend ``name``; options go to that backend only."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module = importlib.import_module(f".{BACKENDS[name][0]}", __name__)
    unknown = sorted(set(options) - set(module.OPTIONS))
    if unknown:
        raise BackendError(
            f"backend {name!r} does not take {', '.join(unknown)} "
            f"(it takes: {', '.join(module.OPTIONS) or 'no options'})"
        )
    return module.load(artifact, role, **options)


def missing_library(backend: str, library: str, error: ImportError) -> BackendError:
    """The error for an optional backend whose library is not installed, with the extra to install."""
    extra = BACKENDS[backend][1]
    return BackendError(
        f"backend {backend!r} needs {library} ({error}); install it with pip install 'edgerank[{extra}]'"
    )


def scores_from_output(out: Any, batch: int) -> np.ndarray:
    """One float32 score per row from a graph output of shape (batch,) or (batch, 1).

    A graph with several outputs per row (a two-class head, say) is refused rather than read from
    an arbitrary column: its scores would rank, just wrongly.
    """
    out = np.asarray(out, dtype=np.float32)
    if out.size != batch:
        raise ArtifactError(
            f"graph returned shape {out.shape} for {batch} pairs; a cross-encoder "
            "artifact must return one relevance logit per pair"
        )
    return out.reshape(batch)
