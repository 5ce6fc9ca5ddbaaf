"""Catalog negatives: unjudged products of the training catalog added to each training query's list.

A judged list holds only the products a shop's retrieval once showed the raters (Home Depot: a median of
7), while a ranker in service orders about a hundred, most of them products nobody judged for that query
(``core/serving.py``). A model trained on judged lists alone never sees such a product and may score it
anywhere; on serving lists the teacher then ranked below BM25. So training lists are topped up with
catalog products the query was not judged on, in two kinds, half each:

- ``bm25``: drawn from the query's best unjudged BM25 matches (the first ``BM25_DEPTH``, the depth a
  serving list's BM25 fill reaches): the lexical near misses a first stage hands the ranker, the hard
  part of a serving list. Drawn across that depth rather than taken from its top, because the very best
  unjudged matches are the likeliest to be relevant products nobody judged (false negatives);
- ``random``: seeded draws from the whole catalog: the off-topic products that fill the rest of a
  serving list, which a model trained on near misses alone could still score anywhere.

A query with fewer BM25 matches than asked gets random products in their place. Draws are seeded per
query (``core.groups.query_seed``), so a query gets the same negatives whatever other queries are in the
table, on every machine and in every process of a DDP run. Negatives never repeat a judged product, by
id or by text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.groups import Catalog, QueryGroup, query_seed
from ..core.serving import DEFAULT_LIST_SIZE, random_order
from ..data import group_queries, table_catalog

#: How deep in a query's BM25 ranking the ``bm25`` negatives are drawn: a serving list's BM25 fill.
BM25_DEPTH = DEFAULT_LIST_SIZE


def split_count(count: int) -> tuple[int, int]:
    """``count`` negatives as (bm25, random), half each; BM25 takes the odd one (the harder kind)."""
    if count < 0:
        raise ValueError(f"a negative count must be 0 or more, got {count}")
    return count - count // 2, count // 2


def _excluded(group: QueryGroup, by_id: dict[str, int], by_text: dict[str, list[int]]) -> set[int]:
    """Catalog positions the query was judged on, by product id or by text."""
    taken = {by_id[p] for p in group.product_ids if p in by_id}
    for t in group.texts:
        taken.update(by_text.get(t, ()))
    return taken


def _bm25_draw(top: np.ndarray, excluded: set[int], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` of the unjudged matches in ``top``, drawn uniformly, in BM25 order."""
    pool = np.asarray([i for i in top if i not in excluded], dtype=np.int64)
    if len(pool) <= count:
        return pool
    return pool[np.sort(rng.choice(len(pool), size=count, replace=False))]


def mine(
    groups: Sequence[QueryGroup], catalog: Catalog, count: int, seed: int = 0, depth: int = BM25_DEPTH
) -> list[np.ndarray]:
    """Catalog positions of each group's ``count`` negatives: the BM25 half first, then the random half."""
    n_bm25, n_random = split_count(count)
    if count == 0 or not groups:
        return [np.empty(0, dtype=np.int64) for _ in groups]
    by_id = {p: i for i, p in enumerate(catalog.product_ids)}
    by_text: dict[str, list[int]] = {}
    for i, t in enumerate(catalog.texts):
        by_text.setdefault(t, []).append(i)
    tops = _bm25_tops(groups, catalog, depth) if n_bm25 else [np.empty(0, dtype=np.int64)] * len(groups)
    picks = []
    for g, top in zip(groups, tops):
        excluded = _excluded(g, by_id, by_text)
        lexical = _bm25_draw(top, excluded, n_bm25, np.random.default_rng(query_seed(seed, g.query_id)))
        rest = random_order(g, catalog, np.fromiter(excluded | set(lexical.tolist()), dtype=np.int64), seed)
        picks.append(np.concatenate([lexical, rest[: count - len(lexical)]]).astype(np.int64))
    return picks


def _bm25_tops(groups: Sequence[QueryGroup], catalog: Catalog, depth: int) -> list[np.ndarray]:
    """Each query's best ``depth`` BM25 matches in the catalog (one batched retrieval)."""
    from ..core.bm25 import BM25Index

    return BM25Index(catalog.texts).top([g.query for g in groups], depth)


def with_negatives(
    groups: Sequence[QueryGroup], catalog: Catalog, count: int, seed: int = 0, gain: float = 0.0
) -> list[QueryGroup]:
    """Each group followed by its ``count`` catalog negatives, labelled ``gain`` (the lowest grade)."""
    out = []
    for g, pick in zip(groups, mine(groups, catalog, count, seed)):
        labels = np.asarray(g.labels if g.labels is not None else np.zeros(len(g.texts)), dtype=np.float64)
        rows = catalog.rows[pick] if catalog.rows is not None else np.full(len(pick), -1)
        out.append(
            QueryGroup(
                query_id=g.query_id,
                query=g.query,
                product_ids=g.product_ids + tuple(catalog.product_ids[i] for i in pick),
                texts=g.texts + tuple(catalog.texts[i] for i in pick),
                labels=np.concatenate([labels, np.full(len(pick), gain)]),
                rows=np.concatenate([np.asarray(g.rows), rows]).astype(np.int64),
            )
        )
    return out


def catalog_rows(df: pd.DataFrame, count: int, seed: int = 0) -> pd.DataFrame:
    """Rows to append to a canonical table: ``count`` negatives per query from the table's own products,
    unjudged (relevance NaN when the table has labels), for a teacher to score."""
    if count <= 0:
        return df.iloc[:0]
    catalog = table_catalog(df)
    groups = group_queries(df.assign(relevance=0.0))
    picks = mine(groups, catalog, count, seed)
    rows = np.concatenate([catalog.rows[p] for p in picks]).astype(np.int64)
    extra = df.iloc[rows].copy()
    extra["query_id"] = np.repeat([g.query_id for g in groups], [len(p) for p in picks])
    extra["query"] = np.repeat([g.query for g in groups], [len(p) for p in picks])
    if "relevance" in extra.columns:
        extra["relevance"] = np.nan
    return extra.reset_index(drop=True)
