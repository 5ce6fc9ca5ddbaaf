"""``export_artifact``: a model (folder or Hub id) in, a verified artifact folder out.

One skeleton for every model kind, in named steps: resolve the options -> load the kind -> convert
to fp32 ONNX -> check parity with torch -> lower (fuse, fp16, INT8) -> write the manifest -> gate
through the runtime -> record the gate. What differs between cross-encoders and tower students is
plugged in (``kind.ModelExport``: ``cross_encoder.py``, ``towers.py``).

Every intermediate graph lives in a scratch folder and the artifact is assembled in a temporary
sibling of ``out`` that replaces it only when parity and the quality gate have passed, so a failed
export leaves nothing behind — and a previous artifact at ``out`` untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artifact import pack, sha256_file, write_manifest_and_checksums
from ..core.groups import QueryGroup
from ..io import atomic_dir
from .config import ExportConfig, ExportError
from .kind import Lowered, ModelExport, table_kwargs
from .onnx import parity, parity_groups
from .probability import sigmoid_map


def export_artifact(
    model: str | os.PathLike,
    out: str | os.PathLike,
    precision: str | None = None,
    max_length: int = 128,
    *,
    archive: str | os.PathLike | None = None,
    read_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> Path:
    """Export ``model`` (a cross-encoder or tower student: a folder, a Hugging Face Hub id or a packaged
    shortcut, resolved as ``edgerank export --model`` resolves it) to an artifact folder at ``out``.

    ``precision`` is fp32 / fp16 / int8-dynamic / int8-static (default: the profile's, else fp32);
    ``options`` are further ``ExportConfig`` fields. ``read_kwargs`` (columns, label_map,
    gain_offset) apply to the eval and calibration tables. ``archive`` also writes the one-file
    (zip) form. Raises ``ExportError`` (nothing written) when an option does not apply, parity or
    the quality gate fails.
    """
    config, profile = resolve_options(ExportConfig(precision=precision, max_length=max_length, **options))
    read_kwargs, out = dict(read_kwargs or {}), Path(out)
    plan = load_kind(model, config, profile, table_kwargs(read_kwargs))
    groups, source = parity_groups(config.eval_data or config.calibration, **table_kwargs(read_kwargs))
    with atomic_dir(out) as folder, tempfile.TemporaryDirectory(prefix="edgerank-export-") as scratch:
        plan.write_files(folder)
        lowered, checks = convert_and_check(plan, config, folder, Path(scratch), groups)
        checks = {"source": source, "pairs": int(sum(len(g.texts) for g in groups)), **checks}
        manifest = build_manifest(plan, config, profile, lowered, checks, plan.manifest(folder, lowered, groups))
        write_manifest_and_checksums(folder, manifest)
        if config.eval_data:  # gated through the runtime on the folder as written, then recorded in it
            gate_and_record(plan, config, folder, manifest, read_kwargs)
    if archive is not None:
        pack(out, archive)
    return out


def resolve_options(config: ExportConfig) -> tuple[ExportConfig, Any]:
    """``config`` completed from its profile (returned too, or None), refused before any work when
    its options contradict each other or the profile's TensorRT shapes."""
    from .profiles import load_profile

    profile = load_profile(config.profile) if config.profile else None
    config.resolve(profile)
    if config.target == "tensorrt":
        from .tensorrt import check_sequence

        check_sequence(profile, config.max_length)
    return config, profile


def load_kind(model: str | os.PathLike, config: ExportConfig, profile, tables: dict[str, Any]) -> ModelExport:
    """The export plug-in for ``model``: a tower student by its folder, else a cross-encoder. Options
    that do not apply to the kind, and sequence lengths past the model's positions, are refused here."""
    from ..modeling import model_folder
    from ..modeling.towers import is_tower_folder
    from .cross_encoder import CrossEncoderExport
    from .towers import TowerExport

    model_dir = model_folder(model)
    if is_tower_folder(model_dir):
        plan: ModelExport = TowerExport.load(model_dir, config)
    else:
        plan = CrossEncoderExport.load(model_dir, config, profile, tables)
    check_positions(plan)
    return plan


def check_positions(plan: ModelExport) -> None:
    """Every sequence the artifact will feed must fit the graphs' position table: the artifact loader
    would refuse the manifest, and a longer input would index past the table."""
    for option, length in plan.lengths.items():
        if plan.positions is not None and length > plan.positions:
            raise ExportError(
                f"{plan.model_dir}: {option} {length} is more than the {plan.positions} token positions "
                f"of {plan.source['architecture']} (from its max_position_embeddings); "
                f"use {plan.positions} or less"
            )


def convert_and_check(
    plan: ModelExport, config: ExportConfig, folder: Path, scratch: Path, groups: Sequence[QueryGroup]
) -> tuple[Lowered, dict[str, Any]]:
    """Convert to fp32 graphs, which must match torch; lower them, record how far they moved, and
    copy them into ``folder``. Returns the lowered graphs and the parity numbers."""
    fp32 = plan.convert(scratch)
    reference = plan.reference(groups)
    checks = {"fp32": within_tolerance(plan, config, reference, plan.scores(fp32, folder, groups), "fp32 ONNX")}
    lowered = plan.lower(fp32, scratch, folder)
    if lowered.graphs != fp32:
        checks |= lowered_parity(
            plan, config, reference, plan.scores(lowered.graphs, folder, groups), lowered.precision
        )
    for name, path in lowered.graphs.items():
        shutil.copyfile(path, folder / name)
    return lowered, checks


def within_tolerance(
    plan: ModelExport, config: ExportConfig, reference: Sequence[np.ndarray], scores: Sequence[np.ndarray], what: str
) -> dict[str, float]:
    """Parity of an fp32 graph's ``scores``, which must match torch to ``parity_atol`` or the export is broken."""
    result = parity(reference, scores)
    if result["max_abs_diff"] > config.parity_atol:
        raise ExportError(
            f"{plan.model_dir}: {what} scores differ from torch by {result['max_abs_diff']:.2e} "
            f"(> --parity-atol {config.parity_atol:g}): the export is broken. Nothing was written."
        )
    return result


def lowered_parity(
    plan: ModelExport,
    config: ExportConfig,
    reference: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    precision: str,
) -> dict[str, Any]:
    """A fused graph still in fp32 is held to the fp32 tolerance; a lower precision is only recorded
    here, and judged by the quality gate."""
    if precision == "fp32":
        return {"optimized": within_tolerance(plan, config, reference, scores, "optimized fp32 ONNX")}
    return {precision: parity(reference, scores)}


def build_manifest(
    plan: ModelExport, config: ExportConfig, profile, lowered: Lowered, checks: dict[str, Any], fields: dict[str, Any]
) -> dict[str, Any]:
    """The manifest: the fields every kind shares around the kind's own ``fields`` (``graphs``,
    ``tokenizer`` and its sections), each graph entry naming its position limit (``max_positions``),
    which the artifact loader checks the tokenizer's ``max_length`` against."""
    for graph in fields["graphs"].values():
        if plan.positions is not None:
            graph["max_positions"] = plan.positions
    manifest = {
        "edgerank_version": __version__,
        "kind": plan.kind,
        "source": {"model": str(plan.model_dir.resolve()), "sha256": folder_sha256(plan.model_dir), **plan.source},
        "precision": config.precision,
        "graph_precision": lowered.precision,
        "target": config.target,
        **fields,
        "score": {"raw": "logit", "probability": sigmoid_map()},
        "calibration": lowered.calibration,
        "parity": checks,
        "quality": None,
        "export": config.to_dict() | lowered.details,
    }
    if profile is not None:
        manifest["profile"] = profile.to_dict()
    return manifest


def gate_and_record(
    plan: ModelExport, config: ExportConfig, folder: Path, manifest: dict[str, Any], read_kwargs: dict[str, Any]
) -> None:
    """The quality gate (``gate.run_gate``) on ``config.eval_data``: the artifact in ``folder``,
    scored by the runtime, against the source model; raises ExportError (nothing written) when it
    fails, else records its numbers and the probability map fitted on the exported logits."""
    from .gate import run_gate

    manifest["quality"], manifest["score"]["probability"] = run_gate(
        folder,
        plan.gate_reference,
        config.eval_data,
        list_size=config.gate_list_size or None,
        seed=config.seed,
        read_kwargs=read_kwargs,
        max_quality_drop=config.max_quality_drop,
        min_agreement=config.min_agreement,
    )
    write_manifest_and_checksums(folder, manifest)


def folder_sha256(path: Path) -> str:
    """One hash for a model folder: every file's name and content hash, in name order."""
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()
