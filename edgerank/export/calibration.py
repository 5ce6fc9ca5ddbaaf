"""Calibration sets for static INT8: a few hundred query–product pairs drawn from a data file,
stratified by token length and by label, and the reader ONNX Runtime's calibrator consumes.

Why stratify: activation ranges depend on sequence length (attention over 12 tokens and over 128
differ) and on how relevant the pair is (the classifier's input spans its whole range only if
both good and bad matches are seen). A plain random sample of a catalog is dominated by the
commonest length and by irrelevant pairs. See ``calibration/README.md`` for the recipe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LENGTH_BINS = 4
#: Rows tokenized per requested pair (a uniform random pool) when the source file is larger.
POOL_PER_PAIR = 50
LABEL_BINS = ("low", "mid", "high")


@dataclass
class CalibrationSet:
    queries: list[str]
    texts: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


def _allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """Proportional allocation (largest remainder), at least one pair per non-empty stratum when n allows."""
    total = sum(sizes.values())
    exact = {k: n * v / total for k, v in sizes.items()}
    take = {k: min(sizes[k], int(x)) for k, x in exact.items()}
    if n >= len(sizes):
        for k in sizes:
            take[k] = max(take[k], 1)
    for k in sorted(exact, key=lambda k: exact[k] - int(exact[k]), reverse=True):
        if sum(take.values()) >= n:
            break
        if take[k] < sizes[k]:
            take[k] += 1
    while sum(take.values()) > n:  # the minimum-one rule can overshoot: trim the largest strata
        k = max(take, key=take.get)
        take[k] -= 1
    return take


def build_calibration_set(
    data: str | os.PathLike,
    tokenizer,
    *,
    n: int = 300,
    seed: int = 0,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[str, float] | None = None,
) -> CalibrationSet:
    """Draw ``n`` pairs from ``data`` (any table ``edgerank.data.read_table`` reads; labels optional).

    ``tokenizer`` is a ``tokenizers.Tokenizer`` configured like the artifact's (truncation to
    max_length), so lengths are the lengths the graph will see.
    """
    from ..artifact import sha256_file
    from ..data import product_texts, read_table

    df, _ = read_table(data, columns=columns, label_map=label_map, require_relevance=False)
    rows = len(df)
    rng = np.random.default_rng(seed)
    if rows > POOL_PER_PAIR * n:  # tokenizing a whole catalog is slow; a uniform pool keeps the proportions
        df = df.iloc[np.sort(rng.choice(rows, POOL_PER_PAIR * n, replace=False))].reset_index(drop=True)
    queries, texts = df["query"].tolist(), product_texts(df)
    # Real (unpadded) lengths: the tokenizer pads each batch to its longest pair.
    lengths = np.asarray([sum(e.attention_mask) for e in tokenizer.encode_batch(list(zip(queries, texts)))])
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, LENGTH_BINS + 1)[1:-1]))
    length_bin = np.searchsorted(edges, lengths, side="right")
    bounds = [int(lengths.min())] + [int(e) for e in edges] + [int(lengths.max())]
    length_names = [f"tokens {bounds[i]}-{bounds[i + 1]}" for i in range(len(bounds) - 1)]
    if "relevance" in df.columns and df["relevance"].nunique() > 1:
        rel = df["relevance"].to_numpy(dtype=np.float64)
        scaled = (rel - rel.min()) / (rel.max() - rel.min())
        label_bin = np.minimum((scaled * len(LABEL_BINS)).astype(int), len(LABEL_BINS) - 1)
        label_names = [f"label {b}" for b in LABEL_BINS]
    else:
        label_bin, label_names = np.zeros(len(df), dtype=int), ["unlabelled"]
    cells = sorted(set(zip(length_bin.tolist(), label_bin.tolist())))
    strata = {
        f"{length_names[lb]} | {label_names[ab]}": np.flatnonzero((length_bin == lb) & (label_bin == ab))
        for lb, ab in cells
    }
    take = _allocate({k: len(v) for k, v in strata.items()}, min(n, len(df)))
    chosen = np.concatenate([rng.choice(strata[k], size=c, replace=False) for k, c in take.items() if c])
    chosen.sort()
    summary = {
        "n": int(len(chosen)),
        "source": str(data),
        "source_sha256": sha256_file(data),
        "source_rows": rows,
        "pool": int(len(df)),
        "seed": seed,
        "strata": {k: int(c) for k, c in take.items()},
        "tokens": {
            "min": int(lengths[chosen].min()),
            "median": float(np.median(lengths[chosen])),
            "max": int(lengths[chosen].max()),
        },
    }
    return CalibrationSet([queries[i] for i in chosen], [texts[i] for i in chosen], summary)


def pair_reader(
    tokenizer,
    queries: Sequence[str],
    texts: Sequence[str],
    input_names: Sequence[str],
    batch_size: int = 16,
    *,
    uniform: bool = False,
):
    """A ``CalibrationDataReader`` feeding the pairs in padded batches, with the graph's input names.

    ``uniform`` gives every batch the same shape — all padded to the longest pair, the last one
    filled up with pairs from the start — which ONNX Runtime's histogram calibrators (entropy,
    percentile) need: they stack each tensor's outputs over all batches and fail on ragged shapes.
    MinMax reduces batch by batch, so it keeps the tighter per-batch padding (pad positions' values
    then enter no range)."""
    from onnxruntime.quantization import CalibrationDataReader

    from .scoring import encode_feed

    class PairReader(CalibrationDataReader):
        def __init__(self) -> None:
            pairs = list(zip(queries, texts))
            if uniform and len(pairs) % batch_size:
                pairs += pairs[: batch_size - len(pairs) % batch_size]
            self.batches = [
                encode_feed(tokenizer, pairs[i : i + batch_size], input_names) for i in range(0, len(pairs), batch_size)
            ]
            if uniform:
                width = max(b[input_names[0]].shape[1] for b in self.batches)
                self.batches = [
                    {
                        n: np.pad(
                            a,
                            ((0, 0), (0, width - a.shape[1])),
                            constant_values=tokenizer.padding["pad_id"] if n == "input_ids" else 0,
                        )
                        for n, a in b.items()
                    }
                    for b in self.batches
                ]
            self.rewind()

        def get_next(self):
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(self.batches)

    return PairReader()
