"""Score (query, product) pairs with an exported graph through the runtime's own scorer, and the
feeds calibration needs.

Parity and the quality gate go through ``edgerank.runtime`` (export may import the runtime; the
runtime never imports export), so they measure what a deployment runs: the artifact's tokenizer
file, the graph's declared inputs, the runtime's length-sorted batches. A graph that is not yet in
an artifact folder (the fp32 and optimized graphs parity checks) is scored by the same classes
``Ranker.load`` assembles.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..batching import DEFAULT_MAX_BATCH_SIZE


def graph_scorer(
    graph: str | os.PathLike,
    tokenizer_file: str | os.PathLike,
    max_length: int,
    pad_id: int | None = None,
    *,
    threads: int | None = None,
):
    """The runtime's ``CrossEncoderScorer`` on ``graph`` and ``tokenizer_file``: what ``Ranker.load``
    builds for an artifact, for a graph that is not in one yet."""
    from ..artifact import Artifact
    from ..runtime.backends.onnxruntime import OnnxRuntimeBackend
    from ..runtime.cross_encoder import CrossEncoderScorer
    from ..runtime.tokenize import PairEncoder

    encoder = PairEncoder(tokenizer_file, max_length, "longest_first", pad_id)
    backend = OnnxRuntimeBackend(str(graph), threads=threads)
    return CrossEncoderScorer(Artifact(path=Path(graph).parent, manifest={}), encoder, backend, DEFAULT_MAX_BATCH_SIZE)


def score_groups(scorer, groups) -> list[np.ndarray]:
    """Scores of each query group, one group per call as ``Ranker.rank`` scores one query's list
    (dynamic INT8 scores depend on the batch, see ``edgerank.batching``)."""
    return [scorer.score([g.query] * len(g.texts), list(g.texts))[0] for g in groups]


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
    columns = {
        "input_ids": [e.ids for e in enc],
        "attention_mask": [e.attention_mask for e in enc],
        "token_type_ids": [e.type_ids for e in enc],
    }
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
