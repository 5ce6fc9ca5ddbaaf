"""Candidate lists of a fixed size N per query, as a shop's first-stage retrieval would hand over.

Judged lists are short (Home Depot: median 7 products), but a kiosk reranks 50-500. Each query's
list is its judged products topped up with the random fill of ``edgerank.core.serving``: products
of the file's catalog in an order seeded by the query id, so every ranker, every run and every
machine sees the same lists, and the list of 100 is the serving list ``edgerank eval`` scores.
Unjudged fill-ins count as gain 0: a product drawn at random from a catalog is almost never
relevant. The lists for a smaller N are prefixes of those for a larger one.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.groups import QueryGroup, sample_queries
from ..core.serving import serving_lists
from ..data import table_catalog

__all__ = ["build_candidates", "frame_records", "product_records", "sample_queries"]


def build_candidates(
    df: pd.DataFrame, groups: Sequence[QueryGroup], sizes: Sequence[int], seed: int = 0
) -> dict[int, list[QueryGroup]]:
    """For each N in ``sizes``, each query's judged products (the first N if it has more) topped up
    to N with the seeded random fill from the products ``df`` holds that were not judged for that query.

    The returned groups carry ``rows`` into ``df`` (a fill-in's row is its product's first row), so
    titles and descriptions can be looked up for runtimes that take product records.
    """
    if not sizes or min(sizes) < 1:
        raise ValueError(f"candidate counts must be positive, got {list(sizes)}")
    catalog = table_catalog(df)
    largest = max(sizes)
    if largest > len(catalog):
        raise ValueError(f"{largest} candidates asked for, but the file holds only {len(catalog)} distinct products")
    full = serving_lists([_head(g, largest) for g in groups], catalog, "random", largest, seed)
    return {n: [_head(g, n) for g in full] for n in sizes}


def _head(group: QueryGroup, n: int) -> QueryGroup:
    """The first ``n`` candidates of ``group``."""
    labels = group.labels[:n] if group.labels is not None else None
    return QueryGroup(
        query_id=group.query_id,
        query=group.query,
        product_ids=group.product_ids[:n],
        texts=group.texts[:n],
        labels=labels,
        rows=group.rows[:n],
    )


def product_records(df: pd.DataFrame, group: QueryGroup) -> list[dict[str, str]]:
    """The group's candidates as the records a runtime ranks: ``{id, title, description}``."""
    return frame_records(df.iloc[group.rows])


def frame_records(frame: pd.DataFrame) -> list[dict[str, str]]:
    """A table's rows as ``{id, title, description}`` records, in row order."""
    return [
        {"id": i, "title": t, "description": d}
        for i, t, d in zip(frame["product_id"], frame["product_title"], frame["product_description"])
    ]
