"""INT8 with ONNX Runtime's quantizer: dynamic (weights only, activations quantized on the fly) and
static QDQ (activation ranges calibrated on product queries).

The settings follow the CPU the graph will run on, which is named, never guessed from the machine
that exports (a kiosk fleet is rarely the build box): ``--target`` picks one of QUANTIZATION_PRESETS,
like optimum's ``AutoQuantizationConfig.avx2() / avx512_vnni() / arm64()``.

Why ``reduce_range`` (7-bit weights) unless the target is known to be safe without it: on x86 CPUs
without VNNI, ONNX Runtime's u8 x s8 kernels use an instruction (vpmaddubsw) whose 16-bit
intermediate sums saturate; with 8-bit per-channel weights a probe on an AVX2-only host lost 0.13
Spearman against fp32 scores, with 7 bits it kept 0.957-0.986. VNNI (AVX512-VNNI or AVX-VNNI) has
no such saturation, and neither does ARM, so there 8 bits keep more of the model (on a VNNI host
the 8-bit Home Depot student kept 100.1% of the fp32 gain at the gate, the 7-bit one 93.2%).
7-bit weights run correctly everywhere, which is why ``portable`` uses them. Per-channel scales stay
on in every preset: one scale per output column is what keeps 7 bits close to fp32. uint8 weights
(u8 x u8 kernels, no saturation at 8 bits) kept less of the gain than 7-bit int8 on the AVX2 host
(89.4% vs 93.9%) and are slower, so they stay an option (``--weight-type uint8``), not a preset.

Why embeddings get their own 8-bit *block* quantization: ``quantize_dynamic`` quantizes a Gather's
table with one scale for the whole vocabulary, and on the Home Depot 2-layer student that alone
(encoder left in fp32) cost 14% of the model's nDCG@10 gain over BM25; one scale per 32 values
(ONNX Runtime's ``GatherBlockQuantized``) cost 0.4% at the same size. ORT's own weight-only quantizer
writes that op only at 4 bits, hence :func:`quantize_embeddings_blockwise`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Ops quantized dynamically: the encoder's matrix products (embeddings: quantize_embeddings_blockwise).
DYNAMIC_OPS = ("MatMul", "Attention")
#: Values per embedding scale; 32 divides every BERT-family hidden size.
EMBEDDING_BLOCK = 32
#: Tables with fewer rows (position and token-type embeddings) stay fp32: a few hundred KB at most.
MIN_EMBEDDING_ROWS = 1000
#: Static QDQ quantizes matrix products only: LayerNorm, Softmax and residual Adds stay in float,
#: where quantizing them costs accuracy for little speed (and TensorRT keeps them in fp16 anyway).
STATIC_OPS = ("MatMul", "Gemm")


#: ``--weight-type``: int8 weights run ONNX Runtime's fast u8 x s8 kernels; uint8 weights its u8 x u8
#: kernels, which widen to 16 bits first and so never saturate (full 8-bit weights on AVX2, slower).
WEIGHT_TYPES = {"int8": "QInt8", "uint8": "QUInt8"}


@dataclass(frozen=True)
class QuantizationPreset:
    """The INT8 settings for one deployment target, recorded in the artifact's manifest."""

    target: str
    weight_type: str  # a WEIGHT_TYPES key
    reduce_range: bool
    per_channel: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SEVEN_BIT = "7-bit weights: x86 CPUs without VNNI saturate 8-bit u8 x s8 sums"
QUANTIZATION_PRESETS = {
    p.target: p
    for p in (
        QuantizationPreset(
            "portable",
            "int8",
            True,
            True,
            "any x86-64 or ARM64 CPU: " + _SEVEN_BIT + "; VNNI and ARM run them correctly too",
        ),
        QuantizationPreset("cpu-avx2", "int8", True, True, "x86-64 with AVX2 and no VNNI: " + _SEVEN_BIT),
        QuantizationPreset(
            "cpu-avx512-vnni",
            "int8",
            False,
            True,
            "x86-64 with AVX512-VNNI or AVX-VNNI: 8-bit weights, VNNI sums in 32 bits",
        ),
        QuantizationPreset("arm64", "int8", False, True, "ARM64: 8-bit weights, its int8 dot products do not saturate"),
        QuantizationPreset(
            "cuda",
            "int8",
            True,
            True,
            "ONNX Runtime on CUDA: int8 nodes it cannot place on the GPU run on an unknown host CPU, "
            "so portable settings",
        ),
        QuantizationPreset("tensorrt", "int8", False, True, "TensorRT: 8-bit symmetric weights in a QDQ graph"),
    )
}


def quantization_preset(target: str) -> QuantizationPreset:
    """The preset for ``target``; a ValueError names the choices."""
    try:
        return QUANTIZATION_PRESETS[target]
    except KeyError:
        raise ValueError(f"{target!r} is not one of {', '.join(QUANTIZATION_PRESETS)}") from None


def quantize_dynamic_int8(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    reduce_range: bool,
    per_channel: bool = True,
    quantize_embeddings: bool = True,
    weight_type: str = "int8",
) -> dict[str, Any]:
    """8-bit weights (``weight_type``, see WEIGHT_TYPES; 7 bits with ``reduce_range``), plus block-quantized embeddings
    unless told to keep them fp32; returns the settings for the manifest. ``src`` must not have
    EmbedLayerNormalization fused (see ``optimize.fuse``) when embeddings are quantized: the fused op
    takes the table whole."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quant_type = WEIGHT_TYPES[weight_type]
    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=per_channel,
        reduce_range=reduce_range,
        weight_type=QuantType[quant_type],
        op_types_to_quantize=list(DYNAMIC_OPS),
        # outputs of the optimizer's fused ops carry no inferred type; they are all float
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    settings = {
        "mode": "dynamic",
        "weight_type": quant_type,
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "op_types": list(DYNAMIC_OPS),
    }
    if quantize_embeddings:
        settings["embeddings"] = quantize_embeddings_blockwise(dst, dst)
    return settings


def quantize_embeddings_blockwise(
    src: str | os.PathLike, dst: str | os.PathLike, *, block_size: int = EMBEDDING_BLOCK
) -> dict[str, Any]:
    """Replace each Gather over a large constant table (the word embeddings) by ``GatherBlockQuantized``
    with 8-bit symmetric blocks of ``block_size`` values along the hidden axis, each with its own fp32
    scale. Returns what was quantized, for the manifest."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    tables = {t.name: t for t in graph.initializer}
    done = []
    for index, node in enumerate(list(graph.node)):
        table = tables.get(node.input[0]) if node.op_type == "Gather" else None
        if table is None or len(table.dims) != 2 or table.dims[0] < MIN_EMBEDDING_ROWS or table.dims[1] % block_size:
            continue
        weights = numpy_helper.to_array(table).astype(np.float32)
        rows, hidden = weights.shape
        blocks = weights.reshape(rows, hidden // block_size, block_size)
        scales = np.abs(blocks).max(axis=2) / 127.0
        scales[scales == 0] = 1.0
        codes = (np.clip(np.rint(blocks / scales[..., None]), -127, 127) + 128).astype(np.uint8)  # zero point 128
        graph.initializer.remove(table)
        graph.initializer.extend(
            [
                numpy_helper.from_array(codes.reshape(rows, hidden), table.name + "_int8"),
                numpy_helper.from_array(scales.astype(np.float32), table.name + "_scales"),
            ]
        )
        graph.node.remove(node)
        graph.node.insert(
            index,
            helper.make_node(
                "GatherBlockQuantized",
                [table.name + "_int8", node.input[1], table.name + "_scales"],
                list(node.output),
                name=node.name + "_block_int8",
                domain="com.microsoft",
                bits=8,
                block_size=block_size,
                gather_axis=0,
                quantize_axis=1,
            ),
        )
        done.append({"table": table.name, "shape": [rows, hidden]})
    if done and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return {"op": "GatherBlockQuantized", "bits": 8, "block_size": block_size, "symmetric": True, "tables": done}


def quantize_static_qdq(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    reader,
    *,
    method: str,
    reduce_range: bool,
    for_tensorrt: bool,
    per_channel: bool = True,
) -> dict[str, Any]:
    """QDQ graph calibrated with ``reader``. ``for_tensorrt`` gives what TensorRT's explicit
    quantization accepts: int8 activations with zero point 0 (symmetric) and float biases (it has no
    int32 DequantizeLinear). CPU targets use asymmetric uint8 activations and int32 biases."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    prepared = Path(dst).with_name(Path(dst).stem + ".prep.onnx")
    quant_pre_process(
        str(src), str(prepared), skip_symbolic_shape=True
    )  # symbolic inference fails on the traced mask ops
    activation = QuantType.QInt8 if for_tensorrt else QuantType.QUInt8
    quantize_static(
        str(prepared),
        str(dst),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type=activation,
        weight_type=QuantType.QInt8,
        calibrate_method=methods[method],
        op_types_to_quantize=list(STATIC_OPS),
        extra_options={"ActivationSymmetric": for_tensorrt, "WeightSymmetric": True, "QuantizeBias": not for_tensorrt},
    )
    prepared.unlink(missing_ok=True)
    return {
        "mode": "static-qdq",
        "method": method,
        "activation_type": activation.name,
        "weight_type": "QInt8",
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "symmetric_activations": for_tensorrt,
        "quantize_bias": not for_tensorrt,
        "op_types": list(STATIC_OPS),
    }
