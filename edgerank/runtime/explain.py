"""Which query words carried a product's score: occlusion over the query, for shop staff.

For each returned product, each query word is dropped in turn and the pair rescored; the word's
weight is how much the raw logit falls without it (negative: the product scores *higher* without
that word). No gradients, so it works on any backend including INT8 graphs. Cost: ``words x top_k``
extra pairs on top of the ranking itself (the unoccluded score is reused), so it is opt-in and
limited to ``MAX_WORDS`` query words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import RankerInputError

MAX_WORDS = 32

ScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def query_words(query: str) -> list[str]:
    """Whitespace words: what shop staff read and type, not wordpieces they would not recognise."""
    return query.split()


def occlusion(score: ScoreFn, query: str, texts: Sequence[str], base: np.ndarray) -> list[list[tuple[str, float]]]:
    """Per text, ``(word, base - score without the word)`` in query order."""
    words = query_words(query)
    if len(words) > MAX_WORDS:
        raise RankerInputError(f"explain: the query has {len(words)} words; explanations support up to {MAX_WORDS}")
    if not texts:
        return []
    occluded = [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
    queries = [q for q in occluded for _ in texts]
    scores = score(queries, list(texts) * len(words)).reshape(len(words), len(texts))
    drops = np.asarray(base, dtype=np.float64)[None, :] - scores
    return [[(w, float(drops[i, j])) for i, w in enumerate(words)] for j in range(len(texts))]
