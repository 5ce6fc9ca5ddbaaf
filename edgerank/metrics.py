"""Ranking metrics and the BM25 baseline, as ``edgerank.metrics`` (they live in ``edgerank.core``).

Importing this module loads numpy only (no pandas, no torch): scipy and bm25s are imported by the
functions that use them.
"""

from .core.bm25 import BM25Baseline, BM25Index, bm25_scorer, catalog_bm25
from .core.metrics import (
    agreement,
    dcg_at_k,
    evaluate,
    format_kept,
    gain_kept,
    gain_kept_interval,
    mrr_at_k,
    ndcg_at_k,
    ndcg_per_query,
    top_overlap,
)

__all__ = [
    "BM25Baseline",
    "BM25Index",
    "agreement",
    "bm25_scorer",
    "catalog_bm25",
    "dcg_at_k",
    "evaluate",
    "format_kept",
    "gain_kept",
    "gain_kept_interval",
    "mrr_at_k",
    "ndcg_at_k",
    "ndcg_per_query",
    "top_overlap",
]
