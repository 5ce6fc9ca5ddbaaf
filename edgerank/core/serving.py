"""Serving lists: each judged query's products topped up to the list a kiosk actually reranks.

Judged lists are short (Home Depot: median 7 products, ~0.89 nDCG@10 for BM25 already), so they
hide what a reranker is for: pushing a few relevant products above ~100 candidates from the first
stage. A serving list keeps a query's judged products and tops them up to ``size`` with unjudged
products of the catalog, counted as gain 0, in one of two ways:

- ``random``: seeded draws from the catalog, the easy off-topic candidates; nDCG on these lists
  says whether a ranker finds the relevant products among many.
- ``bm25``: the query's best BM25 matches the query was not judged on, the near misses a lexical
  first stage hands over. Some of them are relevant but unjudged, so nDCG here is biased against
  rankers that find them (BM25 ranks its own matches first); fidelity to the teacher, which needs
  no labels, is the cleaner measure on these lists.

A fill-in never repeats a judged product, by id or by text. The judged products are never cut, so
a list is at least as long as the query's judged list, and at most as long as the catalog allows.
Draws are seeded per query (``groups.query_seed``): the same list whatever other queries are run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .groups import Catalog, QueryGroup, query_seed

FILLS = ("bm25", "random")
DEFAULT_LIST_SIZE = 100


def parse_fills(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"bm25,random"`` (or a list) as a tuple of known fills; ``none`` or empty gives no fill."""
    items = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    if items in ([], ["none"]):
        return ()
    unknown = [f for f in items if f not in FILLS]
    if unknown:
        raise ValueError(f"unknown fill {', '.join(unknown)} (choose from {', '.join(FILLS)}, or none)")
    return tuple(dict.fromkeys(items))


def _excluded(group: QueryGroup, by_text: dict[str, list[int]], by_id: dict[str, int]) -> np.ndarray:
    """Catalog positions a fill-in must not take: the query's judged products, by id and by text."""
    taken = {by_id[p] for p in group.product_ids if p in by_id}
    for t in group.texts:
        taken.update(by_text.get(t, ()))
    return np.fromiter(taken, dtype=np.int64, count=len(taken))


def random_order(group: QueryGroup, catalog: Catalog, excluded: np.ndarray, seed: int) -> np.ndarray:
    """Every allowed catalog position in the query's seeded random order: any prefix is a fill, so
    a list of N is a prefix of the list of a larger N."""
    order = np.random.default_rng(query_seed(seed, group.query_id)).permutation(len(catalog))
    return order[~np.isin(order, excluded)]


def _bm25_fills(
    groups: Sequence[QueryGroup], catalog: Catalog, excluded: list[np.ndarray], need: list[int], size: int, seed: int
) -> list[np.ndarray]:
    """Each query's best unjudged BM25 matches; when fewer than ``need`` match at all (a rare or
    stopword-only query), the rest are seeded random draws, as in the random fill.

    One batched retrieval of a depth set by ``size`` alone (twice the list), so a query's fill does
    not depend on which other queries are run; the rare query whose judged products crowd that depth
    out is ranked over the whole catalog instead."""
    from .bm25 import BM25Index

    index = BM25Index(catalog.texts)
    depth = min(len(catalog), 2 * size)
    fills = []
    for g, top, ex, n in zip(groups, index.top([g.query for g in groups], depth), excluded, need):
        pick = top[~np.isin(top, ex)][:n]
        if len(pick) < n and len(top) == depth:
            ranked = index.ranked(g.query)
            pick = ranked[~np.isin(ranked, ex)][:n]
        if len(pick) < n:
            rest = random_order(g, catalog, np.concatenate([ex, pick]), seed)
            pick = np.concatenate([pick, rest[: n - len(pick)]])
        fills.append(pick.astype(np.int64))
    return fills


def serving_lists(
    groups: Sequence[QueryGroup], catalog: Catalog, fill: str = "bm25", size: int = DEFAULT_LIST_SIZE, seed: int = 0
) -> list[QueryGroup]:
    """Each group's judged products, then unjudged ``fill`` products of ``catalog`` (gain 0) up to
    ``size``. The groups' ``rows`` continue with each fill-in's ``catalog.rows`` entry (-1 when the
    catalog has none)."""
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r} (choose from {', '.join(FILLS)})")
    if size < 1:
        raise ValueError(f"list size must be positive, got {size}")
    by_id = {p: i for i, p in enumerate(catalog.product_ids)}
    by_text: dict[str, list[int]] = {}
    for i, t in enumerate(catalog.texts):
        by_text.setdefault(t, []).append(i)
    excluded = [_excluded(g, by_text, by_id) for g in groups]
    need = [max(0, size - len(g.texts)) for g in groups]
    if fill == "bm25":
        fills = _bm25_fills(groups, catalog, excluded, need, size, seed)
    else:
        fills = [random_order(g, catalog, ex, seed)[:n] for g, ex, n in zip(groups, excluded, need)]
    return [topped_up(g, catalog, f) for g, f in zip(groups, fills)]


def topped_up(group: QueryGroup, catalog: Catalog, fill: np.ndarray) -> QueryGroup:
    """``group`` followed by the catalog products at positions ``fill``, unjudged (gain 0)."""
    labels = group.labels if group.labels is not None else np.zeros(len(group.texts))
    rows = catalog.rows[fill] if catalog.rows is not None else np.full(len(fill), -1)
    return QueryGroup(
        query_id=group.query_id,
        query=group.query,
        product_ids=group.product_ids + tuple(catalog.product_ids[i] for i in fill),
        texts=group.texts + tuple(catalog.texts[i] for i in fill),
        labels=np.concatenate([np.asarray(labels, dtype=np.float64), np.zeros(len(fill))]),
        rows=np.concatenate([np.asarray(group.rows), rows]).astype(np.int64),
    )


def comparison_lists(
    groups: Sequence[QueryGroup],
    catalog: Catalog | None,
    *,
    size: int | None = DEFAULT_LIST_SIZE,
    fills: Sequence[str] = FILLS,
    seed: int = 0,
) -> dict[str, list[QueryGroup]]:
    """The list sets a comparison scores, primary first: one serving list set per fill (when a size
    and a catalog are given), then the judged lists themselves (``judged``)."""
    lists: dict[str, list[QueryGroup]] = {}
    if size and catalog is not None:
        for fill in fills:
            lists[fill] = serving_lists(groups, catalog, fill, size, seed)
    lists["judged"] = list(groups)
    return lists
