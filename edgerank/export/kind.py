"""What a model kind plugs into the export skeleton (``pipeline.export_artifact``), and the pieces
every kind shares.

The skeleton is the same for every kind: convert to fp32 ONNX -> check parity with torch -> lower
(fuse, fp16, INT8) -> write the manifest -> gate through the runtime -> record. A kind
(``cross_encoder.CrossEncoderExport``, ``towers.TowerExport``) says which graphs to convert, how to
score them for parity, how to lower them and which manifest fields describe them. Kinds import this
module, never the pipeline, so the pipeline can import every kind without a cycle.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..core.groups import QueryGroup
from .config import ExportConfig

TOKENIZER = "tokenizer.json"

#: Graph files by their name in the artifact: where each one is now (scratch or artifact folder).
Graphs = dict[str, Path]


@dataclass
class Lowered:
    """The graphs to ship for the requested precision and target, and what was done to make them."""

    graphs: Graphs
    precision: str  # the graphs' own precision (a TensorRT fp16 target ships fp32; TensorRT lowers it)
    details: dict[str, Any] = field(default_factory=dict)  # recorded in the manifest's ``export``
    calibration: dict[str, Any] | None = None  # the int8-static calibration set, if one was drawn


class ModelExport(Protocol):
    """One model kind, loaded and checked against the export options, ready to go through the skeleton."""

    model_dir: Path

    @property
    def kind(self) -> str:
        """The manifest's ``kind``."""

    @property
    def positions(self) -> int | None:
        """Tokens one sequence may hold in the graphs (``modeling.max_positions``), None when unlimited."""

    @property
    def lengths(self) -> dict[str, int]:
        """The sequence lengths the artifact will feed, by the option that sets each: each must fit ``positions``."""

    @property
    def source(self) -> dict[str, Any]:
        """The source model's ``architecture`` and ``parameters``, for the manifest's ``source``."""

    def write_files(self, folder: Path) -> None:
        """The tokenizer and any side files, into the artifact folder (parity scores through them)."""

    def convert(self, scratch: Path) -> Graphs:
        """The fp32 graphs, written under ``scratch``."""

    def reference(self, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        """Torch scores of the model that was converted: what parity compares with."""

    def gate_reference(self, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        """Torch scores of the source model: what the quality gate compares with."""

    def scores(self, graphs: Graphs, folder: Path, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        """Scores of ``groups`` through ``graphs`` and the tokenizer in ``folder``."""

    def lower(self, fp32: Graphs, scratch: Path, folder: Path) -> Lowered:
        """The graphs to ship, made from ``fp32`` for the configured precision and target."""

    def manifest(self, folder: Path, lowered: Lowered, groups: Sequence[QueryGroup]) -> dict[str, Any]:
        """The kind's manifest fields: ``graphs``, ``tokenizer`` and its own sections."""


def table_kwargs(read_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The read options that apply to parity, calibration and vocabulary tables (no gain offset)."""
    return {k: v for k, v in read_kwargs.items() if k in ("columns", "label_map")}


def save_tokenizer(model_dir: Path, tokenizer, dest: Path) -> None:
    """The model folder's own fast-tokenizer file if it has one (byte-identical), else the one the
    loaded tokenizer is built on."""
    if (model_dir / TOKENIZER).exists():
        shutil.copyfile(model_dir / TOKENIZER, dest)
    else:
        tokenizer.backend_tokenizer.save(str(dest))


def tokenizer_section(tokenizer, max_length: int, *, pair: bool) -> dict[str, Any]:
    """The manifest's ``tokenizer``: how the runtime must cut and pad what it feeds the graphs."""
    return {
        "file": TOKENIZER,
        "max_length": max_length,
        "truncation": "longest_first",
        "pair": pair,
        "pad_token": tokenizer.pad_token,
        "pad_id": tokenizer.pad_token_id,
    }


def dynamic_int8(config: ExportConfig, src: Path, dst: Path, *, embeddings: bool) -> dict[str, Any]:
    """``src`` as int8-dynamic at ``dst``, with the configured INT8 settings; returns what was done."""
    from .quantize import quantize_dynamic_int8

    return quantize_dynamic_int8(
        src,
        dst,
        reduce_range=config.reduce_range,
        per_channel=config.per_channel,
        quantize_embeddings=embeddings,
        weight_type=config.weight_type,
    )
