"""Tower students (late interaction or bi-encoder) in the export skeleton: one artifact with their
query and product graphs.

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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.groups import QueryGroup
from .config import ExportConfig, ExportError
from .kind import TOKENIZER, Graphs, Lowered, dynamic_int8, save_tokenizer, tokenizer_section

TOWER_PRECISIONS = ("fp32", "int8-dynamic")
INPUTS = ["input_ids", "attention_mask"]
SEGMENT_INPUT = "token_type_ids"
OUTPUT = "vectors"
ROLES = ("query", "product")
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
    """Per role: the file, its inputs, its output and (shared graph) the segment to feed. A shared
    encoder that reads no token types gives identical towers: one two-input graph serves both roles."""
    from ..modeling.towers import PRODUCT_SEGMENT, QUERY_SEGMENT

    if not model.spec.shared:
        return {r: {"file": f"{r}.onnx", "inputs": INPUTS, "outputs": [OUTPUT]} for r in ROLES}
    if not model.uses_segments:
        return {r: {"file": SHARED_GRAPH, "inputs": INPUTS, "outputs": [OUTPUT]} for r in ROLES}
    segments = {"query": QUERY_SEGMENT, "product": PRODUCT_SEGMENT}
    return {
        r: {"file": SHARED_GRAPH, "inputs": INPUTS + [SEGMENT_INPUT], "outputs": [OUTPUT], "segment": segments[r]}
        for r in ROLES
    }


def export_tower_graph(model, tokenizer, out: Path, product: bool, inputs: list[str], opset: int) -> None:
    """Trace one graph with dynamic batch and sequence axes (eager attention, as ``onnx.export_onnx``)."""
    import torch

    from ..modeling.towers import tokenize_texts
    from .onnx import use_eager_attention

    for encoder in {id(m): m for m in (model.query_encoder, model.product_encoder) if m is not None}.values():
        use_eager_attention(encoder)
    sample = tokenize_texts(tokenizer, ["cordless drill", "red garden hose with a brass nozzle"], 16)
    if SEGMENT_INPUT in inputs:  # a mixed sample, so the traced graph really reads the segment
        sample[SEGMENT_INPUT] = torch.tensor([[0], [1]]).expand_as(sample["input_ids"]).contiguous()
    axes = {n: {0: "batch", 1: "sequence"} for n in inputs}
    out_axes = {0: "batch", 1: "sequence"} if model.spec.kind == "late-interaction" else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _graph_module(model, product),
            tuple(sample[n] for n in inputs),
            str(out),
            input_names=inputs,
            output_names=[OUTPUT],
            dynamic_axes={**axes, OUTPUT: out_axes},
            opset_version=opset,
            dynamo=False,
        )


def _onnx_scores(model, tokenizer, sessions: dict, graphs: dict, groups) -> list[np.ndarray]:
    """Scores of each group through the exported graphs: ORT vectors, the student's own interaction."""
    import torch

    from ..modeling.towers import tokenize_texts

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


@dataclass
class TowerExport:
    """A saved tower student (``modeling.towers.load_towers``), loaded for export."""

    model_dir: Path
    config: ExportConfig
    model: Any  # modeling.towers.TowerStudent
    tokenizer: Any

    @classmethod
    def load(cls, model_dir: Path, config: ExportConfig) -> TowerExport:
        """Refuses, before loading anything, the options that do not apply to towers."""
        from ..modeling import load_tokenizer
        from ..modeling.towers import load_towers

        check_options(model_dir, config)
        return cls(model_dir, config, load_towers(model_dir), load_tokenizer(model_dir))

    @property
    def kind(self) -> str:
        return self.model.spec.kind

    @property
    def positions(self) -> int | None:
        from ..modeling import max_positions

        return max_positions(self.model.query_encoder)

    @property
    def lengths(self) -> dict[str, int]:
        return {
            "query_max_length": self.model.spec.query_max_length,
            "product_max_length": self.model.spec.product_max_length,
        }

    @property
    def source(self) -> dict[str, Any]:
        from ..modeling import count_parameters

        return {"architecture": type(self.model.query_encoder).__name__, "parameters": count_parameters(self.model)}

    def write_files(self, folder: Path) -> None:
        save_tokenizer(self.model_dir, self.tokenizer, folder / TOKENIZER)

    def convert(self, scratch: Path) -> Graphs:
        """One graph per distinct file of the plan: the shared graph is traced once, for the product role."""
        roles = {entry["file"]: (role, entry) for role, entry in graph_plan(self.model).items()}
        for name, (role, entry) in roles.items():
            export_tower_graph(
                self.model,
                self.tokenizer,
                scratch / f"fp32-{name}",
                product=role == "product",
                inputs=entry["inputs"],
                opset=self.config.opset,
            )
        return {name: scratch / f"fp32-{name}" for name in roles}

    def reference(self, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        from ..modeling.towers import score_tower_groups

        return score_tower_groups(self.model, self.tokenizer, groups)

    gate_reference = reference  # the towers converted are the source towers

    def scores(self, graphs: Graphs, folder: Path, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        from .scoring import ort_session

        plan = graph_plan(self.model)
        sessions = {name: ort_session(path) for name, path in graphs.items()}
        return _onnx_scores(self.model, self.tokenizer, {r: sessions[plan[r]["file"]] for r in ROLES}, plan, groups)

    def lower(self, fp32: Graphs, scratch: Path, folder: Path) -> Lowered:
        if self.config.precision == "fp32":
            return Lowered(dict(fp32), "fp32")
        graphs = {name: scratch / f"int8-{name}" for name in fp32}
        done = {
            name: dynamic_int8(self.config, fp32[name], graphs[name], embeddings=self.config.quantize_embeddings)
            for name in fp32
        }
        # one set of settings for every graph: the first one's says it
        return Lowered(graphs, self.config.precision, {"quantization": next(iter(done.values()))})

    def manifest(self, folder: Path, lowered: Lowered, groups: Sequence[QueryGroup]) -> dict[str, Any]:
        spec = self.model.spec
        return {
            "graphs": graph_plan(self.model),
            "tokenizer": tokenizer_section(self.tokenizer, spec.product_max_length, pair=False),
            "towers": {
                "dim": spec.dim,
                "interaction": spec.interaction,
                "scale": self.model.scale.item(),
                "bias": self.model.bias.item(),
                "query_max_length": spec.query_max_length,
                "product_max_length": spec.product_max_length,
                "store_dtype": STORE_DTYPE,
                "shared_encoder": spec.shared,
                "layers": spec.layers,
            },
        }


def check_options(model_dir: Path, config: ExportConfig) -> None:
    """Towers ship fp32 or int8-dynamic graphs for CPU targets, with the source vocabulary."""
    if config.prune_vocab:
        raise ExportError(f"{model_dir}: --prune-vocab is implemented for cross-encoders only, not catalog students")
    if config.precision not in TOWER_PRECISIONS:
        raise ExportError(
            f"--precision {config.precision}: tower artifacts are exported as {' or '.join(TOWER_PRECISIONS)}"
        )
    if config.target in ("cuda", "tensorrt") or config.optimize:
        raise ExportError(
            "tower artifacts support the CPU targets (portable, cpu-avx2, cpu-avx512-vnni, arm64), "
            "without --optimize (ONNX Runtime fuses the graphs when it loads them)"
        )
