"""Query groups (a query with its candidate list) and catalogs (the products a list can be filled from)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class QueryGroup:
    """One query with its candidate list: the unit of batching, scoring and evaluation.

    ``labels`` are graded gains (None when nothing is judged); ``rows`` are the candidates' positions
    in the table they came from, so callers can look up more columns (default: 0..n-1).
    """

    query_id: str
    query: str
    product_ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: np.ndarray | None = None
    rows: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.rows is None:
            object.__setattr__(self, "rows", np.arange(len(self.texts)))


@dataclass(frozen=True)
class Catalog:
    """Products a shop's first stage can return: ids, the text a ranker reads, and (when the catalog
    was read from a table) each product's first row in it, so a fill-in can be traced to its record."""

    product_ids: tuple[str, ...]
    texts: tuple[str, ...]
    rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.product_ids) != len(self.texts):
            raise ValueError("a catalog needs one text per product id")
        if len(set(self.product_ids)) != len(self.product_ids):
            raise ValueError("a catalog lists each product id once")

    def __len__(self) -> int:
        return len(self.product_ids)


def evaluable(groups: Iterable[QueryGroup]) -> list[QueryGroup]:
    """Queries whose labels can rank anything: at least two distinct labels."""
    return [g for g in groups if g.labels is not None and len(np.unique(g.labels)) >= 2]


def sample_queries(groups: Sequence[QueryGroup], count: int | None, seed: int = 0) -> list[QueryGroup]:
    """A seeded sample of ``count`` evaluable queries (all of them when ``count`` is None), in input
    order, so a smaller, cheaper run measures a fixed subset rather than whichever queries come first."""
    pool = evaluable(groups)
    if not pool:
        raise ValueError("no query has two distinct labels: nothing to measure quality on")
    if count is None or count >= len(pool):
        return pool
    keep = np.sort(np.random.default_rng(seed).choice(len(pool), size=count, replace=False))
    return [pool[i] for i in keep]


def query_seed(seed: int, query_id: str) -> list[int]:
    """A per-query seed that is the same on every machine (Python's hash() is salted per process), so a
    query's random draws do not depend on which other queries are in the run."""
    return [seed, int(hashlib.sha1(query_id.encode("utf-8")).hexdigest()[:8], 16)]


def score_by_group(
    groups: Iterable[QueryGroup], score_pairs: Callable[[list[str], list[str]], np.ndarray]
) -> list[np.ndarray]:
    """Scores for each group's candidates, one array per group, from ONE call over all pairs: a scorer
    batches and length-sorts across queries far better than it can inside one short list."""
    groups = list(groups)
    flat = score_pairs([g.query for g in groups for _ in g.texts], [t for g in groups for t in g.texts])
    bounds = np.cumsum([0] + [len(g.texts) for g in groups])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
