"""The export configuration: one dataclass, saved into the manifest so every artifact says how it was made."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .quantize import QUANTIZATION_PRESETS, WEIGHT_TYPES, quantization_preset

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")
#: Where an artifact will run; each names its INT8 settings (quantize.QUANTIZATION_PRESETS).
TARGETS = tuple(QUANTIZATION_PRESETS)
DEFAULT_TARGET = "portable"


class ExportError(ValueError):
    """An export that must not produce an artifact: broken parity, a failed quality gate, bad options."""


@dataclass
class ExportConfig:
    precision: str | None = None  # None: the profile's precision, else fp32
    max_length: int = 128
    optimize: bool = False
    target: str | None = None  # None: the profile's target, else portable (any x86-64 or ARM64 CPU)
    profile: str | None = None
    calibration: str | None = None
    calibration_size: int = 300
    calibration_method: str = "minmax"
    eval_data: str | None = None
    gate_list_size: int = 100  # serving lists the quality gate scores (export/gate.py); 0: judged lists only
    max_quality_drop: float = 0.01  # share of the fp32 gain over BM25 the export may lose (random-fill lists)
    min_agreement: float = 0.97  # least top-10 overlap with the fp32 model, on every fill
    # INT8 settings; None: the profile's reduce_range, else the target's preset (quantize.py)
    reduce_range: bool | None = None  # 7-bit weights
    weight_type: str | None = None  # int8-dynamic weights: int8 (u8 x s8 kernels) or uint8 (u8 x u8, no saturation)
    per_channel: bool | None = None  # one scale per output channel
    quantize_embeddings: bool = True
    prune_vocab: tuple[str, ...] = ()  # tables whose text decides the wordpieces kept (export/vocab.py)
    parity_atol: float = 1e-3
    require_head: bool = True
    opset: int = 17
    seed: int = 0

    def resolve(self, profile=None) -> None:
        """Fill precision, target and reduce_range from ``profile`` (a ``TargetProfile``) where not given,
        and refuse explicit values that contradict it; then, for INT8, the rest from the target's preset."""
        if profile is not None:
            for key in ("precision", "target"):
                mine, theirs = getattr(self, key), getattr(profile, key)
                if mine is not None and mine != theirs:
                    raise ExportError(
                        f"--{key} {mine} contradicts profile {profile.name} ({key} = {theirs}); "
                        f"drop --{key} or pick another profile"
                    )
                setattr(self, key, theirs)
            if self.reduce_range is None:
                self.reduce_range = profile.reduce_range
        self.precision = self.precision or "fp32"
        self.target = self.target or DEFAULT_TARGET
        self.check()
        if self.precision.startswith("int8"):
            self._apply_preset()

    def _apply_preset(self) -> None:
        """Settings left open take the target's preset, so the manifest's ``export`` says what ran."""
        preset = quantization_preset(self.target)
        for key in ("reduce_range", "weight_type", "per_channel"):
            if getattr(self, key) is None:
                setattr(self, key, getattr(preset, key))

    def check(self) -> None:
        """Refuse combinations that cannot give a working artifact, before any work is done."""
        if self.precision not in PRECISIONS:
            raise ExportError(f"--precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.target not in TARGETS:
            raise ExportError(f"--target: {self.target!r} is not one of {', '.join(TARGETS)}")
        if self.max_length < 8:
            raise ExportError(f"--max-length: {self.max_length} is too short for a query-product pair (min 8)")
        if self.precision == "int8-static" and not self.calibration:
            raise ExportError("--precision int8-static needs --calibration PATH (a table of query-product pairs)")
        if self.target == "tensorrt" and not self.profile:
            raise ExportError("--target tensorrt needs --profile NAME (see edgerank/export/profiles/README.md)")
        if self.target == "tensorrt" and self.optimize:
            raise ExportError(
                "--optimize writes ONNX Runtime contrib ops TensorRT cannot parse; "
                "leave it off for --target tensorrt (TensorRT fuses on its own)"
            )
        if self.target == "tensorrt" and self.precision == "int8-dynamic":
            raise ExportError(
                "int8-dynamic uses ONNX Runtime-only operators TensorRT cannot run; "
                "use int8-static (QDQ) for --target tensorrt"
            )
        if self.precision == "int8-static" and self.optimize:
            raise ExportError(
                "--optimize with int8-static: the QDQ graph is built from the plain fp32 graph "
                "(ONNX Runtime fuses QDQ patterns itself when it loads the model); drop --optimize"
            )
        if self.weight_type is not None and self.weight_type not in WEIGHT_TYPES:
            raise ExportError(f"--weight-type: {self.weight_type!r} is not one of {', '.join(WEIGHT_TYPES)}")
        if self.weight_type not in (None, "int8") and self.precision != "int8-dynamic":
            raise ExportError(
                f"--weight-type {self.weight_type} applies to int8-dynamic only "
                "(static QDQ weights are int8, as TensorRT needs)"
            )
        if self.gate_list_size < 0:
            raise ExportError(f"--gate-list-size: {self.gate_list_size} must be 0 (judged lists only) or more")
        if self.calibration_size < 1:
            raise ExportError(f"--calibration-size: {self.calibration_size} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
