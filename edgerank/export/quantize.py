"""INT8 with ONNX Runtime's quantizer: dynamic (weights only, activations quantized on the fly) and
static QDQ (activation ranges calibrated on product queries).

Why ``reduce_range`` (7-bit weights) on CPUs without VNNI: there, ONNX Runtime's u8 x s8 kernels
use an instruction (vpmaddubsw) whose 16-bit intermediate sums saturate; with 8-bit per-channel
weights a probe on this machine lost 0.13 Spearman against fp32 scores, with 7 bits it kept
0.957-0.986. VNNI (AVX512-VNNI or AVX-VNNI) has no such saturation, and neither does ARM.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

#: Ops quantized dynamically. Gather/EmbedLayerNormalization cover the embedding tables, which are
#: most of a small student's bytes; MatMul/Attention cover the encoder.
DYNAMIC_OPS = ("MatMul", "Attention")
EMBEDDING_OPS = ("Gather", "EmbedLayerNormalization")
#: Static QDQ quantizes matrix products only: LayerNorm, Softmax and residual Adds stay in float,
#: where quantizing them costs accuracy for little speed (and TensorRT keeps them in fp16 anyway).
STATIC_OPS = ("MatMul", "Gemm")


def cpu_has_vnni(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises AVX512-VNNI or AVX-VNNI (Linux ``/proc/cpuinfo`` flags)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_vnni", "avx_vnni"})


def default_reduce_range(target: str) -> bool:
    """7-bit weights unless the deployment CPU is ARM or has VNNI (only known when exporting on it)."""
    if target == "arm64" or platform.machine().lower() in {"aarch64", "arm64"}:
        return False
    return not cpu_has_vnni()


def quantize_dynamic_int8(src: str | os.PathLike, dst: str | os.PathLike, *, reduce_range: bool,
                          quantize_embeddings: bool = True) -> dict[str, Any]:
    """Per-channel int8 weights (QInt8); returns the settings for the manifest."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = list(DYNAMIC_OPS + (EMBEDDING_OPS if quantize_embeddings else ()))
    quantize_dynamic(str(src), str(dst), per_channel=True, reduce_range=reduce_range,
                     weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                     # outputs of the optimizer's fused ops carry no inferred type; they are all float
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
    return {"mode": "dynamic", "weight_type": "QInt8", "per_channel": True, "reduce_range": reduce_range,
            "op_types": ops}


def quantize_static_qdq(src: str | os.PathLike, dst: str | os.PathLike, reader, *, method: str,
                        reduce_range: bool, for_tensorrt: bool) -> dict[str, Any]:
    """QDQ graph calibrated with ``reader``. ``for_tensorrt`` gives what TensorRT's explicit
    quantization accepts: int8 activations with zero point 0 (symmetric) and float biases (it has no
    int32 DequantizeLinear). CPU targets use asymmetric uint8 activations and int32 biases."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    prepared = Path(dst).with_name(Path(dst).stem + ".prep.onnx")
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)  # symbolic inference fails on the traced mask ops
    activation = QuantType.QInt8 if for_tensorrt else QuantType.QUInt8
    quantize_static(str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=reduce_range, activation_type=activation, weight_type=QuantType.QInt8,
                    calibrate_method=methods[method], op_types_to_quantize=list(STATIC_OPS),
                    extra_options={"ActivationSymmetric": for_tensorrt, "WeightSymmetric": True,
                                   "QuantizeBias": not for_tensorrt})
    prepared.unlink(missing_ok=True)
    return {"mode": "static-qdq", "method": method, "activation_type": activation.name, "weight_type": "QInt8",
            "per_channel": True, "reduce_range": reduce_range, "symmetric_activations": for_tensorrt,
            "quantize_bias": not for_tensorrt,
            "op_types": list(STATIC_OPS)}
