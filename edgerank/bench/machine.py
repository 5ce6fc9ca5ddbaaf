"""Describe the machine a benchmark ran on, so recorded numbers can be read (and compared) later.

INT8 speed depends on VNNI/AMX, fp32 on AVX2/AVX-512, so the CPU flags that matter to transformer
inference are recorded next to the CPU model, the cores, the memory and every library version.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from pathlib import Path
from typing import Any

#: CPU flags that change which kernels ONNX Runtime and torch pick for transformer inference.
RELEVANT_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "asimddp",
    "sve",
)
LIBRARIES = (
    "edgerank",
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "tokenizers",
    "torch",
    "transformers",
    "sentence-transformers",
    "optimum-onnx",
)


def _cpuinfo() -> tuple[str | None, set[str]]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return None, set()
    model, flags = None, set()
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


def describe_machine() -> dict[str, Any]:
    """CPU model and relevant flags, cores, memory, OS, Python, library versions, GPU if any."""
    model, flags = _cpuinfo()
    info: dict[str, Any] = {
        "cpu": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cpu_flags": [f for f in RELEVANT_FLAGS if f in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": {},
    }
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 1024**3, 1)
        info["load_average"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    except ImportError:
        pass
    for lib in LIBRARIES:
        try:
            info["libraries"][lib] = md.version(lib)
        except md.PackageNotFoundError:
            continue
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    from .gpu import cuda_device

    info["gpu"] = cuda_device()
    return info
