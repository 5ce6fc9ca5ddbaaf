"""Catalog negatives: which products join a training list, and that a query's draw is its own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgerank.core.groups import Catalog, QueryGroup
from edgerank.train.negatives import catalog_rows, mine, split_count, with_negatives

_TITLES = (
    "cordless drill 18v",
    "cordless drill battery",
    "cordless drill charger",
    "drill bit set",
    "hammer drill",
    "garden hose 50 ft",
    "hose reel",
    "patio chair",
    "door hinge",
    "paint roller",
    "ceiling fan",
    "smoke alarm",
)


def _catalog() -> Catalog:
    return Catalog(
        product_ids=tuple(f"p{i}" for i in range(len(_TITLES))), texts=_TITLES, rows=np.arange(len(_TITLES)) * 10
    )


def _group(query_id: str, query: str, judged: list[int]) -> QueryGroup:
    return QueryGroup(
        query_id=query_id,
        query=query,
        product_ids=tuple(f"p{i}" for i in judged),
        texts=tuple(_TITLES[i] for i in judged),
        labels=np.arange(len(judged), dtype=float),
    )


def test_half_bm25_half_random_with_the_odd_one_to_bm25():
    assert split_count(8) == (4, 4) and split_count(3) == (2, 1) and split_count(1) == (1, 0)
    assert split_count(0) == (0, 0)
    with pytest.raises(ValueError):
        split_count(-1)


def test_bm25_negatives_are_unjudged_lexical_matches_and_random_ones_fill_the_rest():
    drill = _group("q1", "cordless drill", [0])
    picks = mine([drill], _catalog(), 4, seed=0, depth=3)[0]
    assert len(picks) == len(set(picks.tolist())) == 4 and 0 not in picks  # never the judged product
    # depth 3 holds the judged drill and two unjudged "cordless drill" matches: both are the BM25 half
    assert set(picks[:2].tolist()) == {1, 2}
    assert not set(picks[2:].tolist()) & {0, 1, 2}


def test_bm25_negatives_are_drawn_across_the_depth_not_only_its_top():
    drill = _group("q1", "drill", [])
    drawn = {tuple(mine([drill], _catalog(), 2, seed=s, depth=5)[0][:1].tolist()) for s in range(20)}
    assert len(drawn) > 1  # seeds draw different near misses among the five "drill" matches
    assert all(i in range(5) for (i,) in drawn)


def test_a_query_without_lexical_matches_gets_random_products():
    picks = mine([_group("q1", "zzz qqq", [3])], _catalog(), 4, seed=0)[0]
    assert len(picks) == 4 and 3 not in picks


def test_a_querys_negatives_do_not_depend_on_the_other_queries():
    drill, hose = _group("q1", "cordless drill", [0]), _group("q2", "garden hose", [5, 6])
    alone = mine([drill], _catalog(), 4, seed=3)[0]
    together = mine([hose, drill], _catalog(), 4, seed=3)[1]
    assert np.array_equal(alone, together)
    assert np.array_equal(alone, mine([drill], _catalog(), 4, seed=3)[0])  # and the same on every run
    assert len({tuple(mine([drill], _catalog(), 4, seed=s)[0].tolist()) for s in range(10)}) > 1  # the seed decides


def test_a_product_judged_under_another_id_but_the_same_text_is_never_a_negative():
    catalog = Catalog(product_ids=("a", "b", "c"), texts=("red drill", "red drill", "blue hose"))
    group = QueryGroup(query_id="q", query="red drill", product_ids=("a",), texts=("red drill",), labels=np.ones(1))
    assert mine([group], catalog, 2)[0].tolist() == [2]  # "b" is the judged text again; only "c" is left


def test_with_negatives_appends_them_at_the_given_gain_and_keeps_their_catalog_rows():
    drill = _group("q1", "cordless drill", [0, 4])
    out = with_negatives([drill], _catalog(), 3, seed=0, gain=0.0)[0]
    assert out.texts[:2] == drill.texts and len(out.texts) == 5
    assert list(out.labels) == [0.0, 1.0, 0.0, 0.0, 0.0]
    picks = mine([drill], _catalog(), 3, seed=0)[0]
    assert list(out.rows[2:]) == list(picks * 10) and out.product_ids[2:] == tuple(f"p{i}" for i in picks)
    assert with_negatives([drill], _catalog(), 0)[0].texts == drill.texts


def test_catalog_rows_are_unjudged_rows_of_the_tables_own_products():
    df = pd.DataFrame(
        {
            "row": [1, 2, 3, 4],
            "query_id": ["q1", "q1", "q2", "q2"],
            "query": ["cordless drill", "cordless drill", "garden hose", "garden hose"],
            "product_id": ["p1", "p2", "p3", "p4"],
            "product_title": ["cordless drill 18v", "hose reel", "garden hose 50 ft", "cordless drill battery"],
            "product_description": ["", "", "", ""],
            "relevance": [3.0, 1.0, 3.0, 1.0],
        }
    )
    extra = catalog_rows(df, 2, seed=0)
    assert list(extra.columns) == list(df.columns) and extra["relevance"].isna().all()
    for qid, rows in extra.groupby("query_id"):
        judged = set(df.loc[df["query_id"] == qid, "product_id"])
        assert len(rows) == 2 and not set(rows["product_id"]) & judged
        assert rows["query"].nunique() == 1 and rows["query"].iloc[0] == df.loc[df["query_id"] == qid, "query"].iloc[0]
    q1 = extra[extra["query_id"] == "q1"]
    assert q1["product_id"].iloc[0] == "p4"  # the one unjudged "cordless drill" match, the BM25 half
    assert catalog_rows(df, 0).empty
    unlabelled = catalog_rows(df.drop(columns=["relevance"]), 1)
    assert "relevance" not in unlabelled.columns and len(unlabelled) == 2
