"""Engine building for an artifact: checks the artifact and profile before handing over to TensorRT."""

from __future__ import annotations

import os
from pathlib import Path

from .config import ExportError


def build_artifact_engine(artifact: str | os.PathLike, out: str | os.PathLike, profile: str | None = None) -> Path:
    """Verify the artifact, pick its profile (or ``profile``), refuse mismatches, then build.

    Everything up to the TensorRT import runs (and is tested) without TensorRT, so a wrong artifact
    or profile is reported as such rather than as a missing package."""
    from ..artifact import load_artifact
    from .profiles import load_profile
    from .tensorrt import build_engine, check_sequence, engine_flags, import_tensorrt

    art = load_artifact(artifact)
    name = profile or (art.manifest.get("tensorrt") or {}).get("profile")
    if name is None:
        raise ExportError(
            f"{art.path}: not exported for TensorRT (no 'tensorrt' section); pass --profile "
            "or re-export with --target tensorrt --profile NAME"
        )
    prof = load_profile(name)
    if prof.target != "tensorrt":
        raise ExportError(f"profile {prof.name} targets {prof.target}, not tensorrt")
    graph_precision = art.manifest.get("graph_precision", art.manifest.get("precision"))
    wants_qdq = prof.precision == "int8-static"
    if wants_qdq != (graph_precision == "int8-static") or graph_precision not in ("fp32", "int8-static"):
        raise ExportError(
            f"{art.path}: graph is {graph_precision}, profile {prof.name} needs "
            f"{'a QDQ (int8-static)' if wants_qdq else 'an fp32'} graph; re-export with --profile {prof.name}"
        )
    engine_flags(prof.precision)
    check_sequence(prof, art.manifest["tokenizer"]["max_length"])
    import_tensorrt()
    graph = art.graph()
    return build_engine(art.file(graph["file"]), prof, graph["inputs"], out)
