"""ONNX Runtime's transformer optimizer (attention, LayerNorm, GELU fusion) and fp16 conversion.

Fusion runs at ``opt_level=0``: only the transformer-specific Python fusions, no hardware-specific
layout changes, so the written graph stays portable and ONNX Runtime still applies its own graph
optimisations when a session opens it. Whether fusion pays off depends on the model and the CPU:
measure it, e.g. ``edgerank bench`` on an artifact exported with and without ``--optimize``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Transformer families whose exported graphs the optimizer's "bert" fusions recognise.
BERT_LIKE = {"bert", "roberta", "xlm-roberta", "electra", "distilbert", "mpnet"}


def _config_dims(config) -> tuple[int, int]:
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    return int(heads or 0), int(hidden or 0)


def fuse(
    src: str | os.PathLike, dst: str | os.PathLike, config, *, fp16: bool = False, embed_layer_norm: bool = True
) -> dict[str, int]:
    """Write the fused graph of ``src`` to ``dst`` (optionally in fp16); returns the fused-op counts.
    ``embed_layer_norm=False`` keeps the embedding Gathers apart, for block-quantizing their tables."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = _config_dims(config)
    options = FusionOptions("bert")
    options.enable_embed_layer_norm = embed_layer_norm
    model = optimize_model(
        str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0, optimization_options=options
    )
    if fp16:
        model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))
    return {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}


def to_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """fp16 weights and activations with fp32 inputs/outputs (``keep_io_types``), so callers feed and
    read the same arrays whatever the precision."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(Path(src))))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))
