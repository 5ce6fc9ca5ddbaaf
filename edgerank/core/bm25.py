"""BM25 (bm25s, Lucene variant) over a catalog: the baseline every report compares with, and the
first stage that mines a serving list's hardest fill-ins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .groups import Catalog, QueryGroup


def _bm25s():
    import logging

    import bm25s

    # bm25s sets its own logger to DEBUG on import: its per-call "Building index" lines would
    # reach the terminal whenever some other library has configured the root logger.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class BM25Index:
    """One bm25s index over ``corpus``, built once and asked many queries (English stopwords)."""

    def __init__(self, corpus: Sequence[str], k1: float = 1.5, b: float = 0.75):
        bm25s = _bm25s()
        self.corpus = list(corpus)
        self._retriever = bm25s.BM25(k1=k1, b=b)
        self._retriever.index(bm25s.tokenize(self.corpus, stopwords="en", show_progress=False), show_progress=False)

    def _tokens(self, queries: Sequence[str]) -> list[list[str]]:
        return _bm25s().tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """The query's BM25 score of every corpus text (zeros for a query of stopwords only)."""
        tokens = self._tokens([query])[0]
        return self._retriever.get_scores(tokens) if tokens else np.zeros(len(self.corpus))

    def ranked(self, query: str) -> np.ndarray:
        """Corpus positions of every text the query matches (positive score), best first, ties in corpus order."""
        scores = self.scores(query)
        matched = np.flatnonzero(scores > 0)
        return matched[np.lexsort((matched, -scores[matched]))]

    def top(self, queries: Sequence[str], k: int) -> list[np.ndarray]:
        """Corpus positions of each query's best ``k`` matches with a positive score, best first; one
        batched bm25s retrieval for all queries. Each query's answer depends on that query and ``k``
        only, not on the other queries of the batch."""
        k = min(k, len(self.corpus))
        tokens = self._tokens(queries)
        asked = [i for i, t in enumerate(tokens) if t]
        out = [np.empty(0, dtype=np.int64) for _ in queries]
        if not asked or k < 1:
            return out
        docs, scores = self._retriever.retrieve([tokens[i] for i in asked], k=k, show_progress=False)
        for i, d, s in zip(asked, docs, scores):
            keep = s > 0
            d, s = d[keep], s[keep]
            out[i] = d[np.lexsort((d, -s))].astype(np.int64)
        return out


def bm25_scorer(corpus: Sequence[str], k1: float = 1.5, b: float = 0.75):
    """Index ``corpus`` once; the returned function gives one query's BM25 score for every text."""
    return BM25Index(corpus, k1, b).scores


@dataclass
class BM25Baseline:
    """BM25 with IDF from the catalog a shop would index: every distinct product text of ``corpus``
    (default: the lists' own texts) and of the lists, then scored on each query's own list."""

    k1: float = 1.5
    b: float = 0.75

    def score(self, groups: Sequence[QueryGroup], corpus: Sequence[str] | None = None) -> list[np.ndarray]:
        return self.score_lists({"lists": groups}, corpus)["lists"]

    def score_lists(
        self, lists: Mapping[str, Sequence[QueryGroup]], corpus: Sequence[str] | None = None
    ) -> dict[str, list[np.ndarray]]:
        """Scores of several list sets from one index; each distinct query is scored once, however
        many lists it heads (judged and serving lists share their queries)."""
        texts = {t for groups in lists.values() for g in groups for t in g.texts} | set(corpus or ())
        ordered = sorted(texts)
        position = {t: i for i, t in enumerate(ordered)}
        index = BM25Index(ordered, self.k1, self.b)
        heads: dict[str, list[tuple[str, int]]] = {}
        for name, groups in lists.items():
            for i, g in enumerate(groups):
                heads.setdefault(g.query, []).append((name, i))
        out: dict[str, list[np.ndarray]] = {name: [np.empty(0)] * len(groups) for name, groups in lists.items()}
        for query, where in heads.items():
            full = index.scores(query)
            for name, i in where:
                out[name][i] = np.asarray([full[position[t]] for t in lists[name][i].texts], dtype=np.float64)
        return out


def catalog_bm25(lists: Mapping[str, Sequence[QueryGroup]], catalog: Catalog | None) -> dict[str, list[np.ndarray]]:
    """BM25's scores of every list set, from one index over the catalog (and the lists' own texts)."""
    return BM25Baseline().score_lists(lists, catalog.texts if catalog is not None else None)
