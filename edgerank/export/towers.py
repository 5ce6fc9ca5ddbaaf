"""Export a tower student (late interaction or bi-encoder) to one artifact with its query and product graphs.

Each graph takes ``input_ids`` / ``attention_mask`` and returns ``vectors``: per-token unit vectors
(zero at padding), shape (batch, tokens, dim), for late interaction, or one pooled unit vector per
text, (batch, dim), for the bi-encoder. Towers that share their encoder (the default) ship one graph,
``tower.onnx``, named by both roles: it also takes ``token_type_ids`` and each role records the
``segment`` to fill them with (query A = 0, product B = 1), so the weights are stored and loaded
once. Separate encoders ship ``query.onnx`` and ``product.onnx`` with the segment baked in.
The interaction (MaxSim or dot), its ``scale`` and ``bias`` are in the manifest's ``towers``
section; the runtime does them in numpy, where the catalog side is cached.

Parity is measured on scores (the interaction applied to the exported vectors, by the torch
student's own ``interact``) against the torch towers, on the same real query lists as the
cross-encoder export: fp32 must match within ``parity_atol``; INT8 is recorded.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artifact import write_manifest_and_checksums
from ..io import atomic_dir
from .config import ExportConfig, ExportError
from .onnx import parity, parity_groups, use_eager_attention
from .probability import sigmoid_map

TOWER_PRECISIONS = ("fp32", "int8-dynamic")
INPUTS = ["input_ids", "attention_mask"]
SEGMENT_INPUT = "token_type_ids"
OUTPUT = "vectors"
ROLES = ("query", "product")
SEGMENTS = {"query": 0, "product": 1}  # as train/towers.py's QUERY_SEGMENT / PRODUCT_SEGMENT
SHARED_GRAPH = "tower.onnx"
STORE_DTYPE = "float16"  # product vectors in the catalog index


def _graph_module(model, product: bool):
    """One tower as a module of (input_ids, attention_mask[, token_type_ids]) -> vectors, to trace."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            return self.model.encode(input_ids, attention_mask, product=product, token_type_ids=token_type_ids)

    return Tower().eval()


def graph_plan(model) -> dict[str, dict[str, Any]]:
    """Per role: the file, its inputs and (shared graph) the segment to feed. A shared encoder that
    reads no token types gives identical towers: one two-input graph serves both roles."""
    if not model.spec.shared:
        return {r: {"file": f"{r}.onnx", "inputs": INPUTS} for r in ROLES}
    if not model.uses_segments:
        return {r: {"file": SHARED_GRAPH, "inputs": INPUTS} for r in ROLES}
    return {r: {"file": SHARED_GRAPH, "inputs": INPUTS + [SEGMENT_INPUT], "segment": SEGMENTS[r]} for r in ROLES}


def export_tower_graph(model, tokenizer, out: Path, product: bool, inputs: list[str], opset: int) -> None:
    """Trace one graph with dynamic batch and sequence axes (eager attention, as ``onnx.export_onnx``)."""
    import torch

    from ..train.towers import tokenize_texts

    for encoder in {id(m): m for m in (model.query_encoder, model.product_encoder) if m is not None}.values():
        use_eager_attention(encoder)
    sample = tokenize_texts(tokenizer, ["cordless drill", "red garden hose with a brass nozzle"], 16)
    if SEGMENT_INPUT in inputs:  # a mixed sample, so the traced graph really reads the segment
        sample[SEGMENT_INPUT] = torch.tensor([[0], [1]]).expand_as(sample["input_ids"]).contiguous()
    axes = {n: {0: "batch", 1: "sequence"} for n in inputs}
    out_axes = {0: "batch", 1: "sequence"} if model.spec.kind == "late-interaction" else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(_graph_module(model, product), tuple(sample[n] for n in inputs),
                          str(out), input_names=inputs, output_names=[OUTPUT], dynamic_axes={**axes, OUTPUT: out_axes},
                          opset_version=opset, dynamo=False)


def _onnx_scores(model, tokenizer, sessions: dict, graphs: dict, groups) -> list[np.ndarray]:
    """Scores of each group through the exported graphs: ORT vectors, the student's own interaction."""
    import torch

    from ..train.towers import tokenize_texts

    spec, out = model.spec, []

    def vectors(role: str, texts, max_length: int):
        enc = tokenize_texts(tokenizer, texts, max_length)
        feed = {n: enc[n].numpy().astype(np.int64) for n in INPUTS}
        if "segment" in graphs[role]:
            feed[SEGMENT_INPUT] = np.full_like(feed["input_ids"], graphs[role]["segment"])
        return torch.from_numpy(sessions[role].run([OUTPUT], feed)[0]), enc["attention_mask"]

    with torch.no_grad():
        for g in groups:
            q, q_mask = vectors("query", [g.query], spec.query_max_length)
            p, p_mask = vectors("product", list(g.texts), spec.product_max_length)
            n = len(g.texts)
            sim = model.interact(q.expand(n, *q.shape[1:]), q_mask.expand(n, -1), p, p_mask)
            out.append((model.scale * sim + model.bias).numpy().astype(np.float32))
    return out


def export_towers(model_dir: Path, out: Path, config: ExportConfig, *, read_kwargs: dict[str, Any],
                  archive=None) -> Path:
    """Write the tower artifact at ``out`` (atomically); raises ``ExportError`` with nothing written
    when an option does not apply to towers, fp32 parity fails or the quality gate does."""
    from ..modeling import load_tokenizer
    from ..train.towers import load_towers, score_tower_groups
    from .pipeline import TOKENIZER, folder_sha256, save_tokenizer
    from .quantize import quantize_dynamic_int8
    from .scoring import ort_session

    if config.precision not in TOWER_PRECISIONS:
        raise ExportError(f"--precision {config.precision}: tower artifacts are exported as "
                          f"{' or '.join(TOWER_PRECISIONS)}")
    if config.target in ("cuda", "tensorrt") or config.optimize:
        raise ExportError("tower artifacts support the CPU targets (portable, cpu-avx2, cpu-avx512-vnni, arm64), "
                          "without --optimize "
                          "(ONNX Runtime fuses the graphs when it loads them)")
    model = load_towers(model_dir)
    tokenizer = load_tokenizer(model_dir)
    spec = model.spec
    table_kwargs = {k: v for k, v in read_kwargs.items() if k in ("columns", "label_map")}
    groups, source = parity_groups(config.eval_data or config.calibration, **table_kwargs)
    reference = score_tower_groups(model, tokenizer, groups)

    with atomic_dir(out) as folder, tempfile.TemporaryDirectory(prefix="edgerank-export-") as scratch:
        scratch = Path(scratch)
        save_tokenizer(model_dir, tokenizer, folder / TOKENIZER)
        graphs, fp32, quantization = graph_plan(model), {}, None
        for role in ROLES:
            name = graphs[role]["file"]
            graphs[role]["outputs"] = [OUTPUT]
            if name in fp32:  # the shared graph, already written for the other role
                continue
            fp32[name] = scratch / f"fp32-{name}"
            export_tower_graph(model, tokenizer, fp32[name], product=role == "product", inputs=graphs[role]["inputs"],
                               opset=config.opset)
            graph = fp32[name]
            if config.precision == "int8-dynamic":
                graph = scratch / f"int8-{name}"
                quantization = quantize_dynamic_int8(fp32[name], graph, reduce_range=config.reduce_range,
                                                     per_channel=config.per_channel,
                                                     quantize_embeddings=config.quantize_embeddings,
                                                     weight_type=config.weight_type)
            shutil.copyfile(graph, folder / name)

        checks: dict[str, Any] = {"source": source, "pairs": int(sum(len(g.texts) for g in groups))}
        fp32_sessions = {name: ort_session(path) for name, path in fp32.items()}
        checks["fp32"] = parity(reference, _onnx_scores(
            model, tokenizer, {r: fp32_sessions[graphs[r]["file"]] for r in ROLES}, graphs, groups))
        if checks["fp32"]["max_abs_diff"] > config.parity_atol:
            raise ExportError(f"{model_dir}: fp32 ONNX towers differ from torch by {checks['fp32']['max_abs_diff']:.2e} "
                              f"(> --parity-atol {config.parity_atol}) on {checks['pairs']} pairs from {source}. "
                              "Nothing was written.")
        if config.precision != "fp32":  # recorded here, judged by the quality gate (as for cross-encoders)
            shipped = {name: ort_session(folder / name) for name in fp32}
            sessions = {r: shipped[graphs[r]["file"]] for r in ROLES}
            checks[config.precision] = parity(reference, _onnx_scores(model, tokenizer, sessions, graphs, groups))
        manifest = {
            "edgerank_version": __version__,
            "kind": spec.kind,
            "source": {"model": str(model_dir.resolve()), "sha256": folder_sha256(model_dir),
                       "architecture": type(model.query_encoder).__name__,
                       "parameters": int(sum(p.numel() for p in model.parameters()))},
            "precision": config.precision,
            "graph_precision": config.precision,
            "target": config.target,
            "graphs": graphs,
            "tokenizer": {"file": TOKENIZER, "max_length": spec.product_max_length, "truncation": "longest_first",
                          "pair": False, "pad_token": tokenizer.pad_token, "pad_id": tokenizer.pad_token_id},
            "towers": {"dim": spec.dim, "interaction": spec.interaction, "scale": model.scale.item(),
                       "bias": model.bias.item(), "query_max_length": spec.query_max_length,
                       "product_max_length": spec.product_max_length, "store_dtype": STORE_DTYPE,
                       "shared_encoder": spec.shared, "layers": spec.layers},
            "score": {"raw": "logit", "probability": sigmoid_map()},
            "parity": checks,
            "quality": None,
            "export": config.to_dict() | ({"quantization": quantization} if quantization else {}),
        }
        write_manifest_and_checksums(folder, manifest)
        if config.eval_data:  # gated through the runtime on the folder as written, then recorded in it
            manifest["quality"], manifest["score"]["probability"] = _gate(config, model, tokenizer, folder,
                                                                          read_kwargs)
            write_manifest_and_checksums(folder, manifest)
    if archive is not None:
        from ..artifact import pack

        pack(out, archive)
    return out


def _gate(config: ExportConfig, model, tokenizer, folder: Path, read_kwargs: dict) -> tuple[dict, dict]:
    """The cross-encoders' quality gate (``gate.run_gate``) on ``config.eval_data``: the artifact in
    ``folder``, scored by the runtime, against the torch towers; raises ExportError (nothing written)
    when it fails. Returns its numbers and the fitted probability map."""
    from ..train.towers import score_tower_groups
    from .gate import run_gate

    return run_gate(folder, lambda groups: score_tower_groups(model, tokenizer, groups), config.eval_data,
                    list_size=config.gate_list_size or None, seed=config.seed, read_kwargs=read_kwargs,
                    max_quality_drop=config.max_quality_drop, min_agreement=config.min_agreement)
