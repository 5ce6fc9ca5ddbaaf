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

from ..data import score_by_group


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
                     batch_size: int = 64) -> np.ndarray:
    """Raw logits for aligned query/text lists, in input order (batches formed in length order so
    padding stays small, as ``edgerank.modeling.score_pairs`` does)."""
    if len(queries) != len(texts):
        raise ValueError("queries and texts differ in length")
    names = [i.name for i in session.get_inputs()]
    order = np.argsort([len(q) + len(t) for q, t in zip(queries, texts)], kind="stable")
    out = np.empty(len(order), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        feed = encode_feed(tokenizer, [(queries[i], texts[i]) for i in idx], names)
        out[idx] = session.run(None, feed)[0].reshape(-1)
    return out


def score_groups_onnx(session, tokenizer, groups, **kwargs) -> list[np.ndarray]:
    """Scores for each query group's candidates, one array per group."""
    return score_by_group(groups, lambda queries, texts: score_pairs_onnx(session, tokenizer, queries, texts, **kwargs))
