"""torch -> ONNX with dynamic batch and sequence axes, and the parity check that follows it.

Two findings on torch 2.13 / transformers 5 decide how the export runs:

- The TorchScript exporter (``dynamo=False``) traces positional arguments, so inputs are passed in
  the order of the model's ``forward`` signature (BERT's is input_ids, attention_mask,
  token_type_ids — not the tokenizer's order). Feeding them in tokenizer order silently swapped the
  mask and segment ids and produced logits off by ~1.0.
- Attention is exported with the ``eager`` implementation: with SDPA the graph is correct but ONNX
  Runtime's transformer optimizer cannot recognise (fuse) the attention blocks; with eager it fuses
  EmbedLayerNormalization and Attention. The dynamo exporter gives a correct graph too but never
  fuses, and takes ~30x longer.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

OPSET = 17
#: Every input a cross-encoder graph can take; anything else a forward() accepts is left out.
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def graph_inputs(model, tokenizer) -> list[str]:
    """The graph's inputs: what the tokenizer produces (``model_input_names``; MPNet has no
    token_type_ids) that the model's forward accepts, in forward's argument order."""
    produced = set(tokenizer.model_input_names) & set(TOKEN_INPUTS)
    accepted = list(inspect.signature(model.forward).parameters)
    names = [n for n in accepted if n in produced]
    if "input_ids" not in names:
        raise ValueError(f"{type(model).__name__} takes no input_ids: not a text cross-encoder")
    return names


def use_eager_attention(model) -> None:
    """Eager attention, the form ONNX Runtime's optimizer fuses (see the module docstring)."""
    if hasattr(model, "set_attn_implementation"):  # transformers >= 4.48
        model.set_attn_implementation("eager")
    else:
        model.config._attn_implementation = "eager"


def export_onnx(model, tokenizer, out: str | os.PathLike, *, opset: int = OPSET) -> list[str]:
    """Write ``model`` as ONNX with one ``logits`` output [batch, 1]; returns the input names."""
    import torch

    names = graph_inputs(model, tokenizer)
    model.eval()
    use_eager_attention(model)
    # A padded two-pair batch, so the traced graph sees a real attention mask.
    sample = tokenizer(
        ["cordless drill", "red garden hose with a brass nozzle"],
        ["18V drill kit", "hose"],
        padding=True,
        return_tensors="pt",
    )
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about constant-folded shape checks are expected
        torch.onnx.export(
            model,
            tuple(sample[n] for n in names),
            str(out),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return names


def parity(reference: Sequence[np.ndarray], scores: Sequence[np.ndarray], top: int = 10) -> dict[str, float]:
    """How far exported scores are from the torch model's on the same candidate lists: max absolute
    difference, Spearman over all pairs, and per-query Kendall tau and top-``top`` overlap."""
    from scipy.stats import spearmanr

    from ..metrics import agreement

    ref, got = np.concatenate(reference), np.concatenate(scores)
    rho = spearmanr(ref, got).statistic if len(ref) > 1 else 1.0
    return {
        "max_abs_diff": float(np.abs(ref - got).max()),
        "spearman": float(np.nan_to_num(rho)),
        **agreement(reference, scores, top=top),
    }


SAMPLE_SHOP = Path(__file__).resolve().parents[1] / "samples" / "shop_dev.csv"

#: Used only when no data file is given and the sample shop is absent: a few real-looking lists.
BUILTIN_PAIRS = {
    "cordless drill": (
        "DEWALT 20V MAX Cordless Drill/Driver Kit",
        "Milwaukee M18 Hammer Drill Bare Tool",
        "Drill Bit Set 29-Piece Titanium",
        "Garden Hose 50 ft.",
        "Paint Roller Cover 9 in.",
    ),
    "white interior door": (
        "Masonite 30 in. White Primed 6-Panel Interior Door",
        "Door Hinge 3.5 in. Satin Nickel",
        "Exterior Steel Door Brown",
        "White Wall Paint 1 gal.",
        "Interior Door Knob Set",
    ),
    "led light bulbs 60w": (
        "Philips 60-Watt Equivalent A19 LED Light Bulb Soft White (8-Pack)",
        "EcoSmart 100W Equivalent LED Bulb",
        "Halogen Flood Light 90W",
        "Lamp Shade Linen",
        "Ceiling Fan with Light Kit 52 in.",
    ),
    "pvc pipe 2 inch": (
        "Charlotte Pipe 2 in. x 10 ft. PVC Schedule 40 Pipe",
        "2 in. PVC Coupling",
        "Copper Pipe 1/2 in. x 10 ft.",
        "PVC Cement 8 oz.",
        "Garden Hose Nozzle",
    ),
}


def parity_groups(data: str | os.PathLike | None = None, *, max_pairs: int = 256, **read_kwargs):
    """Real query lists to compare torch and ONNX scores on: whole queries from ``data`` (the eval
    or calibration file), else the sample shop, else a built-in handful; at most ``max_pairs`` pairs,
    taken as whole queries in file order so every run compares the same pairs."""
    from ..data import QueryGroup, group_queries, read_table

    source = Path(data) if data else (SAMPLE_SHOP if SAMPLE_SHOP.exists() else None)
    if source is None:
        groups = [
            QueryGroup(
                query_id=q,
                query=q,
                product_ids=tuple(map(str, range(len(t)))),
                texts=t,
                labels=None,
                rows=np.arange(len(t)),
            )
            for q, t in BUILTIN_PAIRS.items()
        ]
        return groups, "built-in"
    df, _ = read_table(source, require_relevance=False, **read_kwargs)
    chosen, n = [], 0
    for g in group_queries(df):
        if n and n + len(g.texts) > max_pairs:
            break
        chosen.append(g)
        n += len(g.texts)
    return chosen, str(source)
