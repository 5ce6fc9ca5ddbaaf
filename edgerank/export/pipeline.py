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

import numpy as np

from .. import __version__
from ..artifact import sha256_file, write_manifest_and_checksums
from ..io import atomic_dir
from .config import ExportConfig, ExportError
from .onnx import export_onnx, parity, parity_groups
from .probability import sigmoid_map
from .scoring import graph_scorer, pair_tokenizer, score_groups

GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
HF_FILES = {"config": "config.json", "tokenizer_config": "tokenizer_config.json"}
BUILD_SCRIPT = "build_engine.sh"


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


def save_hf_config(model, tokenizer, dest: Path) -> dict[str, str]:
    """The graph's model config and tokenizer config, beside the graph: with them the artifact folder
    alone is a model folder for optimum's ``ORTModelForSequenceClassification`` and
    sentence-transformers' ONNX backend (the bench's peers on the same graph), so neither needs the
    torch source folder, which a device copy of the artifact does not have. The runtime reads neither."""
    model.config.to_json_file(dest / HF_FILES["config"])
    with tempfile.TemporaryDirectory(prefix="edgerank-hf-") as tmp:
        tokenizer.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / HF_FILES["tokenizer_config"], dest / HF_FILES["tokenizer_config"])
    return dict(HF_FILES)


def export_artifact(model_dir: str | os.PathLike, out: str | os.PathLike, precision: str | None = None,
                    max_length: int = 128, *, archive: str | os.PathLike | None = None,
                    read_kwargs: dict[str, Any] | None = None, **options: Any) -> Path:
    """Export ``model_dir`` (a Hugging Face cross-encoder folder) to an artifact folder at ``out``.

    ``precision`` is fp32 / fp16 / int8-dynamic / int8-static (default: the profile's, else fp32);
    ``options`` are further ``ExportConfig`` fields. ``read_kwargs`` (columns, label_map,
    gain_offset) apply to the eval and calibration tables. ``archive`` also writes the one-file
    (zip) form. Raises ``ExportError`` (nothing written) when parity or the quality gate fails.
    """
    from ..modeling import load_cross_encoder, load_tokenizer
    from .profiles import load_profile

    config = ExportConfig(precision=precision, max_length=max_length, **options)
    profile = load_profile(config.profile) if config.profile else None
    config.resolve(profile)
    if config.target == "tensorrt":
        from .tensorrt import check_sequence

        check_sequence(profile, config.max_length)
    model_dir, out = Path(model_dir), Path(out)
    read_kwargs = dict(read_kwargs or {})
    from ..train.towers import is_tower_folder

    if is_tower_folder(model_dir):  # a catalog student: two tower graphs (export/towers.py)
        from .towers import export_towers

        if config.prune_vocab:
            raise ExportError(f"{model_dir}: --prune-vocab is implemented for cross-encoders only, not catalog students")

        return export_towers(model_dir, out, config, read_kwargs=read_kwargs, archive=archive)
    table_kwargs = {k: v for k, v in read_kwargs.items() if k in ("columns", "label_map")}
    source_model = model = load_cross_encoder(model_dir, require_head=config.require_head)
    source_tokenizer = tokenizer = load_tokenizer(model_dir)
    pruned = None
    if config.prune_vocab:  # the graph is built from the pruned copy; the gate compares with the source
        from .vocab import prune_vocabulary, vocabulary_texts

        pruned = prune_vocabulary(model, tokenizer, vocabulary_texts(config.prune_vocab, table_kwargs.get("columns")))
        model, tokenizer = pruned.model, pruned.tokenizer

    with atomic_dir(out) as folder, tempfile.TemporaryDirectory(prefix="edgerank-export-") as scratch:
        scratch = Path(scratch)
        if pruned is not None:
            (folder / TOKENIZER).write_text(pruned.tokenizer_json, encoding="utf-8")
        else:
            save_tokenizer(model_dir, tokenizer, folder / TOKENIZER)
        hf = save_hf_config(model, tokenizer, folder)
        ort_tokenizer = pair_tokenizer(folder / TOKENIZER, config.max_length, tokenizer.pad_token_id,
                                       tokenizer.pad_token)
        fp32 = scratch / "fp32.onnx"
        inputs = export_onnx(model, tokenizer, fp32, opset=config.opset)

        groups, source = parity_groups(config.eval_data or config.calibration, **table_kwargs)
        reference = _torch_scores(model, tokenizer, groups, config.max_length)
        checks = {"source": source, "pairs": int(sum(len(g.texts) for g in groups))}

        def scores(graph_file: Path) -> list[np.ndarray]:  # the runtime's scorer, on a graph not yet shipped
            return score_groups(graph_scorer(graph_file, folder / TOKENIZER, config.max_length,
                                             tokenizer.pad_token_id), groups)

        checks["fp32"] = _parity_ok(config, reference, scores(fp32), model_dir, "fp32 ONNX")

        graph, details = _convert(config, fp32, scratch, model.config, ort_tokenizer, inputs, table_kwargs)
        if graph != fp32 and details["graph_precision"] == "fp32":  # fused, still fp32: same tolerance
            checks["optimized"] = _parity_ok(config, reference, scores(graph), model_dir, "optimized fp32 ONNX")
        elif graph != fp32:  # lower precision: recorded here, judged by the quality gate
            checks[details["graph_precision"]] = parity(reference, scores(graph))
        shutil.copyfile(graph, folder / GRAPH)

        vocabulary = None
        if pruned is not None:
            from .vocab import unchanged_share

            vocabulary = pruned.summary | {"from": [str(p) for p in config.prune_vocab], "unchanged_parity_pairs":
                                           unchanged_share(source_tokenizer, tokenizer, [g.query for g in groups for _ in g.texts],
                                                           [t for g in groups for t in g.texts])}
        manifest = {
            "edgerank_version": __version__,
            "kind": "cross-encoder",
            "source": {"model": str(model_dir.resolve()), "sha256": folder_sha256(model_dir),
                       "architecture": type(model).__name__,
                       "parameters": int(sum(p.numel() for p in source_model.parameters()))},
            "precision": config.precision,
            "graph_precision": details.pop("graph_precision"),
            "target": config.target,
            "graphs": {"model": {"file": GRAPH, "inputs": inputs, "outputs": ["logits"]}},
            "tokenizer": {"file": TOKENIZER, "max_length": config.max_length, "truncation": "longest_first",
                          "pair": True, "pad_token": tokenizer.pad_token, "pad_id": tokenizer.pad_token_id,
                          "vocabulary": vocabulary},
            "hf": hf,
            "score": {"raw": "logit", "probability": sigmoid_map()},
            "calibration": details.pop("calibration", None),
            "parity": checks,
            "quality": None,
            "export": config.to_dict() | details,
        }
        if profile is not None:
            manifest["profile"] = profile.to_dict()
        if config.target == "tensorrt":
            manifest["tensorrt"] = _write_tensorrt(folder, profile, inputs)
        write_manifest_and_checksums(folder, manifest)
        if config.eval_data:  # gated through the runtime on the folder as written, then recorded in it
            manifest["quality"], manifest["score"]["probability"] = _gate(config, source_model, source_tokenizer,
                                                                          folder, read_kwargs)
            write_manifest_and_checksums(folder, manifest)
    if archive is not None:
        from ..artifact import pack

        pack(out, archive)
    return out


def _torch_scores(model, tokenizer, groups, max_length: int) -> list[np.ndarray]:
    from ..modeling import score_groups

    return score_groups(model, tokenizer, groups, max_length=max_length)


def _parity_ok(config: ExportConfig, reference, scores, model_dir: Path, what: str) -> dict[str, float]:
    """Parity of an fp32 graph's ``scores``, which must match torch to ``parity_atol`` or the export is broken."""
    result = parity(reference, scores)
    if result["max_abs_diff"] > config.parity_atol:
        raise ExportError(f"{model_dir}: {what} scores differ from torch by {result['max_abs_diff']:.2e} "
                          f"(> {config.parity_atol:g}): the export is broken")
    return result


def _convert(config: ExportConfig, fp32: Path, scratch: Path, model_config, ort_tokenizer, inputs,
             table_kwargs) -> tuple[Path, dict[str, Any]]:
    """The graph to ship for the requested precision and target, with what was done to it."""
    from .optimize import fuse, to_fp16
    from .quantize import quantize_dynamic_int8, quantize_embeddings_blockwise, quantize_static_qdq

    details: dict[str, Any] = {}
    graph, precision = fp32, config.precision
    if config.target == "tensorrt" and precision == "fp16":
        precision = "fp32"  # TensorRT builds fp16 itself from the fp32 graph (build flag --fp16)
    # TensorRT cannot parse GatherBlockQuantized: its int8 graphs keep the embedding table fp32
    block_embeddings = precision.startswith("int8") and config.quantize_embeddings and config.target != "tensorrt"
    if config.optimize:
        graph = scratch / "optimized.onnx"
        details["fused_ops"] = fuse(fp32, graph, model_config, fp16=precision == "fp16",
                                    embed_layer_norm=not block_embeddings)
    elif precision == "fp16":
        graph = scratch / "fp16.onnx"
        to_fp16(fp32, graph)
    if precision == "int8-dynamic":
        quantized = scratch / "int8-dynamic.onnx"
        details["quantization"] = quantize_dynamic_int8(graph, quantized, reduce_range=config.reduce_range,
                                                        per_channel=config.per_channel,
                                                        quantize_embeddings=block_embeddings,
                                                        weight_type=config.weight_type)
        graph = quantized
    elif precision == "int8-static":
        from .calibration import build_calibration_set, pair_reader

        calib = build_calibration_set(config.calibration, ort_tokenizer, n=config.calibration_size,
                                      seed=config.seed, **table_kwargs)
        quantized = scratch / "int8-static.onnx"
        details["quantization"] = quantize_static_qdq(
            fp32, quantized, pair_reader(ort_tokenizer, calib.queries, calib.texts, inputs,
                                         uniform=config.calibration_method != "minmax"),
            method=config.calibration_method, reduce_range=config.reduce_range, per_channel=config.per_channel,
            for_tensorrt=config.target == "tensorrt")
        if block_embeddings:
            details["quantization"]["embeddings"] = quantize_embeddings_blockwise(quantized, quantized)
        details["calibration"] = calib.summary | {"method": config.calibration_method}
        graph = quantized
    details["graph_precision"] = precision
    return graph, details


def _gate(config: ExportConfig, model, tokenizer, folder: Path, read_kwargs) -> tuple[dict, dict]:
    """Quality gate on ``config.eval_data``: the artifact in ``folder``, scored by the runtime, against
    the source torch model; raises ExportError (so nothing is written) when it fails. Returns the
    gate's numbers and the probability map fitted on the exported model's logits."""
    from .gate import run_gate

    return run_gate(folder, lambda groups: _torch_scores(model, tokenizer, groups, config.max_length),
                    config.eval_data, list_size=config.gate_list_size or None, seed=config.seed,
                    read_kwargs=read_kwargs, max_quality_drop=config.max_quality_drop,
                    min_agreement=config.min_agreement)


def _write_tensorrt(folder: Path, profile, inputs) -> dict[str, Any]:
    from .tensorrt import build_script, engine_flags, trtexec_command

    script = folder / BUILD_SCRIPT
    script.write_text(build_script(profile, inputs))
    script.chmod(0o755)
    return {"profile": profile.name, "build_script": BUILD_SCRIPT, "flags": list(engine_flags(profile.precision)),
            "command": trtexec_command(profile, inputs)}
