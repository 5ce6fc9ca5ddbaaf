"""``export_artifact``: a teacher or student folder in, a verified artifact folder out.

Every intermediate graph lives in a scratch folder and the artifact is assembled in a temporary
sibling of ``out`` that replaces it only when parity and the quality gate have passed, so a failed
export leaves nothing behind — and a previous artifact at ``out`` untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .. import __version__
from ..artifact import sha256_file, write_manifest_and_checksums
from ..io import atomic_dir
from .config import ExportConfig, ExportError
from .onnx import export_onnx, parity, parity_groups
from .scoring import ort_session, pair_tokenizer, score_groups_onnx

GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"


def folder_sha256(path: Path) -> str:
    """One hash for a model folder: every file's name and content hash, in name order."""
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def save_tokenizer(model_dir: Path, tokenizer, dest: Path) -> None:
    """The model folder's own fast-tokenizer file if it has one (byte-identical), else the one the
    loaded tokenizer is built on."""
    if (model_dir / TOKENIZER).exists():
        shutil.copyfile(model_dir / TOKENIZER, dest)
    else:
        tokenizer.backend_tokenizer.save(str(dest))


def export_artifact(model_dir: str | os.PathLike, out: str | os.PathLike, precision: str = "fp32",
                    max_length: int = 128, *, archive: str | os.PathLike | None = None,
                    read_kwargs: dict[str, Any] | None = None, **options: Any) -> Path:
    """Export ``model_dir`` (a Hugging Face cross-encoder folder) to an artifact folder at ``out``.

    ``options`` are ``ExportConfig`` fields. ``read_kwargs`` (columns, label_map, gain_offset) apply
    to the eval and calibration tables. ``archive`` also writes the one-file (zip) form.
    Raises ``ExportError`` (nothing written) when parity or the quality gate fails.
    """
    from ..modeling import load_cross_encoder, load_tokenizer

    config = ExportConfig(precision=precision, max_length=max_length, **options)
    config.check()
    if config.precision != "fp32":  # the other precisions land in the next commit
        raise ExportError(f"--precision {config.precision}: not available yet in this build")
    model_dir, out = Path(model_dir), Path(out)
    read_kwargs = dict(read_kwargs or {})
    model = load_cross_encoder(model_dir, require_head=config.require_head)
    tokenizer = load_tokenizer(model_dir)

    with atomic_dir(out) as folder, tempfile.TemporaryDirectory(prefix="edgerank-export-") as scratch:
        scratch = Path(scratch)
        save_tokenizer(model_dir, tokenizer, folder / TOKENIZER)
        ort_tokenizer = pair_tokenizer(folder / TOKENIZER, config.max_length, tokenizer.pad_token_id,
                                       tokenizer.pad_token)
        fp32 = scratch / "fp32.onnx"
        inputs = export_onnx(model, tokenizer, fp32, opset=config.opset)

        groups, source = parity_groups(config.eval_data or config.calibration,
                                       **{k: v for k, v in read_kwargs.items() if k != "gain_offset"})
        reference = _torch_scores(model, tokenizer, groups, config.max_length)
        fp32_parity = parity(reference, score_groups_onnx(ort_session(fp32), ort_tokenizer, groups))
        if fp32_parity["max_abs_diff"] > config.parity_atol:
            raise ExportError(f"{model_dir}: fp32 ONNX scores differ from torch by {fp32_parity['max_abs_diff']:.2e} "
                              f"(> {config.parity_atol:g}) on {source}: the export is broken")
        shutil.copyfile(fp32, folder / GRAPH)

        manifest = {
            "edgerank_version": __version__,
            "kind": "cross-encoder",
            "source": {"model": str(model_dir.resolve()), "sha256": folder_sha256(model_dir),
                       "architecture": type(model).__name__},
            "precision": config.precision,
            "target": config.target,
            "graphs": {"model": {"file": GRAPH, "inputs": inputs, "outputs": ["logits"]}},
            "tokenizer": {"file": TOKENIZER, "max_length": config.max_length, "truncation": "longest_first",
                          "pair": True, "pad_token": tokenizer.pad_token, "pad_id": tokenizer.pad_token_id},
            "score": {"raw": "logit", "probability": {"method": "sigmoid", "temperature": 1.0, "bias": 0.0,
                                                      "formula": "p = 1 / (1 + exp(-(logit / temperature + bias)))"}},
            "calibration": None,
            "parity": {"source": source, "pairs": int(sum(len(g.texts) for g in groups)), "fp32": fp32_parity},
            "quality": None,
            "export": config.to_dict(),
        }
        write_manifest_and_checksums(folder, manifest)
    if archive is not None:
        from ..artifact import pack

        pack(out, archive)
    return out


def _torch_scores(model, tokenizer, groups, max_length: int):
    from ..modeling import score_groups

    return score_groups(model, tokenizer, groups, max_length=max_length)
