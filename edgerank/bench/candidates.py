"""Candidate lists of a fixed size N per query, as a shop's first-stage retrieval would hand over.

Judged lists are short (Home Depot: median 7 products), but a kiosk reranks 50-500. Each query's
list is its judged products topped up with products drawn from the rest of the file's catalog,
seeded by the query id, so every ranker, every run and every machine sees the same lists. Unjudged
fill-ins count as gain 0: a product drawn at random from a catalog is almost never relevant.
The lists for a smaller N are prefixes of those for a larger one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..data import QueryGroup, evaluable, product_texts


def sample_queries(groups: Sequence[QueryGroup], count: int | None, seed: int = 0) -> list[QueryGroup]:
    """A seeded sample of ``count`` evaluable queries (all of them when ``count`` is None), in file order."""
    pool = evaluable(groups)
    if not pool:
        raise ValueError("no query has two distinct labels: nothing to benchmark quality on")
    if count is None or count >= len(pool):
        return pool
    keep = np.sort(np.random.default_rng(seed).choice(len(pool), size=count, replace=False))
    return [pool[i] for i in keep]


def build_candidates(df: pd.DataFrame, groups: Sequence[QueryGroup], sizes: Sequence[int],
                     seed: int = 0) -> dict[int, list[QueryGroup]]:
    """For each N in ``sizes``, each query's judged products (the first N if it has more) topped up
    to N with seeded draws from the products ``df`` holds that were not judged for that query.

    The returned groups carry ``rows`` into ``df`` (a fill-in's row is its product's first row), so
    titles and descriptions can be looked up for runtimes that take product records.
    """
    if not sizes or min(sizes) < 1:
        raise ValueError(f"candidate counts must be positive, got {list(sizes)}")
    catalog = df.drop_duplicates("product_id")
    cat_rows = catalog.index.to_numpy()
    cat_ids = catalog["product_id"].to_numpy()
    texts = np.asarray(product_texts(df), dtype=object)
    largest = max(sizes)
    if largest > len(cat_rows):
        raise ValueError(f"{largest} candidates asked for, but the file holds only {len(cat_rows)} distinct products")
    out: dict[int, list[QueryGroup]] = {n: [] for n in sizes}
    for g in groups:
        judged = set(g.product_ids)
        need = largest - min(len(g.rows), largest)
        rng = np.random.default_rng([seed, int(hashlib.sha1(g.query_id.encode()).hexdigest()[:8], 16)])
        draw = rng.choice(len(cat_rows), size=min(len(cat_rows), need + len(judged)), replace=False)
        fill = [i for i in draw if cat_ids[i] not in judged][:need]
        rows = np.concatenate([g.rows[:largest], cat_rows[fill]]).astype(np.int64)
        gains = np.concatenate([g.labels[:largest], np.zeros(len(fill))])
        for n in sizes:
            out[n].append(QueryGroup(query_id=g.query_id, query=g.query,
                                     product_ids=tuple(df["product_id"].to_numpy()[rows[:n]]),
                                     texts=tuple(texts[rows[:n]]), labels=gains[:n], rows=rows[:n]))
    return out


def product_records(df: pd.DataFrame, group: QueryGroup) -> list[dict[str, str]]:
    """The group's candidates as the records a runtime ranks: ``{id, title, description}``."""
    return frame_records(df.iloc[group.rows])


def frame_records(frame: pd.DataFrame) -> list[dict[str, str]]:
    """A table's rows as ``{id, title, description}`` records, in row order."""
    return [{"id": i, "title": t, "description": d}
            for i, t, d in zip(frame["product_id"], frame["product_title"], frame["product_description"])]
