"""Export a cross-encoder or tower student to a deployable artifact: ONNX (fp32/fp16/INT8), parity, quality gate,
TensorRT."""

from .config import PRECISIONS, TARGETS, ExportConfig, ExportError
from .pipeline import export_artifact

__all__ = ["export_artifact", "ExportConfig", "ExportError", "PRECISIONS", "TARGETS"]
