"""Cross-encoders in the export skeleton: one graph, ``model.onnx``, from the tokenizer's inputs to
one ``logits`` column, scored for parity by the runtime's own scorer.

Lowering is where cross-encoders have the most choices: ONNX Runtime fusion, fp16, int8-dynamic and
int8-static (QDQ, calibrated on real pairs), INT8 word embeddings in blocks, and TensorRT targets
(which parse neither contrib ops nor block-quantized gathers). With ``prune_vocab`` the graph is
built from a copy with a pruned vocabulary, parity compares with that copy, and the quality gate
with the source model.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.groups import QueryGroup
from .config import ExportConfig
from .kind import TOKENIZER, Graphs, Lowered, dynamic_int8, save_tokenizer, tokenizer_section

GRAPH = "model.onnx"
HF_FILES = {"config": "config.json", "tokenizer_config": "tokenizer_config.json"}
BUILD_SCRIPT = "build_engine.sh"


@dataclass
class CrossEncoderExport:
    """A cross-encoder folder, loaded (and its vocabulary pruned when asked) for export."""

    model_dir: Path
    config: ExportConfig
    profile: Any  # profiles.TargetProfile, or None
    table_kwargs: dict[str, Any]
    source_model: Any
    source_tokenizer: Any
    pruned: Any = None  # vocab.PrunedVocabulary: the model and tokenizer the graph is built from

    kind = "cross-encoder"

    @classmethod
    def load(cls, model_dir: Path, config: ExportConfig, profile, table_kwargs: dict[str, Any]) -> CrossEncoderExport:
        from ..modeling import load_cross_encoder, load_tokenizer

        model = load_cross_encoder(model_dir, require_head=config.require_head)
        tokenizer = load_tokenizer(model_dir)
        pruned = None
        if config.prune_vocab:
            from .vocab import prune_vocabulary, vocabulary_texts

            pruned = prune_vocabulary(
                model, tokenizer, vocabulary_texts(config.prune_vocab, table_kwargs.get("columns"))
            )
        return cls(model_dir, config, profile, table_kwargs, model, tokenizer, pruned)

    @property
    def model(self):
        """The model the graph is built from."""
        return self.source_model if self.pruned is None else self.pruned.model

    @property
    def tokenizer(self):
        return self.source_tokenizer if self.pruned is None else self.pruned.tokenizer

    @property
    def inputs(self) -> list[str]:
        from .onnx import graph_inputs

        return graph_inputs(self.model, self.tokenizer)

    @property
    def positions(self) -> int | None:
        from ..modeling import max_positions

        return max_positions(self.model)

    @property
    def lengths(self) -> dict[str, int]:
        return {"--max-length": self.config.max_length}

    @property
    def source(self) -> dict[str, Any]:
        from ..modeling import count_parameters

        return {"architecture": type(self.model).__name__, "parameters": count_parameters(self.source_model)}

    def write_files(self, folder: Path) -> None:
        if self.pruned is not None:
            (folder / TOKENIZER).write_text(self.pruned.tokenizer_json, encoding="utf-8")
        else:
            save_tokenizer(self.model_dir, self.tokenizer, folder / TOKENIZER)
        save_hf_config(self.model, self.tokenizer, folder)

    def convert(self, scratch: Path) -> Graphs:
        from .onnx import export_onnx

        export_onnx(self.model, self.tokenizer, scratch / "fp32.onnx", opset=self.config.opset)
        return {GRAPH: scratch / "fp32.onnx"}

    def reference(self, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        from ..modeling import score_groups

        return score_groups(self.model, self.tokenizer, groups, max_length=self.config.max_length)

    def gate_reference(self, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        from ..modeling import score_groups

        return score_groups(self.source_model, self.source_tokenizer, groups, max_length=self.config.max_length)

    def scores(self, graphs: Graphs, folder: Path, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        """Through the runtime's ``CrossEncoderScorer``, on a graph not yet shipped."""
        from .scoring import graph_scorer, score_groups

        return score_groups(
            graph_scorer(graphs[GRAPH], folder / TOKENIZER, self.config.max_length, self.tokenizer.pad_token_id), groups
        )

    def lower(self, fp32: Graphs, scratch: Path, folder: Path) -> Lowered:
        """Fuse or cast to fp16 as asked, then quantize to INT8 as asked."""
        config = self.config
        # TensorRT builds fp16 itself from the fp32 graph (build flag --fp16)
        precision = "fp32" if config.target == "tensorrt" and config.precision == "fp16" else config.precision
        # TensorRT cannot parse GatherBlockQuantized: its int8 graphs keep the embedding table fp32
        blocks = precision.startswith("int8") and config.quantize_embeddings and config.target != "tensorrt"
        lowered = Lowered(dict(fp32), precision)
        if config.optimize or precision == "fp16":
            self._fuse_or_cast(lowered, scratch, blocks)
        if precision == "int8-dynamic":
            lowered.details["quantization"] = dynamic_int8(
                config, lowered.graphs[GRAPH], scratch / "int8-dynamic.onnx", embeddings=blocks
            )
            lowered.graphs[GRAPH] = scratch / "int8-dynamic.onnx"
        elif precision == "int8-static":
            self._quantize_static(lowered, fp32[GRAPH], scratch, folder, blocks)
        return lowered

    def _fuse_or_cast(self, lowered: Lowered, scratch: Path, blocks: bool) -> None:
        """ONNX Runtime's transformer fusion (fp16 in the same pass when asked), or a plain fp16 cast."""
        from .optimize import fuse, to_fp16

        src, fp16 = lowered.graphs[GRAPH], lowered.precision == "fp16"
        if self.config.optimize:
            lowered.graphs[GRAPH] = scratch / "optimized.onnx"
            lowered.details["fused_ops"] = fuse(
                src, lowered.graphs[GRAPH], self.model.config, fp16=fp16, embed_layer_norm=not blocks
            )
        else:
            lowered.graphs[GRAPH] = scratch / "fp16.onnx"
            to_fp16(src, lowered.graphs[GRAPH])

    def _quantize_static(self, lowered: Lowered, fp32: Path, scratch: Path, folder: Path, blocks: bool) -> None:
        """QDQ int8 from the plain fp32 graph, calibrated on pairs tokenized by the artifact's tokenizer."""
        from .calibration import build_calibration_set, pair_reader
        from .quantize import quantize_embeddings_blockwise, quantize_static_qdq
        from .scoring import pair_tokenizer

        config, quantized = self.config, scratch / "int8-static.onnx"
        tokenizer = pair_tokenizer(
            folder / TOKENIZER, config.max_length, self.tokenizer.pad_token_id, self.tokenizer.pad_token
        )
        calib = build_calibration_set(
            config.calibration, tokenizer, n=config.calibration_size, seed=config.seed, **self.table_kwargs
        )
        reader = pair_reader(
            tokenizer, calib.queries, calib.texts, self.inputs, uniform=config.calibration_method != "minmax"
        )
        lowered.details["quantization"] = quantize_static_qdq(
            fp32,
            quantized,
            reader,
            method=config.calibration_method,
            reduce_range=config.reduce_range,
            per_channel=config.per_channel,
            for_tensorrt=config.target == "tensorrt",
        )
        if blocks:
            lowered.details["quantization"]["embeddings"] = quantize_embeddings_blockwise(quantized, quantized)
        lowered.calibration = calib.summary | {"method": config.calibration_method}
        lowered.graphs[GRAPH] = quantized

    def manifest(self, folder: Path, lowered: Lowered, groups: Sequence[QueryGroup]) -> dict[str, Any]:
        tokenizer = tokenizer_section(self.tokenizer, self.config.max_length, pair=True)
        fields = {
            "graphs": {"model": {"file": GRAPH, "inputs": self.inputs, "outputs": ["logits"]}},
            "tokenizer": tokenizer | {"vocabulary": self._vocabulary(groups)},
            "hf": dict(HF_FILES),
        }
        if self.config.target == "tensorrt":
            fields["tensorrt"] = write_tensorrt(folder, self.profile, self.inputs)
        return fields

    def _vocabulary(self, groups: Sequence[QueryGroup]) -> dict[str, Any] | None:
        """What pruning kept, and the share of parity pairs it tokenizes exactly as before."""
        if self.pruned is None:
            return None
        from .vocab import unchanged_share

        queries, texts = [g.query for g in groups for _ in g.texts], [t for g in groups for t in g.texts]
        return self.pruned.summary | {
            "from": [str(p) for p in self.config.prune_vocab],
            "unchanged_parity_pairs": unchanged_share(self.source_tokenizer, self.tokenizer, queries, texts),
        }


def save_hf_config(model, tokenizer, dest: Path) -> None:
    """The graph's model config and tokenizer config, beside the graph: with them the artifact folder
    alone is a model folder for optimum's ``ORTModelForSequenceClassification`` and
    sentence-transformers' ONNX backend (the bench's peers on the same graph), so neither needs the
    torch source folder, which a device copy of the artifact does not have. The runtime reads neither."""
    model.config.to_json_file(dest / HF_FILES["config"])
    with tempfile.TemporaryDirectory(prefix="edgerank-hf-") as tmp:
        tokenizer.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / HF_FILES["tokenizer_config"], dest / HF_FILES["tokenizer_config"])


def write_tensorrt(folder: Path, profile, inputs: list[str]) -> dict[str, Any]:
    """The engine build script for ``profile``, and the manifest's ``tensorrt`` section naming it."""
    from .tensorrt import build_script, engine_flags, trtexec_command

    script = folder / BUILD_SCRIPT
    script.write_text(build_script(profile, inputs))
    script.chmod(0o755)
    return {
        "profile": profile.name,
        "build_script": BUILD_SCRIPT,
        "flags": list(engine_flags(profile.precision)),
        "command": trtexec_command(profile, inputs),
    }
