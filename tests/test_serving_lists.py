"""Serving lists (judged products topped up from the catalog) and the shared comparison built on them:
the fills against bm25s and numpy used directly, determinism, and the comparison's numbers by hand."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgerank.core import Catalog, QueryGroup
from edgerank.core.compare import compare, describe_lists, format_comparison
from edgerank.core.serving import comparison_lists, parse_fills, serving_lists
from edgerank.data import evaluable, file_catalog, group_queries, read_table, table_catalog

CATALOG_TEXTS = [
    "Red Cordless Drill Kit",
    "Blue Cordless Drill",
    "Drill Bit Set",
    "Garden Hose 50 ft",
    "Red Garden Hose",
    "Hose Nozzle",
    "Paint Roller",
    "Red Paint",
    "Door Hinge",
    "Door Knob",
    "Ceiling Fan",
    "LED Bulb",
]


def _catalog() -> Catalog:
    return Catalog(
        product_ids=tuple(f"p{i}" for i in range(len(CATALOG_TEXTS))),
        texts=tuple(CATALOG_TEXTS),
        rows=np.arange(100, 100 + len(CATALOG_TEXTS)),
    )


def _group(query_id: str, query: str, ids: list[int], gains: list[float]) -> QueryGroup:
    return QueryGroup(
        query_id=query_id,
        query=query,
        product_ids=tuple(f"p{i}" for i in ids),
        texts=tuple(CATALOG_TEXTS[i] for i in ids),
        labels=np.asarray(gains, dtype=np.float64),
        rows=np.asarray(ids),
    )


GROUPS = [_group("q1", "red drill", [0, 6], [2.0, 0.0]), _group("q2", "garden hose", [3, 9, 10], [1.0, 0.5, 0.0])]


@pytest.mark.parametrize("fill", ["bm25", "random"])
def test_lists_keep_the_judged_products_first_and_add_unjudged_ones(fill):
    catalog = _catalog()
    for g, s in zip(GROUPS, serving_lists(GROUPS, catalog, fill, size=8)):
        n = len(g.texts)
        assert len(s.texts) == 8 and s.product_ids[:n] == g.product_ids and s.texts[:n] == g.texts
        np.testing.assert_array_equal(s.labels, np.concatenate([g.labels, np.zeros(8 - n)]))
        fill_ids = s.product_ids[n:]
        assert len(set(fill_ids)) == len(fill_ids) and not set(fill_ids) & set(g.product_ids)
        positions = [catalog.product_ids.index(p) for p in fill_ids]
        assert [catalog.texts[i] for i in positions] == list(s.texts[n:])
        np.testing.assert_array_equal(s.rows, np.concatenate([g.rows, catalog.rows[positions]]))


def test_bm25_fill_is_the_querys_best_unjudged_bm25_matches():
    import bm25s

    index = bm25s.BM25()
    index.index(bm25s.tokenize(CATALOG_TEXTS, stopwords="en", show_progress=False), show_progress=False)
    for g, s in zip(GROUPS, serving_lists(GROUPS, _catalog(), "bm25", size=5)):
        scores = index.get_scores(bm25s.tokenize([g.query], stopwords="en", return_ids=False, show_progress=False)[0])
        judged = {int(p[1:]) for p in g.product_ids}
        best = [i for i in np.lexsort((np.arange(len(scores)), -scores)) if i not in judged and scores[i] > 0]
        fill = [int(p[1:]) for p in s.product_ids[len(g.texts) :]]
        assert fill[: len(best)] == best[: len(fill)]
    # "red drill" matches four unjudged products (Blue Cordless Drill, Drill Bit Set, Red Garden Hose,
    # Red Paint); a list of 12 takes them, then tops up with random unjudged products
    long = serving_lists(GROUPS[:1], _catalog(), "bm25", size=12)[0]
    assert set(long.product_ids[2:6]) == {"p1", "p2", "p4", "p7"}
    assert len(long.texts) == 12 and set(long.product_ids) == set(_catalog().product_ids)


def test_a_fill_in_never_repeats_a_judged_product_by_text():
    catalog = Catalog(product_ids=("a", "b", "c", "d"), texts=("Red Drill", "Red Drill", "Blue Drill", "Hose"))
    judged = QueryGroup(
        query_id="q", query="red drill", product_ids=("a",), texts=("Red Drill",), labels=np.array([1.0])
    )
    for fill in ("bm25", "random"):
        s = serving_lists([judged], catalog, fill, size=4)[0]
        assert s.product_ids[0] == "a" and "b" not in s.product_ids and len(s.texts) == 3  # capped by the catalog
        assert (s.rows[1:] == -1).all()  # a catalog without rows gives fill-ins none


def test_random_fill_is_seeded_per_query_and_prefix_stable():
    catalog = _catalog()
    a = serving_lists(GROUPS, catalog, "random", size=8, seed=0)
    assert [g.product_ids for g in a] == [g.product_ids for g in serving_lists(GROUPS, catalog, "random", 8, seed=0)]
    assert [g.product_ids for g in a] != [g.product_ids for g in serving_lists(GROUPS, catalog, "random", 8, seed=1)]
    alone = serving_lists(GROUPS[1:], catalog, "random", size=8, seed=0)[0]
    assert alone.product_ids == a[1].product_ids  # the same list whatever other queries are run
    longer = serving_lists(GROUPS, catalog, "random", size=10, seed=0)
    assert all(b.product_ids[:8] == s.product_ids for s, b in zip(a, longer))


def test_options_are_checked():
    assert parse_fills("bm25, random") == ("bm25", "random") and parse_fills("none") == () and parse_fills("") == ()
    with pytest.raises(ValueError, match="unknown fill"):
        parse_fills("bm25,tfidf")
    with pytest.raises(ValueError, match="positive"):
        serving_lists(GROUPS, _catalog(), "random", size=0)
    with pytest.raises(ValueError, match="once"):
        Catalog(product_ids=("a", "a"), texts=("x", "y"))


def test_table_catalog_holds_every_distinct_product_at_its_first_row(tiny_judged_csv, tmp_path):
    df, _ = read_table(tiny_judged_csv)
    catalog = table_catalog(df)
    assert len(catalog) == df["product_id"].nunique()
    for pid, text, row in zip(catalog.product_ids, catalog.texts, catalog.rows):
        assert row == int(np.flatnonzero(df["product_id"].to_numpy() == pid)[0])
        assert text == df["product_title"].iloc[row]
    products = tmp_path / "products.csv"
    products.write_text("product_id,product_title,product_description\np1,Red Drill,18V\np2,Hose,\n")
    assert file_catalog(products).texts == ("Red Drill 18V", "Hose") and file_catalog(products).rows is None


def test_comparison_lists_put_the_serving_lists_first(tiny_judged_csv):
    df, _ = read_table(tiny_judged_csv)
    groups = evaluable(group_queries(df))
    lists = comparison_lists(groups, table_catalog(df), size=20)
    assert list(lists) == ["bm25", "random", "judged"] and lists["judged"] == groups
    info = describe_lists(lists)
    assert info["random"]["size"]["max"] == 20 and info["judged"]["pairs"] == 48
    assert list(comparison_lists(groups, table_catalog(df), size=None)) == ["judged"]


def test_compare_gives_gain_kept_and_fidelity_to_the_teacher():
    groups = [_group(f"q{i}", "q", [0, 1, 2, 3], [2.0, 1.0, 0.0, 0.0]) for i in range(6)]
    lists = {"random": groups}
    teacher = [np.array([4.0, 3.0, 2.0, 1.0])] * 6  # the ideal order
    bm25 = [np.array([1.0, 2.0, 3.0, 4.0])] * 6  # the reverse
    half = [np.array([4.0, 3.0, 2.0, 1.0])] * 3 + [np.array([1.0, 2.0, 3.0, 4.0])] * 3
    rows = compare(
        lists, {"model": {"random": half}, "teacher": {"random": teacher}, "bm25": {"random": bm25}}, teacher="teacher"
    )["random"]
    assert rows["teacher"]["ndcg@10"] == 1.0 and rows["teacher"]["gain_kept"] == 1.0
    assert rows["model"]["gain_kept"] == pytest.approx(0.5) and rows["bm25"]["gain_kept"] == 0.0
    low, high = rows["model"]["gain_kept_ci95"]
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert rows["model"]["kendall_tau"] == pytest.approx(0.0)  # +1 on half the queries, -1 on the rest
    assert rows["bm25"]["kendall_tau"] == pytest.approx(-1.0) and rows["teacher"]["top10_overlap"] == 1.0
    assert rows["model"]["mrr@10"] == pytest.approx((1.0 + 1 / 3) / 2)  # first relevant at 1, or at 3
    table = format_comparison({"random": rows}, describe_lists(lists))
    assert "| serving, random fill (4) | model | " in table and "| serving, random fill (4) | BM25 |" in table
    assert "50.0% (" in table
    # without a teacher: nDCG and MRR only
    plain = compare(lists, {"model": {"random": half}, "bm25": {"random": bm25}})["random"]["model"]
    assert set(plain) == {"ndcg@10", "ndcg@5", "mrr@10", "queries"}


def test_home_depot_dev_serving_lists_are_fast_and_deterministic(shared_data):
    df, _ = read_table(shared_data / "homedepot" / "dev.csv")
    groups = evaluable(group_queries(df))
    catalog = table_catalog(df)
    t0 = time.perf_counter()
    lists = comparison_lists(groups, catalog, size=100)
    seconds = time.perf_counter() - t0
    assert seconds < 60, seconds  # ~1,000 queries x 100, both fills, on 2 cores
    for name in ("bm25", "random"):
        assert all(len(g.texts) == 100 for g in lists[name])
        assert all(g.labels[len(j.texts) :].sum() == 0 for g, j in zip(lists[name], groups))
    again = serving_lists(groups[:50], catalog, "bm25", size=100)
    assert [g.product_ids for g in again] == [g.product_ids for g in lists["bm25"][:50]]
