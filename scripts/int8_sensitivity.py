"""Where a model's INT8 error comes from: quantize one matrix product at a time (the others fp32),
then all but that one, and print the within-query score error of each against the fp32 graph.

Why within-query: ranking only sees score differences inside a candidate list, so each list's scores
are centred before comparing. The pairs come from a training table, not dev, so whatever this
suggests is not tuned to the numbers it is later judged on. Per-node errors add roughly in
quadrature, so the "only" column says which layers a mixed-precision export would have to keep in
float, and "all but" what that would buy.

    python scripts/int8_sensitivity.py --model runs/hd/student-2x384 --data ../shared/data/homedepot/train.csv
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgerank.export.onnx import export_onnx, parity_groups
    from edgerank.export.optimize import fuse
    from edgerank.export.quantize import DYNAMIC_OPS, quantize_embeddings_blockwise
    from edgerank.export.scoring import ort_session, pair_tokenizer, score_groups_onnx
    from edgerank.modeling import load_cross_encoder, load_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path, help="Judged or unjudged table; not the dev set.")
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()

    model, tokenizer = load_cross_encoder(args.model), load_tokenizer(args.model)
    groups, _ = parity_groups(args.data, max_pairs=args.pairs)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        export_onnx(model, tokenizer, scratch / "fp32.onnx")
        tokenizer.backend_tokenizer.save(str(scratch / "tokenizer.json"))
        ort_tok = pair_tokenizer(scratch / "tokenizer.json", args.max_length, tokenizer.pad_token_id, tokenizer.pad_token)
        base = scratch / "fused.onnx"
        fuse(scratch / "fp32.onnx", base, model.config, embed_layer_norm=False)

        def score(path: Path) -> list[np.ndarray]:
            return score_groups_onnx(ort_session(path, threads=1), ort_tok, groups)

        reference = score(base)

        def error(path: Path) -> float:
            diff = np.concatenate([(s - s.mean()) - (r - r.mean()) for s, r in zip(score(path), reference)])
            return float(np.sqrt(np.mean(diff ** 2)))

        def quantized(weight_type=QuantType.QInt8, reduce_range: bool = True, embeddings: bool = True, **nodes) -> float:
            out = scratch / "q.onnx"
            quantize_dynamic(str(base), str(out), per_channel=True, reduce_range=reduce_range, weight_type=weight_type,
                             op_types_to_quantize=list(DYNAMIC_OPS),
                             extra_options={"DefaultTensorType": TensorProto.FLOAT}, **nodes)
            if embeddings:
                quantize_embeddings_blockwise(out, out)
            return error(out)

        spread = float(np.concatenate([r - r.mean() for r in reference]).std())
        print(f"{sum(len(g.texts) for g in groups)} pairs in {len(groups)} lists from {args.data}; "
              f"within-list score sd {spread:.3f}\n")
        print("| weights | within-list rms error |\n|---|---|")
        for label, kwargs in [("int8 per-channel, 7-bit (reduce_range)", {}),
                              ("int8 per-channel, 8-bit", {"reduce_range": False}),
                              ("uint8 per-channel, 8-bit", {"reduce_range": False, "weight_type": QuantType.QUInt8}),
                              ("embeddings only (8-bit blocks)", {"nodes_to_quantize": ["-"]})]:
            print(f"| {label} | {quantized(**kwargs):.4f} |", flush=True)
        graph = onnx.load(str(base)).graph
        weights = {t.name for t in graph.initializer}
        nodes = [n.name for n in graph.node if n.op_type in DYNAMIC_OPS and any(i in weights for i in n.input)]
        print("\n| node | only this node int8 | all int8 but this node |\n|---|---|---|")
        for name in nodes:
            only = quantized(nodes_to_quantize=[name], embeddings=False)
            print(f"| {name} | {only:.4f} | {quantized(nodes_to_exclude=[name]):.4f} |", flush=True)


if __name__ == "__main__":
    main()
