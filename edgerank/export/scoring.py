"""Score (query, product) pairs with an exported graph exactly as a deployment would: ONNX Runtime
on the artifact's own ``tokenizer.json``, feeding only the inputs the graph declares.

Parity and the quality gate both go through here, so they measure the artifact — tokenizer file
included — rather than the torch model it came from. Export must not depend on the runtime
package (the runtime must never depend on export either), hence this small scorer of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..batching import DEFAULT_MAX_BATCH_SIZE, length_batches


def pair_tokenizer(path: str | os.PathLike, max_length: int, pad_id: int, pad_token: str):
    """A ``tokenizers.Tokenizer`` that truncates pairs longest-first to ``max_length`` and pads a
    batch to its longest pair — the same rule ``edgerank.modeling.tokenize_pairs`` applies in torch."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length, strategy="longest_first")
    tok.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tok


def encode_feed(tokenizer, pairs: Sequence[tuple[str, str]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """One padded batch as the graph wants it: int64 arrays for exactly the input ``names``."""
    enc = tokenizer.encode_batch(list(pairs))
    columns = {"input_ids": [e.ids for e in enc], "attention_mask": [e.attention_mask for e in enc],
               "token_type_ids": [e.type_ids for e in enc]}
    return {n: np.asarray(columns[n], dtype=np.int64) for n in names}


def ort_session(path: str | os.PathLike, threads: int = 0):
    """A CPU session; ``threads=0`` lets ONNX Runtime choose. Optimisation level is ORT's default
    (extended fusions), which is what a deployment gets, so timings and parity reflect it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(Path(path)), opts, providers=["CPUExecutionProvider"])


def score_pairs_onnx(session, tokenizer, queries: Sequence[str], texts: Sequence[str], *,
                     batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> np.ndarray:
    """Raw logits for aligned query/text lists, in input order, in the runtime's batches: sorted by
    token length, at most ``batch_size`` a pass, each padded to its longest (``edgerank.batching``)."""
    if len(queries) != len(texts):
        raise ValueError("queries and texts differ in length")
    if not queries:
        return np.empty(0, dtype=np.float32)
    names = [i.name for i in session.get_inputs()]
    feed = encode_feed(tokenizer, list(zip(queries, texts)), names + ["attention_mask"])
    lengths = feed["attention_mask"].sum(axis=1)
    out = np.empty(len(queries), dtype=np.float32)
    for rows in length_batches(lengths, batch_size):
        width = int(lengths[rows].max())
        out[rows] = session.run(None, {n: feed[n][rows, :width] for n in names})[0].reshape(-1)
    return out


def score_groups_onnx(session, tokenizer, groups, **kwargs) -> list[np.ndarray]:
    """Scores for each query group's candidates, one array per group, each group scored on its own as
    ``Ranker.rank`` scores one query's list (dynamic INT8 scores depend on the batch, see
    ``edgerank.batching``)."""
    return [score_pairs_onnx(session, tokenizer, [g.query] * len(g.texts), list(g.texts), **kwargs) for g in groups]
